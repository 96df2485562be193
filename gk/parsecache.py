"""
Parsed calendar objects kept between calls, for the readers that would
otherwise parse the same stored events on every call (the assistant's
list_events, free-busy for find_free_slots).

Parsing a stored event costs about 3 ms (icalendar, mostly the VTIMEZONE
written with it) and expanding a weekly one over a month about 0.6 ms,
against a budget of 20 ms for a whole tool call; a calendar changes far
less often than it is read.

Keys are content hashes: an entry is found by the entity tag of the
bytes it was parsed from (L{gk.storage.dav_common.make_etag}, computed
here from the bytes the caller just read, so no caller can pass a tag
that does not belong to them).  An edited object has other bytes, hence
another key, and is parsed afresh; a deleted one is no longer among the
objects a query reads, and its entry ages out.  Nothing is ever served
for bytes other than those it came from, so no invalidation is needed.

What is kept of an object is what those readers use: its VEVENTs as
recurrence sets (L{Series}) and its VFREEBUSYs, without the VCALENDAR and
its VTIMEZONEs (most of a parsed object's memory; the parsed times keep
their zones).  The instances of a recurring set are kept per calendar
month and floating zone once expanded (L{instances_between}).  All of it
is bounded by L{MAX_OBJECTS} objects and about L{MAX_BYTES} bytes (LRU).

The components are shared between callers and threads: read them, never
change them.  Thread-safe; blocking (it parses and expands): call it from
a worker thread, never the reactor's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from icalendar import Component

from gk.dav import itip
from gk.dav.calexpand import (
    MAX_INSTANCES,
    MAX_TIME,
    MIN_TIME,
    Instance,
    expand_series,
    group_series,
    is_recurring,
    split_series,
    standard,
)
from gk.dav.calseries import month_number, month_start
from gk.dav.report_common import LRU
from gk.storage.dav_common import make_etag

#: Most objects kept.
MAX_OBJECTS = 10_000
#: Rough memory bound of the cache (see L{ParsedEvents.weight}).
MAX_BYTES = 32 * 1024 * 1024
#: Longest range, in calendar months, answered from per-month instances;
#: a longer one is expanded as a whole each time.
MAX_MONTHS = 24
#: Months of instances kept per object and zone before they are dropped
#: (a reader looks at a few months around now).
MONTHS_PER_OBJECT = 36

#: Rough sizes, measured with tracemalloc: a parsed property (with its
#: parameters) and one L{Instance} with its datetimes.
PROPERTY_BYTES = 300
INSTANCE_BYTES = 400

_INSTANT = timedelta(microseconds=1)
#: Months outside the expansion's clip (and far from datetime's limits).
_FIRST_MONTH = month_number(MIN_TIME)
_LAST_MONTH = month_number(MAX_TIME)
#: The month of the instances of a series that does not recur (see L{MonthKey}).
_ANY_MONTH = -1

#: (floating zone, series index, month number) -> the instances the
#: expansion of that month found, or None when a guard cut it; for a
#: series that does not recur, its instances under L{_ANY_MONTH}.
MonthKey = tuple[tzinfo, int, int]


@dataclass(frozen=True)
class Series:
    """One recurrence set of VEVENTs (L{group_series}) and what readers ask of it."""

    components: tuple[Component, ...]
    #: Its master (None for overrides without one).
    master: Component | None
    recurring: bool


@dataclass(frozen=True, eq=False)
class ParsedEvents:
    """What is kept of one stored calendar object; never changed once made."""

    series: tuple[Series, ...]
    freebusy: tuple[Component, ...]
    #: Instances of recurring series by month (see L{MonthKey}).
    months: Mapping[MonthKey, tuple[Instance, ...] | None] = field(default_factory=dict)
    #: Approximate bytes held: the components' properties and the instances.
    weight: int = field(init=False)

    def __post_init__(self) -> None:
        components = [c for s in self.series for c in s.components] + list(self.freebusy)
        properties = sum(len(c) + 1 for c in components)
        instances = sum(len(found) for found in self.months.values() if found is not None)
        object.__setattr__(self, "weight", properties * PROPERTY_BYTES + instances * INSTANCE_BYTES)


@dataclass(frozen=True)
class _Unparsable:
    """Remembered for bytes that do not parse, so that they are not tried again."""

    weight: int = 64


_UNPARSABLE = _Unparsable()


def _new_cache(max_objects: int, max_bytes: int) -> LRU[str, ParsedEvents | _Unparsable]:
    return LRU(max_objects, max_bytes, lambda value: value.weight)


_cache = _new_cache(MAX_OBJECTS, MAX_BYTES)


def parsed_events(data: bytes) -> tuple[str, ParsedEvents] | None:
    """
    The stored calendar object C{data} parsed (from the cache when the
    same bytes were parsed before) with its key for L{instances_between},
    or None if it does not parse (stored data is checked on PUT; an old
    bad one is skipped).
    """
    key = make_etag(data)
    found = _cache.get(key)
    if found is None:
        found = _parse(data)
        _cache.put(key, found)
    return None if isinstance(found, _Unparsable) else (key, found)


def _parse(data: bytes) -> ParsedEvents | _Unparsable:
    try:
        calendar = standard(itip.parse(data))
    except itip.ITipError:
        return _UNPARSABLE
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    series = []
    for group in group_series(events):
        master, _ = split_series(group)
        series.append(Series(tuple(group), master, is_recurring(group)))
    freebusy = tuple(c for c in calendar.subcomponents if c.name == "VFREEBUSY")
    return ParsedEvents(tuple(series), freebusy)


def instances_between(
    key: str, parsed: ParsedEvents, start: datetime, end: datetime, zone: tzinfo
) -> list[tuple[Series, list[Instance]]]:
    """
    Each series of C{parsed} with what C{expand_series(series.components,
    start, end, floating_tz=zone)} gives as far as the caller's exact test
    (RFC 4791 9.9, L{gk.dav.calexpand.instance_in_range} over [C{start},
    C{end})) can tell: a superset of its instances that overlap the
    range, sorted by start.  C{key} is the one L{parsed_events} gave with
    C{parsed}.

    A recurring set is expanded month by month and each month kept, so
    that the next range in those months costs no expansion: every
    instance overlapping the range overlaps one of its months, whose
    expansion holds it.  When a month's expansion was cut by its guard,
    or the months hold so many instances that the range's own expansion
    might be cut, the range is expanded as a whole (as without a cache),
    so the answer is the same either way.
    """
    first = month_number(start)
    last = max(first, month_number(end - _INSTANT))
    by_month = last - first < MAX_MONTHS and first >= _FIRST_MONTH and last < _LAST_MONTH
    added: dict[MonthKey, tuple[Instance, ...] | None] = {}
    result = []
    for index, series in enumerate(parsed.series):
        found: list[Instance] | None = None
        if not series.recurring:
            found = _plain(parsed, index, zone, added)
        elif by_month:
            found = _from_months(parsed, index, range(first, last + 1), zone, added)
        if found is None:  # cut
            found = expand_series(series.components, start, end, floating_tz=zone).instances
        result.append((series, found))
    if added:
        # a new object with the months (never one changed under a reader),
        # weighed again; two threads adding at once may lose one's months
        months = {**parsed.months, **added}
        for old in list(months)[: max(0, len(months) - MONTHS_PER_OBJECT)]:
            del months[old]
        _cache.put(key, replace(parsed, months=months))
    return result


def _plain(
    parsed: ParsedEvents,
    index: int,
    zone: tzinfo,
    added: dict[MonthKey, tuple[Instance, ...] | None],
) -> list[Instance]:
    """The instance of a series that does not recur: the same whatever the range."""
    month_key = (zone, index, _ANY_MONTH)
    instances = parsed.months.get(month_key)
    if instances is None:
        instances = added[month_key] = tuple(
            expand_series(
                parsed.series[index].components, MIN_TIME, MAX_TIME, floating_tz=zone
            ).instances
        )
    return list(instances)


def _from_months(
    parsed: ParsedEvents,
    index: int,
    months: range,
    zone: tzinfo,
    added: dict[MonthKey, tuple[Instance, ...] | None],
) -> list[Instance] | None:
    """The instances of C{months} of a recurring series, once each; None if cut."""
    series = parsed.series[index]
    found: dict[tuple[object, ...], Instance] = {}
    for month in months:
        month_key = (zone, index, month)
        if month_key in parsed.months:
            instances = parsed.months[month_key]
        else:
            instances = added[month_key] = _month(series, month, zone)
        if instances is None:
            return None
        for instance in instances:
            # the same instance comes from each month it overlaps
            identity = (instance.start, instance.end, id(instance.component))
            found.setdefault((*identity, instance.recurrence_id), instance)
    if len(found) > MAX_INSTANCES // 2:
        return None
    return sorted(found.values(), key=lambda i: i.start)


def _month(series: Series, month: int, zone: tzinfo) -> tuple[Instance, ...] | None:
    expansion = expand_series(
        series.components, month_start(month), month_start(month + 1), floating_tz=zone
    )
    if expansion.truncated_after is not None:
        return None
    return tuple(expansion.instances)


def clear() -> None:
    """Forget everything (tests)."""
    _cache.clear()


def cached() -> int:
    """How many objects are kept."""
    return len(_cache)
