"""
Protocol edge cases of the MX listener, over raw TCP sockets: pipelining,
STARTTLS injection, BDAT, DATA framing, limits, timeouts and the
anti-abuse limits.  Each refusal checks the exact reply and enhanced
status codes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from gk.smtp.protocol import SMTPFactory, SMTPServerProtocol
from tests.helpers import in_thread
from tests.smtp.conftest import MailServer
from tests.smtp.rawclient import RawClient, client_part, ehlo, expect

MESSAGE = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: Edge cases\r\n"
    b"Message-ID: <edge@example.org>\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
)

TRANSACTION = b"MAIL FROM:<carol@example.org>\r\nRCPT TO:<alice@example.test>\r\n"


def mx(server: MailServer) -> RawClient:
    """A connection to the MX listener, greeted."""
    client = RawClient(server.mx_port)
    try:
        expect(client.greeting, 220)
        assert client.greeting.text == "mail.example.test ESMTP gk"
    except BaseException:
        client.close()
        raise
    return client


def mx_factory(server: MailServer) -> SMTPFactory:
    [factory] = [listener.factory for listener in server.tree.listeners if listener.role == "smtp"]
    assert isinstance(factory, SMTPFactory)
    return factory


def stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2 dot-stuffing, as a client does it."""
    return b"\r\n".join(
        b"." + line if line.startswith(b".") else line for line in message.split(b"\r\n")
    )


def quit_and_wait_for_close(client: RawClient) -> None:
    expect(client.command("QUIT"), 221, "2.0.0")
    assert client.read_until_closed() == b""


# -- 1. pipelining -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_pipelined_transaction_gets_every_reply_in_order(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            client.send(
                b"EHLO client.example.org\r\n"
                b"MAIL FROM:<carol@example.org>\r\n"
                b"RCPT TO:<alice@example.test>\r\n"
                b"RCPT TO:<nobody@example.test>\r\n"
                b"RCPT TO:<someone@elsewhere.example>\r\n"
                b"DATA\r\n"
            )
            hello, mail, known, unknown, foreign, data = client.replies(6)
            expect(hello, 250)
            assert hello.lines[0] == "mail.example.test" and "PIPELINING" in hello.lines
            expect(mail, 250, "2.0.0")
            expect(known, 250, "2.0.0")
            expect(unknown, 550, "5.1.1")
            assert "<nobody@example.test>" in unknown.text
            expect(foreign, 554, "5.7.1")
            assert "<someone@elsewhere.example>" in foreign.text
            expect(data, 354)
            assert client.pending == b""  # nothing more than one reply per command
            client.send(MESSAGE + b".\r\n")
            assert expect(client.reply(), 250, "2.0.0").text.startswith("2.0.0 Ok: queued as ")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == MESSAGE
    assert b"\tfor <alice@example.test>;" in stored
    assert await mail_server.inbox(mail_server.bob) == []


@pytest_twisted.ensureDeferred
async def test_pipelined_rset_noop_and_mail_keep_their_order(mail_server: MailServer) -> None:
    message2 = MESSAGE.replace(b"Edge cases", b"By BDAT")

    def conversation() -> None:
        with mx(mail_server) as client:
            client.send(
                b"EHLO client.example.org\r\n"
                b"MAIL FROM:<a@example.org>\r\n"
                b"RSET\r\n"
                b"MAIL FROM:<b@example.org>\r\n"
                b"NOOP\r\n"
                b"MAIL FROM:<c@example.org>\r\n"
                b"RCPT TO:<alice@example.test>\r\n"
                b"RSET\r\n"
                b"RCPT TO:<alice@example.test>\r\n"
                b"NOOP\r\n"
                b"VRFY alice\r\n"
            )
            replies = client.replies(11)
            assert [(r.code, r.enhanced) for r in replies] == [
                (250, ""),
                (250, "2.0.0"),
                (250, "2.0.0"),
                (250, "2.0.0"),
                (250, "2.0.0"),
                (503, "5.5.1"),  # nested MAIL: b's transaction is open
                (250, "2.0.0"),
                (250, "2.0.0"),
                (503, "5.5.1"),  # RSET ended it
                (250, "2.0.0"),
                (252, "2.0.0"),
            ]
            # Two whole transactions, DATA then BDAT, and QUIT: one write.
            client.send(
                TRANSACTION
                + b"DATA\r\n"
                + stuff(MESSAGE)
                + b".\r\n"
                + TRANSACTION
                + b"BDAT %d LAST\r\n" % len(message2)
                + message2
                + b"QUIT\r\n"
            )
            replies = client.replies(8)
            assert [(r.code, r.enhanced) for r in replies] == [
                (250, "2.0.0"),
                (250, "2.0.0"),
                (354, ""),
                (250, "2.0.0"),
                (250, "2.0.0"),
                (250, "2.0.0"),
                (250, "2.0.0"),
                (221, "2.0.0"),
            ]
            assert client.read_until_closed() == b""

    await in_thread(conversation)
    first, second = await mail_server.inbox(mail_server.alice)
    assert client_part(first) == MESSAGE
    assert client_part(second) == message2


