"""
What a calendar write will do, worked out from a tool call's arguments:
the new or changed iCalendar object, and the one line the user is asked
to approve when other people are concerned.

The consent function and the handler of each write tool both call the
same L{EventPlanner} method on the same arguments, so the line the user
approved describes exactly what is then done (computed again from the
event as stored at that moment).  Who may do what follows scheduling
(RFC 6638): the organizer (or the only person, for an event without
attendees) changes the event and its attendees are told; an attendee
can only answer (C{response}) or delete their copy, which declines it.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from icalendar import Calendar

from gk.app import GkApp
from gk.assistant.arguments import parse_day, parse_when
from gk.assistant.calendar_access import CalendarAccess, LoadedEvent
from gk.assistant.calendar_drafts import (
    Changes,
    Details,
    EventTimes,
    change_event,
    describe_times,
    exclude_occurrence,
    invited,
    new_event,
    read_addresses,
    read_rule,
    read_times,
    set_response,
    times_of,
)
from gk.assistant.calendar_events import event_components, event_ref
from gk.assistant.tools import JSON, ToolContext, ToolError
from gk.dav import itip
from gk.dav.calexpand import expand_series, split_series, to_utc
from gk.storage.accounts import Account

_DAY = datetime.timedelta(days=1)
_RESPONSES = {"accepted": "ACCEPTED", "declined": "DECLINED", "tentative": "TENTATIVE"}


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Plan:
    """What a change or delete will do, computed once for its consent and once to do it."""

    event: LoadedEvent
    #: The new version (None: the event is deleted).
    result: Calendar | None
    #: The one-line summary, or None when nobody else is concerned.
    summary: str | None


@dataclass(frozen=True)
class NewEvent:
    """What create_event will store, and where."""

    calendar: str
    body: Calendar
    #: The consent line, or None for an event without attendees.
    summary: str | None


class EventPlanner:
    """See the module docstring."""

    def __init__(self, app: GkApp, access: CalendarAccess) -> None:
        self.app = app
        self.access = access

    async def create(self, context: ToolContext, arguments: JSON) -> NewEvent:
        """A new event from create_event's arguments."""
        account = context.account
        collection = await self.access.calendar(account, arguments.get("calendar"))
        times = read_times(
            context, arguments["start"], arguments.get("end"),
            arguments.get("duration_minutes"), arguments.get("all_day"),
        )  # fmt: skip
        text = arguments.get("recurrence")
        rule = read_rule(text, times.start) if text else None
        attendees = [
            a for a in read_addresses(arguments.get("attendees", [])) if a != account.email
        ]
        summary = arguments["summary"].strip()
        if not summary:
            raise ToolError("summary (the event's title) is empty")
        details = Details(summary, arguments.get("location"), arguments.get("description"))
        calendar = new_event(
            str(uuid.uuid4()), account.email, times, details, attendees, rule, context.now()
        )
        consent = None
        if attendees:
            consent = (
                f"Invite {', '.join(attendees)} to “{_excerpt(summary)}” on "
                f"{describe_times(times, context.timezone)}{_repeats(text)}"
                f"{_place(details.location)} (calendar {collection.name!r})"
                f"{_about(details.description)}"
            )
        return NewEvent(collection.name, calendar, consent)

    async def _organizer(self, account: Account, event: LoadedEvent) -> tuple[str, bool]:
        """The event's ORGANIZER ("" for none) and whether it is the account's own."""
        info = itip.scheduling_info(event.calendar)
        organizer = info.organizer if info is not None else ""
        if not organizer:
            return "", True
        return organizer, await self.app.accounts.may_send_as(account, organizer)

    async def _own_attendee(self, account: Account, event: LoadedEvent) -> str | None:
        info = itip.scheduling_info(event.calendar)
        if info is None:
            return None
        if account.email in info.attendees:
            return account.email
        owned = await self.app.accounts.owned_addresses(account, info.attendees)
        return next((a for a in info.attendees if a in owned), None)

    async def update(self, context: ToolContext, arguments: JSON) -> Plan:
        """
        What update_event's arguments do to the event (see the module
        docstring); the consent line when the event has attendees before
        or after, or for an answer to an invitation.
        """
        account = context.account
        event = await self.access.load(account, event_ref(arguments["event_id"]), context.timezone)
        organizer, mine = await self._organizer(account, event)
        title = _excerpt(_title(event))
        when = _when(event, context)
        response = arguments.get("response")
        changing = [k for k in arguments if k not in ("event_id", "response")]
        if not changing and response is None:
            raise ToolError("nothing to change: give the fields to change")
        if not mine:
            if changing:
                raise ToolError(
                    f"{organizer} organizes this event: only they can change it; "
                    "you can answer the invitation with response"
                )
            assert response is not None
            address = await self._own_attendee(account, event)
            if address is None:
                raise ToolError("you are not among this event's attendees")
            result = _copy(event.calendar)
            set_response(result, address, _RESPONSES[response], context.now())
            return Plan(event, result, f"Answer “{response}” to {organizer} for “{title}” ({when})")
        if response is not None:
            raise ToolError("you organize this event: response is for invitations from others")
        changes, said = self._changes(context, event, arguments)
        before = invited(event.calendar, account.email)
        result = change_event(event.calendar, account.email, changes, context.now())
        after = invited(result, account.email)
        summary = None
        if before or after:
            told = sorted(set(before) | set(after))
            summary = (
                f"Change “{title}” ({when}): {'; '.join(said)}; "
                f"{', '.join(told)} will be sent the change"
            )
        return Plan(event, result, summary)

    def _changes(
        self, context: ToolContext, event: LoadedEvent, arguments: JSON
    ) -> tuple[Changes, list[str]]:
        """What the arguments change, and those changes said for the consent line."""
        components = event_components(event.calendar)
        master, _ = split_series(components)
        current = times_of(master if master is not None else components[0])
        said: list[str] = []
        times: EventTimes | None = None
        time_keys = ("start", "end", "duration_minutes", "all_day")
        if any(k in arguments for k in time_keys):
            times = read_times(
                context, arguments.get("start"), arguments.get("end"),
                arguments.get("duration_minutes"), arguments.get("all_day"), current,
            )  # fmt: skip
            said.append(f"time → {describe_times(times, context.timezone)}")
        details = Details(
            arguments.get("summary"), arguments.get("location"), arguments.get("description")
        )
        if details.summary is not None:
            if not details.summary.strip():
                raise ToolError("summary (the event's title) cannot be empty")
            said.append(f"title → “{_excerpt(details.summary)}”")
        if details.location is not None:
            said.append(
                f"location → “{_excerpt(details.location)}”" if details.location else "no location"
            )
        if details.description is not None:
            said.append(
                f"description → “{_excerpt(details.description)}”"
                if details.description
                else "no description"
            )
        rule, drop = None, False
        if "recurrence" in arguments:
            text = arguments["recurrence"].strip()
            if text:
                start = times.start if times else (current.start if current else None)
                if start is None:
                    raise ToolError("this event has no start to repeat from")
                rule = read_rule(text, start)
                said.append(f"repeats {rule.to_ical().decode()}")
            else:
                drop = True
                said.append("no longer repeats")
        attendees = self._attendees(event, context.account, arguments, said)
        return Changes(details, times, attendees, rule, drop), said

    def _attendees(
        self, event: LoadedEvent, account: Account, arguments: JSON, said: list[str]
    ) -> list[str] | None:
        if not any(k in arguments for k in ("attendees", "add_attendees", "remove_attendees")):
            return None
        current = invited(event.calendar, account.email)
        if "attendees" in arguments:
            if "add_attendees" in arguments or "remove_attendees" in arguments:
                raise ToolError("give attendees (the whole list) or add/remove_attendees, not both")
            wanted = read_addresses(arguments["attendees"])
        else:
            wanted = list(current)
            for address in read_addresses(arguments.get("add_attendees", []), "add_attendees"):
                if address not in wanted:
                    wanted.append(address)
            removed = read_addresses(arguments.get("remove_attendees", []), "remove_attendees")
            strangers = [a for a in removed if a not in current]
            if strangers:
                raise ToolError(f"not attendees of this event: {', '.join(strangers)}")
            wanted = [a for a in wanted if a not in removed]
        wanted = [a for a in wanted if a != account.email]
        added = [a for a in wanted if a not in current]
        dropped = [a for a in current if a not in wanted]
        if added:
            said.append(f"invite {', '.join(added)}")
        if dropped:
            said.append(f"uninvite {', '.join(dropped)} (they are sent a cancellation)")
        return wanted

    async def delete(self, context: ToolContext, arguments: JSON) -> Plan:
        """
        What delete_event's arguments do: the event gone (C{result} None),
        or one occurrence taken out of it; the consent line, always.
        """
        account = context.account
        event = await self.access.load(account, event_ref(arguments["event_id"]), context.timezone)
        organizer, mine = await self._organizer(account, event)
        title = _excerpt(_title(event))
        text = arguments.get("occurrence")
        what = f"“{title}” ({_when(event, context)}) from calendar {event.ref.calendar!r}"
        others = invited(event.calendar, account.email) if mine else []
        if text is None:
            summary = f"Delete {what}"
            if others:
                summary += f"; {', '.join(others)} will be sent a cancellation"
            elif not mine and await self._own_attendee(account, event):
                summary += f"; {organizer} will be told you decline"
            return Plan(event, None, summary)
        if not mine:
            raise ToolError(
                f"{organizer} organizes this event: decline it with update_event response, "
                "or delete the whole event"
            )
        occurrence = self._occurrence(context, event, text)
        result = exclude_occurrence(event.calendar, occurrence, context.now())
        summary = f"Delete the occurrence of {_shown(occurrence, context)} of {what}"
        if others:
            summary += f"; {', '.join(others)} will be sent the change"
        return Plan(event, result, summary)

    def _occurrence(
        self, context: ToolContext, event: LoadedEvent, text: str
    ) -> datetime.date | datetime.datetime:
        """The occurrence C{text} names (as list_events gave it), checked to be one."""
        components = event_components(event.calendar)
        master, _ = split_series(components)
        start = times_of(master) if master is not None else None
        if master is None or start is None or not any(k in master for k in ("RRULE", "RDATE")):
            raise ToolError("this event does not repeat: delete it without occurrence")
        wanted: datetime.date | datetime.datetime
        if start.all_day:
            wanted = parse_day(text, context, "occurrence")
        else:
            wanted = parse_when(text, context, "occurrence")
        moment = to_utc(wanted, event.zone)
        expansion = expand_series(
            components, moment - 2 * _DAY, moment + 2 * _DAY, floating_tz=event.zone
        )
        for instance in expansion.instances:
            rid = instance.recurrence_id
            if rid is not None and to_utc(rid, event.zone) == moment:
                return rid
        raise ToolError(
            f"{text!r} is not an occurrence of this event: give the occurrence "
            "list_events shows for it"
        )


def _shown(value: datetime.date | datetime.datetime, context: ToolContext) -> str:
    if isinstance(value, datetime.datetime):
        local = (value if value.tzinfo else value.replace(tzinfo=context.timezone)).astimezone(
            context.timezone
        )
        return f"{local:%a} {local.day} {local:%b %Y %H:%M}"
    return f"{value:%a} {value.day} {value:%b %Y}"


def _title(event: LoadedEvent) -> str:
    info = itip.scheduling_info(event.calendar)
    return (info.summary if info is not None else "") or "(no title)"


def _when(event: LoadedEvent, context: ToolContext) -> str:
    components = event_components(event.calendar)
    master, _ = split_series(components)
    times = times_of(master if master is not None else components[0])
    if times is None:
        return "no time"
    shown = describe_times(times, context.timezone)
    return shown + (", repeating" if master is not None and "RRULE" in master else "")


def _copy(calendar: Calendar) -> Calendar:
    return itip.parse(itip.serialize(calendar))


def _repeats(text: str | None) -> str:
    return f", repeating {text.strip()}" if text else ""


def _place(location: str | None) -> str:
    return f" at “{_excerpt(location)}”" if location else ""


def _about(description: str | None) -> str:
    return f" — “{_excerpt(description)}”" if description else ""
