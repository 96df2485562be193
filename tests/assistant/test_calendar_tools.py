"""
The calendar tools called through the registry as the conversation loop
calls them, against a running gk: events made by the tools, by
CalendarService and by a CalDAV PUT over HTTP are the same events;
recurring events are expanded in the user's zone; invitations reach gk
users' calendars and inboxes (and the outbound queue for others) only
after consent; free slots avoid everyone's busy time without revealing
anything else; and nobody reaches another user's events by their ids.

"Now" is Friday 20 November 2026, 10:00 in Paris (UTC+1).
"""

from __future__ import annotations

import http.client
from typing import Any

import pytest_twisted

from gk.dav import itip
from gk.events import CalendarChanged
from tests.assistant.conftest import ALICE, BOB, CAROL, PASSWORD, AssistantServer
from tests.assistant.toolcalls import consent_for, ok, refused
from tests.dav.conftest import basic
from tests.helpers import in_thread

OUTSIDER = "olga@elsewhere.example"


def ics(uid: str, summary: str, *lines: str) -> bytes:
    """A calendar object with one VEVENT of C{lines} (DTSTART, DTEND, RRULE...)."""
    body = "\r\n".join(lines)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gk tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:{summary}\r\n{body}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


async def day_of(server: AssistantServer, day: str, email: str = ALICE) -> list[dict[str, Any]]:
    content = await ok(server, "list_events", {"start": day, "end": day}, email)
    events: list[dict[str, Any]] = content["events"]
    return events


