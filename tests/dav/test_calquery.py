"""Tests for gk.dav.calquery: calendar-query filters, calendar-data options, free-busy."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from gk.dav.calexpand import expand_series, group_series, to_utc, value_of
from gk.dav.calquery import (
    CompFilter,
    CompSpec,
    InvalidFilter,
    ParamFilter,
    PropFilter,
    PropSpec,
    QueryError,
    TextMatch,
    TimeRange,
    UnsupportedCalendarData,
    UnsupportedCollation,
    expand,
    free_busy,
    free_busy_calendar,
    limit_recurrence_set,
    matches,
    parse_calendar_data_request,
    parse_filter,
    render_calendar_data,
    select_properties,
)

C = "urn:ietf:params:xml:ns:caldav"
NEW_YORK_TZ = """BEGIN:VTIMEZONE
TZID:US-Eastern
BEGIN:STANDARD
DTSTART:19671029T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19870405T020000
RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=4
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
END:DAYLIGHT
END:VTIMEZONE
"""


def cal(body: str) -> Calendar:
    """A calendar from a readable body: LF lines, VTIMEZONE by placeholder."""
    text = body.replace("{TZ}", NEW_YORK_TZ).strip().replace("\n", "\r\n") + "\r\n"
    return Calendar.from_ical(text)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def xml_filter(inner: str) -> CompFilter:
    return parse_filter(ET.fromstring(f'<C:filter xmlns:C="{C}">{inner}</C:filter>'))


def event_range(start: str, end: str) -> CompFilter:
    return xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
    )


def in_range(
    calendar: Calendar, start: datetime | None, end: datetime | None, **kw: object
) -> bool:
    name = next(str(c.name) for c in calendar.subcomponents if c.name != "VTIMEZONE")
    inner = CompFilter(name, time_range=TimeRange(start, end))
    return matches(calendar, CompFilter("VCALENDAR", comp_filters=(inner,)), **kw)  # type: ignore[arg-type]


# -- a collection like the one of RFC 4791 appendix B (own data) -----------------

PLAIN = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
{TZ}BEGIN:VEVENT
UID:plain-1@test
DTSTAMP:20060206T001102Z
DTSTART;TZID=US-Eastern:20060102T100000
DURATION:PT1H
SUMMARY:Breakfast
END:VEVENT
END:VCALENDAR""")

DAILY = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
{TZ}BEGIN:VEVENT
UID:daily-2@test
DTSTAMP:20060206T001121Z
DTSTART;TZID=US-Eastern:20060102T120000
DURATION:PT1H
RRULE:FREQ=DAILY;COUNT=5
SUMMARY:Lunch
END:VEVENT
BEGIN:VEVENT
UID:daily-2@test
DTSTAMP:20060206T001121Z
RECURRENCE-ID;TZID=US-Eastern:20060104T120000
DTSTART;TZID=US-Eastern:20060104T140000
DURATION:PT1H
SUMMARY:Late lunch
END:VEVENT
BEGIN:VEVENT
UID:daily-2@test
DTSTAMP:20060206T001121Z
RECURRENCE-ID;TZID=US-Eastern:20060106T120000
DTSTART;TZID=US-Eastern:20060106T140000
DURATION:PT1H
SUMMARY:Another late lunch
END:VEVENT
END:VCALENDAR""")

MEETING = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
{TZ}BEGIN:VEVENT
UID:meeting-3@test
DTSTAMP:20060206T001220Z
DTSTART;TZID=US-Eastern:20060104T100000
DURATION:PT1H
SUMMARY:Planning
ORGANIZER:mailto:ann@example.test
ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.test
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.test
STATUS:TENTATIVE
END:VEVENT
END:VCALENDAR""")

TODO_DUE = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTODO
UID:todo-4@test
DTSTAMP:20060205T235335Z
DUE;VALUE=DATE:20060104
STATUS:NEEDS-ACTION
SUMMARY:Pay the rent
END:VTODO
END:VCALENDAR""")

TODO_DONE = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTODO
UID:todo-5@test
DTSTAMP:20060205T235300Z
DUE;VALUE=DATE:20060106
COMPLETED:20051223T122322Z
STATUS:COMPLETED
SUMMARY:Buy a gift
END:VTODO
END:VCALENDAR""")

TODO_ALARM = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTODO
UID:todo-6@test
DTSTAMP:20060205T235600Z
DUE;VALUE=DATE:20060112
STATUS:NEEDS-ACTION
SUMMARY:Water the plants
BEGIN:VALARM
ACTION:AUDIO
TRIGGER;VALUE=DATE-TIME:20060106T100000Z
END:VALARM
END:VTODO
END:VCALENDAR""")

TODO_CANCELLED = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTODO
UID:todo-7@test
DTSTAMP:20060205T235600Z
DUE;VALUE=DATE:20060107
STATUS:CANCELLED
SUMMARY:Call the plumber
END:VTODO
END:VCALENDAR""")

STORED_FREEBUSY = cal("""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VFREEBUSY
UID:fb-8@test
DTSTAMP:20060206T001500Z
ORGANIZER:mailto:ann@example.test
DTSTART:20060101T000000Z
DTEND:20060108T000000Z
FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20060102T100000Z/20060102T120000Z
FREEBUSY;FBTYPE=BUSY-TENTATIVE:20060103T100000Z/PT1H
FREEBUSY:20060105T100000Z/20060105T110000Z
END:VFREEBUSY
END:VCALENDAR""")

