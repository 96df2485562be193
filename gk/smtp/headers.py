"""
Header lines gk adds to messages it accepts: trace headers (Received,
Return-Path), and Message-ID/Date for submissions that lack them.

Headers are only ever prepended (or, for Message-ID/Date, appended to the
header block); the client's bytes are never rewritten.
"""

from __future__ import annotations

import datetime
import email.utils
import secrets

from gk.smtp.backend import Connection, Transaction
from gk.smtp.parser import Address
from gk.storage.envelope import header_block


def _date(when: datetime.datetime) -> str:
    return email.utils.format_datetime(when.astimezone(datetime.UTC))


def received_header(
    hostname: str,
    connection: Connection,
    transaction: Transaction,
    queue_id: str,
    recipient: Address | None = None,
) -> bytes:
    """
    An RFC 5321 4.4 Received line: who connected (HELO, IP), how (ESMTP
    with S/A/UTF8 suffixes per RFC 3848/6531, the TLS cipher), and for whom
    when there is a single recipient.
    """
    protocol = "ESMTP" if connection.esmtp else "SMTP"
    if transaction.smtputf8:
        protocol = "UTF8SMTP"  # RFC 6531 3.7.3
    if connection.tls:
        protocol += "S"
    if connection.account is not None:
        protocol += "A"
    ip = connection.client_ip
    literal = f"IPv6:{ip}" if ":" in ip else ip
    parts = [
        f"Received: from {connection.helo or 'unknown'} ([{literal}])",
        f"\tby {hostname} (gk) with {protocol} id {queue_id}",
    ]
    if connection.tls:
        parts.append(f"\t(using {connection.tls})")
    if recipient is not None:
        parts.append(f"\tfor <{recipient}>")
    parts[-1] += f"; {_date(transaction.received)}"
    return ("\r\n".join(parts) + "\r\n").encode("utf-8")


def return_path(sender: Address | None) -> bytes:
    path = "" if sender is None else str(sender)
    return f"Return-Path: <{path}>\r\n".encode()


def new_message_id(hostname: str) -> str:
    return f"<{secrets.token_hex(12)}@{hostname}>"


def has_header(message: bytes, name: bytes) -> bool:
    """Whether the header block has a field called C{name} (case-insensitive)."""
    wanted = name.lower() + b":"
    for line in header_block(message).splitlines():
        if line[:1] in (b" ", b"\t"):
            continue
        if line.lower().replace(b" ", b"").startswith(wanted):
            return True
    return False


def complete_submission(message: bytes, hostname: str, when: datetime.datetime) -> bytes:
    """
    Add Message-ID and Date when the client left them out (RFC 6409 8.2,
    8.3); prepended, as Postfix does, so the original bytes stay intact.
    """
    added = b""
    if not has_header(message, b"Message-ID"):
        added += f"Message-ID: {new_message_id(hostname)}\r\n".encode()
    if not has_header(message, b"Date"):
        added += f"Date: {_date(when)}\r\n".encode()
    return added + message
