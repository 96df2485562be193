"""
Several sessions of one user on one folder, over real TCP: each keeps its
own message sequence numbers, and learns what the others changed only
through the untagged responses it gets (RFC 3501 2.3.1.2, 5.2, 7.4.1).

Every client here is a L{Tracker}: a bare IMAP client that applies each
EXISTS, EXPUNGE and FETCH response to its list of UIDs by sequence number,
exactly as a real client must, and fails as soon as a response does not
fit what it was told before (a FETCH for a number it does not have, a UID
that moved, an EXPUNGE while it was answered a FETCH, STORE or SEARCH by
sequence number).  At the end, what each client believes must be what
C{FETCH 1:* (UID FLAGS)} reports, and what the folder really holds.
"""

from __future__ import annotations

import itertools
import random
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import cast

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import blockingCallFromThread

from tests.helpers import client_tls, in_thread
from tests.imap.conftest import PASSWORD, IMAPServer

#: Seconds any one read from the server may take.
TIMEOUT = 10.0

# A line that ends in a literal: "{5}" and CRLF, the 5 octets follow.
_LITERAL_AT_END = re.compile(rb"\{([0-9]+)\}\r\n\Z")
_EXISTS = re.compile(rb"([0-9]+) EXISTS\Z")
_EXPUNGE = re.compile(rb"([0-9]+) EXPUNGE\Z")
_FETCH = re.compile(rb"([0-9]+) FETCH \((.*)\)\Z", re.DOTALL)
_FETCH_UID = re.compile(rb"(?:\A| )UID ([0-9]+)")
_FETCH_FLAGS = re.compile(rb"(?:\A| )FLAGS \(([^)]*)\)")
_APPENDUID = re.compile(r"\[APPENDUID [0-9]+ ([0-9]+)\]")
#: Commands whose numbers are sequence numbers unless prefixed with UID:
#: no EXPUNGE may come while they are answered (RFC 3501 7.4.1).
_BY_SEQUENCE = {"FETCH", "STORE", "SEARCH"}


def message(n: int) -> bytes:
    return (
        b"From: Carol <carol@example.org>\r\n"
        b"To: Alice <alice@example.test>\r\n"
        + f"Subject: message {n}\r\nMessage-ID: <{n}@example.org>\r\n".encode()
        + b"\r\nHello.\r\n"
    )


# -- a bare IMAP client ----------------------------------------------------------


@dataclass
class Reply:
    """The responses to one command: the untagged ones (without "* "), in order."""

    tag: str
    status: str
    text: str
    untagged: list[bytes]

    def numbers(self, verb: bytes) -> list[int]:
        """The numbers of the "N VERB" responses (EXISTS, EXPUNGE, FETCH)."""
        return [
            int(line.split(b" ", 2)[0])
            for line in self.untagged
            if line.split(b" ", 2)[1:2] == [verb] and line[:1].isdigit()
        ]

    def search(self) -> list[int]:
        """The numbers of the SEARCH response."""
        found = [line for line in self.untagged if line == b"SEARCH" or line[:7] == b"SEARCH "]
        assert len(found) == 1, self.untagged
        return [int(n) for n in found[0].split()[1:]]


