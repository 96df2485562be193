"""
C{/mcp}: gk's tools over MCP's Streamable HTTP transport, one endpoint
for both protocol eras (L{gk.mcp.protocol}).

Every request, in this order: an C{Origin} other than C{[http]
public_url}'s is refused 403 (browsers send it; other clients need not);
a missing or wrong bearer token (C{gk token create}) gets 401 with a
C{WWW-Authenticate} that points to the RFC 9728 metadata
(L{gk.mcp.metadata}), a source the guard blocks 429; then

 - POST carries one JSON-RPC message (at most C{max_body} bytes, else
   413), routed by L{era_of}: handshake-era requests need the session
   C{initialize} opened (400 without its id, 404 for one that ended,
   expired or belongs to another account); stateless requests are
   checked by L{read_envelope}.  Requests are answered with JSON, or over
   an event stream when the call must ask the user first (handshake era)
   or the client accepts only C{text/event-stream}; notifications and
   answers to gk's questions get 202.
 - DELETE ends the session named by C{MCP-Session-Id} (204).
 - GET (a stream of server-initiated messages) is not offered: 405.

Protocol faults are JSON-RPC errors: stateless-era ones with the HTTP
status the 2026-07-28 revision assigns (400, or 404 for an unknown
method), handshake-era method errors with 200, transport faults (bad
JSON, missing session) with 4xx in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from gk.assistant.tools import ToolRegistry
from gk.mcp import jsonrpc
from gk.mcp.consent import CONFIRMATION_TTL, PENDING_PER_ACCOUNT, PendingConfirmations
from gk.mcp.exchange import KEEPALIVE, Exchange
from gk.mcp.jsonrpc import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    JSON,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    Notification,
    Response,
    RpcError,
)
from gk.mcp.metadata import metadata_url
from gk.mcp.methods import PAGE_SIZE, Ask, Caller, McpMethods
from gk.mcp.protocol import (
    ROUTING_HEADERS,
    SESSION_HEADER,
    STATELESS_VERSIONS,
    VERSION_HEADER,
    Headers,
    accepted_media,
    era_of,
    read_envelope,
    unsupported_version,
)
from gk.mcp.sessions import IDLE_TIMEOUT, SESSIONS_PER_ACCOUNT, Session, SessionStore
from gk.storage.accounts import Account
from gk.web.bearer import BearerAuthenticator, Blocked
from gk.ws.connection import origin_of

#: The largest POST body kept, in bytes.
MAX_BODY = 1024 * 1024

#: HTTP status of a stateless-era JSON-RPC error (others: 200), as 2026-07-28 assigns them.
STATELESS_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}


@dataclass(frozen=True)
class McpLimits:
    """The endpoint's bounds; the defaults suit a server, tests shrink them."""

    max_body: int = MAX_BODY
    page_size: int = PAGE_SIZE
    sessions_per_account: int = SESSIONS_PER_ACCOUNT
    session_idle_timeout: float = IDLE_TIMEOUT
    pending_per_account: int = PENDING_PER_ACCOUNT
    confirmation_ttl: float = CONFIRMATION_TTL
    #: How long a handshake-era call waits for the user's answer, in seconds.
    elicitation_timeout: float = 600.0
    keepalive: float = KEEPALIVE