COLLECTION = {
    "plain": PLAIN,
    "daily": DAILY,
    "meeting": MEETING,
    "todo-due": TODO_DUE,
    "todo-done": TODO_DONE,
    "todo-alarm": TODO_ALARM,
    "todo-cancelled": TODO_CANCELLED,
    "freebusy": STORED_FREEBUSY,
}


def query(f: CompFilter) -> set[str]:
    return {name for name, calendar in COLLECTION.items() if matches(calendar, f)}


def test_events_in_a_time_range() -> None:
    """Events of Jan 4th: the recurring one (its moved instance) and the meeting."""
    assert query(event_range("20060104T000000Z", "20060105T000000Z")) == {"daily", "meeting"}


def test_events_only() -> None:
    f = xml_filter('<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter>')
    assert query(f) == {"plain", "daily", "meeting"}


def test_todos_by_alarm_time() -> None:
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
        '<C:comp-filter name="VALARM">'
        '<C:time-range start="20060106T100000Z" end="20060107T100000Z"/>'
        "</C:comp-filter></C:comp-filter></C:comp-filter>"
    )
    assert query(f) == {"todo-alarm"}


def test_event_by_uid() -> None:
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="UID">'
        '<C:text-match collation="i;octet">meeting-3@test</C:text-match>'
        "</C:prop-filter></C:comp-filter></C:comp-filter>"
    )
    assert query(f) == {"meeting"}


def test_events_by_partstat() -> None:
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="ATTENDEE">'
        '<C:text-match collation="i;ascii-casemap">MAILTO:bob@example.test</C:text-match>'
        '<C:param-filter name="PARTSTAT"><C:text-match>needs-action</C:text-match>'
        "</C:param-filter></C:prop-filter></C:comp-filter></C:comp-filter>"
    )
    assert query(f) == {"meeting"}
    # the condition must hold for one and the same ATTENDEE
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="ATTENDEE">'
        "<C:text-match>mailto:ann@example.test</C:text-match>"
        '<C:param-filter name="PARTSTAT"><C:text-match>NEEDS-ACTION</C:text-match>'
        "</C:param-filter></C:prop-filter></C:comp-filter></C:comp-filter>"
    )
    assert query(f) == set()


def test_pending_todos() -> None:
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
        '<C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter>'
        '<C:prop-filter name="STATUS">'
        '<C:text-match negate-condition="yes">CANCELLED</C:text-match>'
        "</C:prop-filter></C:comp-filter></C:comp-filter>"
    )
    assert query(f) == {"todo-due", "todo-alarm"}


def test_unsupported_collation() -> None:
    with pytest.raises(UnsupportedCollation) as caught:
        xml_filter(
            '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            '<C:prop-filter name="SUMMARY">'
            '<C:text-match collation="i;unicode-casemap">x</C:text-match>'
            "</C:prop-filter></C:comp-filter></C:comp-filter>"
        )
    assert caught.value.precondition == "supported-collation"


def test_freebusy_component_time_range() -> None:
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VFREEBUSY">'
        '<C:time-range start="20060107T000000Z" end="20060109T000000Z"/>'
        "</C:comp-filter></C:comp-filter>"
    )
    assert query(f) == {"freebusy"}


def test_todo_time_ranges() -> None:
    """RFC 4791 9.9 for to-dos: DUE only, DUE as a date (floating)."""
    assert in_range(TODO_DUE, utc(2006, 1, 3), utc(2006, 1, 5))
    assert not in_range(TODO_DUE, utc(2006, 1, 4, 1), utc(2006, 1, 5))
    # a to-do with neither DTSTART nor DUE: by CREATED and COMPLETED, else always
    undated = cal("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:u
CREATED:20240101T000000Z
END:VTODO
END:VCALENDAR""")
    assert in_range(undated, utc(2024, 2, 1), utc(2024, 3, 1))
    assert not in_range(undated, utc(2023, 2, 1), utc(2023, 3, 1))
    timeless = cal("BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t\nEND:VTODO\nEND:VCALENDAR")
    assert in_range(timeless, utc(1999, 1, 1), utc(1999, 1, 2))


def test_todo_with_start_and_duration() -> None:
    todo = cal("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:t
DTSTART:20240110T090000Z
DURATION:PT2H
END:VTODO
END:VCALENDAR""")
    assert in_range(todo, utc(2024, 1, 10, 10), utc(2024, 1, 10, 12))
    assert in_range(todo, utc(2024, 1, 10, 11), utc(2024, 1, 10, 12))  # start <= DTSTART+DURATION
    assert not in_range(todo, utc(2024, 1, 10, 11, 1), utc(2024, 1, 10, 12))
    assert not in_range(todo, utc(2024, 1, 10, 7), utc(2024, 1, 10, 9))


# -- events: the 9.9 table ---------------------------------------------------------


def test_event_end_is_exclusive_and_instants() -> None:
    one_hour = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:e