class Wire:
    """
    A bare IMAP client over implicit TLS: it sends command lines as given
    and reads responses (literals included) exactly as they come.
    """

    def __init__(self, port: int) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock: ssl.SSLSocket = client_tls().wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        self._tags = itertools.count(1)
        self.greeting = self.read_response()

    @classmethod
    @contextmanager
    def signed_in(cls, server: IMAPServer, user: str = "alice@example.test") -> Iterator[Wire]:
        wire = cls(server.port("imap", tls=True))
        try:
            reply = wire.run(f'LOGIN "{user}" "{PASSWORD}"')
            assert reply.status == "OK", reply
            yield wire
        finally:
            wire.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def next_tag(self) -> str:
        return f"t{next(self._tags)}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        """One line with its CRLF. @raise ConnectionError: the server closed."""
        line = self.file.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError(f"connection closed (last read {line!r})")
        return line

    def read_response(self) -> bytes:
        """One response without its final CRLF; literals inline after their marker."""
        parts: list[bytes] = []
        while True:
            line = self.read_line()
            literal = _LITERAL_AT_END.search(line)
            if literal is None:
                parts.append(line.removesuffix(b"\r\n"))
                return b"".join(parts)
            parts.append(line[:-2])
            size = int(literal.group(1))
            data = self.file.read(size)
            if len(data) != size:
                raise ConnectionError("connection closed inside a literal")
            parts.append(data)

    def run(self, command: str, literal: bytes | None = None) -> Reply:
        """
        Send one command (with C{literal} last, non-synchronizing: LITERAL+)
        and read every response up to its tagged one.
        """
        tag = self.next_tag()
        if literal is None:
            self.send(f"{tag} {command}\r\n".encode())
        else:
            self.send(f"{tag} {command} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        return self.finish(tag)

    def finish(self, tag: str) -> Reply:
        """Read up to the tagged response of C{tag}."""
        untagged: list[bytes] = []
        while True:
            response = self.read_response()
            if response.startswith(b"* "):
                untagged.append(response[2:])
                continue
            head, _, rest = response.partition(b" ")
            assert head == tag.encode(), f"unexpected response {response!r} while waiting for {tag}"
            status, _, text = rest.partition(b" ")
            return Reply(tag, status.decode(), text.decode("utf-8", "replace"), untagged)


# -- a client that keeps track ----------------------------------------------------


@dataclass
class Tracker:
    """
    A client of the selected folder that knows what it was told: the UID at
    each sequence number (L{None} until a FETCH tells it) and the flags of
    the messages whose UIDs it knows.
    """

    name: str
    wire: Wire
    uids: list[int | None] = field(default_factory=list)
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    #: Every command run and its responses, for the failure messages.
    transcript: list[str] = field(default_factory=list)

    def select(self, folder: str = "INBOX") -> Reply:
        reply = self.wire.run(f"SELECT {folder}")
        assert reply.status == "OK", reply
        self.uids = [None] * reply.numbers(b"EXISTS")[-1]
        self.flags = {}
        self.run("FETCH 1:* (UID FLAGS)")
        return reply

    def run(self, command: str, literal: bytes | None = None) -> Reply:
        """Run C{command} and apply its untagged responses, in order, to what is known."""
        reply = self.wire.run(command, literal)
        words = command.upper().split()
        by_sequence = words[0] in _BY_SEQUENCE
        self.transcript.append(
            f"{self.name}: {command} -> "
            + " | ".join(line.decode("utf-8", "replace")[:120] for line in reply.untagged)
            + f" | {reply.status} {reply.text}"
        )
        for line in reply.untagged:
            self._apply(line, command, by_sequence)
        return reply

    def _apply(self, line: bytes, command: str, by_sequence: bool) -> None:
        where = f"{self.name} got {line!r} in answer to {command!r} knowing {self.uids}"
        if exists := _EXISTS.fullmatch(line):
            count = int(exists.group(1))
            # Only EXPUNGE may lower the count (RFC 3501 7.4.1).
            assert count >= len(self.uids), where
            self.uids.extend([None] * (count - len(self.uids)))
        elif expunge := _EXPUNGE.fullmatch(line):
            assert not by_sequence, f"EXPUNGE while answering by sequence number: {where}"
            seq = int(expunge.group(1))
            assert 1 <= seq <= len(self.uids), where
            gone = self.uids.pop(seq - 1)
            if gone is not None:
                self.flags.pop(gone, None)
        elif fetch := _FETCH.fullmatch(line):
            seq = int(fetch.group(1))
            assert 1 <= seq <= len(self.uids), where
            items = fetch.group(2)
            if uid_item := _FETCH_UID.search(items):
                uid = int(uid_item.group(1))
                known = self.uids[seq - 1]
                assert known in (None, uid), f"sequence number {seq} was UID {known}: {where}"
                self.uids[seq - 1] = uid
            uid_here = self.uids[seq - 1]
            flags_item = _FETCH_FLAGS.search(items)
            if flags_item and uid_here is not None:
                self.flags[uid_here] = frozenset(flags_item.group(1).decode().split())
        elif line.startswith(b"VANISHED"):
            raise AssertionError(f"VANISHED without QRESYNC: {where}")

    def fetch_all(
        self, command: str = "FETCH 1:* (UID FLAGS)"
    ) -> dict[int, tuple[int, frozenset[str]]]:
        """C{command}'s answer: sequence number -> (UID, flags)."""
        reply = self.run(command)
        assert reply.status == "OK", reply
        answered: dict[int, tuple[int, frozenset[str]]] = {}
        for line in reply.untagged:
            fetch = _FETCH.fullmatch(line)
            uid_item = _FETCH_UID.search(fetch.group(2)) if fetch else None
            flags_item = _FETCH_FLAGS.search(fetch.group(2)) if fetch else None
            if fetch and uid_item and flags_item:
                seq = int(fetch.group(1))
                assert seq not in answered, f"{self.name}: two answers for {seq}: {reply}"
                answered[seq] = (
                    int(uid_item.group(1)),
                    frozenset(flags_item.group(1).decode().split()),
                )
        return answered


