"""
Test material for the mail checks: DKIM keys made in the test, messages,
and signing with dkimpy.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

import dkim  # type: ignore[import-untyped]
import nacl.signing
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.dnsserver import DNSTestServer


@dataclass(frozen=True)
class DKIMKey:
    """A signing key and the TXT record that publishes it."""

    algorithm: bytes  # dkimpy's signature_algorithm
    private: bytes  # what dkim.sign takes
    record: str  # the TXT record at <selector>._domainkey.<domain>

    def publish(self, dns_server: DNSTestServer, selector: str, domain: str) -> None:
        dns_server.txt(f"{selector}._domainkey.{domain}", self.record)


def rsa_key(bits: int = 2048, algorithm: bytes = b"rsa-sha256") -> DKIMKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return DKIMKey(algorithm, private, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())


def ed25519_key() -> DKIMKey:
    key = nacl.signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))
    public = base64.b64encode(bytes(key.verify_key)).decode()
    return DKIMKey(b"ed25519-sha256", private, f"v=DKIM1; k=ed25519; p={public}")


def make_message(
    from_: str = "Alice <alice@example.org>",
    to: str = "bob@example.test",
    subject: str = "Lunch",
    body: str = "Shall we meet at noon?\r\nAlice\r\n",
    extra_headers: str = "",
) -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    headers = (
        f"From: {from_}\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='example.org')}\r\n"
        f"{extra_headers}"
    )
    return (headers + "\r\n" + body).encode()


def sign(
    message: bytes,
    key: DKIMKey,
    domain: str = "example.org",
    selector: str = "sel",
    canonicalize: tuple[bytes, bytes] = (b"relaxed", b"simple"),
) -> bytes:
    """C{message} with a DKIM-Signature of C{key} added on top."""
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key.private,
        signature_algorithm=key.algorithm,
        canonicalize=canonicalize,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    assert isinstance(signature, bytes)
    return signature + message