DTSTART:20240110T090000Z
DTEND:20240110T100000Z
END:VEVENT
END:VCALENDAR""")
    assert not in_range(one_hour, utc(2024, 1, 10, 10), utc(2024, 1, 10, 11))
    assert not in_range(one_hour, utc(2024, 1, 10, 8), utc(2024, 1, 10, 9))
    assert in_range(one_hour, utc(2024, 1, 10, 9, 59), utc(2024, 1, 10, 11))
    instant = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:e
DTSTART:20240110T090000Z
END:VEVENT
END:VCALENDAR""")
    assert in_range(instant, utc(2024, 1, 10, 9), utc(2024, 1, 10, 10))
    assert not in_range(instant, utc(2024, 1, 10, 8), utc(2024, 1, 10, 9))


def test_all_day_event_and_floating_zone() -> None:
    all_day = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:birthday
DTSTART;VALUE=DATE:20240310
SUMMARY:Birthday
RRULE:FREQ=YEARLY
END:VEVENT
END:VCALENDAR""")
    assert in_range(all_day, utc(2030, 3, 10, 12), utc(2030, 3, 10, 13))
    assert not in_range(all_day, utc(2030, 3, 11), utc(2030, 3, 12))
    # read in Tokyo, March 10th is 15:00 UTC on the 9th to 15:00 on the 10th
    tokyo = ZoneInfo("Asia/Tokyo")
    assert in_range(all_day, utc(2030, 3, 9, 16), utc(2030, 3, 9, 17), floating_tz=tokyo)
    assert not in_range(all_day, utc(2030, 3, 10, 16), utc(2030, 3, 10, 17), floating_tz=tokyo)


def test_floating_time_event() -> None:
    floating = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:f
DTSTART:20240110T090000
DTEND:20240110T100000
RRULE:FREQ=DAILY;COUNT=3
END:VEVENT
END:VCALENDAR""")
    assert in_range(floating, utc(2024, 1, 11, 9), utc(2024, 1, 11, 10))
    berlin = ZoneInfo("Europe/Berlin")
    assert not in_range(floating, utc(2024, 1, 11, 9), utc(2024, 1, 11, 10), floating_tz=berlin)
    assert in_range(floating, utc(2024, 1, 11, 8), utc(2024, 1, 11, 9), floating_tz=berlin)


# -- recurrence ------------------------------------------------------------------

THUNDERBIRD_WEEKLY = cal("""BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
CREATED:20240101T100000Z
LAST-MODIFIED:20240101T100000Z
DTSTAMP:20240101T100000Z
UID:7c2a9b7e-tb@test
SUMMARY:Standup
RRULE:FREQ=WEEKLY;BYDAY=MO,WE
EXDATE:20240117T080000Z
DTSTART;TZID=Europe/Berlin:20240101T090000
DTEND;TZID=Europe/Berlin:20240101T091500
TRANSP:OPAQUE
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;VALUE=DURATION:-PT15M
DESCRIPTION:Standup
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:7c2a9b7e-tb@test
RECURRENCE-ID;TZID=Europe/Berlin:20240110T090000
DTSTART;TZID=Europe/Berlin:20240112T150000
DTEND;TZID=Europe/Berlin:20240112T151500
SUMMARY:Standup (moved to Friday)
DTSTAMP:20240105T100000Z
END:VEVENT
END:VCALENDAR""")


def test_recurring_event_exdate_and_dst() -> None:
    # Monday Jan 15th 09:00 Berlin = 08:00 UTC
    assert in_range(THUNDERBIRD_WEEKLY, utc(2024, 1, 15, 8), utc(2024, 1, 15, 8, 1))
    # Wednesday Jan 17th is excluded
    assert not in_range(THUNDERBIRD_WEEKLY, utc(2024, 1, 17), utc(2024, 1, 18))
    # in summer 09:00 Berlin is 07:00 UTC
    assert in_range(THUNDERBIRD_WEEKLY, utc(2024, 7, 1, 7), utc(2024, 7, 1, 7, 1))
    assert not in_range(THUNDERBIRD_WEEKLY, utc(2024, 7, 1, 8), utc(2024, 7, 1, 9))


def test_overridden_instance_moved_out_of_and_into_the_range() -> None:
    wednesday = (utc(2024, 1, 10), utc(2024, 1, 11))
    friday = (utc(2024, 1, 12), utc(2024, 1, 13))
    assert not in_range(THUNDERBIRD_WEEKLY, *wednesday)
    assert in_range(THUNDERBIRD_WEEKLY, *friday)
    moved = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20240112T000000Z" end="20240113T000000Z"/>'
        '<C:prop-filter name="SUMMARY"><C:text-match>friday</C:text-match></C:prop-filter>'
        "</C:comp-filter></C:comp-filter>"
    )
    assert matches(THUNDERBIRD_WEEKLY, moved)
    master_summary = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20240112T000000Z" end="20240113T000000Z"/>'
        '<C:prop-filter name="RRULE"/>'
        "</C:comp-filter></C:comp-filter>"
    )
    assert not matches(THUNDERBIRD_WEEKLY, master_summary)


