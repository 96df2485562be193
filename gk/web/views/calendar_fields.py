"""
The event form: its fields as the browser sends them (L{EventForm}),
read and checked into the values the calendar tools take
(L{EventValues}), and back: an existing event's description
(L{gk.assistant.calendar_events.describe_object}) as the form shows it.

A recurrence is a simple choice: none, daily, weekly, monthly or yearly,
ending after a count or on a date (or never), written as one RRULE.  An
event whose rule is more than that (from a CalDAV client: every other
week, on Mondays and Wednesdays...) shows it as "custom", and keeps it
unless another choice is made.

Edits send only what changed (L{update_arguments}): an unchanged field
is left exactly as stored, whatever program wrote it.  Pure: no I/O.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from icalendar import vRecur

from gk.accounts import InvalidAddress, normalize_address
from gk.assistant.tools import JSON
from gk.web.page import Form, FormProblem
from gk.web.views.calendar_dates import FIRST_YEAR, LAST_YEAR, read_date

REPEATS = ("none", "daily", "weekly", "monthly", "yearly")
MAX_SUMMARY, MAX_LOCATION, MAX_DESCRIPTION = 500, 1000, 20000
MAX_ATTENDEES, MAX_COUNT = 50, 1000
_HOUR = datetime.timedelta(hours=1)
_DAY = datetime.timedelta(days=1)
_ANGLED = re.compile(r"<([^<>]*)>\s*$")


@dataclass
class EventForm:
    """The event form's fields, as typed (strings; C{all_day} a checkbox)."""

    summary: str = ""
    calendar: str = ""
    all_day: bool = False
    start_date: str = ""
    start_time: str = ""
    end_date: str = ""
    end_time: str = ""
    location: str = ""
    description: str = ""
    #: Addresses, one a line (or separated by commas).
    attendees: str = ""
    #: One of L{REPEATS}, or "custom" to keep C{custom_rule}.
    repeat: str = "none"
    repeat_count: str = ""
    repeat_until: str = ""
    #: The rule an event already has when it is not a simple one.
    custom_rule: str = ""
    #: Which view to go back to: "month" or "week".
    view: str = "month"

    @classmethod
    def from_form(cls, form: Form, custom_rule: str = "") -> EventForm:
        """The fields sent; C{custom_rule} is the rule the event has (the form does not echo it)."""
        text = {name: form.get(name).strip() for name in _TEXT_FIELDS}
        return cls(
            **text,
            description=form.get("description").strip("\r\n"),
            all_day=form.checked("all_day"),
            custom_rule=custom_rule,
            view="week" if form.get("view") == "week" else "month",
        )

    @classmethod
    def for_new(
        cls, day: datetime.date, at: datetime.time | None, calendar: str, view: str
    ) -> EventForm:
        """A blank event on C{day}: at C{at} for an hour, or all day without a time."""
        start = datetime.datetime.combine(day, at or datetime.time(9))
        end = start + _HOUR
        return cls(
            calendar=calendar,
            all_day=False,
            start_date=day.isoformat(),
            start_time=f"{start:%H:%M}",
            end_date=end.date().isoformat(),
            end_time=f"{end:%H:%M}",
            view=view,
        )

    @classmethod
    def from_event(cls, described: JSON, zone: datetime.tzinfo, me: str) -> EventForm:
        """An event as L{describe_object} shows it (times in C{zone}) in the form."""
        all_day = bool(described["all_day"])
        start, end = str(described["start"]), str(described["end"])
        if all_day:
            start_date, start_time, end_date, end_time = start, "", end, ""
        else:
            first = datetime.datetime.fromisoformat(start).astimezone(zone)
            last = datetime.datetime.fromisoformat(end).astimezone(zone)
            start_date, start_time = first.date().isoformat(), f"{first:%H:%M}"
            end_date, end_time = last.date().isoformat(), f"{last:%H:%M}"
        organizer = (described.get("organizer") or {}).get("email")
        attendees = [
            a["email"] for a in described.get("attendees", []) if a["email"] not in (me, organizer)
        ]
        form = cls(
            summary=str(described["summary"]),
            calendar=str(described["calendar"]),
            all_day=all_day,
            start_date=start_date,
            start_time=start_time,
            end_date=end_date,
            end_time=end_time,
            location=str(described.get("location") or ""),
            description=str(described.get("description") or ""),
            attendees="\n".join(attendees),
        )
        form._set_rule(str(described.get("recurrence") or ""), zone)
        return form

    def _set_rule(self, text: str, zone: datetime.tzinfo) -> None:
        """The repeat fields for an event's RRULE C{text} ("": it does not repeat)."""
        if not text:
            return
        simple = _simple_rule(text, zone)
        if simple is None:
            self.repeat, self.custom_rule = "custom", text
            return
        self.repeat, self.repeat_count, self.repeat_until = simple


