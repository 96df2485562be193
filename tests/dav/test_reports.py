"""
REPORTs on stored data through a real GkApp and database: calendar-query
(time ranges over recurring events, expand, floating times, to-dos,
text-matches, property selection), multigets, addressbook-query with
limits, sync-collection page by page and across a restart, free-busy, the
precondition errors; and the shortcuts of calendar-query and
addressbook-query checked against the plain evaluation.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
import pytest_twisted
from icalendar import Calendar
from sqlalchemy import delete

from gk.app import GkApp
from gk.dav import calquery, report_calendar, report_common, vcard
from gk.dav.caldata import parse_calendar_object
from gk.dav.report_calendar import (
    bounds_match,
    cached_series_match,
    have_needles,
    plan_query,
    series_match,
)
from gk.dav.report_common import UTC_ZONE, CollectionTarget, ReportError
from gk.dav.reports import (
    card_needles,
    card_prefilter,
    free_busy_report,
    have_card_needles,
    run_report,
)
from gk.dav.xmlbody import CALDAV, CARDDAV, DAV, FreeBusyQuery, Report, c, d, parse_report, r
from gk.storage.accounts import Account
from gk.storage.dav_store import StoredObject
from gk.storage.models import DavSeriesMonth

PASSWORD = "correct horse battery staple"
EMAIL = "alice@example.test"
CAL = f"/dav/calendars/{EMAIL}/calendar/"
TASKS = f"/dav/calendars/{EMAIL}/tasks/"
CARDS = f"/dav/addressbooks/{EMAIL}/contacts/"
NS = f'xmlns:D="{DAV}" xmlns:C="{CALDAV}"'
CNS = f'xmlns:D="{DAV}" xmlns:C="{CARDDAV}"'

BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


def crlf(text: str) -> bytes:
    return (text.strip().replace("\n", "\r\n") + "\r\n").encode()


def ics(*components: str, timezone: bool = True) -> bytes:
    """A VCALENDAR around VEVENT/VTODO bodies written with LF lines."""
    body = "".join(c.strip() + "\n" for c in components)
    zone = BERLIN if timezone else ""
    return crlf(f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{zone}{body}END:VCALENDAR")


def vevent(uid: str, *lines: str, summary: str = "") -> str:
    text = "\n".join(lines)
    title = f"SUMMARY:{summary or uid}\n"
    return f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\n{title}{text}\nEND:VEVENT"


def card(uid: str, fn: str, *lines: str, version: str = "3.0") -> bytes:
    extra = "".join(line + "\n" for line in lines)
    return crlf(f"BEGIN:VCARD\nVERSION:{version}\nUID:{uid}\nFN:{fn}\n{extra}END:VCARD")


# -- parsing answers ---------------------------------------------------------------


@dataclass
class Answer:
    """One DAV:response: its status (plain responses), properties by status, error."""

    status: str | None = None
    props: dict[str, dict[str, ET.Element]] = field(default_factory=dict)
    error: list[str] = field(default_factory=list)

    def ok(self, name: str) -> ET.Element:
        return self.props["200"][name]

    def text(self, name: str) -> str:
        return self.ok(name).text or ""


def answers(body: bytes) -> tuple[dict[str, Answer], str | None]:
    """The responses of a multistatus by href (decoded), and its sync-token."""
    root = ET.fromstring(body)
    assert root.tag == d("multistatus")
    result: dict[str, Answer] = {}
    for response in root.iterfind(d("response")):
        href = response.findtext(d("href"))
        assert href is not None and href not in result
        answer = Answer()
        status = response.findtext(d("status"))
        if status is not None:
            answer.status = status.split()[1]
        error = response.find(d("error"))
        if error is not None:
            answer.error = [child.tag for child in error]
        for propstat in response.iterfind(d("propstat")):
            code = (propstat.findtext(d("status")) or "").split()[1]
            prop = propstat.find(d("prop"))
            assert prop is not None
            answer.props[code] = {child.tag: child for child in prop}
        result[unquote(href)] = answer
    return result, root.findtext(d("sync-token"))


def names(body: bytes, base: str = CAL) -> set[str]:
    """The member names answered 200 (with properties or plainly)."""
    found, _ = answers(body)
    return {
        href[len(base) :]
        for href, answer in found.items()
        if href.startswith(base) and href != base and (answer.props or answer.status == "200")
    }


def when(component: Any, name: str) -> Any:
    """The date or date-time value of a property."""
    return component[name].dt


def report(body: str, base: str = CAL) -> Report:
    return parse_report(body.encode(), max_size=1 << 20, base=base)


def calendar_query(inner_filter: str, prop: str = "<D:getetag/>", extra: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {NS}>'
        f"<D:prop>{prop}</D:prop><C:filter>{inner_filter}</C:filter>{extra}</C:calendar-query>"
    )


def event_range(start: str, end: str, component: str = "VEVENT") -> str:
    return (
        f'<C:comp-filter name="VCALENDAR"><C:comp-filter name="{component}">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
    )


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    report_calendar.series_cache.clear()
    report_common.render_cache.clear()
    yield
    report_calendar.series_cache.clear()
    report_common.render_cache.clear()


@pytest_twisted.async_fixture
async def alice(app: GkApp) -> Account:
    account: Account = await app.accounts.create_user(EMAIL, PASSWORD)
    return account


async def calendar(app: GkApp, account: Account, name: str = "calendar") -> CollectionTarget:
    info = await app.calendars.collection(account, name)
    return CollectionTarget(account, app.calendars, info, f"/dav/calendars/{account.email}/{name}/")


async def addressbook(app: GkApp, account: Account) -> CollectionTarget:
    info = await app.contacts.collection(account, "contacts")
    return CollectionTarget(account, app.contacts, info, CARDS)


async def run(target: CollectionTarget, body: str, depth: str = "1") -> bytes:
    return await run_report(target, report(body, target.href), depth)


async def refused(target: CollectionTarget, body: str, depth: str = "1") -> ReportError:
    with pytest.raises(ReportError) as caught:
        await run(target, body, depth)
    return caught.value


def error_of(error: ReportError) -> list[str]:
    return [child.tag for child in ET.fromstring(error.body)] if error.body else []


# -- calendar-query: time ranges and recurrence -----------------------------------

JUNE_WEEK = ("20260601T000000Z", "20260608T000000Z")

RECURRING = {
    # weekly on Mondays 10:00 Berlin: 1 June 08:00Z is in the week
    "weekly.ics": ics(
        vevent(
            "weekly",
            "DTSTART;TZID=Europe/Berlin:20260504T100000",
            "DTEND;TZID=Europe/Berlin:20260504T110000",
            "RRULE:FREQ=WEEKLY",
        )
    ),
    # Tuesdays, the one in the week excluded
    "exdated.ics": ics(
        vevent(
            "exdated",
            "DTSTART;TZID=Europe/Berlin:20260505T100000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;COUNT=6",
            "EXDATE;TZID=Europe/Berlin:20260602T100000",
        )
    ),
    # Wednesdays in May; the last one moved into the week
    "moved-in.ics": ics(
        vevent(
            "moved-in",
            "DTSTART;TZID=Europe/Berlin:20260506T100000",
            "DTEND;TZID=Europe/Berlin:20260506T110000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
        ),
        vevent(
            "moved-in",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260527T100000",
            "DTSTART;TZID=Europe/Berlin:20260603T150000",
            "DTEND;TZID=Europe/Berlin:20260603T160000",
            summary="moved into June",
        ),
    ),
    # Thursdays 28 May and 4 June; the June one moved out of the week
    "moved-out.ics": ics(
        vevent(
            "moved-out",
            "DTSTART;TZID=Europe/Berlin:20260528T100000",
            "DTEND;TZID=Europe/Berlin:20260528T110000",
            "RRULE:FREQ=WEEKLY;COUNT=2",
        ),
        vevent(
            "moved-out",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260604T100000",
            "DTSTART;TZID=Europe/Berlin:20260620T100000",
            "DTEND;TZID=Europe/Berlin:20260620T110000",
        ),
    ),
}
SINGLE = {
    "inside.ics": ics(
        vevent("inside", "DTSTART:20260603T120000Z", "DTEND:20260603T130000Z"), timezone=False
    ),
    "after.ics": ics(
        vevent("after", "DTSTART:20260610T120000Z", "DTEND:20260610T130000Z"), timezone=False
    ),
    "spanning.ics": ics(
        vevent("spanning", "DTSTART;VALUE=DATE:20260525", "DTEND;VALUE=DATE:20260615"),
        timezone=False,
    ),
    "ends-at-start.ics": ics(
        vevent("ends-at-start", "DTSTART:20260531T230000Z", "DTEND:20260601T000000Z"),
        timezone=False,
    ),
    "instant-at-start.ics": ics(vevent("instant-at-start", "DTSTART:20260601T000000Z")),
    "instant-at-end.ics": ics(vevent("instant-at-end", "DTSTART:20260608T000000Z")),
    "crossing-start.ics": ics(
        vevent(
            "crossing-start",
            "DTSTART;TZID=Europe/Berlin:20260531T230000",
            "DTEND;TZID=Europe/Berlin:20260601T030000",
        )
    ),
}
IN_JUNE_WEEK = {
    "weekly.ics",
    "moved-in.ics",
    "inside.ics",
    "spanning.ics",
    "instant-at-start.ics",
    "crossing-start.ics",
}


async def fill(app: GkApp, account: Account, objects: dict[str, bytes], name: str = "calendar"):
    for resource, data in objects.items():
        await app.calendars.put(account, name, resource, data)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _month_ranges(now: datetime, offsets: range) -> list[tuple[str, str]]:
    """The UTC calendar months C{offsets} away from C{now}'s, as time-range bounds."""
    ranges = []
    for offset in offsets:
        number = now.year * 12 + now.month - 1 + offset
        start = datetime(number // 12, number % 12 + 1, 1, tzinfo=UTC)
        end = datetime((number + 1) // 12, (number + 1) % 12 + 1, 1, tzinfo=UTC)
        ranges.append((_stamp(start) + "Z", _stamp(end) + "Z"))
    return ranges


@pytest_twisted.ensureDeferred
async def test_after_a_restart_recurring_events_are_decided_from_the_months_stored_with_them(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ago = now - timedelta(days=75)
    soon = now + timedelta(days=9)
    await fill(
        app,
        alice,
        {
            "weekly.ics": ics(
                vevent(
                    "weekly",
                    f"DTSTART;TZID=Europe/Berlin:{_stamp(ago)}",
                    f"DTEND;TZID=Europe/Berlin:{_stamp(ago + timedelta(hours=1))}",
                    "RRULE:FREQ=WEEKLY",
                    f"EXDATE;TZID=Europe/Berlin:{_stamp(ago + timedelta(weeks=12))}",
                )
            ),
            "daily.ics": ics(
                vevent(
                    "daily",
                    f"DTSTART:{_stamp(soon)}Z",
                    "DURATION:PT30M",
                    "RRULE:FREQ=DAILY;COUNT=40",
                ),
                vevent(
                    "daily",
                    f"RECURRENCE-ID:{_stamp(soon + timedelta(days=3))}Z",
                    f"DTSTART:{_stamp(soon + timedelta(days=130))}Z",
                    "DURATION:PT30M",
                    summary="moved months away",
                ),
            ),
            "floating.ics": ics(
                vevent(
                    "floating",
                    f"DTSTART:{_stamp(ago)}",
                    "RRULE:FREQ=MONTHLY;BYMONTHDAY=1;COUNT=9",
                ),
                timezone=False,
            ),
        },
    )
    target = await calendar(app, alice)
    bodies = [calendar_query(event_range(*r)) for r in _month_ranges(now, range(-1, 13))]
    bodies.append(
        calendar_query(event_range(_stamp(soon) + "Z", _stamp(soon + timedelta(days=7)) + "Z"))
    )
    parsed: list[bytes] = []
    parse = report_common.parse_calendar

    def counting_parse(data: bytes) -> Calendar:
        parsed.append(data)
        return parse(data)

    monkeypatch.setattr(report_calendar, "parse_calendar", counting_parse)
    # A restart: nothing in memory; the months stored with the events answer.
    report_calendar.series_cache.clear()
    from_stored = [names(await run(target, body)) for body in bodies]
    assert parsed == []

    # The same answers from expanding each event, as without stored months.
    await app.db.write(lambda s: s.execute(delete(DavSeriesMonth)))
    report_calendar.series_cache.clear()
    expanded = [names(await run(target, body)) for body in bodies]
    assert parsed
    assert from_stored == expanded
    assert all("weekly.ics" in found for found in from_stored)
    assert "daily.ics" in from_stored[1] and "daily.ics" not in from_stored[0]
    assert "floating.ics" in from_stored[0]


@pytest_twisted.ensureDeferred
async def test_time_range_over_recurring_and_single_events(app: GkApp, alice: Account) -> None:
    await fill(app, alice, RECURRING | SINGLE)
    target = await calendar(app, alice)
    body = calendar_query(event_range(*JUNE_WEEK), "<D:getetag/><D:getcontenttype/>")
    cold = await run(target, body)
    assert names(cold) == IN_JUNE_WEEK
    # again: the recurring events now come from the cache of instances
    assert len(report_calendar.series_cache) > 0
    assert names(await run(target, body)) == IN_JUNE_WEEK
    found, token = answers(cold)
    assert token is None
    weekly = found[CAL + "weekly.ics"]
    assert weekly.text(d("getetag")).startswith('"')
    assert weekly.text(d("getcontenttype")) == "text/calendar; charset=utf-8; component=vevent"
    # a week later: the Mondays and what moved out into the 20th
    later = calendar_query(event_range("20260615T000000Z", "20260622T000000Z"))
    assert names(await run(target, later)) == {"weekly.ics", "moved-out.ics"}
    # Depth 0 asks about the collection itself
    assert names(await run(target, body, depth="0")) == set()


@pytest_twisted.ensureDeferred
async def test_expand_returns_the_instances_in_utc(app: GkApp, alice: Account) -> None:
    await fill(app, alice, RECURRING | SINGLE)
    target = await calendar(app, alice)
    start, end = JUNE_WEEK
    data = f'<C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data>'
    body = calendar_query(event_range(start, end), f"<D:getetag/>{data}")
    for _ in range(2):  # the second answer comes from the cache of renderings
        found, _ = answers(await run(target, body))
        assert set(found) == {CAL + name for name in IN_JUNE_WEEK}
        weekly = Calendar.from_ical(found[CAL + "weekly.ics"].text(c("calendar-data")))
        events = weekly.walk("VEVENT")
        assert [when(e, "DTSTART") for e in events] == [datetime(2026, 6, 1, 8, tzinfo=UTC)]
        assert when(events[0], "RECURRENCE-ID") == datetime(2026, 6, 1, 8, tzinfo=UTC)
        assert "RRULE" not in events[0] and not weekly.walk("VTIMEZONE")
        moved = Calendar.from_ical(found[CAL + "moved-in.ics"].text(c("calendar-data")))
        assert [str(e["SUMMARY"]) for e in moved.walk("VEVENT")] == ["moved into June"]
        assert when(moved.walk("VEVENT")[0], "DTSTART") == datetime(2026, 6, 3, 13, tzinfo=UTC)
        text = found[CAL + "inside.ics"].text(c("calendar-data"))
        assert "\r\n" in text  # CRLF survives the XML


@pytest_twisted.ensureDeferred
async def test_floating_time_in_the_requested_zone(app: GkApp, alice: Account) -> None:
    # 20:00 wherever the reader is: 18:00Z in Berlin's summer
    await fill(
        app,
        alice,
        {
            "floating.ics": ics(
                vevent("floating", "DTSTART:20260610T200000", "DURATION:PT30M"), timezone=False
            ),
            "floating-weekly.ics": ics(
                vevent(
                    "floating-weekly",
                    "DTSTART:20260603T200000",
                    "DURATION:PT30M",
                    "RRULE:FREQ=WEEKLY;COUNT=3",
                ),
                timezone=False,
            ),
        },
    )
    target = await calendar(app, alice)
    window = event_range("20260610T173000Z", "20260610T183000Z")
    assert names(await run(target, calendar_query(window))) == set()
    zone = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n" + BERLIN + "END:VCALENDAR\n"
    with_zone = calendar_query(window, extra=f"<C:timezone>{zone}</C:timezone>")
    assert names(await run(target, with_zone)) == {"floating.ics", "floating-weekly.ics"}
    by_id = calendar_query(window, extra="<C:timezone-id>Europe/Berlin</C:timezone-id>")
    assert names(await run(target, by_id)) == {"floating.ics", "floating-weekly.ics"}
    # the collection's calendar-timezone is the default
    await app.calendars.update_collection(alice, "calendar", {"timezone": zone})
    target = await calendar(app, alice)
    assert names(await run(target, calendar_query(window))) == {
        "floating.ics",
        "floating-weekly.ics",
    }
    unknown = calendar_query(window, extra="<C:timezone-id>Mars/Olympus</C:timezone-id>")
    assert error_of(await refused(target, unknown)) == [c("valid-timezone")]
    broken = calendar_query(window, extra="<C:timezone>BEGIN:VCALENDAR</C:timezone>")
    assert error_of(await refused(target, broken)) == [c("valid-calendar-data")]


@pytest_twisted.ensureDeferred
async def test_todo_queries(app: GkApp, alice: Account) -> None:
    todo = "BEGIN:VTODO\nUID:{uid}\nDTSTAMP:20260101T000000Z\nSUMMARY:{uid}\n{lines}END:VTODO"
    todos = {
        "due-june.ics": todo.format(uid="due-june", lines="DUE:20260603T170000Z\n"),
        "due-july.ics": todo.format(uid="due-july", lines="DUE:20260703T170000Z\n"),
        "undated.ics": todo.format(uid="undated", lines=""),
        "done.ics": todo.format(
            uid="done", lines="DUE:20260602T170000Z\nSTATUS:COMPLETED\nCOMPLETED:20260601T090000Z\n"
        ),
        "weekly.ics": todo.format(
            uid="weekly",
            lines="DTSTART:20260401T090000Z\nDUE:20260401T100000Z\nRRULE:FREQ=WEEKLY\n",
        ),
    }
    await fill(app, alice, {k: ics(v, timezone=False) for k, v in todos.items()}, "tasks")
    target = await calendar(app, alice, "tasks")
    in_week = calendar_query(event_range(*JUNE_WEEK, component="VTODO"))
    assert names(await run(target, in_week), TASKS) == {
        "due-june.ics",
        "undated.ics",
        "done.ics",
        "weekly.ics",
    }
    pending = calendar_query(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
        '<C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter>'
        '<C:prop-filter name="STATUS"><C:text-match negate-condition="yes">CANCELLED'
        "</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"
    )
    # STATUS must exist for its text-match to pass: only "done" has one
    assert names(await run(target, pending), TASKS) == set()
    open_tasks = calendar_query(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
        '<C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter>'
        "</C:comp-filter></C:comp-filter>"
    )
    assert names(await run(target, open_tasks), TASKS) == set(todos) - {"done.ics"}
    # the event calendar holds no to-do
    assert names(await run(await calendar(app, alice), in_week)) == set()


@pytest_twisted.ensureDeferred
async def test_text_match_on_summary(app: GkApp, alice: Account) -> None:
    simple = {
        f"{uid}.ics": ics(
            vevent(uid, "DTSTART:20260603T120000Z", "DURATION:PT1H", summary=summary),
            timezone=False,
        )
        for uid, summary in [("a", "Team LUNCH"), ("b", "lunchtime"), ("c", "Dinner")]
    }
    tricky = {
        # stored folded at 75 octets: the word spans the fold
        "long.ics": ics(
            vevent("long", "DTSTART:20260603T120000Z", summary="x" * 64 + " lunch with Zoë"),
            timezone=False,
        ),
        # the master is no lunch, an overridden instance is
        "override.ics": ics(
            vevent("override", "DTSTART:20260601T120000Z", "RRULE:FREQ=DAILY;COUNT=3"),
            vevent(
                "override",
                "RECURRENCE-ID:20260602T120000Z",
                "DTSTART:20260602T130000Z",
                summary="Lunch, moved",
            ),
            timezone=False,
        ),
        # escaped in the body: found by the parser, never by the byte search
        "escaped.ics": ics(
            vevent("escaped", "DTSTART:20260603T120000Z", summary="Lunch\\, then\\; nap"),
            timezone=False,
        ),
        "attendee.ics": ics(
            vevent(
                "attendee",
                "DTSTART:20260603T120000Z",
                'ATTENDEE;CN="Lunch Lady";PARTSTAT=ACCEPTED:mailto:lady@example.test',
                summary="Canteen",
            ),
            timezone=False,
        ),
    }
    await fill(app, alice, simple | tricky)
    target = await calendar(app, alice)

    def summary_filter(attributes: str, text: str = "lunch", prop: str = "SUMMARY") -> str:
        return calendar_query(
            '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:prop-filter name="{prop}"><C:text-match {attributes}>{text}</C:text-match>'
            "</C:prop-filter></C:comp-filter></C:comp-filter>"
        )

    lunches = {"a.ics", "b.ics", "long.ics", "override.ics", "escaped.ics"}
    assert names(await run(target, summary_filter(""))) == lunches
    octet = summary_filter('collation="i;octet"')
    assert names(await run(target, octet)) == {"b.ics", "long.ics"}
    assert names(await run(target, summary_filter("", "with zoë"))) == {"long.ics"}
    assert names(await run(target, summary_filter("", "lunch, then; nap"))) == {"escaped.ics"}
    everything = set(simple) | set(tricky)
    negated = summary_filter('negate-condition="yes"')
    # a recurrence set passes when one of its components does
    assert names(await run(target, negated)) == everything - lunches | {"override.ics"}
    by_name = calendar_query(
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="ATTENDEE"><C:param-filter name="CN">'
        "<C:text-match>lunch lady</C:text-match></C:param-filter></C:prop-filter>"
        "</C:comp-filter></C:comp-filter>"
    )
    assert names(await run(target, by_name)) == {"attendee.ics"}
    unicode = summary_filter('collation="i;unicode-casemap"')
    assert error_of(await refused(target, unicode)) == [c("supported-collation")]
    bad = calendar_query('<C:comp-filter name="VEVENT"/>')
    assert error_of(await refused(target, bad)) == [c("valid-filter")]
    contacts = await addressbook(app, alice)
    assert error_of(await refused(contacts, summary_filter(""))) == [d("supported-report")]


@pytest_twisted.ensureDeferred
async def test_property_selection(app: GkApp, alice: Account) -> None:
    await fill(app, alice, RECURRING)
    target = await calendar(app, alice)
    data = (
        '<C:calendar-data><C:comp name="VCALENDAR"><C:prop name="VERSION"/>'
        '<C:comp name="VEVENT"><C:prop name="SUMMARY"/><C:prop name="UID"/>'
        '<C:prop name="DTSTART"/></C:comp></C:comp></C:calendar-data>'
    )
    body = calendar_query(
        event_range(*JUNE_WEEK),
        f"<D:getetag/><D:getlastmodified/><D:getcontentlength/><D:resourcetype/>"
        f'{data}<D:displayname/><X:color xmlns:X="urn:x"/>',
    )
    found, _ = answers(await run(target, body))
    weekly = found[CAL + "weekly.ics"]
    text = weekly.text(c("calendar-data"))
    assert "SUMMARY:weekly" in text and "DTSTART;TZID=Europe/Berlin" in text
    assert "DTEND" not in text and "RRULE" not in text and "VTIMEZONE" not in text
    assert weekly.text(d("getlastmodified")).endswith(" GMT")
    assert int(weekly.text(d("getcontentlength"))) > len(text)
    assert list(weekly.ok(d("resourcetype"))) == []
    assert set(weekly.props["404"]) == {d("displayname"), "{urn:x}color"}
    # allprop: the live properties, no data
    allprop = (
        f"<C:calendar-query {NS}><D:allprop/>"
        f"<C:filter>{event_range(*JUNE_WEEK)}</C:filter></C:calendar-query>"
    )
    found, _ = answers(await run(target, allprop))
    assert set(found[CAL + "weekly.ics"].props["200"]) == {
        d("getetag"),
        d("getcontenttype"),
        d("getcontentlength"),
        d("getlastmodified"),
        d("resourcetype"),
    }
    # a media type gk does not write
    other = calendar_query(
        event_range(*JUNE_WEEK), '<C:calendar-data content-type="application/calendar+json"/>'
    )
    assert error_of(await refused(target, other)) == [c("supported-calendar-data")]


# -- multiget ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_calendar_multiget(app: GkApp, alice: Account) -> None:
    await fill(app, alice, RECURRING)
    target = await calendar(app, alice)
    foreign = "/dav/calendars/bob@example.test/calendar/weekly.ics"
    body = (
        f"<C:calendar-multiget {NS}><D:prop><D:getetag/><C:calendar-data/></D:prop>"
        f"<D:href>{CAL}weekly.ics</D:href><D:href>{CAL}missing.ics</D:href>"
        f"<D:href>{foreign}</D:href><D:href>{CAL.replace('@', '%40')}moved-in.ics</D:href>"
        f"<D:href>{CAL}</D:href></C:calendar-multiget>"
    )
    found, _ = answers(await run(target, body, depth="0"))
    assert found[CAL + "missing.ics"].status == "404"
    assert found[foreign].status == "403"
    assert found[CAL].status == "404"
    stored = await app.calendars.get(alice, "calendar", "weekly.ics")
    weekly = found[CAL + "weekly.ics"]
    assert weekly.text(d("getetag")) == stored.etag
    assert weekly.text(c("calendar-data")).encode() == stored.data
    assert "UID:moved-in" in found[CAL + "moved-in.ics"].text(c("calendar-data"))
    cards = (
        f"<C:addressbook-multiget {CNS}><D:prop><D:getetag/></D:prop>"
        f"<D:href>{CAL}weekly.ics</D:href></C:addressbook-multiget>"
    )
    assert error_of(await refused(target, cards)) == [d("supported-report")]


# -- addressbook-query ----------------------------------------------------------------

CARD_SET = {
    "ann.vcf": card("ann", "Ann Example", "EMAIL;TYPE=work:Ann@Example.com"),
    "bob.vcf": card("bob", "Bob Builder", "EMAIL:bob@builders.test", "TEL:+1 555 0100"),
    "carla.vcf": card(
        "carla", "Carla Example", "item1.EMAIL:carla@example.com", "item1.X-ABLabel:_$!<Other>!$_"
    ),
    "juergen.vcf": card("juergen", "Jürgen Groß", "EMAIL:jg@example.org", version="4.0"),
    # two names: the index knows the first only
    "twonames.vcf": card("twonames", "Zed Alias", "FN;LANGUAGE=de:Anna Zweitname", version="4.0"),
    "nomail.vcf": card("nomail", "Ann Other"),
}


async def fill_cards(app: GkApp, account: Account, cards: dict[str, bytes]) -> None:
    for name, data in cards.items():
        await app.contacts.put(account, "contacts", name, data)


def card_query(prop_filters: str, test: str = "anyof", limit: int | None = None) -> str:
    limit_xml = f"<C:limit><C:nresults>{limit}</C:nresults></C:limit>" if limit else ""
    return (
        f"<C:addressbook-query {CNS}><D:prop><D:getetag/><C:address-data/></D:prop>"
        f'<C:filter test="{test}">{prop_filters}</C:filter>{limit_xml}</C:addressbook-query>'
    )


def text_match(prop: str, text: str, match_type: str = "contains", extra: str = "") -> str:
    return (
        f'<C:prop-filter name="{prop}"><C:text-match match-type="{match_type}" {extra}>'
        f"{text}</C:text-match></C:prop-filter>"
    )


@pytest_twisted.ensureDeferred
async def test_addressbook_query(app: GkApp, alice: Account) -> None:
    await fill_cards(app, alice, CARD_SET)
    target = await addressbook(app, alice)

    async def query(body: str) -> set[str]:
        return names(await run(target, body), CARDS)

    assert await query(card_query(text_match("EMAIL", "EXAMPLE.COM"))) == {"ann.vcf", "carla.vcf"}
    assert await query(card_query(text_match("FN", "ann", "starts-with"))) == {
        "ann.vcf",
        "twonames.vcf",
        "nomail.vcf",
    }
    assert await query(card_query(text_match("FN", "JÜR", "starts-with"))) == {"juergen.vcf"}
    assert await query(card_query(text_match("FN", "gross", "ends-with"))) == {"juergen.vcf"}
    assert await query(card_query(text_match("TEL", "555"))) == {"bob.vcf"}
    both = text_match("FN", "ann", "starts-with") + text_match("EMAIL", "example")
    assert await query(card_query(both, "allof")) == {"ann.vcf"}
    assert await query(card_query("")) == set(CARD_SET)
    found, _ = answers(await run(target, card_query(text_match("EMAIL", "builders"))))
    data = found[CARDS + "bob.vcf"].text(r("address-data"))
    assert data.encode() == CARD_SET["bob.vcf"]
    # only some properties of the cards
    partial = (
        f'<C:addressbook-query {CNS}><D:prop><C:address-data><C:prop name="EMAIL"/>'
        f"</C:address-data></D:prop><C:filter>{text_match('EMAIL', 'builders')}</C:filter>"
        "</C:addressbook-query>"
    )
    found, _ = answers(await run(target, partial))
    data = found[CARDS + "bob.vcf"].text(r("address-data"))
    assert "EMAIL:bob@builders.test" in data and "TEL" not in data and "FN" not in data
    bad = card_query(text_match("FN", "x", extra='collation="i;klingon"'))
    assert error_of(await refused(target, bad)) == [r("supported-collation")]
    invalid = card_query('<C:prop-filter name="FN"><C:bogus/></C:prop-filter>')
    assert error_of(await refused(target, invalid)) == [r("valid-filter")]


@pytest_twisted.ensureDeferred
async def test_addressbook_query_limit(app: GkApp, alice: Account) -> None:
    cards = {f"p{i:02}.vcf": card(f"p{i}", f"Person {i}", f"EMAIL:p{i}@ex.test") for i in range(12)}
    await fill_cards(app, alice, cards)
    target = await addressbook(app, alice)
    body = await run(target, card_query(text_match("EMAIL", "@ex.test"), limit=5))
    found, _ = answers(body)
    assert names(body, CARDS) == {f"p{i:02}.vcf" for i in range(5)}
    assert found[CARDS].status == "507"
    assert found[CARDS].error == [d("number-of-matches-within-limits")]
    # exactly as many as the limit: no 507
    found, _ = answers(await run(target, card_query(text_match("FN", "Person 1"), limit=3)))
    assert set(found) == {CARDS + "p01.vcf", CARDS + "p10.vcf", CARDS + "p11.vcf"}


def test_card_shortcuts_never_drop_a_match() -> None:
    """
    The index test and the byte search against the full evaluation, over
    cards with case, folding, structure, encoding and Unicode traps.
    """
    rng = random.Random(6)
    values = ["Ann", "ANN", "ann", "Straße", "STRASSE", "İstanbul", "a.b", "ÉMILE", "x", "ﬁne"]
    texts = ["ann", "AN", "ss", "straß", "İs", "is", "b@EX", "émile", "ÉM", "x", "fine", "55 01"]
    cards = []
    for i in range(300):
        fns = [rng.choice(values) + rng.choice(["", " Example"]) for _ in range(rng.choice([1, 2]))]
        emails = [rng.choice(values).replace(" ", "") + "@ex.com" for _ in range(rng.randint(0, 2))]
        lines = [f"FN:{fn}" for fn in fns[1:]] + [f"EMAIL:{e}" for e in emails]
        lines.append(f"TEL;TYPE=cell:+1 555 01{i:02}")
        lines.append(f"N:{rng.choice(values)};{rng.choice(values)};;;")
        if rng.random() < 0.2:  # a long line, folded where the words are
            lines.append("NOTE:" + "y" * 70 + rng.choice(values) + "\n " + rng.choice(values))
        if rng.random() < 0.1:
            encoded = rng.choice(values).encode().hex("=").upper()
            lines.append(f"ORG;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:={encoded}")
        parsed = vcard.parse_vcard(card(f"c{i}", fns[0], *lines, version="3.0"))
        cards.append((parsed, _stored(parsed)))
    checked = 0
    for prop in ("FN", "EMAIL", "TEL", "N", "NOTE", "ORG"):
        for text in texts:
            for match_type in ("contains", "starts-with", "ends-with", "equals"):
                for collation in ("i;unicode-casemap", "i;ascii-casemap", "i;octet"):
                    xml = (
                        f'<C:filter xmlns:C="{CARDDAV}">'
                        + text_match(prop, text, match_type, f'collation="{collation}"')
                        + "</C:filter>"
                    )
                    card_filter = vcard.parse_filter(ET.fromstring(xml))
                    quick = card_prefilter(card_filter)
                    assert (quick is not None) == (prop in ("FN", "EMAIL"))
                    needles = card_needles(card_filter)
                    assert needles
                    for parsed, stored in cards:
                        if vcard.matches(parsed, card_filter):
                            where = (prop, text, match_type, collation, parsed.data)
                            assert quick is None or quick(stored), where
                            assert have_card_needles(needles, [stored]) == [True], where
                            checked += 1
    assert checked > 1000


def _stored(parsed: vcard.VCardObject) -> StoredObject:
    """A StoredObject as ContactService and the store would index C{parsed}."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    emails = tuple(dict.fromkeys(e.strip().lower() for e in parsed.emails if e.strip()))
    return StoredObject(
        1, parsed.uid, parsed.uid, '"x"', parsed.data, "VCARD", None, None, False,
        parsed.fn, emails, len(parsed.data), 1, now, now,
    )  # fmt: skip


# -- sync-collection -----------------------------------------------------------------


def sync_body(token: str, limit: int | None = None, prop: str = "<D:getetag/>") -> str:
    limit_xml = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit else ""
    return (
        f"<D:sync-collection {NS}><D:sync-token>{token}</D:sync-token>"
        f"<D:sync-level>1</D:sync-level>{limit_xml}<D:prop>{prop}</D:prop></D:sync-collection>"
    )


async def sync(
    target: CollectionTarget, token: str, limit: int | None = None, prop: str = "<D:getetag/>"
) -> tuple[dict[str, Answer], str]:
    found, new_token = answers(await run(target, sync_body(token, limit, prop), depth="0"))
    assert new_token is not None
    return found, new_token


def one_event(uid: str, summary: str = "") -> bytes:
    return ics(
        vevent(uid, "DTSTART:20260603T120000Z", "DURATION:PT1H", summary=summary), timezone=False
    )


@pytest_twisted.ensureDeferred
async def test_sync_initial_and_incremental(app: GkApp, alice: Account) -> None:
    for i in range(3):
        await app.calendars.put(alice, "calendar", f"e{i}.ics", one_event(f"e{i}"))
    target = await calendar(app, alice)
    found, token = await sync(target, "", prop="<D:getetag/><C:calendar-data/>")
    assert set(found) == {CAL + f"e{i}.ics" for i in range(3)}
    assert "UID:e1" in found[CAL + "e1.ics"].text(c("calendar-data"))
    # nothing changed: nothing listed, the same token
    found, same = await sync(target, token)
    assert found == {} and same == token
    await app.calendars.put(alice, "calendar", "e1.ics", one_event("e1", "changed"))
    await app.calendars.put(alice, "calendar", "e3.ics", one_event("e3"))
    await app.calendars.delete(alice, "calendar", "e0.ics")
    found, newer = await sync(target, token)
    assert set(found) == {CAL + "e1.ics", CAL + "e3.ics", CAL + "e0.ics"}
    assert found[CAL + "e0.ics"].status == "404" and not found[CAL + "e0.ics"].props
    stored = await app.calendars.get(alice, "calendar", "e1.ics")
    assert found[CAL + "e1.ics"].text(d("getetag")) == stored.etag
    assert newer != token
    made_up = error_of(await refused(target, sync_body("http://gk.invalid/sync/999-1"), "0"))
    assert made_up == [d("valid-sync-token")]
    nonsense = error_of(await refused(target, sync_body("urn:uuid:not-ours"), "0"))
    assert nonsense == [d("valid-sync-token")]
    tasks = await calendar(app, alice, "tasks")
    assert error_of(await refused(tasks, sync_body(newer), "0")) == [d("valid-sync-token")]
    assert (await refused(target, sync_body(newer), "infinity")).status == 400
    # sync-level infinite is answered like 1
    infinite = sync_body(newer).replace("<D:sync-level>1<", "<D:sync-level>infinite<")
    found, _ = answers(await run(target, infinite, "0"))
    assert found == {}


@pytest_twisted.ensureDeferred
async def test_sync_with_limit_loses_nothing(app: GkApp, alice: Account) -> None:
    target = await calendar(app, alice)
    _, start = await sync(target, "")
    for i in range(7):
        await app.calendars.put(alice, "calendar", f"n{i}.ics", one_event(f"n{i}"))
    await app.calendars.delete(alice, "calendar", "n2.ics")
    await app.calendars.put(alice, "calendar", "n3.ics", one_event("n3", "again"))
    seen: dict[str, str] = {}
    token, pages = start, 0
    while True:
        found, token = await sync(target, token, limit=2)
        pages += 1
        assert pages < 20
        own = found.pop(CAL, None)
        assert len(found) <= 2
        for href, answer in found.items():
            seen[href] = answer.status or "200"
        if own is None:
            break
        assert own.status == "507" and own.error == [d("number-of-matches-within-limits")]
    assert pages > 2
    expected = {CAL + f"n{i}.ics": "200" for i in range(7)} | {CAL + "n2.ics": "404"}
    assert seen == expected
    # the limit is honoured on an initial sync as well
    found, _ = await sync(target, "", limit=3)
    assert found.pop(CAL).status == "507" and len(found) == 3


@pytest_twisted.ensureDeferred
async def test_sync_token_survives_a_restart(app: GkApp, alice: Account) -> None:
    await app.calendars.put(alice, "calendar", "a.ics", one_event("a"))
    _, token = await sync(await calendar(app, alice), "")
    await app.calendars.put(alice, "calendar", "b.ics", one_event("b"))
    from twisted.internet import reactor

    again = GkApp.build(app.config, reactor)
    again.db.startService()
    try:
        info = await again.calendars.collection(alice, "calendar")
        target = CollectionTarget(alice, again.calendars, info, CAL)
        found, _ = await sync(target, token)
        assert set(found) == {CAL + "b.ics"}
    finally:
        again.db.stopService()
        again.db.dispose()


@pytest_twisted.ensureDeferred
async def test_addressbook_sync(app: GkApp, alice: Account) -> None:
    await fill_cards(app, alice, {"ann.vcf": CARD_SET["ann.vcf"]})
    target = await addressbook(app, alice)
    found, _ = await sync(target, "", prop="<D:getetag/><D:getcontenttype/><C:address-data/>")
    ann = found[CARDS + "ann.vcf"]
    assert ann.text(d("getcontenttype")) == "text/vcard; charset=utf-8"
    # address-data is in the CardDAV namespace, C: is bound to CalDAV in NS
    assert set(ann.props["404"]) == {c("address-data")}
    found, _ = answers(
        await run(
            target,
            f"<D:sync-collection {CNS}><D:sync-token/><D:prop><C:address-data/></D:prop>"
            "</D:sync-collection>",
            "",
        )
    )
    assert found[CARDS + "ann.vcf"].text(r("address-data")).encode() == CARD_SET["ann.vcf"]


# -- free-busy -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_free_busy_over_two_calendars(app: GkApp, alice: Account) -> None:
    await app.calendars.create_collection(alice, "work", displayname="Work", components=["VEVENT"])
    await fill(
        app,
        alice,
        {
            "busy.ics": ics(
                vevent("busy", "DTSTART:20260603T090000Z", "DTEND:20260603T100000Z"),
                timezone=False,
            ),
            "free.ics": ics(
                vevent(
                    "free",
                    "DTSTART:20260603T120000Z",
                    "DTEND:20260603T130000Z",
                    "TRANSP:TRANSPARENT",
                ),
                timezone=False,
            ),
            "weekly.ics": RECURRING["weekly.ics"],
        },
    )
    await fill(
        app,
        alice,
        {
            "overlap.ics": ics(
                vevent("overlap", "DTSTART:20260603T093000Z", "DTEND:20260603T110000Z"),
                timezone=False,
            ),
            "maybe.ics": ics(
                vevent(
                    "maybe",
                    "DTSTART:20260604T150000Z",
                    "DTEND:20260604T160000Z",
                    "STATUS:TENTATIVE",
                ),
                timezone=False,
            ),
        },
        "work",
    )
    targets = [await calendar(app, alice), await calendar(app, alice, "work")]
    query = report(
        f'<C:free-busy-query {NS}><C:time-range start="20260601T000000Z" '
        'end="20260608T000000Z"/></C:free-busy-query>'
    )
    assert isinstance(query, FreeBusyQuery)
    body = await free_busy_report(targets, query)
    component = Calendar.from_ical(body).walk("VFREEBUSY")[0]
    periods = component.get("FREEBUSY")
    periods = periods if isinstance(periods, list) else [periods]
    busy = {(str(p.params["FBTYPE"]), p.start, p.end) for p in periods}
    at = lambda day, hour, minute=0: datetime(2026, 6, day, hour, minute, tzinfo=UTC)  # noqa: E731
    assert busy == {
        ("BUSY", at(1, 8), at(1, 9)),
        ("BUSY", at(3, 9), at(3, 11)),
        ("BUSY-TENTATIVE", at(4, 15), at(4, 16)),
    }
    # one calendar alone
    alone = Calendar.from_ical(await free_busy_report(targets[0], query))
    assert "FREEBUSY" in alone.walk("VFREEBUSY")[0]
    with pytest.raises(TypeError):
        await run_report(targets[0], query, "1")
    with pytest.raises(ReportError) as caught:
        await free_busy_report(await addressbook(app, alice), query)
    assert caught.value.status == 403


# -- the shortcuts against the plain evaluation ----------------------------------------


def test_calendar_needles_never_drop_a_match() -> None:
    """The byte search of text-matches against the full evaluation."""
    rng = random.Random(5545)
    words = ["Lunch", "LUNCH", "lunch", "Zoë", "ZOË", "café", "a:b", "x" * 70, "Ann"]
    objects = []
    for i in range(200):
        summary = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.3:
            summary = summary.replace(" ", "\\, ", 1)
        lines = ["DTSTART:20260603T120000Z", f"LOCATION:{rng.choice(words)} room"]
        lines.append(f'ATTENDEE;CN="{rng.choice(words)} Person":mailto:p{i}@example.test')
        data = parse_calendar_object(ics(vevent(f"n{i}", *lines, summary=summary))).data
        objects.append(
            (
                Calendar.from_ical(data),
                report_common.Member("n", '"x"', 1, datetime.now(UTC), "VEVENT", data),
            )
        )
    checked = 0
    for prop, param in (("SUMMARY", ""), ("LOCATION", ""), ("ATTENDEE", "CN")):
        for text in [
            "lunch",
            "LUNCH",
            "Zoë",
            "zoë",
            "ZOË",
            "café",
            "x lunch",
            "xxx",
            "room",
            "Ann P",
        ]:
            for collation in ("i;ascii-casemap", "i;octet"):
                match = f'<C:text-match collation="{collation}">{text}</C:text-match>'
                inner = (
                    f'<C:param-filter name="{param}">{match}</C:param-filter>' if param else match
                )
                xml = (
                    f'<C:filter xmlns:C="{CALDAV}"><C:comp-filter name="VCALENDAR">'
                    f'<C:comp-filter name="VEVENT"><C:prop-filter name="{prop}">{inner}'
                    "</C:prop-filter></C:comp-filter></C:comp-filter></C:filter>"
                )
                plan = plan_query(calquery.parse_filter(ET.fromstring(xml)))
                assert plan.needles
                for parsed, member in objects:
                    if calquery.matches(parsed, plan.filter):
                        assert have_needles(plan.needles, [member]) == [True], (xml, member.data)
                        checked += 1
    assert checked > 300


def test_bounds_decide_only_what_they_can() -> None:
    june = calquery.TimeRange(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
    at = lambda day, hour=0: datetime(2026, 6, day, hour, tzinfo=UTC)  # noqa: E731
    assert bounds_match(at(2), at(3), june) is True
    assert bounds_match(at(1), at(1), june) is True  # an instant at the start
    assert bounds_match(at(30, 23), at(30, 23), june) is True
    assert bounds_match(datetime(2026, 7, 1, tzinfo=UTC), at(30) + timedelta(days=2), june) is False
    assert bounds_match(at(1) - timedelta(hours=2), at(1), june) is None  # ends at the start
    assert bounds_match(at(1) - timedelta(hours=2), at(1, 2), june) is None  # floating?
    assert bounds_match(at(1) - timedelta(days=3), at(5), june) is True
    assert bounds_match(None, at(5), june) is None


def _random_event(rng: random.Random, uid: str) -> bytes:
    day = datetime(2026, 5, 1) + timedelta(days=rng.randint(0, 75), hours=rng.randint(0, 23))
    form = rng.choice(["utc", "berlin", "floating", "date"])
    length = timedelta(minutes=rng.choice([0, 30, 60, 24 * 60, 3 * 24 * 60]))

    def stamp(moment: datetime) -> str:
        if form == "date":
            return f";VALUE=DATE:{moment:%Y%m%d}"
        if form == "utc":
            return f":{moment:%Y%m%dT%H%M%S}Z"
        if form == "berlin":
            return f";TZID=Europe/Berlin:{moment:%Y%m%dT%H%M%S}"
        return f":{moment:%Y%m%dT%H%M%S}"

    lines = [f"DTSTART{stamp(day)}"]
    if length and (form != "date" or length >= timedelta(days=1)):
        lines.append(f"DTEND{stamp(day + length)}")
    components = []
    if rng.random() < 0.5:
        rules = ["WEEKLY", "DAILY;COUNT=5", "WEEKLY;INTERVAL=2;COUNT=6", "MONTHLY"]
        lines.append("RRULE:FREQ=" + rng.choice(rules))
        if rng.random() < 0.5:
            skipped = day + timedelta(days=7)
            lines.append(f"EXDATE{stamp(skipped)}")
        if rng.random() < 0.5 and form != "date":
            original = day + timedelta(days=14 if "WEEKLY" in lines[-1] else 2)
            moved = original + timedelta(days=rng.randint(-20, 20), hours=rng.randint(-5, 5))
            override = [f"RECURRENCE-ID{stamp(original)}", f"DTSTART{stamp(moved)}"]
            components.append(vevent(uid, *override, f"DTEND{stamp(moved + length)}"))
    components.insert(0, vevent(uid, *lines))
    return ics(*components)


@pytest_twisted.ensureDeferred
async def test_shortcuts_agree_with_full_evaluation(app: GkApp, alice: Account) -> None:
    rng = random.Random(4791)
    objects = {f"r{i:03}.ics": _random_event(rng, f"r{i}") for i in range(120)}
    await fill(app, alice, objects)
    target = await calendar(app, alice)
    stored = await app.calendars.all_objects(alice, "calendar")
    parsed = {obj.name: Calendar.from_ical(obj.data) for obj in stored}
    berlin = report_common.floating_zone(target.collection, timezone_id="Europe/Berlin")
    windows = []
    for _ in range(12):
        start = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 80 * 24))
        windows.append((start, start + timedelta(hours=rng.choice([1, 12, 24, 24 * 7, 24 * 31]))))
    windows.append((datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)))
    for start, end in windows:
        time_range = calquery.TimeRange(start, end)
        inner = calquery.CompFilter("VEVENT", time_range=time_range)
        comp_filter = calquery.CompFilter("VCALENDAR", comp_filters=(inner,))
        plan = plan_query(comp_filter)
        assert plan.vevent_range == time_range
        for zone in (UTC_ZONE, berlin):
            expected = {
                name for name, cal in parsed.items()
                if calquery.matches(cal, comp_filter, floating_tz=zone.tz)
            }  # fmt: skip
            got = set()
            for obj in stored:
                answer = report_calendar.decide(obj, plan, zone)
                if answer is None and obj.recurring:
                    answer = series_match(obj.etag, parsed[obj.name], zone, time_range)
                    assert cached_series_match(obj.etag, zone, time_range) == answer
                if answer is None:
                    answer = calquery.matches(parsed[obj.name], comp_filter, floating_tz=zone.tz)
                if answer:
                    got.add(obj.name)
            assert got == expected, (start, end, zone.key, got ^ expected)
            # and through the report itself
            xml_start, xml_end = f"{start:%Y%m%dT%H%M%SZ}", f"{end:%Y%m%dT%H%M%SZ}"
            extra = "<C:timezone-id>Europe/Berlin</C:timezone-id>" if zone is berlin else ""
            body = calendar_query(event_range(xml_start, xml_end), extra=extra)
            assert names(await run(target, body)) == expected
