"""
The assistant's tools, in MCP's shape, and the one door through which
anything calls them.

A L{Tool} is a name, a description, a JSON Schema for its input (and its
structured output), MCP annotations and an async handler that calls gk's
service modules in process.  The handler gets a L{ToolContext} that holds
the calling account: a tool takes no argument that names a user, so it
can only ever act as the user whose session or token called it.

L{ToolRegistry.prepare} validates the arguments and says whether the
call needs the user's consent; L{ToolRegistry.run} refuses to run a call
that needs consent and has not been L{approved <PreparedCall.approve>}.
That rule lives here, in gk's code, so neither the model, nor an MCP
client, nor a bug in a caller can skip it.  Handlers raise L{ToolError}
for anything the model should read and act on (unknown message id,
invalid date); any other exception is logged and reported as an
internal error, never passed on.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from twisted.logger import Logger

from gk.storage.accounts import Account

JSON = dict[str, Any]


class ToolError(Exception):
    """
    A call that cannot be done as asked; the message tells the model (or
    the MCP client) what was wrong and, where it can, what to do instead.
    """


@dataclass(frozen=True)
class ToolAnnotations:
    """MCP tool annotations (hints to clients; gk enforces consent itself)."""

    read_only: bool
    destructive: bool = False
    idempotent: bool = False
    #: Reaches outside gk (mail to other servers, invitations).
    open_world: bool = False

    def to_mcp(self) -> JSON:
        return {
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
            "openWorldHint": self.open_world,
        }


@dataclass(frozen=True)
class ToolContext:
    """Who calls, and when: everything a handler may know of its caller."""

    account: Account
    #: The user's time zone: "tomorrow" and naive times are read in it.
    timezone: ZoneInfo
    #: Returns the current time (aware, UTC); a clock, so tests can set it.
    clock: Callable[[], datetime.datetime] = field(
        default=lambda: datetime.datetime.now(datetime.UTC)
    )

    def now(self) -> datetime.datetime:
        """The current time in the user's time zone."""
        return self.clock().astimezone(self.timezone)


@dataclass(frozen=True)
class ToolResult:
    """What a successful call returns: structured content and a short text."""

    content: JSON
    text: str


#: A handler: the caller's context and the validated arguments.
Handler = Callable[[ToolContext, JSON], Awaitable[ToolResult]]
#: For a tool that may need consent: the one-line summary of the exact
#: action shown to the user, or None when these arguments need none (an
#: event without attendees).  Raises L{ToolError} for arguments it cannot
#: describe.
Consent = Callable[[ToolContext, JSON], Awaitable[str | None]]


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: JSON
    handler: Handler
    annotations: ToolAnnotations
    output_schema: JSON | None = None
    #: None: the tool never needs consent (read-only tools).
    consent: Consent | None = None

    def to_mcp(self) -> JSON:
        """The tool as MCP's C{tools/list} describes it."""
        described: JSON = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": {"title": self.title, **self.annotations.to_mcp()},
        }
        if self.output_schema is not None:
            described["outputSchema"] = self.output_schema
        return described

    def to_ollama(self) -> JSON:
        """The tool as Ollama's C{/api/chat} C{tools} list describes it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema,
            },
        }


@dataclass(frozen=True)
class ToolOutcome:
    """How one call ended: structured content or an error, plus its text."""

    name: str
    is_error: bool
    text: str
    content: JSON | None = None

    def to_mcp(self) -> JSON:
        """A C{tools/call} result."""
        result: JSON = {
            "content": [{"type": "text", "text": self.text}],
            "isError": self.is_error,
        }
        if self.content is not None:
            result["structuredContent"] = self.content
        return result


class PreparedCall:
    """
    A validated call, not yet run.  C{summary} is None when no consent is
    needed; otherwise the call runs only after L{approve}.
    """

    def __init__(
        self, tool: Tool, context: ToolContext, arguments: JSON, summary: str | None
    ) -> None:
        self.tool = tool
        self.context = context
        self.arguments = arguments
        self.summary = summary
        self._approved = False

    @property
    def needs_consent(self) -> bool:
        return self.summary is not None

    @property
    def approved(self) -> bool:
        return self._approved

    def approve(self) -> None:
        """The user confirmed this exact action (these arguments)."""
        self._approved = True


class ToolRegistry:
    """The tools by name, in the order they were added."""

    log = Logger()

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} added twice")
        Draft202012Validator.check_schema(tool.input_schema)
        if tool.annotations.read_only and tool.consent is not None:
            raise ValueError(f"tool {tool.name!r}: a read-only tool never needs consent")
        if (tool.annotations.destructive or tool.annotations.open_world) and tool.consent is None:
            raise ValueError(f"tool {tool.name!r}: a destructive tool must ask for consent")
        self._tools[tool.name] = tool
        self._validators[tool.name] = Draft202012Validator(tool.input_schema)

    def extend(self, tools: Iterable[Tool]) -> None:
        for tool in tools:
            self.add(tool)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    async def prepare(self, context: ToolContext, name: str, arguments: Any) -> PreparedCall:
        """
        Check that C{name} exists and C{arguments} fit its schema, and find
        whether running it needs consent.

        @raise ToolError: unknown tool, or arguments that do not fit (the
            message names the argument and the problem).
        """
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools)
            raise ToolError(f"there is no tool named {name!r}; the tools are: {known}")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ToolError("the arguments must be a JSON object")
        error = _first_error(self._validators[name], arguments)
        if error is not None:
            raise ToolError(f"invalid arguments for {name}: {error}")
        summary = None if tool.consent is None else await tool.consent(context, arguments)
        return PreparedCall(tool, context, arguments, summary)

    async def run(self, call: PreparedCall) -> ToolOutcome:
        """
        Run a prepared call; never raises.

        A call that needs consent and was not approved is not run: the
        outcome is an error saying so.
        """
        name = call.tool.name
        if call.needs_consent and not call.approved:
            return ToolOutcome(
                name,
                True,
                f"{name} was not run: it needs the user's confirmation of: {call.summary}",
            )
        try:
            result = await call.tool.handler(call.context, call.arguments)
        except ToolError as e:
            return ToolOutcome(name, True, str(e))
        except Exception:
            self.log.failure("tool {name} failed", name=name)
            return ToolOutcome(name, True, f"{name} failed because of an internal error")
        return ToolOutcome(name, False, result.text, result.content)

    async def call(self, context: ToolContext, name: str, arguments: Any) -> ToolOutcome:
        """Prepare and run a call that must not need consent (read tools)."""
        try:
            prepared = await self.prepare(context, name, arguments)
        except ToolError as e:
            return ToolOutcome(name, True, str(e))
        return await self.run(prepared)


def _first_error(validator: Draft202012Validator, arguments: Mapping[str, Any]) -> str | None:
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return None
    return _describe(errors[0])


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def render(content: Any) -> str:
    """Compact JSON for a tool's text rendering of structured content."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str)
