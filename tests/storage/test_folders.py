"""
Reading a folder for IMAP from the index alone: STATUS counters, what
SELECT needs, rows by UID and CONDSTORE's "changed since".
"""

from __future__ import annotations

import pytest_twisted

from gk.app import GkApp
from gk.storage import mail_folders, mail_index

PASSWORD = "correct horse battery staple"


@pytest_twisted.ensureDeferred
async def test_status_and_selection_come_from_the_index(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    sizes = []
    uids = []
    for n in range(4):
        data = f"Subject: {n}\r\n\r\n{'x' * n}\r\n".encode()
        stored = await app.mailstore.deliver(alice, data)
        sizes.append(len(data))
        uids.append(stored.uid)
    await app.mailstore.set_flags(alice, "INBOX", uids[:2], "add", {"\\Seen"})
    await app.mailstore.set_flags(alice, "INBOX", [uids[3]], "add", {"$Todo", "Work"})

    def read(session):
        folder = mail_index.get_folder(session, alice.id, "inbox")
        assert folder is not None
        return mail_folders.select_folder(session, folder)

    selection = await app.db.read(read)
    status = selection.status
    assert (status.name, status.messages, status.unseen, status.size) == (
        "INBOX",
        4,
        2,
        sum(sizes),
    )
    assert status.uidnext == uids[-1] + 1 and status.highest_modseq >= 1
    assert selection.uids == uids
    assert selection.first_unseen == uids[2]
    assert selection.keywords == ["$Todo", "Work"]

    def rows(session):
        key = mail_index.folder_key(session, alice.id, "INBOX")
        assert key is not None
        folder_id = key[0]
        return (
            mail_folders.indexed(session, folder_id, [uids[0], uids[3], 9999]),
            mail_folders.changed_since(session, folder_id, status.highest_modseq - 1),
        )

    (first, last), changed = await app.db.read(rows)
    assert first.uid == uids[0] and first.flags == ("\\Seen",) and first.size == sizes[0]
    assert sorted(last.flags) == ["$Todo", "Work"]
    assert [m.uid for m in changed] == [uids[3]]


@pytest_twisted.ensureDeferred
async def test_an_empty_folder_has_nothing_unseen(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)

    def read(session):
        folder = mail_index.get_folder(session, alice.id, "Archive")
        assert folder is not None
        return mail_folders.select_folder(session, folder)

    selection = await app.db.read(read)
    assert selection.uids == [] and selection.first_unseen is None
    assert (selection.status.messages, selection.status.unseen, selection.status.size) == (0, 0, 0)
    assert selection.status.special_use == "\\Archive"
