"""
Every advertised IMAP extension over real TCP, checked on the exact
responses: CONDSTORE and QRESYNC (a phone resyncing in one round trip),
UIDPLUS, MOVE, NAMESPACE, ID, ENABLE, SPECIAL-USE, LITERAL+, UNSELECT,
CHILDREN and QUOTA.
"""

from __future__ import annotations

import re

import pytest_twisted

from tests.helpers import in_thread
from tests.imap.conftest import PASSWORD, IMAPServer
from tests.imap.rawclient import RawIMAP, Reply

MESSAGE = b"From: carol@example.org\r\nSubject: hello\r\n\r\nHi.\r\n"


def signed_in(imap_server: IMAPServer) -> RawIMAP:
    client = RawIMAP(imap_server.port("imap", tls=True))
    assert client.command(f'LOGIN alice@example.test "{PASSWORD}"').ok
    return client


def highest_modseq(reply: Reply) -> int:
    for line in reply.untagged:
        match = re.search(rb"\[HIGHESTMODSEQ (\d+)\]", line)
        if match:
            return int(match.group(1))
    raise AssertionError(reply.untagged)


async def deliver(imap_server: IMAPServer, count: int) -> None:
    for _ in range(count):
        await imap_server.app.mailstore.deliver(imap_server.alice, MESSAGE)


@pytest_twisted.ensureDeferred
async def test_capabilities_are_advertised_after_sign_in(imap_server: IMAPServer) -> None:
    def scenario() -> bytes:
        client = signed_in(imap_server)
        reply = client.command("CAPABILITY")
        client.close()
        return reply.untagged[0]

    capabilities = set((await in_thread(scenario)).split()[1:])
    assert {
        b"IMAP4rev1", b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"ID", b"ENABLE",
        b"SPECIAL-USE", b"LITERAL+", b"UNSELECT", b"CHILDREN", b"CONDSTORE", b"QRESYNC",
        b"QUOTA",
    } <= capabilities  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_a_phone_resyncs_with_qresync_in_one_round_trip(imap_server: IMAPServer) -> None:
    """
    The phone remembers UIDVALIDITY and HIGHESTMODSEQ; meanwhile a desktop
    flags one message and expunges two.  On the next SELECT (QRESYNC ...)
    the phone learns exactly that: VANISHED (EARLIER) and the new flags.
    """
    await deliver(imap_server, 5)

    def scenario() -> dict[str, Reply]:
        out: dict[str, Reply] = {}
        phone = signed_in(imap_server)
        out["enable"] = phone.command("ENABLE QRESYNC")
        out["first"] = phone.command("SELECT INBOX")
        uidvalidity = re.search(rb"UIDVALIDITY (\d+)", b" ".join(out["first"].untagged))
        assert uidvalidity
        modseq = highest_modseq(out["first"])
        phone.command("LOGOUT")

        desktop = signed_in(imap_server)
        desktop.command("SELECT INBOX")
        desktop.command("UID STORE 1 +FLAGS (\\Flagged)")
        desktop.command("UID STORE 2,4 +FLAGS (\\Deleted)")
        out["desktop_expunge"] = desktop.command("EXPUNGE")
        desktop.command("LOGOUT")

        phone = signed_in(imap_server)
        phone.command("ENABLE QRESYNC")
        out["resync"] = phone.command(
            f"SELECT INBOX (QRESYNC ({uidvalidity.group(1).decode()} {modseq} 1:5))"
        )
        out["changes"] = phone.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
        phone.command("LOGOUT")
        return out

    out = await in_thread(scenario)
    assert out["enable"].untagged == [b"ENABLED QRESYNC"]
    # A desktop without QRESYNC still gets classic EXPUNGE responses.
    assert out["desktop_expunge"].starting(b"2 EXPUNGE") and out["desktop_expunge"].starting(
        b"3 EXPUNGE"
    )
    resync = out["resync"]
    assert resync.ok
    assert resync.starting(b"VANISHED") == [b"VANISHED (EARLIER) 2,4"]
    flagged = resync.starting(b"1 FETCH")
    assert len(flagged) == 1 and b"UID 1 " in flagged[0] and b"\\Flagged" in flagged[0]
    assert b"MODSEQ (" in flagged[0]
    assert resync.starting(b"2 FETCH") == []  # unchanged messages are not listed
    changes = out["changes"]
    assert changes.starting(b"VANISHED") == [b"VANISHED (EARLIER) 2,4"]
    assert [line.split(b" (")[0] for line in changes.starting(b"1 FETCH")] == [b"1 FETCH"]


