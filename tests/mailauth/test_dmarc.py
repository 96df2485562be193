"""
DMARC (RFC 7489): record parsing, the organizational domain, alignment,
and whole-message evaluation against real records and real signatures.
"""

from __future__ import annotations

import random

import pytest
import pytest_twisted

from gk.mailauth import AuthResults, MailAuthenticator
from gk.mailauth.dmarc import (
    InvalidRecord,
    Record,
    aligned,
    from_domains,
    organizational_domain,
    parse_record,
)
from tests.dnsserver import DNSTestServer
from tests.mailauth.conftest import AuthenticatorFactory
from tests.mailauth.helpers import DKIMKey, make_message, sign

GOOD_IP = "192.0.2.7"
BAD_IP = "198.51.100.9"


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


# -- pure parts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("example.org", "example.org"),
        ("a.b.example.org", "example.org"),
        ("mail.example.co.uk", "example.co.uk"),
        ("mail.example.test", "example.test"),
        ("shop.herokuapp.com", "shop.herokuapp.com"),
        ("herokuapp.com", None),
        ("co.uk", None),
        ("A.B.Example.ORG.", "example.org"),
    ],
)
def test_organizational_domain(domain: str, org: str | None) -> None:
    assert organizational_domain(domain) == org


def test_alignment() -> None:
    assert aligned("example.org", "example.org", strict=True)
    assert aligned("bounce.example.org", "example.org", strict=False)
    assert aligned("example.org", "news.example.org", strict=False)
    assert aligned("a.example.org", "b.example.org", strict=False)
    assert not aligned("bounce.example.org", "example.org", strict=True)
    assert not aligned("example.net", "example.org", strict=False)
    assert not aligned("notexample.org", "example.org", strict=False)
    # A public suffix is nobody's organizational domain: an SPF pass or a
    # signature for herokuapp.com must not stand for every customer under it.
    assert not aligned("herokuapp.com", "victim.herokuapp.com", strict=False)
    assert not aligned("other.herokuapp.com", "victim.herokuapp.com", strict=False)
    assert not aligned("", "example.org", strict=False)


def test_record_defaults_and_tags() -> None:
    assert parse_record("v=DMARC1; p=reject") == Record("reject")
    assert parse_record(
        "v=DMARC1;p=Quarantine;sp=none;adkim=s;aspf=s;pct=25;rua=mailto:d@example.org;"
    ) == Record("quarantine", "none", adkim_strict=True, aspf_strict=True, pct=25)
    assert parse_record("v = DMARC1 ; p = none ; fo=1; unknown=x") == Record("none")


def test_invalid_optional_tags_fall_back_to_defaults() -> None:
    record = parse_record("v=DMARC1; p=reject; adkim=x; aspf=; pct=150")
    assert record == Record("reject", adkim_strict=False, aspf_strict=False, pct=100)
    assert parse_record("v=DMARC1; p=reject; pct=-3").pct == 100


def test_record_without_valid_policy() -> None:
    # RFC 7489 6.6.3: with a report address, act as p=none; else no DMARC.
    assert parse_record("v=DMARC1; rua=mailto:d@example.org") == Record("none")
    assert parse_record("v=DMARC1; p=block; rua=mailto:d@example.org") == Record("none")
    for text in ("v=DMARC1; p=block", "v=DMARC1", "v=DMARC1; p=reject; sp=maybe"):
        with pytest.raises(InvalidRecord):
            parse_record(text)
    for text in ("v=dmarc1; p=reject", "p=reject; v=DMARC1", "v=DMARC10; p=reject"):
        with pytest.raises(InvalidRecord):
            parse_record(text)


def test_from_domains() -> None:
    assert from_domains(make_message(from_="Alice <Alice@Example.ORG>")) == ["example.org"]
    two = make_message(from_="a@example.org, b@example.net, c@EXAMPLE.org")
    assert from_domains(two) == ["example.org", "example.net"]
    assert from_domains(b"To: bob@example.test\r\n\r\nbody\r\n") is None
    assert from_domains(b"From: undisclosed:;\r\n\r\nbody\r\n") == []
    utf8 = "From: Jörg <jörg@bücher.example>\r\n\r\nbody\r\n".encode()
    assert from_domains(utf8) == ["xn--bcher-kva.example"]


