"""
The submission listeners (STARTTLS and implicit TLS), driven by smtplib
over real TCP: AUTH, sender ownership, local delivery, durable queueing
of remote recipients, and the brute-force guard.
"""

from __future__ import annotations

import base64
import re
import smtplib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from argon2 import PasswordHasher
from sqlalchemy import select
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import implementer

from gk import passwords
from gk.storage import queue_store
from gk.storage.models import QueuedMessage
from tests.helpers import client_tls, in_thread
from tests.smtp.conftest import PASSWORD, MailServer

Reply = tuple[int, bytes]

ALICE = "alice@example.test"

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: Lunch\r\n"
    b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <lunch-1@laptop.example.test>\r\n"
    b"\r\n"
    b"Noon at the usual place?\r\n"
)

#: No Message-ID, no Date: the submission server adds them.
BARE_MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: No id\r\n"
    b"\r\n"
    b"Sent by a minimal client.\r\n"
)

LISTENERS = ["starttls", "implicit"]

_QUEUED_AS = re.compile(rb"^2\.0\.0 Ok: queued as ([0-9A-F]+)$")


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode("ascii")


def plain(user: str, password: str, authzid: str = "") -> str:
    """An AUTH PLAIN response (RFC 4616), base64-encoded."""
    return b64(f"{authzid}\0{user}\0{password}")


def assert_reply(reply: Reply, code: int, enhanced: str) -> None:
    assert reply[0] == code and reply[1].startswith(f"{enhanced} ".encode()), reply


def plaintext_client(server: MailServer) -> smtplib.SMTP:
    """The STARTTLS listener, before STARTTLS."""
    return smtplib.SMTP(
        "127.0.0.1", server.port("submission"), local_hostname="laptop.example.test"
    )


def connect(server: MailServer, listener: str) -> smtplib.SMTP:
    """A client under TLS on one of the two submission listeners."""
    return server.submission() if listener == "starttls" else server.submissions()


def auth(
    client: smtplib.SMTP,
    mechanism: str,
    user: str = ALICE,
    password: str = PASSWORD,
    initial_response: bool = True,
) -> Reply:
    """
    AUTH PLAIN or LOGIN through smtplib's own mechanism code, with or
    without the initial response; refusals are returned, not raised.
    """
    client.ehlo_or_helo_if_needed()
    client.user, client.password = user, password
    authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
    try:
        return client.auth(mechanism, authobject, initial_response_ok=initial_response)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code, as_bytes(e.smtp_error)


def as_bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


def submit(
    server: MailServer,
    recipients: list[str],
    message: bytes = MESSAGE,
    sender: str = ALICE,
    listener: str = "starttls",
) -> Reply:
    """Log in as alice and send one message; the reply to DATA."""
    with connect(server, listener) as client:
        client.login(ALICE, PASSWORD)
        assert client.mail(sender)[0] == 250
        for recipient in recipients:
            assert client.rcpt(recipient)[0] == 250, recipient
        return client.data(message)


@implementer(ILogObserver)
class LogCollector:
    """Keeps every log event it is given."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)


def queue_id_of(reply: Reply) -> str:
    match = _QUEUED_AS.match(reply[1])
    assert reply[0] == 250 and match is not None, reply
    return match.group(1).decode("ascii")


def split_trace(stored: bytes) -> tuple[list[bytes], bytes]:
    """The header fields gk prepended (unfolded) and the rest of the message."""
    lines = stored.split(b"\r\n")
    fields: list[bytes] = []
    i = 0
    while lines[i].startswith((b"Return-Path:", b"Received:")) or (
        lines[i][:1] in (b" ", b"\t") and fields
    ):
        if lines[i][:1] in (b" ", b"\t"):
            fields[-1] += b" " + lines[i].strip()
        else:
            fields.append(lines[i])
        i += 1
    return fields, b"\r\n".join(lines[i:])


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Argon2id at its cheapest for these tests (applied before the
    C{mail_server} creates its users): they log in dozens of times and are
    about SMTP, not about the hash's cost (tests/test_passwords.py).
    """
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    # The dummy hash (for unknown users) is made once with the hasher of
    # the moment: forget it before and after, so no test sees a cheap one.
    passwords.dummy_hash.cache_clear()
    yield
    passwords.dummy_hash.cache_clear()


