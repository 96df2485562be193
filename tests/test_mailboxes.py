"""
The mailbox service that IMAP, the web UI and the assistant share: folders
with their counters, uploads with flags and dates, and one user's names
never reaching another user's mail.
"""

from __future__ import annotations

import datetime

import pytest
import pytest_twisted

from gk.app import GkApp
from gk.storage.mailstore import NoSuchFolder

PASSWORD = "correct horse battery staple"


@pytest_twisted.ensureDeferred
async def test_an_upload_keeps_its_flags_keywords_and_date(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    when = datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.UTC)
    stored = await app.mailboxes.append(
        alice, "Drafts", b"Subject: draft\r\n\r\nunfinished\r\n", {"\\Draft", "$Later"}, when
    )
    assert stored.folder == "Drafts"
    with pytest.raises(NoSuchFolder):  # names other than INBOX are case-sensitive
        await app.mailboxes.append(alice, "drafts", b"Subject: x\r\n\r\n")
    [row] = await app.mailboxes.indexed(alice, "Drafts", [stored.uid])
    assert sorted(row.flags) == ["$Later", "\\Draft"]
    assert row.internal_date == when
    assert await app.mailboxes.read(alice, "Drafts", stored.uid) == (
        b"Subject: draft\r\n\r\nunfinished\r\n"
    )
    names = [f.name for f in await app.mailboxes.folders(alice)]
    assert sorted(names) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    drafts = await app.mailboxes.status(alice, "Drafts")
    assert (drafts.messages, drafts.unseen, drafts.special_use) == (1, 1, "\\Drafts")


@pytest_twisted.ensureDeferred
async def test_one_user_never_reaches_anothers_mail(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    secret = await app.mailstore.deliver(bob, b"Subject: for Bob only\r\n\r\n")
    alices = await app.mailstore.deliver(alice, b"Subject: Alice's\r\n\r\n")

    # Bob's UID in Alice's INBOX is Alice's message or nothing, never Bob's.
    rows = await app.mailboxes.indexed(alice, "INBOX", [secret.uid])
    assert all(row.path.endswith(alices.path.name) for row in rows)
    with pytest.raises(NoSuchFolder):
        await app.mailboxes.select(alice, "../bob@example.test/INBOX")
    selection = await app.mailboxes.select(bob, "INBOX")
    assert selection.uids == [secret.uid]
