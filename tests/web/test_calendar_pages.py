"""
The calendar pages over HTTP: events made through the form are stored as
a CalDAV client's would be and shown in the month and week views (a
recurring one on each of its days), changed and deleted through the
form; an invited gk user finds the invitation awaiting an answer and
answers it; nobody reaches another user's events; bad input answers 400
with one clear message.

Events are in November 2026, shown in Europe/Paris (the test server's
[assistant] timezone).
"""

from __future__ import annotations

import re

import httpx
import pytest_twisted

from gk.dav import itip
from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, WebClient, WebServer

OUTSIDER = "olga@elsewhere.example"


def day_cell(page: str, day: str) -> str:
    """The HTML of one day of a month or week view."""
    found = re.search(rf'data-date="{day}".*?</li>\s*(?=<li class="(?:day|cal-week-day)|</ol>)',
                      page, re.S)  # fmt: skip
    assert found is not None, f"no {day} in the page"
    return found.group(0)


def event_form(**fields: str) -> dict[str, str]:
    """The event form as a browser sends it, with these fields changed."""
    return {
        "summary": "Event",
        "calendar": "calendar",
        "start_date": "2026-11-23",
        "start_time": "14:00",
        "end_date": "2026-11-23",
        "end_time": "15:00",
        "location": "",
        "description": "",
        "attendees": "",
        "repeat": "none",
        "repeat_count": "",
        "repeat_until": "",
        **fields,
    }


async def create(client: WebClient, **fields: str) -> httpx.Response:
    answer = await post(client, "/calendar/event", event_form(**fields))
    assert answer.status_code == 303, answer.text
    return answer


async def get(client: WebClient, path: str) -> httpx.Response:
    return await in_thread(lambda: client.get(path))


async def post(client: WebClient, path: str, data: dict[str, str]) -> httpx.Response:
    return await in_thread(lambda: client.post(path, data))


def edit_link(page: str, summary: str) -> str:
    """The first link of a view to the event C{summary}."""
    link = r'href="(/calendar/event/[^"]+/edit[^"]*)">(?:<span[^>]*>[^<]*</span> )?'
    found = re.search(link + re.escape(summary), page)
    assert found is not None, f"no link to {summary!r}"
    return found.group(1).replace("&amp;", "&")