# -- before and after TLS ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_before_tls_only_starttls_is_offered_and_auth_and_mail_need_it(
    mail_server: MailServer,
) -> None:
    def conversation() -> dict[str, Any]:
        with plaintext_client(mail_server) as client:
            replies: dict[str, Any] = {"ehlo": client.ehlo()}
            replies["auth"] = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))
            replies["mail"] = client.mail(ALICE)
            client.starttls(context=client_tls())
            replies["ehlo_tls"] = client.ehlo()
            replies["mail_tls"] = client.mail(ALICE)
            return replies

    replies = await in_thread(conversation)
    code, text = replies["ehlo"]
    lines = text.decode().splitlines()
    assert code == 250 and "STARTTLS" in lines
    assert not any(line.startswith("AUTH") for line in lines)
    assert_reply(replies["auth"], 530, "5.7.0")
    assert_reply(replies["mail"], 530, "5.7.0")

    code, text = replies["ehlo_tls"]
    lines = text.decode().splitlines()
    assert code == 250 and "AUTH PLAIN LOGIN" in lines
    assert "STARTTLS" not in lines
    assert_reply(replies["mail_tls"], 530, "5.7.0")
    # No credentials were checked before TLS.
    registry = mail_server.app.metrics.registry
    assert registry.get_sample_value("gk_auth_attempts_total", _attempt("success")) is None


def _attempt(outcome: str) -> dict[str, str]:
    return {"protocol": "submission", "outcome": outcome}


@pytest_twisted.ensureDeferred
async def test_implicit_tls_offers_auth_at_once(mail_server: MailServer) -> None:
    def ehlo() -> Reply:
        with mail_server.submissions() as client:
            reply: Reply = client.ehlo()
            return reply

    code, text = await in_thread(ehlo)
    lines = text.decode().splitlines()
    assert code == 250 and "AUTH PLAIN LOGIN" in lines
    assert "STARTTLS" not in lines


# -- AUTH ----------------------------------------------------------------------


#: (listener, mechanism, initial response): every mechanism on every
#: listener; PLAIN with an initial response is smtplib's own login().
LOGINS = [
    ("starttls", "PLAIN", True),
    ("starttls", "PLAIN", False),
    ("starttls", "LOGIN", False),
    ("implicit", "PLAIN", True),
    ("implicit", "LOGIN", True),
]


@pytest_twisted.ensureDeferred
async def test_auth_plain_and_login_on_both_listeners(mail_server: MailServer) -> None:
    def conversations() -> list[tuple[Reply, Reply, list[str]]]:
        results = []
        for listener, mechanism, initial_response in LOGINS:
            with connect(mail_server, listener) as client:
                if mechanism == "PLAIN" and initial_response:
                    reply = client.login(ALICE, PASSWORD)
                else:
                    reply = auth(client, mechanism, initial_response=initial_response)
                lines = client.ehlo()[1].decode().splitlines()
                results.append((reply, client.mail(ALICE), lines))
        return results

    results = await in_thread(conversations)
    assert len(results) == len(LOGINS)
    for reply, mail, ehlo_lines in results:
        assert reply == (235, b"2.7.0 Authentication successful")
        assert mail == (250, b"2.0.0 Ok")
        # Authenticated: AUTH is no longer offered.
        assert not any(line.startswith("AUTH") for line in ehlo_lines)


