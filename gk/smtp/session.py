"""
The SMTP session state machine: what each command means in each state.

Transport-free: the protocol (L{gk.smtp.protocol}) reads lines and message
bodies and calls L{SMTPSession.handle}, L{SMTPSession.auth_response},
L{SMTPSession.end_data} and L{SMTPSession.chunk}; each returns an
L{Outcome}, the reply plus what the protocol must do next.  Policy
decisions (who may send, which recipients exist, where a message goes)
are the L{ISMTPPolicy}'s.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

from gk.smtp.backend import Connection, ISMTPPolicy, Recipient, Transaction
from gk.smtp.parser import Address, Command, Reply

OK = Reply(250, "2.0.0", "Ok")
#: RFC 5321 4.5.3.1.10: recipients beyond the limit are deferred, the
#: others kept; the client sends the rest later.  Not a client error (it
#: does not count towards the error limit), as in Postfix.
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")


class Next(enum.Enum):
    """What the protocol does after sending the reply."""

    COMMAND = "command"
    DATA = "data"  # read a dot-terminated body, then call end_data()
    AUTH = "auth"  # read one base64 line, then call auth_response()
    STARTTLS = "starttls"  # discard buffered input, start TLS, then reset
    CLOSE = "close"


@dataclass(frozen=True)
class Outcome:
    reply: Reply
    next: Next = Next.COMMAND


@dataclass(frozen=True)
class Limits:
    max_message_size: int = 26214400
    max_recipients: int = 100


class SMTPSession:
    """
    One client's conversation.

    @param tls_available: whether STARTTLS can be offered on this listener.
    """

    def __init__(
        self,
        hostname: str,
        policy: ISMTPPolicy,
        connection: Connection,
        limits: Limits,
        tls_available: bool,
    ) -> None:
        self.hostname = hostname
        self.policy = policy
        self.connection = connection
        self.limits = limits
        self.tls_available = tls_available
        self.transaction: Transaction | None = None
        self._auth: _AuthExchange | None = None
        #: BDAT: the chunks so far, and whether an error spoilt the transaction.
        self._chunks: list[bytes] = []
        self._chunk_bytes = 0
        self._bdat_failed: Reply | None = None

    # -- the command dispatcher -----------------------------------------

    async def handle(self, command: Command) -> Outcome:
        handler = getattr(self, f"_do_{command.verb.lower()}", None)
        if handler is None:
            return Outcome(Reply(502, "5.5.1", "Command not implemented"))
        outcome: Outcome = await handler(command)
        return outcome

    async def _do_helo(self, command: Command) -> Outcome:
        self._hello(command.argument, esmtp=False)
        return Outcome(Reply(250, "", self.hostname))

    async def _do_ehlo(self, command: Command) -> Outcome:
        self._hello(command.argument, esmtp=True)
        lines = [self.hostname, *self.extensions()]
        return Outcome(Reply(250, "", "\n".join(lines)))

    def _hello(self, name: str, esmtp: bool) -> None:
        self.connection.helo = name
        self.connection.esmtp = esmtp
        self._reset_transaction()

    def extensions(self) -> list[str]:
        extensions = [
            "PIPELINING",
            f"SIZE {self.limits.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
        ]
        if self.tls_available and not self.connection.tls:
            extensions.append("STARTTLS")
        if self.policy.offers_auth and self.connection.tls and self.connection.account is None:
            extensions.append("AUTH PLAIN LOGIN")
        return extensions

    async def _do_starttls(self, command: Command) -> Outcome:
        if self.connection.tls:
            return Outcome(Reply(503, "5.5.1", "TLS already active"))
        if not self.tls_available:
            return Outcome(Reply(502, "5.5.1", "STARTTLS not available"))
        return Outcome(Reply(220, "2.0.0", "Ready to start TLS"), Next.STARTTLS)

    def tls_started(self, description: str) -> None:
        """
        TLS is up: forget everything said before it (RFC 3207 4.2), so a
        man in the middle cannot have injected state in plaintext.
        """
        self.connection.tls = description
        self.connection.helo = ""
        self.connection.esmtp = False
        self.connection.account = None
        self._reset_transaction()

    # -- AUTH (RFC 4954) -------------------------------------------------

    async def _do_auth(self, command: Command) -> Outcome:
        if not self.policy.offers_auth:
            return Outcome(Reply(502, "5.5.1", "AUTH not available on this port"))
        if not self.connection.tls:
            return Outcome(Reply(530, "5.7.0", "Must issue a STARTTLS command first"))
        if not self.connection.helo:
            return Outcome(Reply(503, "5.5.1", "Send EHLO first"))
        if self.connection.account is not None:
            return Outcome(Reply(503, "5.5.1", "Already authenticated"))
        if self.transaction is not None:
            return Outcome(Reply(503, "5.5.1", "AUTH not allowed during a mail transaction"))
        if command.mechanism not in ("PLAIN", "LOGIN"):
            return Outcome(Reply(504, "5.5.4", "Unrecognized authentication mechanism"))
        self._auth = _AuthExchange(command.mechanism)
        if command.initial_response is not None:
            return await self.auth_response(command.initial_response.encode("ascii", "replace"))
        return Outcome(self._auth.challenge(), Next.AUTH)

    async def auth_response(self, line: bytes) -> Outcome:
        """The client's answer to a 334 challenge."""
        exchange = self._auth
        if exchange is None:
            return Outcome(Reply(503, "5.5.1", "No authentication in progress"))
        if line.strip() == b"*":
            self._auth = None
            return Outcome(Reply(501, "5.7.0", "Authentication cancelled"))
        try:
            decoded = base64.b64decode(line.strip(), validate=True) if line.strip() != b"=" else b""
        except (binascii.Error, ValueError):
            self._auth = None
            return Outcome(Reply(501, "5.5.2", "Cannot decode the response"))
        credentials = exchange.feed(decoded)
        if credentials is None:
            return Outcome(exchange.challenge(), Next.AUTH)
        self._auth = None
        if isinstance(credentials, Reply):
            return Outcome(credentials)
        username, password = credentials
        account = await self.policy.authenticate(self.connection, username, password)
        if isinstance(account, Reply):
            return Outcome(account)
        if account is None:
            return Outcome(Reply(535, "5.7.8", "Authentication credentials invalid"))
        self.connection.account = account
        return Outcome(Reply(235, "2.7.0", "Authentication successful"))

    # -- the mail transaction ---------------------------------------------

    async def _do_mail(self, command: Command) -> Outcome:
        if not self.connection.helo:
            return Outcome(Reply(503, "5.5.1", "Send HELO/EHLO first"))
        if self.transaction is not None:
            return Outcome(Reply(503, "5.5.1", "Nested MAIL command"))
        if self.policy.requires_auth and self.connection.account is None:
            return Outcome(Reply(530, "5.7.0", "Authentication required"))
        refusal = self._check_mail_params(command)
        if refusal is not None:
            return Outcome(refusal)
        transaction = Transaction(command.address, command.params)
        if command.address is not None and command.address.utf8 and not transaction.smtputf8:
            return Outcome(Reply(553, "5.6.7", "Non-ASCII addresses require SMTPUTF8"))
        refusal = await self.policy.check_sender(self.connection, transaction)
        if refusal is not None:
            return Outcome(refusal)
        self.transaction = transaction
        return Outcome(OK)

    def _check_mail_params(self, command: Command) -> Reply | None:
        esmtp = self.connection.esmtp
        for key, value in command.params.items():
            if not esmtp:
                return Reply(555, "5.5.4", "Parameters need EHLO")
            if key == "SIZE":
                if value is None or not value.isdigit() or not value.isascii():
                    return Reply(501, "5.5.4", "Bad SIZE value")
                if int(value) > self.limits.max_message_size:
                    return Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            elif key == "BODY":
                if (value or "").upper() not in ("7BIT", "8BITMIME"):
                    return Reply(555, "5.5.4", "Unsupported BODY type")
            elif key == "SMTPUTF8":
                if value is not None:
                    return Reply(555, "5.5.4", "SMTPUTF8 takes no value")
            elif key == "AUTH":
                continue  # RFC 4954 5: accepted, not trusted
            else:
                return Reply(555, "5.5.4", f"Unsupported parameter {key}")
        return None

    async def _do_rcpt(self, command: Command) -> Outcome:
        transaction = self.transaction
        if transaction is None:
            return Outcome(Reply(503, "5.5.1", "Need MAIL before RCPT"))
        if command.params:
            return Outcome(Reply(555, "5.5.4", "RCPT parameters are not supported"))
        if len(transaction.recipients) >= self.limits.max_recipients:
            return Outcome(TOO_MANY_RECIPIENTS)
        address = command.address
        assert address is not None
        if address.utf8 and not transaction.smtputf8:
            return Outcome(Reply(553, "5.6.7", "Non-ASCII addresses require SMTPUTF8"))
        recipient = Recipient(address)
        refusal = await self.policy.check_recipient(self.connection, transaction, recipient)
        if refusal is not None:
            return Outcome(refusal)
        transaction.recipients.append(recipient)
        return Outcome(OK)

    async def _do_data(self, command: Command) -> Outcome:
        refusal = self._ready_for_content()
        if refusal is not None:
            return Outcome(refusal)
        if self._chunks or self._bdat_failed is not None:
            return Outcome(Reply(503, "5.5.1", "DATA not allowed after BDAT"))
        return Outcome(Reply(354, "", "End data with <CR><LF>.<CR><LF>"), Next.DATA)

    def _ready_for_content(self) -> Reply | None:
        if self.transaction is None:
            return Reply(503, "5.5.1", "Need MAIL command")
        if not self.transaction.recipients:
            return Reply(554, "5.5.1", "No valid recipients")
        return None

    async def end_data(self, body: bytes | None) -> Outcome:
        """
        The dot-terminated body arrived (dot-stuffing undone); L{None}
        means it was larger than the limit and was discarded.
        """
        if body is None:
            self._reset_transaction()
            return Outcome(Reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
        return Outcome(await self._deliver(body))

    async def chunk(self, size: int, data: bytes | None, last: bool) -> Outcome:
        """
        One BDAT chunk was read in full (C{data} L{None}: over the size
        limit, discarded).  Errors are only reported after the chunk's
        bytes were consumed, so the client stays in step.
        """
        refusal = self._ready_for_content()
        if refusal is not None:
            return Outcome(refusal)
        if self._bdat_failed is not None:
            failed = self._bdat_failed
            if last:
                self._reset_transaction()
            return Outcome(failed)
        self._chunk_bytes += size
        if data is None or self._chunk_bytes > self.limits.max_message_size:
            failed = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            self._chunks = []
            self._bdat_failed = failed
            if last:
                self._reset_transaction()  # (which forgets _bdat_failed)
            return Outcome(failed)
        self._chunks.append(data)
        if not last:
            return Outcome(Reply(250, "2.0.0", f"{size} octets received"))
        return Outcome(await self._deliver(b"".join(self._chunks)))

    async def _deliver(self, body: bytes) -> Reply:
        transaction = self.transaction
        assert transaction is not None
        try:
            reply = await self.policy.deliver(self.connection, transaction, body)
        finally:
            self._reset_transaction()
        return reply

    def _reset_transaction(self) -> None:
        self.transaction = None
        self._chunks = []
        self._chunk_bytes = 0
        self._bdat_failed = None

    # -- the rest ------------------------------------------------------------

    async def _do_rset(self, command: Command) -> Outcome:
        self._reset_transaction()
        return Outcome(OK)

    async def _do_noop(self, command: Command) -> Outcome:
        return Outcome(OK)

    async def _do_vrfy(self, command: Command) -> Outcome:
        return Outcome(Reply(252, "2.0.0", "Cannot VRFY user, but will accept message"))

    async def _do_expn(self, command: Command) -> Outcome:
        return Outcome(Reply(502, "5.5.1", "EXPN not available"))

    async def _do_help(self, command: Command) -> Outcome:
        return Outcome(Reply(214, "2.0.0", "See RFC 5321"))

    async def _do_quit(self, command: Command) -> Outcome:
        return Outcome(Reply(221, "2.0.0", "Bye"), Next.CLOSE)


class _AuthExchange:
    """The steps of one AUTH PLAIN or LOGIN exchange."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.username: str | None = None

    def challenge(self) -> Reply:
        if self.mechanism == "PLAIN":
            return Reply(334, "", "")
        prompt = b"Username:" if self.username is None else b"Password:"
        return Reply(334, "", base64.b64encode(prompt).decode("ascii"))

    def feed(self, decoded: bytes) -> tuple[str, str] | Reply | None:
        """Credentials when complete, a refusal, or None for "ask again"."""
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            return Reply(501, "5.5.2", "Credentials must be UTF-8")
        if self.mechanism == "PLAIN":
            parts = text.split("\x00")
            if len(parts) != 3:
                return Reply(501, "5.5.2", "Malformed PLAIN response")
            authzid, authcid, password = parts
            if authzid and authzid != authcid:
                return Reply(535, "5.7.8", "Authorization identity not allowed")
            return authcid, password
        if self.username is None:
            self.username = text
            return None
        return self.username, text


def describe_sender(address: Address | None) -> str:
    return "<>" if address is None else f"<{address}>"
