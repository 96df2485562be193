"""
A running gk (HTTP and MX on loopback, delivery worker off) with three
users and a bearer token each, and the assistant's tool registry, for
the tool families, the conversation loop and the MCP endpoint.

Tool calls run as a L{ToolContext} for one user in Europe/Paris, with
the clock fixed at L{NOW} unless a test gives another.
"""

from __future__ import annotations

import datetime
import http.client
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest_twisted

from gk.app import GkApp
from gk.assistant.tools import ToolContext, ToolOutcome, ToolRegistry
from gk.config import load_config
from gk.service import GkService
from gk.storage.accounts import Account
from gk.tls import write_self_signed
from tests.assistant.scripted_ollama import ScriptedOllama
from tests.conftest import ConfigWriter
from tests.dav.conftest import http_port
from tests.dnsserver import DNSTestServer, dns_server
from tests.helpers import in_thread

__all__ = ["dns_server", "ollama"]

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
PUBLIC_URL = "http://gk.example.test:8080/"
ORIGIN = "http://gk.example.test:8080"
PARIS = ZoneInfo("Europe/Paris")
#: "Now" for tool calls: Friday 20 November 2026, 10:00 in Paris.
NOW = datetime.datetime(2026, 11, 20, 9, 0, tzinfo=datetime.UTC)


@dataclass
class ApiReply:
    status: int
    body: Any


def _http(port: int, method: str, path: str, body: Any, token: str | None) -> ApiReply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        return ApiReply(answer.status, json.loads(payload) if payload else None)
    finally:
        connection.close()


@dataclass
class AssistantServer:
    app: GkApp
    tree: GkService
    accounts: dict[str, Account]
    tokens: dict[str, str]
    port: int
    ollama: ScriptedOllama
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tools(self) -> ToolRegistry:
        return self.tree.tools

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mx_port(self) -> int:
        for listener in self.tree.listeners:
            if listener.role == "smtp" and listener.bound is not None:
                return int(listener.bound.address.rpartition(":")[2])
        raise LookupError("no smtp listener")

    async def api(
        self, method: str, path: str, body: Any = None, email: str | None = ALICE
    ) -> ApiReply:
        """A JSON API request over real HTTP with C{email}'s token (None: no token)."""
        token = None if email is None else self.tokens[email]
        return await in_thread(lambda: _http(self.port, method, path, body, token))

    def context(self, email: str = ALICE, now: datetime.datetime = NOW) -> ToolContext:
        return ToolContext(self.accounts[email], PARIS, lambda: now)

    async def call(
        self, name: str, arguments: dict[str, Any], email: str = ALICE, *, approve: bool = False
    ) -> ToolOutcome:
        """Call a tool as C{email}; with C{approve}, as if the user confirmed it."""
        prepared = await self.tools.prepare(self.context(email), name, arguments)
        if approve:
            prepared.approve()
        return await self.tools.run(prepared)


@pytest_twisted.async_yield_fixture
async def ollama() -> AsyncIterator[ScriptedOllama]:
    """A scripted Ollama-compatible server on loopback (no answers scripted yet)."""
    server = ScriptedOllama()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_twisted.async_yield_fixture
async def gk_server(
    write_config: ConfigWriter,
    database_url: str,
    dns_server: DNSTestServer,
    ollama: ScriptedOllama,
    tmp_path: Path,
) -> AsyncIterator[AssistantServer]:
    """
    gk with HTTP and MX listeners on 127.0.0.1:0, alice, bob and carol,
    its assistant talking to the scripted C{ollama}.
    """
    from twisted.internet import reactor

    config_file = write_config(
        '[delivery]\nworker = false\n[assistant]\ntimezone = "Europe/Paris"\n',
        database_url=database_url,
    )
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mail.example.test")
    environ = {
        "GK_TLS__CERT": str(cert),
        "GK_TLS__KEY": str(key),
        "GK_HTTP__PUBLIC_URL": PUBLIC_URL,
        "GK_SMTP__LISTEN": '["tcp:0:interface=127.0.0.1"]',
        "GK_DNS__NAMESERVERS": f'["{dns_server.address}"]',
        "GK_DNS__TIMEOUT": "2.0",
        "GK_ASSISTANT__OLLAMA_URL": ollama.url,
        "GK_ASSISTANT__TIMEOUT": "10",
    }
    config = load_config(config_file, environ=environ)
    app = GkApp.build(config, reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    server = AssistantServer(app, tree, {}, {}, http_port(tree), ollama)
    try:
        for email in (ALICE, BOB, CAROL):
            server.accounts[email] = await app.accounts.create_user(email, PASSWORD)
            server.tokens[email] = await app.accounts.create_token(email, "tests")
        yield server
    finally:
        await tree.stopService()
        app.db.dispose()
