"""
Whatever a client sends, the IMAP server answers each tagged command with
exactly one tagged OK, NO or BAD, keeps the connection, and goes on
serving it: hypothesis writes the command lines (tags, command names from
the real set and made up, arguments with quotes, parentheses, literals
synchronizing and not, sizes too large to accept, control and non-ASCII
octets, lines over the length limit), one real server answers them on one
connection.

A synchronizing literal is sent only once the server says C{+}; a literal
too large to accept must be refused with the command's tagged answer
instead.  After each command a C{NOOP} of the test's own must still get
its C{OK}, and no second answer to the command may come before it.  No
answer may be the protocol's "NO internal error", which means a command
raised.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest_twisted
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers import in_thread
from tests.imap.conftest import PASSWORD, IMAPServer
from tests.imap.test_concurrency import Wire

#: The test's own NOOP after each command; generated tags never contain "=".
SENTINEL = "check="
#: RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+">.
TAG_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){%*"\\+=')
_TAG = re.compile(rb"([\x21-\x7e]+) ")
_TAG_SPECIALS = set(b'(){%*"\\+')
#: Commands that end the session: never sent.
_NEVER = {"LOGOUT"}
COMMANDS = sorted(
    {
        *("CAPABILITY", "NOOP", "STARTTLS", "AUTHENTICATE", "LOGIN", "ID", "ENABLE"),
        *("SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE"),
        *("LIST", "LSUB", "STATUS", "APPEND", "NAMESPACE", "IDLE", "GETQUOTA", "GETQUOTAROOT"),
        *("CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE"),
        "UID",
    }
)
#: Literal sizes the server must refuse (over its 25 MiB limit) without a "+".
TOO_BIG = (26 * 1024 * 1024, 2**32, 10**12, 10**20)

SIMPLE = b"From: Carol <carol@example.org>\r\nSubject: hello\r\n\r\nHello Alice.\r\n"
MULTIPART = (
    b"From: Dave <dave@example.org>\r\nTo: alice@example.test\r\nSubject: parts\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nK\xc3\xb6ln\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\nAAECAwQ=\r\n--b1--\r\n"
)


# -- command lines ---------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A literal argument: its octets, or a size too large to send them."""

    data: bytes
    synchronizing: bool
    too_big: int | None = None

    @property
    def marker(self) -> bytes:
        size = self.too_big if self.too_big is not None else len(self.data)
        return f"{{{size}{'' if self.synchronizing else '+'}}}".encode()


Piece = bytes | Literal


@dataclass(frozen=True)
class CommandLine:
    """One command as sent: text, with literals where a line ends in a marker."""

    pieces: tuple[Piece, ...]

    @property
    def tag(self) -> str | None:
        """The tag the server must answer with, if the line starts with one and a space."""
        first = self.pieces[0]
        assert isinstance(first, bytes)
        found = _TAG.match(first)
        if found is None or _TAG_SPECIALS & set(found.group(1)):
            return None
        return found.group(1).decode("ascii")

    @property
    def name(self) -> str:
        first = self.pieces[0]
        assert isinstance(first, bytes)
        words = first.split(b" ")
        return words[1].decode("latin-1").upper() if len(words) > 1 else ""


def assemble(head: bytes, arguments: list[Piece], separator: bytes = b" ") -> CommandLine:
    """
    C{head} and C{arguments} as pieces: text joined by C{separator}, a
    literal's marker ending the text before it.  No text holds a line feed
    (that would end the command early), and the last text never ends in
    "}" (that would make it a literal marker).
    """
    pieces: list[Piece] = []
    text = head
    for argument in arguments:
        if isinstance(argument, Literal):
            pieces += [(text + separator).replace(b"\n", b""), argument]
            text = b""
        else:
            text += separator + argument
    text = text.replace(b"\n", b"")
    if text.endswith(b"}"):
        text += b"."
    pieces.append(text)
    return CommandLine(tuple(pieces))


# -- strategies ----------------------------------------------------------------------

tags = st.text(TAG_CHARS, min_size=1, max_size=12).map(str.encode)
bad_tags = st.sampled_from([b"", b"*", b"+", b"a+b", b"(x", b'"q"', b"{3}", b"\xc3\xa9", b"a\x00"])
names = st.one_of(
    st.sampled_from(COMMANDS),
    st.sampled_from(COMMANDS).map(str.lower),
    st.text(string.ascii_letters + string.digits + ".-_", min_size=1, max_size=12),
).filter(lambda name: name.upper() not in _NEVER)