def folder_contents(server: IMAPServer, folder: str = "INBOX") -> dict[int, frozenset[str]]:
    """What the folder really holds, UID -> flags, read from the index (from a thread)."""
    from twisted.internet import reactor

    async def read() -> dict[int, frozenset[str]]:
        mailboxes = server.app.mailboxes
        selection = await mailboxes.select(server.alice, folder)
        rows = await mailboxes.indexed(server.alice, folder, selection.uids)
        return {row.uid: frozenset(row.flags) for row in rows}

    contents: dict[int, frozenset[str]] = blockingCallFromThread(
        cast(IReactorFromThreads, reactor), lambda: Deferred.fromCoroutine(read())
    )
    return contents


def assert_views_agree(server: IMAPServer, clients: list[Tracker]) -> None:
    """
    Each client, after a NOOP, believes what the folder holds: its UIDs by
    sequence number and the flags it was told are what C{FETCH 1:* (UID
    FLAGS)} and C{UID FETCH 1:* (FLAGS)} report, and what is stored.
    """
    truth = folder_contents(server)
    for client in clients:
        client.run("NOOP")
        told = dict(client.flags)
        believed = list(client.uids)
        history = "\n".join(client.transcript[-12:])
        answered = client.fetch_all()
        assert sorted(answered) == list(range(1, len(believed) + 1)), (
            f"{client.name} numbers {len(believed)} messages {believed}, "
            f"FETCH 1:* answered {answered}; the folder holds {sorted(truth)}\n{history}"
        )
        assert [answered[seq][0] for seq in sorted(answered)] == sorted(truth), (
            f"{client.name}: FETCH 1:* answered {answered}, the folder holds {sorted(truth)}"
        )
        assert client.uids == sorted(truth)
        stale = {uid: (flags, truth[uid]) for uid, flags in told.items() if flags != truth.get(uid)}
        assert not stale, f"{client.name} was not told of flag changes: {stale}\n{history}"
        assert client.fetch_all("UID FETCH 1:* (FLAGS)") == answered


@contextmanager
def clients(server: IMAPServer, *names: str) -> Iterator[list[Tracker]]:
    """One signed-in session per name, each with INBOX selected."""
    with ExitStack() as stack:
        trackers = [Tracker(name, stack.enter_context(Wire.signed_in(server))) for name in names]
        for tracker in trackers:
            tracker.select()
        yield trackers


