"""
What the DAV method handlers share: the services they act through
(L{DavContext}), limits, and the seam implicit scheduling (RFC 6638)
plugs into (L{Scheduler}, L{OutboxHandler}; implemented by
L{gk.dav.scheduling.Scheduler}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from gk.calendars import CalendarService
from gk.collections_service import CollectionService
from gk.contacts import ContactService
from gk.dav.schedule_delivery import ScheduleInboxService
from gk.storage.accounts import Account

if TYPE_CHECKING:
    from gk.accounts import AccountService
    from gk.app import GkApp

#: Largest XML request body (PROPFIND, PROPPATCH, MKCOL, REPORT).
MAX_XML_BODY = 1024 * 1024

#: Most dead properties one collection keeps, and the size of one.
MAX_DEAD_PROPERTIES = 64
MAX_DEAD_PROPERTY_SIZE = 16 * 1024


class Scheduler(Protocol):
    """
    Implicit scheduling (RFC 6638), called after a calendar object's
    change has been stored; a failure here is logged and never undoes
    the change or changes the answer.
    """

    async def after_put(
        self,
        account: Account,
        collection_name: str,
        name: str,
        old_data: bytes | None,
        new_data: bytes,
    ) -> None:
        """C{name} in calendar C{collection_name} was created (no C{old_data}) or replaced."""

    async def after_delete(
        self, account: Account, collection_name: str, name: str, old_data: bytes
    ) -> None:
        """C{name} was deleted from calendar C{collection_name}."""


@runtime_checkable
class OutboxHandler(Protocol):
    """
    An optional extension of a L{Scheduler}: a POST to the schedule outbox
    (RFC 6638 5, a VFREEBUSY request).  Without it, POST answers 501.
    """

    async def outbox_post(self, account: Account, body: bytes) -> bytes:
        """
        The C{CALDAV:schedule-response} body (answered 200).

        @raise gk.dav.scheduling.OutboxError: answered with its status and
            precondition.
        """


@dataclass
class DavContext:
    """
    The services behind the DAV resource.

    @ivar scheduler: implicit scheduling, or L{None} (no scheduling yet).
    @ivar max_xml_body: the byte limit of XML request bodies.
    """

    accounts: AccountService
    calendars: CalendarService
    contacts: ContactService
    inbox: ScheduleInboxService
    scheduler: Scheduler | None = None
    max_xml_body: int = MAX_XML_BODY

    @classmethod
    def from_app(
        cls,
        app: GkApp,
        scheduler: Scheduler | None = None,
        inbox: ScheduleInboxService | None = None,
    ) -> DavContext:
        """The app's services; C{inbox} shared with the scheduler when it has one."""
        if inbox is None:
            inbox = ScheduleInboxService(app.db, app.events, app.calendars.max_resource_size)
        return cls(app.accounts, app.calendars, app.contacts, inbox, scheduler)

    def service(self, kind: str) -> CollectionService:
        """The service of collections of C{kind} (C{calendar} or C{addressbook})."""
        return self.calendars if kind == "calendar" else self.contacts

    def outbox_handler(self) -> OutboxHandler | None:
        """The scheduler, if it answers POSTs to the outbox."""
        scheduler = self.scheduler
        return scheduler if isinstance(scheduler, OutboxHandler) else None
