"""
gk's own DKIM signature maker: the canonical forms of RFC 6376's example,
over-signing, and signatures that dkimpy (an independent implementation)
accepts, RSA and Ed25519, whatever the message's line ends.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from gk.delivery.dkim_core import relaxed_body, relaxed_header, select_fields, sign, split_message

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@remote.test\r\n"
    b"Subject:  a   folded\r\n"
    b"\t subject line \r\n"
    b"\r\n"
    b"Hello  Bob, \r\n"
    b"\r\n"
    b"\r\n"
)


def test_the_canonical_forms_of_rfc_6376s_example() -> None:
    # RFC 6376 3.4.5.
    fields, body = split_message(b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n")
    assert [relaxed_header(f) for f in fields] == [b"a:X\r\n", b"b:Y Z\r\n"]
    assert relaxed_body(body) == b" C\r\nD E\r\n"
    assert relaxed_body(b"") == b""
    assert relaxed_body(b"\r\n\r\n") == b""
    assert relaxed_body(b"no final line end") == b"no final line end\r\n"


def test_fields_are_taken_from_the_bottom_and_missing_ones_sign_nothing() -> None:
    fields = [b"Received: 1", b"Subject: s", b"Received: 2"]
    assert select_fields(fields, [b"received", b"received", b"received", b"from"]) == [
        b"Received: 2",
        b"Received: 1",
    ]


def dns_for(domain: str, selector: str, record: bytes) -> Callable[..., bytes | None]:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{selector}._domainkey.{domain}.".encode() else None

    return lookup


def test_an_rsa_signature_verifies_with_dkimpy_and_breaks_when_the_body_changes() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    names = [b"from", b"to", b"subject", b"from"]
    header = sign(MESSAGE, domain="example.test", selector="gk", key=key, names=names)
    assert header.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert all(len(line) <= 998 for line in header.split(b"\r\n"))
    lookup = dns_for("example.test", "gk", record)
    assert dkim.verify(header + MESSAGE, dnsfunc=lookup)
    assert not dkim.verify(header + MESSAGE.replace(b"Bob", b"Eve"), dnsfunc=lookup)
    # Over-signed From: a second From added on the way breaks it.
    assert not dkim.verify(header + b"From: eve@evil.test\r\n" + MESSAGE, dnsfunc=lookup)


def test_an_ed25519_signature_of_a_message_with_bare_newlines_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    lf_message = MESSAGE.replace(b"\r\n", b"\n")
    header = sign(
        lf_message, domain="example.test", selector="ed", key=key, names=[b"from"], linesep=b"\n"
    )
    assert header.endswith(b"\n") and b"\r" not in header
    # What arrives over SMTP has CRLF line ends: that is what is checked.
    wire = (header + lf_message).replace(b"\n", b"\r\n")
    assert dkim.verify(wire, dnsfunc=dns_for("example.test", "ed", record))


def relaxed_body_by_lines(body: bytes) -> bytes:
    """RFC 6376 3.4.4 written out line by line: the reference for the fast version."""
    lines = [b" ".join(line.replace(b"\t", b" ").split(b" ")) for line in body.split(b"\r\n")]
    lines = [re.sub(rb" +", b" ", line).rstrip(b" ") for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


@given(st.lists(st.sampled_from([b"a", b" ", b"\t", b"\r\n", b".", b"x y"]), max_size=40))
def test_the_fast_body_canonicalisation_matches_the_line_by_line_one(parts: list[bytes]) -> None:
    body = b"".join(parts)
    assert relaxed_body(body) == relaxed_body_by_lines(body)