async def deliver(server: IMAPServer, count: int) -> list[int]:
    """C{count} messages into Alice's INBOX; their UIDs."""
    return [
        (await server.app.mailstore.deliver(server.alice, message(n))).uid for n in range(count)
    ]


def appended_uid(reply: Reply) -> int:
    found = _APPENDUID.search(reply.text)
    assert reply.status == "OK" and found is not None, reply
    return int(found.group(1))


# -- scenarios ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_expunge_elsewhere_waits_out_a_fetch_by_sequence_number(
    imap_server: IMAPServer,
) -> None:
    """
    B expunges messages 2 and 4; A's FETCH 1:* that follows still numbers
    the five messages A knows and gets no EXPUNGE; A's next NOOP brings the
    two EXPUNGEs, numbered so that A ends with B's list.  C, which asks by
    UID first, gets the EXPUNGEs before its answer, numbered afresh.
    """
    uids = await deliver(imap_server, 5)

    def scenario() -> None:
        with clients(imap_server, "A", "B", "C") as (a, b, c):
            assert b.run("STORE 2,4 +FLAGS (\\Deleted)").status == "OK"
            expunge = b.run("EXPUNGE")
            assert len(expunge.numbers(b"EXPUNGE")) == 2
            assert b.uids == [uids[0], uids[2], uids[4]]

            fetched = a.fetch_all("FETCH 1:* (UID FLAGS)")
            # The numbers A knows, as A knows them: 3 is still the third message.
            assert {seq: uid for seq, (uid, _f) in fetched.items() if seq in (1, 3, 5)} == {
                1: uids[0],
                3: uids[2],
                5: uids[4],
            }
            # The expunged ones are answered from what is known, or not at all.
            assert {seq: uid for seq, (uid, _f) in fetched.items() if seq in (2, 4)}.items() <= {
                2: uids[1],
                4: uids[3],
            }.items()
            assert len(a.uids) == 5

            noop = a.run("NOOP")
            assert len(noop.numbers(b"EXPUNGE")) == 2
            assert a.uids == [uids[0], uids[2], uids[4]]

            by_uid = c.run("UID FETCH 1:* (UID)")
            assert len(by_uid.numbers(b"EXPUNGE")) == 2
            assert by_uid.numbers(b"FETCH") == [1, 2, 3]
            assert_views_agree(imap_server, [a, b, c])

    await in_thread(scenario)


@pytest_twisted.ensureDeferred
async def test_an_expunge_elsewhere_waits_out_a_store_by_sequence_number(
    imap_server: IMAPServer,
) -> None:
    """
    B expunges message 2 and flags the fourth (its third); A's STORE 3
    reaches the message A calls 3, reports the flags B set under A's
    numbers, and gets no EXPUNGE; a STORE of the vanished 2 harms nothing;
    A's NOOP then brings the EXPUNGE.
    """
    uids = await deliver(imap_server, 5)

    def scenario() -> None:
        with clients(imap_server, "A", "B", "C") as (a, b, c):
            b.run("STORE 2 +FLAGS (\\Deleted)")
            b.run("EXPUNGE")
            assert b.run("STORE 3 +FLAGS (\\Answered)").status == "OK"  # B's 3 is the 4th

            store = a.run("STORE 3 +FLAGS (\\Flagged)")
            assert store.status == "OK"
            # The flag change from B, under A's own numbers (the 4th is still 4).
            assert a.flags[uids[3]] == {"\\Answered"}
            assert a.flags[uids[2]] == {"\\Flagged"}
            stored = folder_contents(imap_server)
            assert stored[uids[2]] == {"\\Flagged"} and stored[uids[3]] == {"\\Answered"}

            vanished = a.run("STORE 2 +FLAGS (\\Seen)")
            assert vanished.status in ("OK", "NO")
            assert folder_contents(imap_server) == stored

            noop = a.run("NOOP")
            assert noop.numbers(b"EXPUNGE") == [2]
            assert a.uids == [uids[0], *uids[2:]]
            assert_views_agree(imap_server, [a, b, c])

    await in_thread(scenario)