numbers = st.sampled_from(
    ["0", "1", "2", "3", "7", "4294967295", "4294967296", "18446744073709551616", "-1", "01"]
)


def mostly(valid: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """C{valid} three times in four, else C{odd}."""
    return st.one_of(valid, valid, valid, odd)


sequence_sets = mostly(
    st.one_of(
        st.sampled_from(
            [*("1", "1:*", "*:3", "*", "2:1", "1,3:5", "1:2,*", "3:*", "99", "*:*", "4294967295")]
        ),
        st.lists(st.integers(1, 12), min_size=1, max_size=4).map(
            lambda ns: ",".join(str(n) for n in ns)
        ),
    ),
    st.sampled_from(
        ["0", "4294967296", "1:4294967296", "0:*", "1:", ":", ",", "1,,2", "$", "1.5", "-1"]
    ),
)
flags = mostly(
    st.sampled_from(
        [*("\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft", "$Work", "\\seen", "Junk")]
    ),
    st.sampled_from(["\\Recent", "\\*", "\\Bogus", "$", "\\", "a]b", "%x", "(", '"quoted"']),
)
flag_lists = st.lists(flags, max_size=4).map(lambda fs: "(" + " ".join(fs) + ")")
mailboxes = st.sampled_from(
    [
        *("INBOX", "inbox", "Archive", "Sent", '"Drafts"', "Nowhere", '""', "&AOk-t&AOk-"),
        *("&Jjo", '"a/b"', "Work/2026", '"with space"', "*", "%", "INBOX/", "/", "a//b", ".."),
        '"\\"',
    ]
)
dates = st.sampled_from(
    ["1-Jan-2020", "19-Nov-2026", "31-Feb-2026", "1-Foo-2020", "0-Jan-0", '"1-Jan-2020"', "x"]
)
quoted = st.text(max_size=12).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "") + '"'
)
fetch_items = mostly(
    st.sampled_from(
        [
            *("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY"),
            *("MODSEQ", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY[1]", "BODY[]"),
            *("BODY.PEEK[]", "BODY[1]", "BODY[HEADER]", "BODY[TEXT]", "BODY[2.1]", "BODY[2.MIME]"),
            *("BODY[2.HEADER]", "BODY[1.TEXT]", "BODY[]<0.10>", "BODY[]<5.0>", "BODY[3]"),
            *("BODY[9.9.9]", "BODY[HEADER.FIELDS (SUBJECT)]"),
            "BODY.PEEK[HEADER.FIELDS.NOT (DATE FROM)]",
        ]
    ),
    st.sampled_from(
        [
            *("BODY[0]", "BODY[]<4294967296.1>", "BODY[", "BODY[]<", "X-GM-MSGID", "()"),
            *("BODY[1.0]", "BODY[TEXT.MIME]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]"),
        ]
    ),
)
fetch_specs = st.one_of(
    st.sampled_from(["ALL", "FAST", "FULL", "UID", "(ALL)"]),
    st.lists(fetch_items, max_size=5).map(lambda items: "(" + " ".join(items) + ")"),
)
search_base = st.one_of(
    st.sampled_from(
        [
            *("ALL", "ANSWERED", "DELETED", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN", "DRAFT"),
            *("UNANSWERED", "UNDELETED", "UNFLAGGED", "UNSEEN", "UNDRAFT", "FROM", "NOT", "()"),
            *("KEYWORD $Work", "UNKEYWORD $Work", "LARGER 10", "SMALLER 100000", "MODSEQ 1"),
            *("HEADER Subject hello", "OR ALL", "BOGUS"),
        ]
    ),
    st.tuples(st.sampled_from(["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTSINCE"]), dates).map(
        " ".join
    ),
    st.tuples(st.sampled_from(["SUBJECT", "FROM", "TO", "BODY", "TEXT", "CC"]), quoted).map(
        " ".join
    ),
    st.tuples(st.sampled_from(["UID", "LARGER", ""]), sequence_sets).map(
        lambda pair: " ".join(pair).strip()
    ),
)
search_keys: st.SearchStrategy[str] = st.recursive(
    search_base,
    lambda keys: st.one_of(
        keys.map(lambda k: f"NOT {k}"),
        st.tuples(keys, keys).map(lambda ks: f"OR {ks[0]} {ks[1]}"),
        st.lists(keys, min_size=1, max_size=3).map(lambda ks: "(" + " ".join(ks) + ")"),
    ),
    max_leaves=6,
)
search_prefixes = st.sampled_from(
    [
        *("", "CHARSET UTF-8 ", "CHARSET US-ASCII ", "CHARSET KOI8-R "),
        *("RETURN (MIN MAX COUNT) ", "RETURN () ", "RETURN (SAVE) ", "RETURN (ALL) CHARSET UTF-8 "),
    ]
)
literals = st.one_of(
    st.builds(Literal, st.binary(max_size=40), st.booleans()),
    st.builds(Literal, st.just(SIMPLE) | st.just(MULTIPART), st.booleans()),
    st.builds(Literal, st.just(b""), st.just(True), st.sampled_from(TOO_BIG)),
)
junk = st.one_of(
    st.binary(max_size=24),
    st.text(max_size=12).map(str.encode),
    st.sampled_from(
        [
            *b'NIL "" " ( ) () (( [ ] { } {5}x ~{3} \\ * %'.split(),
            *(b"\x00", b"\r", b"\t", b"\x7f", b"\xff\xfe", b"\xe2\x98\x95"),
        ]
    ),
    numbers.map(str.encode),
    sequence_sets.map(str.encode),
    flag_lists.map(str.encode),
    mailboxes.map(str.encode),
    quoted.map(str.encode),
)


@st.composite
def valid_ish(draw: st.DrawFn) -> CommandLine:
    """A command much like a client's, with now and then a wrong argument."""
    uid = draw(st.sampled_from(["", "", "UID "]))
    store = draw(st.sampled_from(["FLAGS", "+FLAGS", "-FLAGS", "+FLAGS.SILENT", "FLAGS.SILENT"]))
    unchanged = draw(st.sampled_from(["", "", "(UNCHANGEDSINCE 1) ", "(UNCHANGEDSINCE 0) "]))
    changed = draw(st.sampled_from(["", "", " (CHANGEDSINCE 1)", " (CHANGEDSINCE 1 VANISHED)"]))
    sequence = draw(sequence_sets)
    name, arguments = draw(
        st.one_of(
            st.tuples(
                st.just(uid + "FETCH"),
                fetch_specs.map(lambda spec: [f"{sequence} {spec}{changed}".encode()]),
            ),
            st.tuples(
                st.just(uid + "SEARCH"),
                st.tuples(search_prefixes, search_keys).map(lambda p: ["".join(p).encode()]),
            ),
            st.tuples(
                st.just(uid + "STORE"),
                flag_lists.map(lambda fl: [f"{sequence} {unchanged}{store} {fl}".encode()]),
            ),
            st.tuples(
                st.sampled_from([uid + "COPY", uid + "MOVE"]),
                mailboxes.map(lambda box: [f"{sequence} {box}".encode()]),
            ),
            st.tuples(st.just("UID EXPUNGE"), st.just([sequence.encode()])),
            st.tuples(
                st.just("APPEND"),
                st.tuples(
                    mailboxes,
                    st.sampled_from(["", "() ", "(\\Seen $Work) ", "(\\Recent) "]),
                    st.sampled_from(["", '"19-Nov-2026 10:00:00 +0100" ', '"bad date" ']),
                    literals,
                ).map(lambda a: [f"{a[0]} {a[1]}{a[2]}".rstrip().encode(), a[3]]),
            ),
            st.tuples(
                st.just("STATUS"),
                st.tuples(
                    mailboxes,
                    st.lists(
                        st.sampled_from(
                            ["MESSAGES", "UIDNEXT", "UNSEEN", "SIZE", "HIGHESTMODSEQ", "X"]
                        ),
                        max_size=3,
                    ),
                ).map(lambda a: [f"{a[0]} ({' '.join(a[1])})".encode()]),
            ),
            st.tuples(
                st.sampled_from(["LIST", "LSUB"]),
                st.tuples(mailboxes, mailboxes).map(lambda a: [f"{a[0]} {a[1]}".encode()]),
            ),
            st.tuples(
                st.just("LIST"),
                st.sampled_from(
                    [
                        *('(SPECIAL-USE) "" *', '"" * RETURN (SUBSCRIBED CHILDREN)'),
                        *('"" (INBOX %)', '(RECURSIVEMATCH) "" *', '"" "" RETURN ()'),
                        *("(", '"" * RETURN'),
                    ]
                ).map(lambda s: [s.encode()]),
            ),
            st.tuples(
                st.sampled_from(["SELECT", "EXAMINE"]),
                st.tuples(
                    mailboxes,
                    st.sampled_from(
                        ["", " (CONDSTORE)", " (QRESYNC (1 1))", " (QRESYNC (1 1 1:* (1 1)))"]
                    ),
                ).map(lambda a: ["".join(a).encode()]),
            ),
            st.tuples(
                st.sampled_from(["CREATE", "DELETE", "SUBSCRIBE", "GETQUOTAROOT", "RENAME"]),
                st.lists(mailboxes, min_size=1, max_size=2).map(
                    lambda boxes: [" ".join(boxes).encode()]
                ),
            ),
            st.tuples(
                st.sampled_from(["ENABLE", "ID", "GETQUOTA", "LOGIN", "AUTHENTICATE"]),
                st.sampled_from(
                    [
                        *("CONDSTORE", "QRESYNC UTF8=ACCEPT", "NIL", '("name" "fuzz")', '""'),
                        *("PLAIN", "PLAIN =", "PLAIN AGFsaWNlAHg=", "alice pw", "LOGIN"),
                    ]
                ).map(lambda s: [s.encode()]),
            ),
            st.tuples(
                st.sampled_from(["NOOP", "CHECK", "CLOSE", "UNSELECT", "IDLE", "EXPUNGE"]),
                st.sampled_from([[], [], [b"extra"]]),
            ),
        )
    )
    tag = draw(tags)
    return assemble(tag + b" " + name.encode(), arguments)


@st.composite
def arbitrary(draw: st.DrawFn) -> CommandLine:
    """Any tag (or none), any command name, any arguments and literals."""
    tag = draw(st.one_of(tags, tags, tags, bad_tags))
    name = draw(names).encode()
    arguments: list[Piece] = draw(st.lists(st.one_of(junk, junk, junk, literals), max_size=6))
    separator = draw(st.sampled_from([b" ", b" ", b" ", b"", b"  "]))
    return assemble(tag + b" " + name, arguments, separator)


@st.composite
def too_long(draw: st.DrawFn) -> CommandLine:
    """A line over the 64 KiB limit, perhaps with a literal in or after it."""
    tag = draw(tags)
    size = draw(st.sampled_from([64 * 1024, 64 * 1024 + 1, 70_000, 200_000]))
    before = draw(st.sampled_from([[], [Literal(b"abc", True)], [Literal(b"abc", False)]]))
    after = draw(st.sampled_from([[], [Literal(b"xyz", True)], [Literal(b"xyz", False)]]))
    return assemble(tag + b" FETCH", [*before, b"1 " + b"X" * size, *after])


command_lines = st.one_of(valid_ish(), valid_ish(), arbitrary(), arbitrary(), too_long())


# -- talking to the server -------------------------------------------------------------


class Session:
    """One connection, signed in or not, with INBOX selected when signed in."""

    def __init__(self, server: IMAPServer, signed_in: bool) -> None:
        self.server = server
        self.signed_in = signed_in
        self.wire: Wire | None = None
        #: What the commands got, to show that the interesting cases came up.
        self.outcomes: Counter[str] = Counter()

    def connect(self) -> Wire:
        """The open connection, or a new one (a failed example may have lost it)."""
        if self.wire is None:
            self.wire = Wire(self.server.port("imap", tls=True))
            self.wire.sock.settimeout(5)
            if self.signed_in:
                assert self.wire.run(f'LOGIN alice@example.test "{PASSWORD}"').status == "OK"
                self.reset()
        return self.wire

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
            self.wire = None

    def reset(self) -> None:
        """INBOX selected again, read-write, with a few messages to work on."""
        wire = self.connect()
        reply = wire.run("SELECT INBOX")
        assert reply.status == "OK", reply
        exists = reply.numbers(b"EXISTS")[-1]
        for data in (SIMPLE, MULTIPART, SIMPLE)[: max(0, 3 - exists)]:
            assert wire.run("APPEND INBOX", data).status == "OK"

    def exchange(self, line: CommandLine) -> None:
        """
        Send C{line} as a client would and check what comes back; then our
        own NOOP must be answered OK, with nothing more for C{line} before it.
        """
        try:
            self._exchange(self.connect(), line)
        except BaseException:
            self.close()  # the next example starts afresh
            raise

    def _exchange(self, wire: Wire, line: CommandLine) -> None:
        tag = line.tag
        seen: list[bytes] = []
        ended = False  # the tagged answer came before the whole line was sent
        pending = b""
        for piece in line.pieces:
            if isinstance(piece, bytes):
                pending += piece
                continue
            pending += piece.marker + b"\r\n"
            if not piece.synchronizing:
                pending += piece.data
                continue
            wire.send(pending)
            pending = b""
            response = self._until_final(wire, tag, seen, continuation_ends=True)
            if not response.startswith(b"+"):
                self.outcomes["literal refused"] += 1
                ended = True
                break
            assert piece.too_big is None, f"a literal of {piece.too_big} octets was accepted"
            self.outcomes["literal sent after +"] += 1
            wire.send(piece.data)
        if not ended:
            wire.send(pending + b"\r\n")
            if tag is not None:
                self._until_final(wire, tag, seen, continuation_ends=False, name=line.name)
        wire.send(f"{SENTINEL} NOOP\r\n".encode())
        self._until_final(wire, SENTINEL, seen, continuation_ends=False)
        final = seen.pop()
        assert final.startswith(f"{SENTINEL} OK".encode()), f"our NOOP got {final!r}"
        assert not any(r.startswith(b"* BYE") for r in seen), seen
        if tag is not None:
            answers = [r for r in seen if r.startswith(f"{tag} ".encode())]
            assert len(answers) == 1, f"{len(answers)} tagged answers: {seen}"
            status = answers[0].split(b" ", 2)[1]
            assert status in (b"OK", b"NO", b"BAD"), answers[0]
            self.outcomes[status.decode()] += 1
            # The protocol's answer when a command raised: a bug, whatever the input.
            assert b"internal error" not in answers[0], answers[0]
        else:
            self.outcomes["no tag"] += 1

    def _until_final(
        self,
        wire: Wire,
        tag: str | None,
        seen: list[bytes],
        continuation_ends: bool,
        name: str = "",
    ) -> bytes:
        """
        Read responses into C{seen} up to C{tag}'s tagged answer (an untagged
        BAD or NO for a line without a tag), or a continuation request if
        C{continuation_ends}.  A continuation otherwise is IDLE's or
        AUTHENTICATE's, which the client ends ("DONE", "*").
        """
        while True:
            try:
                response = wire.read_response()
            except TimeoutError:
                raise AssertionError(f"no answer came for {tag}; so far: {seen}") from None
            seen.append(response)
            if response.startswith(b"+"):
                if continuation_ends:
                    return response
                self.outcomes[f"{name} continuation"] += 1
                wire.send(b"*\r\n" if name == "AUTHENTICATE" else b"DONE\r\n")
            elif tag is not None:
                if response.startswith(f"{tag} ".encode()):
                    return response
            elif response.split(b" ")[:2] in ([b"*", b"BAD"], [b"*", b"NO"]):
                return response
            elif not response.startswith(b"* "):
                return response  # answered with what the server took for a tag


@contextmanager
def session(server: IMAPServer, signed_in: bool) -> Iterator[Session]:
    fuzzed = Session(server, signed_in)
    try:
        fuzzed.connect()
        yield fuzzed
        fuzzed.exchange(assemble(b"last NOOP", []))
    finally:
        fuzzed.close()


# -- the tests ---------------------------------------------------------------------------

_SETTINGS = settings(
    max_examples=250,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: After these, INBOX is selected again (and refilled if they emptied it).
_RESELECT = {"SELECT", "EXAMINE", "CLOSE", "UNSELECT", "RENAME", "DELETE", "EXPUNGE", "MOVE", "UID"}


@pytest_twisted.ensureDeferred
async def test_every_tagged_command_gets_one_tagged_answer_when_signed_in(
    imap_server: IMAPServer,
) -> None:
    """
    Signed in with INBOX selected, any command line gets exactly one
    tagged OK, NO or BAD (and a synchronizing literal a "+" first, or that
    answer instead), and the connection stays usable.
    """

    def scenario() -> Counter[str]:
        with session(imap_server, signed_in=True) as fuzzed:

            @_SETTINGS
            @given(line=command_lines)
            @example(line=assemble(b"a1 FETCH 1:* (FLAGS BODY.PEEK[])", []))
            @example(line=assemble(b"a2 FETCH *:3 UID", []))
            @example(line=assemble(b"a3 STORE 4294967296 +FLAGS (\\Seen)", []))
            @example(line=assemble(b"a4 SEARCH", [b"SUBJECT", Literal(b"hello", True)]))
            @example(line=assemble(b"a5 APPEND INBOX", [Literal(SIMPLE, False)]))
            @example(line=assemble(b"a6 APPEND INBOX", [Literal(b"", True, 2**32)]))
            @example(line=assemble(b"a7 LOGIN", [Literal(b"x", True), Literal(b"y", False)]))
            @example(line=assemble(b"a8 IDLE", []))
            @example(line=assemble(b"a9 NOOP", [b"\xff\x00\xc3"]))
            @example(line=assemble(b"b1 UID FETCH 0 (UID)", []))
            @example(line=assemble(b"b2 FETCH 1", [b"X" * 70_000, Literal(b"abc", False)]))
            def check(line: CommandLine) -> None:
                fuzzed.exchange(line)
                if line.name in _RESELECT:
                    fuzzed.reset()

            check()
            return fuzzed.outcomes

    outcomes = await in_thread(scenario)
    # The lines reached every kind of answer, literals accepted and refused, and IDLE.
    assert set(outcomes) >= {"OK", "NO", "BAD", "no tag", "literal sent after +"}, outcomes
    assert set(outcomes) >= {"literal refused", "IDLE continuation"}, outcomes


@pytest_twisted.ensureDeferred
async def test_every_tagged_command_gets_one_tagged_answer_before_signing_in(
    imap_server: IMAPServer,
) -> None:
    """
    Before signing in, the same holds: commands for later states get BAD,
    a wrong LOGIN or AUTHENTICATE gets NO (and an AUTHENTICATE waiting for
    its response is cancelled with "*"), a large synchronizing literal is
    refused without a "+".
    """

    def scenario() -> Counter[str]:
        with session(imap_server, signed_in=False) as fuzzed:

            @settings(_SETTINGS, max_examples=120)
            @given(line=st.one_of(valid_ish(), arbitrary()))
            @example(line=assemble(b"a1 AUTHENTICATE PLAIN", []))
            @example(line=assemble(b"a2 LOGIN", [Literal(b"x" * 9000, True), b"pw"]))
            @example(line=assemble(b"a3 LOGIN", [Literal(b"x" * 9000, False), b"pw"]))
            @example(line=assemble(b"a4 AUTHENTICATE PLAIN AGFsaWNlAHdyb25n", []))
            @example(line=assemble(b"a5 SELECT INBOX", []))
            @example(line=assemble(b"a6 CAPABILITY", []))
            @example(line=assemble(b'a7 ID ("name"', [Literal(b"fuzz", True), b")"]))
            def check(line: CommandLine) -> None:
                fuzzed.exchange(line)

            check()
            return fuzzed.outcomes

    outcomes = await in_thread(scenario)
    # Literals refused before signing in; an AUTHENTICATE waiting, cancelled with "*".
    assert set(outcomes) >= {"OK", "NO", "BAD", "no tag", "literal sent after +"}, outcomes
    assert set(outcomes) >= {"literal refused", "AUTHENTICATE continuation"}, outcomes


@pytest_twisted.ensureDeferred
async def test_a_mailbox_name_with_an_empty_level_is_refused_not_an_internal_error(
    imap_server: IMAPServer,
) -> None:
    """
    APPEND, COPY and MOVE to a name with an empty level ("", "/", "INBOX/",
    "a//b"), which no folder can have, get a plain NO (no such mailbox), as
    a STATUS of those names does: not "NO internal error" from a command
    that raised.
    """

    def scenario() -> list[tuple[str, str, str]]:
        answers = []
        with Wire.signed_in(imap_server) as wire:
            wire.run("APPEND INBOX", SIMPLE)
            wire.run("SELECT INBOX")
            for name in ('""', '"/"', '"INBOX/"', '"a//b"'):
                for command, literal in (
                    (f"APPEND {name}", SIMPLE),
                    (f"COPY 1 {name}", None),
                    (f"MOVE 1 {name}", None),
                    (f"STATUS {name} (MESSAGES)", None),
                ):
                    reply = wire.run(command, literal)
                    answers.append((command, reply.status, reply.text))
            assert wire.run("NOOP").status == "OK"
        return answers

    answers = await in_thread(scenario)
    assert [a for a in answers if a[1] != "NO" or "internal error" in a[2]] == []