# -- whole messages ----------------------------------------------------------


async def check(
    authenticator: MailAuthenticator,
    message: bytes,
    ip: str = GOOD_IP,
    mail_from: str = "bounce@example.org",
) -> AuthResults:
    return await authenticator.check_message(ip, "mx.example.org", mail_from, message)


def publish_spf(dns_server: DNSTestServer, domain: str = "example.org") -> None:
    dns_server.txt(domain, f"v=spf1 ip4:{GOOD_IP} -all")


@pytest.mark.parametrize(
    ("policy", "disposition"),
    [("none", "accept"), ("quarantine", "quarantine"), ("reject", "reject")],
)
@pytest_twisted.ensureDeferred
async def test_failing_message_takes_the_policy(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, policy: str, disposition: str
) -> None:
    dns_server.txt("_dmarc.example.org", f"v=DMARC1; p={policy}")
    publish_spf(dns_server)
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert results.spf.result == "fail"
    assert (results.dmarc.result, results.dmarc.policy) == ("fail", policy)
    assert results.disposition == disposition


@pytest_twisted.ensureDeferred
async def test_spf_aligned_pass(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    publish_spf(dns_server)
    results = await check(authenticator, make_message())
    assert (results.dmarc.result, results.dmarc.spf_aligned, results.dmarc.dkim_aligned) == (
        "pass",
        True,
        False,
    )
    assert results.disposition == "accept"


@pytest_twisted.ensureDeferred
async def test_dkim_aligned_pass_despite_spf_fail(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    publish_spf(dns_server)
    ed25519.publish(dns_server, "sel", "example.org")
    results = await check(authenticator, sign(make_message(), ed25519), ip=BAD_IP)
    assert results.spf.result == "fail"
    assert (results.dmarc.result, results.dmarc.dkim_aligned) == ("pass", True)
    assert results.disposition == "accept"


@pytest_twisted.ensureDeferred
async def test_passing_but_unaligned_identifiers_fail(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    publish_spf(dns_server, "example.net")
    ed25519.publish(dns_server, "sel", "example.net")
    message = sign(make_message(), ed25519, domain="example.net")
    results = await check(authenticator, message, mail_from="bounce@example.net")
    assert results.spf.result == "pass"
    assert results.dkim[0].result == "pass"
    assert results.dmarc.result == "fail"
    assert results.disposition == "reject"


@pytest_twisted.ensureDeferred
async def test_spf_subdomain_aligns_relaxed_not_strict(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    publish_spf(dns_server, "bounces.example.org")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    results = await check(authenticator, make_message(), mail_from="b@bounces.example.org")
    assert results.dmarc.result == "pass"
    dns_server.remove("_dmarc.example.org")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject; aspf=s")
    results = await check(authenticator, make_message(), mail_from="b@bounces.example.org")
    assert (results.dmarc.result, results.disposition) == ("fail", "reject")


@pytest_twisted.ensureDeferred
async def test_dkim_subdomain_aligns_relaxed_not_strict(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, rsa_2048: DKIMKey
) -> None:
    rsa_2048.publish(dns_server, "sel", "mail.example.org")
    message = sign(make_message(), rsa_2048, domain="mail.example.org")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=quarantine")
    results = await check(authenticator, message, ip=BAD_IP)
    assert (results.dmarc.result, results.dmarc.dkim_aligned) == ("pass", True)
    dns_server.remove("_dmarc.example.org")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=quarantine; adkim=s")
    results = await check(authenticator, message, ip=BAD_IP)
    assert (results.dmarc.result, results.disposition) == ("fail", "quarantine")


@pytest_twisted.ensureDeferred
async def test_no_record_is_none(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("_dmarc.example.org", "some other text")
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert (results.dmarc.result, results.dmarc.policy, results.disposition) == (
        "none",
        None,
        "accept",
    )


@pytest_twisted.ensureDeferred
async def test_organizational_domain_record_and_subdomain_policy(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject; sp=quarantine")
    message = make_message(from_="alerts@a.b.example.org")
    results = await check(authenticator, message, ip=BAD_IP)
    assert results.dmarc.record_domain == "example.org"
    assert (results.dmarc.result, results.disposition) == ("fail", "quarantine")
    # RFC 7489 6.6.3: the From domain, then straight to the organizational domain.
    assert dns_server.asked("_dmarc.a.b.example.org") == 1
    assert dns_server.asked("_dmarc.b.example.org") == 0
    assert dns_server.asked("_dmarc.example.org") == 1


@pytest_twisted.ensureDeferred
async def test_subdomain_inherits_p_without_sp_and_its_own_record_wins(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    results = await check(authenticator, make_message(from_="x@news.example.org"), ip=BAD_IP)
    assert results.disposition == "reject"
    dns_server.txt("_dmarc.news.example.org", "v=DMARC1; p=none; sp=reject")
    results = await check(authenticator, make_message(from_="x@news.example.org"), ip=BAD_IP)
    assert (results.dmarc.record_domain, results.disposition) == ("news.example.org", "accept")


@pytest.mark.parametrize(
    ("draw", "sampled_out", "disposition"),
    [(0.2, False, "reject"), (0.7, True, "quarantine")],
)
@pytest_twisted.ensureDeferred
async def test_pct_sampling_weakens_the_policy_one_step(
    dns_server: DNSTestServer,
    make_authenticator: AuthenticatorFactory,
    draw: float,
    sampled_out: bool,
    disposition: str,
) -> None:
    authenticator = make_authenticator([dns_server.address], rng=FixedRandom(draw))
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject; pct=50")
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert (results.dmarc.pct, results.dmarc.sampled_out) == (50, sampled_out)
    assert results.disposition == disposition


@pytest_twisted.ensureDeferred
async def test_pct_zero_quarantine_becomes_none(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=quarantine; pct=0")
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert (results.dmarc.result, results.disposition) == ("fail", "accept")


@pytest_twisted.ensureDeferred
async def test_record_lookup_failure_is_temperror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.fail("_dmarc.example.org")
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert (results.dmarc.result, results.disposition) == ("temperror", "accept")


@pytest_twisted.ensureDeferred
async def test_aligned_dkim_temperror_is_temperror_not_fail(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, ed25519: DKIMKey
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    dns_server.fail("sel._domainkey.example.org")
    results = await check(authenticator, sign(make_message(), ed25519), ip=BAD_IP)
    assert results.dkim[0].result == "temperror"
    assert (results.dmarc.result, results.disposition) == ("temperror", "accept")


@pytest_twisted.ensureDeferred
async def test_invalid_and_duplicate_records(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=bogus")
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert (results.dmarc.result, results.disposition) == ("permerror", "accept")
    dns_server.remove("_dmarc.example.org")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject", "v=DMARC1; p=none")
    results = await check(authenticator, make_message(), ip=BAD_IP)
    assert (results.dmarc.result, results.disposition) == ("none", "accept")


@pytest_twisted.ensureDeferred
async def test_every_from_domain_is_checked_and_the_strictest_wins(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    publish_spf(dns_server, "example.net")
    dns_server.txt("_dmarc.example.net", "v=DMARC1; p=reject")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    message = make_message(from_="me@example.net, ceo@example.org")
    results = await check(authenticator, message, mail_from="me@example.net")
    assert [(r.from_domain, r.result) for r in results.dmarc_results] == [
        ("example.net", "pass"),
        ("example.org", "fail"),
    ]
    assert results.dmarc.from_domain == "example.org"
    assert results.disposition == "reject"


@pytest_twisted.ensureDeferred
async def test_missing_or_crowded_from(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    results = await check(authenticator, b"To: bob@example.test\r\n\r\nhello\r\n")
    assert (results.dmarc.result, results.disposition) == ("permerror", "accept")
    crowded = ", ".join(f"x@d{n}.example" for n in range(6))
    results = await check(authenticator, make_message(from_=crowded))
    assert (results.dmarc.result, results.disposition) == ("permerror", "quarantine")
