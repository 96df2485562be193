"""
The assistant's calendar tools: list_calendars, list_events,
create_event, update_event, delete_event and find_free_slots.

They work on the calling user's CalDAV calendars through
L{CalendarAccess} (the same service and scheduler a CalDAV client's PUT
and DELETE go through), so what the assistant does is what a calendar
program would have done: DAV clients see it, and attendees are invited,
updated and cancelled the same way (gk users in their calendar and
scheduling inbox, NEEDS-ACTION; others by iMIP mail through the outbound
queue).

Consent: creating an event with attendees, changing or answering one
that has attendees (before or after the change), and every delete are
shown to the user as one line that says exactly what will happen (who
is invited or told, the title, the time in the user's zone) and run
only once approved; an event of the user's own, with nobody else in
it, is created or changed without asking.  The summary and the action
are computed from the same arguments by the same L{EventPlanner} code.

Conventions for models are in each tool's description: times RFC 3339
(no offset: the user's zone), all-day events as dates with an inclusive
last day, event ids as list_events gives them (C{<calendar>/<name>}).
"""

from __future__ import annotations

import datetime

from gk.app import GkApp
from gk.assistant import calendar_slots
from gk.assistant.arguments import parse_when, rfc3339
from gk.assistant.calendar_access import CalendarAccess
from gk.assistant.calendar_drafts import read_addresses
from gk.assistant.calendar_events import (
    EventRef,
    describe_instance,
    describe_object,
)
from gk.assistant.calendar_plans import EventPlanner
from gk.assistant.calendar_schemas import (
    CREATE_EVENT,
    DELETE_EVENT,
    FIND_FREE_SLOTS,
    LIST_CALENDARS,
    LIST_EVENTS,
    SLOTS_SCHEMA,
    UPDATE_EVENT,
    WRITE_SCHEMA,
)
from gk.assistant.tools import (
    JSON,
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolResult,
    render,
)
from gk.dav.scheduling import Scheduler

#: Longest range list_events and find_free_slots look at.
MAX_RANGE = datetime.timedelta(days=366)
MAX_SLOT_RANGE = datetime.timedelta(days=62)
_DAY = datetime.timedelta(days=1)


def calendar_tools(app: GkApp, scheduler: Scheduler) -> list[Tool]:
    """The calendar tools, acting through C{app}'s calendars and C{scheduler}."""
    access = CalendarAccess(app, scheduler)
    tools = _CalendarTools(app, access, EventPlanner(app, access))
    read = ToolAnnotations(read_only=True, idempotent=True)
    return [
        Tool(
            "list_calendars", "List calendars", LIST_CALENDARS.description,
            LIST_CALENDARS.schema, tools.list_calendars, read, LIST_CALENDARS.output,
        ),
        Tool(
            "list_events", "List events", LIST_EVENTS.description, LIST_EVENTS.schema,
            tools.list_events, read, LIST_EVENTS.output,
        ),
        Tool(
            "create_event", "Create an event", CREATE_EVENT.description, CREATE_EVENT.schema,
            tools.create_event, ToolAnnotations(read_only=False, open_world=True), WRITE_SCHEMA,
            tools.consent_create,
        ),
        Tool(
            "update_event", "Change an event", UPDATE_EVENT.description, UPDATE_EVENT.schema,
            tools.update_event, ToolAnnotations(read_only=False, open_world=True), WRITE_SCHEMA,
            tools.consent_update,
        ),
        Tool(
            "delete_event", "Delete an event", DELETE_EVENT.description, DELETE_EVENT.schema,
            tools.delete_event,
            ToolAnnotations(read_only=False, destructive=True, open_world=True),
            DELETE_EVENT.output, tools.consent_delete,
        ),
        Tool(
            "find_free_slots", "Find free times", FIND_FREE_SLOTS.description,
            FIND_FREE_SLOTS.schema, tools.find_free_slots, read, SLOTS_SCHEMA,
        ),
    ]  # fmt: skip


