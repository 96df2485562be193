"""
The calendar tools' one way to the user's calendars: find a calendar or
an event of the calling user, and store or delete an event exactly as
CalDAV does it (through L{CalendarService}, then the L{Scheduler} told,
as L{gk.dav.writes} tells it after a PUT or DELETE), so that DAV clients
see what the assistant did, CalendarChanged fires, and attendees are
invited, updated or cancelled the same way.

Everything is looked up in the caller's own collections: an event id of
another user names nothing here, and is answered as an id that never
existed.  Storage errors become L{ToolError}s that say what to do.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from icalendar import Calendar
from twisted.internet.threads import deferToThread

from gk.app import GkApp
from gk.assistant.calendar_events import (
    EventRef,
    Occurrence,
    Source,
    event_components,
    expand_instances,
    parse_calendar,
)
from gk.assistant.tools import ToolError
from gk.calendars import calendar_zone
from gk.collections_service import InvalidObject, QuotaExceeded
from gk.dav import itip
from gk.dav.context import Scheduler
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo, StoredObject

#: The calendar new events go to when the user names none and has it.
DEFAULT_CALENDAR = "calendar"

#: SCHEDULE-STATUS codes (RFC 6638 3.2.9) as the tools report them.
DELIVERY = {
    "1.1": "sent by e-mail",
    "1.2": "delivered to their calendar",
    "3.7": "no such calendar user",
    "5.1": "delivery failed",
}


@dataclass(frozen=True)
class LoadedEvent:
    """One of the caller's events, as stored and parsed."""

    ref: EventRef
    collection: CollectionInfo
    stored: StoredObject
    calendar: Calendar
    #: The zone its floating times are read in.
    zone: datetime.tzinfo


def takes_events(collection: CollectionInfo) -> bool:
    return not collection.components or "VEVENT" in collection.components


