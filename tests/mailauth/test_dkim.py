"""
DKIM verification with messages really signed in the test (dkimpy, keys
made here, public keys published in the loopback DNS).
"""

from __future__ import annotations

import pytest_twisted

from gk.mailauth import DKIMResult, MailAuthenticator
from tests.dnsserver import DNSTestServer
from tests.mailauth.helpers import DKIMKey, make_message, rsa_key, sign

IP = "192.0.2.7"


async def dkim(authenticator: MailAuthenticator, message: bytes) -> tuple[DKIMResult, ...]:
    results = await authenticator.check_message(IP, "mx.example.org", "alice@example.org", message)
    return results.dkim


@pytest_twisted.ensureDeferred
async def test_rsa_sha256_passes(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, rsa_2048: DKIMKey
) -> None:
    rsa_2048.publish(dns_server, "sel", "example.org")
    message = sign(make_message(), rsa_2048)
    (result,) = await dkim(authenticator, message)
    assert (result.result, result.domain, result.selector, result.algorithm) == (
        "pass",
        "example.org",
        "sel",
        "rsa-sha256",
    )
    assert result.reason == ""
    assert len(result.signature) > 300  # the whole b= of a 2048-bit signature
    assert dns_server.asked("sel._domainkey.example.org", "TXT") == 1


@pytest_twisted.ensureDeferred
async def test_ed25519_passes(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    ed25519.publish(dns_server, "ed", "example.org")
    message = sign(make_message(), ed25519, selector="ed")
    (result,) = await dkim(authenticator, message)
    assert (result.result, result.algorithm) == ("pass", "ed25519-sha256")


@pytest_twisted.ensureDeferred
async def test_dual_signed_message_reports_each_signature_in_order(
    authenticator: MailAuthenticator,
    dns_server: DNSTestServer,
    rsa_2048: DKIMKey,
    ed25519: DKIMKey,
) -> None:
    rsa_2048.publish(dns_server, "rsa", "example.org")
    ed25519.publish(dns_server, "ed", "example.org")
    message = sign(sign(make_message(), rsa_2048, selector="rsa"), ed25519, selector="ed")
    results = await dkim(authenticator, message)
    assert [(r.result, r.selector) for r in results] == [("pass", "ed"), ("pass", "rsa")]


@pytest_twisted.ensureDeferred
async def test_relaxed_canonicalization_survives_refolding(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    ed25519.publish(dns_server, "sel", "example.org")
    message = sign(make_message(), ed25519, canonicalize=(b"relaxed", b"relaxed"))
    refolded = message.replace(b"Subject: Lunch", b"Subject:   Lunch  ").replace(
        b"at noon?", b"at  noon?   "
    )
    assert refolded != message
    (result,) = await dkim(authenticator, refolded)
    assert result.result == "pass"


@pytest_twisted.ensureDeferred
async def test_tampered_body_fails(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, rsa_2048: DKIMKey
) -> None:
    rsa_2048.publish(dns_server, "sel", "example.org")
    message = sign(make_message(), rsa_2048).replace(b"at noon", b"at one")
    (result,) = await dkim(authenticator, message)
    assert (result.result, result.reason) == ("fail", "body hash did not verify")


@pytest_twisted.ensureDeferred
async def test_tampered_signed_header_fails(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    ed25519.publish(dns_server, "sel", "example.org")
    message = sign(make_message(), ed25519).replace(b"Subject: Lunch", b"Subject: Invoice")
    (result,) = await dkim(authenticator, message)
    assert (result.result, result.reason) == ("fail", "signature did not verify")


@pytest_twisted.ensureDeferred
async def test_signature_by_another_key_fails(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, rsa_2048: DKIMKey
) -> None:
    rsa_2048.publish(dns_server, "sel", "example.org")
    message = sign(make_message(), rsa_key(1024))
    (result,) = await dkim(authenticator, message)
    assert result.result == "fail"


@pytest_twisted.ensureDeferred
async def test_missing_key_is_permerror(authenticator: MailAuthenticator, ed25519: DKIMKey) -> None:
    (result,) = await dkim(authenticator, sign(make_message(), ed25519))
    assert (result.result, result.reason) == ("permerror", "no key for signature")


@pytest_twisted.ensureDeferred
async def test_revoked_key_is_permerror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    dns_server.txt("sel._domainkey.example.org", "v=DKIM1; k=ed25519; p=")
    (result,) = await dkim(authenticator, sign(make_message(), ed25519))
    assert result.result == "permerror"


@pytest_twisted.ensureDeferred
async def test_key_lookup_failure_is_temperror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    dns_server.fail("sel._domainkey.example.org")
    (result,) = await dkim(authenticator, sign(make_message(), ed25519))
    assert (result.result, result.reason) == ("temperror", "key lookup failed")


@pytest_twisted.ensureDeferred
async def test_rsa_sha1_is_refused(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, rsa_2048: DKIMKey
) -> None:
    rsa_2048.publish(dns_server, "sel", "example.org")
    sha1 = DKIMKey(b"rsa-sha1", rsa_2048.private, rsa_2048.record)
    (result,) = await dkim(authenticator, sign(make_message(), sha1))
    assert (result.result, result.algorithm) == ("permerror", "rsa-sha1")
    assert dns_server.asked("sel._domainkey.example.org") == 0


@pytest_twisted.ensureDeferred
async def test_malformed_signature_is_permerror(authenticator: MailAuthenticator) -> None:
    message = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org\r\n" + make_message()
    (result,) = await dkim(authenticator, message)
    assert (result.result, result.domain) == ("permerror", "example.org")


@pytest_twisted.ensureDeferred
async def test_unsigned_message_has_no_dkim_result(authenticator: MailAuthenticator) -> None:
    results = await authenticator.check_message(
        IP, "mx.example.org", "alice@example.org", make_message()
    )
    assert results.dkim == ()
    assert "dkim=none" in results.header()
