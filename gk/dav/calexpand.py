"""
Recurrence sets of calendar components expanded into instances (RFC 4791),
with the time-range test of RFC 4791 9.9, bounded against denial of
service.

A recurrence set is the components of one calendar object with the same
type and UID: the master (no RECURRENCE-ID; may have RRULE, RDATE and
EXDATE) and its overridden instances (L{group_series}).  L{expand_series}
turns one into L{Instance}s over a time window with recurring-ical-events;
L{series_bounds} gives the first start and last end for indexing.  The
guards:

  - rules are checked, fixed, dropped when barren and re-anchored near the
    window by L{gk.dav.calrules} before the library walks them;
  - at most C{max_instances} instances of a rule are walked per call: the
    window ends where that limit falls, and the cut is reported as
    L{Expansion.truncated_after};
  - windows are clipped to [L{MIN_TIME}, L{MAX_TIME}]; RDATE lists are cut
    at C{max_instances} values.

Floating times and dates are read in the time zone the caller gives (the
collection's CALDAV:calendar-timezone, RFC 4791 9.6), UTC by default.
RANGE=THISANDFUTURE overrides are treated as overriding their own instance
only.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import recurring_ical_events  # type: ignore[import-untyped]
import x_wr_timezone  # type: ignore[import-untyped]
from icalendar import Calendar, Component, vDDDLists, vDDDTypes, vRecur

from gk.dav.calrules import (
    DAY,
    RULE_ERRORS,
    Value,
    cap_time,
    comparable,
    dateutil_rule,
    fix_rule,
    is_barren,
    naive,
    plus,
    rebase,
)

#: Instances walked per rule and call, by default.
MAX_INSTANCES = 10_000
#: Nothing before or after these is expanded.
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
#: How far past its first instance L{series_bounds} follows a rule.
HORIZON = timedelta(days=100 * 366)

_FAR_PAST = datetime.min.replace(tzinfo=UTC)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_LIBRARY_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, ArithmeticError)


@dataclass(frozen=True)
class Instance:
    """One instance of a recurrence set, or the only one of a plain component."""

    #: Its bounds in UTC; C{end == start} for an instant.
    start: datetime
    end: datetime
    #: The same as written: a C{date} for all-day instances, else aware.
    dtstart: Value
    dtend: Value
    #: Where its properties come from: the master or the override.
    component: Component
    #: The original start (RECURRENCE-ID) in a recurrence set, else L{None}.
    recurrence_id: Value | None


@dataclass(frozen=True)
class Expansion:
    """The instances found, sorted by start, and where the walk stopped."""

    instances: list[Instance]
    #: Set when a guard stopped the walk: later instances are unknown.
    truncated_after: datetime | None = None


@dataclass(frozen=True)
class TimeRange:
    """[start, end) in UTC; a missing side is open (RFC 4791 9.9)."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if any(t is not None and t.tzinfo is None for t in (self.start, self.end)):
            raise ValueError("time-range times must be aware")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("time-range end is not after its start")

    @property
    def low(self) -> datetime:
        return self.start if self.start is not None else _FAR_PAST

    @property
    def high(self) -> datetime:
        return self.end if self.end is not None else _FAR_FUTURE

    def contains(self, moment: datetime) -> bool:
        """Whether the instant C{moment} lies in the range: C{start <= moment < end}."""
        return self.low <= moment < self.high

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether [C{start}, C{end}) overlaps; an instant by L{contains}."""
        if end <= start:
            return self.contains(start)
        return self.low < end and self.high > start


# -- values ----------------------------------------------------------------------


def to_utc(value: Value, floating_tz: tzinfo = UTC) -> datetime:
    """C{value} as an aware UTC datetime; dates and floating times in C{floating_tz}."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=floating_tz)
    else:
        aware = datetime(value.year, value.month, value.day, tzinfo=floating_tz)
    try:
        return aware.astimezone(UTC)
    except (OverflowError, ValueError):
        return _FAR_PAST if aware.year < 5000 else _FAR_FUTURE


def is_floating(value: Value) -> bool:
    """A DATE or a DATE-TIME without time zone: its instant depends on the reader."""
    return not isinstance(value, datetime) or value.tzinfo is None


def value_of(component: Component, name: str) -> Value | None:
    """The DATE or DATE-TIME value of property C{name} (the first, if repeated), or None."""
    prop: Any = component.get(name)
    if isinstance(prop, list):
        prop = prop[0] if prop else None
    if not isinstance(prop, vDDDTypes):
        return None
    value = prop.dt
    return value if isinstance(value, date) else None