def _read_range(
    context: ToolContext,
    start: str | None,
    end: str | None,
    default_start: datetime.datetime,
    default_length: datetime.timedelta,
    longest: datetime.timedelta,
) -> tuple[datetime.datetime, datetime.datetime]:
    """
    A time range from arguments: a date-only C{end} is inclusive (the
    whole day); without C{end}, C{default_length} past a date-time start,
    or the end of a date-only start's day.

    @raise ToolError: unparsable, empty or too long.
    """
    first = parse_when(start, context, "start") if start else default_start
    if end:
        last = parse_when(end, context, "end")
        if len(end.strip()) == 10:
            last = datetime.datetime.combine(last.date() + _DAY, datetime.time(), context.timezone)
    elif start and len(start.strip()) == 10:
        last = datetime.datetime.combine(first.date() + _DAY, datetime.time(), context.timezone)
    else:
        last = first + default_length
    if last <= first:
        raise ToolError("end must be after start")
    if last - first > longest:
        raise ToolError(f"the range may span at most {longest.days} days")
    return first.astimezone(datetime.UTC), last.astimezone(datetime.UTC)


def _today(context: ToolContext) -> datetime.datetime:
    return datetime.datetime.combine(context.now().date(), datetime.time(), context.timezone)


class _CalendarTools:
    """The handlers and consent functions; writes are planned by L{EventPlanner}."""

    def __init__(self, app: GkApp, access: CalendarAccess, planner: EventPlanner) -> None:
        self.app = app
        self.access = access
        self.planner = planner

    # -- reading --------------------------------------------------------------------

    async def list_calendars(self, context: ToolContext, arguments: JSON) -> ToolResult:
        collections = await self.access.collections(context.account)
        default = await self.access.calendar(context.account, None)
        calendars = [
            {
                "name": c.name,
                "displayname": c.displayname,
                "description": c.description,
                "color": c.color,
                "components": list(c.components) or ["VEVENT", "VTODO", "VJOURNAL"],
                "default": c.name == default.name,
            }
            for c in collections
        ]
        return _result({"calendars": calendars})

    async def list_events(self, context: ToolContext, arguments: JSON) -> ToolResult:
        account = context.account
        start, end = _read_range(
            context, arguments.get("start"), arguments.get("end"), _today(context), _DAY,
            MAX_RANGE,
        )  # fmt: skip
        limit = int(arguments.get("limit", 100))
        only = arguments.get("calendar")
        wanted = (await self.access.calendar(account, only)).name if only else None
        occurrences = await self.access.occurrences(account, start, end, context.timezone, wanted)
        events = [describe_instance(o, context.timezone, [account.email]) for o in occurrences]
        return _result(
            {
                "range": {"start": _local(start, context), "end": _local(end, context)},
                "time_zone": str(getattr(context.timezone, "key", context.timezone)),
                "events": events[:limit],
                "truncated": len(events) > limit,
            }
        )

    async def find_free_slots(self, context: ToolContext, arguments: JSON) -> ToolResult:
        now = context.now()
        start, end = _read_range(
            context, arguments.get("start"), arguments.get("end"), now,
            datetime.timedelta(days=7), MAX_SLOT_RANGE,
        )  # fmt: skip
        start = max(start, now.astimezone(datetime.UTC))
        if end <= start:
            raise ToolError("the range is over: look for slots from now on")
        duration = datetime.timedelta(minutes=int(arguments["duration_minutes"]))
        day_start = _read_clock(
            arguments.get("working_hours_start", "09:00"), "working_hours_start"
        )
        day_end = _read_clock(arguments.get("working_hours_end", "18:00"), "working_hours_end")
        if day_end <= day_start:
            raise ToolError("working_hours_end must be after working_hours_start")
        addresses = read_addresses(arguments.get("attendees", []))
        participants = await calendar_slots.availability(
            self.app.accounts, self.app.calendars, context.account, addresses, start, end,
            context.timezone,
        )  # fmt: skip
        slots = calendar_slots.free_slots(
            [period for p in participants for period in p.busy], start, end, duration,
            context.timezone, day_start, day_end, bool(arguments.get("include_weekends")),
            int(arguments.get("limit", 5)),
        )  # fmt: skip
        return _result(
            {
                "range": {"start": _local(start, context), "end": _local(end, context)},
                "duration_minutes": int(duration.total_seconds() // 60),
                "slots": [
                    {"start": _local(low, context), "end": _local(high, context)}
                    for low, high in slots
                ],
                "participants": [_participant(p, context) for p in participants],
            }
        )

    # -- creating -------------------------------------------------------------------

    async def consent_create(self, context: ToolContext, arguments: JSON) -> str | None:
        return (await self.planner.create(context, arguments)).summary

    async def create_event(self, context: ToolContext, arguments: JSON) -> ToolResult:
        account = context.account
        new = await self.planner.create(context, arguments)
        uid = str(new.body.walk("VEVENT")[0]["UID"])
        ref = EventRef(new.calendar, f"{uid}.ics")
        await self.access.create(account, new.calendar, ref.name, new.body)
        return await self._written(context, ref, "created")

    async def _written(self, context: ToolContext, ref: EventRef, action: str) -> ToolResult:
        """The answer to a write: the event as stored now, and its invitations' fate."""
        event = await self.access.load(context.account, ref, context.timezone)
        shown = describe_object(
            ref, event.calendar, context.timezone, event.zone, [context.account.email]
        )
        deliveries = await self.access.deliveries(context.account, ref)
        return _result({"action": action, "event": shown, "invitations": deliveries})

    # -- changing ----------------------------------------------------------------------

    async def consent_update(self, context: ToolContext, arguments: JSON) -> str | None:
        return (await self.planner.update(context, arguments)).summary

    async def update_event(self, context: ToolContext, arguments: JSON) -> ToolResult:
        plan = await self.planner.update(context, arguments)
        assert plan.result is not None
        await self.access.replace(context.account, plan.event, plan.result)
        return await self._written(context, plan.event.ref, "updated")

    # -- deleting ----------------------------------------------------------------------

    async def consent_delete(self, context: ToolContext, arguments: JSON) -> str | None:
        return (await self.planner.delete(context, arguments)).summary

    async def delete_event(self, context: ToolContext, arguments: JSON) -> ToolResult:
        plan = await self.planner.delete(context, arguments)
        if plan.result is None:
            await self.access.delete(context.account, plan.event)
            content = {"action": "deleted", "event_id": plan.event.ref.id, "occurrence": None}
        else:
            await self.access.replace(context.account, plan.event, plan.result)
            content = {
                "action": "occurrence deleted",
                "event_id": plan.event.ref.id,
                "occurrence": arguments["occurrence"],
            }
        return _result(content)


# -- small helpers ---------------------------------------------------------------------


def _result(content: JSON) -> ToolResult:
    return ToolResult(content, render(content))


def _local(moment: datetime.datetime, context: ToolContext) -> str:
    return rfc3339(moment.astimezone(context.timezone))


def _read_clock(text: str, name: str) -> datetime.time:
    try:
        return datetime.time.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"invalid {name} {text!r}: use HH:MM, e.g. 09:00") from None


def _participant(participant: calendar_slots.Participant, context: ToolContext) -> JSON:
    if participant.unknown is not None:
        return {
            "email": participant.email,
            "availability": "unknown",
            "reason": participant.unknown,
        }
    return {
        "email": participant.email,
        "availability": "known",
        "busy": [
            {"start": _local(low, context), "end": _local(high, context)}
            for low, high in participant.busy[:100]
        ],
    }


__all__ = ["calendar_tools"]
