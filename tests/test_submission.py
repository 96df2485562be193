"""
The submission service: what a user sends from outside an SMTP session
(the assistant, the web UI) reaches local INBOXes and the outbound queue
the way the submission port sends it, with a Sent copy, and is refused
whole when it cannot go.
"""

from __future__ import annotations

import email
import email.policy

import pytest
import pytest_twisted

from gk.app import GkApp
from gk.storage import queue_store
from gk.storage.accounts import Account
from gk.submission import (
    MailSubmission,
    RecipientRefused,
    SenderRefused,
    SubmissionError,
    remove_field,
)

PASSWORD = "correct horse battery staple"
HOSTNAME = "mail.example.test"


def submission(app: GkApp) -> MailSubmission:
    return MailSubmission(app.accounts, app.mailboxes, app.queue, HOSTNAME, max_recipients=3)


def letter(sender: str, to: str, subject: str, extra: str = "") -> bytes:
    """A message as a client writes it: no Message-ID, no Date."""
    return (
        f"From: {sender}\r\nTo: {to}\r\n{extra}Subject: {subject}\r\n\r\nHello there.\r\n"
    ).encode()


async def inbox_of(app: GkApp, account: Account, folder: str = "INBOX") -> list[bytes]:
    selection = await app.mailboxes.select(account, folder)
    return [await app.mailboxes.read(account, folder, uid) for uid in selection.uids]


@pytest_twisted.ensureDeferred
async def test_local_mail_reaches_the_inbox_and_the_sender_keeps_a_sent_copy(
    app: GkApp,
) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    carol = await app.accounts.create_user("carol@example.test", PASSWORD)
    message = letter(
        "alice@example.test", "bob@example.test", "Lunch", "Bcc: carol@example.test\r\n"
    )

    result = await submission(app).submit(
        alice, message, "alice@example.test", ["bob@example.test", "carol@example.test"]
    )

    assert result.delivered == ("bob@example.test", "carol@example.test")
    assert result.queued == ()
    assert result.message_id.endswith(f"@{HOSTNAME}>")
    [received] = await inbox_of(app, bob)
    parsed = email.message_from_bytes(received, policy=email.policy.default)
    assert parsed["Return-Path"] == "<alice@example.test>"
    assert f"by {HOSTNAME} (gk) id {result.queue_id}" in parsed["Received"]
    assert parsed["Message-ID"] == result.message_id
    assert parsed["Date"] is not None
    assert parsed["Bcc"] is None  # the hidden recipient stays hidden
    [hidden] = await inbox_of(app, carol)
    assert b"Bcc:" not in hidden and b"Subject: Lunch" in hidden

    assert result.sent_copy is not None and result.sent_copy.folder == "Sent"
    [copy] = await app.mailboxes.indexed(alice, "Sent", [result.sent_copy.uid])
    assert "\\Seen" in copy.flags
    assert copy.bcc == "carol@example.test"  # the sender's record of who got it
    assert await inbox_of(app, alice) == []


@pytest_twisted.ensureDeferred
async def test_remote_mail_is_queued_without_its_bcc_field(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    message = letter("alice@example.test", "dave@elsewhere.test", "Hi", "Bcc: eve@other.test\r\n")

    result = await submission(app).submit(
        alice, message, "alice@example.test", ["dave@elsewhere.test", "eve@other.test"]
    )

    assert result.queued == ("dave@elsewhere.test", "eve@other.test")
    [entry] = await app.db.read(queue_store.list_queue)
    assert entry.queue_id == result.queue_id
    assert entry.sender == "alice@example.test"
    assert sorted(r[0] for r in entry.recipients) == ["dave@elsewhere.test", "eve@other.test"]
    spooled = app.queue.path_of(result.queue_id).read_bytes()
    assert b"Bcc:" not in spooled and b"Subject: Hi" in spooled
    assert b"Received: by mail.example.test (gk) id " + result.queue_id.encode() in spooled


@pytest_twisted.ensureDeferred
async def test_sending_as_someone_elses_address_is_refused(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    await app.accounts.add_alias("sales@example.test", "alice@example.test")
    service = submission(app)

    with pytest.raises(SenderRefused):
        await service.submit(
            alice, letter("bob@example.test", "x", "forged"), "bob@example.test", [bob.email]
        )
    with pytest.raises(SenderRefused):
        await service.check(alice, "ceo@elsewhere.test", [bob.email])
    assert await inbox_of(app, bob) == []
    assert await inbox_of(app, alice, "Sent") == []

    # Her alias is hers to send from.
    result = await service.submit(
        alice, letter("sales@example.test", "x", "offer"), "sales@example.test", [bob.email]
    )
    assert result.delivered == ("bob@example.test",)


@pytest_twisted.ensureDeferred
async def test_a_refused_recipient_stops_the_whole_message(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    service = submission(app)
    message = letter("alice@example.test", "x", "to all")

    with pytest.raises(RecipientRefused) as refused:
        await service.submit(
            alice,
            message,
            alice.email,
            ["bob@example.test", "dave@elsewhere.test", "nobody@example.test"],
        )
    assert refused.value.address == "nobody@example.test"
    with pytest.raises(RecipientRefused):
        await service.submit(alice, message, alice.email, ["not an address"])
    with pytest.raises(SubmissionError, match="at most 3 recipients"):
        await service.submit(
            alice, message, alice.email, [f"u{i}@elsewhere.test" for i in range(4)]
        )
    with pytest.raises(SubmissionError, match="at least one recipient"):
        await service.submit(alice, message, alice.email, [" "])

    assert await inbox_of(app, bob) == []
    assert await app.db.read(queue_store.list_queue) == []
    assert await inbox_of(app, alice, "Sent") == []


@pytest_twisted.ensureDeferred
async def test_quota_full_recipient_refused_full_sender_still_sends(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD, quota_bytes=400)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD, quota_bytes=300)
    await app.mailstore.deliver(bob, b"Subject: filler\r\n\r\n" + b"x" * 300, check_quota=False)
    service = submission(app)

    with pytest.raises(RecipientRefused, match="mailbox is full"):
        await service.submit(alice, letter(alice.email, bob.email, "hi"), alice.email, [bob.email])

    # Alice's own mailbox has no room for the Sent copy: the mail goes all the same.
    await app.mailstore.deliver(alice, b"Subject: filler\r\n\r\n" + b"x" * 380, check_quota=False)
    carol = await app.accounts.create_user("carol@example.test", PASSWORD)
    result = await service.submit(
        alice, letter(alice.email, carol.email, "hi"), alice.email, [carol.email]
    )
    assert result.delivered == ("carol@example.test",)
    assert result.sent_copy is None


def test_removing_a_field_takes_its_continuation_lines_and_nothing_else() -> None:
    message = (
        b"From: a@example.test\r\nBcc: one@example.test,\r\n two@example.test\r\n"
        b"Subject: x\r\n\r\nBcc: in the body stays\r\n"
    )
    assert remove_field(message, b"Bcc") == (
        b"From: a@example.test\r\nSubject: x\r\n\r\nBcc: in the body stays\r\n"
    )
