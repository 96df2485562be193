"""
gk's outbound SMTP client against real SMTP sinks on loopback
(L{tests.delivery.sinks}): what arrives, byte for byte; what is pipelined;
per-recipient results; STARTTLS, AUTH; and every way a server can fail.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.failure import Failure

from gk.delivery.client import (
    SendResult,
    SMTPClient,
    SMTPClientError,
    SMTPConnectError,
    SMTPConnectionLost,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from gk.delivery.connect import UnverifiedClientTLS, connect_smtp
from gk.tls import ServerTLS
from tests.delivery.sinks import Fault, Script, SMTPSink, free_port, make_tls, start_sinks

SENDER = "alice@example.org"
BOB, CAROL, DAVE = "bob@example.net", "carol@example.net", "dave@example.net"
MESSAGE = b"From: alice@example.org\r\nSubject: hello\r\n\r\nHello Bob.\r\n"


class Harness:
    """Starts sinks and clients for one test and closes them all afterwards."""

    def __init__(self, tls: ServerTLS) -> None:
        self.server_tls = tls
        self.sinks: list[SMTPSink] = []
        self.clients: list[SMTPClient] = []

    def sink(self, script: Script | None = None, *, host: str = "127.0.0.1") -> SMTPSink:
        sink = SMTPSink(script, host=host, tls=self.server_tls).start()
        self.sinks.append(sink)
        return sink

    async def connect(self, sink: SMTPSink, **kwargs: Any) -> SMTPClient:
        from twisted.internet import reactor

        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("reply_timeout", 5.0)
        client = await connect_smtp(reactor, sink.host, sink.port, **kwargs)
        self.clients.append(client)
        return client

    async def ready(self, script: Script | None = None) -> tuple[SMTPSink, SMTPClient]:
        """A sink and a client that said EHLO to it."""
        sink = self.sink(script)
        client = await self.connect(sink)
        await client.ehlo("client.example.org")
        return sink, client

    async def close(self) -> None:
        for client in self.clients:
            client.abort()
        for sink in self.sinks:
            await sink.stop()


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ServerTLS:
    return make_tls(tmp_path_factory.mktemp("tls"), "mx.example.test")


@pytest.fixture(scope="module")
def trusted(server_tls: ServerTLS) -> Certificate:
    """The sink's self-signed certificate as a trust root."""
    return Certificate.loadPEM(Path(server_tls.cert_path).read_bytes())


@pytest_twisted.async_yield_fixture
async def smtp(server_tls: ServerTLS) -> AsyncIterator[Harness]:
    harness = Harness(server_tls)
    try:
        yield harness
    finally:
        await harness.close()


def replies(result: SendResult) -> dict[str, str]:
    return {rcpt: str(reply) for rcpt, reply in result.recipients.items()}


async def sleep(seconds: float) -> None:
    from twisted.internet import reactor

    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d


# -- the conversation -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_greeting_and_ehlo_extensions(smtp: Harness) -> None:
    sink = smtp.sink(Script(size=5000, auth=("u", "p")))
    client = await smtp.connect(sink)
    assert str(client.greeting) == "220 sink.example.test ESMTP sink"
    extensions = await client.ehlo("client.example.org")
    assert extensions is client.extensions
    assert set(extensions) == {
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "STARTTLS",
        "AUTH",
        "ENHANCEDSTATUSCODES",
    }
    assert extensions.size_limit == 5000
    assert extensions.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert client.helo_name == "client.example.org"
    assert not client.tls and client.is_open
    await client.quit()
    assert not client.is_open
    assert sink.connections[0].commands == ["EHLO client.example.org", "QUIT"]
    assert sink.connections[0].closed


@pytest_twisted.ensureDeferred
async def test_helo_when_ehlo_is_refused(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(ehlo_reply="502 5.5.2 EHLO? never heard of it"))
    assert len(client.extensions) == 0
    assert sink.connections[0].verbs() == ["EHLO", "HELO"]
    result = await client.send(SENDER, [BOB], MESSAGE)
    assert not result.pipelined and result.delivered == [BOB]
    assert sink.messages[0].mail_params == {}