@pytest_twisted.ensureDeferred
async def test_wrong_credentials_are_refused_with_535(mail_server: MailServer) -> None:
    def conversation() -> list[Reply]:
        with mail_server.submission() as client:
            return [
                auth(client, "PLAIN", password="not the password"),
                auth(client, "LOGIN", password="not the password"),
                auth(client, "PLAIN", user="nobody@example.test"),
                auth(client, "LOGIN", user="not an address"),
                # Still usable afterwards (and, at 4 failures, not delayed yet).
                auth(client, "PLAIN"),
            ]

    replies = await in_thread(conversation)
    for reply in replies[:-1]:
        assert_reply(reply, 535, "5.7.8")
    assert replies[-1][0] == 235
    registry = mail_server.app.metrics.registry
    assert registry.get_sample_value("gk_auth_attempts_total", _attempt("failure")) == 4
    assert registry.get_sample_value("gk_auth_attempts_total", _attempt("success")) == 1


@pytest_twisted.ensureDeferred
async def test_plain_with_another_authorization_identity_is_refused(
    mail_server: MailServer,
) -> None:
    def conversation() -> tuple[Reply, Reply]:
        with mail_server.submission() as client:
            client.ehlo()
            # alice's own credentials, asking to act as bob.
            as_bob = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD, "bob@example.test"))
            same = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD, ALICE))
            return as_bob, same

    as_bob, same = await in_thread(conversation)
    assert_reply(as_bob, 535, "5.7.8")
    assert same[0] == 235  # an authzid equal to the authcid is fine


@pytest_twisted.ensureDeferred
async def test_app_passwords_work_until_revoked(mail_server: MailServer) -> None:
    accounts = mail_server.app.accounts
    secret = await accounts.create_app_password(ALICE, "phone")

    def login(listener: str, mechanism: str) -> Reply:
        with connect(mail_server, listener) as client:
            return auth(client, mechanism, password=secret)

    assert await in_thread(login, "starttls", "PLAIN") == (235, b"2.7.0 Authentication successful")
    assert await in_thread(login, "implicit", "LOGIN") == (235, b"2.7.0 Authentication successful")
    await accounts.revoke_app_password(ALICE, "phone")
    assert_reply(await in_thread(login, "starttls", "PLAIN"), 535, "5.7.8")
    assert_reply(await in_thread(login, "implicit", "LOGIN"), 535, "5.7.8")


@pytest_twisted.ensureDeferred
async def test_auth_exchange_errors(mail_server: MailServer) -> None:
    def conversation() -> dict[str, Reply]:
        replies: dict[str, Reply] = {}
        with mail_server.submission() as client:
            client.ehlo()
            replies["plain_challenge"] = client.docmd("AUTH", "PLAIN")
            replies["plain_cancel"] = client.docmd("*")
            replies["login_challenge"] = client.docmd("AUTH", "LOGIN")
            replies["login_username"] = client.docmd(b64(ALICE))
            replies["login_cancel"] = client.docmd("*")
            replies["bad_initial"] = client.docmd("AUTH", "PLAIN not_base64!")
            client.docmd("AUTH", "LOGIN")
            replies["bad_response"] = client.docmd("%%%")
            replies["utf8"] = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\xff").decode())
            replies["mechanism"] = client.docmd("AUTH", "CRAM-MD5")
            replies["success"] = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))
            replies["again"] = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))
            replies["mail"] = client.mail(ALICE)
        return replies

    replies = await in_thread(conversation)
    assert replies["plain_challenge"] == (334, b"")
    assert_reply(replies["plain_cancel"], 501, "5.7.0")
    assert replies["login_challenge"] == (334, b64("Username:").encode())
    assert replies["login_username"] == (334, b64("Password:").encode())
    assert_reply(replies["login_cancel"], 501, "5.7.0")
    assert_reply(replies["bad_initial"], 501, "5.5.2")
    assert_reply(replies["bad_response"], 501, "5.5.2")
    assert_reply(replies["utf8"], 501, "5.5.2")
    assert_reply(replies["mechanism"], 504, "5.5.4")
    assert_reply(replies["success"], 235, "2.7.0")
    assert_reply(replies["again"], 503, "5.5.1")
    assert replies["mail"] == (250, b"2.0.0 Ok")
    # Cancelled or malformed exchanges check no password.
    registry = mail_server.app.metrics.registry
    assert registry.get_sample_value("gk_auth_attempts_total", _attempt("failure")) is None


