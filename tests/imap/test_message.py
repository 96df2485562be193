"""
IMAP FETCH renderings of stored messages: ENVELOPE, BODY/BODYSTRUCTURE and
BODY[section] content, byte-exact, cross-checked with a strict reader of
the RFC 3501 grammar and with imapclient's response parser; fuzzed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imapclient.response_parser import (  # type: ignore[import-untyped]
    parse_fetch_response,
)

from gk.imap.message import (
    MessageStructure,
    bodystructure,
    envelope,
    header_fields,
    partial,
    section,
)
from gk.imap.mime import MAX_FIELDS, MAX_PARTS, parse

# A strict reader of the values we send (RFC 3501 section 9).

Value = Any  # None | int | bytes | list[Value]


class Malformed(AssertionError):
    pass


def read(data: bytes) -> Value:
    """Parse one IMAP value; anything but exactly one well-formed value fails."""
    value, i = _read(data, 0)
    if i != len(data):
        raise Malformed(f"trailing data at {i}: {data[i : i + 20]!r}")
    return value


def _read(data: bytes, i: int) -> tuple[Value, int]:
    if data.startswith(b"NIL", i):
        return None, i + 3
    c = data[i : i + 1]
    if c == b"(":
        items: list[Value] = []
        i += 1
        while True:
            if data[i : i + 1] == b")" and items:
                return items, i + 1
            if items:
                # Bodies of a multipart follow each other without a space.
                if data[i : i + 1] == b" ":
                    i += 1
                elif not (data[i : i + 1] == b"(" and isinstance(items[-1], list)):
                    raise Malformed(f"expected SP or ) at {i}")
            item, i = _read(data, i)
            items.append(item)
    if c == b'"':
        out = bytearray()
        i += 1
        while True:
            ch = data[i : i + 1]
            if not ch or ch in b"\r\n\x00" or ch[0] > 0x7F:
                raise Malformed(f"bad quoted char {ch!r} at {i}")
            if ch == b'"':
                return bytes(out), i + 1
            if ch == b"\\":
                i += 1
                ch = data[i : i + 1]
                if ch not in (b"\\", b'"'):
                    raise Malformed(f"bad escape at {i}")
            out += ch
            i += 1
    if c == b"{":
        close = data.index(b"}\r\n", i)
        size = int(data[i + 1 : close])
        start = close + 3
        content = data[start : start + size]
        if len(content) != size or b"\x00" in content:
            raise Malformed("bad literal")
        return content, start + size
    j = i
    while data[j : j + 1].isdigit():
        j += 1
    if j == i:
        raise Malformed(f"unexpected {data[i : i + 20]!r} at {i}")
    return int(data[i:j]), j


def nstring(value: Value) -> bool:
    return value is None or isinstance(value, bytes)


def check_params(value: Value) -> None:
    assert value is None or (
        isinstance(value, list)
        and value
        and len(value) % 2 == 0
        and all(isinstance(v, bytes) for v in value)
    ), value


def check_envelope(env: Value) -> None:
    assert isinstance(env, list) and len(env) == 10, env
    assert all(nstring(env[i]) for i in (0, 1, 8, 9))
    for addresses in env[2:8]:
        if addresses is None:
            continue
        assert isinstance(addresses, list) and addresses
        for address in addresses:
            assert isinstance(address, list) and len(address) == 4
            assert all(nstring(v) for v in address)


def check_extension(rest: list[Value]) -> None:
    assert len(rest) == 3, rest
    dsp, lang, loc = rest
    if dsp is not None:
        assert isinstance(dsp, list) and len(dsp) == 2 and isinstance(dsp[0], bytes)
        check_params(dsp[1])
    assert nstring(lang) or (isinstance(lang, list) and all(isinstance(t, bytes) for t in lang))
    assert nstring(loc)


def check_body(body: Value, extensible: bool) -> None:
    """body per RFC 3501 9, with or without the extension data."""
    assert isinstance(body, list) and body, body
    if isinstance(body[0], list):
        i = 0
        while isinstance(body[i], list):
            check_body(body[i], extensible)
            i += 1
        assert isinstance(body[i], bytes)
        rest = body[i + 1 :]
        if extensible:
            check_params(rest[0])
            check_extension(rest[1:])
        else:
            assert rest == []
        return
    type_, subtype, params, id_, desc, enc, size = body[:7]
    assert isinstance(type_, bytes) and isinstance(subtype, bytes)
    check_params(params)
    assert nstring(id_) and nstring(desc) and isinstance(enc, bytes)
    assert isinstance(size, int)
    rest = body[7:]
    if (type_.lower(), subtype.lower()) == (b"message", b"rfc822"):
        check_envelope(rest[0])
        check_body(rest[1], extensible)
        assert isinstance(rest[2], int)
        rest = rest[3:]
    elif type_.lower() == b"text":
        assert isinstance(rest[0], int)
        rest = rest[1:]
    if extensible:
        assert nstring(rest[0])
        check_extension(rest[1:])
    else:
        assert rest == []


def records(response: bytes) -> list[bytes | tuple[bytes, bytes]]:
    """A response line split the way imaplib hands it to imapclient."""
    out: list[bytes | tuple[bytes, bytes]] = []
    start = i = 0
    while i < len(response):
        c = response[i : i + 1]
        if c == b'"':
            i += 1
            while response[i : i + 1] != b'"':
                i += 2 if response[i : i + 1] == b"\\" else 1
        elif c == b"{":
            close = response.index(b"}\r\n", i)
            size = int(response[i + 1 : close])
            out.append((response[start : close + 1], response[close + 3 : close + 3 + size]))
            i = start = close + 3 + size
            continue
        i += 1
    out.append(response[start:])
    return out


def imapclient_fetch(raw: bytes) -> dict[bytes, Any]:
    """ENVELOPE and BODYSTRUCTURE of C{raw} as imapclient reads them."""
    line = b"1 (ENVELOPE %s BODYSTRUCTURE %s BODY %s)" % (
        envelope(raw),
        bodystructure(raw),
        bodystructure(raw, extensible=False),
    )
    result: dict[bytes, Any] = parse_fetch_response(records(line))[1]
    return result


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# RFC 3501 7.4.2.


def test_rfc3501_body_example() -> None:
    text = b"".join(b"x" * 48 + b"\r\n" for _ in range(22)) + b"y" * 50 + b"\r\n"
    b64 = b"".join(b"QUJD" * 15 + b"\r\n" for _ in range(72)) + b"Q" * 88 + b"\r\n"
    assert (len(text), len(b64)) == (1152, 4554)
    raw = (
        b"Content-Type: MULTIPART/MIXED; BOUNDARY=xyz\r\n\r\n"
        b"--xyz\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
        b"Content-Transfer-Encoding: 7BIT\r\n\r\n" + text + b"\r\n--xyz\r\n"
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
        b"Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
        b"Content-Description: Compiled diff\r\n"
        b"Content-Transfer-Encoding: BASE64\r\n\r\n" + b64 + b"\r\n--xyz--\r\n"
    )
    assert bodystructure(raw, extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiled diff" "BASE64" 4554 73) '
        b'"MIXED")'
    )
    assert section(raw, (1,)) == text
    assert section(raw, (2,)) == b64


def test_rfc3501_envelope_example() -> None:
    raw = crlf(
        "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
        "From: Terry Gray <gray@cac.washington.edu>\n"
        "Subject: IMAP4rev1 WG mtg summary and minutes\n"
        "To: imap@cac.washington.edu\n"
        "cc: minutes@CNRI.Reston.VA.US,\n"
        "    John Klensin <KLENSIN@MIT.EDU>\n"
        "Message-Id: <B27397-0100000@cac.washington.edu>\n"
        "\n"
        "body\n"
    )
    assert envelope(raw) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        b'"IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )
    parsed = imapclient_fetch(raw)[b"ENVELOPE"]
    assert parsed.subject == b"IMAP4rev1 WG mtg summary and minutes"
    assert [a.mailbox for a in parsed.cc] == [b"minutes", b"KLENSIN"]


# Single-part messages.

SIMPLE = crlf(
    "From: Alice <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: Hello\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "\n"
    "Hi Bob,\n"
    "bye.\n"
)


def test_simple_text_message() -> None:
    assert bodystructure(SIMPLE) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 2 NIL NIL NIL NIL)'
    )
    assert bodystructure(SIMPLE, extensible=False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 2)'
    )
    body = b"Hi Bob,\r\nbye.\r\n"
    header = SIMPLE[: -len(body)]
    assert section(SIMPLE, ()) == SIMPLE
    assert section(SIMPLE, (), "HEADER") == header
    assert section(SIMPLE, (), "TEXT") == body
    # Part 1 of a non-multipart message is its body; its MIME header is the header.
    assert section(SIMPLE, (1,)) == body
    assert section(SIMPLE, (1,), "MIME") == header
    parsed = imapclient_fetch(SIMPLE)
    assert parsed[b"BODYSTRUCTURE"][:2] == (b"text", b"plain")
    assert parsed[b"ENVELOPE"].from_[0].name == b"Alice"


def test_content_type_as_it_appears_with_defaults() -> None:
    raw = crlf(
        'Content-Type: TEXT/Html; Charset="UTF-8" (the charset); format=flowed\n'
        "Content-Transfer-Encoding: Quoted-Printable (qp)\n\n<p>x</p>\n"
    )
    assert bodystructure(raw, extensible=False) == (
        b'("TEXT" "Html" ("Charset" "UTF-8" "format" "flowed") NIL NIL "Quoted-Printable" 10 1)'
    )
    # RFC 2045 5.2: an invalid Content-Type is text/plain; charset=us-ascii.
    for value in ("text", "/plain", "text/", "tëxt/plain", ";charset=x"):
        bad = crlf(f"Content-Type: {value}\n\nx")
        assert bodystructure(bad, False) == (
            b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 1)'
        ), value


def test_parameters_are_unquoted_and_rfc2231_passes_through() -> None:
    raw = crlf(
        'Content-Type: application/x-thing; a="q\\"uo\\\\te"; b=plain (comment);\n'
        " c*0*=utf-8''%E2%82%AC; c*1=rest; junk; =x; d=\"semi;colon\"\n\nx"
    )
    assert bodystructure(raw, False) == (
        b'("application" "x-thing" ("a" "q\\"uo\\\\te" "b" "plain" '
        b'"c*0*" "utf-8\'\'%E2%82%AC" "c*1" "rest" "d" "semi;colon") NIL NIL "7bit" 1)'
    )


def test_eight_bit_parameter_values_are_literals() -> None:
    raw = 'Content-Type: text/plain; name="Grüße.txt"\r\n\r\nx'.encode()
    name = "Grüße.txt".encode()
    expected = b'("text" "plain" ("name" {%d}\r\n%s) NIL NIL "7bit" 1 1)' % (len(name), name)
    assert bodystructure(raw, False) == expected
    assert imapclient_fetch(raw)[b"BODY"][2] == (b"name", name)


# Multiparts.

ALTERNATIVE = crlf(
    "From: a@example.org\n"
    'Content-Type: multipart/alternative; boundary="AbCdEf"\n'
    "\n"
    "--AbCdEf\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "plain\n"
    "--AbCdEf\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<b>html</b>\n"
    "\n"
    "--AbCdEf--\n"
)


def test_multipart_alternative_keeps_the_boundary_case() -> None:
    assert bodystructure(ALTERNATIVE) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 13 1 NIL NIL NIL NIL) '
        b'"alternative" ("boundary" "AbCdEf") NIL NIL NIL)'
    )
    assert bodystructure(ALTERNATIVE, False) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 13 1) "alternative")'
    )
    # The CRLF before a delimiter belongs to the delimiter.
    assert section(ALTERNATIVE, (1,)) == b"plain"
    assert section(ALTERNATIVE, (2,)) == b"<b>html</b>\r\n"
    assert section(ALTERNATIVE, (2,), "MIME") == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    body = imapclient_fetch(ALTERNATIVE)[b"BODYSTRUCTURE"]
    assert body.is_multipart
    assert body[1] == b"alternative"
    assert body[2] == (b"boundary", b"AbCdEf")
    # A boundary matched case-insensitively would not be one.
    lower = ALTERNATIVE.replace(b'boundary="AbCdEf"', b'boundary="abcdef"')
    assert bodystructure(lower, False).startswith(b'("text" "plain" ("charset" "us-ascii")')


MIXED = crlf(
    "From: a@example.org\n"
    "Subject: report\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "text body\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>html body</p>\n"
    "--inner--\n"
    "--outer\n"
    'Content-Type: application/pdf; name="report.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment;\n"
    '\tfilename="report.pdf"; size=6\n'
    "Content-ID: <part2@example.org>\n"
    "Content-Description: The report\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Language: en, de\n"
    "Content-Location: http://example.org/report.pdf\n"
    "\n"
    "JVBERi0=\n"
    "--outer--\n"
    "epilogue\n"
)


def test_nested_multipart_with_attachment() -> None:
    assert bodystructure(MIXED) == (
        b'((("text" "plain" NIL NIL NIL "7bit" 9 1 NIL NIL NIL NIL)'
        b'("text" "html" NIL NIL NIL "7bit" 16 1 NIL NIL NIL NIL) '
        b'"alternative" ("boundary" "inner") NIL NIL NIL)'
        b'("application" "pdf" ("name" "report.pdf") "<part2@example.org>" "The report" '
        b'"base64" 8 "Q2hlY2sgSW50ZWdyaXR5IQ==" '
        b'("attachment" ("filename" "report.pdf" "size" "6")) ("en" "de") '
        b'"http://example.org/report.pdf") '
        b'"mixed" ("boundary" "outer") NIL NIL NIL)'
    )
    assert section(MIXED, (1, 1)) == b"text body"
    assert section(MIXED, (1, 2)) == b"<p>html body</p>"
    assert section(MIXED, (1, 2), "MIME") == b"Content-Type: text/html\r\n\r\n"
    # A multipart part's content is its whole body, delimiters included.
    inner = section(MIXED, (1,))
    assert inner.startswith(b"--inner\r\n") and inner.endswith(b"--inner--")
    assert section(MIXED, (2,)) == b"JVBERi0="
    # HEADER and TEXT only exist for messages.
    assert section(MIXED, (2,), "HEADER") == b""
    assert section(MIXED, (1,), "TEXT") == b""
    body = imapclient_fetch(MIXED)[b"BODYSTRUCTURE"]
    assert body[0][1][8] == (b"attachment", (b"filename", b"report.pdf", b"size", b"6"))


def test_preamble_and_epilogue_are_in_text_but_no_part() -> None:
    text = section(MIXED, (), "TEXT")
    assert text.startswith(b"This is a multi-part message in MIME format.\r\n--outer\r\n")
    assert text.endswith(b"--outer--\r\nepilogue\r\n")
    assert section(MIXED, (3,)) == b""
    assert section(MIXED, (), "HEADER") + text == MIXED


def test_missing_or_wrong_boundary_degrades_to_one_text_part() -> None:
    for header in (
        "Content-Type: multipart/mixed",
        'Content-Type: multipart/mixed; boundary=""',
        "Content-Type: multipart/mixed; boundary=nothere",
    ):
        raw = crlf(f"{header}\n\n--real\nContent-Type: text/html\n\nx\n--real--\n")
        body = raw.split(b"\r\n\r\n", 1)[1]
        assert bodystructure(raw, False) == (
            b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 5)' % len(body)
        )
        assert section(raw, (1,)) == body
        assert section(raw, (2,)) == b""


def test_missing_close_delimiter_and_padding() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b  \n\none\n--b\t\n\ntwo\n")
    assert section(raw, (1,)) == b"one"
    assert section(raw, (2,)) == b"two\r\n"
    # "--bx" is not a delimiter of boundary "b".
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--bx\n--b--\n")
    assert section(raw, (1,)) == b"one\r\n--bx"


def test_multipart_digest_defaults_to_message() -> None:
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n"
        "--d\n\nSubject: first\n\nbody one\n"
        "--d\nContent-Type: text/plain\n\nnot a message\n--d--\n"
    )
    parsed = read(bodystructure(raw, False))
    assert parsed[0][:2] == [b"message", b"rfc822"]
    assert parsed[0][7][1] == b"first"
    assert parsed[1][:2] == [b"text", b"plain"]
    assert section(raw, (1,), "HEADER") == b"Subject: first\r\n\r\n"


# message/rfc822.

FORWARD = crlf(
    "From: a@example.org\n"
    "Subject: Fwd: lunch\n"
    'Content-Type: multipart/mixed; boundary="=_outer"\n'
    "\n"
    "--=_outer\n"
    "Content-Type: text/plain\n"
    "\n"
    "see below\n"
    "--=_outer\n"
    "Content-Type: message/rfc822\n"
    "Content-Disposition: inline\n"
    "\n"
    'From: "Bob" <bob@example.net>\n'
    "Subject: lunch\n"
    "Message-ID: <lunch@example.net>\n"
    'Content-Type: multipart/alternative; boundary="=_inner"\n'
    "\n"
    "--=_inner\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "noon?\n"
    "--=_inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<i>noon?</i>\n"
    "--=_inner--\n"
    "\n"
    "--=_outer--\n"
)


def test_message_rfc822_part() -> None:
    inner = section(FORWARD, (2,))
    inner_header = crlf(
        'From: "Bob" <bob@example.net>\nSubject: lunch\nMessage-ID: <lunch@example.net>\n'
        'Content-Type: multipart/alternative; boundary="=_inner"\n\n'
    )
    assert inner.startswith(inner_header) and inner.endswith(b"--=_inner--\r\n")
    assert section(FORWARD, (2,), "HEADER") == inner_header
    assert section(FORWARD, (2,), "TEXT") == inner[len(inner_header) :]
    assert section(FORWARD, (2,), "MIME") == (
        b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    )
    assert section(FORWARD, (2, 1)) == b"noon?"
    assert section(FORWARD, (2, 1), "MIME") == (
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    assert section(FORWARD, (2, 2)) == b"<i>noon?</i>"
    assert section(FORWARD, (2, 3)) == b""
    assert section(FORWARD, (2,), "HEADER.FIELDS", ("subject",)) == b"Subject: lunch\r\n\r\n"
    assert bodystructure(FORWARD, False) == (
        b'(("text" "plain" NIL NIL NIL "7bit" 9 1)'
        b'("message" "rfc822" NIL NIL NIL "7bit" %d '
        b'(NIL "lunch" (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) '
        b'(("Bob" NIL "bob" "example.net")) NIL NIL NIL NIL "<lunch@example.net>") '
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1)'
        b'("text" "html" NIL NIL NIL "7bit" 12 1) "alternative") 14) "mixed")' % len(inner)
    )
    body = imapclient_fetch(FORWARD)[b"BODYSTRUCTURE"]
    assert body[0][1][:2] == (b"message", b"rfc822")
    assert body[0][1][7][1] == b"lunch"
    assert body[0][1][11] == (b"inline", None)


def test_message_rfc822_with_a_single_part_inside() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
        "Subject: inner\nContent-Type: text/plain\n\ninner body\n--b--\n"
    )
    assert section(raw, (1,)) == b"Subject: inner\r\nContent-Type: text/plain\r\n\r\ninner body"
    assert section(raw, (1, 1)) == b"inner body"
    assert section(raw, (1, 1), "MIME") == b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n"
    assert section(raw, (1, 2)) == b""
    assert section(raw, (1, 1, 1)) == b""


def test_top_level_message_rfc822() -> None:
    raw = crlf("Content-Type: message/rfc822\n\nSubject: wrapped\n\nhello\n")
    assert section(raw, (1,)) == b"Subject: wrapped\r\n\r\nhello\r\n"
    assert section(raw, (1,), "HEADER") == b"Subject: wrapped\r\n\r\n"
    assert section(raw, (1, 1)) == b"hello\r\n"
    parsed = read(bodystructure(raw))
    assert parsed[7][1] == b"wrapped"
    assert parsed[8][:2] == [b"text", b"plain"]


# Line ends and odd shapes.


def test_bare_lf_messages() -> None:
    raw = ALTERNATIVE.replace(b"\r\n", b"\n")
    assert section(raw, (1,)) == b"plain"
    assert section(raw, (2,)) == b"<b>html</b>\n"
    assert section(raw, (), "HEADER").endswith(b'"AbCdEf"\n\n')
    parsed = read(bodystructure(raw, False))
    assert [p[6:8] for p in parsed[:2]] == [[5, 1], [12, 1]]
    simple = SIMPLE.replace(b"\r\n", b"\n")
    assert read(bodystructure(simple, False))[6:8] == [13, 2]
    assert section(simple, (), "HEADER.FIELDS", ("To",)) == b"To: bob@example.net\n\n"


def test_header_only_messages() -> None:
    for raw, blank in ((b"Subject: x\r\nFrom: a@b\r\n", b""), (b"Subject: x\r\n\r\n", b"\r\n")):
        assert section(raw, (), "HEADER") == raw
        assert section(raw, (), "TEXT") == b""
        assert section(raw, (1,)) == b""
        assert section(raw, (), "HEADER.FIELDS", ("subject",)) == b"Subject: x\r\n" + blank
        assert read(bodystructure(raw, False))[6:8] == [0, 0]
    unterminated = b"Subject: no newline"
    assert section(unterminated, (), "HEADER") == unterminated
    assert read(envelope(unterminated))[1] == b"no newline"
    assert section(unterminated, (), "HEADER.FIELDS.NOT", ("from",)) == unterminated


def test_message_without_header() -> None:
    raw = b"\r\njust a body\r\n"
    assert section(raw, (), "HEADER") == b"\r\n"
    assert section(raw, (), "TEXT") == b"just a body\r\n"
    assert envelope(raw) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert section(b"", ()) == b""
    assert (
        bodystructure(b"", False) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
    )


def test_body_line_counts() -> None:
    assert read(bodystructure(b"\r\n\r\nno final newline", False))[7] == 2
    assert read(bodystructure(b"\r\n\r\n\r\n", False))[7] == 2


# ENVELOPE.


def env(header: str) -> list[Value]:
    value = read(envelope(header.encode("utf-8") + b"\r\n\r\nbody\r\n"))
    check_envelope(value)
    assert isinstance(value, list)
    return value


def test_envelope_fields_are_unfolded_but_not_decoded() -> None:
    value = env(
        "Subject: =?UTF-8?B?SGVsbG8=?=\r\n =?UTF-8?Q?_w=C3=B6rld?=\r\n"
        "Date: Tue, 2 Jan 2024\r\n\t12:00:00 +0100\r\n"
        "In-Reply-To: <a@b>\r\n <c@d>\r\n"
        "Message-ID:   <id@example.org>  "
    )
    assert value[0] == b"Tue, 2 Jan 2024\t12:00:00 +0100"
    assert value[1] == b"=?UTF-8?B?SGVsbG8=?= =?UTF-8?Q?_w=C3=B6rld?="
    assert value[8] == b"<a@b> <c@d>"
    assert value[9] == b"<id@example.org>"


def test_absent_and_empty_fields() -> None:
    value = env("Subject:\r\nTo:\r\nX-Other: x")
    assert value[0] is None
    assert value[1] == b""
    assert value[2:8] == [None] * 6
    assert value[8:] == [None, None]


def test_sender_and_reply_to_default_to_from() -> None:
    value = env("From: a@example.org\r\nReply-To: r@example.org\r\nSender:")
    assert value[2] == value[3] == [[None, None, b"a", b"example.org"]]
    assert value[4] == [[None, None, b"r", b"example.org"]]


def test_missing_from() -> None:
    value = env("To: b@example.org\r\nSender: s@example.org")
    assert value[2] is None
    assert value[3] == [[None, None, b"s", b"example.org"]]
    assert value[4] is None


def test_display_names_with_commas_and_quotes() -> None:
    value = env(
        'To: "Doe, John" <john@example.org>, "Say \\"hi\\"" <hi@example.org>,\r\n'
        "  Mr. J.  Q.  Public <q@example.org>, =?utf-8?q?J=C3=B6rg?= <j@example.org>"
    )
    assert value[5] == [
        [b"Doe, John", None, b"john", b"example.org"],
        [b'Say "hi"', None, b"hi", b"example.org"],
        [b"Mr. J. Q. Public", None, b"q", b"example.org"],
        [b"=?utf-8?q?J=C3=B6rg?=", None, b"j", b"example.org"],
    ]
    assert b'"Say \\"hi\\""' in envelope(b'To: "Say \\"hi\\"" <hi@example.org>\r\n\r\n')


def test_group_addresses() -> None:
    value = env(
        "To: Team: ann@example.org, Ben <ben@example.org>;, out@example.org\r\n"
        "Cc: undisclosed-recipients:;\r\nBcc: Unclosed group: c@example.org"
    )
    assert value[5] == [
        [None, None, b"Team", None],
        [None, None, b"ann", b"example.org"],
        [b"Ben", None, b"ben", b"example.org"],
        [None, None, None, None],
        [None, None, b"out", b"example.org"],
    ]
    assert value[6] == [[None, None, b"undisclosed-recipients", None], [None, None, None, None]]
    assert value[7] == [
        [None, None, b"Unclosed group", None],
        [None, None, b"c", b"example.org"],
        [None, None, None, None],
    ]
    parsed = imapclient_fetch(b"Cc: undisclosed-recipients:;\r\n\r\n")[b"ENVELOPE"]
    assert parsed.cc[0].mailbox == b"undisclosed-recipients" and parsed.cc[0].host is None


def test_address_forms() -> None:
    value = env(
        'From: <@relay.example,@other.example:joe@example.org>, "joe q"@example.org,\r\n'
        " user@[192.0.2.1], legacy@example.org (Legacy Name), nodomain, <>,\r\n"
        " john . doe @ example . org (comment)"
    )
    assert value[2] == [
        [None, b"@relay.example,@other.example", b"joe", b"example.org"],
        [None, None, b'"joe q"', b"example.org"],
        [None, None, b"user", b"[192.0.2.1]"],
        [b"Legacy Name", None, b"legacy", b"example.org"],
        [None, None, b"nodomain", b""],
        [None, None, b"", b""],
        [b"comment", None, b"john.doe", b"example.org"],
    ]


def test_eight_bit_headers_are_literals() -> None:
    subject = "Grüße aus Köln ✓".encode()
    raw = (
        b"Subject: "
        + subject
        + b"\r\nFrom: J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbccher.example>\r\n\r\nx"
    )
    rendered = envelope(raw)
    assert b"{%d}\r\n%s" % (len(subject), subject) in rendered
    value = read(rendered)
    assert value[1] == subject
    assert value[2] == [["Jörg".encode(), None, "jörg".encode(), "bücher.example".encode()]]
    assert imapclient_fetch(raw)[b"ENVELOPE"].subject == subject


def test_nul_and_cr_in_values() -> None:
    value = env("Subject: a\x00b\rc")
    assert value[1] == b"ab\rc"


# HEADER.FIELDS and header_fields.

FOLDED = (
    b"Received: from a\r\n\tby b; Mon, 1 Jan 2024\r\n"
    b"SUBJECT: folded\r\n  subject\r\n"
    b"To: x@example.org\r\n"
    b"Received: second\r\n"
    b"X-Odd :spaced name\r\n"
    b"\r\n"
    b"body\r\n"
)


def test_header_fields_keep_folding_and_order() -> None:
    assert section(FOLDED, (), "HEADER.FIELDS", ("subject", "RECEIVED")) == (
        b"Received: from a\r\n\tby b; Mon, 1 Jan 2024\r\n"
        b"SUBJECT: folded\r\n  subject\r\n"
        b"Received: second\r\n\r\n"
    )
    assert section(FOLDED, (), "header.fields.not", ("Received", "x-odd")) == (
        b"SUBJECT: folded\r\n  subject\r\nTo: x@example.org\r\n\r\n"
    )
    assert section(FOLDED, (), "HEADER.FIELDS", ("X-Odd",)) == b"X-Odd :spaced name\r\n\r\n"
    assert section(FOLDED, (), "HEADER.FIELDS", ("nothing",)) == b"\r\n"
    assert section(FOLDED, (1,), "HEADER.FIELDS", ("to",)) == b""
    assert header_fields(FOLDED)[1] == (b"SUBJECT", b"SUBJECT: folded\r\n  subject\r\n")
    assert [name for name, _ in header_fields(FOLDED)] == [
        b"Received",
        b"SUBJECT",
        b"To",
        b"Received",
        b"X-Odd",
    ]
    assert b"".join(f for _, f in header_fields(FOLDED)) + b"\r\nbody\r\n" == FOLDED


# Partial fetches and missing sections.


def test_partial() -> None:
    assert partial(b"0123456789", 0, 4) == b"0123"
    assert partial(b"0123456789", 8, 4) == b"89"
    assert partial(b"0123456789", 10, 4) == b""
    assert partial(b"0123456789", 99, None) == b""
    assert partial(b"0123456789", 3, None) == b"3456789"
    assert partial(b"0123456789", 3, 0) == b""
    with pytest.raises(ValueError):
        partial(b"x", -1, None)


def test_nonexistent_sections_are_empty() -> None:
    structure = MessageStructure(MIXED)
    for part, kind in [
        ((0,), None),
        ((3,), None),
        ((1, 3), None),
        ((2, 1), None),
        ((1, 1, 1), None),
        ((), "MIME"),
        ((2,), "TEXT"),
        ((), "BOGUS"),
        ((9, 9, 9), "HEADER.FIELDS"),
    ]:
        assert structure.section(part, kind, ("subject",)) == b"", (part, kind)
        assert structure.span(part, kind) is None


def test_span_locates_sections_without_copying() -> None:
    structure = MessageStructure(FORWARD)
    start, end = structure.span((2, 2)) or (0, 0)
    assert FORWARD[start:end] == b"<i>noon?</i>"
    assert structure.span((), "HEADER.FIELDS") is None


# Size: shapes that once cost too much (speed itself is bench/imap_fetch.py's).


def parsed(raw: bytes) -> MessageStructure:
    structure = MessageStructure(raw)
    structure.envelope()
    structure.bodystructure()
    return structure


def test_usual_and_many_part_messages_parse_whole() -> None:
    # A usual shape: text, html, a 20 KB attachment.
    attachment = (b"QUJD" * 19 + b"\r\n") * 250
    usual = MIXED.replace(b"JVBERi0=", attachment)
    assert len(usual) > 20_000
    assert attachment[:-2] in parsed(usual).section((2,))
    # 200 small parts.
    parts = "".join(
        f"--b\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: inline\n\n"
        f"{'line of text ' * 6}\n"
        for _ in range(200)
    )
    many = crlf(
        'From: "A" <a@example.org>\nTo: b@example.org, c@example.org\nSubject: s\n'
        f"Content-Type: multipart/mixed; boundary=b\n\n{parts}--b--\n"
    )
    assert len(many) > 20_000
    structure = parsed(many)
    assert len(structure.root.children) == 200
    assert structure.section((200,)) == b"line of text " * 6


def test_large_message_with_many_parts() -> None:
    chunk = b"A" * 76 + b"\r\n"
    part = b"--b\r\nContent-Type: application/octet-stream\r\n\r\n" + chunk * 800
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 401 + b"--b--\r\n"
    assert len(raw) > 25_000_000
    begin = time.perf_counter()
    structure = MessageStructure(raw)
    assert len(structure.root.children) == 401
    assert structure.section((401,)) == (chunk * 800)[:-2]
    read(structure.bodystructure())
    # Generous: only a quadratic slip (minutes) fails it, not a busy machine.
    assert time.perf_counter() - begin < 20


def test_part_count_is_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * (
        MAX_PARTS + 10
    )
    root = parse(raw)
    assert len(root.children) == MAX_PARTS - 1
    assert root.children[-1].body.count(b"--b") == 11
    check_body(read(bodystructure(raw)), True)


def test_field_count_is_bounded() -> None:
    header = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_FIELDS + 5))
    raw = header + b"Subject: late\r\n\r\nbody"
    fields = header_fields(raw)
    assert len(fields) == MAX_FIELDS
    assert fields[-1][1].startswith(b"X-%d: v\r\n" % (MAX_FIELDS - 1))
    assert fields[-1][1].endswith(b"Subject: late\r\n")
    assert section(raw, (), "HEADER.FIELDS.NOT", ("X-0",)) == raw[len(b"X-0: v\r\n") : -4]
    assert read(envelope(raw))[1] is None


def test_nesting_is_bounded() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\n" * 5000 + b"end"
    check_body(read(bodystructure(raw)), True)
    assert section(raw, (1,) * 3, "TEXT").endswith(b"end")


# Fuzzing.


def check_all(raw: bytes, part: tuple[int, ...] = (), kind: str | None = None) -> None:
    structure = MessageStructure(raw)
    check_envelope(read(structure.envelope()))
    check_body(read(structure.bodystructure()), True)
    check_body(read(structure.bodystructure(False)), False)
    assert structure.bodystructure() == bodystructure(raw)
    assert structure.section(()) == raw
    assert structure.section((), "HEADER") + structure.section((), "TEXT") == raw
    header = structure.section((), "HEADER")
    names = tuple(name for name, _ in header_fields(raw))
    assert structure.section((), "HEADER.FIELDS.NOT", ()) == header
    assert structure.section((), "HEADER.FIELDS", names) == header
    data = structure.section(part, kind, ("subject", "to"))
    assert data in raw or kind in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")


KIND = st.sampled_from([None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"])
PART = st.lists(st.integers(min_value=0, max_value=4), max_size=4).map(tuple)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=400), PART, KIND)
def test_arbitrary_bytes(raw: bytes, part: tuple[int, ...], kind: str | None) -> None:
    check_all(raw, part, kind)


_PIECES = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--b",
    b"--b--",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b'Content-Type: multipart/digest; boundary="b"\r\n',
    b'From: "a, b" <x@y>, g: c@d;\r\n',
    b"To: (",
    b'"\\',
    b":;<>@,",
    b"\x00\xff\xc3\xa9",
    b" \t",
    b"Subject: x\r\n y",
]


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES) | st.binary(max_size=5), max_size=40).map(b"".join),
    PART,
    KIND,
)
def test_mime_shaped_garbage(raw: bytes, part: tuple[int, ...], kind: str | None) -> None:
    check_all(raw, part, kind)
    parse_fetch_response(records(b"1 (BODYSTRUCTURE %s)" % bodystructure(raw)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([SIMPLE, ALTERNATIVE, MIXED, FORWARD]), st.data())
def test_damaged_messages(raw: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(max_size=8))
    damaged = raw[:cut] + junk + raw[cut + data.draw(st.integers(0, 20)) :]
    check_all(damaged, data.draw(PART), data.draw(KIND))


# Generated well-formed messages: every section is exactly what was built.

_TEXT = st.text(alphabet="abc XYZ019.,;:!?=/'\"<>()[]\t", max_size=30)


@dataclass
class Built:
    header: bytes
    body: bytes
    children: list[Built] = field(default_factory=list)
    message: Built | None = None


def _line(eol: bytes, text: str) -> bytes:
    return text.encode() + eol


@st.composite
def entity(draw: st.DrawFn, eol: bytes, depth: int, names: list[int]) -> Built:
    kind = draw(st.sampled_from(["leaf", "multipart", "message"] if depth < 3 else ["leaf"]))
    extra = b"".join(_line(eol, f"X-{i}: {draw(_TEXT)}") for i in range(draw(st.integers(0, 2))))
    if kind == "leaf":
        ctype = draw(st.sampled_from(["", "text/plain", "TEXT/HTML; charset=utf-8", "image/png"]))
        header = extra + (_line(eol, f"Content-Type: {ctype}") if ctype else b"")
        lines: list[str] = draw(st.lists(_TEXT, max_size=4))
        terminated: bool = draw(st.booleans())
        body = eol.join(line.encode() for line in lines)
        if lines and terminated:
            body += eol
        return Built(header + eol, body)
    if kind == "message":
        inner = draw(entity(eol, depth + 1, names))
        inner.header = _line(eol, f"Subject: {draw(_TEXT)}") + inner.header
        header = extra + _line(eol, "Content-Type: message/rfc822")
        return Built(header + eol, inner.header + inner.body, message=inner)
    names.append(len(names))
    boundary = draw(st.sampled_from(["b", "AbC", "=_x'()+_,./:?"])) + str(names[-1])
    subtype = draw(st.sampled_from(["mixed", "Alternative", "related"]))
    header = extra + _line(eol, f'Content-Type: multipart/{subtype}; boundary="{boundary}"')
    children = draw(st.lists(entity(eol, depth + 1, names), min_size=1, max_size=3))
    preamble = draw(st.sampled_from([b"", b"preamble" + eol]))
    epilogue = draw(st.sampled_from([b"", eol, eol + b"epilogue" + eol]))
    delimiter = b"--" + boundary.encode()
    body = preamble
    for child in children:
        body += delimiter + eol + child.header + child.body + eol
    body += delimiter + b"--" + epilogue
    return Built(header + eol, body, children=children)


def check_built(structure: MessageStructure, built: Built, path: tuple[int, ...]) -> None:
    """C{built} is the part at C{path}: its content and its sub-parts."""
    assert structure.section(path) == built.body
    if built.children:
        check_children(structure, built, path)
    elif built.message is not None:
        inner = built.message
        assert structure.section(path, "HEADER") == inner.header
        assert structure.section(path, "TEXT") == inner.body
        if inner.children:
            check_children(structure, inner, path)
        else:
            assert structure.section((*path, 1)) == inner.body
            assert structure.section((*path, 1), "MIME") == inner.header


def check_children(structure: MessageStructure, built: Built, path: tuple[int, ...]) -> None:
    for n, child in enumerate(built.children, 1):
        assert structure.section((*path, n), "MIME") == child.header
        check_built(structure, child, (*path, n))
    assert structure.section((*path, len(built.children) + 1)) == b""


def compare_structure(body: Value, built: Built) -> None:
    if built.children:
        parts = body[: next(i for i, b in enumerate(body) if isinstance(b, bytes))]
        assert len(built.children) == len(parts)
        for child, rendered in zip(built.children, parts, strict=True):
            compare_structure(rendered, child)
        return
    assert body[6] == len(built.body)
    if built.message is not None:
        assert body[9] == built.body.count(b"\n") + (not built.body.endswith(b"\n"))
        compare_structure(body[8], built.message)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([b"\r\n", b"\n"]), st.data())
def test_generated_messages(eol: bytes, data: st.DataObject) -> None:
    top = data.draw(entity(eol, 0, []))
    subject = data.draw(_TEXT)
    header = _line(eol, "From: someone@example.org") + _line(eol, f"Subject: {subject}")
    raw = header + top.header + top.body
    structure = MessageStructure(raw)
    assert read(structure.envelope())[1] == subject.strip(" \t").encode()
    top.header = header + top.header
    if top.children:
        check_children(structure, top, ())
    elif top.message is not None:
        check_built(structure, Built(b"", top.body, message=top.message), (1,))
    else:
        assert structure.section((1,)) == top.body
        assert structure.section((1,), "MIME") == top.header
    assert structure.section((), "TEXT") == top.body
    rendered = read(structure.bodystructure())
    check_body(rendered, True)
    compare_structure(rendered, top)