@pytest_twisted.ensureDeferred
async def test_under_qresync_expunges_are_reported_as_vanished(imap_server: IMAPServer) -> None:
    await deliver(imap_server, 3)

    def scenario() -> tuple[Reply, Reply, Reply, Reply]:
        watcher = signed_in(imap_server)
        watcher.command("ENABLE QRESYNC")
        watcher.command("SELECT INBOX")
        actor = signed_in(imap_server)
        actor.command("ENABLE QRESYNC")
        actor.command("SELECT INBOX")
        actor.command("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        own = actor.command("EXPUNGE")
        seen = watcher.command("NOOP")
        store = watcher.command("STORE 1 +FLAGS (\\Seen)")
        moved = actor.command("MOVE 1 Archive")
        actor.command("LOGOUT")
        watcher.command("LOGOUT")
        return own, seen, store, moved

    own, seen, store, moved = await in_thread(scenario)
    assert own.untagged == [b"VANISHED 1:2"]
    assert seen.untagged == [b"VANISHED 1:2"]
    # Under QRESYNC every FETCH response carries the UID.
    assert store.untagged[0].startswith(b"1 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (")
    assert moved.starting(b"VANISHED 3") and not moved.starting(b"1 EXPUNGE")


@pytest_twisted.ensureDeferred
async def test_qresync_needs_enable_first(imap_server: IMAPServer) -> None:
    def scenario() -> tuple[bytes, bytes]:
        client = signed_in(imap_server)
        select = client.command("SELECT INBOX (QRESYNC (1 1))").tagged
        client.command("SELECT INBOX")
        fetch = client.command("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").tagged
        client.close()
        return select, fetch

    select, fetch = await in_thread(scenario)
    assert select.startswith(b"t2 BAD")
    assert fetch.startswith(b"t4 BAD")


@pytest_twisted.ensureDeferred
async def test_condstore_store_unchangedsince_reports_modified(imap_server: IMAPServer) -> None:
    await deliver(imap_server, 2)

    def scenario() -> tuple[Reply, Reply, Reply]:
        client = signed_in(imap_server)
        selected = client.command("SELECT INBOX (CONDSTORE)")
        modseq = highest_modseq(selected)
        first = client.command(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
        stale = client.command(f"STORE 1,2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Answered)")
        changed = client.command(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")
        client.close()
        return first, stale, changed

    first, stale, changed = await in_thread(scenario)
    assert first.ok and b"MODSEQ (" in first.untagged[0]
    # Message 1 changed after the client's modseq: left alone and named.
    assert b"[MODIFIED 1]" in stale.tagged
    assert [line.split(b" ")[0] for line in changed.starting(b"")] == [b"1", b"2"]


@pytest_twisted.ensureDeferred
async def test_uidplus_namespace_id_unselect_literal_plus_quota(imap_server: IMAPServer) -> None:
    await deliver(imap_server, 3)

    def scenario() -> dict[str, Reply]:
        client = signed_in(imap_server)
        out = {
            "namespace": client.command("NAMESPACE"),
            "id": client.command('ID ("name" "test")'),
            "special": client.command('LIST (SPECIAL-USE) "" "*"'),
            "children": client.command('LIST "" "%"'),
            "quota": client.command("GETQUOTAROOT INBOX"),
        }
        client.command("SELECT INBOX")
        client.command("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
        out["uid_expunge"] = client.command("UID EXPUNGE 2")
        out["unselect"] = client.command("UNSELECT")
        out["after_unselect"] = client.command("STATUS INBOX (MESSAGES)")
        # LITERAL+: no continuation is waited for.
        message = b"Subject: plus\r\n\r\nbody\r\n"
        out["append"] = client.command(
            b"APPEND Drafts (\\Draft) {" + str(len(message)).encode() + b"+}\r\n" + message
        )
        client.close()
        return out

    out = await in_thread(scenario)
    assert out["namespace"].untagged == [b'NAMESPACE (("" "/")) NIL NIL']
    assert out["id"].untagged[0].startswith(b"ID (")
    special = b"\n".join(out["special"].untagged)
    for use in (b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive"):
        assert use in special
    assert all(b"Children" in line for line in out["children"].untagged)
    assert out["quota"].starting(b'QUOTAROOT "INBOX" ""') or out["quota"].starting(
        b'QUOTAROOT INBOX ""'
    )
    assert out["uid_expunge"].untagged == [b"2 EXPUNGE"]
    assert out["unselect"].ok
    # UNSELECT does not expunge: the other two \Deleted messages stay.
    assert out["after_unselect"].untagged == [b'STATUS "INBOX" (MESSAGES 2)'] or out[
        "after_unselect"
    ].untagged == [b"STATUS INBOX (MESSAGES 2)"]
    assert re.search(rb"\[APPENDUID \d+ 1\]", out["append"].tagged)
