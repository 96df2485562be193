"""
The HTTP listener's site: the resource tree every HTTP path hangs from.
Later parts (web UI, DAV, WebSocket, MCP, JSON API) add their children
here.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web import http, pages
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from gk.listeners import BoundListener
from gk.metrics import Metrics
from gk.storage.database import Database
from gk.web.health import HealthResource, MetricsResource, ReadyResource


class GkSite(Site):
    """A Site that counts responses and never writes an access log of its own."""

    def __init__(self, root: Resource, metrics: Metrics) -> None:
        super().__init__(root)
        self.metrics = metrics
        self.displayTracebacks = False
        self.noisy = False

    def log(self, request: http.Request) -> None:
        self.metrics.http_requests.labels(status=f"{request.code // 100}xx").inc()


class RootResource(Resource):
    """The root: unknown paths get an escaped 404 page."""

    def getChild(self, path: bytes, request: http.Request) -> IResource:
        return pages.notFound()


def build_site(
    db: Database,
    metrics: Metrics,
    listeners: Callable[[], list[tuple[str, str, bool, BoundListener | None]]],
) -> GkSite:
    root = RootResource()
    root.putChild(b"health", HealthResource())
    root.putChild(b"ready", ReadyResource(db, listeners))
    root.putChild(b"metrics", MetricsResource(metrics))
    return GkSite(root, metrics)
