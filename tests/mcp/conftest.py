"""
The MCP endpoint under test, reached over real HTTP.

L{mcp_site} serves C{/mcp} and the RFC 9728 metadata on its own loopback
site, mounted as C{gk/web/site.py} mounts them, next to the running gk of
L{gk_server}: the same tools (gk's whole registry, acting on its real
mail store, calendars, contacts and chat), accounts, tokens and guard,
but small limits, so that pagination, expiry and bounds show within a
test.  (gk's own C{/mcp}, with the default limits, is at
C{gk_server.base_url + "/mcp"}.)

L{McpSite.client} opens the official C{mcp} SDK client (streamable HTTP)
as a user, in C{auto} mode (revision 2026-07-28) or C{legacy} mode
(2025-11-25, C{initialize}); L{McpSite.post} sends raw JSON-RPC for the
protocol's edges.  SDK coroutines run on the asyncio loop under the
reactor: bridge with L{aio}.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
import pytest_twisted
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort

from gk.mcp.metadata import ProtectedResourceMetadata
from gk.mcp.resource import McpLimits, McpResource, build_mcp_resource
from gk.web.bearer import BearerAuthenticator
from gk.web.site import GkSite, RootResource, WellKnown
from tests.assistant.conftest import (
    ALICE,
    BOB,
    CAROL,
    ORIGIN,
    PARIS,
    PUBLIC_URL,
    AssistantServer,
    gk_server,
    ollama,
)
from tests.dnsserver import dns_server
from tests.ws.conftest import aio

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "ORIGIN",
    "PUBLIC_URL",
    "aio",
    "dns_server",
    "gk_server",
    "ollama",
]

#: The test site's bounds: small, so expiry and eviction show quickly.
LIMITS = McpLimits(
    max_body=16 * 1024,
    page_size=10,
    sessions_per_account=3,
    pending_per_account=3,
    session_idle_timeout=30.0,
    confirmation_ttl=1.5,
    elicitation_timeout=1.5,
)
ACCEPT_BOTH = "application/json, text/event-stream"
STATELESS = "2026-07-28"
HANDSHAKE = "2025-11-25"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """
    SQLite only: these tests are about the MCP transport; the tools'
    storage runs on PostgreSQL too in tests/assistant and tests/storage.
    """
    return sqlite_url


@dataclass
class McpSite:
    server: AssistantServer
    resource: McpResource
    port: IListeningPort

    @property
    def root(self) -> str:
        address = self.port.getHost()
        assert isinstance(address, IPv4Address)
        return f"http://127.0.0.1:{address.port}"

    @property
    def url(self) -> str:
        return self.root + "/mcp"

    def token(self, email: str) -> str:
        return self.server.tokens[email]

    @asynccontextmanager
    async def client(
        self,
        email: str = ALICE,
        *,
        url: str | None = None,
        mode: str = "auto",
        elicitation: ElicitationFnT | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[Client]:
        """The SDK client, connected as C{email} (or with C{token}) to C{url} (the test site)."""
        sent = {"Authorization": f"Bearer {token or self.token(email)}", **(headers or {})}
        async with httpx2.AsyncClient(headers=sent, timeout=httpx2.Timeout(10.0)) as http:
            transport = streamable_http_client(url or self.url, http_client=http)
            async with Client(transport, mode=mode, elicitation_callback=elicitation) as client:
                yield client

    def post(
        self,
        message: Any,
        email: str | None = ALICE,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Deferred[httpx.Response]:
        """POST one raw message (or C{raw} bytes) as C{email} (None: no token)."""
        sent = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH, **(headers or {})}
        if email is not None:
            sent["Authorization"] = f"Bearer {self.token(email)}"
        body = raw if raw is not None else json.dumps(message).encode()
        return self.http("POST", self.url, body, sent)

    def http(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
    ) -> Deferred[httpx.Response]:
        """Any HTTP request (httpx runs on the asyncio loop under the reactor)."""

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(timeout=10.0) as http:
                return await http.request(method, url, content=body, headers=headers)

        return aio(send())

    def stateless(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        email: str = ALICE,
        *,
        capabilities: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Deferred[httpx.Response]:
        """A 2026-07-28 request, envelope and headers as a conforming client sends them."""
        meta = {
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": capabilities or {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        }
        body_params = {**(params or {}), "_meta": meta}
        sent = {"MCP-Protocol-Version": STATELESS, "Mcp-Method": method}
        if method == "tools/call" and "name" in body_params:
            sent["Mcp-Name"] = body_params["name"]
        message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": body_params}
        return self.post(message, email, headers={**sent, **(headers or {})})

    async def initialize(
        self, email: str = ALICE, capabilities: dict[str, Any] | None = None
    ) -> str:
        """Open a 2025-11-25 session by hand; its id."""
        params = {
            "protocolVersion": HANDSHAKE,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "raw", "version": "1"},
        }
        answer = await self.post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, email
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["protocolVersion"] == HANDSHAKE
        return str(answer.headers["mcp-session-id"])

    def in_session(
        self,
        session: str,
        method: str,
        params: dict[str, Any] | None = None,
        email: str = ALICE,
        *,
        headers: dict[str, str] | None = None,
    ) -> Deferred[httpx.Response]:
        """A request in a 2025-11-25 session."""
        message = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}}
        sent = {"Mcp-Session-Id": session, "MCP-Protocol-Version": HANDSHAKE, **(headers or {})}
        return self.post(message, email, headers=sent)


@pytest_twisted.async_yield_fixture
async def mcp_site(gk_server: AssistantServer) -> AsyncIterator[McpSite]:
    from twisted.internet import reactor

    app = gk_server.app
    authenticator = BearerAuthenticator(app.accounts, app.security.auth, "mcp")
    resource = build_mcp_resource(
        gk_server.tools, authenticator, PUBLIC_URL, PARIS, reactor, limits=LIMITS
    )
    assert isinstance(resource, McpResource)
    # Mounted as gk/web/site.py mounts them.
    root = RootResource()
    root.putChild(b"mcp", resource)
    well_known = WellKnown()
    well_known.putChild(b"oauth-protected-resource", ProtectedResourceMetadata(PUBLIC_URL))
    root.putChild(b".well-known", well_known)
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = await endpoint.listen(GkSite(root, app.metrics))
    try:
        yield McpSite(gk_server, resource, port)
    finally:
        resource.sessions.close_all()
        await maybeDeferred(port.stopListening)