def test_alarm_of_recurring_event() -> None:
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:comp-filter name="VALARM">'
        '<C:time-range start="20240122T074000Z" end="20240122T075000Z"/>'
        "</C:comp-filter></C:comp-filter></C:comp-filter>"
    )
    assert matches(THUNDERBIRD_WEEKLY, f)  # Monday 09:00 Berlin - 15 minutes
    f = xml_filter(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:comp-filter name="VALARM">'
        '<C:time-range start="20240123T074000Z" end="20240123T075000Z"/>'
        "</C:comp-filter></C:comp-filter></C:comp-filter>"
    )
    assert not matches(THUNDERBIRD_WEEKLY, f)


def test_alarm_related_to_end_with_repeats() -> None:
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:t
DTSTART:20240301T080000Z
DUE:20240301T170000Z
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;RELATED=END:-PT1H
REPEAT:2
DURATION:PT10M
END:VALARM
END:VTODO
END:VCALENDAR""")

    def alarm_at(start: str, end: str) -> bool:
        return matches(
            calendar,
            xml_filter(
                '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
                f'<C:comp-filter name="VALARM"><C:time-range start="{start}" end="{end}"/>'
                "</C:comp-filter></C:comp-filter></C:comp-filter>"
            ),
        )

    assert alarm_at("20240301T160000Z", "20240301T160100Z")
    assert alarm_at("20240301T162000Z", "20240301T162100Z")  # second repetition
    assert not alarm_at("20240301T163000Z", "20240301T165900Z")


def test_rdate_periods() -> None:
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:r
DTSTART:20240101T100000Z
DTEND:20240101T110000Z
RDATE;VALUE=PERIOD:20240201T100000Z/20240201T180000Z,20240301T100000Z/PT30M
RDATE:20240401T100000Z
END:VEVENT
END:VCALENDAR""")
    assert in_range(calendar, utc(2024, 2, 1, 17), utc(2024, 2, 1, 18))  # the long period
    assert in_range(calendar, utc(2024, 3, 1, 10, 20), utc(2024, 3, 1, 11))
    assert not in_range(calendar, utc(2024, 3, 1, 10, 30), utc(2024, 3, 1, 11))
    assert in_range(calendar, utc(2024, 4, 1, 10, 50), utc(2024, 4, 1, 11))  # master's length
    assert not in_range(calendar, utc(2024, 1, 2), utc(2024, 1, 31))


def test_overrides_without_master() -> None:
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:invited-once
RECURRENCE-ID:20240108T090000Z
DTSTART:20240108T100000Z
DTEND:20240108T110000Z
SUMMARY:Only this instance
END:VEVENT
END:VCALENDAR""")
    assert in_range(calendar, utc(2024, 1, 8, 10), utc(2024, 1, 8, 11))
    assert not in_range(calendar, utc(2024, 1, 8, 9), utc(2024, 1, 8, 10))


def test_recurring_todo() -> None:
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:weekly-todo
DTSTART;VALUE=DATE:20240105
DUE;VALUE=DATE:20240106
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Take out the bins
END:VTODO
END:VCALENDAR""")
    assert in_range(calendar, utc(2024, 1, 19, 12), utc(2024, 1, 19, 13))
    assert in_range(calendar, utc(2024, 1, 26, 12), utc(2024, 1, 26, 13))  # the 4th
    assert not in_range(calendar, utc(2024, 2, 2, 12), utc(2024, 2, 2, 13))  # after COUNT
    assert not in_range(calendar, utc(2024, 1, 16), utc(2024, 1, 18))


def test_open_ranges() -> None:
    weekly = THUNDERBIRD_WEEKLY
    assert in_range(weekly, utc(2100, 1, 1), None)
    assert in_range(weekly, None, utc(2024, 1, 2))
    assert not in_range(weekly, None, utc(2024, 1, 1))
    assert in_range(PLAIN, None, utc(2006, 1, 3))
    assert not in_range(PLAIN, utc(2006, 1, 3), None)


def test_google_export_with_x_wr_timezone() -> None:
    google = cal("""BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
CALSCALE:GREGORIAN
X-WR-TIMEZONE:Europe/Berlin
BEGIN:VEVENT
DTSTART:20240105T090000Z
DTEND:20240105T100000Z
RRULE:FREQ=WEEKLY;BYDAY=FR
DTSTAMP:20240101T000000Z
UID:abc123@google.com
SUMMARY:Review
END:VEVENT
END:VCALENDAR""")
    # 10:00 in Berlin all year: 08:00 UTC in summer (UTC reading would say 09:00)
    assert in_range(google, utc(2024, 7, 5, 8), utc(2024, 7, 5, 8, 30))
    assert not in_range(google, utc(2024, 7, 5, 9), utc(2024, 7, 5, 9, 30))


def test_pathological_rule_returns_quickly() -> None:
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:every-second
DTSTART:20200101T000000Z
RRULE:FREQ=SECONDLY
SUMMARY:Spam
END:VEVENT
END:VCALENDAR""")
    started = time.monotonic()
    assert in_range(calendar, utc(2024, 1, 1), utc(2024, 2, 1))  # by the cut, conservatively
    assert in_range(calendar, utc(2021, 5, 5, 10), utc(2021, 5, 5, 10, 0, 1))
    assert not in_range(calendar, utc(2019, 1, 1), utc(2019, 2, 1))
    f = event_range("20240101T000000Z", "20250101T000000Z")
    assert matches(calendar, f, max_instances=100)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYSETPOS=3",
        "FREQ=HOURLY;INTERVAL=5;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=MONTHLY;BYDAY=6MO",
        "FREQ=DAILY;INTERVAL=14;BYDAY=TU",
        "FREQ=MONTHLY;INTERVAL=12;BYMONTH=3",
        "FREQ=YEARLY;BYWEEKNO=53;BYMONTH=6",
        "FREQ=MINUTELY;BYYEARDAY=366;BYMONTH=1",
    ],
)
def test_barren_rules_return_quickly(rule: str) -> None:
    calendar = cal(f"""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:never
