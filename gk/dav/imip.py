"""
iMIP (RFC 6047): iTIP messages carried by mail, for attendees and
organizers outside gk.

L{build_message} makes the mail gk sends: C{multipart/mixed} holding a
C{multipart/alternative} (a C{text/plain} description for people, the
C{text/calendar; method=...} part for calendar programs) and the same
iCalendar as an C{application/ics} attachment (C{invite.ics}), which is
what mail programs that do not read the alternative part offer to open.
Header fields are encoded by the standard library (RFC 2047); the body
is 7-bit (quoted-printable or base64), so the message needs neither
8BITMIME nor SMTPUTF8 on its way.

L{read_message} takes mail that arrived apart for L{gk.dav.scheduling}:
its iCalendar parts, the From address, and whether gk's own
Authentication-Results field says DMARC failed.  Pure: no I/O.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage, Message

from gk.dav.calrules import Value
from gk.dav.itip import SchedulingInfo

#: 7-bit transfer encodings, CRLF line ends.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
#: The content types that carry iCalendar in mail.
CALENDAR_TYPES = ("text/calendar", "application/ics")
#: At most this many iCalendar parts of one message are looked at.
MAX_PARTS = 4
#: How a PARTSTAT reads in a reply's subject.
_ANSWERS = {
    "ACCEPTED": "Accepted",
    "DECLINED": "Declined",
    "TENTATIVE": "Tentatively accepted",
    "DELEGATED": "Delegated",
    "NEEDS-ACTION": "Not yet answered",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _oneline(text: str, limit: int = 200) -> str:
    """C{text} made safe and short for a header field (no line breaks)."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_start(value: Value | None) -> str:
    """A start time for people: C{Mon 3 Jun 2024 12:00 (Europe/Berlin)}, a date without time."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        zone = value.tzinfo
        name = str(getattr(zone, "key", "") or (value.tzname() or "")) if zone else ""
        shown = f"{value:%a} {value.day} {value:%b %Y %H:%M}"
        return f"{shown} ({name})" if name else shown
    if isinstance(value, date):
        return f"{value:%a} {value.day} {value:%b %Y}"
    return str(value)


def subject_for(method: str, info: SchedulingInfo, partstat: str = "", update: bool = False) -> str:
    """
    C{Invitation: Lunch @ Mon 3 Jun 2024 12:00 (Europe/Berlin)}, or
    C{Updated invitation:}, C{Cancelled:}, C{Accepted:} (a REPLY's
    C{partstat}) ...
    """
    if method == "REPLY":
        word = _ANSWERS.get(partstat, partstat.capitalize() or "Reply")
    elif method == "CANCEL":
        word = "Cancelled"
    else:
        word = "Updated invitation" if update else "Invitation"
    summary = _oneline(info.summary) or "(no title)"
    start = describe_start(info.start)
    return f"{word}: {summary} @ {start}" if start else f"{word}: {summary}"


def text_for(method: str, info: SchedulingInfo, sender: str, partstat: str = "") -> str:
    """The plain-text part: what happened and the event's details."""
    who = _oneline(sender)
    summary = _oneline(info.summary) or "(no title)"
    if method == "REPLY":
        answer = _ANSWERS.get(partstat, partstat.lower()).lower()
        lines = [f"{who} has {answer} your invitation to:"]
    elif method == "CANCEL":
        lines = [f"{who} has cancelled:"]
    else:
        lines = [f"{who} has invited you to:"]
    lines += ["", f"  {summary}"]
    when = describe_start(info.start)
    if when:
        lines.append(f"  When: {when}")
    if info.location:
        lines.append(f"  Where: {_oneline(info.location, 500)}")
    organizer = info.organizer_name or info.organizer
    if organizer:
        lines.append(f"  Organizer: {_oneline(organizer)}")
    if method != "REPLY" and info.attendees:
        names = ", ".join(a.name or a.address for a in info.attendees.values())
        lines.append(f"  Attendees: {_oneline(names, 2000)}")
    if method != "REPLY" and info.description:
        lines += ["", info.description.strip()]
    lines += ["", "Your calendar program can add this to your calendar and answer it."]
    return "\n".join(lines) + "\n"


