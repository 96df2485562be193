"""
Scriptable SMTP sinks: real SMTP servers on loopback, running on the test's
own reactor, that record everything and misbehave on request.

    async with SMTPSink(Script(pipelining=False), host="127.0.0.2") as sink:
        ...  # connect to sink.host, sink.port
        assert sink.messages[0].data == b"Subject: hi\\r\\n\\r\\nbody\\r\\n"

Several fake MX hosts on one port number (Linux routes all of 127/8 to
loopback): C{sinks = await start_sinks(["127.0.0.2", "127.0.0.3"])}.

What a sink does is a L{Script}: which extensions it offers (PIPELINING,
SIZE, 8BITMIME, SMTPUTF8, STARTTLS with a self-signed certificate from
L{make_tls}, AUTH PLAIN/LOGIN), replies to give instead of the normal ones
(consumed in order, so "450, then accept on the next attempt" is one
list), and L{Fault}s: dropping the connection or going silent at a stage.

What it records: every connection (L{SinkConnection}: each read as it
arrived, each command line, TLS, HELO, AUTH user), and every message
(L{ReceivedMessage}: envelope, MAIL parameters, the content exactly as
received after un-dot-stuffing).  Un-dot-stuffing is written here
independently of gk's, so the two check each other.

About pipelining: C{SinkConnection.chunks} holds each C{dataReceived}
call.  On loopback one write of a few hundred bytes arrives as one read,
so MAIL, RCPT and DATA in one chunk shows they were written at once.
The converse, a client that waits for each reply, is checked with
C{Script.reply_delay}: replies then leave late, and C{input_while_busy}
counts the reads that came in while a reply was still pending.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from gk.tls import ServerTLS, write_self_signed

Stage = Literal["connect", "ehlo", "mail", "rcpt", "data", "body"]


@dataclass(frozen=True)
class Fault:
    """
    On one connection, at C{stage} (when that command arrives; "body": when
    the first bytes of the message arrive; "connect": instead of the
    greeting): C{"drop"} aborts the connection, C{"hang"} never answers
    again.
    """

    action: Literal["drop", "hang"]
    stage: Stage


@dataclass
class Script:
    """
    How a sink behaves.  Replies are full lines such as
    C{"450 4.2.0 try again"}; a multi-line reply separates its lines with
    "\\n" (C{"250-first\\n250 last"}).  The reply lists are consumed one
    entry per use; when empty, the sink answers normally.
    """

    hostname: str = "sink.example.test"
    greeting: str = "220 sink.example.test ESMTP sink"
    #: Replaces the reply to EHLO (e.g. "502 5.5.2 no" to force HELO).
    ehlo_reply: str | None = None
    pipelining: bool = True
    #: SIZE offered with this limit, enforced at MAIL and after DATA; None: not offered.
    size: int | None = 10_240_000
    eight_bit_mime: bool = True
    smtputf8: bool = True
    #: STARTTLS is offered when the sink has a certificate and this is true.
    starttls: bool = True
    #: MAIL before STARTTLS gets 530.
    require_tls: bool = False
    #: Offer AUTH and require it before MAIL, with this (username, password).
    auth: tuple[str, str] | None = None
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    #: Written right behind the 220 to STARTTLS, in plaintext (an injection).
    inject_after_starttls: bytes = b""
    #: Seconds to hold each reply back (see the module docstring).
    reply_delay: float = 0.0
    mail_replies: list[str] = field(default_factory=list)
    #: Per recipient (lower case), or "*" for any recipient without its own list.
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    #: Replies to the DATA command; a scripted 354 starts the data even
    #: without recipients.
    data_replies: list[str] = field(default_factory=list)
    #: Replies after the message (a 2xx records it in C{messages}).
    end_replies: list[str] = field(default_factory=list)
    #: One entry per connection, in order of arrival (None: no fault).
    faults: list[Fault | None] = field(default_factory=list)


@dataclass
class SinkConnection:
    """Everything one connection did."""

    index: int
    peer: str
    #: Each read as it arrived (decrypted after STARTTLS).
    chunks: list[bytes] = field(default_factory=list)
    #: Every command line (and AUTH response) in order, without CRLF.
    commands: list[str] = field(default_factory=list)
    tls: bool = False
    helo: str = ""
    auth_user: str | None = None
    #: Reads that arrived while a delayed reply was pending.
    input_while_busy: int = 0
    closed: bool = False

    def chunk_with(self, needle: bytes) -> bytes:
        """The first read that contains C{needle}."""
        for chunk in self.chunks:
            if needle in chunk:
                return chunk
        raise LookupError(needle)

    def verbs(self) -> list[str]:
        """The command verbs in order, e.g. C{["EHLO", "MAIL", "RCPT", "DATA"]}."""
        return [command.split(" ", 1)[0].upper() for command in self.commands]


@dataclass
class ReceivedMessage:
    """One message the sink accepted (or, in C{SMTPSink.data_blocks}, received)."""

    sender: str
    recipients: list[str]
    #: The content after un-dot-stuffing, without the terminating ".\\r\\n".
    data: bytes
    #: The content as it came over the wire (dot-stuffed).
    raw: bytes
    #: MAIL parameters, keywords upper case, e.g. {"SIZE": "123", "BODY": "8BITMIME"}.
    mail_params: dict[str, str | None]
    tls: bool
    auth_user: str | None
    connection: int
    #: The reply the sink gave after the message.
    reply: str = ""


def unstuff(raw: bytes) -> bytes:
    """RFC 5321 4.5.2, line by line: a leading "." of a line is removed."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def make_tls(directory: Path, hostname: str = "mx.example.test") -> ServerTLS:
    """A self-signed certificate for C{hostname}; its PEM is at C{.cert_path}."""
    cert, key = directory / f"{hostname}.crt", directory / f"{hostname}.key"
    write_self_signed(cert, key, hostname)
    return ServerTLS(cert, key)


