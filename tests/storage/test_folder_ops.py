"""
Folder operations and copies as IMAP uses them (CREATE, DELETE, RENAME,
SUBSCRIBE, COPY, MOVE with COPYUID pairs), over real Maildir files and the
index: files and rows always agree, so the start-up repair finds nothing
to fix after any of them, and an operation cut short at its worst moment
leaves nothing the repair cannot fix and no mail lost.
"""

from __future__ import annotations

import datetime
import errno
import os
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from gk import mailboxes as mailboxes_module
from gk.app import GkApp
from gk.events import Event, FolderChanged, MailDelivered, MessageExpunged
from gk.storage import folder_files, folder_ops, mail_index
from gk.storage.accounts import Account
from gk.storage.folder_ops import (
    FolderExists,
    FolderHasChildren,
    FolderRefused,
    InvalidFolderName,
)
from gk.storage.mailstore import STALE_TMP_SECONDS, NoSuchFolder, QuotaExceeded, StoredMessage
from gk.storage.models import MailFolder, Message


def message(n: int, size: int = 0) -> bytes:
    return (
        f"From: sender{n}@remote.test\r\nSubject: message {n}\r\n\r\nbody {n}\r\n{'x' * size}\r\n"
    ).encode()


async def deliver(app: GkApp, account: Account, folder: str, *numbers: int) -> list[int]:
    return [(await app.mailstore.deliver(account, message(n), folder)).uid for n in numbers]


async def rows(app: GkApp, account: Account, folder: str) -> list[Message]:
    def load(session):
        row = mail_index.get_folder(session, account.id, folder)
        assert row is not None, folder
        return mail_index.messages_in(session, row.id)

    return await app.db.read(load)


async def folder_row(app: GkApp, account: Account, name: str) -> MailFolder | None:
    return await app.db.read(lambda s: mail_index.get_folder(s, account.id, name))


async def names(app: GkApp, account: Account) -> list[str]:
    return [f.name for f in await app.mailboxes.folders(account)]


def files(app: GkApp, account: Account, folder: str) -> dict[str, list[str]]:
    path = app.mailstore.folder_path(account.email, folder)
    return {sub: sorted(os.listdir(path / sub)) for sub in ("tmp", "new", "cur")}


def deleted_dir(app: GkApp, account: Account) -> Path:
    root = app.mailstore.user_root(account.email)
    return app.mailstore.mail_root / ".deleted" / root.parent.name / root.name


def assert_nothing_to_repair(app: GkApp) -> None:
    report = app.mailstore.repair()
    assert not report.changed, report


def capture(app: GkApp) -> list[Event]:
    events: list[Event] = []
    app.events.subscribe(Event, events.append)
    return events


def created(account: Account, *folders: str) -> list[Event]:
    return [FolderChanged(user_id=account.id, folder=f, action="created") for f in folders]


