"""
CalDAV calendar-query filters (RFC 4791 9.7): parsed from XML and
evaluated on calendars; and the parsing of the CALDAV:calendar-data
element (9.6).

A filter is a tree of L{CompFilter}, L{PropFilter} and L{ParamFilter}
rooted at the VCALENDAR; L{matches} says whether a calendar object passes
it.  Time ranges follow the table of RFC 4791 9.9 for each component type
and look at every instance of a recurrence set, expanded by
L{gk.dav.calexpand}.  The expansion is bounded; a walk cut by the instance
cap counts as a match for the part it could not see (the conservative
answer: the client filters again).  A component-level test is made against
the component an instance comes from (the master or its override), so a
moved instance is found where it went, with its own properties.

This module is the entry point for REPORTs: it also offers what
L{gk.dav.calrender} does with calendar data (L{expand},
L{limit_recurrence_set}, L{select_properties}, L{render_calendar_data},
L{free_busy}, L{free_busy_calendar}) and the L{TimeRange} of
L{gk.dav.calexpand}.

Floating times and dates are read in C{floating_tz}: the collection's
calendar-timezone or the request's (9.6), UTC by default.  Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from xml.etree.ElementTree import Element

from icalendar import Calendar, Component, vDDDTypes

from gk.dav.calexpand import (
    MAX_INSTANCES,
    MAX_TIME,
    MIN_TIME,
    Expansion,
    TimeRange,
    component_span,
    expand_series,
    freebusy_periods,
    group_series,
    instance_in_range,
    split_series,
    standard,
    to_utc,
    undated_todo_in_range,
    value_of,
)
from gk.dav.calrender import (
    CalendarDataRequest,
    CompSpec,
    PropSpec,
    expand,
    free_busy,
    free_busy_calendar,
    limit_recurrence_set,
    render_calendar_data,
    select_properties,
)
from gk.dav.calrules import DAY, plus

CALDAV = "urn:ietf:params:xml:ns:caldav"
#: The collations of text-match (RFC 4791 7.5.1).
COLLATIONS = frozenset({"i;ascii-casemap", "i;octet"})
_SERIES_TYPES = ("VEVENT", "VTODO", "VJOURNAL")
_FAR_PAST = datetime.min.replace(tzinfo=UTC)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_YEAR = timedelta(days=366)
_UTC_TIME = re.compile(r"\s*(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\s*", re.ASCII)
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class QueryError(ValueError):
    """
    A query that cannot be answered.

    @ivar precondition: the local name of the CalDAV precondition to report,
        or L{None} for a plain 400 Bad Request.
    """

    def __init__(self, message: str, precondition: str | None = None) -> None:
        super().__init__(message)
        self.precondition = precondition


class InvalidFilter(QueryError):
    """A malformed filter (CALDAV:valid-filter)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "valid-filter")


class UnsupportedCollation(QueryError):
    """A text-match collation gk does not know (CALDAV:supported-collation)."""

    def __init__(self, collation: str) -> None:
        super().__init__(f"unsupported collation {collation!r}", "supported-collation")


