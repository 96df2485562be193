"""
Events as the assistant writes them: reading the times, recurrence rules
and attendee lists models put in tool arguments, and building or changing
the iCalendar object that is then stored (and scheduled) exactly as a
CalDAV client's PUT would be.

Conventions, the same in the tools' descriptions:

  - A timed event's start and end are RFC 3339 date-times; without an
    offset they are in the user's zone.  They are written with the
    user's zone as TZID (so the event keeps its wall-clock time across
    daylight saving changes, as calendar programs expect).
  - An all-day event takes dates, and its C{end} is the I{last day}
    (inclusive), as people say "Monday to Wednesday"; DTEND is the day
    after, as RFC 5545 wants.
  - A recurrence is one RRULE (RFC 5545 3.3.10) of DAILY, WEEKLY,
    MONTHLY or YEARLY frequency, at most L{MAX_COUNT} occurrences when
    counted, and one that produces occurrences.

Everything a model got wrong is a L{ToolError} saying what to send
instead.  Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from icalendar import Calendar, Component, Event, vCalAddress, vDDDLists, vRecur

from gk.accounts import InvalidAddress, normalize_address
from gk.assistant.arguments import parse_day, parse_when
from gk.assistant.tools import ToolContext, ToolError
from gk.dav import itip
from gk.dav.calexpand import MAX_TIME, MIN_TIME, component_span, to_utc, value_of
from gk.dav.calrules import RULE_ERRORS, Value, is_barren, rule_error

#: Most attendees one event may be given by the assistant.
MAX_ATTENDEES = 50
#: Most occurrences of a counted recurrence.
MAX_COUNT = 1000
#: Longest event (a conference, a holiday).
MAX_LENGTH = datetime.timedelta(days=366)
#: Length of a timed event given neither an end nor a duration.
DEFAULT_LENGTH = datetime.timedelta(hours=1)
#: Recurrence frequencies accepted (finer ones are not meetings).
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
PRODID = "-//gk//assistant//EN"

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class EventTimes:
    """
    When an event is: DTSTART and DTEND as they will be written (dates
    for an all-day event, DTEND exclusive; else aware, in the user's zone).
    """

    start: Value
    end: Value

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime.datetime)


def times_of(component: Component) -> EventTimes | None:
    """The times of a stored component (DTEND from DURATION if need be)."""
    span = component_span(component)
    return EventTimes(span[0], span[1]) if span is not None else None


def read_times(
    context: ToolContext,
    start: str | None,
    end: str | None,
    duration_minutes: int | None,
    all_day: bool | None,
    current: EventTimes | None = None,
) -> EventTimes:
    """
    The times the arguments ask for; C{current} are the event's times
    when changing one: what is not given is kept (a new start keeps the
    length, a new end or duration keeps the start).

    @raise ToolError: a missing start (new event), a time that does not
        parse, an end not after the start, too long an event.
    """
    whole_day = all_day if all_day is not None else (current.all_day if current else False)
    if start is not None:
        first: Value = _read_point(context, start, whole_day, "start")
    elif current is not None:
        first = _converted(current.start, whole_day, context)
    else:
        raise ToolError("start is required")
    if end is not None and duration_minutes is not None:
        raise ToolError("give end or duration_minutes, not both")
    if end is not None:
        last: Value = _read_point(context, end, whole_day, "end")
        if whole_day:
            last = last + _DAY  # the last day given; DTEND is the day after
    elif duration_minutes is not None:
        if whole_day:
            raise ToolError("an all-day event takes an end date (its last day), not a duration")
        last = first + datetime.timedelta(minutes=duration_minutes)
    elif current is not None and current.all_day == whole_day:
        last = first + _length(current)
    else:
        last = first + (_DAY if whole_day else DEFAULT_LENGTH)
    if to_utc(last) <= to_utc(first):
        raise ToolError("the end must be after the start (an all-day end is its last day)")
    if to_utc(last) - to_utc(first) > MAX_LENGTH:
        raise ToolError("an event lasts at most a year")
    if to_utc(first) < MIN_TIME or to_utc(last) > MAX_TIME:
        raise ToolError("times must lie between the years 1900 and 2200")
    return EventTimes(first, last)


def _read_point(context: ToolContext, text: str, whole_day: bool, name: str) -> Value:
    if whole_day:
        return parse_day(text, context, name)
    if len(text.strip()) == 10:
        raise ToolError(
            f"{name} {text!r} is a date: give a time too (e.g. {text.strip()}T09:00:00), "
            "or all_day true"
        )
    return parse_when(text, context, name).astimezone(context.timezone)


def _converted(value: Value, whole_day: bool, context: ToolContext) -> Value:
    """A kept start in the kind of event asked for (all-day: its day; timed: refused)."""
    if whole_day:
        if isinstance(value, datetime.datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=context.timezone)
            return aware.astimezone(context.timezone).date()
        return value
    if not isinstance(value, datetime.datetime):
        raise ToolError("to make an all-day event a timed one, give its start time")
    return value


def _length(times: EventTimes) -> datetime.timedelta:
    """How long an event lasts, in days for an all-day one, else in wall-clock time."""
    start, end = times.start, times.end
    if isinstance(start, datetime.datetime) and isinstance(end, datetime.datetime):
        if start.tzinfo is end.tzinfo:
            return end - start
        return to_utc(end) - to_utc(start)
    if not isinstance(start, datetime.datetime) and not isinstance(end, datetime.datetime):
        return end - start
    return _DAY


def describe_times(times: EventTimes, zone: datetime.tzinfo) -> str:
    """
    For people, in the user's zone: C{Mon 23 Nov 2026 14:00-14:30
    (Europe/Paris)}, C{Sat 21 Nov 2026 (all day)}, C{Sat 21 Nov 2026 - Mon
    23 Nov 2026 (all day)}.
    """
    if times.all_day:
        first = times.start
        last = max(first, times.end - _DAY)
        if last == first:
            return f"{_day(first)} (all day)"
        return f"{_day(first)} - {_day(last)} (all day)"
    assert isinstance(times.start, datetime.datetime)
    assert isinstance(times.end, datetime.datetime)
    start = _aware(times.start, zone).astimezone(zone)
    end = _aware(times.end, zone).astimezone(zone)
    name = getattr(zone, "key", None) or start.tzname() or ""
    if end.date() == start.date():
        shown = f"{_day(start.date())} {start:%H:%M}-{end:%H:%M}"
    else:
        shown = f"{_day(start.date())} {start:%H:%M} - {_day(end.date())} {end:%H:%M}"
    return f"{shown} ({name})" if name else shown


def _aware(value: datetime.datetime, zone: datetime.tzinfo) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _day(day: datetime.date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


# -- attendees and rules -------------------------------------------------------------


def read_addresses(values: Iterable[str], name: str = "attendees") -> list[str]:
    """
    E-mail addresses, normalised (lower-case, IDNA domain), each once, in order.

    @raise ToolError: one is not an address, or there are too many.
    """
    found: list[str] = []
    for value in values:
        text = value.strip()
        if text.lower().startswith("mailto:"):
            text = text[7:]
        try:
            address = normalize_address(text)
        except InvalidAddress as e:
            raise ToolError(
                f"{name}: {e}; give e-mail addresses (search_contacts finds a person's)"
            ) from None
        if address not in found:
            found.append(address)
    if len(found) > MAX_ATTENDEES:
        raise ToolError(f"{name}: at most {MAX_ATTENDEES} addresses")
    return found


def read_rule(text: str, start: Value) -> vRecur:
    """
    One recurrence rule for an event starting at C{start}.

    @raise ToolError: not an RRULE, an unsupported frequency, too large a
        COUNT, or a rule that never produces an occurrence.
    """
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    form = "e.g. FREQ=WEEKLY;BYDAY=MO,WE or FREQ=DAILY;COUNT=5 (RFC 5545 RRULE)"
    try:
        rule: vRecur = vRecur.from_ical(body)
    except (ValueError, TypeError) as e:
        raise ToolError(f"invalid recurrence {text!r}: {e}; {form}") from None
    frequency = [str(f).upper() for f in rule.get("FREQ", [])]
    if len(frequency) != 1:
        raise ToolError(f"invalid recurrence {text!r}: it needs one FREQ; {form}")
    if frequency[0] not in FREQUENCIES:
        raise ToolError(f"recurrence FREQ must be one of {', '.join(FREQUENCIES)}")
    if "COUNT" in rule and "UNTIL" in rule:
        raise ToolError("a recurrence has COUNT or UNTIL, not both")
    count = rule.get("COUNT")
    if count and not 1 <= int(count[0]) <= MAX_COUNT:
        raise ToolError(f"recurrence COUNT must be between 1 and {MAX_COUNT}")
    try:
        error = rule_error(rule, start)
        barren = error is None and is_barren(rule, start)
    except RULE_ERRORS as e:
        error, barren = str(e) or type(e).__name__, False
    if error is not None:
        raise ToolError(f"invalid recurrence {text!r}: {error}; {form}")
    if barren:
        raise ToolError(f"the recurrence {text!r} never produces an occurrence")
    return rule


# -- building ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    """The text fields of an event; None leaves a field as it is when changing one."""

    summary: str | None = None
    location: str | None = None
    description: str | None = None


def _set_text(component: Component, name: str, value: str | None) -> None:
    if value is None:
        return
    component.pop(name, None)
    if value.strip():
        component.add(name, value)


def _set_times(component: Component, times: EventTimes) -> None:
    for name in ("DTSTART", "DTEND", "DURATION"):
        component.pop(name, None)
    component.add("DTSTART", times.start)
    component.add("DTEND", times.end)


def _address(email: str, **params: str) -> vCalAddress:
    prop = vCalAddress(f"mailto:{email}")
    for key, value in params.items():
        prop.params[key.replace("_", "-").upper()] = value
    return prop


def _stamp(component: Component, now: datetime.datetime) -> None:
    moment = now.astimezone(datetime.UTC).replace(microsecond=0)
    for name in ("DTSTAMP", "LAST-MODIFIED"):
        component.pop(name, None)
        component.add(name, moment)


def new_event(
    uid: str,
    organizer: str,
    times: EventTimes,
    details: Details,
    attendees: Sequence[str],
    rule: vRecur | None,
    now: datetime.datetime,
) -> Calendar:
    """
    A new event's calendar object.  With C{attendees}, C{organizer} is
    its ORGANIZER and first ATTENDEE (accepted), the others are asked
    (NEEDS-ACTION, RSVP): what the scheduler invites.
    """
    calendar = Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", PRODID)
    event = Event()
    event.add("UID", uid)
    _stamp(event, now)
    event.add("CREATED", now.astimezone(datetime.UTC).replace(microsecond=0))
    event.add("SEQUENCE", 0)
    _set_text(event, "SUMMARY", details.summary or "")
    _set_times(event, times)
    _set_text(event, "LOCATION", details.location)
    _set_text(event, "DESCRIPTION", details.description)
    if rule is not None:
        event.add("RRULE", rule)
    _set_people(event, organizer, attendees)
    calendar.add_component(event)
    _add_timezones(calendar)
    return calendar


def _add_timezones(calendar: Calendar) -> None:
    """VTIMEZONEs for the TZIDs used (icalendar writes them from the tz database)."""
    # a zone icalendar cannot describe goes without: clients know TZIDs
    with contextlib.suppress(Exception):
        calendar.add_missing_timezones()


def _set_people(event: Component, organizer: str, attendees: Sequence[str]) -> None:
    """ORGANIZER and ATTENDEEs for a fresh list; none at all when nobody else is invited."""
    previous = {
        itip.address_of(p): p for p in itip.calendar_users(event, "ATTENDEE") if itip.address_of(p)
    }
    old_organizer = itip.calendar_users(event, "ORGANIZER")
    event.pop("ORGANIZER", None)
    event.pop("ATTENDEE", None)
    others = [a for a in attendees if a != organizer]
    if not others:
        return
    event.add("ORGANIZER", old_organizer[0] if old_organizer else _address(organizer))
    own = previous.get(organizer) or _address(
        organizer, partstat="ACCEPTED", role="CHAIR", cutype="INDIVIDUAL"
    )
    event.add("ATTENDEE", own)
    for address in others:
        kept = previous.get(address)
        event.add(
            "ATTENDEE",
            kept
            if kept is not None
            else _address(
                address,
                partstat="NEEDS-ACTION",
                rsvp="TRUE",
                role="REQ-PARTICIPANT",
                cutype="INDIVIDUAL",
            ),
        )


def invited(calendar: Calendar, organizer: str) -> list[str]:
    """The attendees of an event other than C{organizer}, over all its components."""
    info = itip.scheduling_info(calendar)
    if info is None:
        return []
    return [a for a in info.attendees if a != organizer and a != info.organizer]


# -- changing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Changes:
    """What update_event changes; None (or False) keeps each as it is."""

    details: Details
    times: EventTimes | None = None
    #: The new complete attendee list (the user excluded), or None.
    attendees: list[str] | None = None
    rule: vRecur | None = None
    drop_rule: bool = False


def change_event(
    calendar: Calendar, organizer: str, changes: Changes, now: datetime.datetime
) -> Calendar:
    """
    A changed copy of C{calendar} (the user organizes it, or it has no
    organizer).  Text and time changes apply to the master (an
    occurrence changed on its own keeps its own); a new time moves every
    occurrence, and the exclusions and occurrences changed on their own
    move with it (they are dropped when the event turns all-day or
    timed: they name no occurrence any more); attendee changes apply to
    every component.  SEQUENCE goes up (RFC 5546: a new version).
    """
    result = copy.deepcopy(calendar)
    components = [c for c in result.subcomponents if c.name == "VEVENT"]
    master = next((c for c in components if "RECURRENCE-ID" not in c), components[0])
    overrides = [c for c in components if c is not master]
    details = changes.details
    _set_text(master, "SUMMARY", details.summary)
    _set_text(master, "LOCATION", details.location)
    _set_text(master, "DESCRIPTION", details.description)
    if changes.times is not None:
        before = value_of(master, "DTSTART")
        _set_times(master, changes.times)
        if before is not None and not _shift_series(master, overrides, before, changes.times.start):
            overrides = []
    if changes.drop_rule:
        for name in ("RRULE", "RDATE", "EXDATE"):
            master.pop(name, None)
        overrides = []
    elif changes.rule is not None:
        master.pop("RRULE", None)
        master.add("RRULE", changes.rule)
    kept = {id(c) for c in [master, *overrides]}
    result.subcomponents = [c for c in result.subcomponents if c.name != "VEVENT" or id(c) in kept]
    for component in [master, *overrides]:
        if changes.attendees is not None:
            _set_people(component, organizer, changes.attendees)
        _stamp(component, now)
        _bump_sequence(component)
    _add_timezones(result)
    return result


def _shift_series(
    master: Component, overrides: Sequence[Component], before: Value, after: Value
) -> bool:
    """
    Move the master's EXDATEs and the C{overrides}' RECURRENCE-IDs as its
    start moved from C{before} to C{after} (in wall-clock time), so that
    they still name the occurrences they named.  L{False} when that cannot
    be (the event turned all-day or timed): the EXDATEs are gone then, and
    the caller drops the overrides.
    """
    if isinstance(before, datetime.datetime) != isinstance(after, datetime.datetime):
        master.pop("EXDATE", None)
        return False
    delta = _naive(after) - _naive(before)
    if not delta:
        return True
    exdates = [_wall_shift(v, delta) for v in _exdates(master)]
    master.pop("EXDATE", None)
    if exdates:
        master.add("EXDATE", exdates)
    for component in overrides:
        rid = value_of(component, "RECURRENCE-ID")
        if rid is not None:
            component.pop("RECURRENCE-ID")
            component.add("RECURRENCE-ID", _wall_shift(rid, delta))
    return True


def _exdates(component: Component) -> list[Value]:
    values: list[Value] = []
    prop: Any = component.get("EXDATE")
    for item in prop if isinstance(prop, list) else [prop] if prop is not None else []:
        if isinstance(item, vDDDLists):
            values += [one.dt for one in item.dts if isinstance(one.dt, datetime.date)]
    return values


def _naive(value: Value) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    return datetime.datetime(value.year, value.month, value.day)


def _wall_shift(value: Value, delta: datetime.timedelta) -> Value:
    if isinstance(value, datetime.datetime):
        return (value.replace(tzinfo=None) + delta).replace(tzinfo=value.tzinfo)
    return value + datetime.timedelta(days=delta.days)


def _bump_sequence(component: Component) -> None:
    try:
        sequence = int(str(component.get("SEQUENCE", 0)))
    except ValueError:
        sequence = 0
    component.pop("SEQUENCE", None)
    component.add("SEQUENCE", sequence + 1)


def set_response(calendar: Calendar, address: str, partstat: str, now: datetime.datetime) -> bool:
    """
    The attendee C{address}'s answer in every component that lists it
    (what the scheduler turns into a REPLY); whether it listed it.
    """
    listed = False
    for component in calendar.subcomponents:
        if component.name != "VEVENT":
            continue
        for prop in itip.calendar_users(component, "ATTENDEE"):
            if itip.address_of(prop) == address:
                prop.params["PARTSTAT"] = partstat
                prop.params.pop("RSVP", None)
                listed = True
        if listed:
            _stamp(component, now)
    return listed


def exclude_occurrence(calendar: Calendar, occurrence: Value, now: datetime.datetime) -> Calendar:
    """
    A copy of a recurring event without one occurrence (C{occurrence}: its
    original start, as RECURRENCE-ID names it): an EXDATE on the master, in
    the kind and zone of its DTSTART, and the occurrence's override gone
    if it was changed on its own.  The caller checks the event has it.
    """
    result = copy.deepcopy(calendar)
    components = [c for c in result.subcomponents if c.name == "VEVENT"]
    master = next(c for c in components if "RECURRENCE-ID" not in c)
    start = value_of(master, "DTSTART")
    value: Value = occurrence
    if isinstance(start, datetime.datetime) and isinstance(occurrence, datetime.datetime):
        zone = start.tzinfo
        value = occurrence.astimezone(zone) if zone is not None else occurrence.replace(tzinfo=None)
    elif isinstance(occurrence, datetime.datetime):
        value = occurrence.date()
    master.add("EXDATE", [value])
    moment = to_utc(occurrence)
    result.subcomponents = [
        c
        for c in result.subcomponents
        if (rid := value_of(c, "RECURRENCE-ID")) is None or to_utc(rid) != moment
    ]
    _stamp(master, now)
    _bump_sequence(master)
    return result
