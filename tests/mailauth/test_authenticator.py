"""
MailAuthenticator as the SMTP server uses it: whole messages end to end,
and the time budget: a dead resolver gives temperror within the budget,
while the reactor goes on serving other work.
"""

from __future__ import annotations

import time
from typing import cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads

from gk.config import DNSConfig
from gk.mailauth import MailAuthenticator, SPFResult
from tests.dnsserver import DNSTestServer
from tests.mailauth.conftest import HOSTNAME, AuthenticatorFactory
from tests.mailauth.helpers import DKIMKey, make_message, sign

IP = "192.0.2.7"


@pytest_twisted.ensureDeferred
async def test_signed_aligned_message_end_to_end(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, rsa_2048: DKIMKey
) -> None:
    dns_server.txt("example.org", f"v=spf1 ip4:{IP} -all")
    dns_server.txt("_dmarc.example.org", "v=DMARC1; p=reject; rua=mailto:d@example.org")
    rsa_2048.publish(dns_server, "sel", "example.org")
    message = sign(make_message(), rsa_2048)
    spf = await authenticator.check_sender(IP, "mx.example.org", "alice@example.org")
    asked = len(dns_server.queries)
    results = await authenticator.check_message(
        IP, "mx.example.org", "alice@example.org", message, spf=spf
    )
    assert dns_server.asked("example.org", "TXT") == 1  # SPF was not done twice
    assert len(dns_server.queries) == asked + 2  # _dmarc and the key
    assert results.disposition == "accept"
    b = results.dkim[0].signature[:12]
    b = f'"{b}"' if "/" in b else b
    assert results.header() == (
        f"Authentication-Results: {HOSTNAME};\r\n"
        " spf=pass smtp.mailfrom=example.org;\r\n"
        " dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256\r\n"
        f"  header.b={b};\r\n"
        " dmarc=pass (p=reject dis=none) header.from=example.org\r\n"
    )


@pytest_twisted.ensureDeferred
async def test_spoofed_message_is_rejected_and_spf_is_done_when_not_given(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("bank.example", "v=spf1 ip4:203.0.113.0/24 -all")
    dns_server.txt("_dmarc.bank.example", "v=DMARC1; p=reject")
    message = make_message(from_="CEO <ceo@bank.example>")
    results = await authenticator.check_message(IP, "evil.example", "ceo@bank.example", message)
    assert results.spf.result == "fail"
    assert (results.dmarc.result, results.disposition) == ("fail", "reject")


@pytest_twisted.ensureDeferred
async def test_dead_resolver_gives_temperror_in_budget_while_the_reactor_serves(
    dns_server: DNSTestServer, dead_dns_server: str, make_authenticator: AuthenticatorFactory
) -> None:
    dead = make_authenticator([dead_dns_server], timeout=0.5)
    good = make_authenticator([dns_server.address])
    dns_server.txt("example.org", f"v=spf1 ip4:{IP} -all")
    start = time.monotonic()
    ticks: list[float] = []
    for n in range(1, 5):
        reactor.callLater(0.1 * n, lambda: ticks.append(time.monotonic() - start))
    stuck = Deferred.fromCoroutine(dead.check_sender(IP, "mx.example.org", "alice@example.org"))
    served = await good.check_sender(IP, "mx.example.org", "alice@example.org")
    served_after = time.monotonic() - start
    result = await stuck
    elapsed = time.monotonic() - start
    assert served.result == "pass"
    assert served_after < 0.4  # did not wait for the dead resolver
    assert result.result == "temperror"
    assert 0.4 < elapsed < 1.5
    # The timers fired on time while the lookup was stuck in its thread.
    assert len(ticks) == 4
    assert all(abs(t - 0.1 * (n + 1)) < 0.1 for n, t in enumerate(ticks))


@pytest_twisted.ensureDeferred
async def test_dead_resolver_message_check_stays_in_budget(
    dead_dns_server: str, make_authenticator: AuthenticatorFactory, ed25519: DKIMKey
) -> None:
    dead = make_authenticator([dead_dns_server], timeout=0.5)
    message = sign(make_message(), ed25519)
    start = time.monotonic()
    results = await dead.check_message(IP, "mx.example.org", "alice@example.org", message)
    assert time.monotonic() - start < 1.5
    assert results.spf.result == "temperror"
    assert [d.result for d in results.dkim] == ["temperror"]
    assert (results.dmarc.result, results.disposition) == ("temperror", "accept")


@pytest_twisted.ensureDeferred
async def test_many_checks_on_a_dead_resolver_all_end_in_budget(
    dead_dns_server: str, make_authenticator: AuthenticatorFactory
) -> None:
    # More checks than threads: the queued ones share the same deadlines,
    # so none waits much longer than the budget.
    dead = make_authenticator([dead_dns_server], timeout=0.5)
    start = time.monotonic()
    checks = [
        Deferred.fromCoroutine(dead.check_sender(IP, "mx.example.org", f"u{n}@example.org"))
        for n in range(10)
    ]
    results = [await d for d in checks]
    assert {r.result for r in results} == {"temperror"}
    assert time.monotonic() - start < 1.5


@pytest_twisted.ensureDeferred
async def test_a_stalling_signature_cannot_spend_the_dmarc_budget(
    dns_server: DNSTestServer, make_authenticator: AuthenticatorFactory, ed25519: DKIMKey
) -> None:
    # The spoofer's own key never answers; the From domain's record must
    # still be read, so the spoof is refused rather than let through as
    # temperror.
    auth = make_authenticator([dns_server.address], timeout=1.0)
    dns_server.txt("_dmarc.bank.example", "v=DMARC1; p=reject")
    dns_server.drop("sel._domainkey.attacker.example")
    message = sign(make_message(from_="ceo@bank.example"), ed25519, domain="attacker.example")
    spf = SPFResult("fail", "attacker.example", "mailfrom")
    start = time.monotonic()
    results = await auth.check_message(IP, "x", "a@attacker.example", message, spf=spf)
    assert time.monotonic() - start < 1.6
    assert [d.result for d in results.dkim] == ["temperror"]
    assert (results.dmarc.result, results.disposition) == ("fail", "reject")


@pytest_twisted.ensureDeferred
async def test_a_stalling_from_domain_cannot_hide_another(
    dns_server: DNSTestServer, make_authenticator: AuthenticatorFactory
) -> None:
    auth = make_authenticator([dns_server.address], timeout=1.0)
    dns_server.drop("_dmarc.stall.example")
    dns_server.txt("_dmarc.bank.example", "v=DMARC1; p=reject")
    message = make_message(from_="me@stall.example, ceo@bank.example")
    spf = SPFResult("none", "stall.example", "mailfrom")
    results = await auth.check_message(IP, "x", "me@stall.example", message, spf=spf)
    assert [(r.from_domain, r.result) for r in results.dmarc_results] == [
        ("stall.example", "temperror"),
        ("bank.example", "fail"),
    ]
    assert results.disposition == "reject"


@pytest_twisted.ensureDeferred
async def test_checks_need_a_running_service() -> None:
    auth = MailAuthenticator(
        DNSConfig(nameservers=["127.0.0.1"]), HOSTNAME, cast(IReactorFromThreads, reactor)
    )
    with pytest.raises(RuntimeError):
        await auth.check_sender(IP, "mx.example.org", "alice@example.org")
