"""
Delivering mail into the store: the bytes come back exactly, UIDs grow and
never repeat (also under concurrency), the quota and unknown folders are
refused without leaving anything behind, and each delivery is announced.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import cast

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet import defer
from twisted.python.failure import Failure

from gk.app import GkApp
from gk.events import Event, MailDelivered
from gk.storage import mail_index
from gk.storage.accounts import Account
from gk.storage.mailstore import NoSuchFolder, QuotaExceeded
from gk.storage.models import MailFolder, Message

MESSAGE = (
    b"From: =?UTF-8?Q?Ren=C3=A9?= <rene@remote.test>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: =?UTF-8?B?UsOpdW5pb24gZGUgbHVuZGk=?=\r\n"
    b"Date: Mon, 2 Mar 2026 09:30:00 +0100\r\n"
    b"Message-ID: <m1@remote.test>\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
)


def files(app: GkApp, account: Account, folder: str = "INBOX") -> dict[str, list[str]]:
    root = app.mailstore.folder_path(account.email, folder)
    return {sub: sorted(os.listdir(root / sub)) for sub in ("tmp", "new", "cur")}


async def rows(app: GkApp, account: Account, folder: str = "INBOX") -> list[Message]:
    def load(session):
        row = mail_index.get_folder(session, account.id, folder)
        assert row is not None
        return mail_index.messages_in(session, row.id)

    return await app.db.read(load)


async def folder_row(app: GkApp, account: Account, folder: str) -> MailFolder:
    def load(session):
        return mail_index.get_folder(session, account.id, folder)

    row: MailFolder | None = await app.db.read(load)
    assert row is not None
    return row


@pytest_twisted.ensureDeferred
async def test_stored_bytes_are_exactly_the_delivered_bytes(app: GkApp, alice: Account) -> None:
    samples = [
        MESSAGE,
        b"Subject: LF only\n\nline one\nline two\n",
        b"Subject: no final newline\r\n\r\nno newline at the end",
        b"Subject: 8bit\r\n\r\n" + bytes(range(256)) + b"\r\n.\r\n..\r\n",
        b"",
    ]
    stored = [await app.mailstore.deliver(alice, data) for data in samples]

    for data, result in zip(samples, stored, strict=True):
        assert result.size == len(data)
        assert result.path.parent.name == "new"
        assert result.path.read_bytes() == data
        assert await app.mailstore.read(alice, "INBOX", result.uid) == data
    assert files(app, alice)["tmp"] == []
    assert len(files(app, alice)["new"]) == len(samples)


@pytest_twisted.ensureDeferred
async def test_the_index_row_holds_the_parsed_envelope(app: GkApp, alice: Account) -> None:
    when = datetime.datetime(2026, 3, 2, 8, 31, tzinfo=datetime.UTC)
    stored = await app.mailstore.deliver(alice, MESSAGE, internal_date=when)
    [row] = await rows(app, alice)
    assert row.uid == stored.uid
    assert row.subject == "Réunion de lundi"
    assert row.from_ == "René <rene@remote.test>"
    assert row.to == "alice@example.test"
    assert row.message_id == "<m1@remote.test>"
    assert row.date == datetime.datetime(2026, 3, 2, 8, 30, tzinfo=datetime.UTC)
    assert row.internal_date == when
    assert row.size == len(MESSAGE)
    assert row.path == f"new/{stored.path.name}"
    assert not (row.seen or row.answered or row.flagged or row.deleted or row.draft)


@pytest_twisted.ensureDeferred
async def test_uids_increase_per_folder_and_uidvalidity_is_stable(
    app: GkApp, alice: Account
) -> None:
    before = await folder_row(app, alice, "INBOX")
    inbox = [await app.mailstore.deliver(alice, MESSAGE) for _ in range(3)]
    sent = await app.mailstore.deliver(alice, MESSAGE, "Sent", flags={"seen": True})
    inbox.append(await app.mailstore.deliver(alice, MESSAGE, "inbox"))

    assert [m.uid for m in inbox] == [1, 2, 3, 4]
    assert sent.uid == 1, "each folder has its own UID sequence"
    assert {m.uidvalidity for m in inbox} == {before.uidvalidity}
    after = await folder_row(app, alice, "INBOX")
    assert after.uidvalidity == before.uidvalidity
    assert after.uidnext == 5
    assert after.highest_modseq > before.highest_modseq
    assert sent.uidvalidity == (await folder_row(app, alice, "Sent")).uidvalidity
    [sent_row] = await rows(app, alice, "Sent")
    assert sent_row.seen and not sent_row.flagged


@pytest_twisted.ensureDeferred
async def test_concurrent_deliveries_get_distinct_consecutive_uids(
    app: GkApp, alice: Account
) -> None:
    bodies = [MESSAGE + b"message number %d\r\n" % i for i in range(50)]
    results = await defer.gatherResults(
        [defer.ensureDeferred(app.mailstore.deliver(alice, body)) for body in bodies],
        consumeErrors=True,
    )
    assert sorted(r.uid for r in results) == list(range(1, 51))
    indexed = await rows(app, alice)
    assert [r.uid for r in indexed] == list(range(1, 51))
    assert len({r.modseq for r in indexed}) == 50
    assert len(files(app, alice)["new"]) == 50
    # Each UID leads to the message that was delivered under it.
    for body, result in zip(bodies, results, strict=True):
        assert await app.mailstore.read(alice, "INBOX", result.uid) == body
    assert (await folder_row(app, alice, "INBOX")).uidnext == 51


@pytest_twisted.ensureDeferred
async def test_quota_is_enforced_and_a_refused_message_leaves_nothing(app: GkApp) -> None:
    bob = await app.accounts.create_user(
        "bob@example.test", "bob's long password", quota_bytes=1000
    )
    await app.mailstore.deliver(bob, b"x" * 600)
    with pytest.raises(QuotaExceeded):
        await app.mailstore.deliver(bob, b"y" * 401)
    # Over all folders: Sent counts too.
    with pytest.raises(QuotaExceeded):
        await app.mailstore.deliver(bob, b"y" * 401, "Sent")

    assert files(app, bob) == {"tmp": [], "new": [files(app, bob)["new"][0]], "cur": []}
    assert files(app, bob, "Sent") == {"tmp": [], "new": [], "cur": []}
    assert [r.size for r in await rows(app, bob)] == [600]
    assert await rows(app, bob, "Sent") == []

    # Exactly at the limit is allowed; the refused deliveries used no UID.
    stored = await app.mailstore.deliver(bob, b"z" * 400, "Sent")
    assert stored.uid == 1
    # Internal copies (e.g. moving mail) may skip the check.
    await app.mailstore.deliver(bob, b"w" * 10, check_quota=False)
    assert [r.uid for r in await rows(app, bob)] == [1, 2]


@pytest_twisted.ensureDeferred
async def test_unknown_folder_is_refused_and_leaves_nothing(app: GkApp, alice: Account) -> None:
    root = app.mailstore.user_root(alice.email)

    def snapshot() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    before = snapshot()
    with pytest.raises(NoSuchFolder):
        await app.mailstore.deliver(alice, MESSAGE, "Nope")
    with pytest.raises(NoSuchFolder):
        await app.mailstore.deliver(alice, MESSAGE, "Sent/Nope")
    assert snapshot() == before

    def all_messages(session):
        return list(session.scalars(select(Message)))

    assert await app.db.read(all_messages) == []


@pytest_twisted.ensureDeferred
async def test_a_delivery_publishes_mail_delivered(app: GkApp, alice: Account) -> None:
    bob = await app.accounts.create_user("bob@example.test", "bob's long password")
    for_alice: list[Event] = []
    for_bob: list[Event] = []
    app.events.subscribe(MailDelivered, for_alice.append, user_id=alice.id)
    app.events.subscribe(MailDelivered, for_bob.append, user_id=bob.id)

    stored = await app.mailstore.deliver(alice, MESSAGE, "Archive")

    assert for_alice == [
        MailDelivered(
            user_id=alice.id,
            folder="Archive",
            uid=stored.uid,
            sender="René <rene@remote.test>",
            subject="Réunion de lundi",
        )
    ]
    assert for_bob == []


@pytest_twisted.ensureDeferred
async def test_a_folder_missing_on_disk_is_recreated_rather_than_losing_mail(
    app: GkApp, alice: Account
) -> None:
    drafts: Path = app.mailstore.folder_path(alice.email, "Drafts")
    for sub in ("tmp", "new", "cur"):
        (drafts / sub).rmdir()
    stored = await app.mailstore.deliver(alice, MESSAGE, "Drafts")
    assert stored.path.read_bytes() == MESSAGE
    assert (drafts / "maildirfolder").exists()


@pytest_twisted.ensureDeferred
async def test_concurrent_deliveries_never_exceed_the_quota(app: GkApp) -> None:
    carol = await app.accounts.create_user(
        "carol@example.test", "carol's long password", quota_bytes=1000
    )
    folders = ["INBOX", "Sent", "Drafts", "Trash", "Junk"] * 4
    attempts = [
        defer.ensureDeferred(app.mailstore.deliver(carol, b"q" * 200, folder)) for folder in folders
    ]
    results = await defer.DeferredList(attempts, consumeErrors=True)
    stored = [result for ok, result in results if ok]
    refused = [cast(Failure, result) for ok, result in results if not ok]
    assert len(stored) == 5
    assert all(failure.check(QuotaExceeded) for failure in refused)
    usage = await app.db.read(lambda s: mail_index.mailbox_usage(s, carol.id))
    assert usage == 1000


@pytest_twisted.ensureDeferred
async def test_usage_counts_every_folder(app: GkApp, alice: Account) -> None:
    assert await app.mailstore.usage(alice) == 0
    first, second = b"Subject: a\r\n\r\n12345\r\n", b"Subject: b\r\n\r\nx\r\n"
    await app.mailstore.deliver(alice, first)
    await app.mailstore.deliver(alice, second, "Sent")
    assert await app.mailstore.usage(alice) == len(first) + len(second) == 38