@pytest_twisted.ensureDeferred
async def test_an_expunge_elsewhere_waits_out_a_search_by_sequence_number(
    imap_server: IMAPServer,
) -> None:
    """
    B flags the fourth message and expunges the second; A's SEARCH FLAGGED
    answers 4 (A's number; 3 would be B's) without an EXPUNGE; A's UID
    SEARCH may report the EXPUNGE and answers the UID.  C's SEARCH answers
    4 until a NOOP told it of the expunge, then 3.
    """
    uids = await deliver(imap_server, 5)

    def scenario() -> None:
        with clients(imap_server, "A", "B", "C") as (a, b, c):
            b.run("STORE 4 +FLAGS (\\Flagged)")
            b.run("STORE 2 +FLAGS (\\Deleted)")
            b.run("EXPUNGE")
            assert b.run("SEARCH FLAGGED").search() == [3]

            assert a.run("SEARCH FLAGGED").search() == [4]
            assert len(a.uids) == 5
            by_uid = a.run("UID SEARCH FLAGGED")
            assert by_uid.search() == [uids[3]]
            assert by_uid.numbers(b"EXPUNGE") == [2]

            assert c.run("SEARCH FLAGGED").search() == [4]
            assert c.run("NOOP").numbers(b"EXPUNGE") == [2]
            assert c.run("SEARCH FLAGGED").search() == [3]
            assert_views_agree(imap_server, [a, b, c])

    await in_thread(scenario)


@pytest_twisted.ensureDeferred
async def test_new_mail_shows_as_exists_at_each_sessions_next_command(
    imap_server: IMAPServer,
) -> None:
    """
    C appends a message: C's own APPEND reports it, A learns of it at a
    NOOP, B within the answer to a FETCH 1:* that then covers it too.  Mail
    that comes by SMTP shows the same way, even during a STORE.
    """
    await deliver(imap_server, 3)

    def scenario() -> None:
        with clients(imap_server, "A", "B", "C") as (a, b, c):
            append = c.run("APPEND INBOX (\\Seen)", message(10))
            new = appended_uid(append)
            assert append.numbers(b"EXISTS") == [4]

            assert a.run("NOOP").numbers(b"EXISTS") == [4]
            assert a.uids[-1] is None  # known to exist, UID not yet told

            fetch = b.run("FETCH 1:* (UID FLAGS)")
            assert fetch.numbers(b"EXISTS") == [4]
            assert b.uids[3] == new and b.flags[new] == {"\\Seen"}

            # The MX listener stores the message before its 250: no waiting.
            imap_server.send_mail("alice@example.test", message(11))
            store = a.run("STORE 1 +FLAGS (\\Answered)")
            assert store.numbers(b"EXISTS") == [5]
            assert c.run("NOOP").numbers(b"EXISTS") == [5]
            assert_views_agree(imap_server, [a, b, c])

    await in_thread(scenario)


