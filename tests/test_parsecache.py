"""
L{gk.parsecache}: what the cache answers is what parsing and expanding
the bytes afresh answers, whatever range is asked and whatever it kept
before (month by month, cut expansions, ranges too long to cache), for
list_events' instances and free-busy's periods; an edited object is
never answered for by its old bytes; the cache stays within its bounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gk import parsecache
from gk.calendars import _merged, object_busy
from gk.dav import itip
from gk.dav.calexpand import TimeRange, expand_series, group_series, instance_in_range, standard
from gk.dav.calrender import free_busy

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def ics(*components: str) -> bytes:
    body = "\r\n".join(c.strip().replace("\n", "\r\n") for c in components)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gk tests//EN\r\n{body}\r\nEND:VCALENDAR\r\n"
    ).encode()


def event(uid: str, *lines: str) -> str:
    return "\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]
    )


OBJECTS = {
    "weekly, Paris, moved and cancelled instances": ics(
        event(
            "w", "SUMMARY:Standup", "DTSTART;TZID=Europe/Paris:20261005T093000",
            "DTEND;TZID=Europe/Paris:20261005T100000", "RRULE:FREQ=WEEKLY;COUNT=30",
            "EXDATE;TZID=Europe/Paris:20261102T093000",
        ),
        event(
            "w", "SUMMARY:Standup (moved)", "RECURRENCE-ID;TZID=Europe/Paris:20261109T093000",
            "DTSTART;TZID=Europe/Paris:20261110T140000", "DTEND;TZID=Europe/Paris:20261110T150000",
            "STATUS:TENTATIVE",
        ),
    ),
    "daily all-day": ics(
        event("d", "SUMMARY:Leave", "DTSTART;VALUE=DATE:20261127", "RRULE:FREQ=DAILY;COUNT=10")
    ),
    "monthly floating, across month ends": ics(
        event(
            "m", "SUMMARY:Close", "DTSTART:20260930T220000", "DTEND:20261001T020000",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1",
        )
    ),
    "plain floating": ics(event("p", "SUMMARY:Lunch", "DTSTART:20261120T120000",
                                "DTEND:20261120T130000")),
    "plain on a month's edge, no length": ics(
        event("z", "SUMMARY:Deadline", "DTSTART:20261201T000000Z", "DTEND:20261201T000000Z")
    ),
    "transparent": ics(event("tr", "DTSTART:20261118T090000Z", "DTEND:20261118T180000Z",
                             "TRANSP:TRANSPARENT")),
    "cancelled": ics(event("ca", "DTSTART:20261118T090000Z", "DTEND:20261118T180000Z",
                           "STATUS:CANCELLED")),
    "stored free-busy": ics(
        "\n".join([
            "BEGIN:VFREEBUSY", "UID:fb", "DTSTAMP:20261101T000000Z",
            "DTSTART:20261101T000000Z", "DTEND:20261201T000000Z",
            "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20261116T100000Z/20261116T120000Z",
            "FREEBUSY;FBTYPE=FREE:20261117T100000Z/PT1H",
            "FREEBUSY;FBTYPE=X-OUT:20261130T230000Z/20261201T010000Z",
            "END:VFREEBUSY",
        ])
    ),
}  # fmt: skip


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


#: Ranges a reader asks: weeks, month ends, several months, more than the
#: cache keeps by month, an instant's own edges.
RANGES = [
    (utc(2026, 11, 16), utc(2026, 11, 23)),
    (utc(2026, 11, 1), utc(2026, 12, 1)),
    (utc(2026, 11, 28, 12), utc(2026, 12, 2)),
    (utc(2026, 10, 31, 23), utc(2026, 11, 1, 1)),
    (utc(2026, 12, 1), utc(2026, 12, 1, 0, 0, 1)),
    (utc(2026, 9, 1), utc(2027, 3, 1)),
    (utc(2025, 1, 1), utc(2027, 6, 1)),
]
ZONES: list[tzinfo] = [UTC, PARIS, NEW_YORK]

#: Rules dense enough for the expansion's guard (L{calexpand.MAX_INSTANCES}
#: a walk): one cut within a month, one whose months are not cut but
#: whose three months together would be.
DENSE = {
    "every two minutes": ics(
        event("two", "SUMMARY:Tick", "DTSTART:20261101T000000Z", "DURATION:PT1M",
              "RRULE:FREQ=MINUTELY;INTERVAL=2")
    ),
    "every ten minutes": ics(
        event("ten", "SUMMARY:Ping", "DTSTART:20261101T000000Z", "DURATION:PT5M",
              "RRULE:FREQ=MINUTELY;INTERVAL=10")
    ),
}  # fmt: skip
DENSE_RANGES = [RANGES[0], RANGES[2], (utc(2026, 11, 1), utc(2027, 2, 1))]


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    parsecache.clear()
    yield
    parsecache.clear()


def shown(instances: Any) -> list[tuple[Any, ...]]:
    return [
        (i.start, i.end, i.dtstart, i.dtend, i.recurrence_id, str(i.component.get("SUMMARY")))
        for i in instances
    ]


def fresh(data: bytes, start: datetime, end: datetime, zone: tzinfo) -> list[list[tuple[Any, ...]]]:
    """Every set's instances in the range, parsed and expanded as without a cache."""
    calendar = standard(itip.parse(data))
    time_range = TimeRange(start, end)
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    return [
        shown(
            i
            for i in expand_series(group, start, end, floating_tz=zone).instances
            if instance_in_range(i, time_range)
        )
        for group in group_series(events)
    ]


