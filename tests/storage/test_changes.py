"""
Changing stored mail: flags and keywords with modification sequences
(CONDSTORE), and expunging, as IMAP, the web UI and the assistant will:
each change reaches other sessions as an event, and an expunged message
leaves both the index and the disk.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from gk.app import GkApp
from gk.events import Event, FlagsChanged, MessageExpunged
from gk.storage import mail_index
from gk.storage.accounts import Account
from gk.storage.mailstore import NoSuchFolder

PASSWORD = "correct horse battery staple"


async def alice_with_mail(app: GkApp, count: int = 3) -> tuple[Account, list[int]]:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    uids = [
        (await app.mailstore.deliver(alice, f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())).uid
        for n in range(count)
    ]
    return alice, uids


async def highest_modseq(app: GkApp, account: Account) -> int:
    def read(session):
        folder = mail_index.get_folder(session, account.id, "INBOX")
        assert folder is not None
        return folder.highest_modseq

    return int(await app.db.read(read))


@pytest_twisted.ensureDeferred
async def test_flags_are_added_removed_and_replaced_with_a_new_modseq(app: GkApp) -> None:
    alice, (first, second, third) = await alice_with_mail(app)
    events: list[Event] = []
    app.events.subscribe(FlagsChanged, events.append)
    before = await highest_modseq(app, alice)

    added = await app.mailstore.set_flags(
        alice, "inbox", [first, second], "add", {"\\seen", "$Important"}
    )
    assert [(s.uid, s.flags) for s in added.changed] == [
        (first, ("\\Seen", "$Important")),
        (second, ("\\Seen", "$Important")),
    ]
    modseq = added.changed[0].modseq
    assert modseq > before and all(s.modseq == modseq for s in added.changed)
    assert await highest_modseq(app, alice) == modseq
    assert events == [
        FlagsChanged(user_id=alice.id, folder="inbox", uids=(first, second), modseq=modseq)
    ]

    # Asking again changes nothing, takes no modseq and tells nobody.
    again = await app.mailstore.set_flags(alice, "INBOX", [first], "add", {"\\Seen"})
    assert again.changed == [] and [s.uid for s in again.unchanged] == [first]
    assert await highest_modseq(app, alice) == modseq and len(events) == 1

    removed = await app.mailstore.set_flags(alice, "INBOX", [first], "remove", {"\\Seen"})
    assert removed.changed[0].flags == ("$Important",)
    replaced = await app.mailstore.set_flags(
        alice, "INBOX", [second, third], "replace", {"\\Flagged", "\\Deleted"}
    )
    assert [(s.uid, s.flags) for s in replaced.changed] == [
        (second, ("\\Flagged", "\\Deleted")),
        (third, ("\\Flagged", "\\Deleted")),
    ]


@pytest_twisted.ensureDeferred
async def test_unchangedsince_leaves_messages_changed_since_alone(app: GkApp) -> None:
    alice, (first, second, _third) = await alice_with_mail(app)
    seen = await app.mailstore.set_flags(alice, "INBOX", [first], "add", {"\\Seen"})
    modseq_after_first = seen.changed[0].modseq

    result = await app.mailstore.set_flags(
        alice,
        "INBOX",
        [first, second],
        "add",
        {"\\Flagged"},
        unchanged_since=modseq_after_first - 1,
    )
    assert result.modified == [first]
    assert [s.uid for s in result.changed] == [second]


@pytest_twisted.ensureDeferred
async def test_expunge_removes_deleted_messages_from_index_and_disk(app: GkApp) -> None:
    alice, (first, second, third) = await alice_with_mail(app)
    events: list[Event] = []
    app.events.subscribe(MessageExpunged, events.append)
    inbox = app.mailstore.folder_path(alice.email, "INBOX")
    assert len(list((inbox / "new").iterdir())) == 3

    await app.mailstore.set_flags(alice, "INBOX", [first, second, third], "add", {"\\Deleted"})
    # UID EXPUNGE: only those named.
    assert await app.mailstore.expunge(alice, "INBOX", [second, 99]) == [second]
    assert await app.mailstore.expunge(alice, "INBOX") == [first, third]
    assert await app.mailstore.expunge(alice, "INBOX") == []
    assert list((inbox / "new").iterdir()) == []
    assert events == [
        MessageExpunged(user_id=alice.id, folder="INBOX", uids=(second,)),
        MessageExpunged(user_id=alice.id, folder="INBOX", uids=(first, third)),
    ]
    # UIDs are never reused: the next message gets a new one.
    newer = await app.mailstore.deliver(alice, b"Subject: later\r\n\r\n")
    assert newer.uid > third


@pytest_twisted.ensureDeferred
async def test_changes_in_a_folder_that_does_not_exist_are_refused(app: GkApp) -> None:
    alice, (first, *_rest) = await alice_with_mail(app, 1)
    with pytest.raises(NoSuchFolder):
        await app.mailstore.set_flags(alice, "Nowhere", [first], "add", {"\\Seen"})
    with pytest.raises(NoSuchFolder):
        await app.mailstore.expunge(alice, "Nowhere")