class HttpError(Exception):
    """A transport-level refusal: a status, a JSON-RPC error body, extra headers."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        headers: dict[str, str] | None = None,
        request_id: jsonrpc.RequestId | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = jsonrpc.error(request_id, code, message, data)
        self.headers = headers or {}


def build_mcp_resource(
    tools: ToolRegistry,
    authenticator: BearerAuthenticator,
    public_url: str,
    timezone: ZoneInfo,
    reactor: Any,
    *,
    limits: McpLimits | None = None,
) -> IResource:
    """The C{/mcp} resource serving C{tools}, tool calls in C{timezone}."""
    return McpResource(tools, authenticator, public_url, timezone, reactor, limits or McpLimits())


class McpResource(Resource):
    """See the module docstring."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        tools: ToolRegistry,
        authenticator: BearerAuthenticator,
        public_url: str,
        timezone: ZoneInfo,
        reactor: IReactorTime,
        limits: McpLimits,
    ) -> None:
        super().__init__()
        self.authenticator = authenticator
        self.origin = origin_of(public_url)
        self.metadata_url = metadata_url(public_url)
        self.reactor = reactor
        self.limits = limits
        self.sessions = SessionStore(
            reactor.seconds, limits.session_idle_timeout, limits.sessions_per_account
        )
        confirmations = PendingConfirmations(
            reactor.seconds, limits.confirmation_ttl, limits.pending_per_account
        )
        self.methods = McpMethods(tools, timezone, confirmations, limits.page_size)

    def render(self, request: Request) -> int:
        exchange = Exchange(request, self.reactor, self.limits.keepalive)
        d = Deferred.fromCoroutine(self._serve(exchange))
        d.addErrback(self._failed, exchange)
        return NOT_DONE_YET

    def _failed(self, failure: Failure, exchange: Exchange) -> None:
        request = exchange.request
        self.log.failure("MCP {method} failed", failure, method=request.method)
        exchange.reply(500, jsonrpc.error(None, INTERNAL_ERROR, "something went wrong"))

    async def _serve(self, exchange: Exchange) -> None:
        try:
            await self._route(exchange)
        except HttpError as e:
            exchange.reply(e.status, e.body, e.headers)

    async def _route(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.postpath not in ([], [b""]):
            raise HttpError(404, INVALID_REQUEST, "the MCP endpoint is /mcp")
        origin = request.getHeader(b"origin")
        if origin is not None and origin_of(origin.decode("latin-1")) != self.origin:
            raise HttpError(403, INVALID_REQUEST, "this Origin may not use the MCP endpoint")
        account = await self._authenticate(request)
        method = request.method
        if method == b"POST":
            await self._post(exchange, account)
        elif method == b"DELETE":
            self._delete(exchange, account)
        else:
            raise HttpError(
                405,
                INVALID_REQUEST,
                "use POST (or DELETE to end a session); gk offers no server-initiated stream",
                {"Allow": "POST, DELETE"},
            )

    async def _authenticate(self, request: Request) -> Account:
        header = request.getHeader(b"authorization")
        authorization = header.decode("latin-1") if header is not None else None
        client = request.getClientAddress()
        try:
            account = await self.authenticator.authenticate(
                authorization, str(getattr(client, "host", ""))
            )
        except Blocked as e:
            raise HttpError(
                429,
                INVALID_REQUEST,
                "too many failed attempts; try again later",
                {"Retry-After": str(max(1, round(e.retry_after)))},
            ) from None
        if account is None:
            challenge = f'Bearer resource_metadata="{self.metadata_url}"'
            if authorization is not None:
                challenge += ', error="invalid_token"'
            raise HttpError(
                401,
                INVALID_REQUEST,
                "send Authorization: Bearer TOKEN, a token from `gk token create`",
                {"WWW-Authenticate": challenge},
            )
        return account

    def _delete(self, exchange: Exchange, account: Account) -> None:
        session_id = _headers(exchange.request).get(SESSION_HEADER)
        if not session_id:
            raise HttpError(400, INVALID_REQUEST, "name the session to end in MCP-Session-Id")
        if not self.sessions.close(session_id[0], account.id):
            raise HttpError(404, INVALID_REQUEST, "no such session")
        exchange.reply(204)

    async def _post(self, exchange: Exchange, account: Account) -> None:
        request = exchange.request
        if getattr(request, "body_too_large", False):
            raise _too_large(self.limits.max_body)
        body = request.content.read(self.limits.max_body + 1) if request.content else b""
        if len(body) > self.limits.max_body:
            raise _too_large(self.limits.max_body)
        media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if media not in (b"application/json", b""):
            raise HttpError(415, INVALID_REQUEST, "send application/json")
        json_ok, sse_ok = accepted_media(_header(request, b"accept"))
        if not (json_ok or sse_ok):
            raise HttpError(406, INVALID_REQUEST, "accept application/json, text/event-stream")
        try:
            message = jsonrpc.parse_message(body)
        except RpcError as e:
            raise HttpError(400, e.code, e.message, request_id=e.request_id) from None
        headers = _headers(request)
        if era_of(message, headers) == "stateless":
            await self._stateless(exchange, account, message, headers, json_ok)
        else:
            await self._handshake(exchange, account, message, headers, json_ok, sse_ok)

    async def _stateless(
        self,
        exchange: Exchange,
        account: Account,
        message: jsonrpc.Message,
        headers: Headers,
        json_ok: bool,
    ) -> None:
        if isinstance(message, Notification):
            # 2026-07-28 defines no client notifications on HTTP: taken, and dropped.
            version = headers.get(VERSION_HEADER, [""])[0]
            if version not in STATELESS_VERSIONS:
                error = unsupported_version(version)
                raise HttpError(400, error.code, error.message, data=error.data)
            exchange.reply(202)
            return
        if isinstance(message, Response):
            raise HttpError(
                400,
                INVALID_REQUEST,
                "gk sends no requests in the 2026-07-28 revision: there is nothing to answer",
                request_id=message.id,
            )
        try:
            envelope = read_envelope(message, headers)
            caller = Caller(account, envelope.version, envelope.capabilities)
            answer = jsonrpc.result(message.id, await self.methods.handle(caller, message))
        except RpcError as e:
            exchange.reply(STATELESS_STATUS.get(e.code, 200), e.to_message(message.id))
            return
        if json_ok:
            exchange.reply(200, answer)
        else:
            exchange.reply_as_stream(answer)

    async def _handshake(
        self,
        exchange: Exchange,
        account: Account,
        message: jsonrpc.Message,
        headers: Headers,
        json_ok: bool,
        sse_ok: bool,
    ) -> None:
        if isinstance(message, jsonrpc.Request) and message.method == "initialize":
            self._initialize(exchange, account, message, json_ok)
            return
        session = self._session(account, headers, message)
        if isinstance(message, Notification):
            if message.method == "notifications/cancelled":
                call_id = message.params.get("requestId")
                if isinstance(call_id, str | int) and not isinstance(call_id, bool):
                    session.cancel_call(call_id)
            exchange.reply(202)
            return
        if isinstance(message, Response):
            if not session.deliver(message):
                raise HttpError(400, INVALID_REQUEST, "gk awaits no answer with this id")
            exchange.reply(202)
            return
        ask = self._asker(exchange, session, message.id) if sse_ok else None
        caller = Caller(account, session.version, session.capabilities, ask)
        try:
            answer = jsonrpc.result(message.id, await self.methods.handle(caller, message))
        except RpcError as e:
            answer = e.to_message(message.id)
        except CancelledError:
            # The client cancelled the call or left while its user was asked.
            exchange.abandon()
            return
        if json_ok or exchange.streaming:
            exchange.reply(200, answer)
        else:
            exchange.reply_as_stream(answer)

    def _initialize(
        self, exchange: Exchange, account: Account, message: jsonrpc.Request, json_ok: bool
    ) -> None:
        try:
            handshake = self.methods.initialize(message.params)
        except RpcError as e:
            raise HttpError(400, e.code, e.message, request_id=message.id) from None
        session = self.sessions.open(
            account.id, handshake.version, handshake.capabilities, handshake.client_info
        )
        answer = jsonrpc.result(message.id, handshake.result)
        headers = {"Mcp-Session-Id": session.id}
        if json_ok:
            exchange.reply(200, answer, headers)
        else:
            exchange.reply_as_stream(answer, headers)

    def _session(self, account: Account, headers: Headers, message: jsonrpc.Message) -> Session:
        """The session a handshake-era message names, checked against the account."""
        request_id = message.id if not isinstance(message, Notification) else None
        session_id = headers.get(SESSION_HEADER)
        if not session_id:
            raise HttpError(
                400,
                INVALID_REQUEST,
                "send the MCP-Session-Id that initialize gave, or initialize first",
                request_id=request_id,
            )
        session = self.sessions.get(session_id[0], account.id)
        if session is None:
            raise HttpError(
                404,
                INVALID_REQUEST,
                "no such session: it ended or expired; initialize a new one",
                request_id=request_id,
            )
        version = headers.get(VERSION_HEADER)
        if version and version[0] != session.version:
            raise HttpError(
                400,
                INVALID_REQUEST,
                f"MCP-Protocol-Version must be the negotiated {session.version}",
                request_id=request_id,
            )
        return session

    def _asker(self, exchange: Exchange, session: Session, call_id: jsonrpc.RequestId) -> Ask:
        """How a call asks its client: over its own response, turned into a stream."""

        async def ask(method: str, params: JSON) -> Response:
            request_id = session.next_request_id()
            waiting = session.expect_answer(request_id, call_id)
            exchange.when_gone(waiting.cancel)
            exchange.open_stream()
            exchange.send(jsonrpc.request(request_id, method, params))
            waiting.addTimeout(self.limits.elicitation_timeout, self.reactor)
            try:
                return await waiting
            except DeferredTimeout:
                raise TimeoutError() from None

        return ask


def _too_large(limit: int) -> HttpError:
    return HttpError(413, INVALID_REQUEST, f"a message is at most {limit} bytes")


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if value is not None else None


def _headers(request: Request) -> dict[str, list[str]]:
    """The headers L{gk.mcp.protocol} reads, with every value each was sent with."""
    found: dict[str, list[str]] = {}
    for name in (*ROUTING_HEADERS, SESSION_HEADER):
        values = request.requestHeaders.getRawHeaders(name.encode("ascii"))
        if values:
            found[name] = [v.decode("latin-1") for v in values]
    return found
