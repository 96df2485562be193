"""
Fan-out over C{/ws}: a change reaches every socket of every member once,
in the order of the change log, whether its frame goes straight to the
socket or waits in the transport behind frames a slow reader has not
taken yet; a reader that stays too far behind is closed with 1008.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from gk.ws import connection as ws_connection
from gk.ws.connection import LiveSocket
from tests.ws.conftest import ALICE, BOB, CAROL, LiveServer, WsClient, aio

#: Text of the posts that fill a slow reader's buffers (about 8 KB a frame).
BIG = "x" * 8000


class RawReader:
    """
    A WebSocket client on a plain socket with a tiny receive buffer that
    reads only when told to: the server sees a reader that has stopped.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, token: str) -> RawReader:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # A small stream limit: the stream stops reading from the socket at once.
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame: its opcode and payload."""
        first, second = await self.reader.readexactly(2)
        assert not second & 0x80, "a server frame is never masked"
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(size)

    async def posted(self, count: int) -> list[dict[str, Any]]:
        """The next C{count} chat.message.posted events (other events skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            opcode, payload = await self.frame()
            assert opcode == 1, (opcode, payload[:80])
            event = json.loads(payload)
            if event.get("event") == "chat.message.posted":
                found.append(event)
        return found

    async def until_closed(self) -> tuple[list[dict[str, Any]], int]:
        """Every chat.message.posted event until the close frame, and its code."""
        found: list[dict[str, Any]] = []
        while True:
            opcode, payload = await self.frame()
            if opcode == 8:
                return found, int.from_bytes(payload[:2], "big")
            event = json.loads(payload)
            if event.get("event") == "chat.message.posted":
                found.append(event)

    def close(self) -> None:
        self.writer.close()


async def posted_events(client: WsClient, count: int) -> list[dict[str, Any]]:
    return [await client.event("chat.message.posted") for _ in range(count)]


@pytest_twisted.ensureDeferred
async def test_every_socket_of_every_member_gets_every_message_once_in_order(
    live_server: LiveServer,
) -> None:
    chat, accounts = live_server.app.chat, live_server.accounts
    alices = [await live_server.connect(ALICE) for _ in range(3)]
    bobs = [await live_server.connect(BOB) for _ in range(3)]
    carol = await live_server.connect(CAROL)
    room = await chat.create_room(accounts[ALICE], "ops", "private", [BOB])
    # Posts from both, over the sockets and the service at once.
    posts = [
        chat.post(accounts[BOB if n % 2 else ALICE], room.id, f"service {n}") for n in range(20)
    ]
    sent = [alices[0].call("chat.post", room_id=room.id, text=f"socket {n}") for n in range(10)]
    await gatherResults([aio(c) for c in sent] + [Deferred.fromCoroutine(p) for p in posts])

    expected: list[int] | None = None
    for client in alices + bobs:
        events = await aio(posted_events(client, 30))
        positions = [e["position"] for e in events]
        assert positions == sorted(positions) and len(set(positions)) == 30
        ids = [e["data"]["message"]["id"] for e in events]
        expected = expected or ids
        assert ids == expected
        await aio(client.no_event("chat.message.posted", wait=0.2))
    assert expected is not None and sorted(expected) == expected
    await aio(carol.no_event("chat.message.posted"))


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_gets_its_frames_in_order_or_is_closed_past_the_limit(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 64 * 1024
    monkeypatch.setattr(ws_connection, "MAX_UNSENT", limit)
    chat, accounts, hub = live_server.app.chat, live_server.accounts, live_server.tree.hub
    room = await chat.create_room(accounts[ALICE], "ops", "private", [BOB])
    alice = await live_server.connect(ALICE)
    slow = await aio(RawReader.connect(live_server.port, live_server.tokens[BOB]))
    [bob] = hub.connections(accounts[BOB].id)
    server_side = cast(LiveSocket, bob)
    # A small send buffer too (the kernel would otherwise grow it to
    # megabytes before the transport had to hold anything).
    server_side.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)  # type: ignore[union-attr]

    # It stops reading: once the kernel's buffers are full the transport
    # holds the frames, behind those already sent straight to the socket.
    ids: list[int] = []
    while server_side.unsent == 0:
        assert len(ids) < 100, "the kernel took everything"
        ids.append((await chat.post(accounts[ALICE], room.id, BIG)).id)
    assert server_side.unsent < limit
    # Reading again, it gets them all, in order; so does alice.
    assert [e["data"]["message"]["id"] for e in await aio(slow.posted(len(ids)))] == ids
    assert [e["data"]["message"]["id"] for e in await aio(posted_events(alice, len(ids)))] == ids
    assert hub.connection_count(accounts[BOB].id) == 1

    # It stops again and stays behind past the limit: closed with 1008.
    more: list[int] = []
    while hub.connection_count(accounts[BOB].id):
        assert len(more) < 400, "never dropped"
        more.append((await chat.post(accounts[ALICE], room.id, BIG)).id)
    got, code = await aio(slow.until_closed())
    assert code == 1008
    # What it was sent before the close: all but the last, in order.
    assert [e["data"]["message"]["id"] for e in got] == more[: len(got)]
    assert len(got) == len(more) - 1  # the frame that found it too far behind went nowhere
    slow.close()
    # The others are not held back.
    assert [e["data"]["message"]["id"] for e in await aio(posted_events(alice, len(more)))] == more
