"""Tests for gk.dav.caldata: calendar object resources received by PUT."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from gk.dav.caldata import (
    FLOATING_SLACK,
    CalendarObject,
    InvalidCalendarData,
    parse_calendar_object,
)


def body(text: str, crlf: bool = True) -> bytes:
    lines = text.strip().split("\n")
    return ("\r\n" if crlf else "\n").join(lines).encode() + (b"\r\n" if crlf else b"\n")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def rejected(data: bytes, **kw: object) -> str:
    with pytest.raises(InvalidCalendarData) as caught:
        parse_calendar_object(data, **kw)  # type: ignore[arg-type]
    return caught.value.precondition


APPLE = body("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//macOS 14.2//EN
CALSCALE:GREGORIAN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
DTSTART:19810329T020000
TZNAME:CEST
TZOFFSETTO:+0200
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
DTSTART:19961027T030000
TZNAME:CET
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
CREATED:20240110T101500Z
UID:5E1B6A2C-8D3F-4F1A-9C2B-1A2B3C4D5E6F
DTEND;TZID=Europe/Berlin:20240115T113000
TRANSP:OPAQUE
X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
SUMMARY:Dentist
LAST-MODIFIED:20240110T101520Z
DTSTAMP:20240110T101520Z
DTSTART;TZID=Europe/Berlin:20240115T103000
SEQUENCE:0
BEGIN:VALARM
X-WR-ALARMUID:0F3E8D7C-1111-2222-3333-444455556666
UID:0F3E8D7C-1111-2222-3333-444455556666
TRIGGER:-PT30M
ATTACH;VALUE=URI:Chord
ACTION:AUDIO
END:VALARM
END:VEVENT
END:VCALENDAR""")


def test_apple_calendar_event() -> None:
    obj = parse_calendar_object(APPLE)
    assert obj == CalendarObject(
        uid="5E1B6A2C-8D3F-4F1A-9C2B-1A2B3C4D5E6F",
        component="VEVENT",
        start=utc(2024, 1, 15, 9, 30),
        end=utc(2024, 1, 15, 10, 30),
        recurring=False,
        summary="Dentist",
        data=obj.data,
        calendar=obj.calendar,
    )
    stored = Calendar.from_ical(obj.data)
    assert stored.walk("VALARM")[0]["ACTION"] == "AUDIO"
    assert b"X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC" in obj.data
    assert obj.data.endswith(b"END:VCALENDAR\r\n")
    assert parse_calendar_object(obj.data) == obj  # what is stored passes again


def test_thunderbird_recurring_with_override_lf_lines() -> None:
    data = body(
        """BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
BEGIN:VEVENT
CREATED:20240101T100000Z
DTSTAMP:20240101T100000Z
UID:0d4c7b5e-tb@test
SUMMARY:Book club
RRULE:FREQ=MONTHLY;COUNT=6;BYDAY=1TH
DTSTART:20240104T180000Z
DTEND:20240104T200000Z
END:VEVENT
BEGIN:VEVENT
DTSTAMP:20240201T100000Z
UID:0d4c7b5e-tb@test
RECURRENCE-ID:20240606T180000Z
SUMMARY:Book club (garden party)
DTSTART:20240608T150000Z
DTEND:20240608T220000Z
END:VEVENT
END:VCALENDAR""",
        crlf=False,
    )
    obj = parse_calendar_object(data)
    assert obj.recurring and obj.summary == "Book club"
    assert obj.start == utc(2024, 1, 4, 18)
    assert obj.end == utc(2024, 6, 8, 22)  # the last instance was moved later
    assert b"\r\n" in obj.data


def test_evolution_until_in_local_time() -> None:
    data = body("""BEGIN:VCALENDAR
PRODID:-//Ximian//NONSGML Evolution Calendar//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:/freeassociation.sourceforge.net/Europe/Berlin
X-LIC-LOCATION:Europe/Berlin
BEGIN:STANDARD
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:20240105T090000Z-4711-1000-1-0@host
DTSTAMP:20240105T090000Z
DTSTART;TZID=/freeassociation.sourceforge.net/Europe/Berlin:20240105T100000
DTEND;TZID=/freeassociation.sourceforge.net/Europe/Berlin:20240105T110000
RRULE:FREQ=WEEKLY;UNTIL=20240405T100000
SEQUENCE:1
SUMMARY:Team meeting
END:VEVENT
END:VCALENDAR""")
    obj = parse_calendar_object(data)
    assert obj.start == utc(2024, 1, 5, 9)
    assert obj.end == utc(2024, 4, 5, 9)  # 10:00 to 11:00 CEST on April 5th
    assert b"UNTIL=20240405T080000Z" in obj.data  # stored as RFC 5545 wants