@pytest_twisted.ensureDeferred
async def test_starttls_forgets_what_was_said_before(mail_server: MailServer) -> None:
    def conversation() -> tuple[Reply, Reply]:
        with plaintext_client(mail_server) as client:
            client.ehlo()
            client.starttls(context=client_tls())
            # No EHLO yet over TLS: the plaintext one does not count.
            before_ehlo = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))
            client.ehlo()
            return before_ehlo, client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))

    before_ehlo, after = await in_thread(conversation)
    assert_reply(before_ehlo, 503, "5.5.1")
    assert_reply(after, 235, "2.7.0")


# -- sender ownership -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_mail_from_must_be_an_address_of_the_user(mail_server: MailServer) -> None:
    accounts = mail_server.app.accounts
    await accounts.add_alias("sales@example.test", ALICE)
    await accounts.add_alias("team@example.test", "sales@example.test")  # via an alias chain
    await accounts.add_alias("bobs-list@example.test", "bob@example.test")
    await accounts.add_alias("@example.test", ALICE)  # alice is the catch-all target
    senders = [
        ALICE,
        "Alice@Example.TEST",
        "alice+news@example.test",
        "sales@example.test",
        "team@example.test",
        "sales+tag@example.test",
        "bob@example.test",
        "bob+tag@example.test",
        "bobs-list@example.test",
        "",
        "arbitrary@example.test",
        "alice@example.org",
    ]

    def conversation() -> list[Reply]:
        replies = []
        with mail_server.submission() as client:
            client.login(ALICE, PASSWORD)
            for sender in senders:
                replies.append(client.mail(sender))
                client.rset()
        return replies

    replies = dict(zip(senders, await in_thread(conversation), strict=True))
    for sender in senders[:6]:
        assert replies[sender] == (250, b"2.0.0 Ok"), sender
    for sender in senders[6:]:
        assert_reply(replies[sender], 553, "5.7.1")
    assert replies["bob@example.test"][1] == (
        b"5.7.1 <bob@example.test>: Sender address not owned by alice@example.test"
    )
    assert replies[""][1].startswith(b"5.7.1 <>: ")


# -- delivery ------------------------------------------------------------------------


@pytest.mark.parametrize("listener", LISTENERS)
@pytest_twisted.ensureDeferred
async def test_a_local_recipient_gets_the_message_intact_with_trace_fields(
    mail_server: MailServer, listener: str
) -> None:
    reply = await in_thread(submit, mail_server, ["bob@example.test"], MESSAGE, ALICE, listener)
    queue_id = queue_id_of(reply)
    [stored] = await mail_server.inbox(mail_server.bob)
    fields, rest = split_trace(stored)
    # The client's bytes, untouched: Message-ID and Date were there already.
    assert rest == MESSAGE
    assert len(fields) == 2
    assert fields[0] == b"Return-Path: <alice@example.test>"
    received = fields[1].decode()
    assert received.startswith("Received: from laptop.example.test ([127.0.0.1]) ")
    assert f" by mail.example.test (gk) with ESMTPSA id {queue_id} " in received
    assert re.search(r" \(using TLSv1\.3 TLS_[A-Z0-9_]+\) ", received), received
    assert " for <bob@example.test>; " in received
    assert await mail_server.inbox(mail_server.alice) == []
    assert (await mail_server.app.queue.counts())["pending"] == 0