def duration_of(component: Component, name: str = "DURATION") -> timedelta | None:
    """The DURATION value of C{component}, or None."""
    prop: Any = component.get(name)
    if isinstance(prop, vDDDTypes) and isinstance(prop.dt, timedelta):
        return prop.dt
    return None


def date_list(component: Component, name: str) -> list[Value | tuple[Value, Value | timedelta]]:
    """The values of every RDATE or EXDATE property: dates, date-times and periods."""
    prop: Any = component.get(name)
    values: list[Value | tuple[Value, Value | timedelta]] = []
    for item in prop if isinstance(prop, list) else [prop]:
        if isinstance(item, vDDDLists):
            for one in item.dts:
                value = one.dt
                if isinstance(value, date) or (
                    isinstance(value, tuple) and isinstance(value[0], date)
                ):
                    values.append(value)
    return values


def rules_of(component: Component) -> list[vRecur]:
    """The RRULE values of C{component} (unparseable ones are left out)."""
    prop: Any = component.get("RRULE")
    return [
        rule for rule in (prop if isinstance(prop, list) else [prop]) if isinstance(rule, vRecur)
    ]


def anchor_of(component: Component) -> Value | None:
    """
    Where a component's recurrence starts: DTSTART, or DUE for a VTODO
    without DTSTART (as tasks apps write recurring to-dos).
    """
    start = value_of(component, "DTSTART")
    if start is None and component.name == "VTODO":
        return value_of(component, "DUE")
    return start


def _add(value: Value, delta: timedelta) -> Value:
    """C{value + delta}; a date becomes a (floating) date-time if C{delta} has a time part."""
    if not isinstance(value, datetime) and delta.seconds:
        value = datetime(value.year, value.month, value.day)
    return plus(value, delta)


def component_span(component: Component) -> tuple[Value, Value] | None:
    """
    The start and end of a VEVENT, VTODO or VJOURNAL as written, with the
    defaults of RFC 5545 and RFC 4791 9.9: an event without DTEND or
    DURATION lasts one day if all-day, else no time; a to-do spans DTSTART
    to DUE (or DTSTART+DURATION), or is the instant of DTSTART or DUE; an
    all-day journal lasts one day.  An end before the start is taken as
    missing.  L{None} when it has no time.
    """
    start = value_of(component, "DTSTART")
    if component.name == "VTODO":
        due = value_of(component, "DUE")
        if start is None:
            return (due, due) if due is not None else None
    elif start is None:
        return None
    elif component.name == "VJOURNAL":
        return start, (start if isinstance(start, datetime) else plus(start, DAY))
    end = _end_of(component, start)
    if end is not None and to_utc(end) >= to_utc(start):
        return start, end
    if component.name == "VTODO" or isinstance(start, datetime):
        return start, start
    return start, plus(start, DAY)


def _end_of(component: Component, start: Value) -> Value | None:
    """DTEND (DUE for a VTODO) or DTSTART+DURATION, as written."""
    end = value_of(component, "DUE" if component.name == "VTODO" else "DTEND")
    if end is not None:
        return end
    duration = duration_of(component)
    return _add(start, duration) if duration is not None else None


def _instance(
    component: Component, span: tuple[Value, Value], floating_tz: tzinfo, rid: Value | None
) -> Instance:
    start, end = to_utc(span[0], floating_tz), to_utc(span[1], floating_tz)
    if end < start:
        return Instance(end, start, span[1], span[0], component, rid)
    return Instance(start, end, span[0], span[1], component, rid)


# -- expansion -------------------------------------------------------------------


def _localised(value: Any, floating_tz: tzinfo) -> Any:
    if isinstance(value, tuple):
        return tuple(_localised(part, floating_tz) for part in value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=floating_tz)
    return value


def _prepared(component: Component, floating_tz: tzinfo, master: bool) -> Component:
    """A copy for the library: floating times made zoned, broken values left out."""
    copy = component.copy()
    for name in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "RRULE", "RDATE", "EXDATE"):
        copy.pop(name, None)
    for name in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
        value = value_of(component, name)
        if value is not None:
            copy[name] = vDDDTypes(_localised(value, floating_tz))
    start = value_of(component, "DTSTART")
    end = _end_of(component, start) if start is not None else None
    if start is not None and end is not None and to_utc(end) < to_utc(start):
        # the library would swap the ends, and so move DTSTART: leave the end out
        for name in ("DTEND", "DUE", "DURATION"):
            copy.pop(name, None)
    if master:
        if start is None and component.name == "VTODO" and "DUE" in copy:
            copy["DTSTART"] = copy["DUE"]  # the library expands from DTSTART
        for name in ("RDATE", "EXDATE"):
            values = [_localised(v, floating_tz) for v in date_list(component, name)]
            if values:
                copy[name] = vDDDLists(values)
    return copy