@pytest_twisted.ensureDeferred
async def test_month_and_week_views_show_events_and_a_recurring_one_on_each_day(
    web: WebServer,
) -> None:
    alice = await web.client(ALICE)
    answer = await create(
        alice, summary="Standup", start_date="2026-11-02", start_time="09:00",
        end_date="2026-11-02", end_time="09:15", repeat="weekly", repeat_count="3",
    )  # fmt: skip
    assert answer.headers["location"] == "/calendar/month/2026-11"
    # With a second calendar she chooses where an event goes.
    await web.app.calendars.create_collection(
        web.accounts[ALICE], "work", displayname="Work", components=["VEVENT"]
    )
    form = (await get(alice, "/calendar/new?date=2026-11-19")).text
    assert '<option value="work">Work</option>' in form and 'value="2026-11-19"' in form
    await create(
        alice, summary="Holiday", all_day="on", start_date="2026-11-19", end_date="2026-11-20",
        calendar="work",
    )  # fmt: skip
    [holiday] = await web.app.calendars.all_objects(web.accounts[ALICE], "work")
    assert b"DTSTART;VALUE=DATE:20261119" in holiday.data
    assert b"DTEND;VALUE=DATE:20261121" in holiday.data

    # Stored as a CalDAV client would find it: one object, one RRULE, the user's zone.
    stored = {o.name: o.data for o in await web.app.calendars.all_objects(web.accounts[ALICE],
                                                                           "calendar")}  # fmt: skip
    standup = next(data for data in stored.values() if b"SUMMARY:Standup" in data)
    assert b"RRULE:FREQ=WEEKLY;COUNT=3" in standup
    assert b"DTSTART;TZID=Europe/Paris:20261102T090000" in standup

    month = (await get(alice, "/calendar/month/2026-11")).text
    for day in ("2026-11-02", "2026-11-09", "2026-11-16"):
        assert "Standup" in day_cell(month, day) and "09:00" in day_cell(month, day)
    assert "Standup" not in day_cell(month, "2026-11-23")
    # The all-day event is on both its days, and only those.
    assert "Holiday" in day_cell(month, "2026-11-19") and "Holiday" in day_cell(month, "2026-11-20")
    assert "Holiday" not in day_cell(month, "2026-11-21")
    assert "cal-shade-1 all-day" in day_cell(month, "2026-11-19")  # the second calendar's colour
    assert '<h1 id="cal-title">November 2026</h1>' in month
    assert 'href="/calendar/month/2026-10"' in month and 'href="/calendar/month/2026-12"' in month

    week = (await get(alice, "/calendar/week/2026-11-11")).text
    assert "Week of Mon 9 Nov 2026" in week
    assert "09:00\u201309:15" in day_cell(week, "2026-11-09")
    assert "Standup" not in day_cell(week, "2026-11-10")
    assert 'href="/calendar/week/2026-11-02"' in week and 'href="/calendar/week/2026-11-16"' in week
    assert (await get(alice, "/calendar")).status_code == 200

    # A URL that names no month or day answers 400, saying so.
    for path in ("/calendar/month/2026-13", "/calendar/month/nov", "/calendar/week/2026-02-30",
                 "/calendar/new?date=tomorrow", "/calendar/new?date=2026-11-02&time=25:00",
                 "/calendar/month/0001-01"):  # fmt: skip
        answer = await get(alice, path)
        assert answer.status_code == 400, path
        assert re.search(r'<p role="alert">[^<]*(YYYY-MM|HH:MM|the years)', answer.text), path


@pytest_twisted.ensureDeferred
async def test_mistakes_are_said_then_an_event_is_edited_and_deleted(web: WebServer) -> None:
    alice, account = await web.client(ALICE), web.accounts[ALICE]
    mistakes = {
        "The end must be after the start.": {"end_time": "13:00"},
        "Give the event a title.": {"summary": "  "},
        "“bob at example” is not an e-mail address.": {"attendees": "bob at example"},
        "Give the start date as a date (YYYY-MM-DD).": {"start_date": "23/11/2026"},
        "Repeat between 1 and 1000 times.": {"repeat": "daily", "repeat_count": "0"},
        "Choose one of your calendars.": {"calendar": "tasks"},
    }
    for message, fields in mistakes.items():
        answer = await post(alice, "/calendar/event", event_form(**fields))
        assert answer.status_code == 400, message
        assert f'role="alert" id="event-error">{message}</p>' in answer.text
        assert 'value="15:00"' in answer.text or 'value="13:00"' in answer.text  # kept as typed
    assert await web.app.calendars.all_objects(account, "calendar") == []

    await create(alice, summary="Yoga", start_date="2026-11-03", start_time="18:00",
                 end_date="2026-11-03", end_time="19:00", repeat="daily",
                 repeat_until="2026-11-06", location="Gym")  # fmt: skip
    link = edit_link((await get(alice, "/calendar/week/2026-11-04")).text, "Yoga")
    assert "occurrence=2026-11-03T18%3A00%3A00%2B01%3A00" in link
    form = (await get(alice, link)).text
    assert 'value="Yoga"' in form and 'value="Gym"' in form and 'value="2026-11-06"' in form

    path = link.partition("/edit")[0]
    changed = event_form(summary="Yoga class", start_date="2026-11-03", start_time="18:30",
                         end_date="2026-11-03", end_time="19:30", location="Gym",
                         repeat="daily", repeat_until="2026-11-06")  # fmt: skip
    answer = await post(alice, path, changed)
    assert answer.status_code == 303, answer.text
    [stored] = await web.app.calendars.all_objects(account, "calendar")
    assert b"SUMMARY:Yoga class" in stored.data and b"LOCATION:Gym" in stored.data
    assert b"DTSTART;TZID=Europe/Paris:20261103T183000" in stored.data
    week = (await get(alice, "/calendar/week/2026-11-04")).text
    assert "18:30\u201319:30" in day_cell(week, "2026-11-05")
    assert "Yoga class" in day_cell(week, "2026-11-06")
    assert "Yoga" not in day_cell(week, "2026-11-07")

    # One occurrence goes; the others stay.
    occurrence = {"occurrence": "2026-11-04T18:30:00+01:00", "back": "/calendar/week/2026-11-04"}
    answer = await post(alice, path + "/delete", occurrence)
    assert answer.headers["location"] == "/calendar/week/2026-11-04"
    week = (await get(alice, "/calendar/week/2026-11-04")).text
    assert "Yoga" not in day_cell(week, "2026-11-04")
    assert "Yoga" in day_cell(week, "2026-11-05")

    # Then the whole event.
    answer = await post(alice, path + "/delete", {})
    assert answer.status_code == 303
    assert await web.app.calendars.all_objects(account, "calendar") == []
    assert (await get(alice, link)).status_code == 404


