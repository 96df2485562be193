"""
What gk answers to each MCP method, in both protocol eras, apart from
HTTP: C{initialize} and C{server/discover} (who gk is and what it
offers), C{ping}, C{tools/list} (paginated) and C{tools/call}.

A tool runs as the L{Caller}'s account only, through
L{ToolRegistry.prepare} and L{ToolRegistry.run}; a call that needs
consent runs only once the user approved it through the client
(L{gk.mcp.consent}).  Tool failures, invalid arguments and refusals are
tool results with C{isError} (the model reads them and can correct
itself); only protocol faults — an unknown method or tool, malformed
params, a bad C{requestState} — are L{RpcError}s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from twisted.logger import Logger

import gk
from gk.assistant.tools import PreparedCall, ToolContext, ToolError, ToolOutcome, ToolRegistry
from gk.mcp import consent
from gk.mcp.consent import ConfirmationRefused, PendingConfirmations
from gk.mcp.jsonrpc import (
    INVALID_PARAMS,
    JSON,
    METHOD_NOT_FOUND,
    Request,
    Response,
    RpcError,
)
from gk.mcp.protocol import (
    ELICITATION_MODES_SINCE,
    HANDSHAKE_VERSIONS,
    SERVER_INFO_KEY,
    STATELESS_VERSIONS,
    can_elicit_form,
    negotiate,
)
from gk.mcp.sessions import TooManyOutstanding
from gk.storage.accounts import Account

#: Tools per C{tools/list} page.
PAGE_SIZE = 50

SERVER_INFO: JSON = {"name": "gk", "title": "gk", "version": gk.__version__}
INSTRUCTIONS = (
    "gk holds the signed-in user's mail, calendars, contacts and chat. Every tool acts as "
    "that user only. Tools that send, reply, delete, move to Trash, invite or post ask the "
    "user to confirm the exact action before anything happens; a refusal comes back as a "
    "tool error."
)
CAPABILITIES: JSON = {"tools": {"listChanged": False}}

#: Sends a request to the client in the middle of a call and returns its answer.
#: Raises TimeoutError when the client does not answer in time.
Ask = Callable[[str, JSON], Awaitable[Response]]


@dataclass(frozen=True)
class Caller:
    """Who calls, in which protocol version, able to answer what."""

    account: Account
    version: str
    #: The client's capabilities: from C{initialize}, or this request's C{_meta}.
    capabilities: JSON
    #: Handshake era: how to ask the client mid-call, None when this call cannot.
    ask: Ask | None = None

    @property
    def stateless(self) -> bool:
        return self.version in STATELESS_VERSIONS


@dataclass(frozen=True)
class Handshake:
    """What C{initialize} settles: the version and the client's declarations."""

    version: str
    capabilities: JSON
    client_info: JSON | None
    result: JSON


