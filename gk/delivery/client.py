"""
The outbound SMTP client: one connection to a remote MX or a smarthost,
driven by C{async} calls, several messages per connection.

    client = await connect_smtp(reactor, "192.0.2.25", 25, timeout=30)  # gk.delivery.connect
    await client.ehlo("mail.example.org")
    if "STARTTLS" in client.extensions:
        await client.starttls(UnverifiedClientTLS("mx.example.net"))
    result = await client.send("alice@example.org", ["bob@example.net"], message)
    await client.quit()

What it does that Twisted's ESMTPClient does not: MAIL, every RCPT and
DATA leave in one write when the server offers PIPELINING (RFC 2920);
MAIL carries SIZE=, BODY=8BITMIME and SMTPUTF8 as advertised; the body is
normalised to CRLF without doubling CRs (L{gk.delivery.replies.dot_stuff})
and written as the transport can take it.  After STARTTLS whatever the
server sent behind its 220 is thrown away unread (the client side of
CVE-2011-0411).

Replies to MAIL, RCPT and DATA are results (L{SendResult}), never
exceptions; everything else that goes wrong raises one of
L{gk.delivery.client_errors}.  One call at a time per client: a second
call while one is running raises L{SMTPClientError}.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from gk.delivery.client_errors import (
    SMTPClientError,
    SMTPConnectError,
    SMTPConnectionLost,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from gk.delivery.replies import (
    END_OF_DATA,
    Extensions,
    Reply,
    ReplyLineError,
    ReplyReader,
    dot_stuff,
    stuffed_size,
)

__all__ = [
    "SMTPClient",
    "SMTPClientError",
    "SMTPConnectError",
    "SMTPConnectionLost",
    "SMTPProtocolError",
    "SMTPReplyError",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "SendResult",
]

#: RFC 5321 4.5.3.2: 5 minutes for a reply, 10 for the one after the data.
REPLY_TIMEOUT = 300.0
DATA_TIMEOUT = 600.0
#: How long QUIT waits for its reply and the close before dropping the connection.
QUIT_TIMEOUT = 10.0
#: The body is written in pieces of this size, as fast as the transport takes them.
WRITE_CHUNK = 64 * 1024

_T = TypeVar("_T")


@dataclass
class SendResult:
    """
    How the server answered one message.

    @ivar mail_reply: the reply to MAIL, or a local refusal (L{Reply.local})
        when the message was not offered at all (too big for SIZE,
        SMTPUTF8 needed but not offered).
    @ivar recipients: every recipient's outcome: its RCPT reply, replaced
        for accepted recipients by the reply that ended DATA (the refusal
        of DATA, or the final reply after the message).  When MAIL was
        refused, every recipient has the MAIL reply.
    @ivar data_reply: the refusal of the DATA command or the reply after
        the message; L{None} when DATA was not sent.
    @ivar pipelined: MAIL, RCPT and DATA went out in one write.
    """

    mail_reply: Reply
    recipients: dict[str, Reply] = field(default_factory=dict)
    data_reply: Reply | None = None
    pipelined: bool = False

    @property
    def delivered(self) -> list[str]:
        """The recipients the server took responsibility for."""
        return [r for r, reply in self.recipients.items() if reply.positive]


@implementer(IHandshakeListener, IPushProducer)
class SMTPClient(Protocol):
    """
    One client connection; made by L{connect_smtp}.

    @ivar extensions: what the last EHLO advertised (empty after HELO).
    @ivar greeting: the server's 220.
    @ivar tls_version: e.g. C{"TLSv1.3"} once STARTTLS succeeded, else L{None}.
    @ivar tls_cipher: e.g. C{"TLS_AES_256_GCM_SHA384"}, else L{None}.
    @ivar injected_bytes: how many bytes the server sent behind its reply
        to STARTTLS (thrown away; anything but 0 is suspicious).
    """

    def __init__(
        self,
        clock: IReactorTime,
        peer: str = "",
        *,
        reply_timeout: float = REPLY_TIMEOUT,
        data_timeout: float = DATA_TIMEOUT,
    ) -> None:
        self.clock = clock
        self.peer = peer
        self.reply_timeout = reply_timeout
        self.data_timeout = data_timeout
        self.extensions = Extensions()
        self.greeting: Reply | None = None
        self.helo_name: str | None = None
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.injected_bytes = 0
        self._reader = ReplyReader()
        self._replies: deque[Reply] = deque()
        self._outstanding = 1  # the greeting
        self._waiter: Deferred[Reply] | None = None
        self._handshake: Deferred[None] | None = None
        self._resume: Deferred[None] | None = None
        self._lost: list[Deferred[None]] = []
        self._paused = False
        self._busy = False
        self._closed = False
        self._aborting = False
        self._error: SMTPClientError | None = None
        self._error_raised = False
        self._discard_after_reply = False
        self._discarding = False

    # -- state ---------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether STARTTLS succeeded on this connection."""
        return self.tls_version is not None

    @property
    def is_open(self) -> bool:
        """Whether the connection can still take commands."""
        return self._error is None and not self._closed

    # -- the API -------------------------------------------------------------

    async def ehlo(self, name: str) -> Extensions:
        """
        Say EHLO (HELO when EHLO gets a 5xx) and learn the extensions.

        @raise SMTPReplyError: EHLO got a 4xx, or EHLO and HELO were refused.
        """
        with self._exclusive():
            return await self._hello(name)

    async def starttls(self, context_factory: object) -> Extensions:
        """
        Start TLS, wait for the handshake, then say EHLO again with the
        previous name (RFC 3207 4.2: the server forgets everything).

        @param context_factory: anything C{transport.startTLS} takes, e.g.
            C{optionsForClientTLS(hostname)} (verifying) or
            L{UnverifiedClientTLS} (opportunistic).
        @return: the extensions advertised over TLS.
        @raise SMTPReplyError: STARTTLS was refused (still in plaintext).
        @raise SMTPTLSError: the handshake failed, e.g. the certificate did
            not verify; the connection is closed.
        """
        with self._exclusive():
            if self.helo_name is None:
                raise SMTPClientError("starttls() needs ehlo() first")
            if self.tls:
                raise SMTPClientError("TLS is already active")
            self._discard_after_reply = True
            self._write_commands(b"STARTTLS")
            try:
                reply = await self._read_reply()
            finally:
                self._discard_after_reply = self._discarding = False
            if reply.code != 220:
                raise SMTPReplyError(reply, "STARTTLS")
            handshake: Deferred[None] = Deferred()
            self._handshake = handshake
            self._reader = ReplyReader()
            self._tx.startTLS(context_factory)
            await self._tls_handshake(handshake)
            self.extensions = Extensions()
            return await self._hello(self.helo_name)

    async def auth(self, username: str, password: str, *, allow_plaintext: bool = False) -> Reply:
        """
        Log in with AUTH PLAIN, or AUTH LOGIN when PLAIN is not offered.

        @param allow_plaintext: send the password even without TLS.
        @return: the server's 235.
        @raise SMTPReplyError: the server refused (535 and the like).
        @raise SMTPClientError: no TLS (and not allowed), or no usable mechanism.
        """
        with self._exclusive():
            if not self.tls and not allow_plaintext:
                raise SMTPClientError(f"not sending a password to {self.peer} without TLS")
            mechanisms = self.extensions.auth_mechanisms
            user, secret = username.encode("utf-8"), password.encode("utf-8")
            if "PLAIN" in mechanisms:
                token = base64.b64encode(b"\0" + user + b"\0" + secret)
                reply = await self._command(b"AUTH PLAIN " + token)
                if reply.code == 334:  # a server that ignores initial responses
                    reply = await self._command(token)
            elif "LOGIN" in mechanisms:
                reply = await self._command(b"AUTH LOGIN")
                for answer in (user, secret):
                    if reply.code != 334:
                        break
                    reply = await self._command(base64.b64encode(answer))
            else:
                offered = " ".join(sorted(mechanisms)) or "none"
                raise SMTPClientError(f"{self.peer} offers no usable AUTH (offered: {offered})")
            if reply.code != 235:
                raise SMTPReplyError(reply, "AUTH")
            return reply

    async def send(
        self,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        smtputf8: bool = False,
        eight_bit: bool | None = None,
    ) -> SendResult:
        """
        Offer one message; afterwards the connection is ready for the next
        (RSET is sent when a transaction was left open).

        @param sender: the reverse path, C{""} for the null sender.
        @param recipients: duplicates are sent once.
        @param message: the message; line endings are normalised to CRLF.
        @param smtputf8: the message needs SMTPUTF8 (also implied by a
            non-ASCII address).  Not offered: local 550 5.6.7 for all.
        @param eight_bit: send BODY=8BITMIME (when offered); L{None} means
            "if the message has 8-bit bytes".  Without 8BITMIME the
            message goes as it is.
        @raise SMTPTimeoutError, SMTPConnectionLost, SMTPProtocolError: the
            connection broke; the message may or may not have been taken.
        """
        rcpts = list(dict.fromkeys(recipients))
        if not rcpts:
            raise ValueError("send() needs at least one recipient")
        for address in (sender, *rcpts):
            _check_argument(address)
        with self._exclusive():
            self._ensure_open()
            data = dot_stuff(message)
            size = stuffed_size(data)
            utf8 = smtputf8 or not all(a.isascii() for a in (sender, *rcpts))
            refusal = self._local_refusal(size, utf8)
            if refusal is not None:
                return SendResult(refusal, dict.fromkeys(rcpts, refusal))
            params = []
            if "SIZE" in self.extensions:
                params.append(f" SIZE={size}")
            if (not message.isascii() if eight_bit is None else eight_bit) and (
                "8BITMIME" in self.extensions
            ):
                params.append(" BODY=8BITMIME")
            if utf8:
                params.append(" SMTPUTF8")
            mail = f"MAIL FROM:<{sender}>{''.join(params)}".encode()
            rcpt_commands = [f"RCPT TO:<{r}>".encode() for r in rcpts]
            if "PIPELINING" in self.extensions:
                return await self._send_pipelined(mail, rcpts, rcpt_commands, data)
            return await self._send_lockstep(mail, rcpts, rcpt_commands, data)

    async def rset(self) -> Reply:
        """Abandon the transaction. @raise SMTPReplyError: not 2xx."""
        with self._exclusive():
            reply = await self._command(b"RSET")
            if not reply.positive:
                raise SMTPReplyError(reply, "RSET")
            return reply

    async def noop(self) -> Reply:
        """Check that the server still answers. @raise SMTPReplyError: not 2xx."""
        with self._exclusive():
            reply = await self._command(b"NOOP")
            if not reply.positive:
                raise SMTPReplyError(reply, "NOOP")
            return reply

    async def quit(self) -> None:
        """
        Say QUIT (if the connection is usable), close, and wait until it is
        closed.  Never raises: a peer that is already gone is fine.
        """
        if self._closed:
            return
        if self.is_open and not self._busy:
            with suppress(SMTPClientError):
                await self._command(b"QUIT", limit=min(self.reply_timeout, QUIT_TIMEOUT))
        if self._closed:
            return
        lost: Deferred[None] = Deferred()
        self._lost.append(lost)
        self._tx.loseConnection()
        timer = self.clock.callLater(QUIT_TIMEOUT, self._tx.abortConnection)
        await lost
        if timer.active():
            timer.cancel()

    def abort(self) -> None:
        """Drop the connection at once; a pending call raises L{SMTPConnectionLost}."""
        self._fail(SMTPConnectionLost(f"connection to {self.peer} aborted by the client"))

    # -- sending ---------------------------------------------------------------

    def _local_refusal(self, size: int, utf8: bool) -> Reply | None:
        limit = self.extensions.size_limit
        if limit is not None and size > limit:
            text = f"message size {size} exceeds size limit {limit} of {self.peer}"
            return Reply.make_local(552, "5.3.4", text)
        if utf8 and "SMTPUTF8" not in self.extensions:
            text = f"SMTPUTF8 is required, but was not offered by {self.peer}"
            return Reply.make_local(550, "5.6.7", text)
        return None

    async def _send_pipelined(
        self, mail: bytes, rcpts: list[str], commands: list[bytes], data: bytes
    ) -> SendResult:
        self._write_commands(mail, *commands, b"DATA")
        mail_reply = await self._read_reply()
        replies = {rcpt: await self._read_reply() for rcpt in rcpts}
        data_reply = await self._read_reply()
        result = SendResult(mail_reply, pipelined=True)
        result.recipients = replies if mail_reply.positive else dict.fromkeys(rcpts, mail_reply)
        accepted = [r for r, reply in result.recipients.items() if reply.positive]
        if data_reply.code == 354 and not accepted:
            # RFC 2920 3.1: DATA was accepted with no recipient; end it empty.
            await self._command(b".", limit=self.data_timeout)
            return result
        return await self._data_phase(result, accepted, data_reply, data)

    async def _send_lockstep(
        self, mail: bytes, rcpts: list[str], commands: list[bytes], data: bytes
    ) -> SendResult:
        mail_reply = await self._command(mail)
        result = SendResult(mail_reply, dict.fromkeys(rcpts, mail_reply))
        if not mail_reply.positive:
            return result
        for rcpt, command in zip(rcpts, commands, strict=True):
            result.recipients[rcpt] = await self._command(command)
        accepted = [r for r, reply in result.recipients.items() if reply.positive]
        if not accepted:
            await self._reset_quietly()
            return result
        return await self._data_phase(result, accepted, await self._command(b"DATA"), data)

    async def _data_phase(
        self, result: SendResult, accepted: list[str], data_reply: Reply, data: bytes
    ) -> SendResult:
        """After the reply to DATA: send the body or clean up."""
        if data_reply.code == 354:
            data_reply = await self._send_body(data)
        elif result.mail_reply.positive:
            await self._reset_quietly()
        result.data_reply = data_reply
        for rcpt in accepted:
            result.recipients[rcpt] = data_reply
        return result

    async def _send_body(self, data: bytes) -> Reply:
        """Write the stuffed body and the end marker; return the final reply."""
        self._outstanding += 1  # an early reply (552 and close) is the answer
        self._tx.registerProducer(self, True)
        try:
            for start in range(0, len(data), WRITE_CHUNK):
                if self._paused:
                    resume: Deferred[None] = Deferred()
                    self._resume = resume
                    await self._wait(resume, self.reply_timeout, "room to write the message")
                if self._replies or self._error is not None:
                    break
                self._tx.write(data[start : start + WRITE_CHUNK])
            else:
                self._tx.write(END_OF_DATA)
        finally:
            if not self._closed:
                self._tx.unregisterProducer()
        if self._replies and self._error is None:
            # Answered before the end of the message: the rest of what was
            # written would be read as commands; this connection is done.
            reply = self._replies.popleft()
            self._fail(SMTPConnectionLost(f"{self.peer} answered before the end of data"))
            return reply
        return await self._read_reply(self.data_timeout)

    async def _reset_quietly(self) -> None:
        """RSET after a failed transaction; if that fails, close the connection."""
        try:
            reply = await self._command(b"RSET")
        except SMTPClientError:
            return
        if not reply.positive:
            self._fail(SMTPConnectionLost(f"closed: {self.peer} refused RSET: {reply}"))

    async def _tls_handshake(self, handshake: Deferred[None]) -> None:
        """Wait for the handshake that C{handshake} reports, note what was agreed."""
        await self._wait(handshake, self.reply_timeout, "TLS handshake")
        handle = self._tx.getHandle()
        self.tls_version = handle.get_protocol_version_name() or "TLS"
        self.tls_cipher = handle.get_cipher_name()

    async def _hello(self, name: str) -> Extensions:
        _check_argument(name)
        reply = await self._command(f"EHLO {name}".encode())
        if reply.positive:
            self.extensions = Extensions.from_reply(reply)
        elif reply.permanent:
            reply = await self._command(f"HELO {name}".encode())
            if not reply.positive:
                raise SMTPReplyError(reply, "HELO")
            self.extensions = Extensions()
        else:
            raise SMTPReplyError(reply, "EHLO")
        self.helo_name = name
        return self.extensions

    # -- commands and replies ---------------------------------------------------

    @property
    def _tx(self) -> Any:
        assert self.transport is not None
        return self.transport

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._busy:
            raise SMTPClientError("another call on this SMTP client is still running")
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    def _ensure_open(self) -> None:
        if self._error is None:
            return
        if self._error_raised:
            raise SMTPConnectionLost(f"connection to {self.peer} is closed ({self._error})")
        self._error_raised = True
        raise self._error

    def _write_commands(self, *commands: bytes) -> None:
        """Write commands in one write, each expecting one reply."""
        self._ensure_open()
        self._outstanding += len(commands)
        self._tx.write(b"".join(command + b"\r\n" for command in commands))

    async def _command(self, command: bytes, limit: float | None = None) -> Reply:
        self._write_commands(command)
        return await self._read_reply(limit)

    async def _read_reply(self, limit: float | None = None) -> Reply:
        """The next reply, waiting at most C{limit} (default: reply_timeout) seconds."""
        if self._replies:
            return self._replies.popleft()
        self._ensure_open()
        waiter: Deferred[Reply] = Deferred()
        self._waiter = waiter
        return await self._wait(waiter, limit or self.reply_timeout, "reply")

    async def _wait(self, waiter: Deferred[_T], limit: float, what: str) -> _T:
        def expire() -> None:
            self._fail(SMTPTimeoutError(f"no {what} from {self.peer} within {limit:g} s"))

        timer = self.clock.callLater(limit, expire)
        try:
            return await waiter
        finally:
            if timer.active():
                timer.cancel()

    def _fail(self, exc: SMTPClientError) -> None:
        """Fail whatever is pending with C{exc} and drop the connection."""
        if self._error is None:
            self._error = exc
        # A waiter with replies queued gets them first (see dataReceived).
        pending = [None if self._replies else self._waiter, self._handshake, self._resume]
        if not self._replies:
            self._waiter = None
        self._handshake = self._resume = None
        for waiter in pending:
            if waiter is not None and not waiter.called:
                self._error_raised = True
                waiter.errback(self._error)
        if not self._closed and not self._aborting and self.transport is not None:
            self._aborting = True
            self._tx.abortConnection()

    # -- Protocol, IHandshakeListener, IPushProducer -------------------------------

    def connectionMade(self) -> None:
        # Commands are small writes; without this each waits for an ACK.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)

    def dataReceived(self, data: bytes) -> None:
        if self._discarding:
            self.injected_bytes += len(data)
            return
        if self._error is not None:
            return
        self._reader.feed(data)
        problem: SMTPClientError | None = None
        try:
            while (reply := self._reader.next_reply()) is not None:
                if self._outstanding == 0:
                    # Sent before any command asked for it (checked before
                    # anyone is woken up, who might send a command).
                    if reply.code == 421:
                        why = f"{self.peer} is closing the connection: {reply}"
                        problem = SMTPConnectionLost(why)
                    else:
                        problem = SMTPProtocolError(f"unexpected reply from {self.peer}: {reply}")
                    break
                self._outstanding -= 1
                self._replies.append(reply)
                if self._discard_after_reply:
                    # The reply to STARTTLS: nothing after it may be read.
                    self._discarding = True
                    self.injected_bytes += self._reader.discard()
                    break
        except ReplyLineError as e:
            problem = SMTPProtocolError(f"{self.peer}: {e}")
        if problem is not None:
            self._fail(problem)
        waiter = self._waiter
        if waiter is not None and self._replies:
            self._waiter = None
            waiter.callback(self._replies.popleft())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        if self._handshake is not None:
            why = _ssl_reason(reason.value) or reason.getErrorMessage()
            self._fail(SMTPTLSError(f"TLS handshake with {self.peer} failed: {why}"))
        else:
            why = reason.getErrorMessage()
            self._fail(SMTPConnectionLost(f"connection to {self.peer} lost: {why}"))
        lost, self._lost = self._lost, []
        for waiter in lost:
            waiter.callback(None)

    def handshakeCompleted(self) -> None:
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            handshake.callback(None)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        resume, self._resume = self._resume, None
        if resume is not None:
            resume.callback(None)

    def stopProducing(self) -> None:
        """Nothing to stop here: connectionLost follows and fails the wait."""


def _check_argument(text: str) -> None:
    """Refuse control characters, which could inject commands."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(f"control characters in SMTP argument {text!r}")


def _ssl_reason(value: BaseException | None) -> str:
    """
    Why a handshake failed, readably: C{"certificate verify failed"} out of
    pyOpenSSL's error list, or the names a certificate did not match.
    """
    if isinstance(value, VerificationError):
        names = []
        for mismatch in value.errors:
            service_id = getattr(mismatch, "mismatched_id", None)
            name = getattr(service_id, "hostname", None) or getattr(service_id, "ip", service_id)
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return f"certificate does not match {', '.join(names)}"
    if not isinstance(value, SSL.Error) or not value.args or not isinstance(value.args[0], list):
        return ""
    return "; ".join(str(item[-1]) for item in value.args[0] if isinstance(item, tuple) and item)
