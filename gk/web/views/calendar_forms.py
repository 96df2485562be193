"""
The calendar's event pages: create, edit and delete an event, and answer
an invitation from someone else.

  - C{GET /calendar/new?date=YYYY-MM-DD[&time=HH:MM][&view=week]}: the
    form for a new event;
  - C{POST /calendar/event}: create it (in the calendar chosen);
  - C{GET /calendar/event/<calendar>/<name>/edit[?occurrence=...]}: an
    event's form (an invitation from someone else: its details and the
    answers);
  - C{POST /calendar/event/<calendar>/<name>}: change it (every
    occurrence of a recurring event);
  - C{POST /calendar/event/<calendar>/<name>/delete}: delete it, or with
    C{occurrence} that occurrence only; an invitation deleted is declined;
  - C{POST /calendar/event/<calendar>/<name>/respond}: accept, decline or
    answer "maybe" to an invitation.

Every write is the assistant's calendar tool (L{CalendarActions.run}):
attendees are invited, told of changes and of cancellations by the CalDAV
scheduler.  A form with a mistake comes back (400) with the mistake said
in a C{role="alert"} paragraph and what was typed kept.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from gk.assistant.calendar_events import EventRef
from gk.web.page import FormProblem, Page, PageCall, PageError, Reply, page, redirect
from gk.web.views.calendar_actions import CalendarActions, Refused, ShownEvent
from gk.web.views.calendar_dates import (
    DASH,
    event_path,
    long_date,
    month_key,
    parse_day,
    read_date,
    short_date,
)
from gk.web.views.calendar_fields import (
    REPEATS,
    EventForm,
    EventValues,
    create_arguments,
    read_event,
    update_arguments,
)

_BACK = re.compile(r"^/calendar(?:/month/\d{4}-\d{2}|/week/\d{4}-\d{2}-\d{2})?$")
_RESPONSES = {"accepted": "Accepted", "tentative": "Maybe", "declined": "Declined"}


def back_to(text: str, default: str = "/calendar") -> str:
    """A calendar view to return to, from a form field (anything else: C{default})."""
    return text if _BACK.match(text) else default


def view_of(form: EventForm, start: str) -> str:
    """The month or week view holding an event starting at C{start} (RFC 3339 or a date)."""
    day = read_date(start[:10]) or datetime.date.today()
    if form.view == "week":
        return f"/calendar/week/{day.isoformat()}"
    return f"/calendar/month/{month_key(day)}"


def when_text(described: dict[str, Any]) -> str:
    """An event's time for people, from L{describe_object} (already in the user's zone)."""
    start, end = str(described["start"]), str(described["end"])
    if described["all_day"]:
        first, last = datetime.date.fromisoformat(start), datetime.date.fromisoformat(end)
        shown = (
            long_date(first) if first == last else f"{long_date(first)} {DASH} {long_date(last)}"
        )
        return f"{shown} (all day)"
    begins, ends = datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(end)
    if begins.date() == ends.date():
        return f"{long_date(begins.date())}, {begins:%H:%M}{DASH}{ends:%H:%M}"
    return f"{long_date(begins.date())} {begins:%H:%M} {DASH} {long_date(ends.date())} {ends:%H:%M}"


def occurrence_text(occurrence: str) -> str:
    """An occurrence as delete_event names it (a date, or RFC 3339 in the user's zone)."""
    day = read_date(occurrence)
    if day is not None:
        return short_date(day) + f" {day.year}"
    try:
        moment = datetime.datetime.fromisoformat(occurrence)
    except ValueError:
        return occurrence
    return f"{short_date(moment.date())} {moment.year} {moment:%H:%M}"


class CalendarForms:
    """The event pages (see the module docstring)."""

    def __init__(self, actions: CalendarActions) -> None:
        self.actions = actions

    def pages(self) -> list[Page]:
        base = "/calendar/event/{calendar}/{name}"
        return [
            page("GET", "/calendar/new", self.new),
            page("POST", "/calendar/event", self.create),
            page("GET", base + "/edit", self.edit),
            page("POST", base, self.update),
            page("POST", base + "/delete", self.delete),
            page("POST", base + "/respond", self.respond),
        ]

    # -- creating -------------------------------------------------------------------------

    async def new(self, call: PageCall) -> Reply:
        account = call.account
        text = call.query.get("date", "")
        day = parse_day(text) if text else self.actions.today(account)
        at = None
        if call.query.get("time"):
            try:
                at = datetime.time.fromisoformat(call.query["time"])
            except ValueError:
                raise PageError(400, "The time must be written as HH:MM, e.g. 14:30.") from None
        view = "week" if call.query.get("view") == "week" else "month"
        default = await self.actions.default_calendar(account)
        form = EventForm.for_new(day, at, default, view)
        return await self._form(call, form, None)

    async def create(self, call: PageCall) -> Reply:
        account = call.account
        form = EventForm.from_form(call.form)
        calendars = {c.name for c in await self.actions.calendars(account)}
        try:
            if form.calendar not in calendars:
                raise FormProblem("Choose one of your calendars.", "calendar")
            values = read_event(form, self.actions.zone_of(account), account.email)
            await self.actions.run(account, "create_event", create_arguments(values, form.calendar))
        except (FormProblem, Refused) as e:
            return await self._form(call, form, None, e)
        return redirect(view_of(form, values.start))

    # -- changing ---------------------------------------------------------------------------

    async def edit(self, call: PageCall) -> Reply:
        account = call.account
        event = await self.actions.event(account, self._ref(call))
        occurrence = call.query.get("occurrence", "")[:64] or None
        if not event.mine:
            return self._invitation(call, event, occurrence)
        form = EventForm.from_event(event.described, self.actions.zone_of(account), account.email)
        return await self._form(call, form, event, occurrence=occurrence)

    async def update(self, call: PageCall) -> Reply:
        account = call.account
        event = await self.actions.event(account, self._ref(call))
        if not event.mine:
            organizer = event.described["organizer"]["email"]
            raise PageError(403, f"{organizer} organizes this event: only they can change it.")
        zone = self.actions.zone_of(account)
        shown = EventForm.from_event(event.described, zone, account.email)
        form = EventForm.from_form(call.form, shown.custom_rule)
        form.calendar = shown.calendar
        before: EventValues | None
        try:
            before = read_event(shown, zone, account.email)
        except FormProblem:
            before = None  # not something the form can show: every field is sent
        try:
            after = read_event(form, zone, account.email)
            arguments = update_arguments(event.ref.id, before, after)
            if len(arguments) > 1:
                await self.actions.run(account, "update_event", arguments)
        except (FormProblem, Refused) as e:
            return await self._form(call, form, event, e)
        return redirect(view_of(form, after.start))

    # -- deleting and answering ---------------------------------------------------------------

    async def delete(self, call: PageCall) -> Reply:
        account = call.account
        event = await self.actions.event(account, self._ref(call))
        arguments: dict[str, Any] = {"event_id": event.ref.id}
        occurrence = call.form.get("occurrence").strip()
        if occurrence:
            arguments["occurrence"] = occurrence[:64]
        try:
            await self.actions.run(account, "delete_event", arguments)
        except Refused as e:
            raise PageError(400, e.message) from None
        start = str(event.described["start"])[:10]
        return redirect(back_to(call.form.get("back"), f"/calendar/month/{start[:7]}"))

    async def respond(self, call: PageCall) -> Reply:
        account = call.account
        event = await self.actions.event(account, self._ref(call))
        response = call.form.get("response")
        if response not in _RESPONSES:
            raise PageError(400, "Answer accepted, tentative or declined.")
        try:
            await self.actions.run(
                account, "update_event", {"event_id": event.ref.id, "response": response}
            )
        except Refused as e:
            raise PageError(400, e.message) from None
        return redirect(event_path(event.ref) + "/edit")

    # -- rendering ------------------------------------------------------------------------------

    @staticmethod
    def _ref(call: PageCall) -> EventRef:
        calendar, name = call.params["calendar"], call.params["name"]
        if not calendar or not name:
            raise PageError(404, "There is no such event in your calendars.")
        return EventRef(calendar, name)

    async def _form(
        self,
        call: PageCall,
        form: EventForm,
        event: ShownEvent | None,
        problem: FormProblem | Refused | None = None,
        occurrence: str | None = None,
    ) -> Reply:
        account = call.account
        calendars = await self.actions.calendars(account)
        described = event.described if event is not None else None
        month = month_key(parse_day(form.start_date)) if read_date(form.start_date) else ""
        return call.render(
            "calendar_form.html",
            status=400 if problem is not None else 200,
            nav="calendar",
            form=form,
            event=event,
            when=when_text(described) if described else "",
            action=event_path(event.ref) if event else "/calendar/event",
            calendars=calendars,
            repeats=REPEATS,
            zone=getattr(self.actions.zone_of(account), "key", "UTC"),
            error=problem.message if problem else "",
            error_field=problem.field if isinstance(problem, FormProblem) else "",
            occurrence=occurrence,
            occurrence_label=occurrence_text(occurrence) if occurrence else "",
            back=f"/calendar/month/{month}" if month else "/calendar",
        )

    def _invitation(self, call: PageCall, event: ShownEvent, occurrence: str | None) -> Reply:
        described = event.described
        start = str(described["start"])[:10]
        return call.render(
            "calendar_invitation.html",
            nav="calendar",
            event=event,
            described=described,
            when=when_text(described),
            responses=_RESPONSES,
            occurrence=occurrence,
            path=event_path(event.ref),
            back=f"/calendar/month/{start[:7]}",
        )
