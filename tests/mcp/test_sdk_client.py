"""
The official C{mcp} SDK client against C{/mcp}, in both its modes:
C{auto} (it probes C{server/discover} and speaks revision 2026-07-28,
stateless, confirmations as C{input_required} results) and C{legacy}
(C{initialize}, a 2025-11-25 session, confirmations as
C{elicitation/create} requests over the call's event stream).

The tools are gk's own, acting on its real mail store and chat: what a
confirmed call does shows in bob's INBOX or in the room's history, read
back as bob.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
import pytest_twisted
from mcp import types
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import ALICE, BOB, PUBLIC_URL, McpSite, aio

MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])
VERSION = {"auto": "2026-07-28", "legacy": "2025-11-25"}
#: The tools of ../shared/docs/interface.md, in its order.
INTERFACE_TOOLS = [
    "list_emails", "search_emails", "read_email", "send_email", "reply_email", "move_email",
    "flag_email", "delete_email", "list_folders",
    "list_calendars", "list_events", "create_event", "update_event", "delete_event",
    "find_free_slots",
    "search_contacts", "create_contact", "update_contact",
    "list_rooms", "read_chat_history", "send_chat_message",
]  # fmt: skip
LUNCH = {"to": [BOB], "subject": "Friday lunch", "body": "Lunch at noon on Friday?"}


class User:
    """An elicitation callback that answers as told and remembers what it was asked."""

    def __init__(self, action: str, confirm: bool = True) -> None:
        self.action = action
        self.confirm = confirm
        self.asked: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        self.asked.append(params.message)
        assert isinstance(params, types.ElicitRequestFormParams)
        assert params.requested_schema["properties"]["confirm"]["type"] == "boolean"
        content = {"confirm": self.confirm} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


async def refusal(connecting: Coroutine[Any, Any, Any]) -> MCPError:
    """The MCPError a client raises while connecting (the SDK may wrap it in a group)."""
    try:
        await aio(connecting)
    except BaseException as e:
        error: BaseException = e
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        assert isinstance(error, MCPError), e
        return error
    raise AssertionError("the client connected")


async def general_room(site: McpSite) -> int:
    """A room #general with alice and bob in it; its id."""
    alice = site.server.accounts[ALICE]
    room = await site.server.app.chat.create_room(alice, "general", "private", [BOB])
    return room.id


async def bobs_view(site: McpSite, room_id: int) -> list[str]:
    """The texts of the room's messages, as bob reads them."""
    page = await site.server.app.chat.history(site.server.accounts[BOB], room_id)
    return [m.text for m in page.messages]


async def bobs_inbox(site: McpSite) -> list[str]:
    """The subjects in bob's INBOX."""
    found = await site.server.call("search_emails", {"folder": "INBOX"}, BOB)
    assert not found.is_error and found.content is not None, found.text
    return [item["subject"] for item in found.content["emails"]]


@MODES
@pytest_twisted.ensureDeferred
async def test_gk_serves_every_tool_at_mcp(mcp_site: McpSite, mode: str) -> None:
    """gk's own endpoint, as the service mounts it: all its tools in one page."""

    async def run() -> tuple[str, types.ListToolsResult, types.CallToolResult]:
        url = mcp_site.server.base_url + "/mcp"
        async with mcp_site.client(url=url, mode=mode) as client:
            return (
                client.protocol_version,
                await client.list_tools(),
                await client.call_tool("list_folders", {}),
            )

    version, listed, folders = await aio(run())
    assert version == VERSION[mode]
    assert listed.next_cursor is None
    assert sorted(t.name for t in listed.tools) == sorted(INTERFACE_TOOLS)
    assert not folders.is_error
    assert folders.structured_content is not None
    assert "INBOX" in {f["name"] for f in folders.structured_content["folders"]}


