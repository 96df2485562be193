"""
The answer to one POST on C{/mcp}: a single JSON body, or a
Server-Sent Events stream opened the first time gk must send something
before the result (an elicitation asking the user to confirm), which then
carries the result as its last event.

Writes stop once the client has gone (its connection closed); the
callbacks registered with L{Exchange.when_gone} run then, so whatever
waits on the client's behalf (its answer to a question) is cancelled.
While a stream is open an SSE comment is sent every C{keepalive} seconds
so proxies do not close it while the user thinks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.server import Request

from gk.mcp.jsonrpc import JSON, SSE_KEEPALIVE, encode, sse_event

#: Seconds between keep-alive comments on an open stream.
KEEPALIVE = 25.0


class Exchange:
    """One request and its answer, JSON or event stream."""

    def __init__(self, request: Request, clock: IReactorTime, keepalive: float = KEEPALIVE) -> None:
        self.request = request
        self.clock = clock
        self.keepalive = keepalive
        #: The client closed the connection: nothing more can be written.
        self.gone = False
        #: The answer is an event stream (its status and headers are sent).
        self.streaming = False
        self.done = False
        self._pinger: LoopingCall | None = None
        self._on_gone: list[Callable[[], object]] = []
        request.notifyFinish().addErrback(self._lost)

    def when_gone(self, hook: Callable[[], object]) -> None:
        """Call C{hook} if the client goes away before the answer is finished."""
        if self.gone:
            hook()
        else:
            self._on_gone.append(hook)

    def reply(
        self, status: int, body: JSON | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """
        Finish with C{body} (a JSON-RPC message) and C{status}, or no body;
        on an open stream, C{body} is its last event (the status was sent).
        """
        if self.gone or self.done:
            return
        if self.streaming:
            if body is not None:
                self.request.write(sse_event(body))
            self._finish()
            return
        request = self.request
        request.setResponseCode(status)
        _set_headers(request, headers or {})
        request.setHeader(b"Cache-Control", b"no-store")
        data = b"" if body is None else encode(body)
        if body is not None:
            request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Length", str(len(data)).encode("ascii"))
        if data:
            request.write(data)
        self._finish()

    def reply_as_stream(self, body: JSON, headers: Mapping[str, str] | None = None) -> None:
        """Finish with C{body} as the only event of a stream (for clients that take only SSE)."""
        self.open_stream(headers)
        self.reply(200, body)

    def open_stream(self, headers: Mapping[str, str] | None = None) -> None:
        """Answer 200 with an event stream, if not done yet; then L{send} events."""
        if self.streaming or self.gone or self.done:
            return
        self.streaming = True
        request = self.request
        request.setResponseCode(200)
        _set_headers(request, headers or {})
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache, no-transform")
        # Tells nginx-style proxies not to buffer the events.
        request.setHeader(b"X-Accel-Buffering", b"no")
        self._pinger = LoopingCall(self._ping)
        self._pinger.clock = self.clock
        self._pinger.start(self.keepalive, now=False)

    def send(self, message: JSON) -> None:
        """One event on the open stream."""
        if self.streaming and not self.gone and not self.done:
            self.request.write(sse_event(message))

    def abandon(self) -> None:
        """End without an answer (the call was cancelled): close the stream."""
        if self.streaming:
            self._finish()
        else:
            self.reply(204)

    def _ping(self) -> None:
        if not self.gone and not self.done:
            self.request.write(SSE_KEEPALIVE)

    def _finish(self) -> None:
        self.done = True
        self._stop_pinging()
        self.request.finish()

    def _stop_pinging(self) -> None:
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None

    def _lost(self, _reason: Failure) -> None:
        self.gone = True
        self._stop_pinging()
        hooks, self._on_gone = self._on_gone, []
        for hook in hooks:
            hook()


def _set_headers(request: Request, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        request.setHeader(name.encode("ascii"), value.encode("latin-1"))