@pytest_twisted.ensureDeferred
async def test_a_long_pipelined_batch_of_recipients(mail_server: MailServer) -> None:
    """max_recipients=5: 5 accepted, then 452 4.5.3 for each of the others."""

    def conversation() -> None:
        with mx(mail_server) as client:
            batch = b"".join(b"RCPT TO:<alice+%d@example.test>\r\n" % i for i in range(50))
            client.send(
                b"EHLO client.example.org\r\nMAIL FROM:<carol@example.org>\r\n"
                + batch
                + b"DATA\r\n"
            )
            expect(client.reply(), 250)
            expect(client.reply(), 250, "2.0.0")
            for _ in range(5):
                expect(client.reply(), 250, "2.0.0")
            for _ in range(45):
                expect(client.reply(), 452, "4.5.3")
            # Deferred recipients are not client errors: the session goes on.
            expect(client.reply(), 354)
            client.send(MESSAGE + b".\r\n")
            expect(client.reply(), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    # One copy for the account, whichever of its addresses were named.
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == MESSAGE


# -- 2. STARTTLS (CVE-2011-0411) ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_starttls_discards_pipelined_input_and_resets_the_session(
    mail_server: MailServer,
) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            assert "STARTTLS" in ehlo(client).lines
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            client.send(b"STARTTLS\r\nRSET\r\n")
            expect(client.reply(), 220, "2.0.0")
            # No reply to RSET: plaintext left over would break the handshake.
            client.starttls()
            # Had RSET run inside TLS, its 250 would come first.
            expect(client.command("MAIL FROM:<carol@example.org>"), 503, "5.5.1")
            hello = ehlo(client)
            assert "STARTTLS" not in hello.lines and "PIPELINING" in hello.lines
            # The MX listener never offers AUTH, not even under TLS.
            assert not [line for line in hello.lines if line.startswith("AUTH")]
            expect(client.command("AUTH PLAIN"), 502, "5.5.1")
            # The transaction opened before TLS is gone.
            expect(client.command("RCPT TO:<alice@example.test>"), 503, "5.5.1")
            expect(client.command("STARTTLS"), 503, "5.5.1")
            client.send(TRANSACTION + b"DATA\r\n")
            assert [r.code for r in client.replies(3)] == [250, 250, 354]
            client.send(MESSAGE + b".\r\n")
            expect(client.reply(), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == MESSAGE
    assert b" with ESMTPS id " in stored
    assert re.search(rb"\r\n\t\(using TLSv1\.[23] [A-Z0-9_-]+\)\r\n", stored)


@pytest_twisted.ensureDeferred
async def test_commands_injected_after_starttls_are_never_executed(
    mail_server: MailServer,
) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            client.send(
                b"STARTTLS\r\nEHLO evil.example\r\nMAIL FROM:<x@example.org>\r\n"
                b"RCPT TO:<alice@example.test>\r\n"
            )
            expect(client.reply(), 220, "2.0.0")
            client.starttls()
            ehlo(client)
            # No MAIL happened inside the TLS session.
            expect(client.command("RCPT TO:<alice@example.test>"), 503, "5.5.1")
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)


# -- 3. BDAT (RFC 3030) ---------------------------------------------------------

BINARYISH = (
    b"From: carol@example.org\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: chunks\r\n"
    b"\r\n"
    b"a line that is only a dot follows\r\n"
    b".\r\n"
    b"..two dots stay two\r\n"
    b"bare\rCR, bare\nLF, and 8-bit \xe9\xff\x00 bytes\r\n"
    b"\r\n.\r\n"
    b"the end\r\n"
)