def build_message(
    *,
    method: str,
    calendar: bytes,
    sender: str,
    sender_name: str,
    recipients: list[str],
    subject: str,
    text: str,
    hostname: str,
    now: datetime,
) -> bytes:
    """
    The iMIP mail for one iTIP message (see the module docstring).

    @param calendar: the iTIP message, METHOD C{method}, UTF-8.
    @param sender: the From address (the organizer for a REQUEST or
        CANCEL, the attendee for a REPLY), already checked as the
        account's own.
    @param recipients: the To addresses.
    @param hostname: for the Message-ID.
    @raise ValueError: an address the mail library refuses.
    """
    message = EmailMessage(_POLICY)
    name = _oneline(sender_name)
    message["From"] = Address(name if name.lower() != sender else "", addr_spec=sender)
    message["To"] = ", ".join(recipients)
    message["Subject"] = _oneline(subject, 400)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = f"<{secrets.token_hex(16)}@{hostname}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: sent by the server
    message.set_content(text)
    message.add_alternative(calendar.decode("utf-8"), subtype="calendar", params={"method": method})
    message.add_attachment(calendar, maintype="application", subtype="ics", filename="invite.ics")
    return message.as_bytes()


@dataclass(frozen=True)
class ReceivedMail:
    """What scheduling needs of a delivered message."""

    #: The iCalendar parts, decoded to text (at most L{MAX_PARTS}).
    calendars: list[str]
    #: The one From address, lower-case; "" if there is not exactly one.
    sender: str
    #: gk's own Authentication-Results says dmarc=fail.
    dmarc_failed: bool


def might_carry_calendar(data: bytes) -> bool:
    """A cheap test before parsing: whether the bytes name an iCalendar content type."""
    lowered = data.lower()
    return any(kind.encode() in lowered for kind in CALENDAR_TYPES)


def read_message(data: bytes, authserv_id: str) -> ReceivedMail:
    """
    Take a delivered message apart (see L{ReceivedMail}).

    @param authserv_id: the host name gk's MX writes in its
        Authentication-Results field (the MX removes fields that claim it
        on arrival, so the one found is gk's own verdict).
    """
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    calendars: list[str] = []
    for part in parsed.walk():
        if part.get_content_type() not in CALENDAR_TYPES or part.is_multipart():
            continue
        text = _text_of(part)
        if text:
            calendars.append(text)
        if len(calendars) >= MAX_PARTS:
            break
    return ReceivedMail(calendars, _sender(parsed), _dmarc_failed(parsed, authserv_id))


def _text_of(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding
        return ""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", "replace")


def _sender(message: Message) -> str:
    values = [str(v) for v in message.get_all("From", [])]
    found = email.utils.getaddresses(values)
    if len(found) != 1 or "@" not in found[0][1]:
        return ""
    return found[0][1].strip().lower()


_AUTHSERV = re.compile(r'\s*(?:\((?:[^()\\]|\\.)*\)\s*)*("(?:[^"\\]|\\.)*"|[^\s;()]+)')


def _dmarc_failed(message: Message, authserv_id: str) -> bool:
    for value in message.get_all("Authentication-Results", []):
        text = " ".join(str(value).split())
        match = _AUTHSERV.match(text)
        if match is None or match.group(1).strip('"').lower() != authserv_id.lower():
            continue
        if re.search(r"(?:^|[;\s])dmarc\s*=\s*fail\b", text, re.IGNORECASE):
            return True
    return False


__all__ = [
    "CALENDAR_TYPES",
    "ReceivedMail",
    "build_message",
    "describe_start",
    "might_carry_calendar",
    "read_message",
    "subject_for",
    "text_for",
]
