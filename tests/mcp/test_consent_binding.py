"""
A confirmation approves one call, for one user, once — in raw HTTP, as
a client that tries its luck would send it.

2026-07-28: the C{requestState} of an C{input_required} answer is the id
of a confirmation gk keeps; a "yes" without it, with another user's
token, for other arguments or a second time approves nothing.
2025-11-25: the question travels on the call's own event stream and
only the session that was asked can answer it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from tests.mcp.conftest import ACCEPT_BOTH, ALICE, BOB, HANDSHAKE, McpSite, aio

ELICITATION: dict[str, Any] = {"elicitation": {"form": {}}}
YES: dict[str, Any] = {"action": "accept", "content": {"confirm": True}}


async def room_with_bob(site: McpSite) -> int:
    alice = site.server.accounts[ALICE]
    return (await site.server.app.chat.create_room(alice, "general", "private", [BOB])).id


async def posted(site: McpSite, room_id: int) -> list[str]:
    page = await site.server.app.chat.history(site.server.accounts[BOB], room_id)
    return [m.text for m in page.messages]


def result_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


@pytest_twisted.ensureDeferred
async def test_a_stateless_confirmation_approves_one_call_once(mcp_site: McpSite) -> None:
    room_id = await room_with_bob(mcp_site)
    hello = {"room": room_id, "text": "hello"}

    def call(
        arguments: dict[str, Any], email: str = ALICE, **more: Any
    ) -> Deferred[httpx.Response]:
        params = {"name": "send_chat_message", "arguments": arguments, **more}
        return mcp_site.stateless("tools/call", params, email, capabilities=ELICITATION)

    asked = result_of(await call(hello))
    assert asked["resultType"] == "input_required"
    question = asked["inputRequests"]["confirm"]
    assert question["method"] == "elicitation/create"
    assert question["params"]["mode"] == "form"
    assert question["params"]["message"] == "Post in #general: “hello”"
    state = asked["requestState"]

    # A "yes" gk did not ask for is not read: the user is asked anew.
    forged = result_of(await call(hello, inputResponses={"confirm": YES}))
    assert forged["resultType"] == "input_required" and forged["requestState"] != state
    # Bob, who is in the room too, cannot use alice's confirmation.
    bobs = await call(hello, BOB, inputResponses={"confirm": YES}, requestState=state)
    assert bobs.status_code == 400 and bobs.json()["error"]["code"] == -32602
    # Other words under alice's confirmation: refused, and the confirmation is spent.
    other = await call(
        {"room": room_id, "text": "we are all fired"},
        inputResponses={"confirm": YES},
        requestState=state,
    )
    assert other.status_code == 400 and "requestState" in other.json()["error"]["message"]
    spent = await call(hello, inputResponses={"confirm": YES}, requestState=state)
    assert spent.status_code == 400
    assert await posted(mcp_site, room_id) == []

    state = result_of(await call(hello))["requestState"]
    # A retry without an answer is asked again, under the same confirmation.
    unanswered = result_of(await call(hello, requestState=state))
    assert unanswered["resultType"] == "input_required"
    assert unanswered["requestState"] == state
    # The same arguments in another key order are the same call.
    reordered = {"text": "hello", "room": room_id}
    done = result_of(await call(reordered, inputResponses={"confirm": YES}, requestState=state))
    assert done["resultType"] == "complete" and done["isError"] is False
    assert done["structuredContent"]["message"]["text"] == "hello"
    replay = await call(hello, inputResponses={"confirm": YES}, requestState=state)
    assert replay.status_code == 400
    assert await posted(mcp_site, room_id) == ["hello"]


@pytest_twisted.ensureDeferred
async def test_pending_confirmations_are_bounded_per_account(mcp_site: McpSite) -> None:
    room_id = await room_with_bob(mcp_site)
    bound = mcp_site.resource.limits.pending_per_account

    def ask(text: str) -> Deferred[httpx.Response]:
        params = {"name": "send_chat_message", "arguments": {"room": room_id, "text": text}}
        return mcp_site.stateless("tools/call", params, capabilities=ELICITATION)

    states = [result_of(await ask(f"m{n}"))["requestState"] for n in range(bound + 1)]
    for n, state in enumerate(states):
        params = {
            "name": "send_chat_message",
            "arguments": {"room": room_id, "text": f"m{n}"},
            "requestState": state,
            "inputResponses": {"confirm": YES},
        }
        answer = await mcp_site.stateless("tools/call", params, capabilities=ELICITATION)
        # The oldest made room for the newest.
        assert answer.status_code == (400 if n == 0 else 200)
    assert sorted(await posted(mcp_site, room_id)) == [f"m{n}" for n in range(1, bound + 1)]


async def events(stream: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an SSE answer, as they come."""
    data: list[str] = []
    async for line in stream.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield json.loads("".join(data))
            data = []


def session_headers(site: McpSite, email: str, session: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {site.token(email)}",
        "Mcp-Session-Id": session,
        "MCP-Protocol-Version": HANDSHAKE,
        "Accept": ACCEPT_BOTH,
    }


