"""
The calendar pages' dates: the months and weeks their URLs name, the days
a month or week view shows (weeks start on Monday), and the occurrences
of events laid out on those days in the user's time zone.

Pure: no I/O.  An occurrence comes in as the assistant's
L{Occurrence} (L{gk.assistant.calendar_events}) and goes out as an
L{EventChip}: what a template needs to show it and link to it.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gk.assistant.calendar_events import EventRef, Occurrence, describe_instance
from gk.web.page import PageError

_DAY = datetime.timedelta(days=1)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Between two times or days, as people write it.
DASH = "\u2013"
#: Longest title a view shows (the event's form shows it whole).
MAX_SHOWN_TITLE = 120
#: The years the calendar shows (the range events may be written in).
FIRST_YEAR, LAST_YEAR = 1901, 2199

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def parse_month(text: str) -> datetime.date:
    """
    The first day of the month C{YYYY-MM} names.

    @raise PageError: 400, it names none (or one out of the years shown).
    """
    found = _MONTH.match(text)
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise PageError(400, f"“{text}” is not a month: write it as YYYY-MM, e.g. 2026-11.")
    year = int(found.group(1))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PageError(400, f"The calendar shows the years {FIRST_YEAR} to {LAST_YEAR}.")
    return datetime.date(year, int(found.group(2)), 1)


def parse_day(text: str) -> datetime.date:
    """
    The date C{YYYY-MM-DD} names.

    @raise PageError: 400, it names none (or one out of the years shown).
    """
    day = read_date(text)
    if day is None:
        raise PageError(400, f"“{text}” is not a date: write it as YYYY-MM-DD, e.g. 2026-11-23.")
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise PageError(400, f"The calendar shows the years {FIRST_YEAR} to {LAST_YEAR}.")
    return day


def read_date(text: str) -> datetime.date | None:
    """A C{YYYY-MM-DD} date, or None when C{text} is not one."""
    if not _DATE.match(text.strip()):
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        return None


def month_key(day: datetime.date) -> str:
    """The C{YYYY-MM} of the month holding C{day} (as month URLs take it)."""
    return f"{day.year:04d}-{day.month:02d}"


def add_months(first: datetime.date, count: int) -> datetime.date:
    """The first day of the month C{count} months after the one starting on C{first}."""
    index = first.year * 12 + first.month - 1 + count
    return datetime.date(index // 12, index % 12 + 1, 1)


def week_start(day: datetime.date) -> datetime.date:
    """The Monday of the week holding C{day}."""
    return day - datetime.timedelta(days=day.weekday())


def month_days(first: datetime.date) -> tuple[datetime.date, datetime.date]:
    """
    The first and last day (inclusive) a month view shows for the month
    starting on C{first}: whole weeks, Monday to Sunday.
    """
    last = add_months(first, 1) - _DAY
    return week_start(first), week_start(last) + datetime.timedelta(days=6)


def long_date(day: datetime.date) -> str:
    """C{Monday 23 November 2026}."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def short_date(day: datetime.date) -> str:
    """C{Mon 23 Nov}."""
    return f"{WEEKDAYS[day.weekday()][:3]} {day.day} {MONTHS[day.month - 1][:3]}"


def local_midnight(day: datetime.date, zone: datetime.tzinfo) -> datetime.datetime:
    """The start of C{day} in C{zone}, in UTC."""
    return datetime.datetime.combine(day, datetime.time(), zone).astimezone(datetime.UTC)


def event_path(ref: EventRef) -> str:
    """The path of an event's pages: C{/calendar/event/<calendar>/<name>}."""
    calendar = urllib.parse.quote(ref.calendar, safe="")
    return f"/calendar/event/{calendar}/{urllib.parse.quote(ref.name, safe='')}"


@dataclass(frozen=True)
class EventChip:
    """One occurrence of an event as the month and week views show it."""

    ref: EventRef
    summary: str
    location: str
    all_day: bool
    #: Local start and end of a timed occurrence (None for an all-day one).
    start: datetime.datetime | None
    end: datetime.datetime | None
    #: The days it covers in the user's zone, inclusive.
    first_day: datetime.date
    last_day: datetime.date
    recurring: bool
    #: The occurrence as delete_event names it (None: not recurring).
    occurrence: str | None
    #: An invitation the user has not answered yet.
    invitation: bool
    cancelled: bool
    #: Which of the user's calendars (0, 1, ...): its colour.
    shade: int

    @property
    def url(self) -> str:
        """Its edit page (naming the occurrence shown, for a recurring event)."""
        query = "?" + urllib.parse.urlencode({"occurrence": self.occurrence})
        return event_path(self.ref) + "/edit" + (query if self.occurrence else "")

    def time_on(self, day: datetime.date) -> str:
        """What the month view prints before the title on C{day}: its start, or nothing."""
        if self.start is None or self.start.date() != day:
            return ""
        return f"{self.start:%H:%M}"

    def span_on(self, day: datetime.date) -> str:
        """What the week view prints for it on C{day}: C{14:00-15:00} (an en dash), C{All day}..."""
        if self.start is None or self.end is None:
            return "All day"
        begins = f"{self.start:%H:%M}" if self.start.date() == day else "…"
        ends = f"{self.end:%H:%M}" if self.last_day == day else "…"
        return begins if self.end == self.start else f"{begins}{DASH}{ends}"

    @property
    def order(self) -> tuple[int, datetime.datetime, str]:
        moment = self.start or datetime.datetime.min.replace(tzinfo=datetime.UTC)
        return (0 if self.all_day else 1, moment.astimezone(datetime.UTC), self.summary)


