"""
The IMAP server protocol on Twisted: bytes in, through the framing
(L{CommandReader}) and parser, to the session; one command at a time, in
order (a client may pipeline; responses keep its order).

STARTTLS discards whatever the client sent after the command in plaintext
(the CVE-2011-0411 class of bug).  An idle connection is closed after 30
minutes (RFC 3501 5.4), one that IDLEs after 29 as clients re-IDLE.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from gk.imap.backend import IIMAPBackend
from gk.imap.framing import CommandReader, NeedContinuation, RawCommand, TooLong
from gk.imap.parser import Command, parse_command
from gk.imap.session import IMAPSession
from gk.imap.syntax import ParseError
from gk.tls import ServerTLS

#: RFC 3501 5.4: at least 30 minutes before an autologout.
IDLE_TIMEOUT = 30 * 60


@implementer(IPushProducer)
class IMAPServerProtocol(Protocol, TimeoutMixin):
    """One client connection; see the module docstring."""

    log = Logger()

    def __init__(self, factory: IMAPFactory) -> None:
        self.factory = factory
        self.reader = CommandReader(max_literal=factory.max_message_size)
        self.session: IMAPSession | None = None
        self._queue: deque[RawCommand] = deque()
        self._busy = False
        self._paused_for: NeedContinuation | None = None
        #: While the transport's buffer is full: fired when it drains.
        self._drained: Deferred[None] | None = None

    def connectionMade(self) -> None:
        # As a streaming producer the transport tells us when its buffer is
        # full, so that a FETCH 1:* of a big folder waits for the client
        # instead of piling the whole answer up in memory.
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.session = IMAPSession(
            self.factory.backend,
            self._write,
            getattr(peer, "host", ""),
            self.factory.implicit_tls,
            self.factory.hostname,
            self.writable,
        )
        self.setTimeout(IDLE_TIMEOUT)
        self._write(self.session.greeting())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self.resumeProducing()
        if self.session is not None:
            self.session.close()

    def timeoutConnection(self) -> None:
        self._write(b"* BYE autologout: idle for too long\r\n")
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.connected:
            self.transport.write(data)
            if self.session is not None and self.session.logged_out:
                self.transport.loseConnection()

    # -- flow control (IPushProducer) ----------------------------------------------

    def pauseProducing(self) -> None:
        if self._drained is None:
            self._drained = Deferred()

    def resumeProducing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()

    async def writable(self) -> None:
        """Wait until the transport can take more output (at once if it can)."""
        if self._drained is not None:
            await self._drained

    # -- input -------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self._take(self.reader.feed(data))

    def _take(self, events: list[RawCommand | NeedContinuation | TooLong]) -> None:
        for event in events:
            if isinstance(event, RawCommand):
                self._queue.append(event)
            elif isinstance(event, TooLong):
                tag = event.tag or "*"
                if event.what == "literal":
                    self._write(f"{tag} NO [TOOBIG] literal too big\r\n".encode())
                else:
                    self._write(f"{tag} BAD command line too long\r\n".encode())
            else:
                self._paused_for = event
        self._next()

    def _next(self) -> None:
        if self._busy:
            return
        if not self._queue:
            if self._paused_for is not None:
                self._answer_literal()
            return
        raw = self._queue.popleft()
        self._busy = True
        Deferred.fromCoroutine(self._handle(raw)).addErrback(self._failed, raw).addBoth(self._done)

    def _answer_literal(self) -> None:
        """Every earlier command is done: let the client send its literal (or not)."""
        waiting, self._paused_for = self._paused_for, None
        assert waiting is not None and self.session is not None
        if self.session.account is None and waiting.size > 8192:
            # Nothing before login needs a large literal (an APPEND does not count).
            self._write(f"{waiting.tag or '*'} BAD literal not accepted\r\n".encode())
            self._take(self.reader.refuse_literal())
            return
        self._write(b"+ Ready for literal data\r\n")
        self._take(self.reader.accept_literal())

    def _done(self, _: object) -> None:
        self._busy = False
        if self.connected:
            self._next()

    def _failed(self, failure: Failure, raw: RawCommand) -> None:
        self.log.failure("IMAP command failed", failure)
        self._write(f"{raw.tag or '*'} NO internal error, try again later\r\n".encode())

    async def _handle(self, raw: RawCommand) -> None:
        session = self.session
        assert session is not None
        if session.logged_out:
            return
        if session.authenticating is not None:
            await session.plain_response(session.authenticating, _text(raw))
            return
        if session.idling is not None:
            tag, session.idling = session.idling, None
            if _text(raw).strip().upper() == "DONE":
                session.tagged(tag, "OK", "IDLE terminated")
            else:
                session.tagged(tag, "BAD", "expected DONE")
            self.setTimeout(IDLE_TIMEOUT)
            return
        command = parse_command(raw)
        if isinstance(command, ParseError):
            self._write(command.response())
            return
        if command.name == "STARTTLS":
            self._start_tls(command)
            return
        if command.name == "IDLE":
            await self._idle(command)
            return
        await session.run(command)

    def _start_tls(self, command: Command) -> None:
        session = self.session
        assert session is not None
        server_tls = self.factory.server_tls
        if session.tls or server_tls is None:
            session.tagged(command.tag, "BAD", "STARTTLS is not available")
            return
        session.tagged(command.tag, "OK", "begin TLS negotiation now")
        # What was pipelined after STARTTLS came in plaintext: never run it.
        self._queue.clear()
        self._paused_for = None
        self.reader.clear()
        self.transport.startTLS(server_tls)  # type: ignore[union-attr]
        session.tls = True

    async def _idle(self, command: Command) -> None:
        session = self.session
        assert session is not None
        if session.account is None:
            session.tagged(command.tag, "BAD", "IDLE needs authentication first")
            return
        session.idling = command.tag
        self._write(b"+ idling\r\n")
        self.setTimeout(IDLE_TIMEOUT - 60)
        if session.selected is not None:
            await session.selected.report_changes(None)


def _text(raw: RawCommand) -> str:
    return b"".join(raw.parts).decode("utf-8", "replace")


class IMAPFactory(Factory):
    """Makes one L{IMAPServerProtocol} per connection for one listener."""

    noisy = False

    def __init__(
        self,
        hostname: str,
        backend: IIMAPBackend,
        server_tls: ServerTLS | None,
        max_message_size: int,
        implicit_tls: bool = False,
    ) -> None:
        self.hostname = hostname
        self.backend = backend
        self.server_tls = server_tls
        self.max_message_size = max_message_size
        self.implicit_tls = implicit_tls

    def buildProtocol(self, addr: object) -> IMAPServerProtocol:
        protocol = IMAPServerProtocol(self)
        protocol.factory = self
        return protocol
