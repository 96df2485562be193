"""
The twisted.web side of the DAV server: L{DavResource}, mounted at
C{/dav}, takes every request below it (any method), signs the user in,
checks the path, runs the method (L{gk.dav.methods}) and writes the
answer; L{WellKnownRedirect} sends C{/.well-known/caldav} and
C{/.well-known/carddav} to C{/dav/} (301, RFC 6764 5).

Every answer carries the C{DAV} header, errors and 401s included.
OPTIONS is answered without credentials (clients probe with it before
signing in; it tells nothing about anyone's data).  Everything else needs
HTTP Basic (L{gk.dav.auth}): 401 without valid credentials, 429 with
Retry-After for a source the brute-force guard has blocked.

Access: a path is refused with 400 when malformed (L{gk.dav.paths}),
404 when it names nothing.  A user reaches only paths with their own
address: another user's principal answers 403 (principals are not
secret within an instance: scheduling looks them up by address), anything
else of another user 404, so that whether it exists does not leak.

Requests are served by coroutines (C{render} returns C{NOT_DONE_YET});
nothing is written once the client has gone, and an unexpected error is
logged and answered 500 if nothing has been sent yet.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gk.dav import methods, paths
from gk.dav.auth import CHALLENGE, DavAuthenticator
from gk.dav.context import DavContext
from gk.dav.exchange import Answer, DavError, DavRequest, text_answer
from gk.security.addresses import peer_ip

#: The DAV compliance classes (RFC 4918 10.1 and the extensions' own):
#: no LOCK, so no class 2.
DAV_HEADER = (
    b"1, 3, access-control, calendar-access, addressbook, extended-mkcol, calendar-auto-schedule"
)

_NO_BODY = (204, 304)


class DavResource(Resource):
    """C{/dav} and everything under it; see the module docstring."""

    isLeaf = True
    log = Logger()

    def __init__(
        self, ctx: DavContext, authenticator: DavAuthenticator, clock: IReactorTime
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.authenticator = authenticator
        self.clock = clock

    def render(self, request: Request) -> int:
        request.setHeader(b"DAV", DAV_HEADER)
        # The client leaving fails notifyFinish: from then on nothing is written.
        request.notifyFinish().addErrback(_mark_lost, request)
        d = Deferred.fromCoroutine(self._serve(request))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: Request) -> None:
        self.log.failure(
            "DAV {method} {path} failed", failure, method=request.method, path=request.path
        )
        if _gone(request):
            return
        if request.startedWriting:
            # Part of a streamed body went out: all we can do is cut it short.
            if request.channel is not None:
                request.channel.loseConnection()
            return
        self._write_plain(request, text_answer(500, "internal server error"))

    async def _serve(self, request: Request) -> None:
        answer = await self._answer(request)
        await self._write(request, answer)

    async def _answer(self, request: Request) -> Answer:
        method = request.method.decode("ascii", "replace").upper()
        if method == "OPTIONS":
            return self._options(request)
        decision = await self.authenticator.authenticate(
            peer_ip(request.getClientAddress()), request.getHeader(b"authorization")
        )
        if decision.refusal == "blocked":
            answer = text_answer(429, "too many failed sign-ins; try again later")
            answer.headers["Retry-After"] = str(decision.retry_after)
            return answer
        account = decision.account
        if account is None:
            answer = text_answer(401, "sign in with your address and password")
            answer.headers["WWW-Authenticate"] = CHALLENGE.decode("ascii")
            return answer
        try:
            target = paths.parse_path(request.path)
        except paths.BadPath as e:
            return text_answer(400, f"bad path: {e}")
        except paths.NotInLayout:
            return text_answer(404, "not found")
        if target.owner is not None and target.owner != account.email:
            if isinstance(target, paths.Principal):
                return text_answer(403, "not your principal")
            return text_answer(404, "not found")
        req = DavRequest(
            method=method,
            target=target,
            account=account,
            raw_path=request.path,
            headers=_headers(request),
            body=_body(request),
            body_too_large=bool(getattr(request, "body_too_large", False)),
        )
        try:
            return await methods.handle(self.ctx, req)
        except DavError as e:
            return e.answer()

    def _options(self, request: Request) -> Answer:
        try:
            allowed = methods.allowed(paths.parse_path(request.path))
        except (paths.BadPath, paths.NotInLayout):
            allowed = ("OPTIONS",)
        return Answer(200, headers=methods.allow_header(allowed))

    async def _write(self, request: Request, answer: Answer) -> None:
        if _gone(request):
            return
        if answer.stream is None:
            self._write_plain(request, answer)
            return
        request.setResponseCode(answer.status)
        for name, value in answer.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("utf-8"))
        if answer.content_type:
            request.setHeader(b"Content-Type", answer.content_type.encode("ascii"))
        async for chunk in answer.stream:
            if _gone(request):
                return
            request.write(chunk)
            # Let the reactor serve others between pieces of a long answer.
            await deferLater(self.clock, 0, lambda: None)
        if not _gone(request):
            request.finish()

    @staticmethod
    def _write_plain(request: Request, answer: Answer) -> None:
        request.setResponseCode(answer.status)
        for name, value in answer.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("utf-8"))
        if answer.status not in _NO_BODY:
            if answer.content_type and answer.body:
                request.setHeader(b"Content-Type", answer.content_type.encode("ascii"))
            request.setHeader(b"Content-Length", str(len(answer.body)).encode("ascii"))
            if answer.body:
                request.write(answer.body)
        request.finish()


_LOST = "gk_dav_connection_lost"


def _mark_lost(failure: Failure, request: Request) -> None:
    setattr(request, _LOST, True)


def _gone(request: Request) -> bool:
    """Whether nothing more may be written: finished, or the client left."""
    return bool(request.finished or getattr(request, _LOST, False))


def _headers(request: Request) -> dict[str, str]:
    """The request headers by lower-case name (the last of repeated ones)."""
    headers: dict[str, str] = {}
    for name, values in request.requestHeaders.getAllRawHeaders():
        headers[name.decode("latin-1").lower()] = values[-1].decode("utf-8", "replace")
    return headers


def _body(request: Request) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read()
    return data


class WellKnownRedirect(Resource):
    """C{/.well-known/caldav} and C{/.well-known/carddav}: 301 to C{/dav/}, any method."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(301)
        request.setHeader(b"Location", paths.ROOT.encode("ascii"))
        request.setHeader(b"DAV", DAV_HEADER)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"moved to /dav/\n"


def build_dav(ctx: DavContext, authenticator: DavAuthenticator, clock: IReactorTime) -> Resource:
    """The C{/dav} resource."""
    return DavResource(ctx, authenticator, clock)
