"""
Calling tools in tests as the conversation loop does, through the
registry: one that must succeed (its content checked against the tool's
declared output schema, as MCP clients may check it), one that must be
refused, and the consent summary a call would show.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from tests.assistant.conftest import ALICE, AssistantServer


async def ok(
    server: AssistantServer, name: str, arguments: dict[str, Any], email: str = ALICE,
    *, approve: bool = False,
) -> Any:  # fmt: skip
    """Call a tool that must succeed; its structured content."""
    outcome = await server.call(name, arguments, email, approve=approve)
    assert not outcome.is_error, outcome.text
    tool = server.tools.get(name)
    assert tool is not None and tool.output_schema is not None
    Draft202012Validator(tool.output_schema).validate(outcome.content)
    return outcome.content


async def refused(
    server: AssistantServer, name: str, arguments: dict[str, Any], email: str = ALICE
) -> str:
    """Call a tool that must fail (at validation, consent or run): its error text."""
    outcome = await server.tools.call(server.context(email), name, arguments)
    assert outcome.is_error, outcome.content
    return outcome.text


async def consent_for(
    server: AssistantServer, name: str, arguments: dict[str, Any], email: str = ALICE
) -> str | None:
    """What the user would be asked to confirm for this call (None: nothing)."""
    return (await server.tools.prepare(server.context(email), name, arguments)).summary