class SMTPSink:
    """
    One listening SMTP sink.  C{start()} binds (port 0: ephemeral),
    C{await stop()} closes the port and every connection; or use
    C{async with}.  With C{implicit_tls} (and C{tls}) every connection
    starts with a TLS handshake, as on port 465.

    @ivar messages: accepted messages, in order.
    @ivar data_blocks: every DATA content received, accepted or not.
    @ivar connections: every connection, in order.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ServerTLS | None = None,
        implicit_tls: bool = False,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.script = script or Script()
        self.host = host
        self.port = port
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.messages: list[ReceivedMessage] = []
        self.data_blocks: list[ReceivedMessage] = []
        self.connections: list[SinkConnection] = []
        self._listening: Any = None
        self._open: set[_SinkProtocol] = set()
        self._lost: list[defer.Deferred[None]] = []
        self._arrived: list[tuple[int, defer.Deferred[None]]] = []

    def start(self) -> SMTPSink:
        """Listen; C{self.port} is the bound port afterwards."""
        factory: Any = Factory.forProtocol(lambda: _SinkProtocol(self))
        factory.noisy = False
        if self.implicit_tls:
            assert self.tls is not None, "implicit TLS needs a certificate"
            factory = TLSMemoryBIOFactory(self.tls, False, factory)
        self._listening = self.reactor.listenTCP(self.port, factory, interface=self.host)
        self.port = self._listening.getHost().port
        return self

    async def stop(self) -> None:
        if self._listening is not None:
            await self._listening.stopListening()
            self._listening = None
        for protocol in list(self._open):
            lost: defer.Deferred[None] = defer.Deferred()
            protocol.lost_waiters.append(lost)
            protocol.transport.abortConnection()  # type: ignore[union-attr]
            await lost

    async def __aenter__(self) -> SMTPSink:
        return self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_for_messages(self, count: int, seconds: float = 5.0) -> list[ReceivedMessage]:
        """Wait until C{count} messages were accepted (for tests of code that sends later)."""
        if len(self.messages) < count:
            arrived: defer.Deferred[None] = defer.Deferred()
            self._arrived.append((count, arrived))
            arrived.addTimeout(seconds, self.reactor)
            await arrived
        return self.messages

    def _accepted(self, message: ReceivedMessage) -> None:
        self.messages.append(message)
        waiting, self._arrived = self._arrived, []
        for count, arrived in waiting:
            if len(self.messages) >= count:
                arrived.callback(None)
            else:
                self._arrived.append((count, arrived))


def free_port(hosts: Sequence[str]) -> int:
    """
    A port that is free on every address in C{hosts} right now (racy: prefer
    L{start_sinks}, which binds them all at once).
    """
    for _ in range(50):
        sockets: list[socket.socket] = []
        try:
            first = socket.socket()
            sockets.append(first)
            first.bind((hosts[0], 0))
            port: int = first.getsockname()[1]
            for host in hosts[1:]:
                other = socket.socket()
                sockets.append(other)
                other.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no common free port on {hosts}")


async def start_sinks(
    hosts: Sequence[str],
    scripts: Sequence[Script] | None = None,
    *,
    port: int = 0,
    tls: ServerTLS | None = None,
    implicit_tls: bool = False,
) -> list[SMTPSink]:
    """
    Start one sink per address, all on the same port (C{port}, or one that
    is free on all of them).  Stop each with C{await sink.stop()}.
    """
    for _ in range(50):
        sinks: list[SMTPSink] = []
        try:
            for i, host in enumerate(hosts):
                script = scripts[i] if scripts else None
                bound = sinks[0].port if sinks else port
                sink = SMTPSink(script, host=host, port=bound, tls=tls, implicit_tls=implicit_tls)
                sinks.append(sink.start())
            return sinks
        except CannotListenError:
            for sink in sinks:
                await sink.stop()
            if port:
                raise
    raise RuntimeError(f"no common free port on {hosts}")


def _pop(replies: list[str], default: str) -> str:
    return replies.pop(0) if replies else default


def _parse_path(argument: str, keyword: str) -> tuple[str, dict[str, str | None]] | None:
    """C{"FROM:<a@b> SIZE=1"} -> ("a@b", {"SIZE": "1"}); None if malformed."""
    if argument[: len(keyword)].upper() != keyword or ">" not in argument:
        return None
    path, _, rest = argument[len(keyword) :].strip().partition(">")
    if not path.startswith("<"):
        return None
    params: dict[str, str | None] = {}
    for word in rest.split():
        key, eq, value = word.partition("=")
        params[key.upper()] = value if eq else None
    return path[1:], params


class _SinkProtocol(Protocol):
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink
        self.script = sink.script
        self.lost_waiters: list[defer.Deferred[None]] = []
        self._buffer = bytearray()
        self._data: bytearray | None = None  # in DATA: CRLF + content so far
        self._busy = False
        self._hung = False
        self._fault: Fault | None = None
        self._auth_step: Callable[[str], str] | None = None
        self._reset()

    def _reset(self) -> None:
        self._sender: str | None = None
        self._params: dict[str, str | None] = {}
        self._rcpts: list[str] = []

    # -- connection ------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        peer: Any = self.transport.getPeer()  # type: ignore[union-attr]
        self.conn = SinkConnection(len(self.sink.connections), f"{peer.host}:{peer.port}")
        self.conn.tls = self.sink.implicit_tls
        self.sink.connections.append(self.conn)
        self.sink._open.add(self)
        faults = self.script.faults
        self._fault = faults.pop(0) if faults else None
        if not self._faulted("connect"):
            self._respond(self.script.greeting)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.conn.closed = True
        self.sink._open.discard(self)
        for waiter in self.lost_waiters:
            waiter.callback(None)

    def _faulted(self, stage: Stage) -> bool:
        """Apply the connection's fault if it is for C{stage}; True if it was."""
        if self._fault is None or self._fault.stage != stage:
            return False
        if self._fault.action == "drop":
            self.transport.abortConnection()  # type: ignore[union-attr]
        self._hung = True
        return True

    def _respond(
        self, reply: str, then: Callable[[], None] | None = None, trailer: bytes = b""
    ) -> None:
        """Send a reply and C{trailer} in one write (late, with reply_delay), then run C{then}."""
        data = "".join(f"{line}\r\n" for line in reply.split("\n")).encode() + trailer

        def write() -> None:
            if not self.conn.closed:
                self.transport.write(data)  # type: ignore[union-attr]
                if then is not None:
                    then()

        def write_late() -> None:
            self._busy = False
            write()
            self._process()

        if self.script.reply_delay:
            self._busy = True
            self.sink.reactor.callLater(self.script.reply_delay, write_late)
        else:
            write()

    # -- input -------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.conn.chunks.append(data)
        if self._busy:
            self.conn.input_while_busy += 1
        self._buffer += data
        self._process()

    def _process(self) -> None:
        while not self._busy and not self._hung and not self.conn.closed and self._buffer:
            if self._data is not None:
                if not self._read_data():
                    return
                continue
            end = self._buffer.find(b"\r\n")
            if end == -1:
                return
            line = self._buffer[:end].decode("utf-8", errors="replace")
            del self._buffer[: end + 2]
            self.conn.commands.append(line)
            if self._auth_step is not None:
                step, self._auth_step = self._auth_step, None
                self._respond(step(line))
            else:
                self._command(line)

    def _read_data(self) -> bool:
        assert self._data is not None
        if self._buffer and self._faulted("body"):
            return False
        self._data += self._buffer
        del self._buffer[:]
        end = self._data.find(b"\r\n.\r\n")
        if end == -1:
            return False
        raw = bytes(self._data[2 : end + 2])
        self._buffer[:0] = self._data[end + 5 :]
        self._data = None
        self._end_of_data(raw)
        return True

    # -- commands ------------------------------------------------------------------

    def _command(self, line: str) -> None:
        verb, _, argument = line.partition(" ")
        verb = verb.upper()
        handler = getattr(self, f"_do_{verb.lower()}", None) if verb.isalpha() else None
        if handler is None:
            self._respond("502 5.5.2 Command not recognized")
        else:
            handler(argument)

    def _do_ehlo(self, argument: str) -> None:
        if self._faulted("ehlo"):
            return
        if self.script.ehlo_reply is not None:
            self._respond(self.script.ehlo_reply)
            return
        self._hello(argument)
        script, lines = self.script, [self.script.hostname]
        if script.pipelining:
            lines.append("PIPELINING")
        if script.size is not None:
            lines.append(f"SIZE {script.size}")
        if script.eight_bit_mime:
            lines.append("8BITMIME")
        if script.smtputf8:
            lines.append("SMTPUTF8")
        if self.sink.tls is not None and script.starttls and not self.conn.tls:
            lines.append("STARTTLS")
        if script.auth is not None:
            lines.append("AUTH " + " ".join(script.auth_mechanisms))
        lines.append("ENHANCEDSTATUSCODES")
        self._respond("\n".join(f"250-{line}" for line in lines[:-1]) + f"\n250 {lines[-1]}")

    def _do_helo(self, argument: str) -> None:
        if not self._faulted("ehlo"):
            self._hello(argument)
            self._respond(f"250 {self.script.hostname}")

    def _hello(self, argument: str) -> None:
        self.conn.helo = argument
        self._reset()

    def _do_starttls(self, argument: str) -> None:
        if self.sink.tls is None or not self.script.starttls or self.conn.tls:
            self._respond("502 5.5.1 STARTTLS not available")
            return

        def start() -> None:
            del self._buffer[:]  # the server side of CVE-2011-0411
            self.transport.startTLS(self.sink.tls)  # type: ignore[union-attr]
            self.conn.tls = True
            self.conn.helo = ""
            self._reset()

        self._respond(
            "220 2.0.0 Ready to start TLS", then=start, trailer=self.script.inject_after_starttls
        )

    def _do_auth(self, argument: str) -> None:
        credentials = self.script.auth
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if credentials is None or mechanism not in self.script.auth_mechanisms:
            self._respond("504 5.5.4 Unrecognized authentication type")
            return

        def check(user: str, password: str) -> str:
            if (user, password) != credentials:
                return "535 5.7.8 Authentication credentials invalid"
            self.conn.auth_user = user
            return "235 2.7.0 Authentication successful"

        def plain(response: str) -> str:
            try:
                _, user, password = base64.b64decode(response).decode().split("\0")
            except ValueError:
                return "501 5.5.2 Cannot decode response"
            return check(user, password)

        def login_password(user: str) -> Callable[[str], str]:
            return lambda response: check(user, base64.b64decode(response).decode())

        def login_user(response: str) -> str:
            self._auth_step = login_password(base64.b64decode(response).decode())
            return "334 UGFzc3dvcmQ6"

        if mechanism == "PLAIN" and initial:
            self._respond(plain(initial))
        elif mechanism == "PLAIN":
            self._auth_step = plain
            self._respond("334 ")
        else:
            self._auth_step = login_user
            self._respond("334 VXNlcm5hbWU6")

    def _do_mail(self, argument: str) -> None:
        if self._faulted("mail"):
            return
        script = self.script
        parsed = _parse_path(argument, "FROM:")
        if parsed is None:
            return self._respond("501 5.5.4 Syntax: MAIL FROM:<address>")
        sender, params = parsed
        size = params.get("SIZE")
        if script.require_tls and not self.conn.tls:
            reply = "530 5.7.0 Must issue a STARTTLS command first"
        elif script.auth is not None and self.conn.auth_user is None:
            reply = "530 5.7.0 Authentication required"
        elif self._sender is not None:
            reply = "503 5.5.1 Error: nested MAIL command"
        elif script.mail_replies:
            reply = script.mail_replies.pop(0)
        elif script.size is not None and size is not None and int(size) > script.size:
            reply = "552 5.3.4 Message size exceeds fixed limit"
        elif "SMTPUTF8" in params and not script.smtputf8:
            reply = "555 5.5.4 SMTPUTF8 not supported"
        elif not sender.isascii() and "SMTPUTF8" not in params:
            reply = "553 5.6.7 Non-ASCII address needs SMTPUTF8"
        else:
            reply = "250 2.1.0 Ok"
        if reply.startswith("2"):
            self._sender, self._params = sender, params
        self._respond(reply)

    def _do_rcpt(self, argument: str) -> None:
        if self._faulted("rcpt"):
            return
        parsed = _parse_path(argument, "TO:")
        if parsed is None:
            return self._respond("501 5.5.4 Syntax: RCPT TO:<address>")
        if self._sender is None:
            return self._respond("503 5.5.1 Error: need MAIL command")
        rcpt = parsed[0]
        scripted = self.script.rcpt_replies
        own = scripted.get(rcpt.lower())
        reply = _pop(own if own else scripted.get("*", []), "250 2.1.5 Ok")
        if reply.startswith("2"):
            self._rcpts.append(rcpt)
        self._respond(reply)

    def _do_data(self, argument: str) -> None:
        if self._faulted("data"):
            return
        if self.script.data_replies:
            reply = self.script.data_replies.pop(0)
        elif self._sender is None:
            reply = "503 5.5.1 Error: need MAIL command"
        elif not self._rcpts:
            reply = "554 5.5.1 Error: no valid recipients"
        else:
            reply = "354 End data with <CR><LF>.<CR><LF>"
        if reply.startswith("354"):
            self._data = bytearray(b"\r\n")  # the DATA line's CRLF: see _read_data
        self._respond(reply)

    def _end_of_data(self, raw: bytes) -> None:
        data = unstuff(raw)
        script = self.script
        if script.end_replies:
            reply = script.end_replies.pop(0)
        elif not self._rcpts:
            reply = "554 5.5.1 Error: no valid recipients"
        elif script.size is not None and len(data) > script.size:
            reply = "552 5.3.4 Message size exceeds fixed limit"
        else:
            reply = f"250 2.0.0 Ok: queued as {len(self.sink.data_blocks)}"
        message = ReceivedMessage(
            self._sender or "",
            list(self._rcpts),
            data,
            raw,
            dict(self._params),
            self.conn.tls,
            self.conn.auth_user,
            self.conn.index,
            reply,
        )
        self.sink.data_blocks.append(message)
        if reply.startswith("2"):
            self.sink._accepted(message)
        self._reset()
        self._respond(reply)

    def _do_rset(self, argument: str) -> None:
        self._reset()
        self._respond("250 2.0.0 Ok")

    def _do_noop(self, argument: str) -> None:
        self._respond("250 2.0.0 Ok")

    def _do_quit(self, argument: str) -> None:
        self._respond("221 2.0.0 Bye", then=self.transport.loseConnection)  # type: ignore[union-attr]
