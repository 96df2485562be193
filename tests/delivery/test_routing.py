"""
MX routing against a real DNS server on loopback: preference order,
several hosts, the implicit MX, null MX, names that do not exist, and DNS
failures that must only postpone delivery.
"""

from __future__ import annotations

import random

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gk.config import DNSConfig
from gk.delivery.routing import MXHost, RouteError, mx_hosts
from gk.mailauth.resolver import DNSClient
from tests.dnsserver import DNSTestServer, dns_server

__all__ = ["dns_server"]


async def route(dns_server: DNSTestServer, domain: str, budget: float = 2.0) -> list[MXHost]:
    client = DNSClient(DNSConfig(nameservers=[dns_server.address], timeout=budget))
    hosts: list[MXHost] = await deferToThread(mx_hosts, client.lookups(), domain, random.Random(1))
    return hosts


async def route_error(dns_server: DNSTestServer, domain: str, budget: float = 2.0) -> RouteError:
    with pytest.raises(RouteError) as caught:
        await route(dns_server, domain, budget)
    return caught.value


@pytest_twisted.ensureDeferred
async def test_mx_hosts_come_in_preference_order_with_their_addresses(
    dns_server: DNSTestServer,
) -> None:
    dns_server.mx("remote.test", "backup.remote.test", 20)
    dns_server.mx("remote.test", "MX1.Remote.Test", 10)
    dns_server.a("mx1.remote.test", "127.0.0.2")
    dns_server.aaaa("mx1.remote.test", "::1")
    dns_server.a("backup.remote.test", "127.0.0.3", "127.0.0.4")

    hosts = await route(dns_server, "Remote.TEST")
    assert hosts == [
        MXHost("mx1.remote.test", 10, ("127.0.0.2", "::1")),
        MXHost("backup.remote.test", 20, ("127.0.0.3", "127.0.0.4")),
    ]


@pytest_twisted.ensureDeferred
async def test_hosts_of_equal_preference_are_all_tried_in_some_order(
    dns_server: DNSTestServer,
) -> None:
    for name in ("a", "b", "c"):
        dns_server.mx("spread.test", f"{name}.spread.test", 10)
        dns_server.a(f"{name}.spread.test", "127.0.0.2")
    dns_server.mx("spread.test", "last.spread.test", 50)
    dns_server.a("last.spread.test", "127.0.0.9")

    hosts = await route(dns_server, "spread.test")
    assert sorted(h.name for h in hosts[:3]) == ["a.spread.test", "b.spread.test", "c.spread.test"]
    assert hosts[3].name == "last.spread.test"


@pytest_twisted.ensureDeferred
async def test_a_domain_without_mx_is_its_own_implicit_mx(dns_server: DNSTestServer) -> None:
    dns_server.a("plain.test", "127.0.0.5")
    assert await route(dns_server, "plain.test") == [MXHost("plain.test", 0, ("127.0.0.5",))]


@pytest_twisted.ensureDeferred
async def test_an_mx_host_without_address_is_passed_over_for_one_with(
    dns_server: DNSTestServer,
) -> None:
    dns_server.mx("half.test", "gone.half.test", 5)
    dns_server.mx("half.test", "here.half.test", 10)
    dns_server.a("here.half.test", "127.0.0.6")
    hosts = await route(dns_server, "half.test")
    assert [(h.name, h.addresses) for h in hosts] == [
        ("gone.half.test", ()),
        ("here.half.test", ("127.0.0.6",)),
    ]


@pytest_twisted.ensureDeferred
async def test_domains_that_take_no_mail_fail_permanently(dns_server: DNSTestServer) -> None:
    dns_server.mx("nullmx.test", "", 0)  # "." is the root: an empty name here
    null = await route_error(dns_server, "nullmx.test")
    assert null.permanent and null.status == "5.1.10" and "null MX" in str(null)

    missing = await route_error(dns_server, "no-such-domain.test")
    assert missing.permanent and missing.status == "5.1.2"

    dns_server.mx("dangling.test", "nowhere.dangling.test", 10)
    dangling = await route_error(dns_server, "dangling.test")
    assert dangling.permanent and dangling.status == "5.4.4"


@pytest_twisted.ensureDeferred
async def test_a_null_mx_among_real_ones_is_ignored(dns_server: DNSTestServer) -> None:
    dns_server.mx("mixed.test", "", 0)
    dns_server.mx("mixed.test", "mx.mixed.test", 10)
    dns_server.a("mx.mixed.test", "127.0.0.7")
    assert [h.name for h in await route(dns_server, "mixed.test")] == ["mx.mixed.test"]


@pytest_twisted.ensureDeferred
async def test_dns_failures_only_postpone_delivery(dns_server: DNSTestServer) -> None:
    dns_server.fail("servfail.test")
    failed = await route_error(dns_server, "servfail.test")
    assert not failed.permanent and failed.status == "4.4.3"

    dns_server.drop("silent.test")
    silent = await route_error(dns_server, "silent.test", budget=0.5)
    assert not silent.permanent

    # The MX answers, but its host's addresses do not come.
    dns_server.mx("slowhost.test", "mx.slowhost.test", 10)
    dns_server.fail("mx.slowhost.test")
    host_failed = await route_error(dns_server, "slowhost.test")
    assert not host_failed.permanent