class UnsupportedCalendarData(QueryError):
    """A calendar-data media type other than iCalendar 2.0 (CALDAV:supported-calendar-data)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "supported-calendar-data")


# -- the filter tree -------------------------------------------------------------


@dataclass(frozen=True)
class TextMatch:
    """A substring test (RFC 4791 9.7.5), optionally negated."""

    text: str
    collation: str = "i;ascii-casemap"
    negate: bool = False

    def __post_init__(self) -> None:
        if self.collation not in COLLATIONS:
            raise UnsupportedCollation(self.collation)

    def matches(self, values: Iterable[str]) -> bool:
        """Whether any of C{values} contains the text (none does, if negated)."""
        if self.collation == "i;octet":
            found = any(self.text in value for value in values)
        else:
            needle = self.text.translate(_ASCII_FOLD)
            found = any(needle in value.translate(_ASCII_FOLD) for value in values)
        return found != self.negate


@dataclass(frozen=True)
class ParamFilter:
    """
    A CALDAV:param-filter (9.7.3): the parameter exists (no condition), is
    absent (C{is_not_defined}), or has a value passing C{text_match}.
    """

    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass(frozen=True)
class PropFilter:
    """
    A CALDAV:prop-filter (9.7.2): absent (C{is_not_defined}), or some
    property of the name passes the time range, the text match and every
    parameter filter given.
    """

    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    text_match: TextMatch | None = None
    param_filters: tuple[ParamFilter, ...] = ()


@dataclass(frozen=True)
class CompFilter:
    """
    A CALDAV:comp-filter (9.7.1): absent (C{is_not_defined}), or some
    component of the name has an instance in the time range and passes
    every property and component filter given.
    """

    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    prop_filters: tuple[PropFilter, ...] = ()
    comp_filters: tuple[CompFilter, ...] = ()


# -- parsing ---------------------------------------------------------------------


def _c(local: str) -> str:
    return f"{{{CALDAV}}}{local}"


def parse_utc(text: str) -> datetime:
    """A CalDAV time-range timestamp, C{20060104T000000Z}. @raise InvalidFilter:"""
    match = _UTC_TIME.fullmatch(text)
    if match is None:
        raise InvalidFilter(f"not a UTC date-time: {text!r}")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:
        raise InvalidFilter(f"not a date-time: {text!r}") from e


def parse_time_range(element: Element, *, both: bool = False) -> TimeRange:
    """
    A CALDAV:time-range (or expand, limit-recurrence-set, limit-freebusy-set)
    element.  @param both: whether start and end are both required.
    @raise InvalidFilter: neither given (or one missing when C{both}), bad format.
    """
    start, end = element.get("start"), element.get("end")
    if (start is None and end is None) or (both and (start is None or end is None)):
        raise InvalidFilter(f"{element.tag} needs start and end")
    try:
        return TimeRange(
            parse_utc(start) if start is not None else None,
            parse_utc(end) if end is not None else None,
        )
    except InvalidFilter:
        raise
    except ValueError as e:
        raise InvalidFilter(str(e)) from e


def _name(element: Element) -> str:
    name = (element.get("name") or "").strip()
    if not name:
        raise InvalidFilter(f"{element.tag} without name")
    return name.upper()


def _text_match(element: Element) -> TextMatch:
    negate = (element.get("negate-condition") or "no").strip().lower()
    if negate not in ("yes", "no"):
        raise InvalidFilter(f"negate-condition {negate!r}")
    collation = (element.get("collation") or "i;ascii-casemap").strip()
    return TextMatch("".join(element.itertext()), collation, negate == "yes")


def _children(element: Element, local: str) -> list[Element]:
    return [child for child in element if child.tag == _c(local)]


def _one(element: Element, local: str) -> Element | None:
    found = _children(element, local)
    if len(found) > 1:
        raise InvalidFilter(f"{element.tag} has several {local}")
    return found[0] if found else None


def _param_filter(element: Element) -> ParamFilter:
    match = _one(element, "text-match")
    return ParamFilter(
        _name(element),
        _one(element, "is-not-defined") is not None,
        _text_match(match) if match is not None else None,
    )


def _prop_filter(element: Element) -> PropFilter:
    time_range, match = _one(element, "time-range"), _one(element, "text-match")
    return PropFilter(
        _name(element),
        _one(element, "is-not-defined") is not None,
        parse_time_range(time_range) if time_range is not None else None,
        _text_match(match) if match is not None else None,
        tuple(_param_filter(child) for child in _children(element, "param-filter")),
    )


def _comp_filter(element: Element) -> CompFilter:
    time_range = _one(element, "time-range")
    return CompFilter(
        _name(element),
        _one(element, "is-not-defined") is not None,
        parse_time_range(time_range) if time_range is not None else None,
        tuple(_prop_filter(child) for child in _children(element, "prop-filter")),
        tuple(_comp_filter(child) for child in _children(element, "comp-filter")),
    )


def parse_filter(element: Element) -> CompFilter:
    """
    The VCALENDAR comp-filter of a C{{urn:ietf:params:xml:ns:caldav}filter}
    element.  Elements of other namespaces are ignored.

    @raise InvalidFilter: not a filter, not one VCALENDAR comp-filter, a
        missing name, a time-range without start and end or with a bad time.
    @raise UnsupportedCollation: a text-match collation other than
        L{COLLATIONS}.
    """
    if element.tag != _c("filter"):
        raise InvalidFilter(f"expected CALDAV:filter, got {element.tag}")
    comps = _children(element, "comp-filter")
    if len(comps) != 1:
        raise InvalidFilter("a filter holds exactly one comp-filter")
    top = _comp_filter(comps[0])
    if top.name != "VCALENDAR":
        raise InvalidFilter(f"the top comp-filter must be VCALENDAR, not {top.name}")
    return top


# -- matching --------------------------------------------------------------------


class _Context:
    """One evaluation: its parameters and the expansions made so far."""

    def __init__(self, floating_tz: tzinfo, max_instances: int) -> None:
        self.floating_tz = floating_tz
        self.max_instances = max_instances
        self._groups: dict[int, list[Component]] = {}
        self._expansions: dict[tuple[int, datetime, datetime], Expansion] = {}

    def group(self, parent: Component, component: Component) -> list[Component]:
        """The recurrence set C{component} belongs to among C{parent}'s children."""
        if id(component) not in self._groups:
            kids = [c for c in parent.subcomponents if c.name in _SERIES_TYPES]
            for group in group_series(kids):
                for member in group:
                    self._groups[id(member)] = group
        return self._groups.get(id(component), [component])

    def expansion(self, group: list[Component], start: datetime, end: datetime) -> Expansion:
        key = (id(group), start, end)
        if key not in self._expansions:
            self._expansions[key] = expand_series(
                group, start, end, floating_tz=self.floating_tz, max_instances=self.max_instances
            )
        return self._expansions[key]


