"""
The start-up repair: the index is made to agree with the Maildir files,
whatever happened to either while gk was not running.
"""

from __future__ import annotations

import datetime
import os
import time

import pytest_twisted

from gk.app import GkApp
from gk.storage import mail_index, maildir
from gk.storage.accounts import Account
from gk.storage.mailstore import STALE_TMP_SECONDS
from gk.storage.models import Message

DROPPED_NEW = (
    b"From: =?ISO-8859-1?Q?Fran=E7ois?= <francois@remote.test>\r\n"
    b"To: alice@example.test, bob@example.test\r\n"
    b"Subject: =?UTF-8?Q?copi=C3=A9_=C3=A0_la_main?=\r\n"
    b"Date: Wed, 4 Mar 2026 12:00:00 -0500\r\n"
    b"Message-ID: <dropped-new@remote.test>\r\n"
    b"\r\n"
    b"Copied in by an operator.\r\n"
)
DROPPED_CUR = b"From: carol@remote.test\nSubject: already read\n\nLF only.\n"


async def rows(app: GkApp, account: Account, folder: str = "INBOX") -> list[Message]:
    def load(session):
        row = mail_index.get_folder(session, account.id, folder)
        assert row is not None
        return mail_index.messages_in(session, row.id)

    return await app.db.read(load)


@pytest_twisted.ensureDeferred
async def test_files_without_rows_are_indexed_with_flags_size_and_envelope(
    app: GkApp, alice: Account
) -> None:
    inbox = app.mailstore.folder_path(alice.email, "INBOX")
    archive = app.mailstore.folder_path(alice.email, "Archive")
    new_name = maildir.unique_name()
    cur_name = maildir.unique_name()
    (inbox / "new" / new_name).write_bytes(DROPPED_NEW)
    (archive / "cur" / f"{cur_name}:2,SF").write_bytes(DROPPED_CUR)
    mtime = datetime.datetime(2026, 3, 4, 17, 0, 5, tzinfo=datetime.UTC).timestamp()
    os.utime(inbox / "new" / new_name, (mtime, mtime))

    report = app.mailstore.repair()

    assert report.indexed == 2
    assert report.changed
    [new] = await rows(app, alice, "INBOX")
    assert (new.uid, new.filename, new.path) == (1, new_name, f"new/{new_name}")
    assert new.size == len(DROPPED_NEW)
    assert new.subject == "copié à la main"
    assert new.from_ == "François <francois@remote.test>"
    assert new.to == "alice@example.test, bob@example.test"
    assert new.message_id == "<dropped-new@remote.test>"
    assert new.date == datetime.datetime(2026, 3, 4, 17, 0, tzinfo=datetime.UTC)
    assert new.internal_date == datetime.datetime(2026, 3, 4, 17, 0, 5, tzinfo=datetime.UTC)
    assert not (new.seen or new.flagged or new.answered or new.deleted or new.draft)

    [cur] = await rows(app, alice, "Archive")
    assert (cur.filename, cur.path) == (cur_name, f"cur/{cur_name}:2,SF")
    assert cur.size == len(DROPPED_CUR)
    assert cur.subject == "already read"
    assert cur.seen and cur.flagged
    assert not (cur.answered or cur.deleted or cur.draft)

    assert await app.mailstore.read(alice, "INBOX", 1) == DROPPED_NEW
    assert await app.mailstore.read(alice, "Archive", 1) == DROPPED_CUR
    # Later deliveries continue after the indexed files.
    assert (await app.mailstore.deliver(alice, b"Subject: next\r\n\r\n")).uid == 2


@pytest_twisted.ensureDeferred
async def test_rows_whose_file_vanished_are_dropped(app: GkApp, alice: Account) -> None:
    kept = await app.mailstore.deliver(alice, b"Subject: kept\r\n\r\n")
    gone = await app.mailstore.deliver(alice, b"Subject: gone\r\n\r\n")
    gone.path.unlink()

    report = app.mailstore.repair()

    assert report.dropped == 1
    assert [r.uid for r in await rows(app, alice)] == [kept.uid]
    # The UID of the dropped row is never handed out again.
    assert (await app.mailstore.deliver(alice, b"Subject: new\r\n\r\n")).uid == gone.uid + 1


@pytest_twisted.ensureDeferred
async def test_a_file_moved_from_new_to_cur_is_relocated(app: GkApp, alice: Account) -> None:
    data = b"Subject: read elsewhere\r\n\r\nbody\r\n"
    stored = await app.mailstore.deliver(alice, data)
    moved = stored.path.parent.parent / "cur" / f"{stored.path.name}:2,S"
    os.rename(stored.path, moved)

    report = app.mailstore.repair()

    assert report.relocated == 1
    assert (report.indexed, report.dropped, report.completed) == (0, 0, 0)
    [row] = await rows(app, alice)
    assert row.path == f"cur/{moved.name}"
    assert row.uid == stored.uid
    assert await app.mailstore.read(alice, "INBOX", stored.uid) == data


@pytest_twisted.ensureDeferred
async def test_stale_tmp_files_are_removed_and_fresh_ones_kept(app: GkApp, alice: Account) -> None:
    tmp = app.mailstore.folder_path(alice.email, "INBOX") / "tmp"
    stale = tmp / maildir.unique_name()
    fresh = tmp / maildir.unique_name()
    stale.write_bytes(b"Subject: dead delivery\r\n\r\n")
    fresh.write_bytes(b"Subject: delivery in progress\r\n\r\n")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))

    report = app.mailstore.repair()

    assert report.stale_tmp == 1
    assert not stale.exists()
    assert fresh.exists()
    # Neither is mail: nothing indexed.
    assert report.indexed == 0
    assert await rows(app, alice) == []


@pytest_twisted.ensureDeferred
async def test_repairing_twice_changes_nothing_the_second_time(app: GkApp, alice: Account) -> None:
    inbox = app.mailstore.folder_path(alice.email, "INBOX")
    stored = await app.mailstore.deliver(alice, b"Subject: one\r\n\r\n")
    (inbox / "cur" / f"{maildir.unique_name()}:2,RS").write_bytes(b"Subject: two\r\n\r\n")
    os.rename(stored.path, inbox / "cur" / f"{stored.path.name}:2,")
    (inbox / "tmp" / maildir.unique_name()).write_bytes(b"in progress")

    first = app.mailstore.repair()
    assert (first.indexed, first.relocated) == (1, 1)
    before = [(r.uid, r.path, r.seen, r.answered) for r in await rows(app, alice)]

    second = app.mailstore.repair()
    assert not second.changed
    assert second.details == []
    assert [(r.uid, r.path, r.seen, r.answered) for r in await rows(app, alice)] == before
    assert before[1][2:] == (True, True)


@pytest_twisted.ensureDeferred
async def test_a_consistent_store_needs_no_repair(app: GkApp, alice: Account) -> None:
    for folder in ("INBOX", "Sent", "Trash"):
        await app.mailstore.deliver(alice, b"Subject: fine\r\n\r\n", folder)
    report = app.mailstore.repair()
    assert not report.changed
