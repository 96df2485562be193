"""
Fixtures for the mail checks: the loopback DNS server, and a factory of
running L{MailAuthenticator}s pointed at it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from twisted.internet.interfaces import IReactorFromThreads

from gk.config import DNSConfig
from gk.mailauth import MailAuthenticator
from tests.dnsserver import DNSTestServer, dead_dns_server, dns_server
from tests.mailauth.helpers import DKIMKey, ed25519_key, rsa_key

__all__ = [
    "authenticator",
    "dead_dns_server",
    "dns_server",
    "ed25519",
    "make_authenticator",
    "rsa_2048",
]

HOSTNAME = "mail.example.test"

AuthenticatorFactory = Callable[..., MailAuthenticator]


@pytest.fixture
def make_authenticator() -> Iterator[AuthenticatorFactory]:
    """
    Build and start a L{MailAuthenticator}: C{make(nameservers, timeout=2.0,
    rng=None)}; every one built is stopped after the test.
    """
    from twisted.internet import reactor as default_reactor

    reactor = cast(IReactorFromThreads, default_reactor)
    started: list[MailAuthenticator] = []

    def make(
        nameservers: list[str], timeout: float = 2.0, rng: random.Random | None = None
    ) -> MailAuthenticator:
        auth = MailAuthenticator(
            DNSConfig(nameservers=nameservers, timeout=timeout), HOSTNAME, reactor, rng=rng
        )
        auth.startService()
        started.append(auth)
        return auth

    yield make
    for auth in started:
        auth.stopService()


@pytest.fixture
def authenticator(
    dns_server: DNSTestServer, make_authenticator: AuthenticatorFactory
) -> MailAuthenticator:
    """A running L{MailAuthenticator} asking the loopback DNS server."""
    return make_authenticator([dns_server.address])


@pytest.fixture(scope="session")
def rsa_2048() -> DKIMKey:
    """An RSA 2048 signing key, made once per test run."""
    return rsa_key(2048)


@pytest.fixture(scope="session")
def ed25519() -> DKIMKey:
    """An Ed25519 signing key (RFC 8463), made once per test run."""
    return ed25519_key()
