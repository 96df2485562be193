"""
Delivery status notifications: what a sender finds in the INBOX when mail
could not be delivered, or is late, read back with the email package as a
mail client would.
"""

from __future__ import annotations

import datetime
import email
import email.policy
from email.message import EmailMessage

from gk.delivery.dsn import RecipientReport, build_report, original_header

ARRIVAL = datetime.datetime(2026, 11, 20, 9, 30, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
ORIGINAL = (
    b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\n"
    b"Subject: Quarterly figures\r\nMessage-ID: <q3@example.test>\r\n\r\n"
    + b"A large body that is not sent back.\r\n"
    * 1000
)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_bounce_is_a_multipart_report_with_status_per_recipient_and_the_header() -> None:
    data = build_report(
        hostname="mail.example.test",
        recipient_of_report="alice@example.test",
        queue_id="ABC123",
        arrival=ARRIVAL,
        reports=[
            RecipientReport(
                "bob@remote.test", "failed", "5.1.1", "550 5.1.1 no such user", "mx1.remote.test"
            ),
            RecipientReport(
                "carol@remote.test", "failed", "5.7.1", "554 5.7.1 rejected\nby policy"
            ),
        ],
        original=ORIGINAL,
        now=NOW,
    )
    assert data.isascii() and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    report = parse(data)
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.test>"
    assert report["To"] == "alice@example.test"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, headers = report.iter_parts()
    assert human.get_content_type() == "text/plain"
    text = human.get_content()
    assert "<bob@remote.test>: 550 5.1.1 no such user" in text
    assert "<carol@remote.test>: 554 5.7.1 rejected by policy" in text

    assert status.get_content_type() == "message/delivery-status"
    blocks = [str(block) for block in status.get_payload()]
    assert "Reporting-MTA: dns; mail.example.test" in blocks[0]
    assert "Final-Recipient: rfc822; bob@remote.test" in blocks[1]
    assert "Action: failed" in blocks[1] and "Status: 5.1.1" in blocks[1]
    assert "Remote-MTA: dns; mx1.remote.test" in blocks[1]
    assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in blocks[1]
    assert "Final-Recipient: rfc822; carol@remote.test" in blocks[2]

    assert headers.get_content_type() == "text/rfc822-headers"
    returned = headers.get_payload(decode=True)
    assert b"Subject: Quarterly figures" in returned
    assert b"A large body" not in returned


def test_a_delay_warning_says_the_mail_is_still_being_retried_and_until_when() -> None:
    until = ARRIVAL + datetime.timedelta(days=5)
    data = build_report(
        hostname="mail.example.test",
        recipient_of_report="alice@example.test",
        queue_id="ABC123",
        arrival=ARRIVAL,
        reports=[RecipientReport("bob@remote.test", "delayed", "4.4.1", "connection refused")],
        original=ORIGINAL,
        now=NOW,
        retry_until=until,
    )
    report = parse(data)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    human, status, _headers = report.iter_parts()
    assert "you need not send it again" in human.get_content()
    payload = status.get_payload()
    assert isinstance(payload, list)
    recipient_block = str(payload[1])
    assert "Action: delayed" in recipient_block
    assert "Diagnostic-Code: x-gk; connection refused" in recipient_block
    assert "Will-Retry-Until: Wed, 25 Nov 2026 09:30:00 +0000" in recipient_block


def test_the_returned_header_stops_at_the_blank_line_and_is_7bit() -> None:
    assert original_header(b"A: 1\nB: 2\n\nbody") == b"A: 1\nB: 2\n"
    assert original_header(b"no body at all") == b"no body at all"
    data = build_report(
        hostname="h.example",
        recipient_of_report="a@h.example",
        queue_id="Q",
        arrival=ARRIVAL,
        reports=[RecipientReport("b@r.test", "failed", "5.0.0", "550 nope")],
        original="Subject: Grüße\r\n\r\nx".encode(),
        now=NOW,
    )
    assert data.isascii()
    assert b"Subject: Gr????e" in data  # each 8-bit byte of the UTF-8