def test_google_export_with_x_wr_timezone() -> None:
    data = body("""BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
CALSCALE:GREGORIAN
X-WR-CALNAME:Work
X-WR-TIMEZONE:Europe/Berlin
BEGIN:VEVENT
DTSTART:20240105T090000Z
DTEND:20240105T100000Z
RRULE:FREQ=WEEKLY;COUNT=30;BYDAY=FR
DTSTAMP:20240101T000000Z
UID:1a2b3c4d5e@google.com
CREATED:20231201T000000Z
DESCRIPTION:
LAST-MODIFIED:20231201T000000Z
SEQUENCE:0
STATUS:CONFIRMED
SUMMARY:Weekly review
TRANSP:OPAQUE
END:VEVENT
END:VCALENDAR""")
    obj = parse_calendar_object(data)
    assert b"DTSTART;TZID=Europe/Berlin:20240105T100000" in obj.data
    assert b"BEGIN:VTIMEZONE" in obj.data
    # the 30th Friday is July 26th, 10:00 in Berlin: 08:00 UTC (not 09:00)
    assert obj.end == utc(2024, 7, 26, 9)


def test_all_day_and_floating_are_widened() -> None:
    all_day = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:holiday
DTSTART;VALUE=DATE:20241225
DTEND;VALUE=DATE:20241227
SUMMARY:Holidays
END:VEVENT
END:VCALENDAR""")
    )
    assert all_day.start == utc(2024, 12, 25) - FLOATING_SLACK
    assert all_day.end == utc(2024, 12, 27) + FLOATING_SLACK
    assert b"VERSION:2.0" in all_day.data and b"PRODID:" in all_day.data
    floating = parse_calendar_object(
        body("""BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
UID:wake-up
DTSTART:20240101T070000
DURATION:PT15M
END:VEVENT
END:VCALENDAR""")
    )
    assert floating.start == utc(2024, 1, 1, 7) - timedelta(hours=14)
    assert floating.end == utc(2024, 1, 1, 7, 15) + timedelta(hours=14)


def test_all_day_until_given_as_date_time() -> None:
    obj = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:yoga
DTSTART;VALUE=DATE:20240102
RRULE:FREQ=WEEKLY;UNTIL=20240130T000000Z
END:VEVENT
END:VCALENDAR""")
    )
    assert b"UNTIL=20240130;" in obj.data or b"UNTIL=20240130\r\n" in obj.data
    assert obj.end == utc(2024, 1, 31) + FLOATING_SLACK


def test_unbounded_and_capped_recurrence() -> None:
    forever = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:birthday
DTSTART;VALUE=DATE:19800229
RRULE:FREQ=YEARLY
SUMMARY:Leap day birthday
END:VEVENT
END:VCALENDAR""")
    )
    assert forever.recurring and forever.end is None
    started = time.monotonic()
    capped = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:too-many
DTSTART:20240101T000000Z
RRULE:FREQ=SECONDLY;COUNT=5000000
END:VEVENT
END:VCALENDAR""")
    )
    assert capped.start == utc(2024, 1, 1) and capped.end is None
    unbounded = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:spam
DTSTART:20240101T000000Z
RRULE:FREQ=SECONDLY
END:VEVENT
END:VCALENDAR""")
    )
    assert unbounded.end is None
    far = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:far
DTSTART:20240101T000000Z
RRULE:FREQ=YEARLY;UNTIL=22240101T000000Z
END:VEVENT
END:VCALENDAR""")
    )
    assert far.end is None  # beyond 100 years
    assert time.monotonic() - started < 1


def test_barren_rule_is_accepted_as_its_first_instance() -> None:
    obj = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:feb-30
DTSTART:20240101T100000Z
DTEND:20240101T110000Z
RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30
END:VEVENT
END:VCALENDAR""")
    )
    assert (obj.start, obj.end) == (utc(2024, 1, 1, 10), utc(2024, 1, 1, 11))


def test_rdate_periods_and_exdate() -> None:
    obj = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:talks
DTSTART:20240301T090000Z
DTEND:20240301T100000Z
RDATE;VALUE=PERIOD:20240305T090000Z/PT8H
RDATE:20240310T090000Z
EXDATE:20240301T090000Z
END:VEVENT
END:VCALENDAR""")
    )
    assert obj.recurring
    assert obj.start == utc(2024, 3, 1, 9)  # EXDATE is not subtracted: conservative
    assert obj.end == utc(2024, 3, 10, 10)


def test_overrides_only() -> None:
    obj = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:series-from-an-invitation