DTSTART:20200106T100000Z
RRULE:{rule}
END:VEVENT
END:VCALENDAR""")
    started = time.monotonic()
    assert in_range(calendar, utc(2020, 1, 6, 10), utc(2020, 1, 6, 11))  # DTSTART still counts
    assert not in_range(calendar, utc(2024, 1, 1), None)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("rule", "monday"),
    [
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", utc(2024, 1, 1, 10)),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO,SU", utc(2023, 12, 31, 10)),
        ("FREQ=MONTHLY;INTERVAL=13;BYMONTHDAY=-1", utc(2024, 3, 31, 10)),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", utc(2024, 2, 29, 10)),
    ],
)
def test_rules_that_look_barren_but_are_not(rule: str, monday: datetime) -> None:
    calendar = cal(f"""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:sparse
DTSTART:20201227T100000Z
RRULE:{rule}
END:VEVENT
END:VCALENDAR""")
    assert in_range(calendar, monday, monday + timedelta(minutes=1))


def test_old_daily_event_is_cheap_and_complete() -> None:
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:since-1950
DTSTART;TZID=Europe/Paris:19500102T080000
DURATION:PT30M
RRULE:FREQ=DAILY
END:VEVENT
END:VCALENDAR""")
    started = time.monotonic()
    group = group_series(calendar.subcomponents)[0]
    expansion = expand_series(group, utc(2024, 6, 1), utc(2024, 6, 8), max_instances=50)
    assert expansion.truncated_after is None
    assert [i.start for i in expansion.instances] == [utc(2024, 6, d, 6) for d in range(1, 8)]
    assert time.monotonic() - started < 0.5


# -- filters: parsing and text ------------------------------------------------------