def matches(
    calendar: Calendar,
    filter: CompFilter,
    max_instances: int = MAX_INSTANCES,
    floating_tz: tzinfo = UTC,
) -> bool:
    """
    Whether C{calendar} passes the calendar-query C{filter} (RFC 4791 9.7).

    @param max_instances: the most instances walked per recurrence rule.
    @param floating_tz: the zone of floating times and dates.
    """
    calendar = standard(calendar)
    if filter.name != str(calendar.name).upper():
        return filter.is_not_defined
    if filter.is_not_defined:
        return False
    context = _Context(floating_tz, max_instances)
    return _component_matches(context, calendar, filter, None, None)


def _component_matches(
    context: _Context,
    component: Component,
    filter: CompFilter,
    parent: Component | None,
    parent_group: list[Component] | None,
) -> bool:
    """
    C{component} (named as the filter) against the filter's conditions;
    C{parent_group} is the recurrence set of C{parent}, for alarms.
    """
    time_range = filter.time_range
    if time_range is not None and not _in_range(
        context, component, time_range, parent, parent_group
    ):
        return False
    if not all(_prop_matches(context, component, f) for f in filter.prop_filters):
        return False
    own_group = None
    if parent is not None and component.name in _SERIES_TYPES:
        own_group = context.group(parent, component)
    for child_filter in filter.comp_filters:
        children = [c for c in component.subcomponents if str(c.name).upper() == child_filter.name]
        if child_filter.is_not_defined:
            if children:
                return False
        elif not any(
            _component_matches(context, child, child_filter, component, own_group)
            for child in children
        ):
            return False
    return True