@MODES
@pytest_twisted.ensureDeferred
async def test_the_tools_are_listed_page_by_page(mcp_site: McpSite, mode: str) -> None:
    async def run() -> list[types.ListToolsResult]:
        async with mcp_site.client(mode=mode) as client:
            pages = [await client.list_tools()]
            while pages[-1].next_cursor is not None:
                pages.append(await client.list_tools(cursor=pages[-1].next_cursor))
            return pages

    pages = await aio(run())
    page_size = mcp_site.resource.limits.page_size
    assert [len(page.tools) for page in pages[:-1]] == [page_size] * (len(pages) - 1)
    listed = [t for page in pages for t in page.tools]
    assert [t.name for t in listed] == mcp_site.server.tools.names()
    by_name = {t.name: t for t in listed}
    reading = by_name["list_folders"].annotations
    assert reading is not None and reading.read_only_hint is True
    deleting = by_name["delete_email"].annotations
    assert deleting is not None and deleting.destructive_hint is True
    assert by_name["send_email"].input_schema["type"] == "object"


@MODES
@pytest_twisted.ensureDeferred
async def test_a_read_tool_answers_with_structured_content(mcp_site: McpSite, mode: str) -> None:
    room_id = await general_room(mcp_site)

    async def run() -> types.CallToolResult:
        async with mcp_site.client(mode=mode) as client:
            return await client.call_tool("list_rooms", {})

    result = await aio(run())
    assert not result.is_error
    assert result.structured_content is not None
    [room] = result.structured_content["rooms"]
    assert room | {"last_activity": None} == {
        "id": room_id, "name": "general", "kind": "private", "unread": 0, "last_activity": None,
    }  # fmt: skip
    [text] = result.content
    assert isinstance(text, types.TextContent) and "general" in text.text


@MODES
@pytest_twisted.ensureDeferred
async def test_a_confirmed_email_is_sent_once(mcp_site: McpSite, mode: str) -> None:
    user = User("accept")

    async def run() -> types.CallToolResult:
        async with mcp_site.client(mode=mode, elicitation=user) as client:
            return await client.call_tool("send_email", LUNCH)

    result = await aio(run())
    assert user.asked == [
        f"Send an email to {BOB}; subject 'Friday lunch'; body 'Lunch at noon on Friday?'"
    ]
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["delivered"] == [BOB]
    assert await bobs_inbox(mcp_site) == ["Friday lunch"]


@MODES
@pytest_twisted.ensureDeferred
async def test_a_declined_post_does_nothing(mcp_site: McpSite, mode: str) -> None:
    room_id = await general_room(mcp_site)
    refusals = [User("decline"), User("accept", confirm=False), User("cancel")]

    async def run(user: User) -> types.CallToolResult:
        async with mcp_site.client(mode=mode, elicitation=user) as client:
            return await client.call_tool(
                "send_chat_message", {"room": "general", "text": "everyone is fired"}
            )

    answers = []
    for user in refusals:
        result = await aio(run(user))
        assert user.asked == ["Post in #general: “everyone is fired”"]
        assert result.is_error
        [text] = result.content
        assert isinstance(text, types.TextContent)
        answers.append(text.text)
    assert answers == [
        f"{how}: Post in #general: “everyone is fired”. Nothing was done."
        for how in (
            "the user declined",
            "the user did not confirm",
            "the user dismissed the confirmation",
        )
    ]
    assert await bobs_view(mcp_site, room_id) == []


@MODES
@pytest_twisted.ensureDeferred
async def test_a_client_without_elicitation_is_told_why_nothing_happened(
    mcp_site: McpSite, mode: str
) -> None:
    async def run() -> types.CallToolResult:
        async with mcp_site.client(mode=mode) as client:
            return await client.call_tool("send_email", LUNCH)

    result = await aio(run())
    assert result.is_error
    [text] = result.content
    assert isinstance(text, types.TextContent)
    assert text.text.startswith(
        "send_email was not run: it needs the user's confirmation of: Send an email to "
    )
    assert "did not declare the elicitation capability" in text.text
    assert await bobs_inbox(mcp_site) == []


