"""
The CalDAV server as the C{caldav} client library (3.x) drives it:
discovery from the well-known URL, calendars, events and to-dos created,
read, changed and deleted, a recurring event found by a date search with
expansion, and incremental sync by sync token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest_twisted
from caldav.davclient import DAVClient

from tests.dav.conftest import ALICE, BOB, PASSWORD, DavServer
from tests.helpers import in_thread

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//gk tests//EN
BEGIN:VEVENT
UID:standup@example.test
DTSTAMP:20250101T000000Z
DTSTART:20250106T090000Z
DTEND:20250106T091500Z
RRULE:FREQ=WEEKLY;COUNT=10
SUMMARY:Stand-up
END:VEVENT
END:VCALENDAR
"""

TODO = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//gk tests//EN
BEGIN:VTODO
UID:taxes@example.test
DTSTAMP:20250101T000000Z
SUMMARY:File taxes
DUE:20250430T170000Z
END:VTODO
END:VCALENDAR
"""


def client(server: DavServer, path: str = "/dav/") -> DAVClient:
    return DAVClient(url=server.url + path, username=ALICE, password=PASSWORD)


@pytest_twisted.ensureDeferred
async def test_discovery_from_the_well_known_url(dav_server: DavServer) -> None:
    """
    From /.well-known/caldav the library finds the principal, its home
    and the two default calendars (events and tasks).
    """

    def scenario() -> dict[str, Any]:
        principal = client(dav_server, "/.well-known/caldav").principal()
        calendars = principal.calendars()
        return {
            "principal": str(principal.url),
            "calendars": sorted(str(c.url) for c in calendars),
            "names": sorted(c.get_display_name() for c in calendars),
        }

    found = await in_thread(scenario)
    assert found["principal"].endswith(f"/dav/principals/{ALICE}/")
    assert [url.rsplit("/", 2)[1] for url in found["calendars"]] == ["calendar", "tasks"]
    assert found["names"] == ["Calendar", "Tasks"]


@pytest_twisted.ensureDeferred
async def test_calendar_life_cycle_with_the_library(dav_server: DavServer) -> None:
    """
    make_calendar, then an event and a to-do saved, fetched by UID,
    changed, listed and deleted, as a calendar app would.
    """

    def scenario() -> dict[str, Any]:
        principal = client(dav_server).principal()
        calendar = principal.make_calendar(name="Work", cal_id="work")
        event = calendar.add_event(EVENT)
        todo = calendar.add_todo(TODO)
        fetched = calendar.get_event_by_uid("standup@example.test")
        summary_before = str(fetched.icalendar_component["SUMMARY"])
        fetched.icalendar_component["SUMMARY"] = "Daily stand-up"
        fetched.save()
        again = calendar.get_event_by_uid("standup@example.test")
        summaries = [str(e.icalendar_component["SUMMARY"]) for e in calendar.events()]
        todos = [str(t.icalendar_component["SUMMARY"]) for t in calendar.todos()]
        event.delete()
        todo.delete()
        return {
            "url": str(calendar.url),
            "names": [c.get_display_name() for c in principal.calendars()],
            "before": summary_before,
            "after": str(again.icalendar_component["SUMMARY"]),
            "summaries": summaries,
            "todos": todos,
            "left": len(calendar.events()) + len(calendar.todos()),
        }

    out = await in_thread(scenario)
    assert out["url"].endswith("/work/")
    assert "Work" in out["names"]
    assert out["before"] == "Stand-up" and out["after"] == "Daily stand-up"
    assert out["summaries"] == ["Daily stand-up"]
    assert out["todos"] == ["File taxes"]
    assert out["left"] == 0


@pytest_twisted.ensureDeferred
async def test_recurring_event_search_with_expansion(dav_server: DavServer) -> None:
    """A date search over January with expand=True returns each weekly instance."""

    def scenario() -> list[str]:
        calendar = client(dav_server).principal().calendars()[0]
        calendar.add_event(EVENT)
        found = calendar.search(
            start=datetime(2025, 1, 1, tzinfo=UTC),
            end=datetime(2025, 2, 1, tzinfo=UTC),
            event=True,
            expand=True,
        )
        return sorted(e.icalendar_component["DTSTART"].dt.strftime("%Y-%m-%d") for e in found)

    starts = await in_thread(scenario)
    assert starts == ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27"]


@pytest_twisted.ensureDeferred
async def test_sync_token_reports_only_what_changed(dav_server: DavServer) -> None:
    """An initial sync lists everything; after one change, the next lists only it."""

    def scenario() -> tuple[int, list[str]]:
        calendar = client(dav_server).principal().calendars()[0]
        calendar.add_event(EVENT)
        first = calendar.get_objects_by_sync_token(load_objects=False)
        calendar.add_event(EVENT.replace("standup@", "retro@").replace("Stand-up", "Retro"))
        second = calendar.get_objects_by_sync_token(first.sync_token, load_objects=False)
        return len(list(first)), [str(o.url).rsplit("/", 1)[1] for o in second]

    initial, changed = await in_thread(scenario)
    assert initial == 1
    assert len(changed) == 1 and changed[0].startswith("retro")


MEETING = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//gk tests//EN
BEGIN:VEVENT
UID:planning@example.test
DTSTAMP:20250101T000000Z
DTSTART:20250310T140000Z
DTEND:20250310T150000Z
SUMMARY:Planning
ORGANIZER;CN=Alice:mailto:alice@example.test
ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:alice@example.test
ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.test
END:VEVENT
END:VCALENDAR
"""


@pytest_twisted.ensureDeferred
async def test_an_invitation_between_two_users_and_the_answer(dav_server: DavServer) -> None:
    """
    Alice saves a meeting with Bob as attendee; the server schedules it
    (calendar-auto-schedule): Bob finds it in his calendar, needing action,
    and the request in his schedule inbox.  Bob accepts by saving his copy;
    Alice's copy then shows him as accepted.
    """

    def scenario() -> dict[str, str]:
        alice = client(dav_server).principal()
        alice.calendar(cal_id="calendar").save_event(MEETING)
        bob_client = DAVClient(url=dav_server.url + "/dav/", username=BOB, password=PASSWORD)
        bob = bob_client.principal()
        copy = bob.calendar(cal_id="calendar").event_by_uid("planning@example.test")
        invited = copy.data
        inbox = [item.data for item in bob.schedule_inbox().get_items()]
        copy.data = invited.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
        copy.save()
        organizer = alice.calendar(cal_id="calendar").event_by_uid("planning@example.test")
        return {"invited": invited, "inbox": "\n".join(inbox), "organizer": organizer.data}

    out = await in_thread(scenario)
    unfolded = {k: v.replace("\r\n", "\n").replace("\n ", "") for k, v in out.items()}
    assert "PARTSTAT=NEEDS-ACTION" in unfolded["invited"]
    assert "METHOD:REQUEST" in unfolded["inbox"] and "planning@example.test" in unfolded["inbox"]
    bob_line = next(
        line for line in unfolded["organizer"].splitlines() if "mailto:bob@example.test" in line
    )
    assert "PARTSTAT=ACCEPTED" in bob_line
