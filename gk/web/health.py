"""
``/health``, ``/ready`` and ``/metrics``.

``/health`` answers as long as the reactor turns.  ``/ready`` answers 200
only when the database answers a query and every configured listener is
bound, with a JSON detail either way, so a load balancer or an operator
sees which part is missing; an unreachable model server marks the
assistant as degraded (still 200: the rest of gk works).  ``/metrics`` is Prometheus text.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gk.listeners import BoundListener
from gk.metrics import Metrics
from gk.storage.database import Database


def write_json(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body).encode("utf-8") + b"\n"


class HealthResource(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return write_json(request, 200, {"status": "ok"})


class ReadyResource(Resource):
    """
    @param listeners: returns, for every configured listener, its role,
        endpoint description, implicit TLS, and the bound port or L{None}.
    """

    isLeaf = True

    def __init__(
        self,
        db: Database,
        listeners: Callable[[], list[tuple[str, str, bool, BoundListener | None]]],
        assistant: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.listeners = listeners
        self.assistant = assistant

    def render_GET(self, request: Request) -> int:
        d = Deferred.fromCoroutine(self._answer(request))
        d.addErrback(lambda f: request.processingFailed(f))
        return NOT_DONE_YET

    async def _answer(self, request: Request) -> None:
        database_ok = await self.db.ping()
        listeners = [
            {
                "role": role,
                "endpoint": description,
                "tls": tls,
                "bound": bound is not None,
                "address": bound.address if bound is not None else None,
            }
            for role, description, tls, bound in self.listeners()
        ]
        ready = database_ok and all(item["bound"] for item in listeners)
        body = {
            "ready": ready,
            "database": {"ok": database_ok, "dialect": self.db.dialect},
            "listeners": listeners,
        }
        if self.assistant is not None:
            # The assistant alone being down degrades gk, it does not make
            # it unready: mail, calendars and chat go on working.
            problem = await self.assistant()
            body["assistant"] = {"ok": problem is None, "problem": problem}
            body["degraded"] = [] if problem is None else ["assistant"]
        if not request.finished and not getattr(request, "_disconnected", False):
            request.write(write_json(request, 200 if ready else 503, body))
            request.finish()


class MetricsResource(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self.metrics.render()
