"""
The envelope of a message, parsed from its header block only.

What the index keeps of each message so that listing, threading and
header search never open the file: date, subject, the address fields,
message-id, in-reply-to, references.  Values are decoded to text (RFC 2047
encoded-words, RFC 6532 UTF-8 headers); a malformed header yields an empty
or partial value, never an exception: the message is stored regardless.
"""

from __future__ import annotations

import datetime
import email.errors
import email.header
import email.utils
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from gk.imap.message import envelope as imap_envelope

#: The header block ends at the first empty line; envelopes past this size
#: are truncated rather than read whole.
MAX_HEADER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Envelope:
    date: datetime.datetime | None = None
    subject: str = ""
    from_: str = ""
    sender: str = ""
    reply_to: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    #: The IMAP ENVELOPE, rendered once at delivery so that FETCH ENVELOPE
    #: of a big folder opens no file (L{gk.imap.message.envelope}).
    imap: bytes = field(default=b"", compare=False)


def header_block(data: bytes) -> bytes:
    """The bytes up to and including the blank line that ends the headers."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = data.find(sep, 0, MAX_HEADER_BYTES)
        if end != -1:
            return data[: end + len(sep)]
    return data[:MAX_HEADER_BYTES]


def decode_text(value: object) -> str:
    """Decode RFC 2047 encoded-words; undecodable parts are kept as they are."""
    if not value:
        return ""
    value = str(value)
    try:
        parts = email.header.decode_header(value)
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        parts = [(value, None)]
    decoded = "".join(_decode_part(part, charset) for part, charset in parts)
    return " ".join(decoded.split())


def _decode_part(part: str | bytes, charset: str | None) -> str:
    if isinstance(part, str):
        return part
    if charset is None:
        # decode_header's encoding of the text between encoded-words.
        try:
            return part.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            return part.decode("latin-1")
    try:
        return part.decode(charset, errors="replace")
    except LookupError:
        return part.decode("utf-8", errors="replace")


def _text(raw: str) -> str:
    """
    A header value as the bytes parser keeps it (8-bit bytes as surrogate
    escapes) as text: UTF-8 (RFC 6532), else Latin-1.
    """
    try:
        raw.encode("ascii")
    except UnicodeEncodeError:
        data = raw.encode("utf-8", "surrogateescape")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return raw


def _get_all(msg: Message, name: str) -> list[str]:
    name = name.lower()
    return [_text(str(v)) for k, v in msg.raw_items() if k.lower() == name]


def _get(msg: Message, name: str) -> str | None:
    values = _get_all(msg, name)
    return values[0] if values else None


_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def _format_address(display: str, addr: str) -> str:
    """C{display <addr>} as text (unlike formataddr, no RFC 2047 re-encoding)."""
    if _SPECIALS.search(display):
        display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{display} <{addr}>"


def _addresses(msg: Message, name: str) -> str:
    values = _get_all(msg, name)
    if not values:
        return ""
    try:
        pairs = email.utils.getaddresses(values)
    except (ValueError, IndexError):
        return decode_text(", ".join(values))
    out = []
    for display, addr in pairs:
        display = decode_text(display)
        if not addr and not display:
            continue
        out.append(_format_address(display, addr) if display else addr)
    return ", ".join(out)


def _date(value: object) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        # RFC 5322 "-0000": the time is in UTC with no local zone known.
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return parsed.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        return None


def _ids(value: object) -> str:
    return " ".join(str(value or "").split())


def parse_envelope(data: bytes) -> Envelope:
    """Parse the envelope of the message C{data} (whole or header block)."""
    header = header_block(data)
    msg = BytesHeaderParser(policy=compat32).parsebytes(header)
    return Envelope(
        date=_date(_get(msg, "Date")),
        subject=decode_text(_get(msg, "Subject")),
        from_=_addresses(msg, "From"),
        sender=_addresses(msg, "Sender"),
        reply_to=_addresses(msg, "Reply-To"),
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        bcc=_addresses(msg, "Bcc"),
        message_id=_ids(_get(msg, "Message-ID")),
        in_reply_to=_ids(_get(msg, "In-Reply-To")),
        references=_ids(_get(msg, "References")),
        imap=imap_envelope(header),
    )