_TEXT_FIELDS = (
    "summary", "calendar", "start_date", "start_time", "end_date", "end_time", "location",
    "attendees", "repeat", "repeat_count", "repeat_until",
)  # fmt: skip


def _simple_rule(text: str, zone: datetime.tzinfo) -> tuple[str, str, str] | None:
    """(repeat, count, until date) of a rule the form can show, else None."""
    try:
        rule = vRecur.from_ical(text)
    except (ValueError, TypeError):
        return None
    keys = {str(k).upper() for k in rule}
    interval = [int(i) for i in rule.get("INTERVAL", [1])]
    frequency = [str(f).lower() for f in rule.get("FREQ", [])]
    if keys - {"FREQ", "COUNT", "UNTIL", "INTERVAL"} or interval != [1] or len(frequency) != 1:
        return None
    if frequency[0] not in REPEATS:
        return None
    count = str(rule["COUNT"][0]) if "COUNT" in rule else ""
    until = ""
    if "UNTIL" in rule:
        value = rule["UNTIL"][0]
        if isinstance(value, datetime.datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
            value = aware.astimezone(zone).date()
        until = value.isoformat()
    return frequency[0], count, until


@dataclass(frozen=True)
class EventValues:
    """A checked event form: the values the calendar tools take."""

    summary: str
    location: str
    description: str
    all_day: bool
    #: RFC 3339 without offset (the user's zone), or a date for all-day events.
    start: str
    #: Likewise; for an all-day event its last day (inclusive).
    end: str
    attendees: tuple[str, ...] = field(default=())
    #: The RRULE ("" for none), or None to keep a custom one as it is.
    recurrence: str | None = ""


def read_event(form: EventForm, zone: datetime.tzinfo, me: str) -> EventValues:
    """
    C{form} checked (C{me}: the user's address, never their own attendee).

    @raise FormProblem: a field to correct, said for people.
    """
    summary = form.summary.strip()
    if not summary:
        raise FormProblem("Give the event a title.", "summary")
    _limit(summary, MAX_SUMMARY, "The title", "summary")
    _limit(form.location, MAX_LOCATION, "The location", "location")
    _limit(form.description, MAX_DESCRIPTION, "The description", "description")
    first_day = _date(form.start_date, "start date", "start_date")
    last_day = _date(form.end_date, "end date", "end_date") if form.end_date else first_day
    if form.all_day:
        if last_day < first_day:
            raise FormProblem("The last day cannot be before the first.", "end_date")
        start, end = first_day.isoformat(), last_day.isoformat()
        begins = datetime.datetime.combine(first_day, datetime.time(), zone)
    else:
        begins = datetime.datetime.combine(first_day, _time(form.start_time, "start_time"), zone)
        if form.end_time:
            ends = datetime.datetime.combine(last_day, _time(form.end_time, "end_time"), zone)
        else:
            ends = begins + _HOUR
        if ends.astimezone(datetime.UTC) <= begins.astimezone(datetime.UTC):
            raise FormProblem("The end must be after the start.", "end_time")
        start, end = f"{begins:%Y-%m-%dT%H:%M:%S}", f"{ends:%Y-%m-%dT%H:%M:%S}"
    return EventValues(
        summary=summary,
        location=form.location.strip(),
        description=form.description.strip(),
        all_day=form.all_day,
        start=start,
        end=end,
        attendees=read_attendees(form.attendees, me),
        recurrence=_read_repeat(form, first_day, zone),
    )


def _limit(text: str, most: int, what: str, name: str) -> None:
    if len(text) > most:
        raise FormProblem(f"{what} is too long (at most {most} characters).", name)


def _date(text: str, what: str, name: str) -> datetime.date:
    day = read_date(text)
    if day is None:
        raise FormProblem(f"Give the {what} as a date (YYYY-MM-DD).", name)
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise FormProblem(f"The {what} must be between {FIRST_YEAR} and {LAST_YEAR}.", name)
    return day


def _time(text: str, name: str) -> datetime.time:
    what = "start time" if name == "start_time" else "end time"
    if not text:
        raise FormProblem(f"Give the {what} (or make it an all-day event).", name)
    try:
        return datetime.time.fromisoformat(text).replace(second=0, microsecond=0)
    except ValueError:
        raise FormProblem(f"Give the {what} as HH:MM, e.g. 14:30.", name) from None


def read_attendees(text: str, me: str) -> tuple[str, ...]:
    """
    The addresses of C{text} (one a line or comma-separated, C{Name <addr>}
    allowed), normalised, each once, the user's own left out.

    @raise FormProblem: one is not an address, or there are too many.
    """
    found: list[str] = []
    for piece in re.split(r"[,;\n]", text):
        raw = piece.strip()
        if not raw:
            continue
        angled = _ANGLED.search(raw)
        candidate = (angled.group(1) if angled else raw).strip()
        candidate = candidate.removeprefix("mailto:")
        try:
            address = normalize_address(candidate)
        except InvalidAddress:
            raise FormProblem(f"“{raw}” is not an e-mail address.", "attendees") from None
        if address != me and address not in found:
            found.append(address)
    if len(found) > MAX_ATTENDEES:
        raise FormProblem(f"Invite at most {MAX_ATTENDEES} people.", "attendees")
    return tuple(found)


def _read_repeat(form: EventForm, first_day: datetime.date, zone: datetime.tzinfo) -> str | None:
    """The RRULE the repeat fields ask for ("" none; None keeps the custom rule)."""
    if form.repeat == "custom" and form.custom_rule:
        return None
    if form.repeat in ("", "none", "custom"):
        return ""
    if form.repeat not in REPEATS:
        raise FormProblem("Choose how the event repeats.", "repeat")
    parts = [f"FREQ={form.repeat.upper()}"]
    if form.repeat_count and form.repeat_until:
        raise FormProblem("End the repetition after a number of times or on a date, not both.",
                          "repeat_count")  # fmt: skip
    if form.repeat_count:
        if not form.repeat_count.isdigit() or not 1 <= int(form.repeat_count) <= MAX_COUNT:
            raise FormProblem(f"Repeat between 1 and {MAX_COUNT} times.", "repeat_count")
        parts.append(f"COUNT={int(form.repeat_count)}")
    if form.repeat_until:
        until = _date(form.repeat_until, "last repetition date", "repeat_until")
        if until < first_day:
            raise FormProblem("The repetition cannot end before the event starts.",
                              "repeat_until")  # fmt: skip
        if form.all_day:
            parts.append(f"UNTIL={until:%Y%m%d}")
        else:
            last = datetime.datetime.combine(until, datetime.time(23, 59, 59), zone)
            parts.append(f"UNTIL={last.astimezone(datetime.UTC):%Y%m%dT%H%M%SZ}")
    return ";".join(parts)


def create_arguments(values: EventValues, calendar: str) -> JSON:
    """create_event's arguments for a new event in C{calendar}."""
    arguments: JSON = {
        "summary": values.summary,
        "start": values.start,
        "end": values.end,
        "all_day": values.all_day,
        "calendar": calendar,
    }
    for name in ("location", "description"):
        if getattr(values, name):
            arguments[name] = getattr(values, name)
    if values.attendees:
        arguments["attendees"] = list(values.attendees)
    if values.recurrence:
        arguments["recurrence"] = values.recurrence
    return arguments


def update_arguments(event_id: str, before: EventValues | None, after: EventValues) -> JSON:
    """
    update_event's arguments for what changed from C{before} (the event
    as its form showed it; None: unreadable, so everything is sent) to
    C{after}: only C{event_id} when nothing did.
    """
    arguments: JSON = {"event_id": event_id}
    for name in ("summary", "location", "description"):
        if before is None or getattr(before, name) != getattr(after, name):
            arguments[name] = getattr(after, name)
    times = ("start", "end", "all_day")
    if before is None or any(getattr(before, t) != getattr(after, t) for t in times):
        arguments.update(start=after.start, end=after.end, all_day=after.all_day)
    if before is None or set(before.attendees) != set(after.attendees):
        arguments["attendees"] = list(after.attendees)
    if after.recurrence is not None and (before is None or before.recurrence != after.recurrence):
        arguments["recurrence"] = after.recurrence
    return arguments
