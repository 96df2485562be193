"""
The pure half of the SMTP client: reply lines, replies, EHLO extensions,
dot-stuffing and line-ending normalisation.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gk.delivery.replies import (
    MAX_REPLY_LINE,
    MAX_REPLY_LINES,
    Extensions,
    Reply,
    ReplyLineError,
    ReplyReader,
    dot_stuff,
    dot_unstuff,
    normalize_line_endings,
    parse_reply_line,
    stuffed_size,
)

# -- reply lines -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"250-PIPELINING", (250, False, "PIPELINING")),
        (b"250 OK", (250, True, "OK")),
        (b"250", (250, True, "")),
        (b"250-", (250, False, "")),
        (b"550 5.1.1 user unknown", (550, True, "5.1.1 user unknown")),
        (b"220  two spaces", (220, True, " two spaces")),
        ("250 Grüße".encode(), (250, True, "Grüße")),
        (b"250 \xff bad utf-8", (250, True, "\ufffd bad utf-8")),
        (b"599 x", (599, True, "x")),
        (b"200 x", (200, True, "x")),
    ],
)
def test_parse_reply_line(line: bytes, parsed: tuple[int, bool, str]) -> None:
    assert parse_reply_line(line) == parsed


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"", "3-digit"),
        (b"25", "3-digit"),
        (b"25O OK", "3-digit"),
        (b" 250 OK", "3-digit"),
        (b"+OK", "3-digit"),
        (b"199 too low", "out of range"),
        (b"600 too high", "out of range"),
        (b"099 x", "out of range"),
        (b"250OK", "no space or hyphen"),
        (b"250\tOK", "no space or hyphen"),
        (b"250 " + b"x" * MAX_REPLY_LINE, "longer than"),
    ],
)
def test_malformed_reply_lines(line: bytes, why: str) -> None:
    with pytest.raises(ReplyLineError, match=why):
        parse_reply_line(line)


@given(st.binary(max_size=5000))
def test_reply_line_parser_raises_only_its_own_error(line: bytes) -> None:
    try:
        code, _last, text = parse_reply_line(line)
    except ReplyLineError:
        return
    assert 200 <= code <= 599
    assert isinstance(text, str)


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_reply_reader_raises_only_its_own_error(chunks: list[bytes]) -> None:
    reader = ReplyReader()
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while reader.next_reply() is not None:
                pass
    except ReplyLineError:
        pass


# -- replies -------------------------------------------------------------------


def test_reply_with_enhanced_status() -> None:
    reply = Reply.from_lines(550, ("5.1.1 user unknown",))
    assert (reply.code, reply.enhanced, reply.text) == (550, "5.1.1", "user unknown")
    assert str(reply) == "550 5.1.1 user unknown"
    assert (reply.positive, reply.transient, reply.permanent) == (False, False, True)
    assert not reply.local


def test_reply_without_enhanced_status() -> None:
    reply = Reply.from_lines(250, ("mx.example.net Hello",))
    assert reply.enhanced == ""
    assert str(reply) == "250 mx.example.net Hello"
    assert reply.positive and not reply.intermediate


def test_enhanced_status_of_another_class_is_ignored() -> None:
    reply = Reply.from_lines(450, ("5.1.1 confused server",))
    assert reply.enhanced == ""
    assert reply.transient
    assert str(reply) == "450 5.1.1 confused server"


def test_multi_line_reply() -> None:
    reply = Reply.from_lines(550, ("5.7.1 first line", "5.7.1 second line", "no code here"))
    assert reply.text == "first line\nsecond line\nno code here"
    assert str(reply) == "550 5.7.1 first line second line no code here"


def test_code_only_reply() -> None:
    assert str(Reply.from_lines(250, ("",))) == "250"
    assert str(Reply.from_lines(354, ("",))) == "354"
    assert Reply.from_lines(354, ("",)).intermediate


def test_local_reply() -> None:
    reply = Reply.make_local(552, "5.3.4", "message too big")
    assert reply.local and reply.permanent
    assert str(reply) == "552 5.3.4 message too big"


# -- the reply reader --------------------------------------------------------------


def test_reader_assembles_replies_across_reads() -> None:
    data = b"250-mx.example.net\r\n250-PIPELINING\r\n250 SIZE 100\r\n354 go\r\n"
    reader = ReplyReader()
    replies = []
    for byte in data:  # the worst case: one byte per read
        reader.feed(bytes([byte]))
        while (reply := reader.next_reply()) is not None:
            replies.append(reply)
    assert [(r.code, r.lines) for r in replies] == [
        (250, ("mx.example.net", "PIPELINING", "SIZE 100")),
        (354, ("go",)),
    ]


def test_reader_tolerates_bare_lf() -> None:
    reader = ReplyReader()
    reader.feed(b"250-a\n250 b\n")
    reply = reader.next_reply()
    assert reply is not None and reply.lines == ("a", "b")


def test_reader_refuses_a_code_change_within_a_reply() -> None:
    reader = ReplyReader()
    reader.feed(b"250-a\r\n550 b\r\n")
    with pytest.raises(ReplyLineError, match="changed from 250 to 550"):
        reader.next_reply()


def test_reader_limits_lines_per_reply() -> None:
    reader = ReplyReader()
    reader.feed(b"250-x\r\n" * MAX_REPLY_LINES + b"250 end\r\n")
    with pytest.raises(ReplyLineError, match="more than 100 lines"):
        reader.next_reply()


def test_reader_limits_a_partial_line() -> None:
    reader = ReplyReader()
    reader.feed(b"250 " + b"x" * MAX_REPLY_LINE)
    with pytest.raises(ReplyLineError, match="longer than"):
        reader.next_reply()


def test_reader_accepts_the_longest_line() -> None:
    reader = ReplyReader()
    reader.feed(b"250 " + b"x" * (MAX_REPLY_LINE - 4))
    assert reader.next_reply() is None
    reader.feed(b"\r\n")
    reply = reader.next_reply()
    assert reply is not None and len(reply.lines[0]) == MAX_REPLY_LINE - 4


def test_reader_discard() -> None:
    reader = ReplyReader()
    reader.feed(b"220 go ahead\r\n250-injected\r\n250 reply\r\n250-part")
    first = reader.next_reply()
    assert first is not None and first.code == 220
    assert reader.discard() == len(b"250-injected\r\n250 reply\r\n250-part")
    assert reader.next_reply() is None


# -- EHLO --------------------------------------------------------------------------


def _ehlo(*lines: str) -> Extensions:
    return Extensions.from_reply(Reply.from_lines(250, lines))


def test_extensions() -> None:
    ext = _ehlo(
        "mx.example.net Hello",
        "PIPELINING",
        "SIZE 10240000",
        "8BITMIME",
        "auth PLAIN login",
        "ENHANCEDSTATUSCODES",
        "",
        "not_a keyword",
    )
    assert set(ext) == {"PIPELINING", "SIZE", "8BITMIME", "AUTH", "ENHANCEDSTATUSCODES"}
    assert "pipelining" in ext and "STARTTLS" not in ext
    assert ext["size"] == ("10240000",)
    assert ext.size_limit == 10240000
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert len(ext) == 5


def test_old_style_auth_is_folded_in() -> None:
    ext = _ehlo("mx", "AUTH LOGIN", "AUTH=LOGIN PLAIN")
    assert ext["AUTH"] == ("LOGIN", "PLAIN")


@pytest.mark.parametrize("size_line", ["SIZE", "SIZE 0", "SIZE lots", "SIZE \uff13"])
def test_no_size_limit(size_line: str) -> None:
    ext = _ehlo("mx", size_line)
    assert "SIZE" in ext and ext.size_limit is None


def test_helo_greeting_only() -> None:
    ext = _ehlo("mx.example.net")
    assert len(ext) == 0 and ext.size_limit is None and ext.auth_mechanisms == frozenset()


# -- dot-stuffing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "stuffed"),
    [
        (b"", b""),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"no final newline", b"no final newline\r\n"),
        (b"bare\nlf\n", b"bare\r\nlf\r\n"),
        (b"bare\rcr\r", b"bare\r\ncr\r\n"),
        (b"mixed\r\r\n\n\r", b"mixed\r\n\r\n\r\n\r\n"),
        (b".starts", b"..starts\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n"),
        (b"a\n..\n", b"a\r\n...\r\n"),
        (b"a\r.b", b"a\r\n..b\r\n"),
        (b".", b"..\r\n"),
        (b"\r\n", b"\r\n"),
        (b"mid.dle\r\n", b"mid.dle\r\n"),
    ],
)
def test_dot_stuff(message: bytes, stuffed: bytes) -> None:
    assert dot_stuff(message) == stuffed
    assert stuffed_size(stuffed) == len(normalize_line_endings(message)) + (
        0 if not message or normalize_line_endings(message).endswith(b"\r\n") else 2
    )


def _reference_stuff(message: bytes) -> bytes:
    """Dot-stuffing as RFC 5321 words it, line by line (slow, obviously right)."""
    lines, line, i = [], bytearray(), 0
    while i < len(message):
        byte = message[i : i + 1]
        if byte == b"\r":
            lines.append(bytes(line))
            line = bytearray()
            i += 2 if message[i + 1 : i + 2] == b"\n" else 1
            continue
        if byte == b"\n":
            lines.append(bytes(line))
            line = bytearray()
        else:
            line += byte
        i += 1
    if line:
        lines.append(bytes(line))
    return b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n" for x in lines)


_message_bytes = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b"\xff", b"\x00", b" "]),
    max_size=60,
).map(b"".join) | st.binary(max_size=200)


@given(_message_bytes)
def test_dot_stuff_matches_the_reference(message: bytes) -> None:
    assert dot_stuff(message) == _reference_stuff(message)


@given(_message_bytes)
def test_stuffing_round_trips(message: bytes) -> None:
    stuffed = dot_stuff(message)
    expected = normalize_line_endings(message)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert dot_unstuff(stuffed) == expected
    assert stuffed_size(stuffed) == len(expected)
    # Only CRLF line endings, and the end marker never inside.
    assert stuffed.count(b"\r") == stuffed.count(b"\n") == stuffed.count(b"\r\n")
    assert b"\r\n.\r\n" not in b"\r\n" + stuffed


@given(st.binary(max_size=300))
def test_normalisation_is_idempotent(message: bytes) -> None:
    once = normalize_line_endings(message)
    assert normalize_line_endings(once) == once
    assert once.count(b"\r") == once.count(b"\n") == once.count(b"\r\n")
    # Only line endings changed: the text between them is the same.
    assert once.replace(b"\r\n", b"") == message.translate(None, b"\r\n")


def test_dot_stuff_is_fast_for_big_messages() -> None:
    # 25 MB of 76-character lines with bare LFs and dots: bytes.replace
    # does this in well under a second; a per-byte Python loop takes minutes.
    line = b"." + b"x" * 74 + b"\n"
    message = line * (25 * 1024 * 1024 // len(line))
    start = time.perf_counter()
    stuffed = dot_stuff(message)
    elapsed = time.perf_counter() - start
    assert len(stuffed) == len(message) + 2 * (len(message) // len(line))
    assert elapsed < 3.0, elapsed
