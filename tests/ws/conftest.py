"""
A running gk on an ephemeral loopback HTTP port with three users (alice,
bob, carol) and a bearer token each, and a WebSocket client built on the
independent C{websockets} library: it runs on the asyncio loop the
reactor runs on (the tests use the asyncio reactor), routes replies to
their requests by id and queues pushed events.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest_twisted
import websockets
from twisted.internet.defer import Deferred
from websockets.asyncio.client import ClientConnection

from gk.app import GkApp
from gk.config import load_config
from gk.service import GkService
from gk.storage.accounts import Account
from gk.tls import write_self_signed
from tests.conftest import ConfigWriter
from tests.dav.conftest import http_port
from tests.dnsserver import DNSTestServer, dns_server

__all__ = ["dns_server"]

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
PUBLIC_URL = "http://gk.example.test:8080/"
ORIGIN = "http://gk.example.test:8080"

T = TypeVar("T")


def aio(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Run an asyncio coroutine on the reactor's loop and wait for it from Twisted code."""
    return Deferred.fromFuture(asyncio.ensure_future(coro))


class ServerError(Exception):
    """An error answer: C{code} and C{message} as the server sent them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class WsClient:
    """One socket: requests with ids, replies matched, events queued."""

    connection: ClientConnection
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    errors: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    pending: dict[Any, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 0
    reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.connection:
            frame = json.loads(raw)
            waiting = self.pending.pop(frame.get("id"), None)
            if frame["type"] == "event":
                self.events.put_nowait(frame)
            elif waiting is not None:
                waiting.set_result(frame)
            else:
                self.errors.put_nowait(frame)

    async def request(self, message_type: str, /, **args: Any) -> dict[str, Any]:
        """Send a message; the whole reply or error frame."""
        self.next_id += 1
        message_id = f"m{self.next_id}"
        answer = asyncio.get_running_loop().create_future()
        self.pending[message_id] = answer
        await self.connection.send(json.dumps({"type": message_type, "id": message_id, **args}))
        frame: dict[str, Any] = await asyncio.wait_for(answer, 10)
        return frame

    async def call(self, message_type: str, /, **args: Any) -> Any:
        """Send a message; its result, or L{ServerError}."""
        frame = await self.request(message_type, **args)
        if frame["type"] == "error":
            raise ServerError(frame["error"]["code"], frame["error"]["message"])
        return frame["result"]

    async def event(self, name: str, wait: float = 10) -> dict[str, Any]:
        """The next pushed event called C{name} (others before it are dropped)."""
        async with asyncio.timeout(wait):
            while True:
                frame = await self.events.get()
                if frame["event"] == name:
                    return frame

    async def no_event(self, name: str, wait: float = 0.3) -> None:
        """Fail if an event C{name} arrives within C{wait} seconds."""
        try:
            found = await self.event(name, wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {found}")

    async def close(self) -> None:
        await self.connection.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


@dataclass
class LiveServer:
    app: GkApp
    tree: GkService
    accounts: dict[str, Account]
    tokens: dict[str, str]
    port: int
    clients: list[WsClient] = field(default_factory=list)

    def mx_port(self) -> int:
        for listener in self.tree.listeners:
            if listener.role == "smtp" and listener.bound is not None:
                return int(listener.bound.address.rpartition(":")[2])
        raise LookupError("no smtp listener")

    async def _open(self, headers: dict[str, str]) -> ClientConnection:
        return await websockets.connect(self.ws_url, additional_headers=headers, open_timeout=10)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def connect(
        self, email: str = ALICE, *, headers: dict[str, str] | None = None
    ) -> WsClient:
        """A started client for C{email} with its token (or exactly C{headers})."""
        sent = {"Authorization": f"Bearer {self.tokens[email]}"} if headers is None else headers
        connection: ClientConnection = await aio(self._open(sent))
        client = WsClient(connection)
        client.start()
        self.clients.append(client)
        return client


@pytest_twisted.async_yield_fixture
async def live_server(
    write_config: ConfigWriter, database_url: str, dns_server: DNSTestServer, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    """
    gk with HTTP and MX listeners on 127.0.0.1:0 (the MX's DNS lookups go
    to the test's DNS server), three users and their tokens.
    """
    from twisted.internet import reactor

    config_file = write_config("[delivery]\nworker = false\n", database_url=database_url)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mail.example.test")
    environ = {
        "GK_TLS__CERT": str(cert),
        "GK_TLS__KEY": str(key),
        "GK_HTTP__PUBLIC_URL": PUBLIC_URL,
        "GK_SMTP__LISTEN": '["tcp:0:interface=127.0.0.1"]',
        "GK_DNS__NAMESERVERS": f'["{dns_server.address}"]',
        "GK_DNS__TIMEOUT": "2.0",
    }
    config = load_config(config_file, environ=environ)
    app = GkApp.build(config, reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    server = LiveServer(app, tree, {}, {}, http_port(tree))
    try:
        for email in (ALICE, BOB, CAROL):
            server.accounts[email] = await app.accounts.create_user(email, PASSWORD)
            server.tokens[email] = await app.accounts.create_token(email, "tests")
        yield server
    finally:
        for client in server.clients:
            await aio(client.close())
        await tree.stopService()
        app.db.dispose()