def _in_range(
    context: _Context,
    component: Component,
    time_range: TimeRange,
    parent: Component | None,
    parent_group: list[Component] | None,
) -> bool:
    """The time-range test of RFC 4791 9.9 for C{component}."""
    name = component.name
    if name in _SERIES_TYPES and parent is not None:
        if name == "VTODO" and component_span(component) is None:
            return undated_todo_in_range(component, time_range)
        group = context.group(parent, component)
        for low, high in _windows(time_range):
            expansion = context.expansion(group, low, high)
            if any(
                instance.component is component and instance_in_range(instance, time_range)
                for instance in expansion.instances
            ):
                return True
        cut = expansion.truncated_after
        master, _ = split_series(group)
        return cut is not None and component is master and cut < time_range.high
    if name == "VFREEBUSY":
        return _freebusy_in_range(component, time_range, context.floating_tz)
    if name == "VALARM" and parent is not None and parent_group is not None:
        return _alarm_in_range(context, component, parent, parent_group, time_range)
    return False


def _windows(time_range: TimeRange) -> list[tuple[datetime, datetime]]:
    """
    The windows to expand for a range, nearest first: an open range is
    tried over a year from its bound before the rest, so that the usual
    answer does not cost the whole instance cap.
    """
    start, end = time_range.start, time_range.end
    if start is not None and end is not None:
        return [(start, end)]
    if start is not None:
        return [(start, plus(start, _YEAR)), (start, MAX_TIME)]
    if end is not None:
        return [(plus(end, -_YEAR), end), (MIN_TIME, end)]
    return [(MIN_TIME, MAX_TIME)]


def _freebusy_in_range(component: Component, time_range: TimeRange, floating_tz: tzinfo) -> bool:
    start, end = value_of(component, "DTSTART"), value_of(component, "DTEND")
    if start is not None and end is not None:
        low, high = to_utc(start, floating_tz), to_utc(end, floating_tz)
        return time_range.low <= high and time_range.high > low
    return any(
        time_range.low < end and time_range.high > start
        for start, end, _ in freebusy_periods(component, floating_tz)
    )


def _alarm_in_range(
    context: _Context,
    alarm: Component,
    parent: Component,
    group: list[Component],
    time_range: TimeRange,
) -> bool:
    """Whether a trigger (or repetition) of C{alarm} falls in C{time_range}."""
    prop: Any = alarm.get("TRIGGER")
    if not isinstance(prop, vDDDTypes):
        return False
    try:
        repeat = max(0, min(int(alarm.get("REPEAT", 0)), 1000))
    except (TypeError, ValueError):
        repeat = 0
    snooze: Any = alarm.get("DURATION")
    step = snooze.dt if isinstance(snooze, vDDDTypes) and isinstance(snooze.dt, timedelta) else None
    steps = [step * k for k in range(repeat + 1)] if step is not None else [timedelta()]
    trigger = prop.dt
    if isinstance(trigger, date):
        moment = to_utc(trigger, context.floating_tz)
        return any(time_range.contains(plus(moment, offset)) for offset in steps)
    if not isinstance(trigger, timedelta):
        return False
    reach = max(abs(trigger + offset) for offset in steps) + DAY
    low, high = plus(time_range.low, -reach), plus(time_range.high, reach)
    related_end = str(prop.params.get("RELATED", "START")).upper() == "END"
    for instance in context.expansion(group, low, high).instances:
        if instance.component is not parent:
            continue
        base = instance.end if related_end else instance.start
        if any(time_range.contains(plus(base, trigger + offset)) for offset in steps):
            return True
    return False


def _properties(component: Component, name: str) -> list[Any]:
    prop: Any = component.get(name)
    if prop is None:
        return []
    return list(prop) if isinstance(prop, list) else [prop]


def _text(value: Any) -> str:
    """A property value as text: unescaped for TEXT, as written otherwise."""
    if isinstance(value, str):
        return str(value)
    try:
        return bytes(value.to_ical()).decode("utf-8", "replace")
    except (AttributeError, TypeError, ValueError):
        return str(value)


