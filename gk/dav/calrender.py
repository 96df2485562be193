"""
The calendar data a REPORT returns (RFC 4791 9.6) and free-busy answers
(7.10), from stored calendars.

A CALDAV:calendar-data element (parsed by
L{gk.dav.calquery.parse_calendar_data_request} into a
L{CalendarDataRequest}) asks for the recurrence set expanded into its
instances in a range (L{expand}, 9.6.5), or only the overridden instances
that touch a range (L{limit_recurrence_set}, 9.6.6), only the FREEBUSY
periods that touch a range (9.6.7), and only some components and
properties (L{select_properties}, 9.6.1); L{render_calendar_data} does
all of it.  L{free_busy} and L{free_busy_calendar} answer free-busy-query.
Expansion is bounded as L{gk.dav.calexpand} describes.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from icalendar import Calendar, Component, FreeBusy, vDDDLists, vDDDTypes, vText

from gk.dav.calexpand import (
    MAX_INSTANCES,
    Instance,
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
from gk.dav.calrules import plus

#: PRODID of the calendars gk writes.
PRODID = "-//gk//CalDAV//EN"

_SERIES_TYPES = ("VEVENT", "VTODO", "VJOURNAL")


@dataclass(frozen=True)
class PropSpec:
    """A CALDAV:prop of calendar-data: a property to return, without its value if novalue."""

    name: str
    novalue: bool = False


@dataclass(frozen=True)
class CompSpec:
    """A CALDAV:comp of calendar-data (9.6.1): what of a component to return."""

    name: str
    all_props: bool = False
    props: tuple[PropSpec, ...] = ()
    all_comps: bool = False
    comps: tuple[CompSpec, ...] = ()


@dataclass(frozen=True)
class CalendarDataRequest:
    """A CALDAV:calendar-data request element: all optional."""

    comp: CompSpec | None = None
    expand: TimeRange | None = None
    limit_recurrence_set: TimeRange | None = None
    limit_freebusy_set: TimeRange | None = None


def select_properties(calendar: Component, spec: CompSpec) -> Component:
    """
    A copy of C{calendar} with only the components and properties C{spec}
    names (RFC 4791 9.6.1); a name that does not match gives an empty one.
    """
    selected = calendar.copy()
    if str(calendar.name).upper() != spec.name:
        for name in list(selected):
            del selected[name]
        return selected
    if not spec.all_props:
        wanted = {p.name: p for p in spec.props}
        for name in list(selected):
            if name.upper() not in wanted:
                del selected[name]
            elif wanted[name.upper()].novalue:
                found: Any = selected.get(name)
                count = len(found) if isinstance(found, list) else 1
                del selected[name]
                for _ in range(count):
                    selected.add(name, vText(""))
    for child in calendar.subcomponents:
        if spec.all_comps:
            selected.add_component(child)
            continue
        for child_spec in spec.comps:
            if child_spec.name == str(child.name).upper():
                selected.add_component(select_properties(child, child_spec))
                break
    return selected


def _utc_value(value: date, floating_tz: tzinfo) -> date:
    """A date-time in UTC; a date stays a date."""
    return to_utc(value, floating_tz) if isinstance(value, datetime) else value


def _instance_component(instance: Instance, recurring: bool, floating_tz: tzinfo) -> Component:
    """One instance as a component of its own, its times in UTC (9.6.5)."""
    source = instance.component
    copy = source.copy()
    for name in ("RRULE", "RDATE", "EXDATE", "EXRULE", "DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
        copy.pop(name, None)
    for name, value in list(copy.items()):
        if isinstance(value, vDDDTypes) and isinstance(value.dt, datetime):
            copy[name] = vDDDTypes(to_utc(value.dt, floating_tz))
    if "DTSTART" in source:
        copy["DTSTART"] = vDDDTypes(_utc_value(instance.dtstart, floating_tz))
    for name in ("DTEND", "DUE"):
        if name in source:
            copy[name] = vDDDTypes(_utc_value(instance.dtend, floating_tz))
    if recurring and instance.recurrence_id is not None:
        copy["RECURRENCE-ID"] = vDDDTypes(_utc_value(instance.recurrence_id, floating_tz))
    for child in source.subcomponents:
        copy.add_component(child)
    return copy


def _series(calendar: Component) -> list[list[Component]]:
    return group_series(c for c in calendar.subcomponents if c.name in _SERIES_TYPES)


def expand(
    calendar: Calendar,
    start: datetime,
    end: datetime,
    floating_tz: tzinfo = UTC,
    max_instances: int = MAX_INSTANCES,
) -> Calendar:
    """
    C{calendar} with every recurrence set replaced by its instances that
    overlap [C{start}, C{end}) (RFC 4791 9.6.5): each its own component with
    RECURRENCE-ID, times in UTC, no RRULE, RDATE or EXDATE; non-recurring
    components only if they overlap; no VTIMEZONE.
    """
    calendar = standard(calendar)
    time_range = TimeRange(start, end)
    result = calendar.copy()
    for child in calendar.subcomponents:
        if child.name not in _SERIES_TYPES and child.name != "VTIMEZONE":
            result.add_component(child)
    for group in _series(calendar):
        if group[0].name == "VTODO" and all(component_span(c) is None for c in group):
            result_todos = [c for c in group if undated_todo_in_range(c, time_range)]
            for todo in result_todos:
                result.add_component(todo)
            continue
        recurring = len(group) > 1 or any("RRULE" in c or "RDATE" in c for c in group)
        expansion = expand_series(
            group, start, end, floating_tz=floating_tz, max_instances=max_instances
        )
        for instance in expansion.instances:
            if instance_in_range(instance, time_range):
                result.add_component(_instance_component(instance, recurring, floating_tz))
    return result


def limit_recurrence_set(
    calendar: Calendar, start: datetime, end: datetime, floating_tz: tzinfo = UTC
) -> Calendar:
    """
    C{calendar} with only the overridden instances that affect [C{start},
    C{end}) besides their masters (RFC 4791 9.6.6): those whose new or
    original time overlaps the range.
    """
    time_range = TimeRange(start, end)
    masters = {}
    for group in _series(calendar):
        master, _ = split_series(group)
        for member in group:
            masters[id(member)] = master
    result = calendar.copy()
    for child in calendar.subcomponents:
        rid = value_of(child, "RECURRENCE-ID")
        if rid is None or _override_affects(
            child, rid, masters.get(id(child)), time_range, floating_tz
        ):
            result.add_component(child)
    return result


def _override_affects(
    override: Component,
    rid: date,
    master: Component | None,
    time_range: TimeRange,
    floating_tz: tzinfo,
) -> bool:
    span = component_span(override)
    if span is not None and time_range.overlaps(
        to_utc(span[0], floating_tz), to_utc(span[1], floating_tz)
    ):
        return True
    master_span = component_span(master) if master is not None else None
    original = to_utc(rid, floating_tz)
    length = (
        to_utc(master_span[1], floating_tz) - to_utc(master_span[0], floating_tz)
        if master_span is not None
        else timedelta()
    )
    return time_range.overlaps(original, plus(original, length))


def _limit_freebusy(calendar: Component, time_range: TimeRange, floating_tz: tzinfo) -> Component:
    """C{calendar} with only the FREEBUSY periods that overlap (9.6.7)."""
    result = calendar.copy()
    for child in calendar.subcomponents:
        if child.name == "VFREEBUSY" and "FREEBUSY" in child:
            trimmed = child.copy()
            trimmed.pop("FREEBUSY")
            for start, end, kind in freebusy_periods(child, floating_tz):
                if time_range.overlaps(start, end):
                    period = vDDDLists([(start, end)])
                    if kind != "BUSY":
                        period.params["FBTYPE"] = kind
                    trimmed.add("FREEBUSY", period)
            for grandchild in child.subcomponents:
                trimmed.add_component(grandchild)
            child = trimmed
        result.add_component(child)
    return result


def render_calendar_data(
    calendar: Calendar,
    request: CalendarDataRequest,
    floating_tz: tzinfo = UTC,
    max_instances: int = MAX_INSTANCES,
) -> bytes:
    """The calendar-data to return for C{calendar} as C{request} asks: expanded or
    limited, then the selected parts, serialised."""
    result: Component = calendar
    if request.expand is not None:
        assert request.expand.start is not None and request.expand.end is not None
        result = expand(
            calendar, request.expand.start, request.expand.end, floating_tz, max_instances
        )
    elif request.limit_recurrence_set is not None:
        limit = request.limit_recurrence_set
        assert limit.start is not None and limit.end is not None
        result = limit_recurrence_set(calendar, limit.start, limit.end, floating_tz)
    if request.limit_freebusy_set is not None:
        result = _limit_freebusy(result, request.limit_freebusy_set, floating_tz)
    if request.comp is not None:
        result = select_properties(result, request.comp)
    return bytes(result.to_ical())


# -- free busy -------------------------------------------------------------------


def free_busy(
    calendars: Iterable[Calendar],
    start: datetime,
    end: datetime,
    floating_tz: tzinfo = UTC,
    max_instances: int = MAX_INSTANCES,
) -> list[tuple[datetime, datetime, str]]:
    """
    The busy time in [C{start}, C{end}) of C{calendars} (RFC 4791 7.10):
    (start, end, FBTYPE) in UTC, clipped to the range, sorted, overlapping
    periods of one type merged.  Events count as BUSY, or BUSY-TENTATIVE if
    TENTATIVE; transparent, cancelled and zero-length ones do not count.
    The FREEBUSY periods of stored VFREEBUSY components count with their
    FBTYPE (FREE ones do not); unknown types count as BUSY (RFC 5545 3.2.9).
    """
    time_range = TimeRange(start, end)
    found: dict[str, list[tuple[datetime, datetime]]] = {}

    def add(low: datetime, high: datetime, kind: str) -> None:
        low, high = max(low, start), min(high, end)
        if low < high:
            found.setdefault(kind, []).append((low, high))

    for calendar in calendars:
        calendar = standard(calendar)
        events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
        for group in group_series(events):
            expansion = expand_series(
                group, start, end, floating_tz=floating_tz, max_instances=max_instances
            )
            for instance in expansion.instances:
                event = instance.component
                status = str(event.get("STATUS", "CONFIRMED")).upper()
                if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
                    continue
                if status == "CANCELLED" or not instance_in_range(instance, time_range):
                    continue
                add(
                    instance.start,
                    instance.end,
                    "BUSY-TENTATIVE" if status == "TENTATIVE" else "BUSY",
                )
        for component in calendar.subcomponents:
            if component.name == "VFREEBUSY":
                for low, high, kind in freebusy_periods(component, floating_tz):
                    if kind != "FREE":
                        known = kind in ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")
                        add(low, high, kind if known else "BUSY")
    merged: list[tuple[datetime, datetime, str]] = []
    for kind, periods in found.items():
        periods.sort()
        current = list(periods[0])
        for low, high in periods[1:]:
            if low <= current[1]:
                current[1] = max(current[1], high)
            else:
                merged.append((current[0], current[1], kind))
                current = [low, high]
        merged.append((current[0], current[1], kind))
    merged.sort()
    return merged


def free_busy_calendar(
    calendars: Iterable[Calendar],
    start: datetime,
    end: datetime,
    floating_tz: tzinfo = UTC,
    max_instances: int = MAX_INSTANCES,
    now: datetime | None = None,
) -> bytes:
    """
    The answer to a free-busy-query (RFC 4791 7.10): a VCALENDAR with one
    VFREEBUSY (DTSTAMP C{now}, default the current time; DTSTART, DTEND) and
    one FREEBUSY property per type, listing the merged L{free_busy} periods.
    """
    calendar = Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", PRODID)
    component = FreeBusy()
    component.add("DTSTAMP", (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0))
    component.add("DTSTART", start.astimezone(UTC))
    component.add("DTEND", end.astimezone(UTC))
    periods = free_busy(calendars, start, end, floating_tz, max_instances)
    for kind in ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE"):
        of_kind = [(low, high) for low, high, k in periods if k == kind]
        if of_kind:
            value = vDDDLists(of_kind)
            value.params["FBTYPE"] = kind
            component.add("FREEBUSY", value)
    calendar.add_component(component)
    return bytes(calendar.to_ical())
