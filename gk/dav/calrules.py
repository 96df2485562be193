"""
Recurrence rules (RRULE, RFC 5545 3.3.10) made safe to expand.

dateutil computes the instances of a rule.  It trusts the rule, and a rule
comes from whoever wrote the calendar object, so before one is walked:

  - L{fix_rule} gives UNTIL the kind RFC 5545 requires for the DTSTART
    (Evolution writes it in local time when DTSTART has a TZID);
  - L{rule_error} says why dateutil cannot use a rule at all;
  - L{is_barren} detects, in milliseconds, rules that never produce an
    instance (February 30th, BYDAY=6MO in a month, BYSETPOS beyond the
    candidates of a period, an INTERVAL that never reaches the months or
    weekdays asked for): dateutil would search for one until the year
    9999, which takes seconds.  Barren rules that escape these tests (rare
    combinations of INTERVAL with leap days) cost at most about a second;
  - L{rebase} re-anchors a rule without COUNT shortly before the time of
    interest, so that a daily event from 1990 is not walked for 35 years;
  - L{cap_time} finds where a walk must stop to stay within an instance cap;
  - L{plus} adds without overflowing at the years 1 and 9999.

Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TypeVar

from dateutil.rrule import YEARLY, rrule, rrulestr  # type: ignore[import-untyped]
from icalendar import vRecur

#: A DATE or DATE-TIME value as icalendar gives it.
Value = date | datetime

DAY = timedelta(days=1)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_UNIT_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800}
#: What dateutil raises on rules it cannot use.
RULE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)

_V = TypeVar("_V", bound=date)


def plus(value: _V, delta: timedelta) -> _V:
    """C{value + delta}, or the first or last representable time if that overflows."""
    try:
        return value + delta
    except OverflowError:
        if isinstance(value, datetime):
            edge = datetime.max if delta > timedelta() else datetime.min
            return edge.replace(tzinfo=value.tzinfo)  # type: ignore[return-value]
        return date.max if delta > timedelta() else date.min  # type: ignore[return-value]


def naive(value: Value) -> datetime:
    """A datetime dateutil accepts as DTSTART: dates become midnight."""
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


def comparable(moment: datetime, like: datetime) -> datetime:
    """C{moment} (aware) in the kind of C{like}: aware, or naive UTC wall time."""
    return moment if like.tzinfo is not None else moment.astimezone(UTC).replace(tzinfo=None)


def fix_rule(rule: vRecur, dtstart: Value, floating_tz: tzinfo = UTC) -> vRecur:
    """
    A copy of C{rule} whose UNTIL has the kind RFC 5545 3.3.10 requires for
    C{dtstart}: UTC for a zoned DTSTART (Evolution writes local or floating
    times, read in DTSTART's zone), a DATE for an all-day one; a COUNT below
    1 is dropped.
    """
    fixed = vRecur(rule)
    untils = fixed.get("UNTIL")
    if untils:
        until = untils[0]
        if isinstance(dtstart, datetime) and dtstart.tzinfo is not None:
            zone = dtstart.tzinfo
            if not isinstance(until, datetime):
                midnight = datetime(until.year, until.month, until.day, tzinfo=zone)
                until = plus(midnight, DAY - timedelta(seconds=1))
            elif until.tzinfo is None:
                until = until.replace(tzinfo=zone)
            fixed["UNTIL"] = [until.astimezone(UTC)]
        elif isinstance(dtstart, datetime):
            if isinstance(until, datetime) and until.tzinfo is not None:
                fixed["UNTIL"] = [until.astimezone(floating_tz).replace(tzinfo=None)]
        elif isinstance(until, datetime):
            if until.tzinfo is not None:
                until = until.astimezone(floating_tz)
            fixed["UNTIL"] = [until.date()]
    counts = fixed.get("COUNT")
    if counts and int(counts[0]) < 1:
        del fixed["COUNT"]
    return fixed


def dateutil_rule(rule: vRecur, dtstart: Value) -> rrule:
    """C{rule} (fixed by L{fix_rule}) for C{dtstart} as a dateutil rule. @raise ValueError:"""
    try:
        return rrulestr(rule.to_ical().decode("ascii"), dtstart=naive(dtstart), cache=False)
    except RULE_ERRORS as e:
        raise ValueError(f"unusable RRULE: {e}") from e


def rule_error(rule: vRecur, dtstart: Value) -> str | None:
    """Why C{rule} cannot be used with this DTSTART, or None when it can."""
    try:
        first = iter(dateutil_rule(fix_rule(rule, dtstart), dtstart))
        if not is_barren(rule, dtstart):
            next(first, None)
    except RULE_ERRORS as e:
        return str(e) or type(e).__name__
    return None


def _ints(rule: vRecur, key: str) -> list[int]:
    return [int(value) for value in rule.get(key, [])]


def _weekdays(rule: vRecur) -> list[tuple[int, int]]:
    """BYDAY as (ordinal or 0, weekday number)."""
    result = []
    for value in rule.get("BYDAY", []):
        text = str(value).upper().strip()
        ordinal = text[:-2].lstrip("+")
        result.append((int(ordinal) if ordinal else 0, _WEEKDAYS.index(text[-2:])))
    return result


def _most_per_period(freq: str, rule: vRecur, byday: list[tuple[int, int]]) -> int:
    """An upper bound on the candidates BYSETPOS chooses from in one period."""
    days = {"YEARLY": 366, "MONTHLY": 31, "WEEKLY": 7}.get(freq, 1)
    if "BYMONTHDAY" in rule:
        days = min(days, len(rule["BYMONTHDAY"]) * (12 if freq == "YEARLY" else 1))
    if "BYYEARDAY" in rule:
        days = min(days, len(rule["BYYEARDAY"]))
    if "BYWEEKNO" in rule:
        days = min(days, 7 * len(rule["BYWEEKNO"]))
    if byday:
        days = min(days, len(byday) * {"YEARLY": 53, "MONTHLY": 5}.get(freq, 1))
    finer = {"HOURLY": 1, "MINUTELY": 2, "SECONDLY": 3}.get(freq, 0)
    times = 1
    for key in ("BYHOUR", "BYMINUTE", "BYSECOND")[finer:]:
        times *= max(1, len(rule.get(key, [])))
    return days * times


@lru_cache(maxsize=512)
def _days_exist(
    bymonth: tuple[int, ...],
    bymonthday: tuple[int, ...],
    byyearday: tuple[int, ...],
    byweekno: tuple[int, ...],
    byweekday: tuple[int, ...],
    wkst: int,
) -> bool:
    """Whether any day passes these filters: one Gregorian cycle (400 years) is tried."""
    probe = rrule(
        YEARLY,
        dtstart=datetime(9599, 1, 1),
        wkst=wkst,
        bymonth=bymonth or None,
        bymonthday=bymonthday or None,
        byyearday=byyearday or None,
        byweekno=byweekno or None,
        byweekday=byweekday or None,
        cache=False,
    )
    return next(iter(probe), None) is not None


def is_barren(rule: vRecur, dtstart: Value) -> bool:
    """
    Whether C{rule} can be seen not to produce any instance, by tests that
    cost milliseconds: days no calendar has (over one 400-year cycle),
    ordinals beyond the period, BYSETPOS beyond the candidates of a period,
    months or weekdays its INTERVAL never reaches.

    @raise ValueError: a malformed part.
    """
    freq = str(rule["FREQ"][0]).upper()
    interval = max(1, int(rule.get("INTERVAL", [1])[0]))
    start = naive(dtstart)
    byday = _weekdays(rule)
    if freq in ("MONTHLY", "YEARLY"):
        reachable = [(n, d) for n, d in byday if abs(n) <= (5 if freq == "MONTHLY" else 53)]
        if byday and not reachable:
            return True
        byday = reachable
    plain = tuple(sorted({d for _, d in byday}))
    bymonth = set(_ints(rule, "BYMONTH"))
    if freq == "MONTHLY" and interval > 1:
        visited = {(start.month - 1 + k * interval) % 12 + 1 for k in range(12)}
        bymonth = bymonth & visited if bymonth else visited
        if not bymonth:
            return True
    # a period of a day or less, stepping whole weeks: always the same weekday
    unit = _UNIT_SECONDS.get(freq) if freq != "WEEKLY" else None
    weekly_step = unit is not None and (unit * interval) % (7 * 86400) == 0
    if weekly_step and plain and start.weekday() not in plain:
        return True
    setpos = _ints(rule, "BYSETPOS")
    if setpos and all(abs(p) > _most_per_period(freq, rule, byday) for p in setpos):
        return True
    bymonthday = _ints(rule, "BYMONTHDAY")
    byyearday = _ints(rule, "BYYEARDAY")
    byweekno = _ints(rule, "BYWEEKNO")
    if not (bymonthday or byyearday or byweekno or byday):
        # dateutil's defaults from DTSTART for the coarse frequencies
        if freq == "MONTHLY":
            bymonthday = [start.day]
        elif freq == "YEARLY":
            bymonthday = [start.day]
            bymonth = bymonth or {start.month}
        else:
            return False
    wkst = _WEEKDAYS.index(str(rule.get("WKST", ["MO"])[0]).upper())
    return not _days_exist(
        tuple(sorted(bymonth)),
        tuple(sorted(bymonthday)),
        tuple(sorted(byyearday)),
        tuple(sorted(byweekno)),
        plain,
        wkst,
    )


def rebase(rule: vRecur, dtstart: datetime, before: datetime) -> tuple[vRecur, datetime] | None:
    """
    C{rule} re-anchored at a start of the same phase no later than
    C{before} (comparable with C{dtstart}), with the defaults dateutil takes
    from DTSTART made explicit; None when C{dtstart} is not earlier or the
    rule counts instances.
    """
    if "COUNT" in rule or before <= dtstart:
        return None
    freq = str(rule["FREQ"][0]).upper()
    interval = max(1, int(rule.get("INTERVAL", [1])[0]))
    wall, limit = dtstart.replace(tzinfo=None), before.replace(tzinfo=None)
    if dtstart.tzinfo is not None:
        limit = before.astimezone(dtstart.tzinfo).replace(tzinfo=None)
    rebased = vRecur(rule)
    no_day = not any(key in rule for key in ("BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY"))
    if freq in _UNIT_SECONDS:
        step = _UNIT_SECONDS[freq] * interval
        steps = int((limit - wall).total_seconds()) // step
        anchor = wall + timedelta(seconds=steps * step)
    elif freq == "MONTHLY":
        steps = ((limit.year - wall.year) * 12 + limit.month - wall.month) // interval
        index = wall.year * 12 + wall.month - 1 + steps * interval
        anchor = wall.replace(year=index // 12, month=index % 12 + 1, day=1)
        if no_day:
            rebased["BYMONTHDAY"] = [wall.day]
    else:
        steps = (limit.year - wall.year) // interval
        anchor = wall.replace(year=wall.year + steps * interval, month=1, day=1)
        if no_day:
            rebased["BYMONTHDAY"] = [wall.day]
            if "BYMONTH" not in rule:
                rebased["BYMONTH"] = [wall.month]
    if steps <= 0:
        return None
    return rebased, anchor.replace(tzinfo=dtstart.tzinfo)


def cap_time(rule: rrule, stop: datetime, cap: int) -> datetime | None:
    """The start of the C{cap}-th instance of C{rule} if it comes before C{stop}."""
    for count, start in enumerate(rule, 1):
        if start >= stop:
            return None
        if count >= cap:
            return start  # type: ignore[no-any-return]
    return None
