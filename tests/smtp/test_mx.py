"""The MX listener, driven by smtplib over real TCP."""

from __future__ import annotations

import pytest_twisted

from tests.helpers import in_thread
from tests.smtp.conftest import MailServer

MESSAGE = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"Hi Alice.\r\n"
)


def send(
    server: MailServer, sender: str, recipients: list[str], message: bytes
) -> dict[str, tuple[int, bytes]]:
    with server.mx() as client:
        return client.sendmail(sender, recipients, message)


def body_after_trace(stored: bytes) -> bytes:
    """The message as the client sent it: what follows gk's prepended fields."""
    lines = stored.split(b"\r\n")
    i = 0
    while lines[i].startswith((b"Return-Path:", b"Authentication-Results:", b"Received:")) or (
        lines[i][:1] in (b" ", b"\t")
    ):
        i += 1
    return b"\r\n".join(lines[i:])


@pytest_twisted.ensureDeferred
async def test_ehlo_advertises_the_extensions_and_no_auth(mail_server: MailServer) -> None:
    def ehlo() -> tuple[int, bytes]:
        with mail_server.mx() as client:
            return client.ehlo()

    code, text = await in_thread(ehlo)
    assert code == 250
    lines = text.decode().splitlines()
    assert lines[0] == "mail.example.test"
    for extension in (
        "PIPELINING",
        "SIZE 100000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ):
        assert extension in lines
    assert not any(line.startswith("AUTH") for line in lines)


@pytest_twisted.ensureDeferred
async def test_a_message_for_a_local_user_lands_in_the_inbox_intact(
    mail_server: MailServer,
) -> None:
    refused = await in_thread(
        send, mail_server, "carol@example.org", ["alice@example.test"], MESSAGE
    )
    assert refused == {}
    [stored] = await mail_server.inbox(mail_server.alice)
    assert stored.startswith(b"Return-Path: <carol@example.org>\r\n")
    assert b"\r\nReceived: from client.example.org ([127.0.0.1])\r\n" in stored
    assert b"by mail.example.test (gk) with ESMTP id " in stored
    assert b"for <alice@example.test>;" in stored
    assert b"Authentication-Results: mail.example.test;" in stored
    assert body_after_trace(stored) == MESSAGE
    assert await mail_server.inbox(mail_server.bob) == []


@pytest_twisted.ensureDeferred
async def test_unknown_users_and_foreign_domains_are_refused_at_rcpt(
    mail_server: MailServer,
) -> None:
    def conversation() -> list[tuple[int, bytes]]:
        with mail_server.mx() as client:
            client.ehlo()
            client.mail("carol@example.org")
            return [
                client.rcpt("nobody@example.test"),
                client.rcpt("someone@elsewhere.example"),
                client.rcpt("alice@[127.0.0.1]"),
                client.rcpt("bob@example.test"),
            ]

    replies = await in_thread(conversation)
    assert replies[0][0] == 550 and replies[0][1].startswith(b"5.1.1 ")
    assert replies[1][0] == 554 and replies[1][1].startswith(b"5.7.1 ")
    assert replies[2][0] == 554 and replies[2][1].startswith(b"5.7.1 ")
    assert replies[3] == (250, b"2.0.0 Ok")


@pytest_twisted.ensureDeferred
async def test_aliases_tags_and_catch_all_reach_their_users(mail_server: MailServer) -> None:
    accounts = mail_server.app.accounts
    await accounts.add_alias("team@example.test", "alice@example.test")
    await accounts.add_alias("team@example.test", "bob@example.test")
    await accounts.add_alias("@example.test", "bob@example.test")
    recipients = ["team@example.test", "alice+lists@example.test", "whoever@example.test"]
    refused = await in_thread(send, mail_server, "carol@example.org", recipients, MESSAGE)
    assert refused == {}
    # One copy per account, however many of its addresses were named.
    assert len(await mail_server.inbox(mail_server.alice)) == 1
    assert len(await mail_server.inbox(mail_server.bob)) == 1


@pytest_twisted.ensureDeferred
async def test_8bit_and_utf8_messages_are_stored_byte_exact(mail_server: MailServer) -> None:
    eight_bit = (
        b"From: carol@example.org\r\nSubject: caf\xe9\r\n"
        b"Content-Type: text/plain; charset=latin-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nd\xe9j\xe0 vu\r\n"
    )
    utf8 = "From: jörg@bücher.example\r\nSubject: grüße 🎉\r\n\r\nÄrger?\r\n".encode()

    def conversation() -> None:
        with mail_server.mx() as client:
            client.sendmail(
                "carol@example.org", ["alice@example.test"], eight_bit, ["BODY=8BITMIME"]
            )
            client.sendmail(
                "jörg@bücher.example", ["alice@example.test"], utf8, ["SMTPUTF8", "BODY=8BITMIME"]
            )

    await in_thread(conversation)
    first, second = await mail_server.inbox(mail_server.alice)
    assert body_after_trace(first) == eight_bit
    assert body_after_trace(second) == utf8
    assert second.startswith("Return-Path: <jörg@bücher.example>\r\n".encode())
    assert b" with UTF8SMTP id " in second


@pytest_twisted.ensureDeferred
async def test_size_limits_refuse_with_552(mail_server: MailServer) -> None:
    big = MESSAGE + b"x" * 100_000 + b"\r\n"

    def conversation() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        with mail_server.mx() as client:
            client.ehlo()
            announced = client.mail("carol@example.org", ["SIZE=200000"])
            client.rset()
            # Without SIZE the limit is found while the data arrives.
            client.mail("carol@example.org")
            client.rcpt("alice@example.test")
            sent = client.data(big)
            return announced, sent, client.noop()

    announced, sent, after = await in_thread(conversation)
    assert announced[0] == 552 and announced[1].startswith(b"5.3.4 ")
    assert sent[0] == 552 and sent[1].startswith(b"5.3.4 ")
    assert after[0] == 250  # the session goes on
    assert await mail_server.inbox(mail_server.alice) == []


@pytest_twisted.ensureDeferred
async def test_the_recipient_limit_defers_the_rest_with_452(mail_server: MailServer) -> None:
    def conversation() -> list[int]:
        with mail_server.mx() as client:
            client.ehlo()
            client.mail("carol@example.org")
            return [client.rcpt("alice@example.test")[0] for _ in range(6)]

    assert await in_thread(conversation) == [250, 250, 250, 250, 250, 452]


@pytest_twisted.ensureDeferred
async def test_small_commands(mail_server: MailServer) -> None:
    def conversation() -> list[tuple[int, bytes]]:
        with mail_server.mx() as client:
            client.ehlo()
            return [
                client.verify("alice@example.test"),
                client.noop(),
                client.rset(),
                client.docmd("HELP"),
                client.docmd("EXPN", "team"),
                client.docmd("AUTH", "PLAIN"),
                client.mail("a@b.example") and client.docmd("DATA"),
            ]

    replies = await in_thread(conversation)
    assert [code for code, _ in replies] == [252, 250, 250, 214, 502, 502, 554]