@pytest_twisted.ensureDeferred
async def test_flag_changes_elsewhere_come_as_fetch_flags_at_noop(
    imap_server: IMAPServer,
) -> None:
    """
    B sets, clears and replaces flags; A and C are told each new state by
    an untagged FETCH FLAGS at their next command, numbered their way.
    """
    uids = await deliver(imap_server, 3)

    def scenario() -> None:
        with clients(imap_server, "A", "B", "C") as (a, b, c):
            b.run("STORE 2 +FLAGS (\\Seen $Work)")
            noop = a.run("NOOP")
            assert noop.numbers(b"FETCH") == [2]
            assert a.flags[uids[1]] == {"\\Seen", "$Work"}

            b.run("STORE 2 -FLAGS (\\Seen)")
            assert a.run("NOOP").numbers(b"FETCH") == [2]
            assert a.flags[uids[1]] == {"$Work"}

            assert b.run("STORE 1:3 FLAGS (\\Answered)").numbers(b"FETCH") == [1, 2, 3]
            assert sorted(a.run("NOOP").numbers(b"FETCH")) == [1, 2, 3]
            assert all(a.flags[uid] == {"\\Answered"} for uid in uids)

            assert sorted(c.run("NOOP").numbers(b"FETCH")) == [1, 2, 3]
            assert all(c.flags[uid] == {"\\Answered"} for uid in uids)
            assert a.run("NOOP").numbers(b"FETCH") == []
            assert_views_agree(imap_server, [a, b, c])

    await in_thread(scenario)


@pytest_twisted.ensureDeferred
async def test_a_silent_store_answers_nothing_yet_tells_the_other_sessions(
    imap_server: IMAPServer,
) -> None:
    """
    STORE FLAGS.SILENT returns no new values to the session that stored
    (RFC 3501 6.4.6; without CONDSTORE enabled there is no MODSEQ to owe
    it either, RFC 7162 3.1.3); the other sessions are still told.
    """
    uids = await deliver(imap_server, 3)

    def scenario() -> None:
        with clients(imap_server, "A", "B") as (a, b):
            silent = b.run("STORE 1:3 +FLAGS.SILENT (\\Flagged)")
            assert silent.status == "OK"
            assert silent.untagged == [], f"a silent STORE answered {silent.untagged}"
            # Like a real client, B knows what it set without being told.
            for uid in uids:
                b.flags[uid] = b.flags.get(uid, frozenset()) | {"\\Flagged"}
            assert b.run("NOOP").untagged == []
            assert sorted(a.run("NOOP").numbers(b"FETCH")) == [1, 2, 3]
            assert all(a.flags[uid] == {"\\Flagged"} for uid in uids)
            assert_views_agree(imap_server, [a, b])

    await in_thread(scenario)


@pytest_twisted.ensureDeferred
async def test_mail_that_comes_and_goes_between_two_commands_leaves_no_ghost(
    imap_server: IMAPServer,
) -> None:
    """
    C appends a message and B expunges it before A runs another command.
    A may learn nothing of it, or its EXISTS and then its EXPUNGE; either
    way A must not be left numbering a message the folder no longer has.
    """
    await deliver(imap_server, 2)

    def scenario() -> None:
        with clients(imap_server, "A", "B", "C") as (a, b, c):
            new = appended_uid(c.run("APPEND INBOX", message(10)))
            b.run(f"UID STORE {new} +FLAGS (\\Deleted)")
            assert b.run(f"UID EXPUNGE {new}").numbers(b"EXPUNGE") == [3]

            a.run("NOOP")
            assert len(a.uids) == 2, (
                f"A was told of {len(a.uids)} messages, the folder holds 2: {a.transcript[-1]}"
            )
            assert_views_agree(imap_server, [a, b, c])

    await in_thread(scenario)


# -- a seeded random interleaving ---------------------------------------------------