def cached(
    data: bytes, start: datetime, end: datetime, zone: tzinfo
) -> list[list[tuple[Any, ...]]]:
    parsed = parsecache.parsed_events(data)
    assert parsed is not None
    time_range = TimeRange(start, end)
    return [
        shown(i for i in instances if instance_in_range(i, time_range))
        for _, instances in parsecache.instances_between(*parsed, start, end, zone)
    ]


@pytest.mark.parametrize("label", list(OBJECTS))
def test_instances_are_those_of_a_fresh_expansion(label: str) -> None:
    data = OBJECTS[label]
    expected = {
        (r, z): fresh(data, *RANGES[r], ZONES[z])
        for r in range(len(RANGES))
        for z in range(len(ZONES))
    }
    if label != "stored free-busy":  # the only one without events
        assert any(any(sets) for sets in expected.values())
    # twice over: filling the months, then answering from them (and in
    # another order, so that the months kept first serve later ranges)
    for order in (sorted(expected), sorted(expected, reverse=True)):
        for r, z in order:
            assert cached(data, *RANGES[r], ZONES[z]) == expected[(r, z)], (r, z)


@pytest.mark.parametrize("label", list(DENSE))
def test_cut_expansions_answer_as_without_a_cache(label: str) -> None:
    data = DENSE[label]
    expected = [fresh(data, start, end, UTC) for start, end in DENSE_RANGES]
    assert all(expected)
    for _ in range(2):
        assert [cached(data, start, end, UTC) for start, end in DENSE_RANGES] == expected
    busy = [object_busy(data, start, end, UTC) for start, end in DENSE_RANGES]
    parsed = itip.parse(data)
    assert [_merged(b) for b in busy] == [free_busy([parsed], *r, UTC) for r in DENSE_RANGES]


def test_busy_periods_are_those_of_free_busy() -> None:
    for zone in ZONES:
        for start, end in RANGES:
            together = []
            for data in OBJECTS.values():
                alone = object_busy(data, start, end, zone)
                expected = free_busy([itip.parse(data)], start, end, zone)
                assert _merged(alone) == expected, (data, start, end)
                together += alone
            everything = [itip.parse(data) for data in OBJECTS.values()]
            assert _merged(together) == free_busy(everything, start, end, zone)
    # the fixture counts: a tentative instance, unavailable, unknown types
    kinds = {k for _, _, k in object_busy(OBJECTS["stored free-busy"], *RANGES[1], UTC)}
    assert kinds == {"BUSY-UNAVAILABLE", "BUSY"}
    weekly = OBJECTS["weekly, Paris, moved and cancelled instances"]
    assert "BUSY-TENTATIVE" in {k for _, _, k in object_busy(weekly, *RANGES[1], UTC)}


def test_an_edited_object_is_answered_from_its_new_bytes() -> None:
    week = (utc(2026, 11, 16), utc(2026, 11, 23))
    before = OBJECTS["weekly, Paris, moved and cancelled instances"]
    assert [len(s) for s in cached(before, *week, PARIS)] == [1]
    after = before.replace(b"SUMMARY:Standup\r\n", b"SUMMARY:Retro\r\n").replace(
        b"FREQ=WEEKLY;COUNT=30", b"FREQ=DAILY;COUNT=300"
    )
    [instances] = cached(after, *week, PARIS)
    assert [i[5] for i in instances] == ["Retro"] * 7
    assert cached(before, *week, PARIS) == fresh(before, *week, PARIS)
    assert parsecache.parsed_events(b"BEGIN:VCALENDAR\r\nnot a calendar") is None
    assert object_busy(b"BEGIN:VCALENDAR\r\nnot a calendar", *week, UTC) == []


def test_the_cache_stays_within_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    def variant(n: int) -> bytes:
        return OBJECTS["daily all-day"].replace(b"SUMMARY:Leave", f"SUMMARY:Leave {n}".encode())

    monkeypatch.setattr(parsecache, "_cache", parsecache._new_cache(3, 10**9))
    for n in range(10):
        assert parsecache.parsed_events(variant(n)) is not None
        assert parsecache.cached() <= 3
    assert parsecache.cached() == 3

    # by weight: room for two objects with their months, not three
    parsed = parsecache.parsed_events(variant(0))
    assert parsed is not None
    parsecache.instances_between(*parsed, *RANGES[1], UTC)
    heaviest = parsecache.parsed_events(variant(0))
    assert heaviest is not None and heaviest[1].weight > parsed[1].weight
    monkeypatch.setattr(parsecache, "_cache", parsecache._new_cache(100, heaviest[1].weight * 2))
    for n in range(10):
        found = parsecache.parsed_events(variant(n))
        assert found is not None
        parsecache.instances_between(*found, *RANGES[1], UTC)
        assert parsecache.cached() <= 2

    # months of one object: the first kept go once there are too many
    data = OBJECTS["weekly, Paris, moved and cancelled instances"]
    for month in range(parsecache.MONTHS_PER_OBJECT + 12):
        found = parsecache.parsed_events(data)
        assert found is not None
        start = utc(2026 + month // 12, month % 12 + 1, 1)
        parsecache.instances_between(*found, start, start + timedelta(days=1), PARIS)
        assert len(found[1].months) <= parsecache.MONTHS_PER_OBJECT
    last = parsecache.parsed_events(data)
    assert last is not None and len(last[1].months) == parsecache.MONTHS_PER_OBJECT