class McpMethods:
    """The methods, over one tool registry, for any account."""

    log = Logger()

    def __init__(
        self,
        tools: ToolRegistry,
        timezone: ZoneInfo,
        confirmations: PendingConfirmations,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.tools = tools
        self.timezone = timezone
        self.confirmations = confirmations
        self.page_size = page_size

    def initialize(self, params: JSON) -> Handshake:
        """Negotiate a handshake version for C{initialize}'s params."""
        requested = params.get("protocolVersion")
        capabilities = params.get("capabilities")
        client_info = params.get("clientInfo")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "protocolVersion must be a string")
        if not isinstance(capabilities, dict):
            raise RpcError(INVALID_PARAMS, "capabilities must be an object")
        if client_info is not None and not isinstance(client_info, dict):
            raise RpcError(INVALID_PARAMS, "clientInfo must be an object")
        version = negotiate(requested)
        result = {
            "protocolVersion": version,
            "capabilities": CAPABILITIES,
            "serverInfo": SERVER_INFO,
            "instructions": INSTRUCTIONS,
        }
        return Handshake(version, capabilities, client_info, result)

    async def handle(self, caller: Caller, request: Request) -> JSON:
        """
        The result of C{request} (any method but C{initialize}).

        @raise RpcError: unknown method, or params that do not fit it.
        """
        method = request.method
        if caller.stateless:
            if method == "server/discover":
                return self._discover()
            if method == "tools/list":
                return {
                    **self._list(request.params),
                    "ttlMs": 0,
                    "cacheScope": "private",
                    "resultType": "complete",
                }
            if method == "tools/call":
                return await self._call_stateless(caller, request.params)
        else:
            if method == "ping":
                return {}
            if method == "tools/list":
                return self._list(request.params)
            if method == "tools/call":
                return await self._call_handshake(caller, request.params)
        raise RpcError(METHOD_NOT_FOUND, f"method {method!r} is not served", method)

    def _discover(self) -> JSON:
        return {
            "supportedVersions": list(STATELESS_VERSIONS),
            "capabilities": CAPABILITIES,
            "instructions": INSTRUCTIONS,
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "public",
            "_meta": {SERVER_INFO_KEY: SERVER_INFO},
        }

    def _list(self, params: JSON) -> JSON:
        tools = list(self.tools)
        start = 0
        cursor = params.get("cursor")
        if cursor is not None:
            start = self._read_cursor(cursor, len(tools))
        page = tools[start : start + self.page_size]
        listed: JSON = {"tools": [t.to_mcp() for t in page]}
        if start + self.page_size < len(tools):
            listed["nextCursor"] = self._cursor(start + self.page_size)
        return listed

    def _fingerprint(self) -> str:
        # A cursor names a position in one listing: a changed set of tools voids it.
        names = "\0".join(self.tools.names()).encode("utf-8")
        return hashlib.sha256(names).hexdigest()[:12]

    def _cursor(self, offset: int) -> str:
        return f"{offset}.{self._fingerprint()}"

    def _read_cursor(self, cursor: Any, count: int) -> int:
        if isinstance(cursor, str):
            offset, _, fingerprint = cursor.partition(".")
            if offset.isdigit() and fingerprint == self._fingerprint() and int(offset) < count:
                return int(offset)
        raise RpcError(INVALID_PARAMS, "invalid or outdated cursor: list the tools from the start")

    async def _prepare(self, caller: Caller, params: JSON) -> PreparedCall | ToolOutcome:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "params.name must be the tool's name")
        if self.tools.get(name) is None:
            raise RpcError(INVALID_PARAMS, f"unknown tool {name!r}", {"name": name})
        context = ToolContext(caller.account, self.timezone)
        try:
            return await self.tools.prepare(context, name, params.get("arguments"))
        except ToolError as e:
            return ToolOutcome(name, True, str(e))

    async def _call_handshake(self, caller: Caller, params: JSON) -> JSON:
        prepared = await self._prepare(caller, params)
        if isinstance(prepared, ToolOutcome):
            return prepared.to_mcp()
        if prepared.needs_consent:
            refusal = await self._ask_handshake(caller, prepared)
            if refusal is not None:
                return refusal.to_mcp()
        return (await self.tools.run(prepared)).to_mcp()

    async def _ask_handshake(self, caller: Caller, prepared: PreparedCall) -> ToolOutcome | None:
        """Ask over the call's stream: None once approved, else the outcome to answer."""
        summary = str(prepared.summary)
        if not can_elicit_form(caller.capabilities):
            return _not_run(prepared, _NO_ELICITATION)
        if caller.ask is None:
            return _not_run(prepared, _NO_STREAM)
        with_mode = HANDSHAKE_VERSIONS.index(caller.version) >= HANDSHAKE_VERSIONS.index(
            ELICITATION_MODES_SINCE
        )
        try:
            answer = await caller.ask("elicitation/create", consent.question(summary, with_mode))
        except TimeoutError:
            return _not_run(prepared, "nobody answered the confirmation in time")
        except TooManyOutstanding:
            return _not_run(prepared, "too many confirmations already wait for an answer")
        if answer.error is not None:
            message = answer.error.get("message")
            return _not_run(prepared, f"the client could not ask for confirmation ({message})")
        if not consent.read_answer(answer.result):
            return _declined(prepared, answer.result)
        prepared.approve()
        return None

    async def _call_stateless(self, caller: Caller, params: JSON) -> JSON:
        prepared = await self._prepare(caller, params)
        if isinstance(prepared, ToolOutcome):
            return _complete(prepared.to_mcp())
        if prepared.needs_consent:
            state = params.get("requestState")
            account_id = caller.account.id
            if state is None:
                if not can_elicit_form(caller.capabilities):
                    return _complete(_not_run(prepared, _NO_ELICITATION).to_mcp())
                pending = self.confirmations.issue(
                    account_id, prepared.tool.name, prepared.arguments, str(prepared.summary)
                )
                return _input_required(pending.id, pending.summary)
            try:
                pending = self.confirmations.find(
                    state, account_id, prepared.tool.name, prepared.arguments
                )
            except ConfirmationRefused:
                raise RpcError(
                    INVALID_PARAMS,
                    "invalid or expired requestState: call the tool "
                    "again without it to be asked anew",
                    {"reason": "invalid_request_state"},
                ) from None
            responses = params.get("inputResponses")
            answer = responses.get(consent.INPUT_KEY) if isinstance(responses, dict) else None
            if answer is None:
                return _input_required(pending.id, pending.summary)
            self.confirmations.discard(pending)
            if not consent.read_answer(answer):
                return _complete(_declined(prepared, answer).to_mcp())
            prepared.approve()
        return _complete((await self.tools.run(prepared)).to_mcp())


_NO_ELICITATION = (
    "this MCP client did not declare the elicitation capability, so gk cannot ask the user; "
    "use a client that supports elicitation (form mode), or gk's own assistant"
)
_NO_STREAM = (
    "gk asks over an event stream and this request did not accept one "
    "(send Accept: application/json, text/event-stream)"
)


def _not_run(prepared: PreparedCall, why: str) -> ToolOutcome:
    name = prepared.tool.name
    return ToolOutcome(
        name,
        True,
        f"{name} was not run: it needs the user's confirmation of: {prepared.summary}. "
        f"But {why}. Nothing was done.",
    )


def _declined(prepared: PreparedCall, answer: Any) -> ToolOutcome:
    how = consent.describe_refusal(answer)
    return ToolOutcome(prepared.tool.name, True, f"{how}: {prepared.summary}. Nothing was done.")


def _complete(result: JSON) -> JSON:
    return {**result, "resultType": "complete"}


def _input_required(state: str, summary: str) -> JSON:
    return {
        "resultType": "input_required",
        "inputRequests": {
            consent.INPUT_KEY: {
                "method": "elicitation/create",
                "params": consent.question(summary),
            }
        },
        "requestState": state,
    }