_FLAGS = ("\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "$Work")


def _sequence_set(rng: random.Random, count: int) -> str:
    """A valid sequence set for a folder of C{count} (> 0) messages."""
    a, b = rng.randint(1, count), rng.randint(1, count)
    return rng.choice([f"{a}", f"{a}:{b}", f"{b}:{a}", f"{a}:*", "1:*", f"{a},{b}", "*"])


def _uid_set(rng: random.Random, known: list[int]) -> str:
    """A UID set of known UIDs, or one reaching past the largest."""
    if not known:
        return "1:*"
    a, b = rng.choice(known), rng.choice(known)
    return rng.choice([f"{a}", f"{min(a, b)}:{max(a, b)}", f"{a}:*", f"{a},{b}", "1:*"])


#: The commands of the random interleaving, and how often each comes.
_STEPS = {
    "append": 4,
    "store": 4,
    "uid store": 3,
    "expunge": 2,
    "uid expunge": 1,
    "fetch": 3,
    "uid fetch": 2,
    "search": 2,
    "uid search": 1,
    "noop": 2,
    "move": 1,
    "uid move": 1,
    "copy": 1,
}


def random_step(
    server: IMAPServer, rng: random.Random, client: Tracker, serial: Iterator[int]
) -> str:
    """Run one random command in C{client}; returns what it did, for the log."""
    count = len(client.uids)
    known = [uid for uid in client.uids if uid is not None]
    flags = " ".join(rng.sample(_FLAGS, rng.randint(1, 2)))
    kind = rng.choices(list(_STEPS), weights=list(_STEPS.values()))[0]
    if kind in ("store", "fetch", "search", "move", "copy") and count == 0:
        kind = "append"
    literal: bytes | None = None
    if kind == "append":
        literal = message(next(serial))
        command = "APPEND INBOX (" + rng.choice(["", "\\Seen", "$Work"]) + ")"
    elif kind == "store":
        operation = rng.choice(["+FLAGS", "-FLAGS", "FLAGS"])
        command = f"STORE {_sequence_set(rng, count)} {operation} ({flags})"
    elif kind == "uid store":
        operation = rng.choice(["+FLAGS", "-FLAGS", "FLAGS"])
        command = f"UID STORE {_uid_set(rng, known)} {operation} ({flags})"
    elif kind == "fetch":
        command = f"FETCH {_sequence_set(rng, count)} (UID FLAGS)"
    elif kind == "uid fetch":
        command = f"UID FETCH {_uid_set(rng, known)} (FLAGS)"
    elif kind == "search":
        command = rng.choice(["SEARCH ALL", "SEARCH DELETED", "SEARCH FLAGGED"])
    elif kind == "uid search":
        command = "UID SEARCH ALL"
    elif kind == "move":
        command = f"MOVE {_sequence_set(rng, count)} Archive"
    elif kind == "uid move":
        command = f"UID MOVE {_uid_set(rng, known)} Archive"
    elif kind == "copy":
        command = f"COPY {_sequence_set(rng, count)} INBOX"
    elif kind == "uid expunge":
        command = f"UID EXPUNGE {_uid_set(rng, known)}"
    else:
        command = kind.upper()  # EXPUNGE, NOOP
    reply = client.run(command, literal)
    assert reply.status == "OK", f"{client.name}: {command} -> {reply}"
    if kind == "search":
        found = reply.search()
        assert all(1 <= seq <= len(client.uids) for seq in found), (client.uids, reply)
    elif kind == "uid search":
        # Every change so far is reported by now: the whole folder, by UID.
        assert reply.search() == sorted(folder_contents(server)), reply
    return f"{client.name}: {command}"


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest_twisted.ensureDeferred
async def test_random_interleaving_keeps_every_view_consistent(
    imap_server: IMAPServer, seed: int
) -> None:
    """
    Three sessions take turns, in a seeded pseudo-random order, at APPEND,
    STORE, EXPUNGE, FETCH, SEARCH, MOVE, COPY and NOOP, by sequence number
    and by UID.  Every response each one gets must fit what it was told before
    (see L{Tracker}); every so often, and at the end, each one's list of
    UIDs and flags must be the folder's.
    """
    await deliver(imap_server, 6)

    def scenario() -> None:
        rng = random.Random(seed)
        serial = itertools.count(100)
        with clients(imap_server, "A", "B", "C") as trackers:
            for step in range(120):
                random_step(imap_server, rng, rng.choice(trackers), serial)
                if step % 30 == 29:
                    assert_views_agree(imap_server, trackers)
            assert_views_agree(imap_server, trackers)

    await in_thread(scenario)
