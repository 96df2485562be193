"""
What the calendar pages read from and do to the signed-in user's
calendars, through the very code the assistant's calendar tools use:

  - occurrences come from L{CalendarAccess.occurrences} (the expansion
    list_events shows), an event from L{CalendarAccess.load} and
    L{describe_object};
  - every write is the assistant's own tool (create_event, update_event,
    delete_event) run through the tool registry: the same checks, the
    same iCalendar, stored through L{CalendarService} and then handed to
    the CalDAV L{Scheduler}, so gk users find invitations in their
    calendar (NEEDS-ACTION) and others get iMIP mail.  Submitting the
    form is the user's consent to exactly what it says, so the call is
    approved as it is prepared.

Every lookup is within the user's own calendars: another user's event
answers 404, exactly as one that does not exist.

The user's time zone is the server's, C{[assistant] timezone} (gk has
no per-user zone yet); L{CalendarActions.zone_of} is the one place that
decides it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gk.assistant.calendar_access import CalendarAccess, takes_events
from gk.assistant.calendar_events import EventRef, Occurrence, describe_object
from gk.assistant.tools import JSON, ToolContext, ToolError
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo
from gk.web.page import PageError

if TYPE_CHECKING:
    from gk.service import GkService


class Refused(Exception):
    """A write the calendar tools refused; C{message} says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ShownEvent:
    """One of the user's events as its edit page shows it."""

    ref: EventRef
    #: The calendar's display name.
    calendar_name: str
    #: L{describe_object}'s description, times in the user's zone.
    described: JSON
    #: Whether the user may change it (organizes it, or nobody else is in it).
    mine: bool


class CalendarActions:
    """See the module docstring."""

    def __init__(self, tree: GkService) -> None:
        self.app = tree.app
        self.access = CalendarAccess(tree.app, tree.scheduler)
        self.tools = tree.tools
        self.zone = ZoneInfo(tree.app.config.assistant.timezone)

    def zone_of(self, account: Account) -> ZoneInfo:
        """The zone the user's calendar is shown and written in."""
        return self.zone

    def today(self, account: Account) -> datetime.date:
        return datetime.datetime.now(self.zone_of(account)).date()

    async def calendars(self, account: Account) -> list[CollectionInfo]:
        """The user's calendars that take events, the default one first."""
        default = await self.default_calendar(account)
        found = [c for c in await self.access.collections(account) if takes_events(c)]
        return sorted(found, key=lambda c: (c.name != default, c.name))

    async def default_calendar(self, account: Account) -> str:
        """The calendar new events go to unless the user picks another ("" if none)."""
        try:
            return (await self.access.calendar(account, None)).name
        except ToolError:
            return ""

    async def occurrences(
        self, account: Account, start: datetime.datetime, end: datetime.datetime
    ) -> list[Occurrence]:
        """Every occurrence in [C{start}, C{end}) over all the user's calendars."""
        return await self.access.occurrences(account, start, end, self.zone_of(account))

    async def event(self, account: Account, ref: EventRef) -> ShownEvent:
        """
        The user's event C{ref}.

        @raise PageError: 404, the user has no such event.
        """
        zone = self.zone_of(account)
        try:
            loaded = await self.access.load(account, ref, zone)
            described = describe_object(ref, loaded.calendar, zone, loaded.zone, [account.email])
        except ToolError:
            raise PageError(404, "There is no such event in your calendars.") from None
        organizer = described["organizer"]
        mine = organizer is None or await self.app.accounts.may_send_as(account, organizer["email"])
        name = loaded.collection.displayname or loaded.collection.name
        return ShownEvent(ref, name, described, mine)

    async def run(self, account: Account, tool: str, arguments: JSON) -> JSON:
        """
        Run the calendar tool C{tool} for the user, approved (see the
        module docstring); its structured answer.

        @raise Refused: the tool refused (the message says why).
        """
        context = ToolContext(account, self.zone_of(account))
        try:
            prepared = await self.tools.prepare(context, tool, arguments)
        except ToolError as e:
            raise Refused(_for_people(str(e))) from None
        prepared.approve()
        outcome = await self.tools.run(prepared)
        if outcome.is_error or outcome.content is None:
            raise Refused(_for_people(outcome.text))
        return outcome.content


def _for_people(message: str) -> str:
    """A tool's refusal as a sentence for the form (the tools write for models)."""
    text = message.strip()
    for prefix in ("invalid arguments for create_event: ", "invalid arguments for update_event: "):
        text = text.removeprefix(prefix)
    text = text.replace("list_events gives the event ids", "reload the calendar")
    text = text.replace("; give e-mail addresses (search_contacts finds a person's)", "")
    return (text[:1].upper() + text[1:]).rstrip(".") + "."
