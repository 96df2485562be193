"""Response-side IMAP encoding and modified UTF-7 mailbox names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.imap.encode import (
    MAX_QUOTED,
    NIL,
    astring,
    decode_mailbox_name,
    encode_mailbox_name,
    flag_list,
    internaldate,
    literal,
    mailbox,
    nstring,
    string,
)


def test_short_printable_strings_are_quoted() -> None:
    assert string("hello world") == b'"hello world"'
    assert string(b"") == b'""'
    assert string("x" * MAX_QUOTED) == b'"' + b"x" * MAX_QUOTED + b'"'


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", "two\r\nlines", "tab\there", "Grüße", "x" * (MAX_QUOTED + 1)],
)
def test_other_strings_are_literals(value: str) -> None:
    data = value.encode()
    assert string(value) == b"{%d}\r\n" % len(data) + data


def test_literal_counts_octets() -> None:
    assert literal(b"\x00\xff\r\n") == b"{4}\r\n\x00\xff\r\n"
    assert literal(b"") == b"{0}\r\n"


def test_astrings_are_atoms_when_they_can_be() -> None:
    assert astring("INBOX") == b"INBOX"
    assert astring("a]b") == b"a]b"
    assert astring("") == b'""'
    assert astring("two words") == b'"two words"'
    assert astring("100%") == b'"100%"'
    assert astring("(x)") == b'"(x)"'
    assert astring("nil") == b'"nil"'
    assert astring("NIL") == b'"NIL"'


def test_nstring() -> None:
    assert nstring(None) == NIL == b"NIL"
    assert nstring("NIL") == b'"NIL"'
    assert nstring(b"a\nb") == b"{3}\r\na\nb"


def test_flag_list() -> None:
    assert flag_list(["\\Seen", "$Forwarded"]) == b"(\\Seen $Forwarded)"
    assert flag_list([]) == b"()"


def test_internaldate_keeps_the_zone() -> None:
    zone = timezone(timedelta(hours=-7))
    assert internaldate(datetime(1996, 7, 17, 2, 44, 25, tzinfo=zone)) == (
        b'"17-Jul-1996 02:44:25 -0700"'
    )
    half = timezone(timedelta(hours=5, minutes=30))
    assert internaldate(datetime(2024, 1, 2, 3, 4, 5, tzinfo=half)) == (
        b'"02-Jan-2024 03:04:05 +0530"'
    )
    assert internaldate(datetime(2024, 12, 31, 23, 59, 59)) == b'"31-Dec-2024 23:59:59 +0000"'
    assert internaldate(datetime(2000, 2, 29, tzinfo=UTC)) == b'"29-Feb-2000 00:00:00 +0000"'


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("日本語", "&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 5.1.3
        ("&", "&-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"),
        ("😀", "&2D3eAA-"),
        ("a\tb", "a&AAk-b"),
        ("", ""),
    ],
)
def test_modified_utf7(name: str, encoded: str) -> None:
    assert encode_mailbox_name(name) == encoded
    assert decode_mailbox_name(encoded) == name


@pytest.mark.parametrize(
    "text",
    [
        "Entwürfe",  # raw 8-bit
        "a&b",  # unterminated
        "&Jjo!",  # not base64
        "&-&",  # unterminated after an escaped &
        "&AGE-",  # encodes printable ASCII ("a")
        "&AOk-&AOk-",  # two encoded runs in a row
        "&AO-",  # stray bits, odd length
        "&AOkA-",  # an odd number of octets
        "&2D0-",  # lone surrogate
        "&A-",  # a single base64 character
        "&AOl-",  # non-zero padding bits
        "tab\there",  # control character
    ],
)
def test_invalid_modified_utf7_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_mailbox_name(text)


def test_mailbox_names_are_written_as_strings() -> None:
    assert mailbox("INBOX") == b'"INBOX"'
    assert mailbox("Entwürfe") == b'"Entw&APw-rfe"'
    assert mailbox('a"b') == b'{3}\r\na"b'


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_encoding_round_trips(name: str) -> None:
    encoded = encode_mailbox_name(name)
    assert encoded.isascii() and encoded.isprintable()
    assert decode_mailbox_name(encoded) == name


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("&-AOkZeVnLIqe2D3,+/ab"), max_size=20))
def test_every_accepted_name_is_canonical(text: str) -> None:
    try:
        name = decode_mailbox_name(text)
    except ValueError:
        return
    assert encode_mailbox_name(name) == text