@pytest.mark.parametrize(
    "inner",
    [
        "",
        '<C:comp-filter name="VEVENT"/>',
        '<C:comp-filter name="VCALENDAR"/><C:comp-filter name="VCALENDAR"/>',
        '<C:comp-filter name="VCALENDAR"><C:comp-filter/></C:comp-filter>',
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        "<C:time-range/></C:comp-filter></C:comp-filter>",
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="2006-01-04"/></C:comp-filter></C:comp-filter>',
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20060104T000000Z" end="20060103T000000Z"/>'
        "</C:comp-filter></C:comp-filter>",
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20061304T000000Z"/></C:comp-filter></C:comp-filter>',
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="SUMMARY"><C:text-match negate-condition="maybe">x'
        "</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>",
    ],
)
def test_invalid_filters(inner: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        xml_filter(inner)
    assert caught.value.precondition == "valid-filter"


def test_parse_filter_tree() -> None:
    f = xml_filter(
        '<C:comp-filter name="vcalendar"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20060104T000000Z"/>'
        '<C:prop-filter name="ATTENDEE"><C:text-match collation="i;octet" '
        'negate-condition="yes">x</C:text-match>'
        '<C:param-filter name="PARTSTAT"><C:is-not-defined/></C:param-filter>'
        '</C:prop-filter><X:ignored xmlns:X="urn:x"/></C:comp-filter></C:comp-filter>'
    )
    assert f == CompFilter(
        "VCALENDAR",
        comp_filters=(
            CompFilter(
                "VEVENT",
                time_range=TimeRange(utc(2006, 1, 4), None),
                prop_filters=(
                    PropFilter(
                        "ATTENDEE",
                        text_match=TextMatch("x", "i;octet", negate=True),
                        param_filters=(ParamFilter("PARTSTAT", is_not_defined=True),),
                    ),
                ),
            ),
        ),
    )


def test_text_match_collations() -> None:
    assert TextMatch("lunch").matches(["Late LUNCH"])
    assert not TextMatch("lunch", "i;octet").matches(["Late LUNCH"])
    assert TextMatch("É", "i;ascii-casemap").matches(["café É"])
    assert not TextMatch("é", "i;ascii-casemap").matches(["CAFÉ"])  # ASCII letters only
    assert TextMatch("zzz", negate=True).matches(["abc"])


def test_is_not_defined_component_and_top_level() -> None:
    no_alarm = CompFilter(
        "VCALENDAR",
        comp_filters=(CompFilter("VEVENT", comp_filters=(CompFilter("VALARM", True),)),),
    )
    assert matches(PLAIN, no_alarm)
    # any one VEVENT will do: the override has no alarm
    assert matches(THUNDERBIRD_WEEKLY, no_alarm)
    todo_without_alarm = CompFilter(
        "VCALENDAR",
        comp_filters=(CompFilter("VTODO", comp_filters=(CompFilter("VALARM", True),)),),
    )
    assert not matches(TODO_ALARM, todo_without_alarm)
    assert matches(TODO_DUE, todo_without_alarm)
    assert not matches(PLAIN, CompFilter("VCALENDAR", comp_filters=(CompFilter("VTODO"),)))
    assert matches(PLAIN, CompFilter("VCALENDAR", comp_filters=(CompFilter("VTODO", True),)))


def test_property_time_range_and_param_values() -> None:
    f = CompFilter(
        "VCALENDAR",
        comp_filters=(
            CompFilter(
                "VTODO",
                prop_filters=(
                    PropFilter(
                        "COMPLETED", time_range=TimeRange(utc(2005, 12, 1), utc(2006, 1, 1))
                    ),
                ),
            ),
        ),
    )
    assert matches(TODO_DONE, f)
    assert not matches(TODO_DUE, f)
    member = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:m
DTSTART:20240101T100000Z
ATTENDEE;MEMBER="mailto:team@example.test","mailto:all@example.test":mailto:x@example.test
END:VEVENT
END:VCALENDAR""")
    by_member = CompFilter(
        "VCALENDAR",
        comp_filters=(
            CompFilter(
                "VEVENT",
                prop_filters=(
                    PropFilter(
                        "ATTENDEE",
                        param_filters=(ParamFilter("MEMBER", text_match=TextMatch("ALL@")),),
                    ),
                ),
            ),
        ),
    )
    assert matches(member, by_member)


# -- calendar-data -----------------------------------------------------------------


def test_expand() -> None:
    result = expand(DAILY, utc(2006, 1, 3), utc(2006, 1, 5))
    events = result.walk("VEVENT")
    assert [
        (value_of(e, "DTSTART"), value_of(e, "RECURRENCE-ID"), str(e["SUMMARY"])) for e in events
    ] == [
        (utc(2006, 1, 3, 17), utc(2006, 1, 3, 17), "Lunch"),
        (utc(2006, 1, 4, 19), utc(2006, 1, 4, 17), "Late lunch"),
    ]
    assert result.walk("VTIMEZONE") == []
    text = result.to_ical().decode()
    assert "RRULE" not in text and "TZID" not in text


def test_expand_all_day_and_plain() -> None:
    birthday = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:b
DTSTART;VALUE=DATE:20000229
RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1
END:VEVENT
END:VCALENDAR""")
    result = expand(birthday, utc(2023, 1, 1), utc(2025, 1, 1))
    starts = [value_of(e, "DTSTART") for e in result.walk("VEVENT")]
    assert starts == [date(2023, 2, 28), date(2024, 2, 29)]
    assert [value_of(e, "RECURRENCE-ID") for e in result.walk("VEVENT")] == starts
    plain = expand(PLAIN, utc(2006, 1, 1), utc(2006, 1, 3))
    (event,) = plain.walk("VEVENT")
    assert value_of(event, "DTSTART") == utc(2006, 1, 2, 15) and "RECURRENCE-ID" not in event
    assert expand(PLAIN, utc(2006, 1, 3), utc(2006, 1, 4)).walk("VEVENT") == []


def test_limit_recurrence_set() -> None:
    result = limit_recurrence_set(DAILY, utc(2006, 1, 3), utc(2006, 1, 5))
    kept = [value_of(e, "RECURRENCE-ID") for e in result.walk("VEVENT")]
    assert len(kept) == 2 and kept[0] is None
    assert kept[1] is not None and to_utc(kept[1]) == utc(2006, 1, 4, 17)
    assert len(result.walk("VTIMEZONE")) == 1
    # an override moved out of the range still counts by its original time
    moved = limit_recurrence_set(THUNDERBIRD_WEEKLY, utc(2024, 1, 10), utc(2024, 1, 11))
    assert len(moved.walk("VEVENT")) == 2
    assert (
        len(
            limit_recurrence_set(THUNDERBIRD_WEEKLY, utc(2024, 2, 1), utc(2024, 3, 1)).walk(
                "VEVENT"
            )
        )
        == 1
    )


def test_select_properties_and_render() -> None:
    request = parse_calendar_data_request(
        ET.fromstring(
            f'<C:calendar-data xmlns:C="{C}">'
            '<C:comp name="VCALENDAR"><C:prop name="VERSION"/>'
            '<C:comp name="VEVENT"><C:prop name="SUMMARY"/><C:prop name="UID"/>'
            '<C:prop name="DTSTART"/><C:prop name="ATTENDEE" novalue="yes"/></C:comp>'
            '<C:comp name="VTIMEZONE"><C:allprop/><C:allcomp/></C:comp>'
            "</C:comp></C:calendar-data>"
        )
    )
    assert request.comp is not None
    assert request.comp.comps[0] == CompSpec(
        "VEVENT",
        props=(
            PropSpec("SUMMARY"),
            PropSpec("UID"),
            PropSpec("DTSTART"),
            PropSpec("ATTENDEE", True),
        ),
    )
    text = render_calendar_data(MEETING, request).decode()
    assert "VERSION:2.0" in text and "PRODID" not in text
    assert "SUMMARY:Planning" in text and "DURATION" not in text and "ORGANIZER" not in text
    assert text.count("ATTENDEE:\r\n") == 2
    assert "TZOFFSETFROM" in text
    selected = select_properties(MEETING, CompSpec("VCALENDAR", all_props=True))
    assert selected.subcomponents == [] and "PRODID" in selected