@pytest_twisted.ensureDeferred
async def test_message_id_and_date_are_added_only_when_missing(mail_server: MailServer) -> None:
    only_date = BARE_MESSAGE.replace(
        b"Subject:", b"date: Tue, 02 Jan 2024 08:00:00 +0100\r\nSubject:"
    )
    only_id = BARE_MESSAGE.replace(b"Subject:", b"MESSAGE-ID: <x@laptop.example.test>\r\nSubject:")
    for message in (BARE_MESSAGE, only_date, only_id, MESSAGE):
        await in_thread(submit, mail_server, ["bob@example.test"], message)
    bare, with_date, with_id, complete = (
        split_trace(stored)[1] for stored in await mail_server.inbox(mail_server.bob)
    )

    added = re.match(
        rb"Message-ID: <[0-9a-f]{24}@mail\.example\.test>\r\n"
        rb"Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\n",
        bare,
    )
    assert added is not None, bare
    assert bare[added.end() :] == BARE_MESSAGE
    assert re.fullmatch(
        rb"Message-ID: <[0-9a-f]{24}@mail\.example\.test>\r\n", with_date[: -len(only_date)]
    )
    assert with_date.endswith(only_date)
    assert re.fullmatch(rb"Date: [^\r\n]+ \+0000\r\n", with_id[: -len(only_id)])
    assert with_id.endswith(only_id)
    assert complete == MESSAGE


@pytest_twisted.ensureDeferred
async def test_a_remote_recipient_is_queued_durably(mail_server: MailServer) -> None:
    app = mail_server.app
    reply = await in_thread(submit, mail_server, ["Carol@Remote.EXAMPLE"])
    queue_id = queue_id_of(reply)

    spool_file = app.config.server.data_dir / "spool" / queue_id
    spooled = spool_file.read_bytes()
    fields, rest = split_trace(spooled)
    assert rest == MESSAGE
    assert [field.split(b":")[0] for field in fields] == [b"Received"]  # no Return-Path yet
    assert f"with ESMTPSA id {queue_id} ".encode() in fields[0]
    assert b" for <Carol@Remote.EXAMPLE>; " in fields[0]

    def rows(session: Any) -> tuple[QueuedMessage, list[Any]]:
        message = session.scalars(
            select(QueuedMessage).where(QueuedMessage.queue_id == queue_id)
        ).one()
        return message, queue_store.recipients_of(session, queue_id)

    message, recipients = await app.db.read(rows)
    assert message.sender == ALICE
    assert message.user_id == mail_server.alice.id
    assert message.size == len(spooled)
    assert message.smtputf8 is False
    assert [(r.address, r.domain, r.state) for r in recipients] == [
        ("Carol@Remote.EXAMPLE", "remote.example", "pending")
    ]
    assert await app.queue.counts() == dict.fromkeys(queue_store.STATES, 0) | {"pending": 1}
    # Nothing was delivered locally.
    assert await mail_server.inbox(mail_server.alice) == []
    assert await mail_server.inbox(mail_server.bob) == []


@pytest_twisted.ensureDeferred
async def test_local_and_remote_recipients_share_one_queue_id(mail_server: MailServer) -> None:
    app = mail_server.app
    observer = LogCollector()
    globalLogPublisher.addObserver(observer)
    try:
        reply = await in_thread(
            submit,
            mail_server,
            ["bob@example.test", "dave@remote.example", "erin@Other.Example", "alice@example.test"],
            BARE_MESSAGE,
        )
    finally:
        globalLogPublisher.removeObserver(observer)
    queue_id = queue_id_of(reply)

    [bob_copy] = await mail_server.inbox(mail_server.bob)
    [alice_copy] = await mail_server.inbox(mail_server.alice)
    assert bob_copy == alice_copy
    fields, _ = split_trace(bob_copy)
    assert fields[0] == b"Return-Path: <alice@example.test>"
    assert f" with ESMTPSA id {queue_id} ".encode() in fields[1]
    assert b" for <" not in fields[1]  # several recipients: none named
    # The queued copy is the local one without its Return-Path, byte for byte.
    spooled = (app.config.spool_dir / queue_id).read_bytes()
    assert b"Return-Path: <alice@example.test>\r\n" + spooled == bob_copy
    assert spooled.endswith(BARE_MESSAGE)

    recipients = await app.db.read(lambda s: queue_store.recipients_of(s, queue_id))
    assert [(r.address, r.domain) for r in recipients] == [
        ("dave@remote.example", "remote.example"),
        ("erin@Other.Example", "other.example"),
    ]
    # One id in every log line about this message.
    ids = {event["queue_id"] for event in observer.events if "queue_id" in event}
    assert ids == {queue_id}
    assert len([event for event in observer.events if event.get("queue_id") == queue_id]) >= 2


