"""
Calendar object resources received by PUT, COPY or MOVE (RFC 4791 4.1,
5.3.2): checked, made storable and indexed for time-range queries.

L{parse_calendar_object} accepts what real clients send rather than the
letter of RFC 5545: LF line endings, a missing VERSION or PRODID (added),
X-WR-TIMEZONE calendars exported by Google (rewritten into the named zone
with x-wr-timezone), Evolution's RRULE UNTIL given in local time while
DTSTART has a TZID (rewritten in UTC), an all-day event's UNTIL given as a
date-time (rewritten as a date), recurring to-dos with DUE but no DTSTART
(expanded from DUE), unknown time zone names (read as floating time),
broken X- properties (kept as sent), RRULEs that never produce an instance
(the set is then DTSTART and RDATE).  It refuses, naming the CalDAV
precondition to report (RFC 4791 5.3.2.1):

  - C{valid-calendar-data}: not UTF-8 iCalendar, not one VCALENDAR, no
    component, an event without DTSTART, a property that does not parse
    (other than an X- one), an RRULE that cannot be used;
  - C{valid-calendar-object-resource}: METHOD, several component types,
    several UIDs, a component without UID, two masters or two overrides of
    the same instance;
  - C{supported-calendar-component}: a type the collection does not hold.

Pure: no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from icalendar import Calendar, Component, vRecur

from gk.dav.calexpand import (
    anchor_of,
    component_span,
    date_list,
    is_floating,
    rules_of,
    series_bounds,
    split_series,
    standard,
    to_utc,
    value_of,
)
from gk.dav.calrules import fix_rule, plus, rule_error

#: What a calendar collection holds unless it says otherwise (RFC 4791 5.2.3).
DEFAULT_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})
#: Real UTC offsets lie within this: floating times and dates are widened by it.
FLOATING_SLACK = timedelta(hours=14)
#: PRODID added to a calendar that has none.
PRODID = "-//gk//CalDAV//EN"

_TIME_PROPERTIES = ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID")


class InvalidCalendarData(ValueError):
    """
    A body that cannot be stored.

    @ivar message: what is wrong, for the DAV:error response and the log.
    @ivar precondition: the local name of the CalDAV precondition element.
    """

    def __init__(self, message: str, precondition: str) -> None:
        super().__init__(message)
        self.message = message
        self.precondition = precondition


@dataclass(frozen=True)
class CalendarObject:
    """A checked calendar object resource and its index entry."""

    uid: str
    #: The component type: VEVENT, VTODO or VJOURNAL (or another one allowed).
    component: str
    #: UTC bounds of the whole recurrence set, conservative: a time range
    #: [s, e) can only match if (start is None or start <= e) and (end is
    #: None or end >= s).  None means unbounded on that side.
    start: datetime | None
    end: datetime | None
    #: Whether it has RRULE, RDATE or overridden instances.
    recurring: bool
    #: The master's SUMMARY (or the first one found), "" if none.
    summary: str
    #: The body to store: serialised by icalendar (CRLF, folded).
    data: bytes
    #: The parsed object, as stored (for what else is computed at write time).
    calendar: Calendar = field(compare=False, repr=False)


def parse_calendar_object(
    data: bytes, allowed_components: frozenset[str] = DEFAULT_COMPONENTS
) -> CalendarObject:
    """
    Check a calendar object resource body and index it.

    @param data: the request body.
    @param allowed_components: the collection's supported-calendar-component-set.
    @raise InvalidCalendarData: the body cannot be stored; nothing else is raised.
    """
    calendar, converted = _parse(data)
    try:
        return _checked(calendar, allowed_components, None if converted else data)
    except InvalidCalendarData:
        raise
    except Exception as e:  # a backstop: bad data must not become a 500
        raise _invalid(f"cannot be read: {e}") from e


def _checked(
    calendar: Calendar, allowed_components: frozenset[str], original: bytes | None
) -> CalendarObject:
    """
    @param original: the body as sent, stored as is (line ends made CRLF)
        unless something had to be fixed; L{None} when it was already
        changed (X-WR-TIMEZONE applied).
    """
    components, kind, uid = _check_structure(calendar, allowed_components)
    for component in calendar.walk():
        _check_properties(component)
    for component in components:
        _check_component(component)
    changed = _fix_rules(components)
    for name, value in (("VERSION", "2.0"), ("PRODID", PRODID)):
        if name not in calendar:
            calendar.add(name, value)
            changed = True
    start, end = _bounds(components, kind)
    master, _ = split_series(components)
    summaries = [_text(c, "SUMMARY") for c in [master, *components] if c is not None]
    return CalendarObject(
        uid=uid,
        component=kind,
        start=start,
        end=end,
        recurring=len(components) > 1 or ("RRULE" in components[0] or "RDATE" in components[0]),
        summary=next((s for s in summaries if s), ""),
        # What the client sent, when nothing needed fixing: clients keep
        # their own formatting, and serialising costs as much as parsing.
        data=_crlf(original) if original is not None and not changed else calendar.to_ical(),
        calendar=calendar,
    )


def _crlf(data: bytes) -> bytes:
    """C{data} without a byte-order mark, every line ending in CRLF."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b""):
        return data if data.endswith(b"\r\n") else data + b"\r\n"
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def _text(component: Component, name: str) -> str:
    """The (first) value of a text property, or ""."""
    prop: Any = component.get(name)
    if isinstance(prop, list):
        prop = prop[0] if prop else None
    return str(prop) if prop is not None else ""


