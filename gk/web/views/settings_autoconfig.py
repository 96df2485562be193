"""
C{/.well-known/autoconfig/mail/config-v1.1.xml}: Thunderbird's mail
client autoconfiguration, public (no sign-in), built from the current
config and the local domains (L{gk.web.client_setup.autoconfig_xml}).

The site mounts L{AutoconfigResource} as C{autoconfig} under its
C{/.well-known} resource; it answers C{mail/config-v1.1.xml} and 404
for any other name under it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import pages
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gk.config import Config
from gk.web.client_setup import autoconfig_xml, client_setup

#: The path under C{/.well-known/autoconfig/}.
DOCUMENT = (b"mail", b"config-v1.1.xml")


class AutoconfigResource(Resource):
    """
    C{/.well-known/autoconfig/}: the document at C{mail/config-v1.1.xml}.

    @param config: the config in force (read at each request).
    @param domains: the local mail domains (a database read).
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self, config: Callable[[], Config], domains: Callable[[], Awaitable[list[str]]]
    ) -> None:
        super().__init__()
        self.config = config
        self.domains = domains

    def render_GET(self, request: Request) -> bytes | int:
        if tuple(request.postpath or ()) != DOCUMENT:
            return pages.notFound().render(request)  # type: ignore[no-any-return]
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _f: gone.append(True))
        d = Deferred.fromCoroutine(self._document())
        d.addCallbacks(
            lambda body: None if gone else self._write(body, request),
            lambda failure: None if gone else self._failed(failure, request),
        )
        return NOT_DONE_YET

    render_HEAD = render_GET

    async def _document(self) -> bytes:
        config = self.config()
        domains = [*config.server.domains, *await self.domains()]
        return autoconfig_xml(client_setup(config), domains)

    def _write(self, body: bytes, request: Request) -> None:
        request.setHeader(b"content-type", b"application/xml; charset=utf-8")
        request.setHeader(b"cache-control", b"public, max-age=300")
        request.setHeader(b"access-control-allow-origin", b"*")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _failed(self, failure: Failure, request: Request) -> None:
        self.log.failure("autoconfig document failed", failure)
        request.setResponseCode(500)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(b"Something went wrong on the server.\n")
        request.finish()