RECURRENCE-ID:20240108T090000Z
DTSTART:20240108T100000Z
DTEND:20240108T110000Z
SUMMARY:The one I was invited to
END:VEVENT
BEGIN:VEVENT
UID:series-from-an-invitation
RECURRENCE-ID:20240115T090000Z
DTSTART:20240115T090000Z
DTEND:20240115T100000Z
END:VEVENT
END:VCALENDAR""")
    )
    assert obj.recurring and obj.summary == "The one I was invited to"
    assert (obj.start, obj.end) == (utc(2024, 1, 8, 10), utc(2024, 1, 15, 10))


def test_todos_and_journals() -> None:
    todo = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:t1
DUE:20240301T170000Z
SUMMARY:File taxes
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;RELATED=END:-P1D
END:VALARM
END:VTODO
END:VCALENDAR""")
    )
    assert (todo.component, todo.start, todo.end) == (
        "VTODO",
        utc(2024, 3, 1, 17),
        utc(2024, 3, 1, 17),
    )
    undated = parse_calendar_object(
        body("BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t2\nSUMMARY:Someday\nEND:VTODO\nEND:VCALENDAR")
    )
    assert (undated.start, undated.end) == (None, None)
    created = parse_calendar_object(
        body(
            "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t3\nCREATED:20240101T000000Z\n"
            "END:VTODO\nEND:VCALENDAR"
        )
    )
    assert (created.start, created.end) == (utc(2024, 1, 1), None)
    done = parse_calendar_object(
        body(
            "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t4\nCREATED:20240101T000000Z\n"
            "COMPLETED:20240105T000000Z\nEND:VTODO\nEND:VCALENDAR"
        )
    )
    assert (done.start, done.end) == (utc(2024, 1, 1), utc(2024, 1, 5))
    weekly = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:t5
DTSTART:20240105T080000Z
DUE:20240105T120000Z
RRULE:FREQ=WEEKLY;COUNT=3
END:VTODO
END:VCALENDAR""")
    )
    assert weekly.recurring and weekly.end == utc(2024, 1, 19, 12)
    journal = parse_calendar_object(
        body(
            "BEGIN:VCALENDAR\nBEGIN:VJOURNAL\nUID:j\nDTSTART;VALUE=DATE:20240105\n"
            "SUMMARY:Notes\nEND:VJOURNAL\nEND:VCALENDAR"
        )
    )
    assert journal.start == utc(2024, 1, 5) - FLOATING_SLACK
    assert journal.end == utc(2024, 1, 6) + FLOATING_SLACK


def test_unknown_timezone_is_floating_and_broken_x_property_kept() -> None:
    obj = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:odd
DTSTART;TZID=Somewhere/Unknown:20240101T100000
DURATION:PT1H
X-MOZ-SNOOZE-TIME:not-a-date
END:VEVENT
END:VCALENDAR""")
    )
    assert obj.start == utc(2024, 1, 1, 10) - FLOATING_SLACK
    assert b"X-MOZ-SNOOZE-TIME:not-a-date" in obj.data


@pytest.mark.parametrize(
    ("data", "precondition"),
    [
        (b"", "valid-calendar-data"),
        (b"\xff\xfe garbage", "valid-calendar-data"),
        (b"hello world", "valid-calendar-data"),
        (body("BEGIN:VCARD\nVERSION:4.0\nFN:x\nEND:VCARD"), "valid-calendar-data"),
        (body("BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR"), "valid-calendar-data"),
        (body("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nEND:VCALENDAR"), "valid-calendar-data"),
        (
            body("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nEND:VEVENT\nEND:VCALENDAR"),
            "valid-calendar-data",
        ),
        (
            body("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:2024XX\nEND:VEVENT\nEND:VCALENDAR"),
            "valid-calendar-data",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\n"
                "RRULE:FREQ=SOMETIMES\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-data",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\n"
                "RRULE:FREQ=DAILY;COUNT=0\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-data",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\n"
                "RRULE:FREQ=HOURLY;BYHOUR=25\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-data",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:x\n"
                "DTSTART:20240101T100000Z\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-object-resource",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\nEND:VEVENT\n"
                "BEGIN:VTODO\nUID:x\nEND:VTODO\nEND:VCALENDAR"
            ),
            "valid-calendar-object-resource",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\nEND:VEVENT\n"
                "BEGIN:VEVENT\nUID:y\nDTSTART:20240102T100000Z\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-object-resource",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20240101T100000Z\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-object-resource",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T100000Z\nEND:VEVENT\n"
                "BEGIN:VEVENT\nUID:x\nDTSTART:20240102T100000Z\nEND:VEVENT\nEND:VCALENDAR"
            ),
            "valid-calendar-object-resource",
        ),
        (
            body(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nRECURRENCE-ID:20240101T100000Z\n"
                "DTSTART:20240101T110000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:x\n"
                "RECURRENCE-ID:20240101T100000Z\nDTSTART:20240101T120000Z\nEND:VEVENT\n"
                "END:VCALENDAR"
            ),
            "valid-calendar-object-resource",
        ),
    ],
)
def test_rejected(data: bytes, precondition: str) -> None:
    assert rejected(data) == precondition