def _invalid(message: str) -> InvalidCalendarData:
    return InvalidCalendarData(message, "valid-calendar-data")


def _parse(data: bytes) -> tuple[Calendar, bool]:
    """
    One VCALENDAR, in RFC 5545 time zones (X-WR-TIMEZONE applied), and
    whether that conversion changed it.
    """
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise _invalid("not UTF-8") from e
    try:
        calendar: Any = Calendar.from_ical(text)
    except Exception as e:  # icalendar raises many kinds on arbitrary input
        raise _invalid(f"not iCalendar: {e}") from e
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise _invalid("not a VCALENDAR")
    converted = standard(calendar)
    if converted is not calendar:
        # a zone icalendar cannot describe is stored without VTIMEZONE
        with contextlib.suppress(Exception):
            converted.add_missing_timezones()
    return converted, converted is not calendar


def _check_structure(
    calendar: Calendar, allowed: frozenset[str]
) -> tuple[list[Component], str, str]:
    """The components of the object, their type and UID (RFC 4791 4.1)."""
    if "METHOD" in calendar:
        raise InvalidCalendarData("METHOD is not allowed", "valid-calendar-object-resource")
    components = [
        c
        for c in calendar.subcomponents
        if c.name != "VTIMEZONE" and not str(c.name).startswith("X-")
    ]
    kinds = {str(c.name) for c in components}
    if not kinds:
        raise _invalid("no calendar component")
    if len(kinds) > 1:
        raise InvalidCalendarData(
            f"several component types: {', '.join(sorted(kinds))}", "valid-calendar-object-resource"
        )
    kind = kinds.pop()
    if kind not in allowed:
        raise InvalidCalendarData(f"{kind} is not supported here", "supported-calendar-component")
    uids = {_text(c, "UID").strip() for c in components}
    if "" in uids:
        raise InvalidCalendarData(f"a {kind} without UID", "valid-calendar-object-resource")
    if len(uids) > 1:
        raise InvalidCalendarData("several UIDs", "valid-calendar-object-resource")
    masters = [c for c in components if "RECURRENCE-ID" not in c]
    overridden = [to_utc(v) for c in components if (v := value_of(c, "RECURRENCE-ID")) is not None]
    if len(masters) > 1 or len(set(overridden)) < len(overridden):
        raise InvalidCalendarData(
            "the same instance is defined twice", "valid-calendar-object-resource"
        )
    return components, kind, uids.pop()


def _check_properties(component: Component) -> None:
    """Every property but X- ones parsed as its type."""
    for name, message in component.errors:
        if not str(name).upper().startswith("X-"):
            raise _invalid(f"{component.name} {name}: {message}")


