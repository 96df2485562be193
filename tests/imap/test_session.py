"""
The IMAP server over real TCP with imaplib: signing in only under TLS,
folders, SELECT, FETCH from stored bytes, STORE, EXPUNGE, APPEND, IDLE
push after an SMTP delivery, and one user never seeing another's mail.
"""

from __future__ import annotations

import imaplib
import re
import socket
from typing import Any

import pytest
import pytest_twisted

from tests.helpers import client_tls, in_thread
from tests.imap.conftest import PASSWORD, IMAPServer

MESSAGE = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"Date: Thu, 19 Nov 2026 10:00:00 +0100\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
)


@pytest_twisted.ensureDeferred
async def test_login_needs_tls_and_the_right_password(imap_server: IMAPServer) -> None:
    def scenario() -> list[Any]:
        seen: list[Any] = []
        client = imap_server.plain()
        seen.append("LOGINDISABLED" in client.capabilities)
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login("alice@example.test", PASSWORD)
        client.starttls(ssl_context=client_tls())
        seen.append("AUTH=PLAIN" in client.capabilities)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login("alice@example.test", "wrong password")
        seen.append(client.login("alice@example.test", PASSWORD)[0])
        seen.append(client.logout()[0])
        return seen

    assert await in_thread(scenario) == [True, True, "OK", "BYE"]


@pytest_twisted.ensureDeferred
async def test_folders_select_fetch_store_and_expunge(imap_server: IMAPServer) -> None:
    app, alice = imap_server.app, imap_server.alice
    first = await app.mailstore.deliver(alice, MESSAGE)
    second = await app.mailstore.deliver(alice, MESSAGE.replace(b"<1@", b"<2@"))

    def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        client = imap_server.login()
        listing: Any = client.list()[1]
        out["list"] = sorted(line.decode() for line in listing if line)
        data: Any = client.select("INBOX")[1]
        out["exists"] = data[0]
        out["uidvalidity"] = client.untagged_responses.get("UIDVALIDITY")
        _, data = client.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
        out["fetch"] = data
        _, data = client.fetch("1", "(ENVELOPE)")
        out["envelope"] = data
        _, data = client.store("1", "+FLAGS", "(\\Deleted \\Seen)")
        out["store"] = data
        _, data = client.expunge()
        out["expunge"] = data
        _, data = client.fetch("1:*", "(UID)")
        out["after"] = data
        client.logout()
        return out

    out = await in_thread(scenario)
    assert '(\\HasNoChildren \\Sent) "/" "Sent"' in out["list"]
    assert out["exists"] == b"2"
    fetched = out["fetch"]
    assert isinstance(fetched, list)
    # Byte-exact: the literal is the stored message, with gk's trace fields.
    assert fetched[0][1].endswith(MESSAGE)
    assert f"UID {first.uid} FLAGS () RFC822.SIZE".encode() in fetched[0][0]
    envelope = out["envelope"][0]
    assert b'"=?UTF-8?B?R3LDvMOfZQ==?="' in envelope
    assert b'(("Carol" NIL "carol" "example.org"))' in envelope
    assert out["store"] == [b"1 (FLAGS (\\Seen \\Deleted))"]
    assert out["expunge"] == [b"1"]
    assert out["after"] == [f"1 (UID {second.uid})".encode()]


@pytest_twisted.ensureDeferred
async def test_append_reports_the_new_uid_and_keeps_the_bytes(imap_server: IMAPServer) -> None:
    def scenario() -> tuple[Any, Any, Any]:
        client = imap_server.login()
        _, data = client.append(
            "Drafts", "(\\Draft $Later)", imaplib.Time2Internaldate(1700000000), MESSAGE
        )
        client.select("Drafts")
        fetched = client.fetch("1", "(FLAGS BODY.PEEK[])")[1]
        missing = client.append("Nowhere", None, None, MESSAGE)
        client.logout()
        return data, fetched, missing

    appended, fetched, missing = await in_thread(scenario)
    assert re.match(rb"\[APPENDUID \d+ 1\]", appended[0])
    assert fetched[0][1] == MESSAGE
    assert b"\\Draft" in fetched[0][0] and b"$Later" in fetched[0][0]
    assert missing[0] == "NO" and b"TRYCREATE" in missing[1][0]


@pytest_twisted.ensureDeferred
async def test_idle_pushes_new_mail_from_smtp_and_flag_changes(imap_server: IMAPServer) -> None:
    def idle_until_exists() -> list[bytes]:
        client = imap_server.login()
        client.select("INBOX")
        tag = client._new_tag().decode()
        client.send(f"{tag} IDLE\r\n".encode())
        assert client.readline().startswith(b"+")
        imap_server.send_mail("alice@example.test", MESSAGE)
        client.sock.settimeout(5)
        pushed = client.readline()
        client.send(b"DONE\r\n")
        done = client.readline()
        client.logout()
        return [pushed, done]

    pushed, done = await in_thread(idle_until_exists)
    assert pushed == b"* 1 EXISTS\r\n"
    assert done.endswith(b"OK IDLE terminated\r\n")


@pytest_twisted.ensureDeferred
async def test_two_sessions_see_each_others_changes(imap_server: IMAPServer) -> None:
    app, alice = imap_server.app, imap_server.alice
    for n in range(3):
        await app.mailstore.deliver(alice, MESSAGE.replace(b"<1@", f"<{n}@".encode()))

    def scenario() -> tuple[Any, Any, Any]:
        one, two = imap_server.login(), imap_server.login()
        one.select("INBOX")
        two.select("INBOX")
        one.store("2", "+FLAGS", "(\\Deleted)")
        one.expunge()
        # Two still numbers 3 messages during FETCH; the expunge comes after.
        fetched = two.fetch("3", "(UID)")[1]
        noop = two.noop()
        flags = two.untagged_responses.pop("EXPUNGE", None)
        one.logout()
        two.logout()
        return fetched, noop, flags

    fetched, _noop, expunged = await in_thread(scenario)
    assert fetched == [b"3 (UID 3)"]
    assert expunged == [b"2"]