def _prop_in_range(value: Any, time_range: TimeRange, floating_tz: tzinfo) -> bool:
    """A DATE, DATE-TIME or PERIOD property value against a time range."""
    moment = getattr(value, "dt", None) if isinstance(value, vDDDTypes) else None
    if isinstance(moment, tuple) and isinstance(moment[0], date):
        start = to_utc(moment[0], floating_tz)
        end = plus(start, moment[1]) if isinstance(moment[1], timedelta) else to_utc(moment[1])
        return time_range.overlaps(start, end)
    if isinstance(moment, datetime):
        return time_range.contains(to_utc(moment, floating_tz))
    if isinstance(moment, date):
        start = to_utc(moment, floating_tz)
        return time_range.overlaps(start, plus(start, DAY))
    return False


def _prop_matches(context: _Context, component: Component, filter: PropFilter) -> bool:
    """Whether some property of the filter's name passes all its conditions (9.7.2)."""
    values = _properties(component, filter.name)
    if filter.is_not_defined:
        return not values
    for value in values:
        if filter.time_range is not None and not _prop_in_range(
            value, filter.time_range, context.floating_tz
        ):
            continue
        if filter.text_match is not None and not filter.text_match.matches([_text(value)]):
            continue
        if all(_param_matches(value, f) for f in filter.param_filters):
            return True
    return False


def _param_matches(value: Any, filter: ParamFilter) -> bool:
    params = getattr(value, "params", None) or {}
    param = params.get(filter.name)
    if filter.is_not_defined:
        return param is None
    if param is None:
        return False
    if filter.text_match is None:
        return True
    return filter.text_match.matches(
        [str(v) for v in (param if isinstance(param, list) else [param])]
    )


# -- calendar-data ---------------------------------------------------------------


def _comp_spec(element: Element) -> CompSpec:
    props = tuple(
        PropSpec(_name(p), (p.get("novalue") or "no").strip().lower() == "yes")
        for p in _children(element, "prop")
    )
    return CompSpec(
        _name(element),
        all_props=bool(_children(element, "allprop")),
        props=props,
        all_comps=bool(_children(element, "allcomp")),
        comps=tuple(_comp_spec(c) for c in _children(element, "comp")),
    )


def parse_calendar_data_request(element: Element) -> CalendarDataRequest:
    """
    A CALDAV:calendar-data element of a REPORT's prop (RFC 4791 9.6).

    @raise UnsupportedCalendarData: a content-type other than text/calendar
        or a version other than 2.0.
    @raise QueryError: malformed (an expand without start and end, expand
        with limit-recurrence-set, a comp or prop without name).
    """
    if element.tag != _c("calendar-data"):
        raise QueryError(f"expected CALDAV:calendar-data, got {element.tag}")
    media = (element.get("content-type") or "text/calendar").split(";")[0].strip().lower()
    version = (element.get("version") or "2.0").strip()
    if media != "text/calendar" or version != "2.0":
        raise UnsupportedCalendarData(f"{media} version {version}")
    try:
        comp = _one(element, "comp")
        ranges = {
            local: parse_time_range(found, both=True)
            for local in ("expand", "limit-recurrence-set", "limit-freebusy-set")
            if (found := _one(element, local)) is not None
        }
        if "expand" in ranges and "limit-recurrence-set" in ranges:
            raise QueryError("expand and limit-recurrence-set together")
        return CalendarDataRequest(
            _comp_spec(comp) if comp is not None else None,
            ranges.get("expand"),
            ranges.get("limit-recurrence-set"),
            ranges.get("limit-freebusy-set"),
        )
    except InvalidFilter as e:
        raise QueryError(str(e)) from e


__all__ = [
    "CALDAV",
    "COLLATIONS",
    "MAX_INSTANCES",
    "CalendarDataRequest",
    "CompFilter",
    "CompSpec",
    "InvalidFilter",
    "ParamFilter",
    "PropFilter",
    "PropSpec",
    "QueryError",
    "TextMatch",
    "TimeRange",
    "UnsupportedCalendarData",
    "UnsupportedCollation",
    "expand",
    "free_busy",
    "free_busy_calendar",
    "instance_in_range",
    "limit_recurrence_set",
    "matches",
    "parse_calendar_data_request",
    "parse_filter",
    "parse_time_range",
    "parse_utc",
    "render_calendar_data",
    "select_properties",
]