@pytest_twisted.ensureDeferred
async def test_bdat_chunks_are_delivered_byte_exact(mail_server: MailServer) -> None:
    first, second, third = BINARYISH[:60], BINARYISH[60:130], BINARYISH[130:]
    assert b"\r\n.\r\n" in second  # the DATA end marker inside a chunk

    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            expect(client.command("MAIL FROM:<carol@example.org> BODY=8BITMIME"), 250, "2.0.0")
            expect(client.command("RCPT TO:<alice@example.test>"), 250, "2.0.0")
            client.send(b"BDAT %d\r\n" % len(first) + first)
            assert expect(client.reply(), 250, "2.0.0").text == "2.0.0 60 octets received"
            # A chunk in many writes, its command split too.
            client.send_pieces(b"BDAT %d\r\n" % len(second) + second, 7)
            expect(client.reply(), 250, "2.0.0")
            client.send(b"BDAT %d LAST\r\n" % len(third) + third + b"NOOP\r\n")
            expect(client.reply(), 250, "2.0.0")
            expect(client.reply(), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == BINARYISH


@pytest_twisted.ensureDeferred
async def test_bdat_without_a_transaction_consumes_the_chunk(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            # The chunk looks like commands: it must be eaten, not run.
            client.send(b"BDAT 12\r\nNOOP\r\nRSET\r\nNOOP\r\n")
            expect(client.reply(), 503, "5.5.1")
            expect(client.reply(), 250, "2.0.0")
            client.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
            expect(client.reply(), 503, "5.5.1")
            expect(client.reply(), 250, "2.0.0")
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            client.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
            expect(client.reply(), 554, "5.5.1")  # no recipients
            expect(client.reply(), 250, "2.0.0")
            assert client.pending == b""
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    assert await mail_server.inbox(mail_server.alice) == []


@pytest_twisted.ensureDeferred
async def test_bdat_over_the_size_limit_is_refused_after_its_bytes(
    mail_server: MailServer,
) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            # One chunk over the limit.
            client.send(TRANSACTION)
            assert [r.code for r in client.replies(2)] == [250, 250]
            client.send(b"BDAT 100001 LAST\r\n" + b"x" * 100001 + b"NOOP\r\n")
            expect(client.reply(), 552, "5.3.4")
            expect(client.reply(), 250, "2.0.0")
            # Chunks that together go over it: the rest of the pipeline is discarded.
            client.send(TRANSACTION)
            assert [r.code for r in client.replies(2)] == [250, 250]
            client.send(b"BDAT 60000\r\n" + b"y" * 60000)
            expect(client.reply(), 250, "2.0.0")
            client.send(b"BDAT 60000\r\n" + b"y" * 60000 + b"BDAT 3 LAST\r\nabc")
            expect(client.reply(), 552, "5.3.4")
            expect(client.reply(), 552, "5.3.4")
            # LAST ended the transaction.
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    assert await mail_server.inbox(mail_server.alice) == []


@pytest_twisted.ensureDeferred
async def test_data_after_bdat_is_refused_and_bdat_0_last_ends(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            client.send(TRANSACTION + b"BDAT %d\r\n" % len(MESSAGE) + MESSAGE)
            assert [r.code for r in client.replies(3)] == [250, 250, 250]
            expect(client.command("DATA"), 503, "5.5.1")
            expect(client.command("BDAT 0 LAST"), 250, "2.0.0")
            # An empty message, in one empty last chunk.
            client.send(TRANSACTION + b"BDAT 0 LAST\r\n")
            assert [(r.code, r.enhanced) for r in client.replies(3)] == [(250, "2.0.0")] * 3
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    first, second = await mail_server.inbox(mail_server.alice)
    assert client_part(first) == MESSAGE
    assert client_part(second) == b""


# -- 4. DATA -----------------------------------------------------------------


def data_transaction(client: RawClient, body: bytes, pieces: int = 0) -> None:
    """MAIL, RCPT, DATA and C{body} (already stuffed, with its end marker): 250."""
    client.send(TRANSACTION + b"DATA\r\n")
    assert [r.code for r in client.replies(3)] == [250, 250, 354]
    if pieces:
        client.send_pieces(body, pieces)
    else:
        client.send(body)
    expect(client.reply(), 250, "2.0.0")


@pytest_twisted.ensureDeferred
async def test_dot_stuffing_is_undone(mail_server: MailServer) -> None:
    message = (
        b"From: carol@example.org\r\n"
        b"Subject: dots\r\n"
        b"\r\n"
        b".x\r\n"
        b".\r\n"
        b"..\r\n"
        b"...\r\n"
        b"a line. with.. dots..\r\n"
        b".\r\n"
    )
    starts_with_a_dot = b".first line\r\n\r\nbody\r\n"
    assert stuff(message).count(b"\r\n..") == 5

    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            data_transaction(client, stuff(message) + b".\r\n")
            data_transaction(client, stuff(starts_with_a_dot) + b".\r\n")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    first, second = await mail_server.inbox(mail_server.alice)
    assert client_part(first) == message
    assert client_part(second) == starts_with_a_dot


@pytest_twisted.ensureDeferred
async def test_an_empty_body(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            data_transaction(client, b".\r\n")
            data_transaction(client, b".\r\n", pieces=1)
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    first, second = await mail_server.inbox(mail_server.alice)
    assert client_part(first) == client_part(second) == b""


@pytest_twisted.ensureDeferred
async def test_a_body_in_many_small_writes_is_byte_exact(mail_server: MailServer) -> None:
    message = (
        b"From: carol@example.org\r\n"
        b"Subject: caf\xe9 in pieces\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        + b"".join(b"line %d: d\xe9j\xe0 vu \xf0\x9f\x8e\x89\r\n" % i for i in range(100))
        + b"a bare\nLF and a bare\rCR stay\r\n"
        + b"\r\n"
    )

    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            client.send(TRANSACTION.replace(b">\r\nRCPT", b"> BODY=8BITMIME\r\nRCPT") + b"DATA\r\n")
            assert [r.code for r in client.replies(3)] == [250, 250, 354]
            client.send_pieces(stuff(message), 7)
            client.send_pieces(b".\r\n", 1)  # the end marker, a byte at a time
            expect(client.reply(), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == message


@pytest_twisted.ensureDeferred
async def test_only_crlf_dot_crlf_ends_the_data(mail_server: MailServer) -> None:
    """SMTP smuggling: a dot after a bare LF, or before one, ends nothing."""
    message = (
        b"From: carol@example.org\r\n"
        b"Subject: smuggling\r\n"
        b"\r\n"
        b"one\n.\r\nMAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
        b"two\r\n.\nDATA\r\n"
        b"three\r.\r\nNOOP\r\n"
    )

    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            data_transaction(client, message + b".\r\nNOOP\r\n")
            expect(client.reply(), 250, "2.0.0")  # NOOP, and nothing else ran
            assert client.pending == b""
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == message
    assert await mail_server.inbox(mail_server.bob) == []


class _ReplyTransport(StringTransport):
    """Records what the server writes; L{replies} waits for complete replies."""

    def __init__(self) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 25),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40025),
        )
        self._waiting: list[tuple[int, Deferred[list[bytes]]]] = []

    def finished(self) -> list[bytes]:
        """The final lines of the complete replies so far."""
        return [line for line in self.value().split(b"\r\n") if re.match(rb"\d{3} ", line)]

    def write(self, data: bytes) -> None:
        super().write(data)
        self._wake()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def _wake(self) -> None:
        done = self.finished()
        for entry in list(self._waiting):
            count, d = entry
            if len(done) >= count:
                self._waiting.remove(entry)
                # From a later turn of the reactor: the server is in the middle
                # of sending the reply, and finishes that step (e.g. switching
                # to DATA mode) before the test may send more.
                reactor.callLater(0, lambda d=d: d.called or d.callback(done))

    async def replies(self, count: int) -> list[bytes]:
        """The final lines of the first C{count} replies, once they are all out."""
        d: Deferred[list[bytes]] = Deferred()
        d.addTimeout(10, reactor)
        self._waiting.append((count, d))
        self._wake()
        return (await d)[:count]


@pytest_twisted.ensureDeferred
async def test_data_fed_a_byte_at_a_time(mail_server: MailServer) -> None:
    """
    The server's own view of split input, deterministic: every byte of the
    body and of its end marker in its own read, including an empty body
    whose "." and CRLF arrive apart.
    """
    protocol = mx_factory(mail_server).buildProtocol(None)
    assert isinstance(protocol, SMTPServerProtocol)
    transport = _ReplyTransport()
    protocol.makeConnection(transport)

    def feed(data: bytes) -> None:
        for i in range(len(data)):
            protocol.dataReceived(data[i : i + 1])

    try:
        feed(b"EHLO client.example.org\r\n" + TRANSACTION + b"DATA\r\n")
        assert (await transport.replies(5))[-1].startswith(b"354 ")
        feed(stuff(MESSAGE) + b".\r\n")
        assert (await transport.replies(6))[-1].startswith(b"250 2.0.0 Ok: queued as ")
        feed(TRANSACTION + b"DATA\r\n")
        assert (await transport.replies(9))[-1].startswith(b"354 ")
        feed(b".\r\n")
        assert (await transport.replies(10))[-1].startswith(b"250 2.0.0 Ok: queued as ")
        feed(TRANSACTION + b"BDAT 14\r\n\r\nEmpty head\r\nBDAT 0 LAST\r\n")
        assert [r[:9] for r in (await transport.replies(14))[-4:]] == [b"250 2.0.0"] * 4
    finally:
        protocol.connectionLost()
    first, second, third = await mail_server.inbox(mail_server.alice)
    assert client_part(first) == MESSAGE
    assert client_part(second) == b""
    assert client_part(third) == b"\r\nEmpty head\r\n"


# -- 5. limits and refusals -------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_command_lines_over_1000_octets_are_refused(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            expect(client.command(b"NOOP " + b"x" * 993), 250, "2.0.0")  # 1000 with CRLF
            expect(client.command(b"NOOP " + b"x" * 994), 500, "5.5.2")
            # A line too long to buffer: one refusal, and the rest of it is skipped.
            client.send(b"MAIL FROM:<" + b"x" * 3000)
            client.send(b"y" * 3000 + b"@example.org>\r\nNOOP\r\n")
            expect(client.reply(), 500, "5.5.2")
            expect(client.reply(), 250, "2.0.0")
            assert client.pending == b""
            ehlo(client)
            quit_and_wait_for_close(client)

    await in_thread(conversation)


@pytest_twisted.ensureDeferred
async def test_nul_and_control_characters_are_refused(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            for line in (
                b"NOOP a\x00b",
                b"MAIL FROM:<carol\x00@example.org>",
                b"MAIL FROM:<carol\x01@example.org>",
                b"NOOP \x1b[31mred",
                b"NOOP \x7f",
                b"NOOP \rx",
            ):
                expect(client.command(line), 500, "5.5.2")
            # The session goes on: none of them started anything.
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)


@pytest_twisted.ensureDeferred
async def test_ten_errors_end_the_session(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            client.send(b"BOGUS\r\n" * 12 + b"NOOP\r\n")
            for _ in range(10):
                expect(client.reply(), 500, "5.5.2")
            bye = expect(client.reply(), 421, "4.7.0")
            assert bye.text == "4.7.0 mail.example.test Too many errors"
            assert client.read_until_closed() == b""

    await in_thread(conversation)


@pytest_twisted.ensureDeferred
async def test_parameter_and_address_refusals(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            for line, code, enhanced in (
                ("MAIL FROM:<carol@example.org> SIZE=abc", 501, "5.5.4"),
                ("MAIL FROM:<carol@example.org> SIZE=100001", 552, "5.3.4"),
                ("MAIL FROM:<carol@example.org> FOO=bar", 555, "5.5.4"),
                ("MAIL FROM:<jörg@example.org>", 553, "5.6.7"),
                ("MAIL FROM:<carol@example.org> SIZE=100000 BODY=8BITMIME", 250, "2.0.0"),
                ("RCPT TO:<alice@example.test> NOTIFY=NEVER", 555, "5.5.4"),
                ("RCPT TO:<jörg@example.test>", 553, "5.6.7"),
                ("RCPT TO:<alice@example.test>", 250, "2.0.0"),
                ("RSET", 250, "2.0.0"),
                ("MAIL FROM:<jörg@example.org> SMTPUTF8", 250, "2.0.0"),
            ):
                expect(client.command(line), code, enhanced)
            quit_and_wait_for_close(client)
        with mx(mail_server) as client:
            expect(client.command("HELO client.example.org"), 250)
            # ESMTP parameters need EHLO.
            expect(client.command("MAIL FROM:<carol@example.org> SIZE=10"), 555, "5.5.4")
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)


@pytest_twisted.ensureDeferred
async def test_commands_out_of_sequence(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            for line in ("MAIL FROM:<carol@example.org>", "RCPT TO:<alice@example.test>", "DATA"):
                expect(client.command(line), 503, "5.5.1")
            ehlo(client)
            expect(client.command("RCPT TO:<alice@example.test>"), 503, "5.5.1")
            expect(client.command("DATA"), 503, "5.5.1")
            quit_and_wait_for_close(client)
        with mx(mail_server) as client:
            ehlo(client)
            expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
            expect(client.command("DATA"), 554, "5.5.1")
            expect(client.command("MAIL FROM:<carol@example.org>"), 503, "5.5.1")
            expect(client.command("RCPT TO:<nobody@example.test>"), 550, "5.1.1")
            expect(client.command("DATA"), 554, "5.5.1")
            expect(client.command("RCPT TO:<alice@example.test>"), 250, "2.0.0")
            expect(client.command("DATA"), 354)
            client.send(MESSAGE + b".\r\n")
            expect(client.reply(), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    assert len(await mail_server.inbox(mail_server.alice)) == 1


@pytest_twisted.ensureDeferred
async def test_postmaster_without_a_domain(mail_server: MailServer) -> None:
    await mail_server.app.accounts.add_alias("postmaster@example.test", "alice@example.test")

    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            for recipient in ("<Postmaster>", "<POSTMASTER@example.test>"):
                expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
                expect(client.command(f"RCPT TO:{recipient}"), 250, "2.0.0")
                expect(client.command("DATA"), 354)
                client.send(MESSAGE + b".\r\n")
                expect(client.reply(), 250, "2.0.0")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
    first, second = await mail_server.inbox(mail_server.alice)
    assert client_part(first) == client_part(second) == MESSAGE
    assert b"\tfor <postmaster>;" in first
    assert b"\tfor <POSTMASTER@example.test>;" in second


# -- 6. timeouts --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_silent_client_is_dropped(
    mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mx_factory(mail_server), "command_timeout", 0.5)

    def conversation() -> None:
        with mx(mail_server) as client:
            bye = expect(client.reply(), 421, "4.4.2")
            assert bye.text == "4.4.2 mail.example.test Error: timeout exceeded"
            assert client.read_until_closed() == b""

    await in_thread(conversation)


@pytest_twisted.ensureDeferred
async def test_a_client_silent_during_data_or_bdat_is_dropped(
    mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mx_factory(mail_server), "data_timeout", 0.5)

    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            client.send(TRANSACTION + b"DATA\r\n")
            assert [r.code for r in client.replies(3)] == [250, 250, 354]
            client.send(b"Subject: half\r\n\r\nhalf a message")
            expect(client.reply(), 421, "4.4.2")
            assert client.read_until_closed() == b""
        with mx(mail_server) as client:
            ehlo(client)
            client.send(TRANSACTION + b"BDAT 100 LAST\r\nSubject: half\r\n")
            assert [r.code for r in client.replies(2)] == [250, 250]
            expect(client.reply(), 421, "4.4.2")
            assert client.read_until_closed() == b""

    await in_thread(conversation)
    assert await mail_server.inbox(mail_server.alice) == []


# -- 7. anti-abuse limits -------------------------------------------------------


@pytest.mark.parametrize(
    "mail_server_config_extra", ["[security]\nconnections_per_ip = 2\n"], ids=["limit-2"]
)
@pytest_twisted.ensureDeferred
async def test_too_many_connections_from_one_address(mail_server: MailServer) -> None:
    assert mail_server.app.security.connections.max_per_key == 2

    def conversation() -> None:
        with mx(mail_server) as first, mx(mail_server):
            with RawClient(mail_server.mx_port) as third:
                expect(third.greeting, 421, "4.7.0")
                assert third.greeting.text.endswith("Too many connections, try later")
                assert third.read_until_closed() == b""
            # A slot comes back when a connection ends.
            quit_and_wait_for_close(first)
            with mx(mail_server) as fourth:
                ehlo(fourth)

    await in_thread(conversation)


@pytest.mark.parametrize(
    "mail_server_config_extra", ["[security]\nmessages_per_ip_per_minute = 2\n"], ids=["limit-2"]
)
@pytest_twisted.ensureDeferred
async def test_too_many_messages_from_one_address(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mx(mail_server) as client:
            ehlo(client)
            for _ in range(2):
                expect(client.command("MAIL FROM:<carol@example.org>"), 250, "2.0.0")
                expect(client.command("RSET"), 250, "2.0.0")
            expect(client.command("MAIL FROM:<carol@example.org>"), 450, "4.7.1")
            expect(client.command("RCPT TO:<alice@example.test>"), 503, "5.5.1")
            quit_and_wait_for_close(client)

    await in_thread(conversation)