def chip_of(
    occurrence: Occurrence, zone: datetime.tzinfo, me: Sequence[str], shades: dict[str, int]
) -> EventChip:
    """An occurrence shown in C{zone} to the user whose addresses are C{me}."""
    instance = occurrence.instance
    shown = describe_instance(occurrence, zone, me)
    organizer = shown["organizer"]["email"] if shown["organizer"] else None
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    if isinstance(instance.dtstart, datetime.datetime):
        start = instance.start.astimezone(zone)
        end = instance.end.astimezone(zone)
        first = start.date()
        last = (end - datetime.timedelta(microseconds=1)).date() if end > start else first
    else:
        first = instance.dtstart
        after = instance.dtend
        after_day = after.date() if isinstance(after, datetime.datetime) else after
        last = max(first, after_day - _DAY)
    return EventChip(
        ref=occurrence.ref,
        summary=_cut(shown["summary"] or "(no title)", MAX_SHOWN_TITLE),
        location=shown["location"],
        all_day=start is None,
        start=start,
        end=end,
        first_day=first,
        last_day=last,
        recurring=bool(shown["recurring"]),
        occurrence=shown["occurrence"],
        invitation=shown["my_response"] == "needs-action" and organizer not in (None, *me),
        cancelled=shown["status"] == "cancelled",
        shade=shades.get(occurrence.ref.calendar, 0) % 6,
    )


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


#: Most events a day of the month grid lists (the others: "N more", the week view).
MAX_IN_CELL = 4


@dataclass
class DayCell:
    """One day of a view and the occurrences on it, all-day ones first."""

    day: datetime.date
    #: In the month shown (a month view shows the ends of its neighbours too).
    in_month: bool
    today: bool
    events: list[EventChip] = field(default_factory=list)

    @property
    def listed(self) -> list[EventChip]:
        """The events the month grid lists on this day (L{MAX_IN_CELL} at most)."""
        return self.events[: MAX_IN_CELL - 1] if len(self.events) > MAX_IN_CELL else self.events

    @property
    def unlisted(self) -> int:
        """How many of its events the month grid leaves to the week view."""
        return len(self.events) - len(self.listed)

    @property
    def iso(self) -> str:
        return self.day.isoformat()

    @property
    def label(self) -> str:
        return long_date(self.day)

    @property
    def short(self) -> str:
        return short_date(self.day)


def lay_out(
    chips: Iterable[EventChip],
    first: datetime.date,
    last: datetime.date,
    today: datetime.date,
    month: int | None = None,
) -> list[DayCell]:
    """
    The days from C{first} to C{last} (inclusive), each with the chips
    that cover it (an event of several days is on each of them), sorted:
    all-day first, then by start.  C{month}: the month shown, if any.
    """
    cells = [
        DayCell(
            first + i * _DAY, month in (None, (first + i * _DAY).month), first + i * _DAY == today
        )
        for i in range((last - first).days + 1)
    ]
    for chip in chips:
        low = max(chip.first_day, first)
        high = min(chip.last_day, last)
        for offset in range((low - first).days, (high - first).days + 1):
            cells[offset].events.append(chip)
    for cell in cells:
        cell.events.sort(key=lambda c: c.order)
    return cells


def weeks(cells: Sequence[DayCell]) -> list[list[DayCell]]:
    """C{cells} (whole weeks) cut into rows of seven."""
    return [list(cells[i : i + 7]) for i in range(0, len(cells), 7)]


__all__ = [
    "DASH",
    "WEEKDAYS",
    "DayCell",
    "EventChip",
    "add_months",
    "chip_of",
    "event_path",
    "lay_out",
    "long_date",
    "month_days",
    "month_key",
    "parse_day",
    "parse_month",
    "read_date",
    "week_start",
    "weeks",
]