@pytest_twisted.ensureDeferred
async def test_one_user_never_sees_anothers_folders(imap_server: IMAPServer) -> None:
    app = imap_server.app
    await app.mailstore.deliver(imap_server.bob, b"Subject: for Bob only\r\n\r\nsecret\r\n")

    def scenario() -> tuple[Any, Any]:
        client = imap_server.login("alice@example.test")
        status = client.status("INBOX", "(MESSAGES)")
        other = client.select("../bob@example.test/INBOX")
        client.logout()
        return status, other

    status, other = await in_thread(scenario)
    assert status[1] == [b'"INBOX" (MESSAGES 0)']
    assert other[0] == "NO"


@pytest_twisted.ensureDeferred
async def test_malformed_commands_get_bad_and_the_connection_stays(
    imap_server: IMAPServer,
) -> None:
    def scenario() -> list[bytes]:
        sock = socket.create_connection(("127.0.0.1", imap_server.port("imap")))
        reader = sock.makefile("rb")
        replies = [reader.readline()]
        for line in (b"a1 FROB\r\n", b"a2 FETCH\r\n", b"garbage\r\n", b"a3 NOOP\r\n"):
            sock.sendall(line)
            replies.append(reader.readline())
        sock.close()
        return replies

    greeting, *replies = await in_thread(scenario)
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1")
    assert [r.split(b" ")[:2] for r in replies] == [
        [b"a1", b"BAD"],
        [b"a2", b"BAD"],
        [b"garbage", b"BAD"],  # "garbage" is read as a tag without a command
        [b"a3", b"OK"],
    ]


@pytest_twisted.ensureDeferred
async def test_search_by_flags_headers_and_body(imap_server: IMAPServer) -> None:
    app, alice = imap_server.app, imap_server.alice
    await app.mailstore.deliver(alice, MESSAGE)
    await app.mailstore.deliver(
        alice, b"From: dave@example.org\r\nSubject: Quarterly report\r\n\r\nthe numbers\r\n"
    )
    await app.mailstore.deliver(
        alice, b"From: erin@example.org\r\nSubject: lunch\r\n\r\nAbout the NUMBERS again\r\n"
    )

    def scenario() -> list[Any]:
        client = imap_server.login()
        client.select("INBOX")
        client.store("1", "+FLAGS", "(\\Flagged)")
        results = [
            client.search(None, "FLAGGED")[1],
            client.search(None, "UNFLAGGED", "FROM", "example.org")[1],
            client.search(None, "SUBJECT", "quarterly")[1],
            client.search(None, "BODY", "numbers")[1],
            client.search(None, "OR", "FLAGGED", "BODY", "again")[1],
            client.uid("SEARCH", "NOT", "BODY", "numbers")[1],
            client.search(None, "2:*", "TEXT", "erin")[1],
        ]
        client.logout()
        return results

    assert await in_thread(scenario) == [
        [b"1"],
        [b"2 3"],
        [b"2"],
        [b"2 3"],
        [b"1 3"],
        [b"1"],
        [b"3"],
    ]


@pytest_twisted.ensureDeferred
async def test_folders_are_created_renamed_and_mail_copied_and_moved(
    imap_server: IMAPServer,
) -> None:
    app, alice = imap_server.app, imap_server.alice
    for n in range(3):
        await app.mailstore.deliver(alice, MESSAGE.replace(b"<1@", f"<{n}@".encode()))

    def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        client = imap_server.login()
        out["create"] = client.create("Projects/2026")
        out["again"] = client.create("Projects/2026")
        client.select("INBOX")
        out["copy"] = client.copy("1:2", "Projects/2026")
        out["nowhere"] = client.copy("1", "Nowhere")
        out["move"] = client.uid("MOVE", "3", "Archive")
        out["inbox"] = client.fetch("1:*", "(UID)")[1]
        out["rename"] = client.rename("Projects", "Work")
        listing: Any = client.list('""', "Work*")[1]
        out["list"] = sorted(x.decode() for x in listing if x)
        client.select("Work/2026")
        out["copied"] = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")[1]
        out["delete_inbox"] = client.delete("INBOX")
        client.logout()
        return out

    out = await in_thread(scenario)
    assert out["create"][0] == "OK"
    assert out["again"][0] == "NO" and b"ALREADYEXISTS" in out["again"][1][0]
    assert out["copy"][0] == "OK" and b"COPYUID" in out["copy"][1][0]
    assert out["nowhere"][0] == "NO" and b"TRYCREATE" in out["nowhere"][1][0]
    assert out["move"][0] == "OK"
    assert out["inbox"] == [b"1 (UID 1)", b"2 (UID 2)"]
    assert out["rename"][0] == "OK"
    assert out["list"] == ['(\\HasChildren) "/" "Work"', '(\\HasNoChildren) "/" "Work/2026"']
    ids = [part[1] for part in out["copied"] if isinstance(part, tuple)]
    assert ids == [b"Message-ID: <0@example.org>\r\n\r\n", b"Message-ID: <1@example.org>\r\n\r\n"]
    assert out["delete_inbox"][0] == "NO" and b"CANNOT" in out["delete_inbox"][1][0]
