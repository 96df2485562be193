"""
Where scheduling messages go and how they are written, for
L{gk.dav.scheduling.Scheduler}: the scheduling inbox's service, the route
of a calendar user address, the read-change-write of a calendar copy that
tolerates concurrent writers, and iMIP mail sent through the outbound
queue.

Everything is written through the collection services (so every change
is checked, indexed and announced on the event bus), never through the
DAV layer's hooks: nothing written here is scheduled again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from icalendar import Calendar

from gk.accounts import AccountService, InvalidAddress, Resolution
from gk.calendars import CalendarService
from gk.collections_service import CheckedObject, InvalidObject
from gk.dav import imip, itip
from gk.dav.caldata import InvalidCalendarData, parse_calendar_object
from gk.dav.itip import ITipError
from gk.dav.xmlbody import CALDAV
from gk.queue import DeliveryQueue
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo
from gk.storage.mailstore import MailStore

#: The scheduling inbox every account has (see L{dav_store.DEFAULT_COLLECTIONS}).
INBOX = "inbox"
#: The calendar new invitations go to when the account has it.
DEFAULT_CALENDAR = "calendar"
_INBOX_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"})


class ScheduleInboxService(CalendarService):
    """
    The scheduling inbox collections (RFC 6638 2.2): iTIP messages, stored
    with their METHOD (which a calendar object may not have) and indexed
    as the calendar object they describe.
    """

    kind = dav_store.SCHEDULE_INBOX

    def check(self, data: bytes, collection: CollectionInfo) -> CheckedObject:
        """
        Index an iTIP message as the object it describes where it can be;
        messages need not be complete objects (a REPLY may lack DTSTART,
        RFC 5546 3.2.3), so those are kept with their UID and type only.
        """
        try:
            calendar = itip.parse(data)
        except ITipError as e:
            raise InvalidObject(str(e), f"{{{CALDAV}}}valid-calendar-data") from None
        calendar.pop("METHOD", None)
        try:
            parsed = parse_calendar_object(itip.serialize(calendar), _INBOX_COMPONENTS)
        except InvalidCalendarData:
            components = [c for c in calendar.subcomponents if c.name in _INBOX_COMPONENTS]
            uid = str(components[0].get("UID", "")).strip() if components else ""
            if not uid:
                message = "no component with a UID"
                raise InvalidObject(message, f"{{{CALDAV}}}valid-calendar-data") from None
            return CheckedObject(data=data, uid=uid, component=str(components[0].name))
        return CheckedObject(
            data=data,
            uid=parsed.uid,
            component=parsed.component,
            start=parsed.start,
            end=parsed.end,
            recurring=parsed.recurring,
            summary=parsed.summary,
        )


@dataclass(frozen=True)
class Route:
    """
    Where a calendar user's messages go: to exactly one local C{account}
    by CalDAV, or by C{mail} (outside addresses; an alias of a local
    domain that reaches several mailboxes or leaves gk).
    """

    account: Account | None
    mail: Resolution | None


def parse_or_none(data: bytes | None) -> Calendar | None:
    if data is None:
        return None
    try:
        return itip.parse(data)
    except ITipError:
        return None


def new_name() -> str:
    """A fresh resource name (UIDs may hold anything: they are not used as names)."""
    return f"{secrets.token_hex(16)}.ics"


class ScheduleDelivery:
    """See the module docstring."""

    #: Attempts at a read-change-write that lost a race with another writer.
    RETRIES = 5

    def __init__(
        self,
        calendars: CalendarService,
        inbox: ScheduleInboxService,
        accounts: AccountService,
        queue: DeliveryQueue,
        mailstore: MailStore,
        hostname: str,
    ) -> None:
        self.calendars = calendars
        self.inbox = inbox
        self.accounts = accounts
        self.queue = queue
        self.mailstore = mailstore
        self.hostname = hostname

    async def route(self, address: str) -> Route | None:
        """Where messages for C{address} go; L{None} for nobody (SCHEDULE-STATUS 3.7)."""
        try:
            resolution = await self.accounts.resolve(address)
        except InvalidAddress:
            return None
        if not resolution.deliverable:
            return None
        if len(resolution.local) == 1 and not resolution.remote:
            return Route(resolution.local[0], None)
        return Route(None, resolution)

    async def send_mail(
        self,
        account: Account,
        sender: str,
        sender_name: str,
        route: Resolution,
        recipient: str,
        message: Calendar,
        subject: str,
        text: str,
        now: datetime,
    ) -> None:
        """
        Mail the iTIP C{message} by iMIP from C{account} as its address
        C{sender} to C{recipient}: queued for the outside (and DKIM-signed
        there), stored for local mailboxes.
        """
        mail = imip.build_message(
            method=str(message.get("METHOD")),
            calendar=itip.serialize(message),
            sender=sender,
            sender_name=sender_name,
            recipients=[recipient],
            subject=subject,
            text=text,
            hostname=self.hostname,
            now=now,
        )
        if route.remote:
            await self.queue.enqueue(sender, list(route.remote), mail, user_id=account.id)
        for local in route.local:
            await self.mailstore.deliver(local, mail)

    async def to_inbox(self, account: Account, uid: str, data: bytes) -> None:
        """
        File an iTIP message in the account's scheduling inbox.  A
        collection holds each UID once: a message about an event replaces
        the one before it (clients read the latest state of the exchange).
        """
        for _ in range(self.RETRIES):
            found = await self.inbox.db.read(
                lambda s: dav_store.find_by_uid_for_user(
                    s, account.id, uid, dav_store.SCHEDULE_INBOX
                )
            )
            collection, name = found[0] if found else (INBOX, new_name())
            try:
                await self.inbox.put(account, collection, name, data, if_none_match=not found)
                return
            except (dav_store.PreconditionFailed, dav_store.UidConflict):
                continue

    async def update_copy(
        self,
        account: Account,
        uid: str,
        component: str,
        change: Callable[[Calendar | None], Calendar | None],
        create: bool,
    ) -> bool:
        """
        Read-change-write the account's calendar copy of event C{uid}:
        C{change} gets the copy (L{None} if there is none) and returns what
        to store, or L{None} for no change.  A copy is created (in the
        default calendar for C{component}) only when C{create}.  A write
        that loses a race is tried again with what won.  Whether it wrote.

        @raise dav_store.PreconditionFailed: lost the race L{RETRIES} times.
        @raise dav_store.NoSuchCollection: no calendar to create it in.
        @raise InvalidObject, QuotaExceeded: as L{CalendarService.put}.
        """
        for _ in range(self.RETRIES):
            found = await self.calendars.db.read(
                lambda s: dav_store.find_by_uid_for_user(s, account.id, uid)
            )
            etag: str | None = None
            previous: Calendar | None = None
            if found:
                collection, name = found[0]
                try:
                    stored = await self.calendars.get(account, collection, name)
                except dav_store.NoSuchObject:
                    continue
                previous, etag = parse_or_none(stored.data), stored.etag
                if previous is None:
                    return False
            elif create:
                collection, name = await self.default_calendar(account, component), new_name()
            else:
                return False
            updated = change(previous)
            if updated is None:
                return False
            data = itip.serialize(updated)
            try:
                await self.calendars.put(
                    account, collection, name, data, if_match=etag, if_none_match=etag is None
                )
                return True
            except (dav_store.PreconditionFailed, dav_store.UidConflict):
                continue
        raise dav_store.PreconditionFailed(f"{uid}: changed by others {self.RETRIES} times")

    async def write_status(
        self, account: Account, collection: str, name: str, uid: str, statuses: dict[str, str]
    ) -> None:
        """
        Put SCHEDULE-STATUS on the ATTENDEEs of the organizer's stored
        copy; nothing when it is gone or is another event now.
        """
        for _ in range(self.RETRIES):
            try:
                stored = await self.calendars.get(account, collection, name)
            except dav_store.NoSuchObject:
                return
            calendar = parse_or_none(stored.data)
            if calendar is None or stored.uid != uid:
                return
            if not itip.set_schedule_status(calendar, statuses):
                return
            data = itip.serialize(calendar)
            try:
                await self.calendars.put(account, collection, name, data, if_match=stored.etag)
                return
            except dav_store.PreconditionFailed:
                continue

    async def default_calendar(self, account: Account, component: str) -> str:
        """Where a new invitation goes: C{calendar}, else the first calendar taking it."""
        collections = await self.calendars.collections(account)
        taking = [c for c in collections if not c.components or component in c.components]
        for collection in taking:
            if collection.name == DEFAULT_CALENDAR:
                return collection.name
        if not taking:
            raise dav_store.NoSuchCollection(f"{account.email} has no calendar for {component}")
        return taking[0].name


__all__ = [
    "DEFAULT_CALENDAR",
    "INBOX",
    "Route",
    "ScheduleDelivery",
    "ScheduleInboxService",
    "new_name",
    "parse_or_none",
]
