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
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

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
        decoded = str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        decoded = value
    return " ".join(decoded.split())


def _addresses(msg: Message, name: str) -> str:
    values = msg.get_all(name) or []
    if not values:
        return ""
    try:
        pairs = email.utils.getaddresses([str(v) for v in values])
    except (ValueError, IndexError):
        return decode_text(", ".join(str(v) for v in values))
    out = []
    for display, addr in pairs:
        display = decode_text(display)
        if not addr and not display:
            continue
        out.append(email.utils.formataddr((display, addr)) if display else addr)
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
    msg = BytesHeaderParser(policy=compat32).parsebytes(header_block(data))
    return Envelope(
        date=_date(msg.get("Date")),
        subject=decode_text(msg.get("Subject")),
        from_=_addresses(msg, "From"),
        sender=_addresses(msg, "Sender"),
        reply_to=_addresses(msg, "Reply-To"),
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        bcc=_addresses(msg, "Bcc"),
        message_id=_ids(msg.get("Message-ID")),
        in_reply_to=_ids(msg.get("In-Reply-To")),
        references=_ids(msg.get("References")),
    )