@pytest_twisted.ensureDeferred
async def test_bob_answers_alices_invitation_and_neither_reaches_the_others_events(
    web: WebServer,
) -> None:
    alice, bob = await web.client(ALICE), await web.client(BOB)
    await create(alice, summary="Budget review", attendees=f"Bob <{BOB}>\n{OUTSIDER}")

    # In bob's calendar, awaiting his answer, and in his scheduling inbox.
    [copy] = await web.app.calendars.all_objects(web.accounts[BOB], "calendar")
    event = itip.scheduling_info(itip.parse(copy.data))
    assert event is not None and event.organizer == ALICE
    assert b"PARTSTAT=NEEDS-ACTION" in copy.data.replace(b"\r\n ", b"")
    [invitation] = await web.tree.inbox.all_objects(web.accounts[BOB], "inbox")
    assert str(itip.parse(invitation.data)["METHOD"]) == "REQUEST"
    assert sum((await web.app.queue.counts()).values()) == 1  # iMIP mail to the outsider

    month = (await get(bob, "/calendar/month/2026-11")).text
    assert "invitation" in day_cell(month, "2026-11-23")
    page = (await get(bob, edit_link(month, "Budget review"))).text
    assert "only they can change it" in page and "needs action" in page
    path = edit_link(month, "Budget review").partition("/edit")[0]
    # He cannot change alice's event, only answer it.
    refused = await post(bob, path, event_form(summary="Mine now"))
    assert refused.status_code == 403
    answer = await post(bob, path + "/respond", {"response": "accepted"})
    assert answer.status_code == 303

    [original] = await web.app.calendars.all_objects(web.accounts[ALICE], "calendar")
    unfolded = original.data.replace(b"\r\n ", b"")
    assert re.search(rb"ATTENDEE[^\r\n]*PARTSTAT=ACCEPTED[^\r\n]*:mailto:" + BOB.encode(), unfolded)

    # His own events are his: alice's pages know nothing of them.
    await create(bob, summary="Dentist of bob", start_date="2026-11-24", end_date="2026-11-24")
    path = edit_link((await get(bob, "/calendar/month/2026-11")).text, "Dentist of bob")
    path = path.partition("/edit")[0]
    assert "Dentist of bob" not in (await get(alice, "/calendar/month/2026-11")).text
    assert (await get(alice, path + "/edit")).status_code == 404
    for target, data in ((path, event_form(summary="Hacked")), (path + "/delete", {}),
                         (path + "/respond", {"response": "declined"})):  # fmt: skip
        answer = await post(alice, target, data)
        assert answer.status_code == 404, target
    assert (await get(alice, "/calendar/event/inbox/x.ics/edit")).status_code == 404
    kept = await web.app.calendars.all_objects(web.accounts[BOB], "calendar")
    assert any(b"SUMMARY:Dentist of bob" in k.data for k in kept)
