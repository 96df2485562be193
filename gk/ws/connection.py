"""
One WebSocket connection to C{/ws}: the opening handshake's checks, and
the loop that reads client messages and answers them (autobahn's Twisted
protocol; L{gk.ws.resource} mounts it on the HTTP listener).

The handshake is refused (HTTP 403) when the Origin header is present and
is neither the origin of C{[http] public_url} nor that of the Host asked
for (or is missing on a cookie-authenticated upgrade), and 401 without valid credentials; 429
when the source is blocked by the brute-force guard or the user has too
many sockets open.

Messages are handled one at a time, in order, so that a client's posts
keep their order; each gets exactly one reply or error.  Frames over
L{protocol.MAX_FRAME} bytes, bad JSON and unknown types get an error and
change nothing; a client that keeps sending faster than
L{RateLimit} allows gets C{rate_limited} errors and, past
L{MAX_REFUSED} of them in a row, a close with code 1008.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gk.storage.accounts import Account
from gk.ws import protocol
from gk.ws.protocol import ClientMessage, ProtocolError

#: Close code for a client breaking the rules (RFC 6455 7.4.1: policy violation).
CLOSE_POLICY = 1008

#: Rate-limited messages in a row before the socket is closed.
MAX_REFUSED = 20

#: Client messages waiting to be handled before the socket is closed.
MAX_QUEUED = 64

#: Frames a client may send before any is refused, and per second after.
BURST = 40
PER_SECOND = 20.0

#: The largest frame autobahn reads at all (bigger: closed with 1009).
#: Between L{protocol.MAX_FRAME} and this, the frame gets an error.
HARD_FRAME_LIMIT = 1024 * 1024

#: Sockets one user may hold open (tabs, devices).
MAX_CONNECTIONS_PER_USER = 32

#: Bytes waiting to be sent to a slow client before it is dropped (it
#: catches up with C{sync} when it reconnects).
MAX_UNSENT = 4 * 1024 * 1024


class RateLimit:
    """A token bucket: C{burst} at once, refilled at C{rate} per second."""

    def __init__(self, clock: IReactorTime, burst: int = BURST, rate: float = PER_SECOND) -> None:
        self.clock = clock
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.last = clock.seconds()

    def allow(self) -> bool:
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True)
class Upgrade:
    """What the handshake hands to the authenticator."""

    headers: dict[str, str]
    peer_ip: str


#: Decides who an upgrade is: the account, or L{None} (401); may raise
#: L{ConnectionDeny} itself (e.g. 429 when blocked).  C{cookie} says the
#: account came from a browser session (then Origin is required).
Authenticate = Callable[[Upgrade], Awaitable[tuple[Account, bool] | None]]


class Handler(ABC):
    """What a connection hands its messages to (L{gk.ws.commands.LiveCommands})."""

    @abstractmethod
    async def handle(self, connection: LiveSocket, message: ClientMessage) -> Any:
        """The result of C{message}, JSON-ready. @raise ProtocolError: refused."""

    @abstractmethod
    def opened(self, connection: LiveSocket) -> None:
        """A connection was accepted."""

    @abstractmethod
    def closed(self, connection: LiveSocket) -> None:
        """A connection ended."""


class LiveSocketFactory(WebSocketServerFactory):
    """Configuration shared by every C{/ws} connection."""

    def __init__(
        self,
        url: str,
        public_url: str,
        authenticate: Authenticate,
        handler: Handler,
        clock: IReactorTime,
        count_connections: Callable[[int], int],
    ) -> None:
        super().__init__(url)
        self.protocol = LiveSocket
        self.public_origin = origin_of(public_url)
        self.authenticate = authenticate
        self.handler = handler
        self.clock = clock
        self.count_connections = count_connections
        self._last_payload = b""
        self._last_wire = _text_frame(b"")
        self.setProtocolOptions(
            maxMessagePayloadSize=HARD_FRAME_LIMIT,
            maxFramePayloadSize=HARD_FRAME_LIMIT,
            autoPingInterval=30,
            autoPingTimeout=15,
            openHandshakeTimeout=15,
            closeHandshakeTimeout=5,
            # A failed connection gets a close frame with its code (1009, 1002...)
            # before the TCP connection ends, so that clients can tell why.
            failByDrop=False,
            # No compression: frames are built once for all their recipients (framed()).
            perMessageCompressionAccept=lambda offers: None,
        )

    def framed(self, payload: bytes) -> bytes:
        """
        C{payload} as a server text frame on the wire.  The hub sends one
        change's bytes to all its recipients in a row: the frame is built
        once for them (the same object was given again).
        """
        if payload is not self._last_payload:
            self._last_payload, self._last_wire = payload, _text_frame(payload)
        return self._last_wire


def origin_of(url: str) -> str:
    """C{scheme://host[:port]} of a URL, the port left out when it is the default."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{netloc}"


class LiveSocket(WebSocketServerProtocol):
    """One client's socket (see the module docstring)."""

    factory: LiveSocketFactory
    log = Logger()

    account: Account
    away = False
    opened = False
    #: Whether frames may go straight to the socket (L{send_frame}).
    direct = False

    def onConnect(self, request: ConnectionRequest) -> Any:
        # autobahn waits for a Deferred returned here (its type hint forgets it).
        return Deferred.fromCoroutine(self._accept(request))

    async def _accept(self, request: ConnectionRequest) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        origin = headers.get("origin")
        if origin is not None and origin_of(origin) not in self._allowed_origins(headers):
            raise ConnectionDeny(403, "Origin not allowed")
        peer_ip = _peer_ip(request.peer)
        found = await self.factory.authenticate(Upgrade(headers, peer_ip))
        if found is None:
            raise ConnectionDeny(401, "Authentication required")
        account, by_cookie = found
        if by_cookie and origin is None:
            raise ConnectionDeny(403, "Origin required")
        if self.factory.count_connections(account.id) >= MAX_CONNECTIONS_PER_USER:
            raise ConnectionDeny(429, "Too many connections")
        self.account = account
        self.limit = RateLimit(self.factory.clock)
        self.refused = 0
        self.queue: deque[ClientMessage] = deque()
        self.busy = False

    def _allowed_origins(self, headers: dict[str, str]) -> set[str]:
        """
        The public URL's origin, and the page's own (the Host asked for):
        as the web UI's forms, so that a page opened at another name of
        this server (localhost for 127.0.0.1) still gets its socket.  A
        foreign page's Origin is its own host, never this one.
        """
        allowed = {self.factory.public_origin}
        host = headers.get("host")
        if host:
            secure = bool(getattr(self.transport, "TLS", False))
            allowed.add(origin_of(f"{'https' if secure else 'http'}://{host}"))
        return allowed

    def onOpen(self) -> None:
        self.opened = True
        transport = self.transport
        self.direct = isinstance(transport, tcp.Connection) and not transport.TLS
        self.factory.handler.opened(self)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.opened:
            self.opened = False
            self.factory.handler.closed(self)

    def send_frame(self, frame: bytes) -> None:
        """
        Send a text frame, or queue it behind what is waiting; a client that
        reads too slowly is dropped.  Nothing is sent once the socket is
        closing.

        The frame is framed once for all the sockets it goes to
        (L{LiveSocketFactory.framed}) and written straight to the socket
        when nothing waits before it, as is usual: the transport would
        otherwise hold it until the next turn of the reactor, registering
        the socket for writing and unregistering it again, which took as
        much CPU again as the send itself, for each of the dozens of sockets
        a chat message goes to.
        """
        if not self.opened or self.state != self.STATE_OPEN:
            return  # closing: no more data frames (RFC 6455 5.5.1); it will sync
        transport: Any = self.transport
        idle = self.direct and not transport.dataBuffer and not transport._tempDataLen
        if not idle and _unsent(transport) > MAX_UNSENT:
            self.log.info("dropping {email}: reading too slowly", email=self.account.email)
            self._close(CLOSE_POLICY, "reading too slowly; reconnect and sync")
            return
        wire = self.factory.framed(frame)
        if self.send_queue:
            self.sendData(wire)  # behind what autobahn queued itself
            return
        if idle:
            wire = _send_now(transport, wire)
        if wire:
            transport.write(wire)

    @property
    def unsent(self) -> int:
        """Bytes the transport still holds for this client (not yet taken by the kernel)."""
        return _unsent(self.transport)

    def going_away(self) -> None:
        """Close with 1001 as the server stops; the hub forgets the socket itself."""
        if self.opened:
            self.opened = False
            self._send_close(1001, "server shutting down")

    def _close(self, code: int, reason: str) -> None:
        """Start the closing handshake; nothing more is read or sent."""
        if self.opened:
            self.opened = False
            self.queue.clear()
            self.factory.handler.closed(self)
            self._send_close(code, reason)

    def _send_close(self, code: int, reason: str) -> None:
        # sendClose() accepts only 1000 and application codes; 1001 and
        # 1008 are the protocol's own, sent through the frame method.
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self.opened:
            return
        if not self.limit.allow():
            self.refused += 1
            if self.refused > MAX_REFUSED:
                self._close(CLOSE_POLICY, "too many messages")
                return
            self.send_frame(protocol.error(None, "rate_limited", "slow down"))
            return
        self.refused = 0
        if len(payload) > protocol.MAX_FRAME:
            self.send_frame(
                protocol.error(None, "too_large", f"frames are at most {protocol.MAX_FRAME} bytes")
            )
            return
        try:
            message = protocol.parse_client_message(payload, isBinary)
        except ProtocolError as e:
            self.send_frame(protocol.error(e.id, e.code, e.message))
            return
        if len(self.queue) >= MAX_QUEUED:
            self._close(CLOSE_POLICY, "too many messages waiting")
            return
        self.queue.append(message)
        if not self.busy:
            Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        self.busy = True
        try:
            while self.queue and self.opened:
                await self._answer(self.queue.popleft())
        finally:
            self.busy = False

    async def _answer(self, message: ClientMessage) -> None:
        try:
            result = await self.factory.handler.handle(self, message)
        except ProtocolError as e:
            self.send_frame(protocol.error(message.id, e.code, e.message))
        except Exception:
            self.log.failure(
                "{type} from {email} failed", type=message.type, email=self.account.email
            )
            self.send_frame(protocol.error(message.id, "internal_error", "something went wrong"))
        else:
            self.send_frame(protocol.reply(message.id, result))


def _peer_ip(peer: str) -> str:
    """The address of autobahn's C{tcp:1.2.3.4:5678} / C{tcp6:::1:5678} peer string."""
    kind, _, rest = peer.partition(":")
    if kind in ("tcp", "tcp4", "tcp6"):
        return rest.rpartition(":")[0]
    return peer


def _text_frame(payload: bytes) -> bytes:
    """A final, unmasked, uncompressed text frame (autobahn's framing)."""
    wire: bytes = PreparedMessage(payload, False, False, True).payloadHybi
    return wire


def _unsent(transport: Any) -> int:
    """Bytes the transport still holds for the peer (0 if it does not say)."""
    held = getattr(transport, "dataBuffer", b"")
    pending = getattr(transport, "_tempDataLen", 0)
    return len(held) + int(pending)


def _send_now(transport: tcp.Connection, data: bytes) -> bytes:
    """
    Hand C{data} to the kernel at once, C{transport} being a plain TCP
    connection with nothing waiting to be sent (the caller checked); what
    is left for the transport to send when the socket can take it.

    Any error leaves C{data} to the transport, which then finds the
    connection lost in its own way.
    """
    if not transport.connected or transport.disconnecting or transport._writeDisconnected:
        return data
    try:
        sent = transport.socket.send(data)
    except OSError:
        return data
    return data[sent:]
