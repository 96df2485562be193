"""
The instances of recurring events by calendar month: what lets a
time-range query decide a recurring event without parsing it.

A recurring event's instances that overlap a month (UTC), with floating
times read in one zone, are a flat array of (start, end, interval) triples
in POSIX seconds.  They live in two places:

  - L{series_cache}, in memory, keyed by entity tag, zone and month:
    filled by the queries that had to parse an event;
  - the database (C{dav_series_months}), keyed by object, zone and month:
    L{months_when_written} computes the months around the time of a PUT
    when the event is written, so that the first query after a restart
    reads them instead of parsing every recurring event of a calendar
    (L{gk.dav.report_calendar.calendar_query} loads them into the cache).

Both hold exactly what L{month_spans} computes, so an answer does not
depend on where the spans came from.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from gk.dav.calexpand import expand_series, group_series, standard
from gk.dav.calquery import TimeRange
from gk.dav.report_common import LRU, Zone

#: The most calendar months a query range may span to be answered from
#: L{series_cache}; longer ranges are tested on the parsed object.
MAX_CACHED_MONTHS = 24

#: Months computed when an event is written: the one before the PUT and
#: the next twelve (what calendar clients and the web UI look at).
MONTHS_BEFORE_WRITE = 1
MONTHS_AFTER_WRITE = 12

#: Instances of recurring events by month: (etag, zone key, month number)
#: -> start, end (POSIX seconds) and 1.0 if an interval (else an instant)
#: of each, flat.  An entry of a weekly event takes about 400 bytes with
#: its key: the cache stays under 20 MB.
series_cache: LRU[tuple[str, str, int], array[float]] = LRU(50_000)

_DAY = timedelta(days=1)
_INSTANT = timedelta(microseconds=1)


def month_number(moment: datetime) -> int:
    """C{year * 12 + month - 1} of an aware C{moment}, in UTC."""
    utc = moment.astimezone(UTC)
    return utc.year * 12 + utc.month - 1


def month_start(month: int) -> datetime:
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def query_months(time_range: TimeRange) -> range | None:
    """
    The months a bounded range [start, end) touches, or L{None} if
    unbounded or too long.  A range ending at midnight on the 1st does
    not touch the month that begins there: every instance that meets the
    range meets one of the months before.
    """
    if time_range.start is None or time_range.end is None:
        return None
    first = month_number(time_range.start)
    last = max(first, month_number(time_range.end - _INSTANT))
    months = range(first, last + 1)
    return months if len(months) <= MAX_CACHED_MONTHS else None


def month_spans(calendar: Calendar, zone: Zone, months: range) -> dict[int, array[float]] | None:
    """
    The instances of the recurring VEVENTs of C{calendar} that overlap
    each of C{months} (blocking: it expands); L{None} when the expansion
    was cut by its instance cap (then the caller tests the parsed object).

    Each month keeps every instance that comes within a day of it: the
    expansion of a window returns all instances that overlap it (and
    some up to a day beyond), so a month's list holds every instance that
    overlaps the month.
    """
    first, last = months[0], months[-1]
    low, high = month_start(first), month_start(last + 1)
    buckets: dict[int, array[float]] = {m: array("d") for m in months}
    events = [c for c in standard(calendar).subcomponents if c.name == "VEVENT"]
    for group in group_series(events):
        expansion = expand_series(group, low, high, floating_tz=zone.tz)
        if expansion.truncated_after is not None:
            return None
        for instance in expansion.instances:
            # calexpand.instance_in_range's VEVENT rule, decided now
            interval = instance.end > instance.start or (
                instance.end == instance.start and "DTEND" in instance.component
            )
            span = (instance.start.timestamp(), instance.end.timestamp(), float(interval))
            near = range(
                max(first, month_number(max(instance.start, low) - _DAY)),
                min(last, month_number(min(instance.end, high) + _DAY)) + 1,
            )
            for month in near:
                buckets[month].extend(span)
    return buckets


def spans_match(spans: Sequence[array[float]], time_range: TimeRange) -> bool:
    """Whether an instance among C{spans} meets the (bounded) C{time_range}."""
    assert time_range.start is not None and time_range.end is not None
    low, high = time_range.start.timestamp(), time_range.end.timestamp()
    for month in spans:
        for i in range(0, len(month), 3):
            start, end, interval = month[i], month[i + 1], month[i + 2]
            if (low < end and high > start) if interval else (low <= start < high):
                return True
    return False


def cached_series_match(etag: str, zone: Zone, time_range: TimeRange) -> bool | None:
    """A recurring event's answer from L{series_cache}, or L{None} if not all there."""
    months = query_months(time_range)
    if months is None:
        return None
    spans = []
    for month in months:
        found = series_cache.get((etag, zone.key, month))
        if found is None:
            return None
        spans.append(found)
    return spans_match(spans, time_range)


def missing_months(etag: str, zone: Zone, time_range: TimeRange) -> bool:
    """Whether L{cached_series_match} would lack a month of C{time_range}'s."""
    months = query_months(time_range)
    return months is not None and any(
        series_cache.get((etag, zone.key, month)) is None for month in months
    )


def series_match(etag: str, calendar: Calendar, zone: Zone, time_range: TimeRange) -> bool | None:
    """
    Expand a recurring event's sets over the months of C{time_range},
    remember the instances in L{series_cache} and answer from them
    (blocking); L{None} when the range is unbounded or too long, or the
    expansion was cut (then the caller asks L{calquery.matches}, whose
    answer for a cut walk is conservative).
    """
    months = query_months(time_range)
    if months is None:
        return None
    buckets = month_spans(calendar, zone, months)
    if buckets is None:
        return None
    for month, found in buckets.items():
        series_cache.put((etag, zone.key, month), found)
    return spans_match(list(buckets.values()), time_range)


# -- stored with the event ------------------------------------------------------------


def months_when_written(
    calendar: Calendar, zone: Zone, now: datetime
) -> dict[tuple[str, int], bytes]:
    """
    The rows of C{dav_series_months} for a recurring event written at
    C{now}: (zone key, month) -> L{spans_to_bytes}; empty when its
    expansion was cut (the query then parses it, as without rows).
    """
    this = month_number(now)
    months = range(this - MONTHS_BEFORE_WRITE, this + MONTHS_AFTER_WRITE + 1)
    buckets = month_spans(calendar, zone, months)
    if buckets is None:
        return {}
    return {(zone.key, month): spans_to_bytes(found) for month, found in buckets.items()}


def spans_to_bytes(spans: array[float]) -> bytes:
    """Little-endian float64s, whatever the machine (a database may be shared)."""
    if sys.byteorder == "little":
        return spans.tobytes()
    swapped = array("d", spans)
    swapped.byteswap()
    return swapped.tobytes()


def spans_from_bytes(data: bytes) -> array[float]:
    """The inverse of L{spans_to_bytes}."""
    spans = array("d")
    spans.frombytes(data)
    if sys.byteorder != "little":
        spans.byteswap()
    return spans


def remember(etag: str, zone_key: str, month: int, data: bytes) -> None:
    """Put a stored month of an event into L{series_cache} (ignored if malformed)."""
    if len(data) % 24 == 0:
        series_cache.put((etag, zone_key, month), spans_from_bytes(data))