def test_render_expanded_and_freebusy_limited() -> None:
    request = parse_calendar_data_request(
        ET.fromstring(
            f'<C:calendar-data xmlns:C="{C}">'
            '<C:expand start="20060103T000000Z" end="20060105T000000Z"/>'
            '<C:limit-freebusy-set start="20060102T000000Z" end="20060104T000000Z"/>'
            "</C:calendar-data>"
        )
    )
    assert request.expand == TimeRange(utc(2006, 1, 3), utc(2006, 1, 5))
    assert render_calendar_data(DAILY, request).count(b"BEGIN:VEVENT") == 2
    text = render_calendar_data(STORED_FREEBUSY, request).decode()
    assert "20060105T100000Z" not in text
    assert "FBTYPE=BUSY-TENTATIVE:20060103T100000Z/20060103T110000Z" in text


@pytest.mark.parametrize(
    ("xml", "error"),
    [
        ('<C:calendar-data content-type="application/json"/>', UnsupportedCalendarData),
        ('<C:calendar-data version="3.0"/>', UnsupportedCalendarData),
        ('<C:calendar-data><C:expand start="20060103T000000Z"/></C:calendar-data>', QueryError),
        (
            '<C:calendar-data><C:expand start="20060103T000000Z" end="20060104T000000Z"/>'
            '<C:limit-recurrence-set start="20060103T000000Z" end="20060104T000000Z"/>'
            "</C:calendar-data>",
            QueryError,
        ),
        ("<C:calendar-data><C:comp/></C:calendar-data>", QueryError),
    ],
)
def test_invalid_calendar_data_requests(xml: str, error: type[QueryError]) -> None:
    element = ET.fromstring(xml.replace("<C:calendar-data", f'<C:calendar-data xmlns:C="{C}"', 1))
    with pytest.raises(error):
        parse_calendar_data_request(element)


# -- free busy -----------------------------------------------------------------------


def test_free_busy() -> None:
    transparent = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:tr
DTSTART:20060104T090000Z
DTEND:20060104T180000Z
TRANSP:TRANSPARENT
END:VEVENT
END:VCALENDAR""")
    cancelled = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:ca
DTSTART:20060104T090000Z
DTEND:20060104T180000Z
STATUS:CANCELLED
END:VEVENT
END:VCALENDAR""")
    overlapping = cal("""BEGIN:VCALENDAR
BEGIN:VEVENT
UID:ov
DTSTART:20060103T163000Z
DTEND:20060103T173000Z
END:VEVENT
END:VCALENDAR""")
    calendars = [PLAIN, DAILY, MEETING, TODO_DUE, transparent, cancelled, overlapping]
    busy = free_busy(calendars, utc(2006, 1, 2), utc(2006, 1, 5))
    assert busy == [
        (utc(2006, 1, 2, 15), utc(2006, 1, 2, 16), "BUSY"),
        (utc(2006, 1, 2, 17), utc(2006, 1, 2, 18), "BUSY"),
        (utc(2006, 1, 3, 16, 30), utc(2006, 1, 3, 18), "BUSY"),
        (utc(2006, 1, 4, 15), utc(2006, 1, 4, 16), "BUSY-TENTATIVE"),
        (utc(2006, 1, 4, 19), utc(2006, 1, 4, 20), "BUSY"),
    ]
    stored = free_busy([STORED_FREEBUSY], utc(2006, 1, 2, 11), utc(2006, 1, 4))
    assert stored == [
        (utc(2006, 1, 2, 11), utc(2006, 1, 2, 12), "BUSY-UNAVAILABLE"),
        (utc(2006, 1, 3, 10), utc(2006, 1, 3, 11), "BUSY-TENTATIVE"),
    ]


def test_free_busy_calendar() -> None:
    body = free_busy_calendar(
        [PLAIN, DAILY, MEETING], utc(2006, 1, 2), utc(2006, 1, 5), now=utc(2006, 1, 1, 12)
    )
    parsed = Calendar.from_ical(body)
    (component,) = parsed.walk("VFREEBUSY")
    assert value_of(component, "DTSTAMP") == utc(2006, 1, 1, 12)
    assert value_of(component, "DTSTART") == utc(2006, 1, 2)
    assert value_of(component, "DTEND") == utc(2006, 1, 5)
    text = body.decode()
    assert "FREEBUSY;FBTYPE=BUSY:20060102T150000Z/20060102T160000Z,2006" in text.replace(
        "\r\n ", ""
    )
    assert "FBTYPE=BUSY-TENTATIVE:20060104T150000Z/20060104T160000Z" in text


# -- robustness ----------------------------------------------------------------------

