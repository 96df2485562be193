"""
Calendar and chat through the assistant, end to end over the JSON API
with the scripted model: "what's on my calendar tomorrow", "find 30
minutes with bob next week and invite him" (the invitation waits for
consent, then lands in Bob's calendar), and "post in #general that ...".

The turns run on the real clock, so the dates the scripted model "works
out" are computed here from today in the users' zone, as a model would
from the system prompt.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import pytest_twisted

from tests.assistant.conftest import ALICE, BOB, PARIS, AssistantServer, dns_server, ollama
from tests.assistant.scripted_ollama import Reply, last_result
from tests.assistant.test_scenarios_mail import confirm, kinds, new_conversation, say

__all__ = ["dns_server", "ollama"]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the loop's storage runs on PostgreSQL in tests/storage."""
    return sqlite_url


JSON = dict[str, Any]


def today() -> datetime.date:
    return datetime.datetime.now(PARIS).date()


def next_monday() -> datetime.date:
    day = today()
    return day + datetime.timedelta(days=7 - day.weekday())


async def direct(server: AssistantServer, name: str, arguments: JSON, who: str = ALICE) -> JSON:
    """A tool call made outside the conversation (setting the scene), on the real clock."""
    now = datetime.datetime.now(datetime.UTC)
    prepared = await server.tools.prepare(server.context(who, now), name, arguments)
    prepared.approve()
    outcome = await server.tools.run(prepared)
    assert not outcome.is_error, outcome.text
    assert outcome.content is not None
    return outcome.content


@pytest_twisted.ensureDeferred
async def test_whats_on_my_calendar_tomorrow(gk_server: AssistantServer) -> None:
    tomorrow = (today() + datetime.timedelta(days=1)).isoformat()
    await direct(
        gk_server,
        "create_event",
        {"summary": "Dentist", "start": f"{tomorrow}T14:00", "duration_minutes": 45},
    )
    await direct(
        gk_server,
        "create_event",
        {"summary": "Stand-up", "start": f"{today().isoformat()}T09:30", "duration_minutes": 15},
    )
    conversation = await new_conversation(gk_server)
    gk_server.ollama.script(
        Reply.call("list_events", start=tomorrow, end=tomorrow),
        lambda request: Reply.text(
            "; ".join(
                f"{e['summary']} at {e['start'][11:16]}"
                for e in last_result(request)["data"]["events"]
            )
        ),
    )

    turn = await say(gk_server, conversation, "what's on my calendar tomorrow?")

    assert kinds(turn) == ["tool_call", "tool_result", "text"]
    assert turn["events"][-1]["text"] == "Dentist at 14:00"
    system = gk_server.ollama.requests[0]["messages"][0]["content"]
    assert today().isoformat() in system and "Europe/Paris" in system


@pytest_twisted.ensureDeferred
async def test_find_thirty_minutes_with_bob_next_week_and_invite_him(
    gk_server: AssistantServer,
) -> None:
    monday = next_monday()
    friday = monday + datetime.timedelta(days=4)
    # Bob is busy all of Monday morning.
    await direct(
        gk_server,
        "create_event",
        {"summary": "Bob's private review", "start": f"{monday}T09:00", "end": f"{monday}T12:30"},
        BOB,
    )
    conversation = await new_conversation(gk_server)
    search = {
        "attendees": [BOB],
        "duration_minutes": 30,
        "start": monday.isoformat(),
        "end": friday.isoformat(),
    }
    gk_server.ollama.script(
        Reply.call("find_free_slots", **search),
        lambda request: Reply.call(
            "create_event",
            summary="Catch-up",
            start=last_result(request)["data"]["slots"][0]["start"],
            duration_minutes=30,
            attendees=[BOB],
        ),
        Reply.text("Invited Bob."),
    )

    paused = await say(gk_server, conversation, "find 30 minutes with bob next week and invite him")

    found = paused["events"][1]
    assert found["type"] == "tool_result" and found["is_error"] is False
    first = found["content"]["slots"][0]
    start = datetime.datetime.fromisoformat(first["start"])
    # Monday morning was Bob's; his event's details never reach Alice.
    assert start >= datetime.datetime.combine(monday, datetime.time(12, 30), PARIS)
    assert "private review" not in str(found["content"])
    assert paused["state"] == "awaiting_confirmation"
    card = paused["events"][-1]
    assert card["type"] == "confirm" and BOB in card["summary"]
    before = await direct(gk_server, "list_events", {"start": str(monday), "end": str(friday)}, BOB)
    assert [e["summary"] for e in before["events"]] == ["Bob's private review"]

    done = await confirm(gk_server, paused, True)

    assert done["state"] == "done" and done["events"][0]["is_error"] is False
    after = await direct(gk_server, "list_events", {"start": str(monday), "end": str(friday)}, BOB)
    invited = [e for e in after["events"] if e["summary"] == "Catch-up"]
    assert len(invited) == 1
    assert datetime.datetime.fromisoformat(invited[0]["start"]) == start
    [bob] = [a for a in invited[0]["attendees"] if a["email"] == BOB]
    assert "NEEDS-ACTION" in str(bob).upper()


@pytest_twisted.ensureDeferred
async def test_post_in_general_after_consent(gk_server: AssistantServer) -> None:
    room = await gk_server.app.chat.create_room(gk_server.accounts[BOB], "general", "public", [])
    await gk_server.app.chat.join(gk_server.accounts[ALICE], room.id)
    conversation = await new_conversation(gk_server)
    gk_server.ollama.script(
        Reply.call("send_chat_message", room="#general", text="The build is green again."),
        Reply.text("Posted."),
    )

    paused = await say(gk_server, conversation, "post in #general that the build is green again")

    assert paused["state"] == "awaiting_confirmation"
    assert "general" in paused["events"][-1]["summary"]
    history = await gk_server.app.chat.history(gk_server.accounts[BOB], room.id, None, 10)
    assert [m.text for m in history.messages] == []

    done = await confirm(gk_server, paused, True)

    assert done["events"][0]["is_error"] is False
    history = await gk_server.app.chat.history(gk_server.accounts[BOB], room.id, None, 10)
    assert [(m.sender, m.text) for m in history.messages] == [(ALICE, "The build is green again.")]
