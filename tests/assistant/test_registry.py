"""
The tool registry: gk offers exactly the tools the interface document
names, each described for MCP and Ollama; arguments are checked before a
handler runs; a call that needs consent never runs unapproved; a
handler's failure comes back as a tool error, never as an exception.
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted

from gk.assistant.tools import (
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
)
from gk.storage.accounts import Account
from tests.assistant.conftest import AssistantServer, dns_server, ollama

__all__ = ["dns_server", "ollama"]

#: The names of ../shared/docs/interface.md, in its order.
INTERFACE = [
    "list_emails", "search_emails", "read_email", "send_email", "reply_email", "move_email",
    "flag_email", "delete_email", "list_folders",
    "list_calendars", "list_events", "create_event", "update_event", "delete_event",
    "find_free_slots",
    "search_contacts", "create_contact", "update_contact",
    "list_rooms", "read_chat_history", "send_chat_message",
]  # fmt: skip

#: Tools with side effects on others or that lose data: they must ask.
MUST_ASK = {
    "send_email", "reply_email", "move_email", "delete_email", "create_event", "update_event",
    "delete_event", "send_chat_message",
}  # fmt: skip

ALICE = Account(1, "alice@example.test", False, None, datetime.datetime.now(datetime.UTC))
CONTEXT = ToolContext(ALICE, ZoneInfo("Europe/Paris"))


@pytest_twisted.ensureDeferred
async def test_gk_offers_exactly_the_interface_tools(gk_server: AssistantServer) -> None:
    tools = gk_server.tools

    assert sorted(tools.names()) == sorted(INTERFACE)
    for tool in tools:
        described = tool.to_mcp()
        assert described["description"] and described["inputSchema"]["type"] == "object"
        hints = described["annotations"]
        assert set(hints) >= {"readOnlyHint", "destructiveHint", "idempotentHint"}
        assert tool.to_ollama()["function"]["parameters"] == tool.input_schema
        if tool.name in MUST_ASK:
            assert tool.consent is not None and not tool.annotations.read_only, tool.name
        if tool.annotations.read_only:
            assert tool.consent is None, tool.name


def _tool(name: str, handler: Any, *, consent: Any = None, read_only: bool = True) -> Tool:
    return Tool(
        name=name,
        title=name,
        description=f"the {name} tool",
        input_schema={
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}},
            "required": ["n"],
            "additionalProperties": False,
        },
        handler=handler,
        annotations=ToolAnnotations(read_only=read_only, destructive=not read_only),
        consent=consent,
    )


async def _double(context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    return ToolResult({"twice": arguments["n"] * 2}, "doubled")


async def _broken(context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    raise KeyError("a bug")


async def _refuses(context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
    raise ToolError("n is not a message id; use list_emails")


@pytest_twisted.ensureDeferred
async def test_arguments_are_checked_and_errors_are_tool_errors() -> None:
    registry = ToolRegistry([_tool("double", _double), _tool("broken", _broken),
                             _tool("refuses", _refuses)])  # fmt: skip

    good = await registry.call(CONTEXT, "double", {"n": 21})
    wrong_type = await registry.call(CONTEXT, "double", {"n": "21"})
    extra = await registry.call(CONTEXT, "double", {"n": 1, "user": "bob@example.test"})
    missing = await registry.call(CONTEXT, "double", None)
    unknown = await registry.call(CONTEXT, "triple", {"n": 1})
    bug = await registry.call(CONTEXT, "broken", {"n": 1})
    refusal = await registry.call(CONTEXT, "refuses", {"n": 1})

    assert (good.is_error, good.content) == (False, {"twice": 42})
    assert good.to_mcp()["structuredContent"] == {"twice": 42}
    assert wrong_type.is_error and "n: '21' is not of type 'integer'" in wrong_type.text
    assert extra.is_error and "user" in extra.text
    assert missing.is_error and "'n' is a required property" in missing.text
    assert (
        unknown.is_error and "no tool named 'triple'" in unknown.text and "double" in unknown.text
    )
    assert bug.is_error and bug.text == "broken failed because of an internal error"
    assert "a bug" not in bug.text
    assert (refusal.is_error, refusal.text) == (True, "n is not a message id; use list_emails")
    assert refusal.to_mcp()["isError"] is True


@pytest_twisted.ensureDeferred
async def test_a_call_that_needs_consent_runs_only_once_approved() -> None:
    ran: list[int] = []

    async def act(context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        ran.append(arguments["n"])
        return ToolResult({}, "done")

    async def ask(context: ToolContext, arguments: dict[str, Any]) -> str | None:
        return None if arguments["n"] == 1 else f"do it {arguments['n']} times"

    registry = ToolRegistry([_tool("act", act, consent=ask, read_only=False)])

    harmless = await registry.prepare(CONTEXT, "act", {"n": 1})
    risky = await registry.prepare(CONTEXT, "act", {"n": 3})
    assert (harmless.needs_consent, risky.needs_consent) == (False, True)
    assert risky.summary == "do it 3 times"

    unapproved = await registry.run(risky)
    shortcut = await registry.call(CONTEXT, "act", {"n": 3})
    assert unapproved.is_error and "needs the user's confirmation" in unapproved.text
    assert shortcut.is_error
    assert ran == []

    await registry.run(harmless)
    risky.approve()
    await registry.run(risky)
    assert ran == [1, 3]


def test_a_registry_refuses_unsafe_or_duplicate_tools() -> None:
    registry = ToolRegistry([_tool("double", _double)])

    with pytest.raises(ValueError, match="added twice"):
        registry.add(_tool("double", _double))
    with pytest.raises(ValueError, match="must ask for consent"):
        registry.add(_tool("wipe", _double, read_only=False))

    async def ask(context: ToolContext, arguments: dict[str, Any]) -> str | None:
        return "?"

    with pytest.raises(ValueError, match="never needs consent"):
        registry.add(_tool("peek", _double, consent=ask, read_only=True))