def dav_put(server: AssistantServer, email: str, path: str, body: bytes) -> int:
    """A CalDAV client's PUT over HTTP (blocking: run it in a thread)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(
            "PUT",
            path,
            body,
            {"Authorization": basic(email, PASSWORD), "Content-Type": "text/calendar"},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_whats_on_my_calendar_tomorrow(gk_server: AssistantServer) -> None:
    app, alice = gk_server.app, gk_server.accounts[ALICE]
    changes: list[CalendarChanged] = []
    app.events.subscribe(CalendarChanged, changes.append, alice.id)
    # Her calendars: events go to "calendar" unless she names another.
    content = await ok(gk_server, "list_calendars", {})
    calendars = {c["name"]: c for c in content["calendars"]}
    assert calendars["calendar"]["default"] and calendars["calendar"]["components"] == ["VEVENT"]
    assert calendars["tasks"]["components"] == ["VTODO"] and not calendars["tasks"]["default"]
    assert "inbox" not in calendars

    # Made by the assistant, without attendees: nothing to confirm.
    dentist = {"summary": "Dentist", "start": "2026-11-21T10:30", "duration_minutes": 45}
    assert await consent_for(gk_server, "create_event", dentist) is None
    created = await ok(gk_server, "create_event", dentist)
    assert created["event"]["start"] == "2026-11-21T10:30:00+01:00"
    assert created["event"]["end"] == "2026-11-21T11:15:00+01:00"
    assert changes and changes[-1].action == "created"

    # Made by a CalDAV client, in New York time: 8:00 there is 14:00 in Paris.
    status = await in_thread(
        dav_put, gk_server, ALICE, f"/dav/calendars/{ALICE}/calendar/brunch.ics",
        ics("brunch", "Brunch call", "DTSTART;TZID=America/New_York:20261121T080000",
            "DTEND;TZID=America/New_York:20261121T090000"),
    )  # fmt: skip
    assert status == 201
    # Stored through the service: a weekly Saturday class, an all-day fair,
    # a party running past midnight into Saturday, and what is not on Saturday.
    for name, body in {
        "yoga.ics": ics("yoga", "Yoga", "DTSTART;TZID=Europe/Paris:20261107T090000",
                        "DTEND;TZID=Europe/Paris:20261107T100000", "RRULE:FREQ=WEEKLY"),
        "fair.ics": ics("fair", "Book fair", "DTSTART;VALUE=DATE:20261121",
                        "DTEND;VALUE=DATE:20261123"),
        "party.ics": ics("party", "Party", "DTSTART:20261120T223000Z", "DTEND:20261120T233000Z"),
        "late.ics": ics("late", "Late show", "DTSTART:20261121T233000Z",
                        "DTEND:20261122T003000Z"),
        "today.ics": ics("today", "Standup", "DTSTART:20261120T140000Z",
                         "DTEND:20261120T141500Z"),
    }.items():  # fmt: skip
        await app.calendars.put(alice, "calendar", name, body)

    tomorrow = await day_of(gk_server, "2026-11-21")
    assert [(e["summary"], e["start"], e["end"]) for e in tomorrow] == [
        ("Party", "2026-11-20T23:30:00+01:00", "2026-11-21T00:30:00+01:00"),
        ("Book fair", "2026-11-21", "2026-11-22"),
        ("Yoga", "2026-11-21T09:00:00+01:00", "2026-11-21T10:00:00+01:00"),
        ("Dentist", "2026-11-21T10:30:00+01:00", "2026-11-21T11:15:00+01:00"),
        ("Brunch call", "2026-11-21T14:00:00+01:00", "2026-11-21T15:00:00+01:00"),
    ]
    _, fair, yoga, dentist_event, brunch = tomorrow
    assert fair["all_day"] and not yoga["all_day"]
    assert yoga["recurring"] and yoga["recurrence"] == "FREQ=WEEKLY"
    assert yoga["occurrence"] == "2026-11-21T09:00:00+01:00"
    assert brunch["event_id"] == "calendar/brunch.ics"
    assert dentist_event["event_id"] == created["event"]["event_id"]

    # No range is today; the weekly class recurs on the Saturday after too.
    today = await ok(gk_server, "list_events", {})
    assert [e["summary"] for e in today["events"]] == ["Standup", "Party"]
    week = await ok(gk_server, "list_events", {"start": "2026-11-21", "end": "2026-11-28"})
    assert [e["summary"] for e in week["events"]].count("Yoga") == 2

    # The CalDAV client sees the assistant's event where the id says it is.
    stored = await app.calendars.get(alice, *created["event"]["event_id"].split("/"))
    assert b"SUMMARY:Dentist" in stored.data and b"TZID=Europe/Paris" in stored.data


@pytest_twisted.ensureDeferred
async def test_inviting_bob_needs_consent_then_reaches_his_calendar(
    gk_server: AssistantServer,
) -> None:
    app, bob = gk_server.app, gk_server.accounts[BOB]
    meeting = {
        "summary": "Budget review",
        "start": "2026-11-23T14:00:00+01:00",
        "end": "2026-11-23T14:30:00+01:00",
        "location": "Room 4",
        "attendees": [BOB, OUTSIDER],
    }
    summary = await consent_for(gk_server, "create_event", meeting)
    assert summary is not None
    assert BOB in summary and OUTSIDER in summary and "“Budget review”" in summary
    assert "Mon 23 Nov 2026 14:00-14:30 (Europe/Paris)" in summary

    # Not approved: nothing is stored, nobody is invited.
    outcome = await gk_server.call("create_event", meeting)
    assert outcome.is_error and "confirmation" in outcome.text
    assert await day_of(gk_server, "2026-11-23") == []
    assert await day_of(gk_server, "2026-11-23", BOB) == []
    assert (await app.queue.counts()).get("queued", 0) == 0

    created = await ok(gk_server, "create_event", meeting, approve=True)
    assert {i["email"]: i["delivery"] for i in created["invitations"]} == {
        BOB: "delivered to their calendar",
        OUTSIDER: "sent by e-mail",
    }
    [bobs] = await day_of(gk_server, "2026-11-23", BOB)
    assert bobs["summary"] == "Budget review" and bobs["start"] == "2026-11-23T14:00:00+01:00"
    assert bobs["organizer"]["email"] == ALICE
    assert bobs["my_response"] == "needs-action"
    [invitation] = await gk_server.tree.inbox.all_objects(bob, "inbox")
    message = itip.parse(invitation.data)
    assert str(message["METHOD"]) == "REQUEST"
    assert sum((await app.queue.counts()).values()) == 1  # the iMIP mail to the outsider


@pytest_twisted.ensureDeferred
async def test_find_30_minutes_with_bob_next_week_and_invite_him(
    gk_server: AssistantServer,
) -> None:
    app, alice, bob = gk_server.app, gk_server.accounts[ALICE], gk_server.accounts[BOB]
    await app.calendars.put(bob, "calendar", "board.ics", ics(
        "board", "Secret board meeting", "DTSTART;TZID=Europe/Paris:20261123T090000",
        "DTEND;TZID=Europe/Paris:20261123T120000"))  # fmt: skip
    await app.calendars.put(bob, "calendar", "lunch.ics", ics(
        "lunch", "Lunch", "DTSTART;TZID=Europe/Paris:20261101T120000",
        "DTEND;TZID=Europe/Paris:20261101T140000", "RRULE:FREQ=DAILY"))  # fmt: skip
    await app.calendars.put(bob, "calendar", "free.ics", ics(
        "free", "Maybe gym", "DTSTART;TZID=Europe/Paris:20261124T090000",
        "DTEND;TZID=Europe/Paris:20261124T100000", "TRANSP:TRANSPARENT"))  # fmt: skip
    await app.calendars.put(alice, "calendar", "focus.ics", ics(
        "focus", "Focus", "DTSTART;TZID=Europe/Paris:20261123T140000",
        "DTEND;TZID=Europe/Paris:20261123T180000"))  # fmt: skip
    await app.calendars.put(alice, "calendar", "early.ics", ics(
        "early", "Early call", "DTSTART;TZID=Europe/Paris:20261124T090000",
        "DTEND;TZID=Europe/Paris:20261124T093000"))  # fmt: skip

    found = await ok(gk_server, "find_free_slots", {
        "attendees": [BOB, OUTSIDER], "duration_minutes": 30,
        "start": "2026-11-23", "end": "2026-11-27",
    })  # fmt: skip
    # Monday is full (bob 9-14, alice 14-18); Tuesday starts after alice's call.
    assert [s["start"] for s in found["slots"]] == [
        "2026-11-24T09:30:00+01:00",
        "2026-11-24T10:30:00+01:00",
        "2026-11-25T09:00:00+01:00",
        "2026-11-25T10:00:00+01:00",
        "2026-11-26T09:00:00+01:00",
    ]
    assert found["slots"][0]["end"] == "2026-11-24T10:00:00+01:00"
    people = {p["email"]: p for p in found["participants"]}
    assert people[ALICE]["availability"] == people[BOB]["availability"] == "known"
    assert people[OUTSIDER]["availability"] == "unknown"
    assert {"start": "2026-11-23T09:00:00+01:00", "end": "2026-11-23T14:00:00+01:00"} in people[
        BOB
    ]["busy"]
    # Busy times only: nothing of what bob's events are.
    assert "Secret" not in str(found) and "Lunch" not in str(found)

    # Afternoons only, weekends included, few slots.
    later = await ok(gk_server, "find_free_slots", {
        "attendees": [BOB], "duration_minutes": 60, "start": "2026-11-28", "end": "2026-11-28",
        "working_hours_start": "13:00", "working_hours_end": "16:00", "include_weekends": True,
        "limit": 1,
    })  # fmt: skip
    assert later["slots"] == [
        {"start": "2026-11-28T14:00:00+01:00", "end": "2026-11-28T15:00:00+01:00"}
    ]

    slot = found["slots"][0]
    invite = {"summary": "Catch-up", **slot, "attendees": [BOB]}
    assert BOB in (await consent_for(gk_server, "create_event", invite) or "")
    await ok(gk_server, "create_event", invite, approve=True)
    tuesday = {e["summary"]: e for e in await day_of(gk_server, "2026-11-24", BOB)}
    assert tuesday["Catch-up"]["start"] == slot["start"]
    assert tuesday["Catch-up"]["my_response"] == "needs-action"

    # Now that slot is taken for both.
    again = await ok(gk_server, "find_free_slots", {
        "attendees": [BOB], "duration_minutes": 30, "start": "2026-11-24", "end": "2026-11-24",
    })  # fmt: skip
    assert slot["start"] not in [s["start"] for s in again["slots"]]


@pytest_twisted.ensureDeferred
async def test_update_answer_and_delete(gk_server: AssistantServer) -> None:
    carol = gk_server.accounts[CAROL]
    made = await ok(gk_server, "create_event", {
        "summary": "Planning", "start": "2026-11-25T10:00", "duration_minutes": 60,
    })  # fmt: skip
    event_id = made["event"]["event_id"]

    # Alone in it: changed without asking; a new start keeps the length.
    change = {"event_id": event_id, "start": "2026-11-25T11:00", "location": "Lab"}
    assert await consent_for(gk_server, "update_event", change) is None
    updated = await ok(gk_server, "update_event", change)
    assert (updated["event"]["start"], updated["event"]["end"]) == (
        "2026-11-25T11:00:00+01:00",
        "2026-11-25T12:00:00+01:00",
    )
    assert updated["event"]["location"] == "Lab"

    # Inviting people: asked first, then they have it.
    invite = {"event_id": event_id, "add_attendees": [BOB, CAROL]}
    summary = await consent_for(gk_server, "update_event", invite)
    assert summary is not None and f"invite {BOB}, {CAROL}" in summary
    await ok(gk_server, "update_event", invite, approve=True)
    [bobs] = await day_of(gk_server, "2026-11-25", BOB)
    assert bobs["summary"] == "Planning" and bobs["my_response"] == "needs-action"

    # Bob accepts through his assistant: alice's copy shows it.
    answer = {"event_id": bobs["event_id"], "response": "accepted"}
    summary = await consent_for(gk_server, "update_event", answer, BOB)
    assert summary is not None and ALICE in summary and "accepted" in summary
    assert "organizes" in await refused(
        gk_server, "update_event", {"event_id": bobs["event_id"], "summary": "Mine now"}, BOB
    )
    await ok(gk_server, "update_event", answer, BOB, approve=True)
    [alices] = await day_of(gk_server, "2026-11-25")
    assert {a["email"]: a["response"] for a in alices["attendees"]}[BOB] == "accepted"

    # Carol deletes her copy: alice is told she declines.
    [carols] = await day_of(gk_server, "2026-11-25", CAROL)
    summary = await consent_for(gk_server, "delete_event", {"event_id": carols["event_id"]}, CAROL)
    assert summary is not None and f"{ALICE} will be told you decline" in summary
    await ok(gk_server, "delete_event", {"event_id": carols["event_id"]}, CAROL, approve=True)
    [alices] = await day_of(gk_server, "2026-11-25")
    assert {a["email"]: a["response"] for a in alices["attendees"]}[CAROL] == "declined"

    # Moving it tells everyone; uninviting carol sends her a cancellation.
    move = {"event_id": event_id, "start": "2026-11-26T15:00", "remove_attendees": [CAROL]}
    summary = await consent_for(gk_server, "update_event", move)
    assert summary is not None
    assert (
        "Thu 26 Nov 2026 15:00-16:00 (Europe/Paris)" in summary and f"uninvite {CAROL}" in summary
    )
    await ok(gk_server, "update_event", move, approve=True)
    [bobs] = await day_of(gk_server, "2026-11-26", BOB)
    assert bobs["start"] == "2026-11-26T15:00:00+01:00"
    assert await day_of(gk_server, "2026-11-26", CAROL) == []
    [message] = await gk_server.tree.inbox.all_objects(carol, "inbox")
    assert str(itip.parse(message.data)["METHOD"]) == "CANCEL"

    # Deleting always asks; attendees get the cancellation.
    delete = {"event_id": event_id}
    summary = await consent_for(gk_server, "delete_event", delete)
    assert summary is not None and summary.startswith("Delete “Planning”") and BOB in summary
    outcome = await gk_server.call("delete_event", delete)
    assert outcome.is_error and await day_of(gk_server, "2026-11-26") != []
    await ok(gk_server, "delete_event", delete, approve=True)
    assert await day_of(gk_server, "2026-11-26") == []
    [bobs] = await day_of(gk_server, "2026-11-26", BOB)
    assert bobs["status"] == "cancelled"


@pytest_twisted.ensureDeferred
async def test_one_occurrence_of_a_recurring_event_is_deleted(gk_server: AssistantServer) -> None:
    made = await ok(gk_server, "create_event", {
        "summary": "Standup", "start": "2026-11-23T09:00", "duration_minutes": 15,
        "recurrence": "FREQ=DAILY;COUNT=5",
    })  # fmt: skip
    week = await ok(gk_server, "list_events", {"start": "2026-11-23", "end": "2026-11-29"})
    assert len(week["events"]) == 5
    wednesday = week["events"][2]
    assert wednesday["occurrence"] == "2026-11-25T09:00:00+01:00"
    delete = {"event_id": made["event"]["event_id"], "occurrence": wednesday["occurrence"]}
    summary = await consent_for(gk_server, "delete_event", delete)
    assert summary is not None and "occurrence of Wed 25 Nov 2026 09:00" in summary
    await ok(gk_server, "delete_event", delete, approve=True)
    week = await ok(gk_server, "list_events", {"start": "2026-11-23", "end": "2026-11-29"})
    assert [e["start"][:10] for e in week["events"]] == [
        "2026-11-23", "2026-11-24", "2026-11-26", "2026-11-27",
    ]  # fmt: skip
    wrong = {"event_id": made["event"]["event_id"], "occurrence": "2026-11-25T10:00"}
    assert "not an occurrence" in await refused(gk_server, "delete_event", wrong)

    # Moving the series keeps the deleted day deleted; then it stops repeating.
    move = {"event_id": made["event"]["event_id"], "start": "2026-11-23T09:30"}
    await ok(gk_server, "update_event", move)
    week = await ok(gk_server, "list_events", {"start": "2026-11-23", "end": "2026-11-29"})
    assert [e["start"] for e in week["events"]] == [
        f"2026-11-{day}T09:30:00+01:00" for day in (23, 24, 26, 27)
    ]
    once = {"event_id": made["event"]["event_id"], "recurrence": ""}
    assert (await ok(gk_server, "update_event", once))["event"]["recurring"] is False
    week = await ok(gk_server, "list_events", {"start": "2026-11-23", "end": "2026-11-29"})
    assert [e["start"] for e in week["events"]] == ["2026-11-23T09:30:00+01:00"]


#: create_event arguments a model might get wrong, and what the error says.
BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"start": "next tuesday"}, "invalid start"),
    ({"end": "2026-11-23T09:00"}, "after"),
    ({"start": "2026-11-23"}, "is a date"),
    ({"duration_minutes": 30, "end": "2026-11-23T11:00"}, "not both"),
    ({"recurrence": "FREQ=SOMETIMES"}, "invalid recurrence"),
    ({"recurrence": "every monday"}, "needs one FREQ"),
    ({"recurrence": "FREQ=MINUTELY"}, "FREQ must be one of"),
    ({"recurrence": "FREQ=DAILY;COUNT=5000"}, "COUNT"),
    ({"recurrence": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "never produces"),
    ({"calendar": "work"}, "no calendar 'work'"),
    ({"calendar": "tasks"}, "holds tasks"),
    ({"attendees": ["bob at example"]}, "attendees"),
    ({"colour": "red"}, "Additional properties"),
]


@pytest_twisted.ensureDeferred
async def test_bad_arguments_are_tool_errors(gk_server: AssistantServer) -> None:
    for change, expected in BAD_EVENTS:
        arguments = {"summary": "X", "start": "2026-11-23T10:00", **change}
        assert expected in await refused(gk_server, "create_event", arguments), change
    assert await day_of(gk_server, "2026-11-23") == []
    assert "invalid event_id" in await refused(gk_server, "delete_event", {"event_id": "x"})
    assert "invalid start" in await refused(gk_server, "list_events", {"start": "soon"})
    assert "at most 366 days" in await refused(
        gk_server, "list_events", {"start": "2026-01-01", "end": "2028-01-01"}
    )
    assert "HH:MM" in await refused(
        gk_server, "find_free_slots", {"duration_minutes": 30, "working_hours_start": "25:00"}
    )
    made = await ok(gk_server, "create_event", {"summary": "X", "start": "2026-11-23T10:00"})
    assert "nothing to change" in await refused(
        gk_server, "update_event", {"event_id": made["event"]["event_id"]}
    )
    assert "only they can" not in await refused(
        gk_server, "update_event", {"event_id": made["event"]["event_id"], "response": "accepted"}
    )


@pytest_twisted.ensureDeferred
async def test_alice_cannot_reach_bobs_events(gk_server: AssistantServer) -> None:
    bobs = await ok(gk_server, "create_event", {
        "summary": "Bob's private dinner", "start": "2026-11-24T20:00", "duration_minutes": 120,
    }, BOB)  # fmt: skip
    bob_id = bobs["event"]["event_id"]
    nothing = "calendar/0123456789abcdef.ics"
    for name, extra in (
        ("update_event", {"summary": "Hijacked"}),
        ("delete_event", {}),
        ("update_event", {"response": "declined"}),
    ):
        theirs = await refused(gk_server, name, {"event_id": bob_id, **extra})
        missing = await refused(gk_server, name, {"event_id": nothing, **extra})
        assert theirs == missing.replace(nothing, bob_id)
        assert "there is no event" in theirs
    assert await day_of(gk_server, "2026-11-24") == []
    [still] = await day_of(gk_server, "2026-11-24", BOB)
    assert still["summary"] == "Bob's private dinner"
    # His schedule inbox is not a calendar of hers either.
    assert "there is no event" in await refused(
        gk_server, "delete_event", {"event_id": "inbox/x.ics"}
    )


@pytest_twisted.ensureDeferred
async def test_changed_and_deleted_events_show_at_once(gk_server: AssistantServer) -> None:
    """
    Listing and free-busy keep what they parsed (gk.parsecache): an event
    changed or deleted since is shown as it is now, never as it was.
    """
    app, bob = gk_server.app, gk_server.accounts[BOB]
    week = {"start": "2026-11-23", "end": "2026-11-29"}
    standup = ics(
        "standup", "Standup", "DTSTART;TZID=Europe/Paris:20261102T093000",
        "DTEND;TZID=Europe/Paris:20261102T100000", "RRULE:FREQ=WEEKLY;COUNT=10",
    )  # fmt: skip
    retro = ics(
        "standup", "Retro", "DTSTART;TZID=Europe/Paris:20261104T160000",
        "DTEND;TZID=Europe/Paris:20261104T170000", "RRULE:FREQ=WEEKLY;COUNT=10",
    )  # fmt: skip

    async def seen() -> tuple[list[tuple[str, str]], list[str]]:
        """Bob's week as he lists it, and his busy time as alice's search for a slot sees it."""
        listed = await ok(gk_server, "list_events", week, BOB)
        slots = await ok(gk_server, "find_free_slots", {
            "attendees": [BOB], "duration_minutes": 30, **week, "include_weekends": True,
        })  # fmt: skip
        [busy] = [p["busy"] for p in slots["participants"] if p["email"] == BOB]
        return [(e["summary"], e["start"]) for e in listed["events"]], [b["start"] for b in busy]

    await app.calendars.put(bob, "calendar", "standup.ics", standup)
    monday = ([("Standup", "2026-11-23T09:30:00+01:00")], ["2026-11-23T09:30:00+01:00"])
    assert await seen() == monday
    assert await seen() == monday  # from what was kept

    # Moved to Wednesday and renamed, by the service and by a CalDAV client.
    await app.calendars.put(bob, "calendar", "standup.ics", retro)
    wednesday = ([("Retro", "2026-11-25T16:00:00+01:00")], ["2026-11-25T16:00:00+01:00"])
    assert await seen() == wednesday
    path = f"/dav/calendars/{BOB}/calendar/standup.ics"
    assert await in_thread(dav_put, gk_server, BOB, path, standup) == 204
    assert await seen() == monday

    await app.calendars.delete(bob, "calendar", "standup.ics")
    assert await seen() == ([], [])
    await app.calendars.put(bob, "calendar", "standup.ics", retro)
    assert await seen() == wednesday