@pytest_twisted.ensureDeferred
async def test_only_the_asked_session_can_answer_the_question(mcp_site: McpSite) -> None:
    room_id = await room_with_bob(mcp_site)
    alices = await mcp_site.initialize(ALICE, ELICITATION)
    bobs = await mcp_site.initialize(BOB, ELICITATION)
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "send_chat_message", "arguments": {"room": room_id, "text": "hi"}},
    }

    async def scenario() -> tuple[list[int], dict[str, Any]]:
        statuses = []
        async with httpx.AsyncClient(timeout=10.0) as http:
            headers = session_headers(mcp_site, ALICE, alices)
            async with http.stream("POST", mcp_site.url, json=call, headers=headers) as stream:
                assert stream.headers["content-type"] == "text/event-stream"
                messages = events(stream)
                question = await anext(messages)
                assert question["method"] == "elicitation/create"
                assert question["params"]["message"] == "Post in #general: “hi”"
                answer = {"jsonrpc": "2.0", "id": question["id"], "result": YES}
                for email, session in [(BOB, bobs), (BOB, alices), (ALICE, alices)]:
                    if email == ALICE:
                        answer["result"] = {"action": "decline"}
                    reply = await http.post(
                        mcp_site.url, json=answer, headers=session_headers(mcp_site, email, session)
                    )
                    statuses.append(reply.status_code)
                final = await anext(messages)
        return statuses, final

    statuses, final = await aio(scenario())
    # Bob's own session awaits no answer; alice's is not his; alice's "no" is taken.
    assert statuses == [400, 404, 202]
    assert final["id"] == 7 and final["result"]["isError"] is True
    assert final["result"]["content"][0]["text"].startswith("the user declined: Post in #general")
    assert await posted(mcp_site, room_id) == []


@pytest_twisted.ensureDeferred
async def test_a_cancelled_call_is_never_run(mcp_site: McpSite) -> None:
    room_id = await room_with_bob(mcp_site)
    session = await mcp_site.initialize(ALICE, ELICITATION)
    headers = session_headers(mcp_site, ALICE, session)
    call = {
        "jsonrpc": "2.0",
        "id": "call-1",
        "method": "tools/call",
        "params": {"name": "send_chat_message", "arguments": {"room": room_id, "text": "hi"}},
    }

    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with httpx.AsyncClient(timeout=10.0) as http:
            async with http.stream("POST", mcp_site.url, json=call, headers=headers) as stream:
                messages = events(stream)
                question = await anext(messages)
                cancel = {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": "call-1", "reason": "the user closed the window"},
                }
                assert (
                    await http.post(mcp_site.url, json=cancel, headers=headers)
                ).status_code == 202
                rest = [m async for m in messages]
            late = {"jsonrpc": "2.0", "id": question["id"], "result": YES}
            return rest, (await http.post(mcp_site.url, json=late, headers=headers)).status_code

    rest, late = await aio(scenario())
    # The stream ends without an answer; a "yes" after that approves nothing.
    assert rest == [] and late == 400
    assert await posted(mcp_site, room_id) == []


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_while_asked_approves_nothing(mcp_site: McpSite) -> None:
    room_id = await room_with_bob(mcp_site)
    session = await mcp_site.initialize(ALICE, ELICITATION)
    headers = session_headers(mcp_site, ALICE, session)
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "send_chat_message", "arguments": {"room": room_id, "text": "hi"}},
    }

    async def ask_then_leave() -> dict[str, Any]:
        async with (
            httpx.AsyncClient(timeout=10.0) as http,
            http.stream("POST", mcp_site.url, json=call, headers=headers) as stream,
        ):
            return await anext(events(stream))

    question = await aio(ask_then_leave())
    # The server sees the connection close and stops waiting for the answer.
    waiting = mcp_site.resource.sessions.get(session, mcp_site.server.accounts[ALICE].id)
    assert waiting is not None
    for _ in range(100):
        if not waiting.busy:
            break
        await deferLater(reactor, 0.05)
    assert not waiting.busy
    late = {"jsonrpc": "2.0", "id": question["id"], "result": YES}
    assert (await mcp_site.post(late, headers=headers)).status_code == 400
    assert await posted(mcp_site, room_id) == []


@pytest_twisted.ensureDeferred
async def test_a_call_that_cannot_hold_a_stream_is_not_asked(mcp_site: McpSite) -> None:
    room_id = await room_with_bob(mcp_site)
    session = await mcp_site.initialize(ALICE, ELICITATION)
    arguments = {"room": room_id, "text": "hi"}
    answer = await mcp_site.in_session(
        session,
        "tools/call",
        {"name": "send_chat_message", "arguments": arguments},
        headers={"Accept": "application/json"},
    )
    result = result_of(answer)
    assert result["isError"] is True
    assert (
        "did not accept one (send Accept: application/json, text/event-stream)"
        in (result["content"][0]["text"])
    )
    assert await posted(mcp_site, room_id) == []
