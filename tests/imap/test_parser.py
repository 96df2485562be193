"""The IMAP command reader and grammar: framing, every command's shape, and fuzzing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.imap.encode import astring, mailbox, string
from gk.imap.framing import CommandReader, Event, NeedContinuation, RawCommand, TooLong
from gk.imap.parser import (
    Append,
    Authenticate,
    Command,
    Copy,
    Enable,
    Expunge,
    Fetch,
    FetchAttribute,
    GetQuota,
    Id,
    ListMailboxes,
    Login,
    MailboxCommand,
    ParseError,
    QResync,
    Rename,
    Search,
    Section,
    Select,
    SequenceSet,
    Status,
    Store,
    parse_command,
)
from gk.imap.search import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SequenceKey,
    SizeKey,
    TextKey,
)
from gk.imap.syntax import in_ranges

C = TypeVar("C", bound=Command)


def drive(
    reader: CommandReader, chunks: Iterable[bytes], accept: bool | None = True
) -> list[Event]:
    """Feed C{chunks}, answering each continuation request (or leaving it with None)."""
    events: list[Event] = []
    for chunk in chunks:
        batch = reader.feed(chunk)
        while True:
            events.extend(batch)
            if accept is None or not reader.awaiting_continuation:
                break
            batch = reader.accept_literal() if accept else reader.refuse_literal()
    return events


def raw_commands(data: bytes, **limits: int) -> list[RawCommand]:
    events = drive(CommandReader(**limits), [data])
    return [e for e in events if isinstance(e, RawCommand)]


def parsed(data: bytes) -> Command | ParseError:
    (raw,) = raw_commands(data + b"\r\n")
    return parse_command(raw)


def command(data: bytes, kind: type[C]) -> C:
    result = parsed(data)
    assert isinstance(result, kind), result
    return result


def error(data: bytes) -> ParseError:
    result = parsed(data)
    assert isinstance(result, ParseError), result
    return result


def seq(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


def att(
    name: str,
    section: Section | None = None,
    partial: tuple[int, int] | None = None,
    peek: bool = False,
) -> FetchAttribute:
    return FetchAttribute(name, section, partial, peek)


# -- framing -----------------------------------------------------------------


def test_lines_become_commands() -> None:
    reader = CommandReader()
    assert reader.feed(b"a1 NOOP\r\na2 CAPA") == [RawCommand((b"a1 NOOP",))]
    assert reader.feed(b"BILITY\na3 LOGOUT\r\n") == [
        RawCommand((b"a2 CAPABILITY",)),
        RawCommand((b"a3 LOGOUT",)),
    ]
    assert RawCommand((b"DONE",)).line == b"DONE"
    assert RawCommand((b"a ", b"x", b"")).line is None


def test_synchronizing_literal_waits_for_the_continuation() -> None:
    reader = CommandReader()
    events = reader.feed(b"A001 LOGIN {11}\r\n")
    assert events == [NeedContinuation("A001", 11, (b"A001 LOGIN ",))]
    assert reader.awaiting_continuation
    # Whatever arrives meanwhile is only buffered.
    assert reader.feed(b"FRED FOOBAR {7}\r\n") == []
    assert reader.accept_literal() == [
        NeedContinuation("A001", 7, (b"A001 LOGIN ", b"FRED FOOBAR", b" "))
    ]
    assert reader.feed(b"fat man\r\n") == []
    assert reader.accept_literal() == [
        RawCommand((b"A001 LOGIN ", b"FRED FOOBAR", b" ", b"fat man", b""))
    ]
    assert not reader.awaiting_continuation
    with pytest.raises(RuntimeError):
        reader.accept_literal()
    with pytest.raises(RuntimeError):
        reader.refuse_literal()


def test_refused_literal_ends_the_command() -> None:
    reader = CommandReader()
    assert reader.feed(b"A1 APPEND INBOX {100}\r\nA2 NOOP\r\n") == [
        NeedContinuation("A1", 100, (b"A1 APPEND INBOX ",))
    ]
    assert reader.refuse_literal() == [RawCommand((b"A2 NOOP",))]


def test_non_synchronizing_literals_need_no_continuation() -> None:
    data = b"A1 LOGIN {5+}\r\nalice {3+}\r\npwd\r\n"
    assert drive(CommandReader(), [data], accept=None) == [
        RawCommand((b"A1 LOGIN ", b"alice", b" ", b"pwd", b""))
    ]


def test_literals_may_hold_anything() -> None:
    body = b"ab\r\n{5}\r\ncd\r\nA2 NOOP\r\n" + bytes(range(256))
    data = b"A1 APPEND INBOX {%d}\r\n" % len(body) + body + b"\r\nA3 NOOP\r\n"
    expected = [
        RawCommand((b"A1 APPEND INBOX ", body, b"")),
        RawCommand((b"A3 NOOP",)),
    ]
    whole = drive(CommandReader(), [data])
    assert [e for e in whole if not isinstance(e, NeedContinuation)] == expected
    single_bytes = drive(CommandReader(), [data[i : i + 1] for i in range(len(data))])
    assert single_bytes == whole
    plus = data.replace(b"}\r\n", b"+}\r\n", 1)
    assert drive(CommandReader(), [plus], accept=None) == expected


def test_empty_literals_and_empty_lines() -> None:
    assert raw_commands(b"A1 LOGIN {0}\r\n {0+}\r\n\r\n\r\n") == [
        RawCommand((b"A1 LOGIN ", b"", b" ", b"", b"")),
        RawCommand((b"",)),
    ]


def test_too_long_line_is_dropped_and_the_reader_resynchronises() -> None:
    reader = CommandReader(max_line=200)
    start = b"A1 SEARCH " + b"X" * 300
    # Answered as soon as it is known, before the line ends.
    assert reader.feed(start) == [TooLong("A1", "line", 200)]
    assert reader.feed(b"Y" * 1000) == []
    assert reader.feed(b"\r\nA2 NOOP\r\n") == [RawCommand((b"A2 NOOP",))]
    # Without a readable tag.
    assert CommandReader(max_line=200).feed(b"(" * 300 + b"\r\n")[0] == TooLong(None, "line", 200)


def test_text_of_all_lines_counts_towards_the_limit() -> None:
    data = b"A1 LOGIN {1+}\r\nx " + b"y" * 150 + b"\r\nA2 NOOP\r\n"
    assert drive(CommandReader(max_line=160), [data]) == [
        TooLong("A1", "line", 160),
        RawCommand((b"A2 NOOP",)),
    ]


def test_too_long_line_ending_in_a_non_synchronizing_literal_skips_it() -> None:
    data = b"A1 X " + b"z" * 300 + b" {12+}\r\nA9 NOOP\r\nxx {3+}\r\nabc\r\nA2 NOOP\r\n"
    assert drive(CommandReader(max_line=100), [data]) == [
        TooLong("A1", "line", 100),
        RawCommand((b"A2 NOOP",)),
    ]


def test_oversized_synchronizing_literal_is_refused_at_once() -> None:
    reader = CommandReader(max_literal=1000)
    assert reader.feed(b"A1 APPEND INBOX {1001}\r\n") == [TooLong("A1", "literal", 1000)]
    assert not reader.awaiting_continuation
    # The client got no continuation: it sends its next command.
    assert reader.feed(b"A2 NOOP\r\n") == [RawCommand((b"A2 NOOP",))]


def test_oversized_non_synchronizing_literal_is_skipped_exactly() -> None:
    body = b"A3 NOOP\r\n" * 200
    data = b"A1 APPEND INBOX {%d+}\r\n" % len(body) + body + b" rest\r\nA2 NOOP\r\n"
    expected = [TooLong("A1", "literal", 1000), RawCommand((b"A2 NOOP",))]
    assert drive(CommandReader(max_literal=1000), [data]) == expected
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert drive(CommandReader(max_literal=1000), chunks) == expected


def test_literal_limit_is_per_command() -> None:
    ok = b"A1 LOGIN {5+}\r\naaaaa {5+}\r\nbbbbb\r\n"
    assert raw_commands(ok, max_literal=10)[0].parts[1::2] == (b"aaaaa", b"bbbbb")
    too_many = b"A1 LOGIN {5+}\r\naaaaa {6+}\r\nbbbbbb\r\nA2 NOOP\r\n"
    assert drive(CommandReader(max_literal=10), [too_many]) == [
        TooLong("A1", "literal", 10),
        RawCommand((b"A2 NOOP",)),
    ]


def test_limits_can_change_between_commands() -> None:
    reader = CommandReader(max_literal=10)
    assert reader.feed(b"A1 APPEND INBOX {20}\r\n") == [TooLong("A1", "literal", 10)]
    reader.max_literal = 100
    assert reader.feed(b"A2 APPEND INBOX {20}\r\n") == [
        NeedContinuation("A2", 20, (b"A2 APPEND INBOX ",))
    ]


def test_raw_commands() -> None:
    raw = RawCommand((b"A1 LOGIN ", b"x", b""))
    assert raw.tag == "A1" and raw.line is None
    assert RawCommand((b"* BAD",)).tag is None
    with pytest.raises(ValueError):
        RawCommand((b"A1 LOGIN ", b"x"))
    with pytest.raises(ValueError):
        RawCommand(())


def test_clear_drops_what_came_before_tls() -> None:
    reader = CommandReader()
    assert reader.feed(b"A1 STARTTLS\r\nA2 LOGIN {5+}\r\nab") == [RawCommand((b"A1 STARTTLS",))]
    assert reader.buffered == 2
    reader.clear()
    assert reader.buffered == 0
    assert reader.feed(b"A3 NOOP\r\n") == [RawCommand((b"A3 NOOP",))]
    paused = CommandReader()
    paused.feed(b"A1 LOGIN {5}\r\n")
    paused.clear()
    assert not paused.awaiting_continuation
    assert paused.feed(b"A2 NOOP\r\n") == [RawCommand((b"A2 NOOP",))]


def test_idle_done_and_sasl_lines_are_plain_lines() -> None:
    reader = CommandReader()
    assert reader.feed(b"A1 IDLE\r\n") == [RawCommand((b"A1 IDLE",))]
    (done,) = reader.feed(b"DONE\r\n")
    assert isinstance(done, RawCommand) and done.line == b"DONE"
    (sasl,) = reader.feed(b"AGFsaWNlAHNlY3JldA==\r\n")
    assert isinstance(sasl, RawCommand) and sasl.line == b"AGFsaWNlAHNlY3JldA=="
    # A literal where only a plain line is expected can be refused.
    assert reader.feed(b"junk {3}\r\n") == [NeedContinuation("junk", 3, (b"junk ",))]
    assert reader.refuse_literal() == []


# -- commands without arguments, login, authenticate ------------------------


@pytest.mark.parametrize(
    "name", ["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "IDLE"]
)
def test_commands_without_arguments(name: str) -> None:
    assert parsed(b"a1 " + name.lower().encode()) == Command("a1", name)
    assert error(b"a1 " + name.encode() + b" x").message == f"{name} takes no arguments"


def test_namespace_and_expunge() -> None:
    assert parsed(b"A NAMESPACE") == Command("A", "NAMESPACE")
    assert parsed(b"A EXPUNGE") == Expunge("A", "EXPUNGE")
    assert parsed(b"A UID EXPUNGE 3000:3002") == Expunge(
        "A", "EXPUNGE", True, sequence=seq("3000:3002")
    )
    assert error(b"A UID EXPUNGE").message == "expected a space"


def test_login() -> None:
    assert parsed(b"a001 LOGIN SMITH SESAME") == Login(
        "a001", "LOGIN", username="SMITH", password="SESAME"
    )
    assert command(b'a LOGIN "fred" "a \\"b\\" \\\\c"', Login).password == 'a "b" \\c'
    literal = command(b"a LOGIN {5+}\r\nj\xc3\xb6rg {4+}\r\n\x01 ()", Login)
    assert (literal.username, literal.password) == ("jörg", "\x01 ()")
    assert error(b"a LOGIN onlyone").message == "expected a space"
    assert error(b"a LOGIN u {2+}\r\n\xff\xfe").message == "a password is not UTF-8"
    assert error(b"a LOGIN u {1+}\r\n\x00").message == "a password holds a NUL"


def test_authenticate() -> None:
    assert parsed(b"A001 AUTHENTICATE GSSAPI") == Authenticate(
        "A001", "AUTHENTICATE", mechanism="GSSAPI"
    )
    ir = command(b"a authenticate plain dGVzdAB0ZXN0AHRlc3Q=", Authenticate)
    assert (ir.mechanism, ir.initial_response) == ("PLAIN", "dGVzdAB0ZXN0AHRlc3Q=")
    assert command(b"a AUTHENTICATE PLAIN =", Authenticate).initial_response == "="
    assert error(b"a AUTHENTICATE PLAIN a$b").message == "unexpected data after the command"


# -- mailboxes ---------------------------------------------------------------


def test_select_and_examine() -> None:
    assert parsed(b"A142 SELECT INBOX") == Select("A142", "SELECT", mailbox="INBOX")
    assert command(b"A932 EXAMINE blurdybloop", Select).name == "EXAMINE"
    assert command(b'a select "inbox"', Select).mailbox == "INBOX"
    assert command(b"a SELECT Inbox/Sub", Select).mailbox == "Inbox/Sub"
    assert command(b"a SELECT Entw&APw-rfe", Select).mailbox == "Entwürfe"
    assert command(b"a SELECT {5+}\r\nINbox", Select).mailbox == "INBOX"
    assert command(b"a SELECT INBOX (CONDSTORE)", Select).condstore


def test_select_qresync() -> None:
    # RFC 7162 3.2.5.2
    simple = parsed(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert simple == Select(
        "A02",
        "SELECT",
        mailbox="INBOX",
        qresync=QResync(67890007, 20050715194045000, seq("41,43:211,214:541")),
    )
    full = command(
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 "
        b"(1:15,20,30 1:15,20,30)))",
        Select,
    )
    assert full.qresync == QResync(
        67890007, 90060115194045000, seq("41:211,214:541"), (seq("1:15,20,30"), seq("1:15,20,30"))
    )
    bare = command(b"a SELECT x (QRESYNC (1 0) CONDSTORE)", Select)
    assert bare.condstore and bare.qresync == QResync(1, 0)
    match_only = command(b"a SELECT x (QRESYNC (1 2 (1 5)))", Select)
    assert match_only.qresync == QResync(1, 2, None, (seq("1"), seq("5")))
    assert error(b"a SELECT x (QRESYNC (0 1))").message == "UIDVALIDITY must not be 0"
    assert error(b"a SELECT x (QRESYNC (1 2 3 ))").message == "expected ("
    assert error(b"a SELECT x (QRESYNC (1 2 3(1 2)))").message == "expected )"
    assert error(b"a SELECT x (CONDSTORE CONDSTORE)").message.startswith("unexpected SELECT")
    assert error(b"a SELECT x (FOO)").message == "unexpected SELECT parameter FOO"


@pytest.mark.parametrize("name", ["CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "GETQUOTAROOT"])
def test_mailbox_commands(name: str) -> None:
    assert parsed(f"A {name} owatagusiam/".encode()) == MailboxCommand(
        "A", name, mailbox="owatagusiam/"
    )
    assert command(f'A {name} "&ZeVnLIqe-"'.encode(), MailboxCommand).mailbox == "日本語"
    assert error(f'A {name} "Entwürfe"'.encode()).message.startswith("mailbox names")
    assert error(f"A {name} Entwürfe".encode()).message == "unexpected data after the command"
    assert error(f"A {name} &AGE-".encode()).message.startswith("printable ASCII")


def test_rename_and_quota() -> None:
    assert parsed(b"A683 RENAME blurdybloop sarasoop") == Rename(
        "A683", "RENAME", mailbox="blurdybloop", new_name="sarasoop"
    )
    assert parsed(b'G GETQUOTA ""') == GetQuota("G", "GETQUOTA", root="")
    assert command(b"G GETQUOTA inbox", GetQuota).root == "inbox"  # a root, not a mailbox


def test_list_and_lsub() -> None:
    assert parsed(b'A101 LIST "" ""') == ListMailboxes("A101", "LIST", reference="", patterns=("",))
    assert command(b"A102 LIST #news.comp.mail.misc *", ListMailboxes).patterns == ("*",)
    assert command(b'A103 LIST /usr/staff/jones ""', ListMailboxes).reference == (
        "/usr/staff/jones"
    )
    assert command(b"A202 LIST ~/Mail/ %", ListMailboxes).patterns == ("%",)
    assert command(b'a LIST "" &ZeVnLIqe-/*', ListMailboxes).patterns == ("日本語/*",)
    assert command(b"A002 LSUB #news.comp.mail.misc *", ListMailboxes).name == "LSUB"
    assert command(b"a LIST foo]bar %", ListMailboxes).reference == "foo]bar"


def test_list_extended() -> None:
    full = command(
        b'A01 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Drafts/%") '
        b"RETURN (CHILDREN special-use)",
        ListMailboxes,
    )
    assert full == ListMailboxes(
        "A01",
        "LIST",
        reference="",
        patterns=("INBOX", "Drafts/%"),
        select_options=frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        return_options=frozenset({"CHILDREN", "SPECIAL-USE"}),
    )
    assert command(b'a LIST () "" % RETURN ()', ListMailboxes).return_options == frozenset()
    assert command(b'a LIST (SPECIAL-USE) "" *', ListMailboxes).select_options == {"SPECIAL-USE"}
    assert error(b'a LIST (RECURSIVEMATCH) "" %').message.startswith("RECURSIVEMATCH")
    assert error(b'a LIST (BOGUS) "" %').message == "unknown LIST selection option BOGUS"
    assert error(b'a LIST "" % RETURN (STATUS (MESSAGES))').message.startswith("unknown LIST")
    assert error(b'a LSUB "" (a b)').message == "expected a mailbox pattern"
    assert error(b'a LIST "" % (CHILDREN)').message == "expected RETURN"


def test_status() -> None:
    assert parsed(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)") == Status(
        "A042", "STATUS", mailbox="blurdybloop", items=("UIDNEXT", "MESSAGES")
    )
    every = b"a STATUS x (messages RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE MESSAGES)"
    assert command(every, Status).items == (
        *("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE"),
    )
    assert error(b"a STATUS x ()").message == "expected a status item"
    assert error(b"a STATUS x (DELETED)").message == "unknown status item DELETED"


def test_append() -> None:
    message = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nHello Joe\r\n"
    data = (
        b'A003 APPEND saved-messages (\\Seen \\draft $Forwarded) " 7-Feb-1994 21:52:25 -0800" '
        b"{%d}\r\n" % len(message) + message
    )
    assert parsed(data) == Append(
        "A003",
        "APPEND",
        mailbox="saved-messages",
        flags=("\\Seen", "\\Draft", "$Forwarded"),
        date_time=datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8))),
        message=message,
    )
    bare = command(b"a APPEND INBOX {3+}\r\nabc", Append)
    assert (bare.flags, bare.date_time, bare.message) == ((), None, b"abc")
    dated = command(b'a APPEND INBOX "17-Jul-1996 02:44:25 +0530" {1+}\r\nx', Append)
    assert dated.date_time == datetime(
        1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    assert command(b"a APPEND INBOX () {1+}\r\nx", Append).flags == ()
    assert error(b'a APPEND INBOX "text"').message == "expected a date-time"
    assert error(b'a APPEND INBOX "message"').message == "expected a date-time"
    assert error(b"a APPEND INBOX (\\Seen) message").message == "the message must be a literal"
    assert error(b"a APPEND INBOX (\\Recent) {1+}\r\nx").message.startswith("\\Recent")
    assert error(b"a APPEND INBOX (\\Bogus) {1+}\r\nx").message.startswith("unknown system")
    assert error(b'a APPEND INBOX "31-Feb-1994 21:52:25 -0800" {1+}\r\nx').message == (
        "invalid date-time"
    )
    assert error(b"a APPEND INBOX {1+}\r\nx {1+}\r\ny").message.startswith("unexpected")


# -- sequence sets -----------------------------------------------------------


def test_sequence_sets() -> None:
    assert seq("1:*").ranges == ((1, None),)
    assert seq("*:4").resolve(10) == ((4, 10),)
    assert seq("*:4").resolve(3) == ((3, 4),)
    assert seq("2,4:7,9,12:*").resolve(15) == ((2, 2), (4, 7), (9, 9), (12, 15))
    assert seq("5:3,1,2,4,10:*").resolve(12) == ((1, 5), (10, 12))
    assert seq("1:*,3").resolve(0) == ((3, 3),)
    assert str(seq("2,4:7,*,12:*")) == "2,4:7,*,12:*"
    assert seq("2,4:7,9,12:*").uses_star and not seq("1:2").uses_star


def test_sequence_set_membership_and_iteration_are_lazy() -> None:
    huge = seq("1:4294967295")
    assert huge.contains(4294967295, 0) and not huge.contains(0, 0)
    numbers = huge.numbers(5)
    assert [next(numbers) for _ in range(3)] == [1, 2, 3]
    assert list(seq("3,1:2,9:*,7").numbers(10)) == [1, 2, 3, 7, 9, 10]
    assert seq("2,4:7").contains(5, 10) and not seq("2,4:7").contains(3, 10)
    assert seq("*").contains(8, 8) and not seq("*").contains(7, 8)
    ranges = seq("2,4:7,20:*").resolve(30)
    assert [n for n in range(32) if in_ranges(ranges, n)] == [2, 4, 5, 6, 7, *range(20, 31)]


def test_sequence_sets_from_numbers() -> None:
    assert str(SequenceSet.from_numbers([5, 1, 2, 3, 9, 10, 3])) == "1:3,5,9:10"
    assert str(SequenceSet.from_numbers([])) == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "sequence numbers and UIDs run from 1 to 4294967295"),
        ("1:0", "sequence numbers and UIDs run from 1 to 4294967295"),
        ("4294967296", "sequence numbers and UIDs run from 1 to 4294967295"),
        ("99999999999999999999999", "sequence numbers and UIDs run from 1 to 4294967295"),
        ("1,,2", "invalid sequence set"),
        ("1:2:3", "invalid sequence set"),
        ("$", "SEARCHRES ($) is not supported"),
        (",", "invalid sequence set"),
    ],
)
def test_invalid_sequence_sets(text: str, message: str) -> None:
    assert error(f"a FETCH {text} FLAGS".encode()).message == message


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 40) | st.none(), st.integers(1, 40) | st.none()), min_size=1),
    st.integers(0, 45),
)
def test_resolved_sets_match_the_definition(
    ranges: list[tuple[int | None, int | None]], largest: int
) -> None:
    sequence = SequenceSet(tuple(ranges))
    assert SequenceSet.parse(str(sequence)) == sequence
    expected = set()
    for low, high in ranges:
        if largest == 0 and None in (low, high):
            continue
        a, b = (largest if low is None else low), (largest if high is None else high)
        expected |= set(range(min(a, b), max(a, b) + 1))
    assert list(sequence.numbers(largest)) == sorted(expected)
    assert all(sequence.contains(n, largest) == (n in expected) for n in range(0, 47))
    assert list(SequenceSet.from_numbers(expected).numbers(largest)) == sorted(expected)


# -- FETCH -------------------------------------------------------------------


def test_fetch_macros() -> None:
    fast = (att("FLAGS"), att("INTERNALDATE"), att("RFC822.SIZE"))
    assert command(b"a FETCH 1 FAST", Fetch).attributes == fast
    assert command(b"a FETCH 1 all", Fetch).attributes == (*fast, att("ENVELOPE"))
    assert command(b"a FETCH 1:* FULL", Fetch).attributes == (*fast, att("ENVELOPE"), att("BODY"))
    assert error(b"a FETCH 1 (ALL)").message == "unknown FETCH attribute ALL"
    assert error(b"a FETCH 1 ALLX").message == "unknown FETCH attribute ALLX"


def test_fetch_rfc3501_examples() -> None:
    assert parsed(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])") == Fetch(
        "A654",
        "FETCH",
        sequence=seq("2:4"),
        attributes=(
            att("FLAGS"),
            att("BODY", section=Section((), "HEADER.FIELDS", ("DATE", "FROM"))),
        ),
    )
    single = command(b"a003 fetch 12 full", Fetch)
    assert single.sequence == seq("12") and len(single.attributes) == 5
    body = command(b"a004 fetch 12 body[header]", Fetch)
    assert body.attributes == (att("BODY", section=Section((), "HEADER")),)


def test_fetch_simple_attributes() -> None:
    names = [
        *("FLAGS", "INTERNALDATE", "RFC822.SIZE", "RFC822", "RFC822.HEADER", "RFC822.TEXT"),
        *("ENVELOPE", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ"),
    ]
    fetch = command(f"a FETCH 1 ({' '.join(n.lower() for n in names)} flags)".encode(), Fetch)
    assert fetch.attributes == tuple(att(n) for n in names)
    assert [a.response_name for a in fetch.attributes] == names
    assert [a.sets_seen for a in fetch.attributes] == [
        n in ("RFC822", "RFC822.TEXT") for n in names
    ]


@pytest.mark.parametrize(
    ("text", "section", "partial", "peek", "response"),
    [
        ("BODY[]", Section(), None, False, "BODY[]"),
        ("BODY.PEEK[]<0.100>", Section(), (0, 100), True, "BODY[]<0>"),
        ("body[1.2.3]", Section((1, 2, 3)), None, False, "BODY[1.2.3]"),
        ("BODY[1.MIME]", Section((1,), "MIME"), None, False, "BODY[1.MIME]"),
        ("BODY[4.2.header]", Section((4, 2), "HEADER"), None, False, "BODY[4.2.HEADER]"),
        ("BODY[3.TEXT]<10.5>", Section((3,), "TEXT"), (10, 5), False, "BODY[3.TEXT]<10>"),
        (
            'BODY.PEEK[HEADER.FIELDS (From "to" {2+}\r\ncc)]<0.2048>',
            Section((), "HEADER.FIELDS", ("FROM", "TO", "CC")),
            (0, 2048),
            True,
            "BODY[HEADER.FIELDS (FROM TO CC)]<0>",
        ),
        (
            "BODY[1.HEADER.FIELDS.NOT (Received)]",
            Section((1,), "HEADER.FIELDS.NOT", ("RECEIVED",)),
            None,
            False,
            "BODY[1.HEADER.FIELDS.NOT (RECEIVED)]",
        ),
    ],
)
def test_fetch_sections(
    text: str, section: Section, partial: tuple[int, int] | None, peek: bool, response: str
) -> None:
    (attribute,) = command(f"a FETCH 1 {text}".encode(), Fetch).attributes
    assert attribute == FetchAttribute("BODY", section, partial, peek)
    assert attribute.response_name == response
    assert attribute.sets_seen is not peek


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BODY[MIME]", "invalid section MIME"),
        ("BODY[0]", "invalid section part number"),
        ("BODY[1..2]", "invalid section 1..2"),
        ("BODY[1.]", "invalid section 1."),
        ("BODY[HEADER.FIELDS]", "expected a space"),
        ("BODY[HEADER.FIELDS ()]", "expected a header field name"),
        ("BODY[HEADER.FIELDS (a:b)]", "invalid header field name"),
        ("BODY[TEXT", "expected ]"),
        ("BODY[]<0.0>", "a partial length must not be 0"),
        ("BODY[]<1>", "expected ."),
        ("BODY.PEEK", "unknown FETCH attribute BODY.PEEK"),
        ("BINARY[1]", "unknown FETCH attribute BINARY"),
        ("(FLAGS", "expected )"),
        ("()", "expected a FETCH attribute"),
    ],
)
def test_fetch_errors(text: str, message: str) -> None:
    assert error(f"a FETCH 1 {text}".encode()).message == message


def test_fetch_attributes_are_merged_by_response_name() -> None:
    fetch = command(b"a FETCH 1 (BODY.PEEK[] FLAGS BODY[] flags BODY.PEEK[1] BODY[]<0.5>)", Fetch)
    assert fetch.attributes == (
        att("BODY", section=Section()),
        att("FLAGS"),
        att("BODY", section=Section((1,)), peek=True),
        att("BODY", section=Section(), partial=(0, 5)),
    )


def test_uid_fetch_and_condstore_modifiers() -> None:
    uid = command(b"a UID FETCH 1:* (FLAGS)", Fetch)
    assert uid.uid and uid.attributes == (att("UID"), att("FLAGS"))
    assert command(b"a UID FETCH 1 (FLAGS UID)", Fetch).attributes == (att("FLAGS"), att("UID"))
    # RFC 7162 3.1.4.2
    changed = command(b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)", Fetch)
    assert changed.changed_since == 12345 and not changed.vanished
    assert changed.attributes == (att("UID"), att("FLAGS"), att("MODSEQ"))
    # RFC 7162 3.2.6
    vanished = command(b"A04 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 0 VANISHED)", Fetch)
    assert vanished.vanished and vanished.changed_since == 0
    assert error(b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)").message.startswith("VANISHED")
    assert error(b"a UID FETCH 1 FLAGS (VANISHED)").message.startswith("VANISHED")
    assert error(b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)").message == (
        "a mod-sequence out of range"
    )
    assert error(b"a FETCH 1 FLAGS (FOO)").message == "unexpected FETCH modifier FOO"


# -- STORE, COPY, MOVE -------------------------------------------------------


def test_store() -> None:
    assert parsed(b"A003 STORE 2:4 +FLAGS (\\Deleted)") == Store(
        "A003", "STORE", sequence=seq("2:4"), operation="add", flags=("\\Deleted",)
    )
    silent = command(b"a UID STORE 1 -flags.silent \\seen $Junk \\SEEN", Store)
    assert (silent.uid, silent.operation, silent.silent, silent.flags) == (
        True,
        "remove",
        True,
        ("\\Seen", "$Junk"),
    )
    replace = command(b"a STORE 1 FLAGS ()", Store)
    assert (replace.operation, replace.flags) == ("replace", ())
    # RFC 7162 3.1.3
    conditional = command(
        b"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)", Store
    )
    assert conditional.unchanged_since == 320162338 and conditional.silent
    assert error(b"a STORE 1 +FLAGS (\\Recent)").message == "\\Recent cannot be set by clients"
    assert error(b"a STORE 1 FLAGZ (x)").message == "unknown STORE item FLAGZ"
    assert error(b"a STORE 1 (CHANGEDSINCE 1) FLAGS (x)").message == "expected UNCHANGEDSINCE"
    assert error(b"a STORE 1 +FLAGS").message == "expected a space"


def test_copy_and_move() -> None:
    assert parsed(b"A003 COPY 2:4 MEETING") == Copy(
        "A003", "COPY", sequence=seq("2:4"), mailbox="MEETING"
    )
    assert parsed(b"a UID MOVE 42:69 foo") == Copy(
        "a", "MOVE", True, sequence=seq("42:69"), mailbox="foo"
    )
    assert error(b"a UID COPY 1").message == "expected a space"


def test_uid_only_prefixes_some_commands() -> None:
    assert error(b"a UID NOOP").message == "unknown command UID NOOP"
    assert error(b"a UID").message == "expected a space"


# -- SEARCH ------------------------------------------------------------------


def search(data: bytes) -> Search:
    return command(b"a SEARCH " + data, Search)


def test_search_rfc3501_examples() -> None:
    assert search(b'FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"').key == AndKey(
        (
            FlagKey("\\Flagged"),
            DateKey("SINCE", date(1994, 2, 1)),
            NotKey(HeaderKey("FROM", "Smith")),
        )
    )
    assert search(b'TEXT "string not in mailbox"').key == TextKey("TEXT", "string not in mailbox")
    utf8 = command(b"A284 SEARCH CHARSET UTF-8 TEXT {6+}\r\nXX\xc3\xa9XX", Search)
    assert (utf8.charset, utf8.key) == ("UTF-8", TextKey("TEXT", "XXéXX"))


def test_search_flag_keys_are_normalised() -> None:
    assert search(b"ANSWERED").key == FlagKey("\\Answered")
    assert search(b"unseen").key == NotKey(FlagKey("\\Seen"))
    assert search(b"NEW").key == AndKey((FlagKey("\\Recent"), NotKey(FlagKey("\\Seen"))))
    assert search(b"OLD").key == NotKey(FlagKey("\\Recent"))
    assert search(b"KEYWORD $Junk UNKEYWORD foo").key == AndKey(
        (FlagKey("$Junk"), NotKey(FlagKey("foo")))
    )
    keys = b"ALL DELETED DRAFT FLAGGED RECENT SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED"
    assert len(search(keys).key.keys) == 10  # type: ignore[union-attr]


def test_search_trees() -> None:
    assert search(b"OR (SEEN FLAGGED) NOT OR DELETED 2:4").key == OrKey(
        AndKey((FlagKey("\\Seen"), FlagKey("\\Flagged"))),
        NotKey(OrKey(FlagKey("\\Deleted"), SequenceKey(seq("2:4")))),
    )
    assert search(b"((((ALL))))").key == AllKey()
    assert search(b"1,3:* UID 5:7").key == AndKey(
        (SequenceKey(seq("1,3:*")), SequenceKey(seq("5:7"), uid=True))
    )
    assert search(b"*").key == SequenceKey(seq("*"))
    assert search(b"OR OR FROM a TO b CC c").key == OrKey(
        OrKey(HeaderKey("FROM", "a"), HeaderKey("TO", "b")), HeaderKey("CC", "c")
    )


def test_search_leaf_keys() -> None:
    assert search(b'HEADER message-id "<x@y>"').key == HeaderKey("MESSAGE-ID", "<x@y>")
    assert search(b'HEADER X-Spam ""').key == HeaderKey("X-SPAM", "")
    assert search(b"BCC a SUBJECT b BODY c").key == AndKey(
        (HeaderKey("BCC", "a"), HeaderKey("SUBJECT", "b"), TextKey("BODY", "c"))
    )
    assert search(b"LARGER 1024 SMALLER 4294967295").key == AndKey(
        (SizeKey(True, 1024), SizeKey(False, 4294967295))
    )
    assert search(b'BEFORE "1-Feb-1994" ON 01-feb-1994 SENTSINCE 29-Feb-2000').key == AndKey(
        (
            DateKey("BEFORE", date(1994, 2, 1)),
            DateKey("ON", date(1994, 2, 1)),
            DateKey("SINCE", date(2000, 2, 29), sent=True),
        )
    )
    assert search(b"SENTBEFORE 1-Jan-2000 SENTON 2-Jan-2000").key == AndKey(
        (DateKey("BEFORE", date(2000, 1, 1), True), DateKey("ON", date(2000, 1, 2), True))
    )
    # RFC 7162 3.1.5
    assert search(b'MODSEQ "/flags/\\\\draft" all 620162338').key == ModSeqKey(
        620162338, "/flags/\\draft", "all"
    )
    assert search(b"MODSEQ 0").key == ModSeqKey(0)


def test_search_return_options() -> None:
    assert search(b"RETURN (MIN COUNT) UNSEEN").return_options == frozenset({"MIN", "COUNT"})
    assert search(b"RETURN () ALL").return_options == frozenset({"ALL"})
    assert search(b"ALL").return_options is None
    both = search(b"RETURN (ALL) CHARSET us-ascii SUBJECT x")
    assert (both.charset, both.return_options) == ("US-ASCII", frozenset({"ALL"}))
    assert command(b"a UID SEARCH RETURN (MAX) 1:*", Search).uid
    assert error(b"a SEARCH RETURN (SAVE) ALL").message == "RETURN (SAVE) is not supported"
    assert error(b"a SEARCH RETURN (FOO) ALL").message == "unknown SEARCH return option FOO"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "expected a search key"),
        (b"FOO", "unknown search key FOO"),
        (b"NOT", "expected a space"),
        (b"OR SEEN", "expected a space"),
        (b"(SEEN", "expected )"),
        (b"SEEN)", "unexpected data after the command"),
        (b"SINCE 31-Feb-1994", "invalid date"),
        (b"SINCE 1-Fev-1994", "invalid month"),
        (b"SINCE 1994-02-01", "expected a date (d-Mon-yyyy)"),
        (b"LARGER -1", "expected a size"),
        (b"UID $", "SEARCHRES ($) is not supported"),
        (b"KEYWORD \\Seen", "expected a keyword"),
        (b'MODSEQ "/flags/x" other 1', "entry type must be priv, shared or all"),
        (b"SUBJECT {2+}\r\n\xff\xff", "a string is not UTF-8"),
        (b"NOT " * 150 + b"SEEN", "search criteria nested too deeply"),
        (b"(" * 150 + b"SEEN" + b")" * 150, "search criteria nested too deeply"),
    ],
)
def test_search_errors(text: bytes, message: str) -> None:
    assert error(b"a SEARCH " + text).message == message


def test_unknown_charset_is_a_no_with_badcharset() -> None:
    refusal = error(b"A285 SEARCH CHARSET KOI8-R TEXT x")
    assert (refusal.status, refusal.code) == ("NO", "BADCHARSET (US-ASCII UTF-8)")
    assert refusal.response() == b"A285 NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset\r\n"


# -- ENABLE, ID, errors ------------------------------------------------------


def test_enable_and_id() -> None:
    assert parsed(b"t2 ENABLE condstore qresync CONDSTORE") == Enable(
        "t2", "ENABLE", capabilities=("CONDSTORE", "QRESYNC")
    )
    assert error(b"t2 ENABLE").message == "expected a space"
    assert parsed(b'a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)') == Id(
        "a023", "ID", parameters=(("name", "sodr"), ("version", "19.34"), ("vendor", None))
    )
    assert parsed(b"a ID NIL") == Id("a", "ID", parameters=None)
    assert parsed(b"a ID ()") == Id("a", "ID", parameters=())
    assert error(b'a ID ("' + b"x" * 31 + b'" "v")').message == "ID parameters too long or too many"
    many = b" ".join(b'"f%d" "v"' % i for i in range(31))
    assert error(b"a ID (" + many + b")").message == "ID parameters too long or too many"


@pytest.mark.parametrize(
    ("data", "tag", "message"),
    [
        (b"", None, "missing or invalid tag"),
        (b"+ NOOP", None, "missing or invalid tag"),
        (b"* NOOP", None, "missing or invalid tag"),
        (b"a{ NOOP", None, "missing or invalid tag"),
        (b"abc", "abc", "missing command name"),
        (b"abc ", "abc", "expected a command name"),
        (b"abc  NOOP", "abc", "expected a command name"),
        (b"a1 XYZZY", "a1", "unknown command"),
        (b"a1 NOOP ", "a1", "NOOP takes no arguments"),
        (b"a1 LOGIN a b ", "a1", "unexpected data after the command"),
    ],
)
def test_errors_carry_the_tag_when_there_is_one(data: bytes, tag: str | None, message: str) -> None:
    refusal = error(data)
    assert (refusal.tag, refusal.status, refusal.message) == (tag, "BAD", message)
    assert refusal.response() == f"{tag or '*'} BAD {message}\r\n".encode()


# -- fuzzing -----------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        *(b"a1 ", b"UID ", b"FETCH ", b"SEARCH ", b"STORE ", b"APPEND ", b"LOGIN ", b"LIST "),
        *(b"SELECT ", b"ID ", b"STATUS ", b"ENABLE ", b"COPY ", b"AUTHENTICATE ", b"IDLE"),
        *(b"1:*", b"2,4:7", b"*", b"$", b"0", b"(", b")", b" ", b"[", b"]", b"<0.10>", b'"'),
        *(b"BODY", b"BODY.PEEK[", b"HEADER.FIELDS", b"MIME", b"1.2", b"NOT ", b"OR ", b"NIL"),
        *(b"\\Seen", b"+FLAGS", b"INBOX", b"&ZeVnLIqe-", b"&", b"CHANGEDSINCE 5", b"VANISHED"),
        *(b"QRESYNC (1 2 1:3 (1 2))", b"RETURN (", b"CHARSET UTF-8 ", b'"1-Feb-1994"', b"{"),
        *(b"{3}\r\n", b"{2+}\r\n", b"{0}\r\n", b"{99}\r\n", b"\r\n", b"\n", b"\xc3\xa9", b"\x00"),
    ]
)
_STREAMS = st.lists(_FRAGMENTS | st.binary(max_size=8), max_size=40).map(b"".join)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=1500, deadline=None)
@given(
    st.binary(max_size=300) | _STREAMS,
    st.lists(st.integers(0, 300), max_size=30),
    st.data(),
    st.integers(1, 200),
    st.integers(0, 60),
)
def test_arbitrary_input_never_raises(
    data: bytes, cuts: list[int], choices: st.DataObject, max_line: int, max_literal: int
) -> None:
    reader = CommandReader(max_line=max_line, max_literal=max_literal)
    for chunk in _chunked(data, cuts):
        batch = reader.feed(chunk)
        while True:
            for event in batch:
                if isinstance(event, RawCommand):
                    result = parse_command(event)
                    assert isinstance(result, Command | ParseError)
                    if isinstance(result, ParseError):
                        assert result.response().endswith(b"\r\n")
            if not reader.awaiting_continuation:
                break
            accept = choices.draw(st.booleans())
            batch = reader.accept_literal() if accept else reader.refuse_literal()


_PARTS = st.lists(_FRAGMENTS | st.binary(max_size=6), max_size=12).map(b"".join)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PARTS, max_size=6), _PARTS)
def test_any_raw_command_parses_or_fails_cleanly(pairs: list[bytes], last: bytes) -> None:
    result = parse_command(
        RawCommand((*pairs, last) if len(pairs) % 2 == 0 else (*pairs[:-1], last))
    )
    assert isinstance(result, Command | ParseError)
    if isinstance(result, ParseError):
        assert len(result.message) <= 200


@settings(max_examples=1500, deadline=None)
@given(
    _STREAMS | st.binary(max_size=300),
    st.lists(st.integers(0, 300), max_size=30),
    st.integers(1, 200),
    st.integers(0, 60),
    st.booleans(),
)
def test_chunking_does_not_change_the_commands(
    data: bytes, cuts: list[int], max_line: int, max_literal: int, accept: bool
) -> None:
    def run(chunks: list[bytes]) -> list[Event]:
        return drive(CommandReader(max_line=max_line, max_literal=max_literal), chunks, accept)

    whole = run([data])
    assert run(_chunked(data, cuts)) == whole
    assert run([data[i : i + 1] for i in range(len(data))]) == whole


_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))


@settings(max_examples=500, deadline=None)
@given(_TEXT, _TEXT, _TEXT)
def test_encoded_strings_parse_back(user: str, password: str, name: str) -> None:
    login = b"a LOGIN " + astring(user) + b" " + astring(password)
    assert parsed(login) == Login("a", "LOGIN", username=user, password=password)
    select = command(b"a SELECT " + mailbox(name), Select)
    assert select.mailbox == ("INBOX" if name.upper() == "INBOX" else name)
    subject = search(b"SUBJECT " + string(user) + b" BODY " + astring(password))
    assert subject.key == AndKey((HeaderKey("SUBJECT", user), TextKey("BODY", password)))
