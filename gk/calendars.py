"""
L{CalendarService}: a user's calendars and task lists (CalDAV collections),
their events, to-dos and journal entries as iCalendar text, and the
queries the assistant and free-busy need.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from twisted.logger import Logger

from gk.collections_service import CheckedObject, CollectionService, InvalidObject
from gk.dav.caldata import (
    DEFAULT_COMPONENTS,
    CalendarObject,
    InvalidCalendarData,
    parse_calendar_object,
)
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
