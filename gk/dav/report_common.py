"""
What the REPORT handlers (L{gk.dav.reports}) share: the collection a
REPORT is aimed at (L{CollectionTarget}), the error that answers one
(L{ReportError}), the properties of member resources a report returns
(L{MemberProps}) with their calendar-data and address-data, the time zone
of floating times, and the caches and thread batches that keep large
reports off the reactor thread.

Calendar data that a request wants changed (expanded, limited, cut down
to some components or properties) is rendered by L{gk.dav.calquery} in a
thread, and the result kept in a process-wide cache keyed by the stored
object's entity tag (a hash of its bytes), so that the same question
about the same data is answered once; nothing stale can be served, since
changed data has another tag.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Timezone
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.collections_service import CollectionService
from gk.dav import calquery, vcard
from gk.dav.multistatus import Multistatus, PropValue, error_body, resourcetype
from gk.dav.xmlbody import CALDAV, CARDDAV, DAV, CalendarData, PropFind
from gk.storage.accounts import Account
from gk.storage.dav_store import ADDRESSBOOK, CollectionInfo, ObjectInfo, StoredObject

log = Logger()

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")
R = TypeVar("R")

GETETAG = f"{{{DAV}}}getetag"
GETCONTENTTYPE = f"{{{DAV}}}getcontenttype"
GETCONTENTLENGTH = f"{{{DAV}}}getcontentlength"
GETLASTMODIFIED = f"{{{DAV}}}getlastmodified"
RESOURCETYPE = f"{{{DAV}}}resourcetype"
CALENDAR_DATA = f"{{{CALDAV}}}calendar-data"
ADDRESS_DATA = f"{{{CARDDAV}}}address-data"

#: The live properties of a member that allprop lists (RFC 4791 9.6 and
#: RFC 6352 10.4: calendar-data and address-data are not among them).
_ALLPROP = (GETETAG, GETCONTENTTYPE, GETCONTENTLENGTH, GETLASTMODIFIED, RESOURCETYPE)

#: Resources handled per trip to a worker thread: small enough that one
#: trip holds the GIL for well under a second even when every resource
#: must be parsed, large enough that the trips cost nothing.
BATCH = 100

#: Bytes of rendered calendar data kept (L{render_cache}).
RENDER_CACHE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class CollectionTarget:
    """
    The collection a REPORT is aimed at, resolved and access-checked by
    the HTTP layer.

    @ivar service: C{app.calendars} (or the scheduling inbox's service)
        for a calendar, C{app.contacts} for an address book.
    @ivar href: the collection's decoded path with its trailing slash,
        e.g. C{/dav/calendars/alice@example.test/calendar/}; members are
        this plus their name.
    """

    account: Account
    service: CollectionService
    collection: CollectionInfo
    href: str

    @property
    def is_addressbook(self) -> bool:
        return self.collection.kind == ADDRESSBOOK

    def member_href(self, name: str) -> str:
        """The decoded path of member C{name}."""
        return self.href + name

    def member_name(self, path: str) -> str | None:
        """The member name a decoded path names, or L{None} when it names no member."""
        if not path.startswith(self.href):
            return None
        name = path[len(self.href) :]
        return name if name and "/" not in name else None


class ReportError(Exception):
    """
    A REPORT that is answered with an error status instead of a 207.

    @ivar status: the HTTP status (400, 403, 507 ...).
    @ivar body: a C{DAV:error} XML body naming the failed precondition
        (from L{gk.dav.multistatus.error_body}), or C{b""} for none.
    """

    def __init__(self, status: int, body: bytes = b"") -> None:
        super().__init__(f"REPORT failed with {status}")
        self.status = status
        self.body = body


def precondition(condition: str, namespace: str = DAV, status: int = 403) -> ReportError:
    """The L{ReportError} for a failed precondition, e.g. C{("valid-filter", CALDAV)}."""
    return ReportError(status, error_body(condition, namespace=namespace))


# -- members -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """A member resource as reports describe it; C{data} only when it was read."""

    name: str
    etag: str
    size: int
    modified: datetime
    component: str
    data: bytes | None = None
    #: Whether it recurs (known from the index of calendar objects only).
    recurring: bool = False

    @classmethod
    def stored(cls, obj: StoredObject) -> Member:
        return cls(
            obj.name, obj.etag, obj.size, obj.modified, obj.component, obj.data, obj.recurring
        )

    @classmethod
    def info(cls, info: ObjectInfo) -> Member:
        return cls(info.name, info.etag, info.size, info.modified, info.component)

    @classmethod
    def entry(cls, entry: Entry) -> Member:
        return cls(
            entry.name,
            entry.etag,
            entry.size,
            entry.modified,
            entry.component,
            entry.data,
            entry.recurring,
        )


class Entry(Protocol):
    """An index entry with its body if read (L{gk.storage.dav_queries.EventEntry})."""

    @property
    def name(self) -> str: ...
    @property
    def etag(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def modified(self) -> datetime: ...
    @property
    def component(self) -> str: ...
    @property
    def data(self) -> bytes | None: ...
    @property
    def recurring(self) -> bool: ...


def http_date(moment: datetime) -> str:
    """An RFC 1123 date (RFC 9110 5.6.7), as DAV:getlastmodified wants."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return format_datetime(aware.astimezone(UTC), usegmt=True)


# -- time zones ------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """The zone floating times are read in, and a short key naming it for caches."""

    tz: tzinfo
    key: str


UTC_ZONE = Zone(UTC, "UTC")


@lru_cache(maxsize=64)
def _zone_from_text(text: str) -> Zone | None:
    """The zone of the VTIMEZONE in an iCalendar text, or L{None} if it has none usable."""
    try:
        calendar: Any = Calendar.from_ical(text.strip())
        timezones = [c for c in calendar.walk("VTIMEZONE") if isinstance(c, Timezone)]
        if len(timezones) != 1:
            return None
        # A known TZID is looked up in the tz database, as icalendar does
        # for the stored objects themselves, so both read times alike.
        tz = timezones[0].to_tz()
    except Exception:  # icalendar raises many kinds on arbitrary text
        return None
    return Zone(tz, "vtz:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:24])


@lru_cache(maxsize=64)
def _zone_from_id(tzid: str) -> Zone | None:
    try:
        return Zone(ZoneInfo(tzid), "tzid:" + tzid)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def floating_zone(
    collection: CollectionInfo, timezone: str | None = None, timezone_id: str | None = None
) -> Zone:
    """
    The zone of floating times for a query (RFC 4791 7.8, RFC 7809 5.2): the
    request's C{CALDAV:timezone-id} or C{CALDAV:timezone}, else the
    collection's calendar-timezone, else UTC.

    @raise ReportError: 403 C{CALDAV:valid-timezone} for an unknown
        timezone-id, 403 C{CALDAV:valid-calendar-data} for a timezone that
        is not a VCALENDAR with one usable VTIMEZONE.  A bad stored
        calendar-timezone is ignored (UTC): the client cannot fix it here.
    """
    if timezone_id:
        zone = _zone_from_id(timezone_id)
        if zone is None:
            raise precondition("valid-timezone", CALDAV)
        return zone
    if timezone is not None and timezone.strip():
        zone = _zone_from_text(timezone)
        if zone is None:
            raise precondition("valid-calendar-data", CALDAV)
        return zone
    if collection.timezone:
        return _zone_from_text(collection.timezone) or UTC_ZONE
    return UTC_ZONE


# -- caches and threads -------------------------------------------------------


class LRU(Generic[K, V]):
    """
    A thread-safe least-recently-used map bounded by entry count and, with
    C{weigh}, by total weight (e.g. bytes).
    """

    def __init__(
        self,
        max_items: int,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._max_items = max_items
        self._max_weight = max_weight
        self._weigh = weigh
        self._weight = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self._weigh is not None else 0
        if self._max_weight is not None and weight > self._max_weight:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None and self._weigh is not None:
                self._weight -= self._weigh(old)
            self._data[key] = value
            self._weight += weight
            while len(self._data) > self._max_items or (
                self._max_weight is not None and self._weight > self._max_weight
            ):
                _, dropped = self._data.popitem(last=False)
                if self._weigh is not None:
                    self._weight -= self._weigh(dropped)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weight = 0


async def in_batches(
    fn: Callable[[Sequence[T]], list[R]], items: Sequence[T], size: int = BATCH
) -> list[R]:
    """
    C{fn} over C{items} in worker threads, C{size} at a time, one batch
    after the other (the GIL makes parallel batches no faster, and one at
    a time leaves the other threads to the database); the results in order.
    """
    results: list[R] = []
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        done: list[R] = await deferToThread(fn, batch)
        results.extend(done)
    return results


#: Rendered calendar-data: (etag, zone key, request) -> text.
render_cache: LRU[tuple[str, str, calquery.CalendarDataRequest], str] = LRU(
    200_000, RENDER_CACHE_BYTES, lambda text: len(text) + 100
)

_PLAIN = calquery.CalendarDataRequest()


def parse_calendar(data: bytes) -> Calendar:
    """
    Stored iCalendar bytes, parsed (blocking: call in a thread).  The bytes
    were checked when stored, so failures are not expected; they raise.
    """
    calendar: Any = Calendar.from_ical(data.decode("utf-8"))
    if not isinstance(calendar, Calendar):  # pragma: no cover - checked at PUT
        raise ValueError("stored data is not one VCALENDAR")
    return calendar


# -- the properties of members ---------------------------------------------------


class MemberProps:
    """
    The properties a report asks for about each member, and how to answer
    them: L{wants_data} says whether bodies must be read, L{needs_thread}
    whether producing the data is CPU work (L{prepare} in a thread),
    L{add} writes a member's response.
    """

    def __init__(
        self,
        prop: PropFind,
        *,
        addressbook: bool,
        calendar_data: CalendarData | None = None,
        address_data: Element | None = None,
        zone: Zone = UTC_ZONE,
    ) -> None:
        """
        @raise ReportError: 403 C{CALDAV:supported-calendar-data} or
            C{CARDDAV:supported-address-data} for a media type other than
            iCalendar 2.0 or vCard; 400 for a malformed data request.
        """
        self.addressbook = addressbook
        self.zone = zone
        self.kind = prop.kind
        data_name = ADDRESS_DATA if addressbook else CALENDAR_DATA
        if prop.kind == "allprop":
            names = [*_ALLPROP, *(n for n in prop.include if n not in _ALLPROP)]
        elif prop.kind == "propname":
            names = [*_ALLPROP, data_name]
        else:
            names = list(prop.names)
        self.names = tuple(names)
        # (allprop names the data only when the request includes it)
        wants_data = prop.kind != "propname" and data_name in self.names
        self.calendar_request: calquery.CalendarDataRequest | None = None
        self.address_props: list[str] | None = None
        if wants_data and not addressbook:
            element = calendar_data.element if calendar_data is not None else None
            self.calendar_request = _calendar_request(element)
        elif wants_data:
            self.address_props = _address_request(address_data)
        self.wants_data = wants_data
        #: Whether the data asked for takes parsing (else it is the bytes as stored).
        self.needs_thread = wants_data and (
            self.address_props is not None
            or (self.calendar_request is not None and self.calendar_request != _PLAIN)
        )

    def cached(self, member: Member) -> str | None:
        """The data to return for C{member} if known without parsing, else L{None}."""
        if not self.wants_data or member.data is None:
            return None
        if not self.needs_thread:
            return member.data.decode("utf-8", "replace")
        if self.calendar_request is not None:
            return render_cache.get((member.etag, self.zone.key, self.calendar_request))
        return None

    def prepare(self, member: Member, calendar: Calendar | None = None) -> str | None:
        """
        The calendar-data or address-data text to return for C{member}
        (blocking when L{needs_thread}: call in a thread); L{None} when not
        asked for or the body was not read.  C{calendar} is the parsed body,
        if the caller has it.
        """
        if not self.wants_data or member.data is None:
            return None
        if not self.needs_thread:
            return member.data.decode("utf-8", "replace")
        if self.address_props is not None:
            return vcard.select_address_data(member.data, self.address_props).decode(
                "utf-8", "replace"
            )
        request = self.calendar_request
        assert request is not None
        key = (member.etag, self.zone.key, request)
        text = render_cache.get(key)
        if text is None:
            parsed = calendar if calendar is not None else parse_calendar(member.data)
            rendered = calquery.render_calendar_data(parsed, request, self.zone.tz)
            text = rendered.decode("utf-8", "replace")
            render_cache.put(key, text)
        return text

    def prepare_many(self, members: Sequence[Member]) -> list[str | None]:
        """
        L{prepare} for each of C{members} (blocking).  Data that cannot be
        rendered (it passed its PUT's checks, so this is not expected) is
        returned as stored rather than failing the whole report.
        """
        texts = []
        for member in members:
            try:
                texts.append(self.prepare(member))
            except Exception:
                log.failure("the data of {name} could not be rendered", name=member.name)
                texts.append((member.data or b"").decode("utf-8", "replace"))
        return texts

    async def prepare_all(self, members: Sequence[Member]) -> list[str | None]:
        """
        L{prepare} for each of C{members}: from the cache or the stored
        bytes at once, the rest in worker threads.
        """
        texts = [self.cached(member) for member in members]
        if not self.needs_thread:
            return texts
        todo = [i for i, text in enumerate(texts) if text is None and members[i].data is not None]
        done = await in_batches(self.prepare_many, [members[i] for i in todo])
        for i, text in zip(todo, done, strict=True):
            texts[i] = text
        return texts

    def add(self, multistatus: Multistatus, href: str, member: Member, data: str | None) -> None:
        """Write C{member}'s response; C{data} is what L{prepare} gave."""
        found: dict[str, PropValue] = {}
        missing: list[str] = []
        for name in self.names:
            known, value = self._value(name, member, data)
            if not known:
                missing.append(name)
            else:
                found[name] = None if self.kind == "propname" else value
        multistatus.add(href, found, missing)

    def _value(self, name: str, member: Member, data: str | None) -> tuple[bool, PropValue]:
        """Whether C{member} has property C{name}, and its value."""
        if name == GETETAG:
            return True, member.etag
        if name == GETCONTENTTYPE:
            if self.addressbook:
                return True, "text/vcard; charset=utf-8"
            return True, f"text/calendar; charset=utf-8; component={member.component.lower()}"
        if name == GETCONTENTLENGTH:
            return True, str(member.size)
        if name == GETLASTMODIFIED:
            return True, http_date(member.modified)
        if name == RESOURCETYPE:
            return True, resourcetype()
        if name == (ADDRESS_DATA if self.addressbook else CALENDAR_DATA):
            return (self.kind == "propname" or data is not None), data
        return False, None


def _calendar_request(element: Element | None) -> calquery.CalendarDataRequest:
    if element is None:
        return _PLAIN
    try:
        return calquery.parse_calendar_data_request(element)
    except calquery.UnsupportedCalendarData:
        raise precondition("supported-calendar-data", CALDAV) from None
    except calquery.QueryError:
        raise ReportError(400) from None


def _address_request(element: Element | None) -> list[str] | None:
    if element is None:
        return None
    media = (element.get("content-type") or "text/vcard").split(";")[0].strip().lower()
    version = (element.get("version") or "3.0").strip()
    if media != "text/vcard" or version not in ("3.0", "4.0"):
        raise precondition("supported-address-data", CARDDAV)
    try:
        return vcard.parse_address_data_request(element)
    except vcard.InvalidAddressDataRequest:
        raise ReportError(400) from None
