"""
Writing IMAP data in server responses (RFC 3501 4 and 9), and the
modified UTF-7 of mailbox names (RFC 3501 5.1.3) in both directions.

Every function returns the octets to put in a response as they are,
literals included; none of them adds a line end.  Pure: no I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import UTC, datetime

NIL = b"NIL"

#: Longest value sent as a quoted string; longer ones are literals.
MAX_QUOTED = 1024

# Safe in a quoted string without escapes: printable 7-bit except " and \.
_QUOTABLE = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# 1*ASTRING-CHAR: printable 7-bit except SP and the atom-specials but "]".
_ASTRING_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in b'(){%*"\\')
_ASTRING_ATOM = re.compile(b"[" + re.escape(_ASTRING_CHARS) + b"]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BASE64 = re.compile(r"[A-Za-z0-9+,]+")


def literal(data: bytes) -> bytes:
    """C{{n}CRLF} and the octets: a string the client reads by count."""
    return b"{%d}\r\n" % len(data) + data


def string(value: str | bytes) -> bytes:
    """
    An IMAP string: quoted when short and printable 7-bit without C{"} or
    C{\\}, else a literal.  Text is sent as UTF-8.
    """
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and _QUOTABLE.fullmatch(data):
        return b'"' + data + b'"'
    return literal(data)


def astring(value: str | bytes) -> bytes:
    """An astring: a bare atom when it can be one (and is not C{NIL}), else L{string}."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if _ASTRING_ATOM.fullmatch(data) and data.upper() != NIL:
        return data
    return string(data)


def nstring(value: str | bytes | None) -> bytes:
    """C{NIL} for L{None}, else L{string}."""
    return NIL if value is None else string(value)


def flag_list(flags: Iterable[str]) -> bytes:
    """C{(\\Seen $Forwarded)}: flags and keywords are atoms, written as given."""
    return b"(" + b" ".join(flag.encode("ascii") for flag in flags) + b")"


def internaldate(when: datetime) -> bytes:
    """
    The quoted date-time of INTERNALDATE: C{"17-Jul-1996 02:44:25 -0700"},
    in C{when}'s own zone (UTC if it is naive), to the minute.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    text = (
        f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} '
        f'{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{hours:02d}{minutes:02d}"'
    )
    return text.encode("ascii")


def mailbox(name: str) -> bytes:
    """A mailbox name as a response writes it: modified UTF-7, as a L{string}."""
    return string(encode_mailbox_name(name))


def encode_mailbox_name(name: str) -> str:
    """
    Modified UTF-7 (RFC 3501 5.1.3): printable ASCII stands for itself,
    C{&} is C{&-}, anything else is UTF-16 in modified base64 between
    C{&} and C{-}.

    @raise ValueError: C{name} holds a lone surrogate.
    """
    out: list[str] = []
    pending: list[str] = []
    for char in name:
        if " " <= char <= "~":
            if pending:
                out.append(_shifted("".join(pending)))
                pending = []
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    if pending:
        out.append(_shifted("".join(pending)))
    return "".join(out)


def _shifted(text: str) -> str:
    encoded = base64.b64encode(text.encode("utf-16-be")).rstrip(b"=")
    return "&" + encoded.decode("ascii").replace("/", ",") + "-"


def decode_mailbox_name(text: str) -> str:
    """
    The name a modified UTF-7 mailbox name stands for.

    Only the canonical form is accepted, so that L{encode_mailbox_name}
    gives C{text} back: characters outside printable ASCII, an
    unterminated or empty C{&} sequence, base64 that is not UTF-16 or has
    stray bits, printable ASCII or a lone surrogate encoded, or two
    encoded sequences in a row are errors.

    @raise ValueError: C{text} is not valid modified UTF-7.
    """
    out: list[str] = []
    i = 0
    after_shift = -1  # where the last encoded sequence ended
    while i < len(text):
        char = text[i]
        if char != "&":
            if not " " <= char <= "~":
                raise ValueError("mailbox names are 7-bit printable (modified UTF-7)")
            out.append(char)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated & sequence in mailbox name")
        if end == i + 1:
            out.append("&")
            i = end + 1
            continue
        if i == after_shift:
            raise ValueError("two encoded sequences in a row in mailbox name")
        out.append(_unshift(text[i + 1 : end]))
        i = after_shift = end + 1
    return "".join(out)


def _unshift(chunk: str) -> str:
    if not _BASE64.fullmatch(chunk) or len(chunk) % 4 == 1:
        raise ValueError("invalid modified base64 in mailbox name")
    # Valid base64 now (binascii.Error, should it come, is a ValueError).
    data = base64.b64decode(chunk.replace(",", "/") + "=" * (-len(chunk) % 4), validate=True)
    if len(data) % 2 or _shifted_data(data) != chunk:
        raise ValueError("encoded part of mailbox name is not UTF-16")
    try:
        decoded = data.decode("utf-16-be")
    except UnicodeDecodeError as e:
        raise ValueError("encoded part of mailbox name is not UTF-16") from e
    if any(" " <= char <= "~" for char in decoded):
        raise ValueError("printable ASCII must not be encoded in mailbox names")
    return decoded


def _shifted_data(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode("ascii").replace("/", ",")