@pytest_twisted.ensureDeferred
async def test_create_makes_nested_folders_with_their_parents(app: GkApp, alice: Account) -> None:
    events = capture(app)
    await app.mailboxes.create_folder(alice, "Projects/2024/Q1")
    assert events == created(alice, "Projects", "Projects/2024", "Projects/2024/Q1")
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(await names(app, alice))
    root = app.mailstore.user_root(alice.email)
    for directory in (".Projects", ".Projects.2024", ".Projects.2024.Q1"):
        assert sorted(os.listdir(root / directory)) == ["cur", "maildirfolder", "new", "tmp"]

    # A trailing delimiter only announces subfolders (RFC 3501 6.3.3).
    await app.mailboxes.create_folder(alice, "Projects/2025/")
    assert events[3:] == created(alice, "Projects/2025")
    # Dots and delimiters stay apart on disk; INBOX may have subfolders.
    await app.mailboxes.create_folder(alice, "a.b")
    await app.mailboxes.create_folder(alice, "INBOX/Receipts")
    assert (root / ".a%2Eb").is_dir() and (root / ".INBOX.Receipts").is_dir()

    for taken in ("Projects/2024", "Projects", "INBOX", "inbox", "Sent"):
        with pytest.raises(FolderExists):
            await app.mailboxes.create_folder(alice, taken)
    assert len(events) == 6

    statuses = await app.mailboxes.folders(alice)
    assert all(s.subscribed for s in statuses)
    # Each new folder's UIDVALIDITY is above all before it (see the delete test).
    defaults = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    mine = [s.uidvalidity for s in statuses if s.name not in defaults]
    assert len(set(mine)) == len(mine) == 6
    assert min(mine) > max(s.uidvalidity for s in statuses if s.name in defaults)
    assert await deliver(app, alice, "Projects/2024/Q1", 1, 2) == [1, 2]
    assert await app.mailboxes.read(alice, "Projects/2024/Q1", 2) == message(2)
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_invalid_names_are_refused_and_leave_nothing(app: GkApp, alice: Account) -> None:
    root = app.mailstore.user_root(alice.email)
    before, on_disk = await names(app, alice), sorted(os.listdir(root))
    invalid = [
        "",
        "/",
        "/Leading",
        "Trailing//",
        "a//b",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "c1\x85",
        "line\r\nbreak",
        "surrogate\ud800",
        "wild*",
        "wild%card",
        "inbox/x",
        "Inbox/x",
        "x" * 256,
        "é" * 200,  # 200 characters, but 400 bytes on disk
    ]
    for name in invalid:
        with pytest.raises(InvalidFolderName):
            await app.mailboxes.create_folder(alice, name)
        with pytest.raises(InvalidFolderName):
            await app.mailboxes.rename_folder(alice, "Archive", name)
    assert await names(app, alice) == before
    assert sorted(os.listdir(root)) == on_disk
    # The longest names that fit are fine.
    await app.mailboxes.create_folder(alice, "é" * 127)
    await app.mailboxes.create_folder(alice, "y" * 254)
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_delete_sets_the_maildir_aside_and_removes_the_rows(
    app: GkApp, alice: Account
) -> None:
    await app.mailboxes.create_folder(alice, "Old")
    await deliver(app, alice, "Old", 1, 2)
    old = await folder_row(app, alice, "Old")
    assert old is not None
    directory = app.mailstore.folder_path(alice.email, "Old")
    kept = {name: (directory / "new" / name).read_bytes() for name in os.listdir(directory / "new")}
    usage = await app.mailstore.usage(alice)
    events = capture(app)

    await app.mailboxes.delete_folder(alice, "Old")

    assert events == [FolderChanged(user_id=alice.id, folder="Old", action="deleted")]
    assert "Old" not in await names(app, alice)
    assert await app.mailstore.usage(alice) == usage - len(message(1)) - len(message(2))
    assert not directory.exists()
    [aside] = deleted_dir(app, alice).iterdir()
    assert aside.name.startswith("Old.")
    assert {n: (aside / "new" / n).read_bytes() for n in os.listdir(aside / "new")} == kept
    assert_nothing_to_repair(app)

    # The name can be used again: a new folder, never mistaken for the old one.
    await app.mailboxes.create_folder(alice, "Old")
    again = await folder_row(app, alice, "Old")
    assert again is not None and again.uidvalidity > old.uidvalidity
    assert files(app, alice, "Old") == {"tmp": [], "new": [], "cur": []}
    assert await deliver(app, alice, "Old", 3) == [1]

    for inbox in ("INBOX", "inbox"):
        with pytest.raises(FolderRefused):
            await app.mailboxes.delete_folder(alice, inbox)
    with pytest.raises(NoSuchFolder):
        await app.mailboxes.delete_folder(alice, "Nowhere")
    await app.mailboxes.create_folder(alice, "Parent/Child")
    with pytest.raises(FolderHasChildren, match="has subfolders"):
        await app.mailboxes.delete_folder(alice, "Parent")
    await app.mailboxes.delete_folder(alice, "Parent/Child")
    await app.mailboxes.delete_folder(alice, "Parent")
    assert not {"Parent", "Parent/Child"} & set(await names(app, alice))
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_rename_takes_subfolders_rows_and_files_along(app: GkApp, alice: Account) -> None:
    await app.mailboxes.create_folder(alice, "Work/Old")
    await deliver(app, alice, "Work", 1, 2)
    await deliver(app, alice, "Work/Old", 3)
    await app.mailboxes.set_flags(alice, "Work", [2], "add", {"\\Seen", "$Todo"})
    before = {n: await app.mailboxes.status(alice, n) for n in ("Work", "Work/Old")}
    work_rows = await rows(app, alice, "Work")
    events = capture(app)

    await app.mailboxes.rename_folder(alice, "Work", "Archive/2024/Work")

    assert events == [
        *created(alice, "Archive/2024"),
        FolderChanged(alice.id, "Work", "renamed", "Archive/2024/Work"),
        FolderChanged(alice.id, "Work/Old", "renamed", "Archive/2024/Work/Old"),
    ]
    listed = await names(app, alice)
    assert not {"Work", "Work/Old"} & set(listed)
    assert {"Archive/2024", "Archive/2024/Work", "Archive/2024/Work/Old"} <= set(listed)
    for old, new in (("Work", "Archive/2024/Work"), ("Work/Old", "Archive/2024/Work/Old")):
        after = await app.mailboxes.status(alice, new)
        # RFC 3501: the UIDs stay valid, so the UIDVALIDITY stays.
        assert (after.uidvalidity, after.uidnext, after.messages, after.highest_modseq) == (
            before[old].uidvalidity,
            before[old].uidnext,
            before[old].messages,
            before[old].highest_modseq,
        )
    moved = await rows(app, alice, "Archive/2024/Work")
    assert [(r.uid, r.filename, r.path, r.seen, r.keywords) for r in moved] == [
        (r.uid, r.filename, r.path, r.seen, r.keywords) for r in work_rows
    ]
    assert await app.mailboxes.read(alice, "Archive/2024/Work", 2) == message(2)
    assert await app.mailboxes.read(alice, "Archive/2024/Work/Old", 1) == message(3)
    root = app.mailstore.user_root(alice.email)
    assert not (root / ".Work").exists() and not (root / ".Work.Old").exists()
    assert not deleted_dir(app, alice).exists()  # nothing left over to set aside
    assert await deliver(app, alice, "Archive/2024/Work", 4) == [3]
    assert_nothing_to_repair(app)

    # The old name is free again, and empty.
    await app.mailboxes.create_folder(alice, "Work")
    assert (await app.mailboxes.status(alice, "Work")).messages == 0
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_deliveries_racing_a_rename_are_never_lost(app: GkApp, alice: Account) -> None:
    from twisted.internet import reactor

    await app.mailboxes.create_folder(alice, "Busy")

    async def attempt(n: int) -> StoredMessage | None:
        try:
            return await app.mailstore.deliver(alice, message(n), "Busy")
        except (NoSuchFolder, LookupError, OSError):
            return None  # reported failed: the sender tries again later

    # Deliveries keep starting before, while and after the rename runs.
    racing = []
    for n in range(60):
        racing.append(Deferred.fromCoroutine(attempt(n)))
        if n == 30:
            rename = Deferred.fromCoroutine(app.mailboxes.rename_folder(alice, "Busy", "Calm"))
        await deferLater(reactor, 0.002)
    await rename
    outcomes = await gatherResults(racing)

    # Every delivery reported done is in the renamed folder, byte for byte.
    uids = {r.uid for r in await rows(app, alice, "Calm")}
    for n, stored in enumerate(outcomes):
        if stored is not None:
            assert stored.uid in uids
            assert await app.mailboxes.read(alice, "Calm", stored.uid) == message(n)
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_rename_refusals_change_nothing(app: GkApp, alice: Account) -> None:
    await app.mailboxes.create_folder(alice, "A/x")
    before = await names(app, alice)
    with pytest.raises(FolderExists):
        await app.mailboxes.rename_folder(alice, "Sent", "Drafts")
    with pytest.raises(FolderExists):
        await app.mailboxes.rename_folder(alice, "Sent", "Sent")
    with pytest.raises(FolderExists):
        await app.mailboxes.rename_folder(alice, "Sent", "inbox")
    with pytest.raises(FolderExists):
        await app.mailboxes.rename_folder(alice, "A/x", "A")
    with pytest.raises(NoSuchFolder):
        await app.mailboxes.rename_folder(alice, "Nowhere", "Somewhere")
    with pytest.raises(InvalidFolderName):
        await app.mailboxes.rename_folder(alice, "A", "A/x/y")
    assert await names(app, alice) == before
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(
    app: GkApp, alice: Account
) -> None:
    first, second = await deliver(app, alice, "INBOX", 1, 2)
    await app.mailboxes.set_flags(alice, "INBOX", [second], "add", {"\\Flagged"})
    await app.mailboxes.create_folder(alice, "INBOX/Sub")
    await deliver(app, alice, "INBOX/Sub", 3)
    inbox_before = await app.mailboxes.status(alice, "INBOX")
    events = capture(app)

    await app.mailboxes.rename_folder(alice, "inbox", "Old Inbox")

    inbox = await app.mailboxes.status(alice, "INBOX")
    assert (inbox.messages, inbox.uidvalidity) == (0, inbox_before.uidvalidity)
    assert files(app, alice, "INBOX")["new"] == []
    assert (await app.mailboxes.status(alice, "INBOX/Sub")).messages == 1
    moved = await rows(app, alice, "Old Inbox")
    assert [(r.uid, r.flagged) for r in moved] == [(1, False), (2, True)]
    assert await app.mailboxes.read(alice, "Old Inbox", 2) == message(2)
    assert events == [
        *created(alice, "Old Inbox"),
        MailDelivered(alice.id, "Old Inbox", 1, "sender1@remote.test", "message 1"),
        MailDelivered(alice.id, "Old Inbox", 2, "sender2@remote.test", "message 2"),
        MessageExpunged(alice.id, "INBOX", (first, second)),
    ]
    # INBOX never reuses a UID.
    assert await deliver(app, alice, "INBOX", 4) == [3]
    with pytest.raises(FolderExists):
        await app.mailboxes.rename_folder(alice, "INBOX", "Old Inbox")
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_copy_keeps_bytes_flags_and_dates_with_ascending_new_uids(
    app: GkApp, alice: Account
) -> None:
    when = datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.UTC)
    uids = [
        (await app.mailboxes.append(alice, "INBOX", message(n), internal_date=when)).uid
        for n in (1, 2, 3)
    ]
    await app.mailboxes.set_flags(alice, "INBOX", [uids[0]], "add", {"\\Seen", "$Label"})
    await app.mailboxes.set_flags(alice, "INBOX", [uids[2]], "add", {"\\Deleted", "\\Answered"})
    await deliver(app, alice, "Archive", 10, 11)  # the copies' UIDs differ from the originals'
    archive_before = await app.mailboxes.status(alice, "Archive")
    source_before = await rows(app, alice, "INBOX")
    events = capture(app)

    pairs = await app.mailboxes.copy(alice, "inbox", [uids[2], uids[0], 999], "Archive")

    assert pairs == [(uids[0], 3), (uids[2], 4)]
    assert events == [
        MailDelivered(alice.id, "Archive", 3, "sender1@remote.test", "message 1"),
        MailDelivered(alice.id, "Archive", 4, "sender3@remote.test", "message 3"),
    ]
    copies = {r.uid: r for r in await rows(app, alice, "Archive")}
    originals = {r.uid: r for r in source_before}
    inbox = app.mailstore.folder_path(alice.email, "INBOX")
    archive = app.mailstore.folder_path(alice.email, "Archive")
    for source_uid, uid in pairs:
        copy, original = copies[uid], originals[source_uid]
        flags = ("seen", "answered", "flagged", "deleted", "draft", "keywords")
        assert [getattr(copy, f) for f in flags] == [getattr(original, f) for f in flags]
        envelope = ("date", "from_", "to", "message_id", "references", "imap_envelope")
        assert [getattr(copy, f) for f in envelope] == [getattr(original, f) for f in envelope]
        assert (copy.internal_date, copy.size, copy.subject) == (
            when,
            original.size,
            original.subject,
        )
        assert copy.modseq > archive_before.highest_modseq
        assert copy.path == f"new/{copy.filename}" and copy.filename != original.filename
        assert await app.mailboxes.read(alice, "Archive", uid) == message(source_uid)
        # A hard link: no second copy of the bytes.
        assert (inbox / original.path).samefile(archive / copy.path)
    assert [r.uid for r in await rows(app, alice, "INBOX")] == uids
    assert files(app, alice, "Archive")["tmp"] == []

    # Into the same folder, and of nothing.
    assert await app.mailboxes.copy(alice, "INBOX", [uids[1]], "INBOX") == [(uids[1], 4)]
    assert await app.mailboxes.read(alice, "INBOX", 4) == message(2)
    assert await app.mailboxes.copy(alice, "INBOX", [998, 999], "Archive") == []
    assert await app.mailboxes.copy(alice, "INBOX", [], "Archive") == []
    with pytest.raises(NoSuchFolder):
        await app.mailboxes.copy(alice, "Nowhere", uids, "Archive")
    with pytest.raises(NoSuchFolder):
        await app.mailboxes.copy(alice, "INBOX", uids, "archive")  # case-sensitive
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_copy_copies_the_file_where_links_are_impossible(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    [uid] = await deliver(app, alice, "INBOX", 1)

    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    assert await app.mailboxes.copy(alice, "INBOX", [uid], "Junk") == [(uid, 1)]
    [copy] = await rows(app, alice, "Junk")
    [original] = await rows(app, alice, "INBOX")
    copied = app.mailstore.folder_path(alice.email, "Junk") / copy.path
    source = app.mailstore.folder_path(alice.email, "INBOX") / original.path
    assert not copied.samefile(source)
    assert copied.read_bytes() == message(1)
    assert copied.stat().st_mtime_ns == source.stat().st_mtime_ns
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_move_removes_exactly_the_moved_messages(app: GkApp, alice: Account) -> None:
    one, two, three, four = await deliver(app, alice, "INBOX", 1, 2, 3, 4)
    await app.mailboxes.set_flags(alice, "INBOX", [two, three], "add", {"\\Deleted"})
    await deliver(app, alice, "Trash", 9)
    events = capture(app)

    pairs = await app.mailboxes.move(alice, "INBOX", [three, one, 42], "Trash")

    assert pairs == [(one, 2), (three, 3)]
    left = await rows(app, alice, "INBOX")
    assert [(r.uid, r.deleted) for r in left] == [(two, True), (four, False)]
    assert files(app, alice, "INBOX")["new"] == sorted(r.filename for r in left)
    trash = {r.uid: r for r in await rows(app, alice, "Trash")}
    assert (trash[2].deleted, trash[3].deleted) == (False, True)
    assert await app.mailboxes.read(alice, "Trash", 3) == message(3)
    assert events == [
        MailDelivered(alice.id, "Trash", 2, "sender1@remote.test", "message 1"),
        MailDelivered(alice.id, "Trash", 3, "sender3@remote.test", "message 3"),
        MessageExpunged(alice.id, "INBOX", (one, three)),
    ]
    assert_nothing_to_repair(app)

    # Moved already: nothing happens, nobody is told.
    assert await app.mailboxes.move(alice, "INBOX", [one, three], "Trash") == []
    assert len(events) == 3
    # Within one folder: new UIDs.
    assert await app.mailboxes.move(alice, "INBOX", [four], "INBOX") == [(four, 5)]
    assert [r.uid for r in await rows(app, alice, "INBOX")] == [two, 5]
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_copy_over_quota_is_refused_and_leaves_nothing(app: GkApp) -> None:
    bob = await app.accounts.create_user(
        "bob@example.test", "bob's long password", quota_bytes=1000
    )
    [uid] = [(await app.mailstore.deliver(bob, message(1, 600))).uid]
    with pytest.raises(QuotaExceeded):
        await app.mailboxes.copy(bob, "INBOX", [uid], "Archive")
    assert await rows(app, bob, "Archive") == []
    assert files(app, bob, "Archive") == {"tmp": [], "new": [], "cur": []}
    # A move does not change the usage: allowed.
    assert await app.mailboxes.move(bob, "INBOX", [uid], "Archive") == [(uid, 1)]
    assert await app.mailstore.usage(bob) == len(message(1, 600))
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_subscriptions(app: GkApp, alice: Account) -> None:
    await app.mailboxes.subscribe(alice, "Junk", False)
    assert not (await app.mailboxes.status(alice, "Junk")).subscribed
    await app.mailboxes.subscribe(alice, "Junk", True)
    assert (await app.mailboxes.status(alice, "Junk")).subscribed
    await app.mailboxes.subscribe(alice, "inbox", False)
    assert not (await app.mailboxes.status(alice, "INBOX")).subscribed
    with pytest.raises(NoSuchFolder):
        await app.mailboxes.subscribe(alice, "Nowhere", True)


# -- cut short -------------------------------------------------------------------
# Each test stops an operation at one of its dangerous points, the way a
# crash would (nothing after that point runs), then checks what the next
# start-up finds.


@pytest_twisted.ensureDeferred
async def test_a_rename_cut_short_before_its_commit_changes_nothing(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.mailboxes.create_folder(alice, "Work/Old")
    await deliver(app, alice, "Work", 1, 2)
    await deliver(app, alice, "Work/Old", 3)

    def crash(*args: object) -> None:  # after every link is made, before COMMIT
        raise RuntimeError("crash")

    monkeypatch.setattr(folder_ops, "relocate", crash)
    with pytest.raises(RuntimeError):
        await app.mailboxes.rename_folder(alice, "Work", "Done")
    monkeypatch.undo()
    root = app.mailstore.user_root(alice.email)
    assert (root / ".Done" / "new").is_dir()  # the links made, which no row names
    assert {"Work", "Work/Old"} <= set(await names(app, alice))
    assert "Done" not in await names(app, alice)
    assert_nothing_to_repair(app)

    # Done again, the leftovers are set aside rather than mixed in.
    await app.mailboxes.rename_folder(alice, "Work", "Done")
    assert [r.uid for r in await rows(app, alice, "Done")] == [1, 2]
    assert await app.mailboxes.read(alice, "Done/Old", 1) == message(3)
    assert {p.name.split(".")[0] for p in deleted_dir(app, alice).iterdir()} == {"Done"}
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_a_rename_cut_short_after_its_commit_loses_nothing(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    await deliver(app, alice, "Sent", 1, 2)
    monkeypatch.setattr(folder_files, "remove_old", lambda *args: None)
    await app.mailboxes.rename_folder(alice, "Sent", "Sent Items")
    monkeypatch.undo()
    root = app.mailstore.user_root(alice.email)
    assert len(os.listdir(root / ".Sent" / "new")) == 2  # the old links stay
    assert_nothing_to_repair(app)
    assert await app.mailboxes.read(alice, "Sent Items", 2) == message(2)

    # A new folder of the old name starts empty.
    await app.mailboxes.create_folder(alice, "Sent")
    assert files(app, alice, "Sent") == {"tmp": [], "new": [], "cur": []}
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_a_delete_cut_short_after_its_commit_resurrects_nothing(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.mailboxes.create_folder(alice, "Old")
    await deliver(app, alice, "Old", 1)
    monkeypatch.setattr(folder_files, "set_aside", lambda *args: None)
    await app.mailboxes.delete_folder(alice, "Old")
    monkeypatch.undo()
    assert len(files(app, alice, "Old")["new"]) == 1  # still there, unindexed
    assert_nothing_to_repair(app)

    await app.mailboxes.create_folder(alice, "Old")
    assert files(app, alice, "Old") == {"tmp": [], "new": [], "cur": []}
    assert (await app.mailboxes.status(alice, "Old")).messages == 0
    [aside] = deleted_dir(app, alice).iterdir()
    assert len(os.listdir(aside / "new")) == 1
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_a_copy_cut_short_after_its_commit_is_completed_by_the_repair(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    uids = await deliver(app, alice, "INBOX", 1, 2)
    monkeypatch.setattr(mailboxes_module, "_finish_copy", lambda *args: None)
    assert await app.mailboxes.move(alice, "INBOX", uids, "Archive") == [(1, 1), (2, 2)]
    monkeypatch.undo()
    # Committed: the rows name new/, the files are still in tmp/; the
    # source files are not unlinked yet.
    assert len(files(app, alice, "Archive")["tmp"]) == 2
    assert len(files(app, alice, "INBOX")["new"]) == 2

    report = app.mailstore.repair()
    # The copies completed; the sources, whose rows are gone, come back
    # (a duplicate, never a loss).
    assert (report.completed, report.indexed, report.dropped) == (2, 2, 0)
    assert await app.mailboxes.read(alice, "Archive", 2) == message(2)
    assert files(app, alice, "Archive")["tmp"] == []
    assert_nothing_to_repair(app)


@pytest_twisted.ensureDeferred
async def test_a_copy_cut_short_before_its_commit_leaves_a_stale_tmp_file(
    app: GkApp, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    uids = await deliver(app, alice, "INBOX", 1)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash")

    # The files are linked into tmp/; the transaction fails and nothing
    # after it runs (not even the discard a failure normally does).
    monkeypatch.setattr(folder_ops, "copy_rows", crash)
    monkeypatch.setattr(folder_files, "discard", lambda tmps: None)
    with pytest.raises(RuntimeError):
        await app.mailboxes.copy(alice, "INBOX", uids, "Archive")
    monkeypatch.undo()
    assert len(files(app, alice, "Archive")["tmp"]) == 1
    assert await rows(app, alice, "Archive") == []
    report = app.mailstore.repair(now=time.time() + STALE_TMP_SECONDS + 1)
    assert (report.stale_tmp, report.indexed, report.completed) == (1, 0, 0)
    assert files(app, alice, "Archive") == {"tmp": [], "new": [], "cur": []}
    assert_nothing_to_repair(app)
