"""
The SMTP server protocol: bytes in, replies out, on Twisted's Protocol.

Input is handled strictly in order: while one command waits for the
database, DNS or Argon2, later pipelined input stays buffered, so replies
can never be reordered (the flaw of twisted.mail, Twisted #8126).  At
STARTTLS everything the client sent after the command is thrown away
before the handshake (CVE-2011-0411), and the session starts afresh.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from gk.metrics import Metrics
from gk.security.service import Admission, Security
from gk.smtp.backend import Connection, ISMTPPolicy
from gk.smtp.parser import Command, Reply, parse_command
from gk.smtp.session import TOO_MANY_RECIPIENTS, Limits, Next, Outcome, SMTPSession
from gk.tls import ServerTLS

#: RFC 5321 4.5.3.1.4/6: command and text lines, CRLF included.
MAX_LINE = 1000
#: RFC 4954 4: AUTH commands and responses may be up to 12288 octets.
MAX_AUTH_LINE = 12288
#: Replies of 4xx/5xx to commands before the connection is dropped.
MAX_ERRORS = 10
COMMAND_TIMEOUT = 300.0
DATA_TIMEOUT = 600.0
#: While a command is pending, buffer at most this much before pausing reads.
PAUSE_THRESHOLD = 256 * 1024
_END_OF_DATA = b"\r\n.\r\n"


class SMTPServerProtocol(Protocol, TimeoutMixin):
    log = Logger()

    def __init__(self, factory: SMTPFactory) -> None:
        self.factory = factory
        self.session: SMTPSession | None = None
        self._buffer = bytearray()
        self._mode = Next.COMMAND
        self._busy = False
        self._draining = False
        self._paused = False
        self._errors = 0
        self._skipping_line = False
        # DATA state
        self._data = bytearray()
        self._data_too_big = False
        # BDAT state
        self._bdat_remaining = 0
        self._bdat_size = 0
        self._bdat_last = False
        self._bdat_chunk: bytearray | None = None
        self._closing = False
        self._admission: Admission | None = None

    # -- connection life -----------------------------------------------

    def connectionMade(self) -> None:
        # Replies are small writes answering the client's commands: without
        # TCP_NODELAY, Nagle's algorithm holds each one back until the
        # client's delayed ACK of the previous (about 40 ms per reply on
        # Linux when commands are pipelined).
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        host = self.transport.getHost()  # type: ignore[union-attr]
        connection = Connection(
            client_ip=getattr(peer, "host", ""),
            client_port=getattr(peer, "port", 0),
            local_ip=getattr(host, "host", ""),
            local_port=getattr(host, "port", 0),
        )
        self.factory.metrics.smtp_sessions.labels(listener=self.factory.policy.name).inc()
        self._admission = self.factory.security.admit_connection(
            connection.client_ip, self.factory.policy.name
        )
        if not self._admission.allowed:
            # Refused before any session state exists (RFC 5321 3.8: 421 and close).
            if self._admission.reason == "blocked":
                why = "Too many failed attempts, try again later"
            else:
                why = "Too many connections, try later"
            self._send(Reply(421, "4.7.0", f"{self.factory.hostname} {why}"), enhanced=True)
            self._close()
            return
        if self.factory.implicit_tls:
            connection.tls = self._tls_description() or "TLS"
        self.session = SMTPSession(
            self.factory.hostname,
            self.factory.policy,
            connection,
            self.factory.limits,
            tls_available=self.factory.server_tls is not None and not self.factory.implicit_tls,
        )
        self.setTimeout(self.factory.command_timeout)
        self._send(Reply(220, "", f"{self.factory.hostname} ESMTP gk"), enhanced=False)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._closing = True
        if self._admission is not None:
            self._admission.release()

    def timeoutConnection(self) -> None:
        self._send(Reply(421, "4.4.2", f"{self.factory.hostname} Error: timeout exceeded"))
        self._close()

    # -- input -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.resetTimeout()
        self._buffer += data
        if self._busy and len(self._buffer) > PAUSE_THRESHOLD and not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]
        self._drain()

    def _drain(self) -> None:
        """Process buffered input until it runs out or a command is pending."""
        if self._draining:
            return
        self._draining = True
        try:
            while not self._busy and not self._closing and self._buffer:
                if self._mode is Next.DATA:
                    if not self._read_data():
                        break
                elif self._bdat_chunk is not None:
                    if not self._read_chunk():
                        break
                elif not self._read_line():
                    break
        finally:
            self._draining = False
        if self._paused and not self._busy:
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def _read_line(self) -> bool:
        """Take one line from the buffer and act on it; False if none is complete."""
        end = self._buffer.find(b"\n")
        if end == -1:
            if len(self._buffer) > MAX_AUTH_LINE:
                # Too long: answer once, then drop input up to the next newline.
                del self._buffer[:]
                if not self._skipping_line:
                    self._skipping_line = True
                    self._reply_to_command(Reply(500, "5.5.2", "Line too long"))
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if self._skipping_line:
            self._skipping_line = False
            return True
        if line.endswith(b"\r"):
            line = line[:-1]
        is_auth = self._mode is Next.AUTH or line[:5].upper() == b"AUTH "
        if len(line) + 2 > (MAX_AUTH_LINE if is_auth else MAX_LINE):
            self._reply_to_command(Reply(500, "5.5.2", "Line too long"))
            return True
        self._refresh_tls_description()
        if self._mode is Next.AUTH:
            self._run(self._session.auth_response(line))
            return True
        parsed = parse_command(line)
        if isinstance(parsed, Reply):
            self._reply_to_command(parsed)
            return True
        if parsed.verb == "BDAT":
            self._start_chunk(parsed)
            return True
        self._run(self._session.handle(parsed))
        return True

    def _read_data(self) -> bool:
        """Accumulate a DATA body; True when its end was found and handled."""
        if not self._data:
            # The DATA command's own CRLF: with it in front, the end marker
            # is always CRLF "." CRLF, also for an empty body, and also when
            # the first line's dot-stuffing or the marker straddle reads.
            self._data += b"\r\n"
        search_from = max(0, len(self._data) - 4)
        self._data += self._buffer
        del self._buffer[:]
        end = self._data.find(_END_OF_DATA, search_from)
        if end == -1:
            limit = self.factory.limits.max_message_size
            if len(self._data) > limit + 1024:
                # Keep only the tail needed to spot the end marker.
                self._data_too_big = True
                del self._data[:-4]
            return False
        body = bytes(self._data[: end + 2])
        self._buffer[:0] = self._data[end + len(_END_OF_DATA) :]
        self._data = bytearray()
        self._finish_data(body)
        return True

    def _finish_data(self, body: bytes) -> None:
        too_big = self._data_too_big
        self._data_too_big = False
        self._mode = Next.COMMAND
        self.setTimeout(self.factory.command_timeout)
        if too_big:
            self._run(self._counted(self._session.end_data(None)))
            return
        body = unstuff(body)
        if len(body) > self.factory.limits.max_message_size:
            self._run(self._counted(self._session.end_data(None)))
            return
        self._run(self._counted(self._session.end_data(body)))

    def _start_chunk(self, command: Command) -> None:
        self._bdat_size = command.size
        self._bdat_remaining = command.size
        self._bdat_last = command.last
        self._bdat_chunk = bytearray()
        self.setTimeout(self.factory.data_timeout)
        if command.size == 0:
            self._end_chunk()

    def _read_chunk(self) -> bool:
        chunk = self._bdat_chunk
        assert chunk is not None
        take = min(self._bdat_remaining, len(self._buffer))
        if len(chunk) + take <= self.factory.limits.max_message_size:
            chunk += self._buffer[:take]
        else:
            self._data_too_big = True
            chunk.clear()
        del self._buffer[:take]
        self._bdat_remaining -= take
        if self._bdat_remaining:
            return False
        self._end_chunk()
        return True

    def _end_chunk(self) -> None:
        chunk, self._bdat_chunk = self._bdat_chunk, None
        too_big, self._data_too_big = self._data_too_big, False
        self.setTimeout(self.factory.command_timeout)
        data = None if too_big or chunk is None else bytes(chunk)
        step = self._session.chunk(self._bdat_size, data, self._bdat_last)
        self._run(self._counted(step) if self._bdat_last else step)

    # -- running the session ------------------------------------------------

    @property
    def _session(self) -> SMTPSession:
        assert self.session is not None
        return self.session

    def _run(self, coroutine: Any) -> None:
        """Run one session step; input stays queued until its reply is out."""
        self._busy = True
        d = Deferred.fromCoroutine(coroutine)
        # Separate callbacks: a failure inside _outcome itself is also
        # answered (451) instead of leaving the client without a reply.
        d.addCallback(self._outcome)
        d.addErrback(self._failed)

    async def _counted(self, step: Coroutine[Any, Any, Outcome]) -> Outcome:
        """Count the end of a message (accepted or refused) in /metrics."""
        outcome = await step
        accepted = outcome.reply.code == 250
        self.factory.metrics.smtp_messages.labels(
            listener=self.factory.policy.name, outcome="accepted" if accepted else "refused"
        ).inc()
        return outcome

    def _outcome(self, outcome: Outcome) -> None:
        self._busy = False
        if self._closing:
            return
        self._reply_to_command(outcome.reply)
        if outcome.next is Next.STARTTLS:
            self._start_tls()
        elif outcome.next is Next.CLOSE:
            self._close()
            return
        elif outcome.next is Next.DATA:
            self._mode = Next.DATA
            self.setTimeout(self.factory.data_timeout)
        else:
            self._mode = outcome.next
        self._drain()

    def _failed(self, failure: Failure) -> None:
        self.log.failure("SMTP session step failed", failure)
        self._busy = False
        if self._closing:
            return
        self._mode = Next.COMMAND
        self._reply_to_command(Reply(451, "4.3.0", "Internal error, try again later"))
        self._drain()

    def _reply_to_command(self, reply: Reply) -> None:
        self._send(reply)
        # A client that names more recipients than the limit, which a long
        # pipelined batch easily does, must keep its transaction.
        if reply.code >= 400 and reply != TOO_MANY_RECIPIENTS:
            self._errors += 1
            if self._errors >= MAX_ERRORS:
                self._send(Reply(421, "4.7.0", f"{self.factory.hostname} Too many errors"))
                self._close()

    def _send(self, reply: Reply, enhanced: bool = True) -> None:
        if self._closing:
            return
        # RFC 2034: every reply but the greeting and HELO/EHLO's carries the
        # enhanced code (STARTTLS's 220 too); those have none to show.
        self.transport.writeSequence(reply.lines(enhanced))  # type: ignore[union-attr]

    def _close(self) -> None:
        self._closing = True
        self.setTimeout(None)
        del self._buffer[:]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _start_tls(self) -> None:
        # Anything pipelined after STARTTLS was sent in plaintext and must
        # not be executed inside the TLS session (CVE-2011-0411).
        del self._buffer[:]
        server_tls = self.factory.server_tls
        assert server_tls is not None
        self.transport.startTLS(server_tls)  # type: ignore[union-attr]
        self._session.tls_started(self._tls_description() or "TLS")

    def _refresh_tls_description(self) -> None:
        # The handshake finishes after STARTTLS / accept; learn the cipher
        # at the first command that arrives over TLS.
        connection = self._session.connection
        if connection.tls == "TLS":
            connection.tls = self._tls_description() or "TLS"

    def _tls_description(self) -> str:
        """Protocol version and cipher, once the handshake is done (else "")."""
        connection = getattr(self.transport, "getHandle", lambda: None)()
        if connection is None:
            return ""
        try:
            version = connection.get_protocol_version_name()
            cipher = connection.get_cipher_name()
        except (AttributeError, Exception):
            return ""
        if not version or not cipher:
            return ""
        return f"{version} {cipher}"


def unstuff(body: bytes) -> bytes:
    """
    Undo RFC 5321 4.5.2 dot-stuffing of a DATA body that starts with the
    CRLF of the DATA command (which is dropped).
    """
    return body.replace(b"\r\n..", b"\r\n.")[2:]


class SMTPFactory(Factory):
    """
    Makes one L{SMTPServerProtocol} per connection for one listener.

    @param server_tls: offered by STARTTLS (or already active with
        C{implicit_tls}); L{None} disables STARTTLS.
    """

    noisy = False
    #: Seconds of silence before the server gives up (RFC 5321 4.5.3.2).
    command_timeout = COMMAND_TIMEOUT
    data_timeout = DATA_TIMEOUT

    def __init__(
        self,
        hostname: str,
        policy: ISMTPPolicy,
        limits: Limits,
        server_tls: ServerTLS | None,
        security: Security,
        metrics: Metrics,
        implicit_tls: bool = False,
    ) -> None:
        self.hostname = hostname
        self.policy = policy
        self.security = security
        self.metrics = metrics
        self.limits = limits
        self.server_tls = server_tls
        self.implicit_tls = implicit_tls

    def buildProtocol(self, addr: interfaces.IAddress | None) -> SMTPServerProtocol:
        return SMTPServerProtocol(self)