def test_supported_components() -> None:
    todo = body("BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:x\nEND:VTODO\nEND:VCALENDAR")
    assert (
        rejected(todo, allowed_components=frozenset({"VEVENT"})) == "supported-calendar-component"
    )
    freebusy = body(
        "BEGIN:VCALENDAR\nBEGIN:VFREEBUSY\nUID:f\nDTSTART:20240101T000000Z\n"
        "DTEND:20240102T000000Z\nEND:VFREEBUSY\nEND:VCALENDAR"
    )
    assert rejected(freebusy) == "supported-calendar-component"
    obj = parse_calendar_object(freebusy, frozenset({"VFREEBUSY"}))
    assert (obj.component, obj.start, obj.end) == ("VFREEBUSY", utc(2024, 1, 1), utc(2024, 1, 2))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_invalid_calendar_data(data: bytes) -> None:
    with contextlib.suppress(InvalidCalendarData):
        parse_calendar_object(data)


_PROPERTY = st.sampled_from(
    [
        "UID:u",
        "UID:v",
        "DTSTART:20240101T100000Z",
        "DTSTART;VALUE=DATE:20240101",
        "DTSTART;TZID=Europe/Paris:20240101T100000",
        "DTSTART:garbage",
        "DTEND:20231231T100000Z",
        "DURATION:-PT1H",
        "DUE;VALUE=DATE:20240105",
        "RRULE:FREQ=WEEKLY;UNTIL=20240301",
        "RRULE:FREQ=YEARLY;BYMONTH=13",
        "RRULE:FREQ=DAILY;BYSETPOS=0",
        "RRULE:INTERVAL=2",
        "RDATE;VALUE=PERIOD:20240103T100000Z/20240102T100000Z",
        "EXDATE;VALUE=DATE:20240108",
        "RECURRENCE-ID:20240108T100000Z",
        "SUMMARY:\u00e9t\u00e9",
        "METHOD:PUBLISH",
        "X-FOO;X=1:bar",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(_PROPERTY, max_size=6), min_size=1, max_size=3),
    st.sampled_from(["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "X-THING"]),
    st.booleans(),
)
def test_structured_fuzz_only_raises_invalid_calendar_data(
    components: list[list[str]], name: str, crlf: bool
) -> None:
    text = "BEGIN:VCALENDAR\n"
    for properties in components:
        text += f"BEGIN:{name}\n" + "\n".join(properties) + f"\nEND:{name}\n"
    try:
        obj = parse_calendar_object(body(text + "END:VCALENDAR", crlf))
    except InvalidCalendarData as e:
        assert e.precondition in (
            "valid-calendar-data",
            "valid-calendar-object-resource",
            "supported-calendar-component",
        )
    else:
        again = parse_calendar_object(obj.data)
        assert (again.uid, again.start, again.end) == (obj.uid, obj.start, obj.end)


def test_recurring_todo_with_due_only() -> None:
    obj = parse_calendar_object(
        body("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:tasks-org
DUE;VALUE=DATE:20240105
RRULE:FREQ=MONTHLY;UNTIL=20240405T000000Z
SUMMARY:Rent
END:VTODO
END:VCALENDAR""")
    )
    assert obj.recurring
    assert obj.end == utc(2024, 4, 5) + FLOATING_SLACK
    assert b"UNTIL=20240405\r\n" in obj.data


@pytest.mark.parametrize(
    "lines",
    [
        "DTSTART;VALUE=DATE:99991231",
        "DTSTART:00010101T000000\nRRULE:FREQ=DAILY;COUNT=3",
        "DTSTART;VALUE=DATE:00010101\nDURATION:-P1D",
        "DTSTART:20240101T000000Z\nRRULE:FREQ=YEARLY;UNTIL=99991231",
    ],
)
def test_times_at_the_ends_of_the_calendar(lines: str) -> None:
    obj = parse_calendar_object(
        body(f"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n{lines}\nEND:VEVENT\nEND:VCALENDAR")
    )
    assert obj.start is not None
