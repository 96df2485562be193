"""
L{CalendarService}: a user's calendars and task lists (CalDAV collections),
their events, to-dos and journal entries as iCalendar text, and the
queries the assistant and free-busy need.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk import parsecache
from gk.collections_service import CheckedObject, CollectionService, InvalidObject
from gk.dav.caldata import (
    DEFAULT_COMPONENTS,
    CalendarObject,
    InvalidCalendarData,
    parse_calendar_object,
)
from gk.dav.calexpand import TimeRange, freebusy_periods, instance_in_range
from gk.dav.calseries import months_when_written
from gk.dav.report_common import floating_zone
from gk.events import CalendarChanged, Event
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo, StoredObject

CALDAV = "urn:ietf:params:xml:ns:caldav"

log = Logger()

_PEOPLE = re.compile(rb"^(?:ORGANIZER|ATTENDEE)[^:\r\n]*:mailto:([^\r\n]+)", re.I | re.M)


def people(data: bytes) -> tuple[str, ...]:
    """The ORGANIZER and ATTENDEE addresses of an iCalendar body, lower-case, once each."""
    unfolded = data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
    found = (m.decode("utf-8", "replace").strip().lower() for m in _PEOPLE.findall(unfolded))
    return tuple(dict.fromkeys(found))


#: A busy period: start and end (aware, UTC) and its FBTYPE.
BusyPeriod = tuple[datetime, datetime, str]


def calendar_zone(collection: CollectionInfo, default: tzinfo) -> tzinfo:
    """
    The zone floating times and all-day events of C{collection} are read
    in when no request names one: its CALDAV:calendar-timezone, else
    C{default} (the user's zone: an all-day event is on that day where
    the user is, not in UTC).
    """
    return floating_zone(collection).tz if collection.timezone else default


def _merged(periods: list[BusyPeriod]) -> list[BusyPeriod]:
    """Periods of one FBTYPE that overlap or touch made one, sorted by start."""
    merged: list[BusyPeriod] = []
    for kind in sorted({k for _, _, k in periods}):
        current: list[datetime] | None = None
        for low, high, _ in sorted(p for p in periods if p[2] == kind):
            if current is not None and low <= current[1]:
                current[1] = max(current[1], high)
                continue
            if current is not None:
                merged.append((current[0], current[1], kind))
            current = [low, high]
        if current is not None:
            merged.append((current[0], current[1], kind))
    return sorted(merged)


def _series(parsed: CalendarObject, collection: CollectionInfo) -> dict[tuple[str, int], bytes]:
    """
    The months of a recurring event's instances around now, stored with
    it so that time-range queries need not expand it (L{gk.dav.calseries});
    none for other objects, or if computing them fails (the query then
    expands the event itself).
    """
    if not parsed.recurring or parsed.component != "VEVENT":
        return {}
    try:
        zone = floating_zone(collection)
        return months_when_written(parsed.calendar, zone, datetime.now(UTC))
    except Exception:
        log.failure("instances of {uid} not computed", uid=parsed.uid)
        return {}


class CalendarService(CollectionService):
    """Calendars and task lists; see L{CollectionService}."""

    kind = dav_store.CALENDAR
    size_precondition = f"{{{CALDAV}}}max-resource-size"

    def check(self, data: bytes, collection: CollectionInfo) -> CheckedObject:
        components = frozenset(collection.components) or DEFAULT_COMPONENTS
        try:
            parsed = parse_calendar_object(data, components)
        except InvalidCalendarData as e:
            raise InvalidObject(e.message, f"{{{CALDAV}}}{e.precondition}") from None
        return CheckedObject(
            data=parsed.data,
            uid=parsed.uid,
            component=parsed.component,
            start=parsed.start,
            end=parsed.end,
            recurring=parsed.recurring,
            summary=parsed.summary,
            emails=people(parsed.data),
            series=_series(parsed, collection),
        )

    def changed(self, account: Account, collection: str, name: str, action: str) -> Event:
        return CalendarChanged(account.id, collection, name, action)

    async def events_between(
        self, account: Account, start: datetime, end: datetime, component: str = "VEVENT"
    ) -> list[StoredObject]:
        """
        Candidates over all the account's calendars whose indexed bounds
        overlap [start, end] (free-busy, the assistant); callers expand
        recurrences to find the instances.
        """
        await self.ensure_defaults(account)
        return await self.db.read(
            lambda s: dav_store.events_between(s, account.id, start, end, component)
        )

    async def busy_times(
        self, account: Account, start: datetime, end: datetime, default_zone: tzinfo
    ) -> list[BusyPeriod]:
        """
        The account's busy time in [C{start}, C{end}) over all its
        calendars, as a CalDAV free-busy-query (RFC 4791 7.10) finds it in
        each: (start, end, FBTYPE) in UTC, clipped to the range, merged per
        type, sorted.  Opaque events count (TENTATIVE ones as
        BUSY-TENTATIVE), transparent and cancelled ones do not; stored
        VFREEBUSY periods count.  Floating times are read in each
        calendar's zone (L{calendar_zone} with C{default_zone}).

        Only times come out, never what the events are: this is what one
        user of the instance may learn of another's calendar (the
        assistant's search for a common free slot).
        """
        events = await self.events_between(account, start, end)
        published = await self.events_between(account, start, end, "VFREEBUSY")
        found = events + published
        if not found:
            return []
        zones = {c.id: calendar_zone(c, default_zone) for c in await self.collections(account)}

        def compute() -> list[BusyPeriod]:
            periods: list[BusyPeriod] = []
            for stored in found:
                zone = zones.get(stored.collection_id, default_zone)
                periods += object_busy(stored.data, start, end, zone)
            return _merged(periods)

        result: list[BusyPeriod] = await deferToThread(compute)
        return result


def object_busy(data: bytes, start: datetime, end: datetime, zone: tzinfo) -> list[BusyPeriod]:
    """
    The busy periods one stored calendar object contributes to
    L{gk.dav.calrender.free_busy} over [C{start}, C{end}) with floating
    times in C{zone}, by the same rules, clipped to the range, not merged
    (so that merging those of several objects gives its answer); none if
    it does not parse (data is checked on PUT: a bad old one is skipped).
    Blocking: it parses, or finds what it parsed before in
    L{gk.parsecache}.
    """
    parsed = parsecache.parsed_events(data)
    if parsed is None:
        return []
    key, events = parsed
    time_range = TimeRange(start, end)
    found: list[BusyPeriod] = []

    def add(low: datetime, high: datetime, kind: str) -> None:
        low, high = max(low, start), min(high, end)
        if low < high:
            found.append((low, high, kind))

    for _, instances in parsecache.instances_between(key, events, start, end, zone):
        for instance in instances:
            event = instance.component
            status = str(event.get("STATUS", "CONFIRMED")).upper()
            if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
                continue
            if status == "CANCELLED" or not instance_in_range(instance, time_range):
                continue
            add(instance.start, instance.end, "BUSY-TENTATIVE" if status == "TENTATIVE" else "BUSY")
    for component in events.freebusy:
        for low, high, kind in freebusy_periods(component, zone):
            if kind != "FREE":
                known = kind in ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")
                add(low, high, kind if known else "BUSY")
    return found