_LINES = st.sampled_from(
    [
        "DTSTART:20240101T100000Z",
        "DTSTART;VALUE=DATE:20240101",
        "DTSTART;TZID=Europe/Berlin:20240101T100000",
        "DTSTART:20240101T100000",
        "DTEND:20240101T090000Z",
        "DURATION:PT0S",
        "DURATION:-P1D",
        "DUE:20240102T100000Z",
        "RRULE:FREQ=DAILY",
        "RRULE:FREQ=MINUTELY;BYSECOND=61",
        "RRULE:FREQ=DAILY;UNTIL=20240105T100000",
        "RRULE:FREQ=YEARLY;COUNT=0",
        "RRULE:FREQ=WEEKLY;BYDAY=9MO",
        "RRULE:FREQ=MONTHLY;BYMONTHDAY=31;BYSETPOS=-40",
        "RDATE;VALUE=PERIOD:20240103T100000Z/PT1H",
        "RDATE;VALUE=DATE:20240104",
        "EXDATE:20240102T100000Z",
        "RECURRENCE-ID:20240102T100000Z",
        "RECURRENCE-ID;RANGE=THISANDFUTURE:20240103T100000Z",
        "UID:a",
        "UID:b",
        "SUMMARY:x",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(_LINES, max_size=6), min_size=1, max_size=3),
    st.sampled_from(["VEVENT", "VTODO", "VJOURNAL"]),
)
def test_odd_components_never_break_matching(lines: list[list[str]], name: str) -> None:
    body = "BEGIN:VCALENDAR\n"
    for component in lines:
        body += f"BEGIN:{name}\n" + "\n".join(component) + f"\nEND:{name}\n"
    calendar = cal(body + "END:VCALENDAR")
    for start, end in [(utc(2024, 1, 1), utc(2024, 1, 8)), (utc(2024, 1, 2), None)]:
        matches(
            calendar,
            CompFilter(
                "VCALENDAR", comp_filters=(CompFilter(name, time_range=TimeRange(start, end)),)
            ),
        )
    expand(calendar, utc(2024, 1, 1), utc(2024, 2, 1))
    free_busy([calendar], utc(2024, 1, 1), utc(2024, 2, 1))


def test_recurring_todo_ending_at_the_range_start() -> None:
    """RFC 4791 9.9: (start <= DTSTART+DURATION): closed at the range start."""
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:t
DTSTART:20240105T080000Z
DURATION:PT1H
RRULE:FREQ=DAILY;COUNT=3
END:VTODO
END:VCALENDAR""")
    assert in_range(calendar, utc(2024, 1, 6, 9), utc(2024, 1, 6, 10))
    assert not in_range(calendar, utc(2024, 1, 6, 9, 0, 1), utc(2024, 1, 6, 10))


def test_recurring_todo_with_due_only() -> None:
    """Tasks apps write recurring to-dos with DUE and no DTSTART."""
    calendar = cal("""BEGIN:VCALENDAR
BEGIN:VTODO
UID:tasks-org
DUE:20240105T170000Z
RRULE:FREQ=WEEKLY
SUMMARY:Timesheet
END:VTODO
END:VCALENDAR""")
    assert in_range(calendar, utc(2024, 3, 1, 16), utc(2024, 3, 1, 17))  # (start < DUE <= end)
    assert not in_range(calendar, utc(2024, 3, 1, 17), utc(2024, 3, 1, 18))


@pytest.mark.parametrize(
    "lines",
    [
        "DTSTART;VALUE=DATE:99991231",
        "DTSTART:99991231T235959Z\nDURATION:P1D",
        "DTSTART:99991231T235959\nRRULE:FREQ=DAILY",
        "DTSTART:00010101T000000\nRRULE:FREQ=DAILY;COUNT=3",
        "DTSTART;VALUE=DATE:00010101\nDURATION:-P1D",
        "DTSTART:20240101T000000Z\nRDATE;VALUE=PERIOD:99991231T000000Z/P2D",
        "DTSTART:20240101T000000Z\nRRULE:FREQ=YEARLY;INTERVAL=100000",
        "DTSTART:20240101T000000Z\nBEGIN:VALARM\nTRIGGER;VALUE=DATE-TIME:99991231T235959Z\n"
        "REPEAT:5\nDURATION:P1D\nEND:VALARM",
        "DTSTART:99991231T000000Z\nBEGIN:VALARM\nTRIGGER:P1D\nREPEAT:-5\nDURATION:P1D\nEND:VALARM",
        "DUE;VALUE=DATE:99991231\nCOMPLETED:99991231T235959Z",
    ],
)
def test_times_at_the_ends_of_the_calendar(lines: str) -> None:
    for name in ("VEVENT", "VTODO"):
        calendar = cal(f"BEGIN:VCALENDAR\nBEGIN:{name}\nUID:x\n{lines}\nEND:{name}\nEND:VCALENDAR")
        for time_range in (
            TimeRange(utc(9999, 12, 30), None),
            TimeRange(None, utc(1, 1, 2)),
            TimeRange(utc(2024, 1, 1), utc(2024, 1, 2)),
        ):
            conditions = CompFilter(
                name,
                time_range=time_range,
                prop_filters=(PropFilter("DTSTART", time_range=time_range),),
                comp_filters=(CompFilter("VALARM", time_range=time_range),),
            )
            matches(calendar, CompFilter("VCALENDAR", comp_filters=(conditions,)))
        expand(calendar, utc(9999, 1, 1), utc(9999, 12, 31, 23))
        expand(calendar, utc(1, 1, 1), utc(1, 1, 3))
        free_busy([calendar], utc(9999, 1, 1), utc(9999, 12, 31, 23))
