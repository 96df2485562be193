"""
The HTTP listener's site: the resource tree every HTTP path hangs from.
Later parts (web UI, WebSocket, MCP, JSON API) add their children here;
CalDAV/CardDAV hangs at C{/dav} with its C{/.well-known} redirects.

Request bodies are kept up to the site's C{max_request_body} bytes
(L{LimitedRequest}); a longer one is read and thrown away, and the request
marked C{body_too_large} for its resource to answer 413.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable

from twisted.web import http, pages
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from gk.dav.resource import WellKnownRedirect
from gk.listeners import BoundListener
from gk.metrics import Metrics
from gk.storage.database import Database
from gk.web.health import HealthResource, MetricsResource, ReadyResource

#: The largest request body kept by default (above the largest calendar
#: object or card a PUT may store, 10 MiB).
MAX_REQUEST_BODY = 11 * 1024 * 1024


class LimitedRequest(Request):
    """
    A request that keeps at most its site's C{max_request_body} bytes of
    body, whether announced by Content-Length or sent chunked; beyond
    that the body is discarded as it arrives and C{body_too_large} set.
    """

    body_too_large = False
    _received = 0

    def _limit(self) -> int:
        site = getattr(self.channel, "site", None)
        return int(getattr(site, "max_request_body", MAX_REQUEST_BODY))

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self.body_too_large = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self.body_too_large = True
            if self.content is not None:
                self.content.seek(0)
                self.content.truncate()
            return
        super().handleContentChunk(data)


class GkSite(Site):
    """A Site that counts responses and never writes an access log of its own."""

    requestFactory = LimitedRequest

    def __init__(
        self, root: Resource, metrics: Metrics, max_request_body: int = MAX_REQUEST_BODY
    ) -> None:
        super().__init__(root)
        self.metrics = metrics
        self.max_request_body = max_request_body
        self.displayTracebacks = False
        self.noisy = False

    def log(self, request: http.Request) -> None:
        self.metrics.http_requests.labels(status=f"{request.code // 100}xx").inc()


class RootResource(Resource):
    """The root: paths of no other part are the web UI's (or an escaped 404 page)."""

    def __init__(self, ui: IResource | None = None) -> None:
        super().__init__()
        self.ui = ui

    def getChild(self, path: bytes, request: http.Request) -> IResource:
        if self.ui is not None:
            return self.ui
        return pages.notFound()


def build_site(
    db: Database,
    metrics: Metrics,
    listeners: Callable[[], list[tuple[str, str, bool, BoundListener | None]]],
    dav: Resource | None = None,
    live: IResource | None = None,
    api: IResource | None = None,
    mcp: IResource | None = None,
    mcp_metadata: IResource | None = None,
    assistant_problem: Callable[[], Awaitable[str | None]] | None = None,
    ui: IResource | None = None,
    static: IResource | None = None,
    autoconfig: IResource | None = None,
) -> GkSite:
    """
    The site; C{dav} is the CalDAV/CardDAV resource (L{gk.dav.resource}),
    mounted at C{/dav} with the C{/.well-known} redirects to it; C{live}
    the WebSocket (L{gk.ws}) at C{/ws}; C{api} the JSON API at C{/api};
    C{mcp} the MCP endpoint (L{gk.mcp}) at C{/mcp}, with C{mcp_metadata}
    (its RFC 9728 document) under C{/.well-known/oauth-protected-resource};
    C{ui} the web UI's pages (every other path) with its files at C{static};
    C{autoconfig} mail clients' autoconfiguration (L{gk.web.views.settings_autoconfig})
    at C{/.well-known/autoconfig}.
    """
    root = RootResource(ui)
    if static is not None:
        root.putChild(b"static", static)
    if live is not None:
        root.putChild(b"ws", live)
    if api is not None:
        root.putChild(b"api", api)
    if mcp is not None:
        root.putChild(b"mcp", mcp)
    root.putChild(b"health", HealthResource())
    root.putChild(b"ready", ReadyResource(db, listeners, assistant_problem))
    root.putChild(b"metrics", MetricsResource(metrics))
    well_known = WellKnown()
    root.putChild(b".well-known", well_known)
    if dav is not None:
        root.putChild(b"dav", dav)
        well_known.putChild(b"caldav", WellKnownRedirect())
        well_known.putChild(b"carddav", WellKnownRedirect())
    if mcp_metadata is not None:
        # RFC 9728 protected-resource metadata, where a 401 from /mcp points.
        well_known.putChild(b"oauth-protected-resource", mcp_metadata)
    if autoconfig is not None:
        well_known.putChild(b"autoconfig", autoconfig)
    return GkSite(root, metrics)


class WellKnown(Resource):
    """C{/.well-known/}: unknown names get a 404 page."""

    def getChild(self, path: bytes, request: http.Request) -> IResource:
        return pages.notFound()
