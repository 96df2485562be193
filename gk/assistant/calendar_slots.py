"""
Finding times when several people are free, for find_free_slots.

L{availability} learns each participant's busy time: for an address that
is one gk user, the time CalDAV free-busy reports for it
(L{CalendarService.busy_times}: times only, never what the events are);
for any other address (outside gk, unknown, a list that reaches several
people) nothing can be known, and it is reported as such instead of
failing the search.  L{free_slots} then walks the working hours of each
day of the range and proposes the first times when nobody known is busy.

How candidates are chosen (the tool's description says it too): starts
are on the quarter hour; in each free stretch of a day the earliest
start is proposed, then one every C{max(duration, 1 hour)} after it
while the meeting still fits; at most L{PER_DAY} a day, so that the
proposals spread over several days; in time order.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gk.accounts import AccountService, InvalidAddress
from gk.calendars import CalendarService
from gk.storage.accounts import Account

#: Candidate starts are multiples of this past the hour.
STEP = datetime.timedelta(minutes=15)
#: Most slots proposed on one day.
PER_DAY = 2
#: Gap between two proposals in one free stretch, at least.
SPACING = datetime.timedelta(hours=1)

Period = tuple[datetime.datetime, datetime.datetime]


@dataclass(frozen=True)
class Participant:
    """One person whose time counts, and what is known of it."""

    email: str
    #: Busy periods (UTC) in the range; empty when unknown.
    busy: list[Period] = field(default_factory=list)
    #: Why nothing is known of this person's time, or None when it is.
    unknown: str | None = None


async def availability(
    accounts: AccountService,
    calendars: CalendarService,
    caller: Account,
    addresses: Sequence[str],
    start: datetime.datetime,
    end: datetime.datetime,
    zone: datetime.tzinfo,
) -> list[Participant]:
    """
    The caller (first) and each of C{addresses} with their busy time in
    [C{start}, C{end}); C{zone} reads floating times of calendars that
    name no zone.
    """
    result = [Participant(caller.email, await _busy(calendars, caller, start, end, zone))]
    for address in addresses:
        if address == caller.email:
            continue
        account, why = await _local_user(accounts, address)
        if account is None:
            result.append(Participant(address, unknown=why))
        elif account.id == caller.id:
            continue  # one of the caller's own addresses
        else:
            result.append(Participant(address, await _busy(calendars, account, start, end, zone)))
    return result


async def _local_user(accounts: AccountService, address: str) -> tuple[Account | None, str]:
    """The one gk user C{address} reaches, or why there is none."""
    try:
        resolution = await accounts.resolve(address)
    except InvalidAddress:
        return None, "not an address gk can look up"
    if not resolution.local_domain:
        return None, "outside this server: availability unknown"
    if len(resolution.local) == 1 and not resolution.remote:
        return resolution.local[0], ""
    if not resolution.deliverable:
        return None, "no user of this server has this address: availability unknown"
    return None, "a list that reaches several people: availability unknown"


async def _busy(
    calendars: CalendarService,
    account: Account,
    start: datetime.datetime,
    end: datetime.datetime,
    zone: datetime.tzinfo,
) -> list[Period]:
    periods = await calendars.busy_times(account, start, end, zone)
    return [(low, high) for low, high, _ in periods]


def merge(periods: Iterable[Period]) -> list[Period]:
    """Periods made one where they overlap or touch, sorted."""
    merged: list[list[datetime.datetime]] = []
    for low, high in sorted(periods):
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [(low, high) for low, high in merged]


def _ceil(moment: datetime.datetime, zone: datetime.tzinfo) -> datetime.datetime:
    """C{moment} rounded up to the next L{STEP} of the wall clock in C{zone}."""
    local = moment.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    into = local - midnight
    steps = -(-into // STEP)
    return (midnight + steps * STEP).astimezone(datetime.UTC)


def free_slots(
    busy: Iterable[Period],
    start: datetime.datetime,
    end: datetime.datetime,
    duration: datetime.timedelta,
    zone: datetime.tzinfo,
    day_start: datetime.time,
    day_end: datetime.time,
    weekends: bool,
    limit: int,
) -> list[Period]:
    """
    Up to C{limit} slots of C{duration} in [C{start}, C{end}) within
    [C{day_start}, C{day_end}) of each day in C{zone} (Monday to Friday
    unless C{weekends}) that overlap no C{busy} period (see the module
    docstring for which are chosen).  UTC, in time order.
    """
    taken = merge(busy)
    found: list[Period] = []
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last and len(found) < limit:
        if weekends or day.weekday() < 5:
            opens = datetime.datetime.combine(day, day_start, zone).astimezone(datetime.UTC)
            closes = datetime.datetime.combine(day, day_end, zone).astimezone(datetime.UTC)
            window = (max(opens, start), min(closes, end))
            today = _slots_in(window, taken, duration, zone)
            found += today[: min(PER_DAY, limit - len(found))]
        day += datetime.timedelta(days=1)
    return found


def _slots_in(
    window: Period, taken: Sequence[Period], duration: datetime.timedelta, zone: datetime.tzinfo
) -> list[Period]:
    """The candidates of one day's working window (see the module docstring)."""
    low, high = window
    stretches: list[Period] = []
    cursor = low
    for busy_start, busy_end in taken:
        if busy_end <= cursor or busy_start >= high:
            continue
        if busy_start > cursor:
            stretches.append((cursor, busy_start))
        cursor = max(cursor, busy_end)
    if cursor < high:
        stretches.append((cursor, high))
    slots: list[Period] = []
    gap = max(duration, SPACING)
    for stretch_start, stretch_end in stretches:
        candidate = _ceil(stretch_start, zone)
        while candidate + duration <= stretch_end:
            slots.append((candidate, candidate + duration))
            candidate = _ceil(candidate + gap, zone)
    return slots
