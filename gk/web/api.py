"""
C{/api/}: the HTTP JSON API that scripts, the assistant's tools and the
web UI call (C{../shared/docs/interface.md} lists the paths).

Every request is authenticated by a bearer token or the web UI's session
cookie (then a state-changing request must carry the session's CSRF token
in C{X-CSRF-Token}); bodies and answers are JSON; errors are
C{{"error": {"code": ..., "message": ...}}} with a 4xx/5xx status.  Routes
are matched on the path segments after C{/api/} by L{Route} patterns in
which C{{name}} stands for one segment passed to the handler (an integer
where the pattern says C{{name:int}}).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gk.storage.accounts import Account
from gk.web.bearer import BearerAuthenticator, Blocked
from gk.web.sessions import WebSessions, cookie_value

#: The largest JSON body accepted.
MAX_BODY = 1024 * 1024


class ApiError(Exception):
    """An answer other than success: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """One API request, as a handler sees it."""

    account: Account
    params: Mapping[str, Any]
    query: Mapping[str, str]
    body: Any

    def query_int(self, name: str, minimum: int = 1) -> int | None:
        value = self.query.get(name)
        if value is None or value == "":
            return None
        if not value.isdigit() or int(value) < minimum:
            raise ApiError(400, "invalid_argument", f"{name} must be a number from {minimum} up")
        return int(value)

    def field(self, name: str, kind: type, *, required: bool = True) -> Any:
        """A member of the JSON body object, of type C{kind}."""
        if not isinstance(self.body, dict):
            raise ApiError(400, "invalid_argument", "the body must be a JSON object")
        value = self.body.get(name)
        if value is None and not required:
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise ApiError(400, "invalid_argument", f"{name} must be a {kind.__name__}")
        return value


Handler = Callable[[Call], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Route:
    """A method and path pattern (segments after C{/api/}) and its handler."""

    method: str
    pattern: tuple[str, ...]
    handler: Handler

    def match(self, segments: Sequence[str]) -> dict[str, Any] | None:
        return match_segments(self.pattern, segments)


def match_segments(pattern: Sequence[str], segments: Sequence[str]) -> dict[str, Any] | None:
    """
    The parameters of C{segments} under C{pattern}, or L{None}: C{{name}}
    matches one segment, C{{name:int}} one of digits (passed as an int).
    """
    if len(segments) != len(pattern):
        return None
    params: dict[str, Any] = {}
    for part, segment in zip(pattern, segments, strict=True):
        if not part.startswith("{"):
            if part != segment:
                return None
            continue
        name, _, kind = part[1:-1].partition(":")
        if kind == "int":
            if not segment.isdigit() or len(segment) > 18:
                return None
            params[name] = int(segment)
        else:
            params[name] = segment
    return params


def route(method: str, path: str, handler: Handler) -> Route:
    return Route(method, tuple(path.strip("/").split("/")), handler)


class ApiResource(Resource):
    """The C{/api} resource: authenticates, routes, answers JSON."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        authenticator: BearerAuthenticator,
        routes: Sequence[Route],
        sessions: WebSessions | None = None,
    ) -> None:
        super().__init__()
        self.authenticator = authenticator
        self.routes = list(routes)
        self.sessions = sessions

    def render(self, request: Request) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _f: gone.append(True))
        d = Deferred.fromCoroutine(self._answer(request))
        d.addErrback(self._failed, request)
        d.addCallback(lambda answer: None if gone else _write(request, *answer))
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: Request) -> tuple[int, Any, dict[str, str]]:
        self.log.failure("API {method} {path} failed", failure, method=request.method,
                         path=request.path)  # fmt: skip
        return _error(500, "internal_error", "something went wrong")

    async def _answer(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        try:
            return await self._dispatch(request)
        except ApiError as e:
            return _error(e.status, e.code, e.message)

    async def _dispatch(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or ()]
        if segments and segments[-1] == "":
            segments.pop()
        method = request.method.decode("ascii", "replace").upper()
        matches = [(r, p) for r in self.routes if (p := r.match(segments)) is not None]
        if not matches:
            raise ApiError(404, "not_found", "no such API path")
        chosen = next(((r, p) for r, p in matches if r.method == method), None)
        if chosen is None:
            allowed = ", ".join(sorted({r.method for r, _ in matches}))
            status, body, headers = _error(405, "method_not_allowed", f"use {allowed}")
            return status, body, {**headers, "Allow": allowed}
        account = await self._account(request, method)
        route_, params = chosen
        call = Call(account, params, _query(request), _body(request, method))
        status, result = await route_.handler(call)
        return status, result, {}

    async def _account(self, request: Request, method: str) -> Account:
        header = request.getHeader(b"authorization")
        if header is None and self.sessions is not None:
            account = await self._session_account(request, method)
            if account is not None:
                return account
        client = request.getClientAddress()
        try:
            account = await self.authenticator.authenticate(
                header.decode("latin-1") if header else None, str(getattr(client, "host", ""))
            )
        except Blocked as e:
            raise ApiError(429, "blocked", "too many failed attempts; try again later") from e
        if account is None:
            raise ApiError(401, "unauthenticated", "send Authorization: Bearer TOKEN")
        return account

    async def _session_account(self, request: Request, method: str) -> Account | None:
        """The web UI's session; a state-changing call must bring its CSRF token."""
        assert self.sessions is not None
        cookie = request.getHeader(b"cookie")
        session = await self.sessions.find(
            cookie_value(cookie.decode("latin-1") if cookie else None)
        )
        if session is None:
            return None
        if method not in ("GET", "HEAD"):
            token = request.getHeader(b"x-csrf-token")
            if not session.csrf_ok(token.decode("latin-1") if token else None):
                raise ApiError(403, "csrf", "send the page's X-CSRF-Token header")
        return session.account


def _query(request: Request) -> dict[str, str]:
    args = request.args or {}
    return {
        k.decode("utf-8", "replace"): v[-1].decode("utf-8", "replace") for k, v in args.items() if v
    }


def _body(request: Request, method: str) -> Any:
    if method in ("GET", "HEAD", "DELETE"):
        return None
    if getattr(request, "body_too_large", False):
        raise ApiError(413, "too_large", f"bodies are at most {MAX_BODY} bytes")
    raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"bodies are at most {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if media not in (b"application/json", b""):
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "bad_json", "the body is not JSON") from None


def _error(status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
    headers = {"WWW-Authenticate": 'Bearer realm="gk"'} if status == 401 else {}
    return status, {"error": {"code": code, "message": message}}, headers


def _write(request: Request, status: int, body: Any, headers: Mapping[str, str]) -> None:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    for name, value in headers.items():
        request.setHeader(name.encode("ascii"), value.encode("latin-1"))
    request.setHeader(b"Content-Length", str(len(data)).encode("ascii"))
    request.write(data)
    request.finish()