class CalendarAccess:
    """See the module docstring."""

    def __init__(self, app: GkApp, scheduler: Scheduler) -> None:
        self.app = app
        self.calendars = app.calendars
        self.scheduler = scheduler

    async def collections(self, account: Account) -> list[CollectionInfo]:
        """The account's calendars (not its scheduling inbox)."""
        return await self.calendars.collections(account)

    async def calendar(self, account: Account, name: str | None) -> CollectionInfo:
        """
        The calendar named C{name} that takes events, or the default one
        for L{None}: L{DEFAULT_CALENDAR}, else the first that takes events.

        @raise ToolError: no such calendar, or it holds only tasks.
        """
        collections = await self.collections(account)
        event_calendars = [c for c in collections if takes_events(c)]
        if name is None:
            for collection in event_calendars:
                if collection.name == DEFAULT_CALENDAR:
                    return collection
            if event_calendars:
                return event_calendars[0]
            raise ToolError("you have no calendar for events")
        for collection in collections:
            if collection.name == name or collection.displayname == name:
                if not takes_events(collection):
                    raise ToolError(f"calendar {name!r} holds tasks, not events")
                return collection
        known = ", ".join(c.name for c in event_calendars) or "none"
        raise ToolError(f"you have no calendar {name!r}; your calendars are: {known}")

    async def occurrences(
        self,
        account: Account,
        start: datetime.datetime,
        end: datetime.datetime,
        default_zone: datetime.tzinfo,
        only: str | None = None,
    ) -> list[Occurrence]:
        """
        Every occurrence of the account's events (of calendar C{only}, if
        given) that overlaps [C{start}, C{end}) (aware), recurring events
        expanded, floating times read in each calendar's zone
        (L{calendar_zone} with C{default_zone}); sorted by start, then
        event id.  The expansion runs in a thread (what list_events and
        the web UI's calendar views show).
        """
        zones = {
            c.id: (c.name, calendar_zone(c, default_zone)) for c in await self.collections(account)
        }
        found = await self.calendars.events_between(account, start, end)
        sources = [
            Source(EventRef(zones[o.collection_id][0], o.name), o.data, zones[o.collection_id][1])
            for o in found
            if o.collection_id in zones and only in (None, zones[o.collection_id][0])
        ]
        if not sources:
            return []
        occurrences: list[Occurrence] = await deferToThread(expand_instances, sources, start, end)
        return occurrences

    async def load(
        self, account: Account, ref: EventRef, default_zone: datetime.tzinfo
    ) -> LoadedEvent:
        """
        The caller's event C{ref}.

        @raise ToolError: there is none (whoever else might have one).
        """
        missing = ToolError(f"there is no event {ref.id!r}; list_events gives the event ids")
        try:
            collection = await self.calendars.collection(account, ref.calendar)
            stored = await self.calendars.get(account, ref.calendar, ref.name)
        except (dav_store.NoSuchCollection, dav_store.NoSuchObject, dav_store.InvalidValue):
            raise missing from None
        calendar = parse_calendar(stored.data)
        if calendar is None or not event_components(calendar):
            raise missing
        zone = calendar_zone(collection, default_zone)
        return LoadedEvent(ref, collection, stored, calendar, zone)

    async def create(
        self, account: Account, collection: str, name: str, calendar: Calendar
    ) -> None:
        """Store a new event, then schedule it (invitations) as a CalDAV PUT would."""
        data = itip.serialize(calendar)
        try:
            result = await self.calendars.put(account, collection, name, data, if_none_match=True)
        except Exception as e:
            raise _refusal(e) from None
        await self.scheduler.after_put(account, collection, name, None, result.data)

    async def replace(self, account: Account, event: LoadedEvent, calendar: Calendar) -> None:
        """
        Store a new version of C{event} if nobody changed it since it was
        loaded, then schedule the change (updates, cancellations, a reply).
        """
        data = itip.serialize(calendar)
        ref = event.ref
        try:
            result = await self.calendars.put(
                account, ref.calendar, ref.name, data, if_match=event.stored.etag
            )
        except Exception as e:
            raise _refusal(e) from None
        await self.scheduler.after_put(
            account, ref.calendar, ref.name, event.stored.data, result.data
        )

    async def delete(self, account: Account, event: LoadedEvent) -> None:
        """Delete C{event} if unchanged since loaded, then schedule it (cancel or decline)."""
        ref = event.ref
        try:
            await self.calendars.delete(account, ref.calendar, ref.name, if_match=event.stored.etag)
        except Exception as e:
            raise _refusal(e) from None
        await self.scheduler.after_delete(account, ref.calendar, ref.name, event.stored.data)

    async def deliveries(self, account: Account, ref: EventRef) -> list[dict[str, str]]:
        """
        What became of the invitations of the stored event: each attendee
        with the delivery the scheduler wrote back (SCHEDULE-STATUS).
        """
        try:
            stored = await self.calendars.get(account, ref.calendar, ref.name)
        except dav_store.DavStoreError:
            return []
        calendar = parse_calendar(stored.data)
        if calendar is None:
            return []
        found: dict[str, str] = {}
        for component in event_components(calendar):
            for prop in itip.calendar_users(component, "ATTENDEE"):
                address = itip.address_of(prop)
                status = str(prop.params.get("SCHEDULE-STATUS", "")).split(";")[0].strip()
                if address and status and address not in found:
                    found[address] = DELIVERY.get(status, status)
        return [{"email": a, "delivery": d} for a, d in found.items()]


def _refusal(error: Exception) -> Exception:
    """A storage error as the L{ToolError} the model reads; others unchanged."""
    if isinstance(error, InvalidObject):
        return ToolError(f"the event cannot be stored: {error}")
    if isinstance(error, QuotaExceeded):
        return ToolError("the event cannot be stored: the user's storage quota is full")
    if isinstance(error, dav_store.PreconditionFailed):
        return ToolError("the event changed meanwhile (another program?): look it up again")
    if isinstance(error, dav_store.NoSuchObject):
        return ToolError("the event is gone (deleted meanwhile?)")
    if isinstance(error, dav_store.NoSuchCollection):
        return ToolError("that calendar no longer exists")
    if isinstance(error, dav_store.UidConflict):
        return ToolError("an event with the same UID exists already")
    return error