def _check_component(component: Component) -> None:
    """What RFC 5545 requires of the times of a component, as far as gk relies on it."""
    if component.name == "VEVENT" and value_of(component, "DTSTART") is None:
        raise _invalid("VEVENT without DTSTART")
    dtstart = anchor_of(component)
    rules = rules_of(component)
    if rules and dtstart is None:
        raise _invalid(f"{component.name} with RRULE but no DTSTART")
    for rule in rules:
        counts = rule.get("COUNT")
        if counts and int(counts[0]) < 1:
            raise _invalid(f"RRULE COUNT below 1: {rule.to_ical().decode()}")
        assert dtstart is not None
        error = rule_error(rule, dtstart)
        if error is not None:
            raise _invalid(f"RRULE {rule.to_ical().decode()}: {error}")


def _fix_rules(components: Sequence[Component]) -> bool:
    """
    Store UNTIL as RFC 5545 wants it when DTSTART has a zone or is a date;
    whether any rule changed.
    """
    changed = False
    for component in components:
        dtstart = anchor_of(component)
        rules = rules_of(component)
        if dtstart is None or not rules or (isinstance(dtstart, datetime) and is_floating(dtstart)):
            continue
        fixed: list[vRecur] = []
        for rule in rules:
            new = fix_rule(rule, dtstart)
            if new.get("UNTIL") != rule.get("UNTIL"):
                fixed.append(new)
                changed = True
            else:
                fixed.append(rule)
        component.pop("RRULE")
        component["RRULE"] = fixed if len(fixed) > 1 else fixed[0]
    return changed


def _bounds(components: Sequence[Component], kind: str) -> tuple[datetime | None, datetime | None]:
    """The index bounds (see L{CalendarObject.start}); floating values widened."""
    if kind == "VTODO" and all(component_span(c) is None for c in components):
        return _undated_todo(components)
    if kind == "VFREEBUSY":
        start, end = _freebusy_bounds(components)
    elif kind in ("VEVENT", "VTODO", "VJOURNAL"):
        start, end = series_bounds(components)
    else:
        return None, None
    if _has_floating(components):
        start = plus(start, -FLOATING_SLACK) if start is not None else None
        end = plus(end, FLOATING_SLACK) if end is not None else None
    return start, end


def _undated_todo(components: Sequence[Component]) -> tuple[datetime | None, datetime | None]:
    """RFC 4791 9.9 for a VTODO without DTSTART and DUE: by COMPLETED and CREATED."""
    created = [to_utc(v) for c in components if (v := value_of(c, "CREATED")) is not None]
    completed = [to_utc(v) for c in components if (v := value_of(c, "COMPLETED")) is not None]
    if completed:
        times = completed + created
        return min(times), max(times)
    if created:
        return min(created), None
    return None, None


def _freebusy_bounds(components: Sequence[Component]) -> tuple[datetime | None, datetime | None]:
    """A VFREEBUSY's DTSTART and DTEND, or the span of its FREEBUSY periods."""
    starts: list[datetime] = []
    ends: list[datetime] = []
    for component in components:
        start, end = value_of(component, "DTSTART"), value_of(component, "DTEND")
        if start is not None and end is not None:
            starts.append(to_utc(start))
            ends.append(to_utc(end))
            continue
        prop: Any = component.get("FREEBUSY")
        for period in prop if isinstance(prop, list) else [prop] if prop is not None else []:
            try:
                starts.append(to_utc(period.start))
                ends.append(to_utc(period.end))
            except (AttributeError, TypeError, ValueError):
                continue
    if not starts:
        return None, None
    return min(starts), max(ends)


def _has_floating(components: Sequence[Component]) -> bool:
    """Whether any time of the set is a date or a floating time."""
    for component in components:
        for name in _TIME_PROPERTIES:
            value = value_of(component, name)
            if value is not None and is_floating(value):
                return True
        for rdate in date_list(component, "RDATE"):
            if is_floating(rdate[0] if isinstance(rdate, tuple) else rdate):
                return True
    return False


__all__ = [
    "DEFAULT_COMPONENTS",
    "FLOATING_SLACK",
    "PRODID",
    "CalendarObject",
    "InvalidCalendarData",
    "parse_calendar_object",
]
