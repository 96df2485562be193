"""
Writing a message as a mail client would: the addresses the model gives
read and checked, a plain-text UTF-8 body, a Message-ID under the
server's host name, a Date in the user's time zone, and for a reply the
subject, recipients and threading fields (RFC 5322 3.6.4) of its
original.

Messages are built with the standard library's L{EmailMessage} under the
SMTP policy (CRLF, headers RFC 2047-encoded where needed; SMTPUTF8 only
when an address's local part needs it), so that what goes out is
well-formed whatever the model wrote.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8

from gk.accounts import InvalidAddress, normalize_domain
from gk.assistant.tools import ToolError
from gk.smtp.headers import new_message_id
from gk.storage.mail_search import MessageSummary

#: A reply prefix already there (English, German, Nordic, French, Italian clients).
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|réf|ref|rif)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
#: Message-ids kept in References, at most (the first and the latest).
_MAX_REFERENCES = 20
#: Characters of the original quoted in a reply, at most.
MAX_QUOTE = 4000


@dataclass(frozen=True)
class Draft:
    """A message ready to be built: addresses checked, text as given."""

    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    subject: str
    body: str
    in_reply_to: str = ""
    references: str = ""

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients: every To, Cc and Bcc address once."""
        return list(dict.fromkeys(a.addr_spec for a in (*self.to, *self.cc, *self.bcc)))

    def summary(self, *, show_sender: bool) -> str:
        """The one line the user confirms: recipients, subject, start of the body."""
        parts = []
        if show_sender:
            parts.append(f"from {self.sender.addr_spec}")
        parts.append("to " + _list(self.to))
        if self.cc:
            parts.append("cc " + _list(self.cc))
        if self.bcc:
            parts.append("bcc " + _list(self.bcc))
        parts.append(f"subject {self.subject!r}")
        parts.append(f"body {excerpt(self.body)!r}")
        return "; ".join(parts)


def _list(addresses: Iterable[Address]) -> str:
    return ", ".join(a.addr_spec for a in addresses)


def excerpt(text: str, length: int = 160) -> str:
    """The start of C{text} on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"


def parse_address(value: str, field: str) -> Address:
    """
    One address as a model writes it: C{bob@example.test} or
    C{Bob Smith <bob@example.test>}; the domain in its A-label form.

    @raise ToolError: not one valid address (the message says which field).
    """
    if any(c in value for c in "\r\n\0"):
        raise ToolError(f"{field}: {value!r} is not an email address")
    pairs = email.utils.getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        raise ToolError(f"{field}: {value!r} is not one email address, e.g. bob@example.com")
    display, addr = pairs[0]
    local, at, domain = addr.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local):
        raise ToolError(f"{field}: {value!r} is not an email address, e.g. bob@example.com")
    try:
        domain = normalize_domain(domain)
    except InvalidAddress:
        raise ToolError(f"{field}: {value!r} has no valid domain") from None
    return Address(display_name=display.strip(), username=local, domain=domain)


def parse_addresses(values: Iterable[str], field: str) -> tuple[Address, ...]:
    return tuple(parse_address(value, field) for value in values)


def addresses_in(value: str) -> tuple[Address, ...]:
    """The addresses of an index field (decoded, comma-separated); unreadable ones left out."""
    found = []
    for display, addr in email.utils.getaddresses([value]) if value else []:
        try:
            address = parse_address(addr, "address")
        except ToolError:
            continue
        found.append(
            Address(display_name=display.strip(), username=address.username, domain=address.domain)
        )
    return tuple(found)


def one_line(text: str) -> str:
    """A header value from the model's words: line breaks become spaces."""
    return " ".join(text.split())


def reply_subject(subject: str) -> str:
    """C{Re: subject}, unless it already starts with a reply prefix."""
    subject = subject.strip()
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".rstrip()


def references_for(original: MessageSummary) -> str:
    """
    The References of a reply to C{original}: its References (or, lacking
    them, its In-Reply-To) and its Message-ID, trimmed to the first and
    latest ids when long, as RFC 5322 3.6.4 allows.
    """
    ids = (original.references or original.in_reply_to).split()
    if original.message_id:
        ids.append(original.message_id)
    ids = list(dict.fromkeys(ids))
    if len(ids) > _MAX_REFERENCES:
        ids = [ids[0], *ids[-(_MAX_REFERENCES - 1) :]]
    return " ".join(ids)


def quoted(original_text: str, original: MessageSummary, when: str) -> str:
    """The original's text as a reply quotes it, under an attribution line."""
    text = original_text.strip()
    if len(text) > MAX_QUOTE:
        text = text[:MAX_QUOTE].rstrip() + "\n[…]"
    lines = ["> " + line if line else ">" for line in text.splitlines()]
    return f"On {when}, {original.from_} wrote:\n" + "\n".join(lines)


def build(draft: Draft, hostname: str, when: datetime.datetime) -> bytes:
    """The message of C{draft}, with CRLF line ends, dated C{when} (aware, user's zone)."""
    utf8 = not all(a.username.isascii() for a in (draft.sender, *draft.to, *draft.cc, *draft.bcc))
    message = EmailMessage(policy=SMTPUTF8 if utf8 else SMTP)
    message["From"] = draft.sender
    if draft.to:
        message["To"] = draft.to
    if draft.cc:
        message["Cc"] = draft.cc
    if draft.bcc:
        # Kept for the Sent copy; the submission removes it from what is sent.
        message["Bcc"] = draft.bcc
    message["Subject"] = draft.subject
    message["Date"] = email.utils.format_datetime(when)
    message["Message-ID"] = new_message_id(hostname)
    if draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        message["References"] = draft.references
    body = draft.body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    plain = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    message.set_content(body, charset="utf-8", cte="7bit" if plain else "quoted-printable")
    return message.as_bytes()
