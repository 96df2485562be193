"""
The assistant over C{/ws}: a turn's events stream to every socket of
its user as they happen (the model's words as deltas first), never to
another user's; the socket stays free during a turn, so a long answer
can be cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_twisted
import websockets

from tests.assistant.conftest import ALICE, BOB, AssistantServer, dns_server, ollama
from tests.assistant.scripted_ollama import Reply
from tests.ws.conftest import WsClient, aio

__all__ = ["dns_server", "ollama"]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the loop's storage runs on PostgreSQL in tests/storage."""
    return sqlite_url


async def _connect(server: AssistantServer, email: str) -> WsClient:
    async def open_socket() -> Any:
        return await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws",
            additional_headers={"Authorization": f"Bearer {server.tokens[email]}"},
        )

    client = WsClient(await aio(open_socket()))
    client.start()
    return client


async def _assistant_events(client: WsClient, until: str = "state") -> list[dict[str, Any]]:
    """The C{assistant} events up to and including the first of type C{until}."""
    seen = []
    while True:
        frame = await client.event("assistant")
        seen.append(frame["data"])
        if frame["data"]["type"] == until:
            return seen


@pytest_twisted.ensureDeferred
async def test_a_turn_streams_to_all_the_users_sockets_and_no_one_else(
    gk_server: AssistantServer,
) -> None:
    tab, phone, bob = (
        await _connect(gk_server, ALICE),
        await _connect(gk_server, ALICE),
        await _connect(gk_server, BOB),
    )
    try:
        gk_server.ollama.script(Reply(["Hello", " there", "!"]))
        created = await aio(tab.call("assistant.create"))
        conversation = created["id"]

        started = await aio(tab.call("assistant.send", conversation_id=conversation, text="hi"))
        on_tab = await aio(_assistant_events(tab))
        on_phone = await aio(_assistant_events(phone))

        assert started == {"started": True}
        for seen in (on_tab, on_phone):
            assert all(e["conversation_id"] == conversation for e in seen)
            kinds = [e["type"] for e in seen]
            assert kinds == ["user", "delta", "delta", "delta", "text", "state"]
            assert "".join(e["text"] for e in seen if e["type"] == "delta") == "Hello there!"
            assert seen[-2]["text"] == "Hello there!" and seen[-1]["state"] == "done"
        await aio(bob.no_event("assistant"))

        listed = await aio(tab.call("assistant.conversations"))
        assert [c["id"] for c in listed["conversations"]] == [conversation]
        errors = [
            await aio(bob.request("assistant.send", conversation_id=conversation, text="x")),
            await aio(tab.request("assistant.history", conversation_id="nope")),
        ]
        assert [e["error"]["code"] for e in errors] == ["no_such_conversation"] * 2
    finally:
        for client in (tab, phone, bob):
            await aio(client.close())


@pytest_twisted.ensureDeferred
async def test_a_slow_answer_can_be_cancelled_while_the_socket_stays_free(
    gk_server: AssistantServer,
) -> None:
    client = await _connect(gk_server, ALICE)
    try:
        gk_server.ollama.script(Reply(["too late"], delay=30))
        conversation = (await aio(client.call("assistant.create")))["id"]
        await aio(client.call("assistant.send", conversation_id=conversation, text="think hard"))
        await aio(client.event("assistant"))  # the user's words

        pong = await aio(client.call("ping"))
        await aio(asyncio.sleep(0.2))
        cancelled = await aio(client.call("assistant.cancel", conversation_id=conversation))
        seen = await aio(_assistant_events(client))

        assert pong == {}
        assert cancelled == {"cancelled": True}
        assert [e["type"] for e in seen] == ["error", "state"]
        assert "cancelled" in seen[0]["message"]
    finally:
        await aio(client.close())