@pytest_twisted.ensureDeferred
async def test_an_unknown_local_recipient_is_refused_at_rcpt(mail_server: MailServer) -> None:
    def conversation() -> list[Reply]:
        with mail_server.submission() as client:
            client.login(ALICE, PASSWORD)
            client.mail(ALICE)
            replies = [client.rcpt("nobody@example.test"), client.rcpt("bob@example.test")]
            replies.append(client.data(MESSAGE))
            return replies

    unknown, known, data = await in_thread(conversation)
    assert_reply(unknown, 550, "5.1.1")
    assert known == (250, b"2.0.0 Ok")
    queue_id_of(data)
    assert len(await mail_server.inbox(mail_server.bob)) == 1
    assert (await mail_server.app.queue.counts())["pending"] == 0


@pytest_twisted.ensureDeferred
async def test_pipelined_commands_are_answered_in_order(mail_server: MailServer) -> None:
    """Recipient checks wait for the database; the replies still keep their order."""

    def conversation() -> list[Reply]:
        with mail_server.submissions() as client:
            client.login(ALICE, PASSWORD)
            assert "pipelining" in client.esmtp_features
            client.send(
                "MAIL FROM:<alice@example.test>\r\n"
                "RCPT TO:<nobody@example.test>\r\n"
                "RCPT TO:<bob@example.test>\r\n"
                "RCPT TO:<carol@remote.example>\r\n"
                "DATA\r\n"
            )
            replies = [client.getreply() for _ in range(5)]
            client.send(
                MESSAGE + b".\r\n"
                b"MAIL FROM:<bob@example.test>\r\n"
                b"RCPT TO:<bob@example.test>\r\n"
                b"NOOP\r\n"
            )
            replies += [client.getreply() for _ in range(4)]
            return replies

    replies = await in_thread(conversation)
    assert replies[0] == (250, b"2.0.0 Ok")
    assert_reply(replies[1], 550, "5.1.1")
    assert replies[2:4] == [(250, b"2.0.0 Ok")] * 2
    assert replies[4][0] == 354
    queue_id = queue_id_of(replies[5])
    assert_reply(replies[6], 553, "5.7.1")
    assert_reply(replies[7], 503, "5.5.1")
    assert replies[8] == (250, b"2.0.0 Ok")
    [stored] = await mail_server.inbox(mail_server.bob)
    assert split_trace(stored)[1] == MESSAGE
    recipients = await mail_server.app.db.read(lambda s: queue_store.recipients_of(s, queue_id))
    assert [r.address for r in recipients] == ["carol@remote.example"]


# -- brute force ---------------------------------------------------------------------

#: Two free failures, then a 0.3 s delay per attempt; blocked at the fourth.
FAST_GUARD = """
[security]
auth_delay_after = 2
auth_delay_initial = 0.3
auth_delay_max = 0.3
auth_block_after = 4
block_duration = 60.0
"""
DELAY = 0.3


