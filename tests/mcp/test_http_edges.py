"""
C{/mcp} at the edges of the protocol, in raw HTTP: malformed messages,
unknown methods, versions gk does not serve, headers that contradict the
body, sessions used by another account, ended or expired, and the
endpoint's limits.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from gk.security.authguard import AuthGuard
from gk.security.policy import SecurityPolicy
from gk.web.bearer import BearerAuthenticator
from tests.mcp.conftest import ALICE, BOB, HANDSHAKE, STATELESS, McpSite


def error_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert body["jsonrpc"] == "2.0" and "result" not in body, body
    error: dict[str, Any] = body["error"]
    error["id"] = body["id"]
    return error


@pytest_twisted.ensureDeferred
async def test_malformed_messages_get_json_rpc_errors(mcp_site: McpSite) -> None:
    not_json = await mcp_site.post(None, raw=b'{"jsonrpc": "2.0", "id": 1, "method":')
    assert not_json.status_code == 400
    assert error_of(not_json) == {"code": -32700, "message": "the body is not JSON", "id": None}

    batch = await mcp_site.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert batch.status_code == 400 and error_of(batch)["code"] == -32600

    old = await mcp_site.post({"jsonrpc": "1.0", "id": 1, "method": "ping"})
    assert old.status_code == 400 and error_of(old)["code"] == -32600

    null_id = await mcp_site.post({"jsonrpc": "2.0", "id": None, "method": "ping"})
    assert null_id.status_code == 400 and error_of(null_id)["code"] == -32600

    by_position = await mcp_site.post(
        {"jsonrpc": "2.0", "id": "a", "method": "initialize", "params": [1, 2]}
    )
    assert by_position.status_code == 400
    assert error_of(by_position) | {"message": ""} == {"code": -32602, "message": "", "id": "a"}

    html = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Content-Type": "text/html"}
    )
    assert html.status_code == 415


@pytest_twisted.ensureDeferred
async def test_unknown_methods_in_each_era(mcp_site: McpSite) -> None:
    # 2026-07-28: an unknown method is 404; ping no longer exists there.
    for method in ("prompts/list", "ping", "initialize"):
        answer = await mcp_site.stateless(method)
        assert answer.status_code == 404, method
        assert error_of(answer)["code"] == -32601

    # 2025-11-25: a JSON-RPC error in a 200 answer; ping is answered.
    session = await mcp_site.initialize()
    unknown = await mcp_site.in_session(session, "resources/list")
    assert unknown.status_code == 200 and error_of(unknown)["code"] == -32601
    assert error_of(unknown)["id"] == 7
    ping = await mcp_site.in_session(session, "ping")
    assert ping.json() == {"jsonrpc": "2.0", "id": 7, "result": {}}


@pytest_twisted.ensureDeferred
async def test_versions_gk_does_not_serve(mcp_site: McpSite) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2099-01-01",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    future = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}},
        headers={"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"},
    )
    assert future.status_code == 400
    error = error_of(future)
    assert error["code"] == -32022 and error["id"] == 3
    assert error["data"] == {
        "supported": ["2025-06-18", "2025-11-25", "2026-07-28"],
        "requested": "2099-01-01",
    }

    notification = await mcp_site.post(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
        headers={"MCP-Protocol-Version": "2099-01-01"},
    )
    assert notification.status_code == 400 and error_of(notification)["code"] == -32022
    served = await mcp_site.post(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
        headers={"MCP-Protocol-Version": STATELESS},
    )
    assert served.status_code == 202 and served.content == b""

    # The handshake answers versions it does not know with its newest one.
    for asked, answered in [
        ("2025-06-18", "2025-06-18"),
        ("2024-11-05", HANDSHAKE),
        (STATELESS, HANDSHAKE),
    ]:
        params = {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "x"}}
        answer = await mcp_site.post(
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
        )
        assert answer.json()["result"]["protocolVersion"] == answered
    bad = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
    )
    assert bad.status_code == 400 and error_of(bad)["code"] == -32602


@pytest_twisted.ensureDeferred
async def test_headers_must_agree_with_the_body(mcp_site: McpSite) -> None:
    listed = await mcp_site.stateless("tools/list")
    assert listed.status_code == 200

    # A handshake version in the header routes to the handshake era, which wants a session.
    handshake = await mcp_site.stateless("tools/list", headers={"MCP-Protocol-Version": HANDSHAKE})
    assert handshake.status_code == 400
    assert "MCP-Session-Id" in error_of(handshake)["message"]
    wrong_method = await mcp_site.stateless("tools/list", headers={"Mcp-Method": "tools/call"})
    assert wrong_method.status_code == 400 and error_of(wrong_method)["code"] == -32020

    call = {"name": "list_rooms", "arguments": {}}
    wrong_name = await mcp_site.stateless(
        "tools/call", call, headers={"Mcp-Name": "read_chat_history"}
    )
    assert wrong_name.status_code == 400 and error_of(wrong_name)["code"] == -32020
    encoded = "=?base64?" + base64.b64encode(b"list_rooms").decode() + "?="
    wrapped = await mcp_site.stateless("tools/call", call, headers={"Mcp-Name": encoded})
    assert wrapped.status_code == 200 and wrapped.json()["result"]["isError"] is False

    meta = {
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    twice = await mcp_site.http(
        "POST",
        mcp_site.url,
        json.dumps(listing).encode(),
        [
            ("Authorization", f"Bearer {mcp_site.token(ALICE)}"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", STATELESS),
            ("Mcp-Method", "tools/list"),
            ("Mcp-Method", "tools/list"),
        ],
    )
    assert twice.status_code == 400 and error_of(twice)["code"] == -32020

    no_header = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    )
    assert no_header.status_code == 400 and error_of(no_header)["code"] == -32020
    no_meta = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        headers={"MCP-Protocol-Version": STATELESS, "Mcp-Method": "tools/list"},
    )
    assert no_meta.status_code == 400 and error_of(no_meta)["code"] == -32602


@pytest_twisted.ensureDeferred
async def test_discover_says_what_gk_is(mcp_site: McpSite) -> None:
    answer = await mcp_site.stateless("server/discover")
    result = answer.json()["result"]
    assert result["supportedVersions"] == [STATELESS]
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "gk"


@pytest_twisted.ensureDeferred
async def test_a_session_belongs_to_its_account(mcp_site: McpSite) -> None:
    session = await mcp_site.initialize(ALICE)
    initialized = await mcp_site.post(
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": HANDSHAKE},
    )
    assert initialized.status_code == 202

    stolen = await mcp_site.in_session(session, "tools/list", email=BOB)
    assert stolen.status_code == 404 and error_of(stolen)["id"] == 7
    ended_by_bob = await mcp_site.http(
        "DELETE",
        mcp_site.url,
        headers={"Authorization": f"Bearer {mcp_site.token(BOB)}", "Mcp-Session-Id": session},
    )
    assert ended_by_bob.status_code == 404
    mine = await mcp_site.in_session(session, "tools/list")
    assert mine.status_code == 200
    assert len(mine.json()["result"]["tools"]) == mcp_site.resource.limits.page_size

    other_version = await mcp_site.in_session(
        session, "tools/list", headers={"MCP-Protocol-Version": "2025-06-18"}
    )
    assert other_version.status_code == 400
    no_session = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"MCP-Protocol-Version": HANDSHAKE},
    )
    assert no_session.status_code == 400

    ended = await mcp_site.http(
        "DELETE",
        mcp_site.url,
        headers={"Authorization": f"Bearer {mcp_site.token(ALICE)}", "Mcp-Session-Id": session},
    )
    assert ended.status_code == 204
    gone = await mcp_site.in_session(session, "tools/list")
    assert gone.status_code == 404


@pytest_twisted.ensureDeferred
async def test_sessions_are_bounded_and_expire(mcp_site: McpSite) -> None:
    bound = mcp_site.resource.limits.sessions_per_account
    bobs = await mcp_site.initialize(BOB)
    alices = [await mcp_site.initialize(ALICE) for _ in range(bound + 1)]
    # Alice's least recently used session made room for her newest; bob's is untouched.
    assert (await mcp_site.in_session(alices[0], "ping")).status_code == 404
    for session in alices[1:]:
        assert (await mcp_site.in_session(session, "ping")).status_code == 200
    assert (await mcp_site.in_session(bobs, "ping", email=BOB)).status_code == 200

    # Sessions left unused longer than the idle timeout are gone.
    mcp_site.resource.sessions.idle_timeout = 0.3
    await deferLater(reactor, 0.5)
    for session, email in [*((s, ALICE) for s in alices[1:]), (bobs, BOB)]:
        assert (await mcp_site.in_session(session, "ping", email=email)).status_code == 404


@pytest_twisted.ensureDeferred
async def test_http_methods_paths_and_sizes(mcp_site: McpSite) -> None:
    auth = {"Authorization": f"Bearer {mcp_site.token(ALICE)}"}
    get = await mcp_site.http("GET", mcp_site.url, headers={**auth, "Accept": "text/event-stream"})
    assert get.status_code == 405 and get.headers["allow"] == "POST, DELETE"
    elsewhere = await mcp_site.http("POST", mcp_site.url + "/tools", b"{}", headers=auth)
    assert elsewhere.status_code == 404

    limit = mcp_site.resource.limits.max_body
    big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * limit}}
    too_large = await mcp_site.post(big)
    assert too_large.status_code == 413 and error_of(too_large)["code"] == -32600

    html_only = await mcp_site.stateless("tools/list", headers={"Accept": "text/html"})
    assert html_only.status_code == 406
    # A client that takes only event streams gets the answer as one event.
    streamed = await mcp_site.stateless("tools/list", headers={"Accept": "text/event-stream"})
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "text/event-stream"
    [event] = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert '"tools":' in event and '"nextCursor":' in event


@pytest_twisted.ensureDeferred
async def test_guessing_tokens_gets_the_source_blocked(mcp_site: McpSite) -> None:
    # The guard gk runs, under a policy that blocks after three failures.
    app = mcp_site.server.app
    policy = SecurityPolicy(auth_delay_after=10, auth_block_after=3)
    guard = AuthGuard(reactor, policy, app.security.auth.events)
    mcp_site.resource.authenticator = BearerAuthenticator(app.accounts, guard, "mcp")

    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    statuses = []
    for n in range(4):
        answer = await mcp_site.post(
            ping, email=None, headers={"Authorization": f"Bearer guess{n}"}
        )
        statuses.append(answer.status_code)
    assert statuses == [401, 401, 401, 429]
    assert int(answer.headers["retry-after"]) == 900
    # The block is on the source: a good token from it waits too.
    assert (await mcp_site.post(ping)).status_code == 429