@MODES
@pytest_twisted.ensureDeferred
async def test_tool_errors_are_results_and_unknown_tools_are_protocol_errors(
    mcp_site: McpSite, mode: str
) -> None:
    async def run() -> tuple[types.CallToolResult, types.CallToolResult, MCPError]:
        async with mcp_site.client(mode=mode) as client:
            invalid = await client.call_tool("read_chat_history", {"room": 7, "limit": 0})
            missing = await client.call_tool("read_chat_history", {"room": 4242})
            with pytest.raises(MCPError) as unknown:
                await client.call_tool("format_disk", {})
            return invalid, missing, unknown.value

    invalid, missing, unknown = await aio(run())
    assert invalid.is_error and "limit" in str(invalid.content)
    assert missing.is_error and "there is no room 4242" in str(missing.content)
    assert missing.structured_content is None
    assert unknown.code == -32602 and "format_disk" in unknown.error.message


@MODES
@pytest_twisted.ensureDeferred
async def test_an_answer_too_late_does_nothing(mcp_site: McpSite, mode: str) -> None:
    """
    A 2025-11-25 call waits for the user only so long; a 2026-07-28
    confirmation expires: either way the late "yes" changes nothing.
    """
    room_id = await general_room(mcp_site)
    limits = mcp_site.resource.limits

    async def slow_yes(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        await asyncio.sleep(max(limits.elicitation_timeout, limits.confirmation_ttl) + 0.5)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async def run() -> types.CallToolResult | MCPError:
        async with mcp_site.client(mode=mode, elicitation=slow_yes) as client:
            try:
                return await client.call_tool(
                    "send_chat_message", {"room": room_id, "text": "late"}
                )
            except MCPError as e:
                return e

    outcome = await aio(run())
    if mode == "legacy":
        assert isinstance(outcome, types.CallToolResult) and outcome.is_error
        assert "nobody answered the confirmation in time" in str(outcome.content)
    else:
        assert isinstance(outcome, MCPError) and outcome.code == -32602
        assert "expired requestState" in outcome.error.message
    assert await bobs_view(mcp_site, room_id) == []


@MODES
@pytest_twisted.ensureDeferred
async def test_a_bad_token_is_refused_and_pointed_to_the_metadata(
    mcp_site: McpSite, mode: str
) -> None:
    async def run() -> None:
        async with mcp_site.client(mode=mode, token="not-a-token"):
            pass

    refused = await refusal(run())
    assert "Bearer TOKEN" in refused.error.message

    answer = await mcp_site.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, email=None)
    assert answer.status_code == 401
    metadata_url = PUBLIC_URL + ".well-known/oauth-protected-resource/mcp"
    assert answer.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}"'
    wrong = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        email=None,
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

    well_known = mcp_site.root + "/.well-known/oauth-protected-resource"
    document = await mcp_site.http("GET", well_known + "/mcp")
    bare = await mcp_site.http("GET", well_known)
    assert document.status_code == 200
    assert document.json() == {
        "resource": PUBLIC_URL + "mcp",
        "bearer_methods_supported": ["header"],
        "resource_name": "gk",
    }
    assert bare.json() == document.json()
    assert document.headers["access-control-allow-origin"] == "*"


@MODES
@pytest_twisted.ensureDeferred
async def test_a_foreign_origin_is_refused(mcp_site: McpSite, mode: str) -> None:
    async def run(origin: str) -> str:
        async with mcp_site.client(mode=mode, headers={"Origin": origin}) as client:
            return client.protocol_version

    refused = await refusal(run("http://evil.example"))
    assert "Origin" in refused.error.message
    # The public URL's own origin is welcome.
    assert await aio(run(PUBLIC_URL.rstrip("/"))) == VERSION[mode]
    answer = await mcp_site.post(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": "https://gk.evil"}
    )
    assert answer.status_code == 403