@pytest.mark.parametrize("mail_server_config_extra", [FAST_GUARD])
@pytest_twisted.ensureDeferred
async def test_repeated_failures_are_delayed_then_blocked(mail_server: MailServer) -> None:
    def attack() -> list[tuple[Reply, float]]:
        results = []
        with mail_server.submission() as client:
            client.ehlo()
            for password in ["guess 1", "guess 2", "guess 3", "guess 4", PASSWORD]:
                start = time.monotonic()
                reply = client.docmd("AUTH", "PLAIN " + plain(ALICE, password))
                results.append((reply, time.monotonic() - start))
        return results

    results = await in_thread(attack)
    replies = [reply for reply, _ in results]
    for reply in replies[:4]:
        assert_reply(reply, 535, "5.7.8")
    # Third and fourth attempts waited before their answer.
    assert results[2][1] >= DELAY and results[3][1] >= DELAY
    # Blocked: even the right password is refused, unchecked, as a temporary failure.
    assert replies[4] == (454, b"4.7.0 Too many failed attempts, try again later")

    # A new connection from the blocked address is turned away at once.
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        await in_thread(mail_server.submissions)
    assert refused.value.smtp_code == 421
    assert as_bytes(refused.value.smtp_error) == (
        b"4.7.0 mail.example.test Too many failed attempts, try again later"
    )

    registry = mail_server.app.metrics.registry

    def events(kind: str) -> float | None:
        return registry.get_sample_value("gk_security_events_total", {"type": kind})

    assert events("auth_failure") == 4
    assert events("ip_blocked") == 1
    assert events("auth_blocked") == 1
    assert events("blocked_connection") == 1
    attempts = registry.get_sample_value
    assert attempts("gk_auth_attempts_total", _attempt("failure")) == 4
    assert attempts("gk_auth_attempts_total", _attempt("blocked")) == 1
    assert attempts("gk_auth_attempts_total", _attempt("success")) is None
    assert mail_server.app.security.auth.is_blocked("127.0.0.1")


@pytest_twisted.ensureDeferred
async def test_auth_lines_may_be_as_long_as_rfc_4954_allows(mail_server: MailServer) -> None:
    """12288 octets for AUTH (a long password), 1000 for every other command."""
    long_password = "p" * 4000

    def conversation() -> list[Reply]:
        with mail_server.submission() as client:
            client.ehlo()
            return [
                client.docmd("AUTH", "PLAIN " + plain(ALICE, long_password)),
                client.docmd("NOOP", "x" * 1200),
                client.docmd("AUTH", "PLAIN " + "A" * 13000),
            ]

    wrong, long_noop, too_long = await in_thread(conversation)
    assert_reply(wrong, 535, "5.7.8")  # checked, not refused as a long line
    assert_reply(long_noop, 500, "5.5.2")
    assert_reply(too_long, 500, "5.5.2")


@pytest_twisted.ensureDeferred
async def test_smtp_sessions_and_messages_are_counted_in_metrics(mail_server: MailServer) -> None:
    def conversation() -> None:
        with mail_server.submission() as client:
            client.login(ALICE, PASSWORD)
            client.sendmail(ALICE, ["bob@example.test"], b"Subject: counted\r\n\r\nhi\r\n")

    await in_thread(conversation)
    registry = mail_server.app.metrics.registry
    assert registry.get_sample_value("gk_smtp_sessions_total", {"listener": "submission"}) == 1
    accepted = {"listener": "submission", "outcome": "accepted"}
    assert registry.get_sample_value("gk_smtp_messages_total", accepted) == 1


ONE_MESSAGE_A_MINUTE = """
[security]
messages_per_ip_per_minute = 1
"""


@pytest.mark.parametrize("mail_server_config_extra", [ONE_MESSAGE_A_MINUTE])
@pytest_twisted.ensureDeferred
async def test_a_refused_mail_from_does_not_use_up_the_message_allowance(
    mail_server: MailServer,
) -> None:
    def conversation() -> list[Reply]:
        with mail_server.submission() as client:
            client.login(ALICE, PASSWORD)
            replies = [client.mail("bob@example.test")]  # not hers: 553
            client.rset()
            replies.append(client.mail(ALICE))  # the one message of this minute
            client.rset()
            replies.append(client.mail(ALICE))  # the second: rate-limited
            return replies

    not_hers, first, second = await in_thread(conversation)
    assert_reply(not_hers, 553, "5.7.1")
    assert first[0] == 250
    assert_reply(second, 450, "4.7.1")