@pytest_twisted.ensureDeferred
async def test_ehlo_4xx_raises(smtp: Harness) -> None:
    _sink = smtp.sink(Script(ehlo_reply="421 4.3.2 shutting down"))
    client = await smtp.connect(_sink)
    with pytest.raises(SMTPReplyError, match=r"to EHLO: 421 4.3.2 shutting down") as info:
        await client.ehlo("client.example.org")
    assert info.value.reply.code == 421


# -- what arrives ------------------------------------------------------------------

TEN_KB = b"".join(b"Line %05d of a ten kilobyte message, padded....\r\n" % i for i in range(200))


@pytest.mark.parametrize(
    ("message", "arrives"),
    [
        pytest.param(TEN_KB, TEN_KB, id="10KB"),
        pytest.param(b"bare\nLF\n", b"bare\r\nLF\r\n", id="bare-LF"),
        pytest.param(b"bare\rCR\r", b"bare\r\nCR\r\n", id="bare-CR"),
        pytest.param(b"CR CR LF\r\r\n", b"CR CR LF\r\n\r\n", id="CR-CR-LF"),
        pytest.param(b".\r\n..\r\n.x\r\nx.\r\n", b".\r\n..\r\n.x\r\nx.\r\n", id="dots"),
        pytest.param(b"no newline at the end", b"no newline at the end\r\n", id="no-eol"),
        pytest.param(b"\r\n.\r\n", b"\r\n.\r\n", id="end-marker-inside"),
        pytest.param(b"", b"", id="empty"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_message_arrives_byte_exact(smtp: Harness, message: bytes, arrives: bytes) -> None:
    sink, client = await smtp.ready()
    result = await client.send(SENDER, [BOB], message)
    assert replies(result) == {BOB: "250 2.0.0 Ok: queued as 0"}
    assert str(result.data_reply) == "250 2.0.0 Ok: queued as 0"
    received = sink.messages[0]
    assert received.data == arrives
    assert (received.sender, received.recipients) == (SENDER, [BOB])
    assert received.mail_params == {"SIZE": str(len(arrives))}


@pytest_twisted.ensureDeferred
async def test_eight_bit_message(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    message = b"Subject: caf\xe9\r\n\r\n\xff\x80\x00 binary-ish\r\n"
    await client.send(SENDER, [BOB], message)
    assert sink.messages[0].data == message
    assert sink.messages[0].mail_params == {"SIZE": str(len(message)), "BODY": "8BITMIME"}


@pytest_twisted.ensureDeferred
async def test_eight_bit_can_be_forced_either_way(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    await client.send(SENDER, [BOB], MESSAGE, eight_bit=True)
    await client.send(SENDER, [BOB], b"\xe9\r\n", eight_bit=False)
    assert [m.mail_params.get("BODY") for m in sink.messages] == ["8BITMIME", None]


@pytest_twisted.ensureDeferred
async def test_utf8_message_with_smtputf8(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    greek = "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5"
    message = f"From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n\r\n{greek}\r\n".encode()
    result = await client.send("jörg@bücher.example", ["zoë@example.net"], message)
    assert result.delivered == ["zoë@example.net"]
    received = sink.messages[0]
    assert (received.sender, received.recipients) == ("jörg@bücher.example", ["zoë@example.net"])
    assert received.data == message
    assert received.mail_params == {"SIZE": str(len(message)), "BODY": "8BITMIME", "SMTPUTF8": None}


@pytest_twisted.ensureDeferred
async def test_smtputf8_asked_for_with_ascii_addresses(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    await client.send(SENDER, [BOB], MESSAGE, smtputf8=True)
    assert "SMTPUTF8" in sink.messages[0].mail_params


@pytest_twisted.ensureDeferred
async def test_smtputf8_needed_but_not_offered(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(smtputf8=False))
    result = await client.send(SENDER, [BOB, "zoë@example.net"], MESSAGE)
    expected = f"550 5.6.7 SMTPUTF8 is required, but was not offered by 127.0.0.1:{sink.port}"
    assert str(result.mail_reply) == expected and result.mail_reply.local
    assert replies(result) == {BOB: expected, "zoë@example.net": expected}
    assert result.data_reply is None
    assert sink.connections[0].verbs() == ["EHLO"]  # nothing was offered


@pytest_twisted.ensureDeferred
async def test_no_parameters_the_server_does_not_offer(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(size=None, eight_bit_mime=False))
    await client.send(SENDER, [BOB], b"\xe9t\xe9\r\n")
    assert sink.messages[0].mail_params == {}
    assert sink.messages[0].data == b"\xe9t\xe9\r\n"


@pytest_twisted.ensureDeferred
async def test_large_message_over_tls(smtp: Harness) -> None:
    # Big enough to fill the socket buffers: the body goes out as the
    # transport can take it (the client is a streaming producer).
    sink, client = await smtp.ready(Script(size=None))
    await client.starttls(UnverifiedClientTLS("mx.example.test"))
    message = b"".join(
        b"%07d .. some text that is not very interesting\r\n" % i for i in range(60000)
    )
    message += b".\r\n" * 1000
    result = await client.send(SENDER, [BOB], message)
    assert result.delivered == [BOB]
    assert len(message) > 3_000_000
    assert sink.messages[0].data == message
    assert sink.messages[0].tls


# -- pipelining ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_pipelining_when_offered(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    result = await client.send(SENDER, [BOB, CAROL], MESSAGE)
    assert result.pipelined and result.delivered == [BOB, CAROL]
    chunk = sink.connections[0].chunk_with(b"MAIL FROM")
    assert chunk == (
        b"MAIL FROM:<alice@example.org> SIZE=%d\r\n"
        b"RCPT TO:<bob@example.net>\r\n"
        b"RCPT TO:<carol@example.net>\r\n"
        b"DATA\r\n" % len(MESSAGE)
    )
    assert sink.messages[0].recipients == [BOB, CAROL]


@pytest_twisted.ensureDeferred
async def test_lockstep_without_pipelining(smtp: Harness) -> None:
    # Replies leave 20 ms late: a client that does not wait would have
    # sent its next command meanwhile (counted in input_while_busy).
    sink, client = await smtp.ready(Script(pipelining=False, reply_delay=0.02))
    result = await client.send(SENDER, [BOB, CAROL], MESSAGE)
    assert not result.pipelined and result.delivered == [BOB, CAROL]
    connection = sink.connections[0]
    assert connection.input_while_busy == 0
    assert connection.verbs() == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"]
    commands = [c for c in connection.chunks if c[:4] in (b"MAIL", b"RCPT", b"DATA")]
    assert commands == [
        b"MAIL FROM:<alice@example.org> SIZE=%d\r\n" % len(MESSAGE),
        b"RCPT TO:<bob@example.net>\r\n",
        b"RCPT TO:<carol@example.net>\r\n",
        b"DATA\r\n",
    ]


@pytest_twisted.ensureDeferred
async def test_duplicate_recipients_are_sent_once(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    result = await client.send(SENDER, [BOB, BOB, CAROL], MESSAGE)
    assert list(result.recipients) == [BOB, CAROL]
    assert sink.messages[0].recipients == [BOB, CAROL]


# -- per-recipient results -----------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest_twisted.ensureDeferred
async def test_mixed_recipient_results(smtp: Harness, pipelining: bool) -> None:
    script = Script(
        pipelining=pipelining,
        rcpt_replies={BOB: ["550 5.1.1 user unknown"], DAVE: ["450 4.2.1 mailbox busy"]},
    )
    sink, client = await smtp.ready(script)
    result = await client.send(SENDER, [BOB, CAROL, DAVE], MESSAGE)
    assert replies(result) == {
        BOB: "550 5.1.1 user unknown",
        CAROL: "250 2.0.0 Ok: queued as 0",
        DAVE: "450 4.2.1 mailbox busy",
    }
    assert result.recipients[BOB].permanent and result.recipients[DAVE].transient
    assert result.delivered == [CAROL]
    assert sink.messages[0].recipients == [CAROL]
    # "4xx, then accept": the next attempt for Dave goes through.
    again = await client.send(SENDER, [DAVE], MESSAGE)
    assert again.delivered == [DAVE]
    assert sink.connections[0].verbs().count("RSET") == 0


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest_twisted.ensureDeferred
async def test_mail_refused(smtp: Harness, pipelining: bool) -> None:
    script = Script(pipelining=pipelining, mail_replies=["553 5.7.1 sender rejected"])
    sink, client = await smtp.ready(script)
    result = await client.send(SENDER, [BOB, CAROL], MESSAGE)
    assert str(result.mail_reply) == "553 5.7.1 sender rejected"
    assert replies(result) == {BOB: "553 5.7.1 sender rejected", CAROL: "553 5.7.1 sender rejected"}
    assert result.delivered == []
    if pipelining:  # the server answered the pipelined RCPTs and DATA too
        assert str(result.data_reply) == "503 5.5.1 Error: need MAIL command"
        assert sink.connections[0].verbs() == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"]
    else:
        assert result.data_reply is None
        assert sink.connections[0].verbs() == ["EHLO", "MAIL"]
    assert sink.data_blocks == []
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("refusal", ["554 5.7.1 no thanks", "451 4.3.0 try later"])
@pytest_twisted.ensureDeferred
async def test_data_refused(smtp: Harness, pipelining: bool, refusal: str) -> None:
    script = Script(
        pipelining=pipelining, data_replies=[refusal], rcpt_replies={BOB: ["550 5.1.1 unknown"]}
    )
    sink, client = await smtp.ready(script)
    result = await client.send(SENDER, [BOB, CAROL], MESSAGE)
    assert replies(result) == {BOB: "550 5.1.1 unknown", CAROL: refusal}
    assert str(result.data_reply) == refusal
    # The transaction was left open: RSET, and the connection goes on.
    assert sink.connections[0].verbs()[-1] == "RSET"
    assert sink.data_blocks == []
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]
    assert sink.connections[0].verbs().count("RSET") == 1


@pytest_twisted.ensureDeferred
async def test_refused_after_the_message(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(end_replies=["554 5.7.1 spam", "451 4.7.1 greylisted"]))
    first = await client.send(SENDER, [BOB, CAROL], MESSAGE)
    assert replies(first) == {BOB: "554 5.7.1 spam", CAROL: "554 5.7.1 spam"}
    second = await client.send(SENDER, [BOB], MESSAGE)
    assert replies(second) == {BOB: "451 4.7.1 greylisted"}
    third = await client.send(SENDER, [BOB], MESSAGE)
    assert third.delivered == [BOB]
    assert len(sink.data_blocks) == 3 and len(sink.messages) == 1
    assert "RSET" not in sink.connections[0].verbs()  # nothing was left open


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest_twisted.ensureDeferred
async def test_no_recipient_accepted(smtp: Harness, pipelining: bool) -> None:
    script = Script(pipelining=pipelining, rcpt_replies={"*": ["550 5.1.1 no", "450 4.1.1 later"]})
    sink, client = await smtp.ready(script)
    result = await client.send(SENDER, [BOB, CAROL], MESSAGE)
    assert replies(result) == {BOB: "550 5.1.1 no", CAROL: "450 4.1.1 later"}
    assert sink.data_blocks == []
    verbs = sink.connections[0].verbs()
    assert verbs == ["EHLO", "MAIL", "RCPT", "RCPT"] + (["DATA"] if pipelining else []) + ["RSET"]
    if pipelining:
        assert str(result.data_reply) == "554 5.5.1 Error: no valid recipients"
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest_twisted.ensureDeferred
async def test_pipelined_data_accepted_without_recipients(smtp: Harness) -> None:
    # RFC 2920 3.1: a server may answer the pipelined DATA with 354 even
    # though every RCPT failed; the client then ends the data at once.
    script = Script(rcpt_replies={"*": ["550 5.1.1 no"]}, data_replies=["354 go ahead"])
    sink, client = await smtp.ready(script)
    result = await client.send(SENDER, [BOB], MESSAGE)
    assert replies(result) == {BOB: "550 5.1.1 no"}
    assert [block.raw for block in sink.data_blocks] == [b""]
    assert sink.messages == []
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]
    assert "RSET" not in sink.connections[0].verbs()


@pytest_twisted.ensureDeferred
async def test_too_big_is_refused_locally(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(size=1000))
    result = await client.send(SENDER, [BOB], b"x" * 998 + b"\r\n" + b"y")
    expected = f"552 5.3.4 message size 1003 exceeds size limit 1000 of 127.0.0.1:{sink.port}"
    assert str(result.mail_reply) == expected and result.mail_reply.local
    assert replies(result) == {BOB: expected}
    assert sink.connections[0].verbs() == ["EHLO"]
    # Exactly the limit is fine (dot-stuffing does not count).
    fits = b"." * 998 + b"\r\n"
    assert (await client.send(SENDER, [BOB], fits)).delivered == [BOB]
    assert sink.messages[0].mail_params == {"SIZE": "1000"}


@pytest_twisted.ensureDeferred
async def test_connection_reuse(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    for i in range(3):
        result = await client.send(SENDER, [BOB], b"Subject: %d\r\n\r\nbody\r\n" % i)
        assert result.delivered == [BOB]
    await client.quit()
    assert len(sink.connections) == 1
    assert [m.data for m in sink.messages] == [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(3)]
    assert sink.connections[0].verbs() == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 3 + ["QUIT"]


# -- STARTTLS and AUTH --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_opportunistic_starttls(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(require_tls=True))
    assert "STARTTLS" in client.extensions
    extensions = await client.starttls(UnverifiedClientTLS("mx.example.test"))
    assert client.tls and "STARTTLS" not in extensions and "PIPELINING" in extensions
    assert client.tls_version in ("TLSv1.2", "TLSv1.3")
    assert client.tls_cipher
    assert client.injected_bytes == 0
    result = await client.send(SENDER, [BOB], MESSAGE)
    assert result.delivered == [BOB]
    assert sink.messages[0].tls
    connection = sink.connections[0]
    assert connection.helo == "client.example.org"
    await client.quit()
    assert connection.verbs() == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert not client.is_open


@pytest_twisted.ensureDeferred
async def test_tls_required_by_the_server(smtp: Harness) -> None:
    _sink, client = await smtp.ready(Script(require_tls=True))
    result = await client.send(SENDER, [BOB], MESSAGE)
    assert str(result.mail_reply) == "530 5.7.0 Must issue a STARTTLS command first"


@pytest_twisted.ensureDeferred
async def test_starttls_injection_is_discarded(smtp: Harness) -> None:
    # A man in the middle appends a reply to the 220; read in plaintext it
    # would answer the EHLO sent over TLS.
    injected = b"250-evil.example\r\n250 AUTH PLAIN\r\n"
    _sink, client = await smtp.ready(Script(inject_after_starttls=injected))
    extensions = await client.starttls(UnverifiedClientTLS())
    assert client.injected_bytes == len(injected)
    assert "PIPELINING" in extensions and "AUTH" not in extensions
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest_twisted.ensureDeferred
async def test_verified_tls_fails_on_a_self_signed_certificate(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    with pytest.raises(
        SMTPTLSError, match=r"TLS handshake with .* failed: certificate verify failed"
    ):
        await client.starttls(optionsForClientTLS("mx.example.test"))
    assert not client.is_open
    with pytest.raises(SMTPConnectionLost):
        await client.send(SENDER, [BOB], MESSAGE)
    assert sink.messages == []


@pytest_twisted.ensureDeferred
async def test_verified_tls_with_the_certificate_trusted(
    smtp: Harness, trusted: Certificate
) -> None:
    _sink, client = await smtp.ready()
    await client.starttls(optionsForClientTLS("mx.example.test", trustRoot=trusted))
    assert client.tls
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest_twisted.ensureDeferred
async def test_verified_tls_fails_on_the_wrong_name(smtp: Harness, trusted: Certificate) -> None:
    _sink, client = await smtp.ready()
    with pytest.raises(
        SMTPTLSError, match=r"failed: certificate does not match other\.example\.test$"
    ):
        await client.starttls(optionsForClientTLS("other.example.test", trustRoot=trusted))


@pytest_twisted.ensureDeferred
async def test_implicit_tls(smtp: Harness, trusted: Certificate) -> None:
    sink = SMTPSink(host="127.0.0.1", tls=smtp.server_tls, implicit_tls=True).start()
    smtp.sinks.append(sink)
    tls = optionsForClientTLS("mx.example.test", trustRoot=trusted)
    client = await smtp.connect(sink, tls=tls)
    assert client.tls and client.tls_version in ("TLSv1.2", "TLSv1.3")
    assert str(client.greeting) == "220 sink.example.test ESMTP sink"
    extensions = await client.ehlo("client.example.org")
    assert "STARTTLS" not in extensions
    with pytest.raises(SMTPClientError, match="already active"):
        await client.starttls(UnverifiedClientTLS())
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]
    assert sink.messages[0].tls
    await client.quit()


@pytest_twisted.ensureDeferred
async def test_implicit_tls_that_does_not_verify(smtp: Harness) -> None:
    sink = SMTPSink(host="127.0.0.1", tls=smtp.server_tls, implicit_tls=True).start()
    smtp.sinks.append(sink)
    with pytest.raises(SMTPTLSError, match="certificate verify failed"):
        await smtp.connect(sink, tls=optionsForClientTLS("mx.example.test"))
    assert sink.connections[0].commands == []


@pytest_twisted.ensureDeferred
async def test_starttls_not_offered(smtp: Harness) -> None:
    _sink, client = await smtp.ready(Script(starttls=False))
    with pytest.raises(SMTPReplyError, match=r"to STARTTLS: 502 5.5.1"):
        await client.starttls(UnverifiedClientTLS())
    assert not client.tls and client.is_open
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest.mark.parametrize("mechanisms", [("PLAIN", "LOGIN"), ("LOGIN",)])
@pytest_twisted.ensureDeferred
async def test_auth_success(smtp: Harness, mechanisms: tuple[str, ...]) -> None:
    script = Script(auth=("smarthost-user", "s3cret pässword"), auth_mechanisms=mechanisms)
    sink, client = await smtp.ready(script)
    await client.starttls(UnverifiedClientTLS())
    reply = await client.auth("smarthost-user", "s3cret pässword")
    assert str(reply) == "235 2.7.0 Authentication successful"
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]
    assert sink.messages[0].auth_user == "smarthost-user"
    verbs = sink.connections[0].verbs()
    assert verbs[3] == "AUTH" and sink.connections[0].commands[3].startswith(
        f"AUTH {mechanisms[0]}"
    )


@pytest_twisted.ensureDeferred
async def test_auth_failure(smtp: Harness) -> None:
    _sink, client = await smtp.ready(Script(auth=("user", "right")))
    with pytest.raises(SMTPReplyError, match=r"535 5.7.8") as info:
        await client.auth("user", "wrong", allow_plaintext=True)
    assert info.value.reply.code == 535
    result = await client.send(SENDER, [BOB], MESSAGE)
    assert str(result.mail_reply) == "530 5.7.0 Authentication required"


@pytest_twisted.ensureDeferred
async def test_no_password_without_tls(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(auth=("user", "pw")))
    with pytest.raises(SMTPClientError, match="without TLS"):
        await client.auth("user", "pw")
    assert "AUTH" not in sink.connections[0].verbs()


@pytest_twisted.ensureDeferred
async def test_no_usable_auth_mechanism(smtp: Harness) -> None:
    _sink, client = await smtp.ready(Script(auth=("user", "pw"), auth_mechanisms=("CRAM-MD5",)))
    with pytest.raises(SMTPClientError, match=r"no usable AUTH \(offered: CRAM-MD5\)"):
        await client.auth("user", "pw", allow_plaintext=True)


# -- failures ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_connection_refused(smtp: Harness) -> None:
    from twisted.internet import reactor

    port = free_port(["127.0.0.1"])
    with pytest.raises(SMTPConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
        await connect_smtp(reactor, "127.0.0.1", port, timeout=5)


@pytest_twisted.ensureDeferred
async def test_connect_by_host_name(smtp: Harness) -> None:
    from twisted.internet import reactor

    sink = smtp.sink()
    client = await connect_smtp(reactor, "localhost", sink.port, timeout=5)
    smtp.clients.append(client)
    assert client.peer == f"localhost:{sink.port}"
    await client.ehlo("client.example.org")
    await client.quit()
    assert sink.connections[0].commands == ["EHLO client.example.org", "QUIT"]


@pytest_twisted.ensureDeferred
async def test_connect_over_ipv6(smtp: Harness) -> None:
    sink = smtp.sink(host="::1")
    client = await smtp.connect(sink)
    assert client.peer == f"[::1]:{sink.port}"
    await client.ehlo("client.example.org")
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest_twisted.ensureDeferred
async def test_greeting_refused(smtp: Harness) -> None:
    sink = smtp.sink(Script(greeting="554 5.3.2 no service for you"))
    with pytest.raises(SMTPReplyError, match=r"554 5.3.2 no service for you") as info:
        await smtp.connect(sink)
    assert info.value.reply.permanent
    assert sink.connections[0].commands == ["QUIT"]


@pytest.mark.parametrize(
    ("stage", "call"),
    [
        ("connect", "connect"),
        ("ehlo", "ehlo"),
        ("mail", "send"),
        ("rcpt", "send"),
        ("data", "send"),
        ("body", "send"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_server_drops_the_connection(smtp: Harness, stage: str, call: str) -> None:
    sink = smtp.sink(Script(faults=[Fault("drop", stage)]))  # type: ignore[arg-type]
    big = b"x" * 200 + b"\r\n"
    with pytest.raises(SMTPConnectionLost, match="lost"):
        client = await smtp.connect(sink)
        await client.ehlo("client.example.org")
        await client.send(SENDER, [BOB, CAROL], big * 2000)
    assert sink.data_blocks == []
    if call != "connect":
        assert not client.is_open
        await client.quit()  # never raises
        with pytest.raises(SMTPConnectionLost, match="is closed"):
            await client.send(SENDER, [BOB], MESSAGE)


@pytest.mark.parametrize("stage", ["connect", "mail", "data", "body"])
@pytest_twisted.ensureDeferred
async def test_server_never_answers(smtp: Harness, stage: str) -> None:
    sink = smtp.sink(Script(faults=[Fault("hang", stage)]))  # type: ignore[arg-type]
    start = time.monotonic()
    with pytest.raises(SMTPTimeoutError, match=r"no reply from 127\.0\.0\.1:\d+ within 0.3 s"):
        client = await smtp.connect(sink, reply_timeout=0.3, data_timeout=0.3)
        await client.ehlo("client.example.org")
        await client.send(SENDER, [BOB], MESSAGE)
    assert 0.3 <= time.monotonic() - start < 3
    while not sink.connections[0].closed:  # the client dropped the connection
        await sleep(0.01)


@pytest_twisted.ensureDeferred
async def test_second_connection_after_a_fault(smtp: Harness) -> None:
    sink = smtp.sink(Script(faults=[Fault("drop", "mail"), None]))
    first = await smtp.connect(sink)
    await first.ehlo("client.example.org")
    with pytest.raises(SMTPConnectionLost):
        await first.send(SENDER, [BOB], MESSAGE)
    second = await smtp.connect(sink)
    await second.ehlo("client.example.org")
    assert (await second.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]


@pytest.mark.parametrize(
    ("greeting", "why"),
    [
        ("hello, I am not SMTP", "does not start with a 3-digit code"),
        ("220 " + "x" * 5000, "longer than 4096 bytes"),
        ("220-first\n250 second", "reply code changed from 220 to 250"),
        ("\n".join(["220-spam"] * 150 + ["220 end"]), "more than 100 lines"),
        ("220 ok\n220 one reply too many", "unexpected reply"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_protocol_errors(smtp: Harness, greeting: str, why: str) -> None:
    sink = smtp.sink(Script(greeting=greeting))
    with pytest.raises((SMTPProtocolError, SMTPConnectionLost), match=why):
        client = await smtp.connect(sink)
        await client.ehlo("client.example.org")
    while not sink.connections[0].closed:
        await sleep(0.01)


@pytest_twisted.ensureDeferred
async def test_421_out_of_turn(smtp: Harness) -> None:
    sink, client = await smtp.ready(Script(end_replies=["250 ok\n421 4.4.2 idle too long"]))
    assert (await client.send(SENDER, [BOB], MESSAGE)).delivered == [BOB]
    while client.is_open:
        await sleep(0.01)
    with pytest.raises(SMTPConnectionLost, match=r"closing the connection: 421 4.4.2 idle"):
        await client.send(SENDER, [BOB], MESSAGE)
    while not sink.connections[0].closed:  # the client dropped it
        await sleep(0.01)


@pytest_twisted.ensureDeferred
async def test_one_call_at_a_time(smtp: Harness) -> None:
    _sink, client = await smtp.ready(Script(reply_delay=0.05))
    first: Awaitable[Any] = Deferred.fromCoroutine(client.noop())
    with pytest.raises(SMTPClientError, match="still running"):
        await client.rset()
    assert str(await first) == "250 2.0.0 Ok"


@pytest.mark.parametrize("bad", ["bob@example.net>\r\nRSET", "a\nb@example.net", "x\x00@y"])
@pytest_twisted.ensureDeferred
async def test_control_characters_are_refused(smtp: Harness, bad: str) -> None:
    sink, client = await smtp.ready()
    with pytest.raises(ValueError, match="control characters"):
        await client.send(SENDER, [bad], MESSAGE)
    with pytest.raises(ValueError, match="control characters"):
        await client.send(bad, [BOB], MESSAGE)
    assert sink.connections[0].verbs() == ["EHLO"]


# -- several hosts, one port ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sinks_share_a_port_and_bind_address(smtp: Harness) -> None:
    from twisted.internet import reactor

    sinks = await start_sinks(["127.0.0.2", "127.0.0.3"], [Script(), Script()])
    smtp.sinks.extend(sinks)
    assert sinks[0].port == sinks[1].port
    for sink, n in zip(sinks, (2, 3), strict=True):
        client = await connect_smtp(
            reactor, f"127.0.0.{n}", sinks[0].port, timeout=5, bind_address="127.0.0.9"
        )
        smtp.clients.append(client)
        await client.ehlo("client.example.org")
        await client.send(SENDER, [BOB], b"to host %d\r\n" % n)
        await client.quit()
        assert [m.data for m in sink.messages] == [b"to host %d\r\n" % n]
        assert sink.connections[0].peer.startswith("127.0.0.9:")


@pytest_twisted.ensureDeferred
async def test_wait_for_messages(smtp: Harness) -> None:
    sink, client = await smtp.ready()
    waiting: Deferred[Any] = Deferred.fromCoroutine(sink.wait_for_messages(2))
    await client.send(SENDER, [BOB], MESSAGE)
    assert not waiting.called
    await client.send(SENDER, [CAROL], MESSAGE)
    assert len(await waiting) == 2


# -- the sink itself, checked without gk's client ----------------------------------------------


class _RawClient(Protocol):
    """Writes one blob, collects what comes back until the server closes."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.blob)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(self.received)


@pytest_twisted.ensureDeferred
async def test_sink_unstuffs_what_it_receives(smtp: Harness) -> None:
    from twisted.internet import reactor

    sink = smtp.sink()
    raw = b"..leading dot\r\nmid..dle\r\n...\r\n..\r\n.x\r\n"
    blob = (
        b"EHLO raw.example\r\nMAIL FROM:<a@example.org> SIZE=99\r\nRCPT TO:<b@example.net>\r\n"
        b"DATA\r\n" + raw + b".\r\nQUIT\r\n"
    )
    protocol = _RawClient(blob)
    await connectProtocol(TCP4ClientEndpoint(reactor, sink.host, sink.port), protocol)
    answer = await protocol.done
    assert answer.endswith(b"250 2.0.0 Ok: queued as 0\r\n221 2.0.0 Bye\r\n")
    received = sink.messages[0]
    assert received.raw == raw
    assert received.data == b".leading dot\r\nmid..dle\r\n..\r\n.\r\nx\r\n"
    assert received.mail_params == {"SIZE": "99"}
    assert (received.sender, received.recipients) == ("a@example.org", ["b@example.net"])