def _key(value: Value) -> datetime:
    """A RECURRENCE-ID as the library identifies it: naive UTC (dates: naive midnight)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime(value.year, value.month, value.day)


def standard(calendar: Calendar) -> Calendar:
    """
    C{calendar} in RFC 5545 form: the times of a calendar with X-WR-TIMEZONE
    (Google's exports) moved into that zone by x-wr-timezone; a calendar
    without it, or naming an unknown zone, is returned as it is.
    """
    if "X-WR-TIMEZONE" not in calendar:
        return calendar
    try:
        converted = x_wr_timezone.to_standard(calendar)
    except Exception:  # an unknown zone name: keep the times as they are
        return calendar
    return converted if isinstance(converted, Calendar) else calendar


def split_series(components: Sequence[Component]) -> tuple[Component | None, list[Component]]:
    """The master (the first component without RECURRENCE-ID) and the overrides."""
    master = next((c for c in components if "RECURRENCE-ID" not in c), None)
    return master, [c for c in components if "RECURRENCE-ID" in c]


def group_series(components: Iterable[Component]) -> list[list[Component]]:
    """C{components} grouped into recurrence sets by type and UID, in order of appearance."""
    groups: dict[tuple[str, str], list[Component]] = {}
    for index, component in enumerate(components):
        uid = str(component.get("UID", "")) or f"\0{index}"
        groups.setdefault((str(component.name), uid), []).append(component)
    return list(groups.values())


def is_recurring(components: Sequence[Component]) -> bool:
    """Whether the set has overrides or a master with RRULE or RDATE."""
    master, overrides = split_series(components)
    return bool(overrides) or (master is not None and ("RRULE" in master or "RDATE" in master))


def _plain(components: Sequence[Component], floating_tz: tzinfo) -> list[Instance]:
    """Each component on its own, as if nothing recurred."""
    result = []
    for component in components:
        span = component_span(component)
        if span is not None:
            rid = value_of(component, "RECURRENCE-ID")
            result.append(_instance(component, span, floating_tz, rid))
    return result


def expand_series(
    components: Sequence[Component],
    start: datetime,
    end: datetime,
    *,
    floating_tz: tzinfo = UTC,
    max_instances: int = MAX_INSTANCES,
) -> Expansion:
    """
    The instances of one recurrence set (see L{group_series}) that may
    overlap [C{start}, C{end}] (aware): a superset by up to a day on either
    side, for the caller's exact test (RFC 4791 9.9).  A set that does not
    recur gives its one instance wherever it lies; a component without time
    (a VTODO without DTSTART and DUE) gives none.  Never raises on bad data:
    a set the library cannot expand is taken component by component.
    """
    master, overrides = split_series(components)
    master_start = anchor_of(master) if master is not None else None
    if not is_recurring(components) or (master is not None and master_start is None):
        return Expansion(sorted(_plain(components, floating_tz), key=lambda i: i.start))
    # the library compares dates as UTC days, and its window is half-open
    # where RFC 4791 9.9 has closed ends: widen, the caller tests exactly
    all_day = any(not isinstance(value_of(c, "DTSTART"), datetime) for c in components)
    slack = DAY if all_day else timedelta(seconds=1)
    low = max(start, MIN_TIME) - slack
    high = min(end, MAX_TIME) + slack
    truncated: datetime | None = None
    prepared = [_prepared(c, floating_tz, False) for c in overrides if "DTSTART" in c]
    if master is not None and master_start is not None:
        copy = _prepared(master, floating_tz, True)
        rdates = sorted(date_list(master, "RDATE"), key=lambda v: to_utc(_first(v), floating_tz))
        if len(rdates) > max_instances:
            truncated = to_utc(_first(rdates[max_instances]), floating_tz)
            copy["RDATE"] = vDDDLists([_localised(v, floating_tz) for v in rdates[:max_instances]])
        span = component_span(master)
        length = _length(span) if span is not None else timedelta()
        # the library looks back by the master's length only: a longer RDATE
        # period would be missed when the window starts after its start
        longest = max((_period_length(v) for v in rdates), default=timedelta())
        low = plus(low, -max(timedelta(), longest - length))
        cut = _add_rules(copy, master, floating_tz, plus(low, -length), high, max_instances)
        if cut is not None:
            truncated = cut if truncated is None else min(truncated, cut)
            high = min(high, cut)
            if high <= low:
                copy.pop("RRULE")  # nothing of it can be walked in the window
        prepared.insert(0, copy)
    originals = {_key(v): c for c in overrides if (v := value_of(c, "RECURRENCE-ID")) is not None}
    calendar = Calendar()
    for component in prepared:
        calendar.add_component(component)
    instances: list[Instance] = []
    try:
        query = recurring_ical_events.CalendarQuery(calendar, components=[str(components[0].name)])
        for series in query.series:
            for occurrence in series.between(low, max(low, high)):
                ids = occurrence.recurrence_ids
                source = originals.get(ids[0], master) if ids else master
                if source is None:
                    continue
                rid = value_of(source, "RECURRENCE-ID") if ids else occurrence.start
                if source.name == "VJOURNAL" and not isinstance(occurrence.start, datetime):
                    span = (occurrence.start, plus(occurrence.start, DAY))
                else:
                    span = (occurrence.start, occurrence.end)
                instances.append(_instance(source, span, floating_tz, rid))
    except _LIBRARY_ERRORS:
        instances = _plain(components, floating_tz)
    instances.sort(key=lambda i: i.start)
    return Expansion(instances, truncated)


def _add_rules(
    copy: Component,
    master: Component,
    floating_tz: tzinfo,
    before: datetime,
    stop: datetime,
    cap: int,
) -> datetime | None:
    """
    Put the master's usable rules into its prepared C{copy}, re-anchored
    before C{before}; the UTC time where the instance cap cuts the walk
    through C{stop}, if it does.
    """
    dtstart = value_of(copy, "DTSTART")
    assert dtstart is not None
    usable: list[vRecur] = []
    for raw in rules_of(master):
        try:
            rule = fix_rule(raw, dtstart, floating_tz)
            dateutil_rule(rule, dtstart)
            if not is_barren(rule, dtstart):
                usable.append(rule)
        except RULE_ERRORS:
            continue
    if not usable:
        return None
    start = naive(dtstart)
    if len(usable) == 1:
        rebased = rebase(usable[0], start, comparable(before, start))
        if rebased is not None:
            rule, anchor = rebased
            try:
                first = next(iter(dateutil_rule(rule, anchor)), None)
            except RULE_ERRORS:
                return None
            if first is None:
                return None  # the rule ends before the window
            _move_start(copy, first if isinstance(dtstart, datetime) else first.date())
            usable, dtstart, start = [rule], value_of(copy, "DTSTART") or dtstart, first
    copy["RRULE"] = usable if len(usable) > 1 else usable[0]
    cut: datetime | None = None
    for rule in usable:
        try:
            at = cap_time(dateutil_rule(rule, dtstart), comparable(stop, start), cap)
        except RULE_ERRORS:
            copy.pop("RRULE", None)
            return None
        if at is not None:
            moment = to_utc(at, floating_tz)
            cut = moment if cut is None else min(cut, moment)
    return cut


def _move_start(copy: Component, new_start: Value) -> None:
    """Move the prepared master to C{new_start}, keeping its length."""
    old = value_of(copy, "DTSTART")
    assert old is not None
    for name in ("DTEND", "DUE"):
        end = value_of(copy, name)
        if end is not None and type(end) is type(old):
            copy[name] = vDDDTypes(plus(new_start, end - old))
        elif end is not None:
            copy.pop(name)
            copy["DURATION"] = vDDDTypes(to_utc(end) - to_utc(old))
    copy["DTSTART"] = vDDDTypes(new_start)


def _length(span: tuple[Value, Value]) -> timedelta:
    """How long a span lasts, in wall-clock time when both ends are of one kind."""
    first, last = span
    if isinstance(first, datetime) and isinstance(last, datetime):
        if first.tzinfo is last.tzinfo:
            return abs(last - first)
    elif not isinstance(first, datetime) and not isinstance(last, datetime):
        return abs(last - first)
    return abs(to_utc(last) - to_utc(first))


def _period_length(value: Value | tuple[Value, Value | timedelta]) -> timedelta:
    """How long an RDATE period lasts (0 for a plain value)."""
    if not isinstance(value, tuple):
        return timedelta()
    if isinstance(value[1], timedelta):
        return abs(value[1])
    return abs(to_utc(value[1]) - to_utc(value[0]))


def _first(value: Value | tuple[Value, Value | timedelta]) -> Value:
    """The start of an RDATE value (the value itself unless a period)."""
    return value[0] if isinstance(value, tuple) else value


def series_bounds(
    components: Sequence[Component],
    *,
    floating_tz: tzinfo = UTC,
    max_instances: int = MAX_INSTANCES,
    horizon: timedelta = HORIZON,
) -> tuple[datetime | None, datetime | None]:
    """
    The UTC start of the first instance and end of the last of a recurrence
    set, for indexing: conservative (EXDATE is not subtracted).  The end is
    L{None} when a rule has neither COUNT nor UNTIL, or when a rule has more
    than C{max_instances} instances or goes on past C{horizon} after the
    first start.  (None, None) for a set without time.
    """
    master, _ = split_series(components)
    instances = _plain(components, floating_tz)
    span = component_span(master) if master is not None else None
    if master is not None and span is not None:
        length = _length(span)
        for rdate in date_list(master, "RDATE"):
            if isinstance(rdate, tuple):
                end = rdate[1] if isinstance(rdate[1], date) else _add(rdate[0], rdate[1])
                instances.append(_instance(master, (rdate[0], end), floating_tz, rdate[0]))
            else:
                instances.append(
                    _instance(master, (rdate, _add(rdate, length)), floating_tz, rdate)
                )
    if not instances:
        return None, None
    first = min(i.start for i in instances)
    last = max(i.end for i in instances)
    dtstart = anchor_of(master) if master is not None else None
    if master is None or dtstart is None or span is None:
        return first, last
    dtstart = _localised(dtstart, floating_tz)
    for raw in rules_of(master):
        try:
            rule = fix_rule(raw, dtstart, floating_tz)
            walk = dateutil_rule(rule, dtstart)
            if is_barren(rule, dtstart):
                continue
            if not ("COUNT" in rule or "UNTIL" in rule):
                return first, None
            latest: datetime | None = None
            for count, moment in enumerate(walk, 1):
                if count > max_instances or to_utc(moment, floating_tz) > plus(first, horizon):
                    return first, None
                latest = moment
        except RULE_ERRORS:
            continue
        if latest is not None:
            local: Value = latest if isinstance(dtstart, datetime) else latest.date()
            last = max(last, to_utc(_add(local, length), floating_tz))
    return first, last


# -- RFC 4791 9.9 ---------------------------------------------------------------


def instance_in_range(instance: Instance, time_range: TimeRange) -> bool:
    """
    Whether one instance overlaps C{time_range} by the RFC 4791 9.9 rule for
    its component's type and the properties that component has.
    """
    component = instance.component
    start, end, low, high = instance.start, instance.end, time_range.low, time_range.high
    if component.name == "VTODO":
        has_start, has_due = "DTSTART" in component, "DUE" in component
        if has_start and has_due:
            return (low < end or low <= start) and (high > start or high >= end)
        if has_start and "DURATION" in component:
            return low <= end and (high > start or high >= end)
        if has_start:
            return low <= start < high
        return low < end <= high
    if end > start or (end == start and "DTEND" in component):
        return low < end and high > start
    return low <= start < high


def undated_todo_in_range(component: Component, time_range: TimeRange) -> bool:
    """RFC 4791 9.9 for a VTODO with neither DTSTART nor DUE."""
    low, high = time_range.low, time_range.high
    created, completed = value_of(component, "CREATED"), value_of(component, "COMPLETED")
    made = to_utc(created) if created is not None else None
    done = to_utc(completed) if completed is not None else None
    if made is not None and done is not None:
        return (low <= made or low <= done) and (high >= made or high >= done)
    if done is not None:
        return low <= done <= high
    if made is not None:
        return high > made
    return True


def freebusy_periods(
    component: Component, floating_tz: tzinfo
) -> list[tuple[datetime, datetime, str]]:
    """The FREEBUSY periods of a VFREEBUSY, in UTC, with their FBTYPE."""
    prop: Any = component.get("FREEBUSY")
    result = []
    for period in prop if isinstance(prop, list) else [prop] if prop is not None else []:
        try:
            start, end = to_utc(period.start, floating_tz), to_utc(period.end, floating_tz)
        except (AttributeError, TypeError, ValueError):
            continue
        kind = str(period.params.get("FBTYPE", "BUSY")).upper()
        result.append((start, end, kind))
    return result
