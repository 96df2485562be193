"""
Delivery status notifications (RFC 3464): the message that tells a sender
that mail could not be delivered (action "failed") or is still being
retried (action "delayed").

The report is a multipart/report (RFC 6522) with a human-readable part, a
message/delivery-status part with one block per recipient, and the
original message's header (text/rfc822-headers: enough to recognise it,
without sending a possibly large body back).  It comes from the null
sender with Auto-Submitted: auto-replied (RFC 3834), so that no
autoresponder answers it and no bounce is ever sent about it.
"""

from __future__ import annotations

import datetime
import email.utils
import secrets
from dataclasses import dataclass

#: The longest original header returned in a report.
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's line in a report."""

    address: str
    #: "failed" or "delayed".
    action: str
    #: RFC 3463 status, e.g. "5.1.1".
    status: str
    #: What the remote server (or gk) said, e.g. "550 5.1.1 no such user".
    diagnostic: str
    #: The host that answered, if one did.
    remote_mta: str = ""


def original_header(message: bytes) -> bytes:
    """The header section of C{message} (up to the blank line), bounded."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = message.find(separator)
        if end != -1:
            header = message[: end + len(separator) // 2]
            break
    else:
        header = message
    return header[:MAX_HEADER_BYTES]


def build_report(
    *,
    hostname: str,
    recipient_of_report: str,
    queue_id: str,
    arrival: datetime.datetime,
    reports: list[RecipientReport],
    original: bytes,
    now: datetime.datetime | None = None,
    retry_until: datetime.datetime | None = None,
) -> bytes:
    """
    The whole report message (CRLF line ends, 7-bit), addressed to
    C{recipient_of_report}.  All C{reports} have the same action.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    delayed = all(r.action == "delayed" for r in reports)
    boundary = f"=_gk_{secrets.token_hex(12)}"
    subject = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    human = _human_text(hostname, queue_id, reports, delayed, retry_until)
    status = _delivery_status(hostname, queue_id, arrival, reports, retry_until)
    header = original_header(original)
    # Only 7-bit goes into a 7-bit report: 8-bit header bytes become "?".
    header = bytes(b if b < 0x80 else 0x3F for b in header)
    if not header.endswith(b"\n"):
        header += b"\r\n"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{recipient_of_report}>",
        f"Subject: {subject}",
        f"Date: {email.utils.format_datetime(now)}",
        f"Message-ID: <{queue_id}.{secrets.token_hex(6)}.dsn@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a delivery status notification in MIME format.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Description: Notification",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "Content-Description: Delivery report",
        "",
        *status,
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        f"Content-Description: {'Delayed' if delayed else 'Undelivered'} message headers",
        "",
    ]
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + _crlf(header) + tail


def _human_text(
    hostname: str,
    queue_id: str,
    reports: list[RecipientReport],
    delayed: bool,
    retry_until: datetime.datetime | None,
) -> list[str]:
    if delayed:
        intro = [
            f"This is the mail system at {hostname}.",
            "",
            "Your message could not be delivered yet to the recipients below.",
            "It is still being retried; you need not send it again.",
        ]
        if retry_until is not None:
            intro.append(
                "It will be returned if it cannot be delivered by "
                f"{email.utils.format_datetime(retry_until)}."
            )
    else:
        intro = [
            f"This is the mail system at {hostname}.",
            "",
            "Your message could not be delivered to the recipients below;",
            "the mail system gave up. What the receiving side said follows.",
        ]
    body = [*intro, "", f"Queue id: {queue_id}", ""]
    for report in reports:
        body.append(f"<{_ascii(report.address)}>: {_ascii(report.diagnostic)}")
    return body


def _delivery_status(
    hostname: str,
    queue_id: str,
    arrival: datetime.datetime,
    reports: list[RecipientReport],
    retry_until: datetime.datetime | None,
) -> list[str]:
    lines = [
        f"Reporting-MTA: dns; {hostname}",
        f"X-Gk-Queue-ID: {queue_id}",
        f"Arrival-Date: {email.utils.format_datetime(arrival)}",
    ]
    for report in reports:
        lines.append("")
        lines.append(f"Final-Recipient: rfc822; {_ascii(report.address)}")
        lines.append(f"Action: {report.action}")
        lines.append(f"Status: {report.status}")
        if report.remote_mta:
            lines.append(f"Remote-MTA: dns; {_ascii(report.remote_mta)}")
        kind = "smtp" if report.diagnostic[:3].isdigit() else "x-gk"
        lines.append(f"Diagnostic-Code: {kind}; {_ascii(report.diagnostic)}")
        if report.action == "delayed" and retry_until is not None:
            lines.append(f"Will-Retry-Until: {email.utils.format_datetime(retry_until)}")
    return lines


def _ascii(text: str) -> str:
    """One line of printable ASCII (a report field must not break the format)."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")[:900]


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
