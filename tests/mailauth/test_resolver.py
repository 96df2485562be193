"""
The [dns] resolver with a deadline shared by the lookups of one check,
against the loopback DNS server (lookups run in threads, as in gk).
"""

from __future__ import annotations

import time

import dns.message
import dns.nameserver
import dns.query
import dns.resolver
import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread
from twisted.names import dns as twisted_dns

from gk.config import DNSConfig
from gk.mailauth.resolver import DNSClient, DNSTempError, Lookups, a_label, parse_nameserver
from tests.dnsserver import DNSTestServer


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("ns.example.test:54", ("ns.example.test", 54)),
    ],
)
def test_parse_nameserver(entry: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(entry) == expected


@pytest.mark.parametrize("entry", ["", ":53", "127.0.0.1:x", "[::1", "[::1]x", "h:70000"])
def test_parse_nameserver_refuses_garbage(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(entry)


def test_resolver_uses_the_configured_servers_and_ports() -> None:
    client = DNSClient(DNSConfig(nameservers=["127.0.0.1:5353", "[::1]"], timeout=1.5))
    servers = client.resolver.nameservers
    assert all(isinstance(s, dns.nameserver.Do53Nameserver) for s in servers)
    assert [(s.address, s.port) for s in servers] == [("127.0.0.1", 5353), ("::1", 53)]  # type: ignore[union-attr]
    assert client.resolver.lifetime == 1.5
    assert isinstance(client.resolver.cache, dns.resolver.LRUCache)


def test_a_label() -> None:
    assert a_label(" Example.ORG. ") == "example.org"
    assert a_label("Bücher.Example") == "xn--bcher-kva.example"


def make_lookups(server: str, timeout: float = 2.0) -> Lookups:
    return DNSClient(DNSConfig(nameservers=[server], timeout=timeout)).lookups()


@pytest_twisted.ensureDeferred
async def test_answers_nxdomain_nodata_and_cname(dns_server: DNSTestServer) -> None:
    dns_server.a("host.example.org", "192.0.2.1", "192.0.2.2")
    dns_server.cname("alias.example.org", "host.example.org")
    dns_server.txt("txt.example.org", "a" * 300)
    lookups = make_lookups(dns_server.address)
    records = await deferToThread(lookups.query, "host.example.org", "A")
    assert sorted(r.address for r in records) == ["192.0.2.1", "192.0.2.2"]  # type: ignore[attr-defined]
    records = await deferToThread(lookups.query, "alias.example.org.", "A")
    assert len(records) == 2
    assert await deferToThread(lookups.query, "nothing.example.org", "A") == []
    assert await deferToThread(lookups.query, "host.example.org", "MX") == []
    assert await deferToThread(lookups.query, "example.org", "A") == []  # empty non-terminal
    assert await deferToThread(lookups.txt, "txt.example.org") == [b"a" * 300]
    assert await deferToThread(lookups.query, "bad..name", "A") == []
    assert lookups.asked[0] == ("host.example.org", "A")


@pytest_twisted.ensureDeferred
async def test_the_test_server_answers_over_tcp_too() -> None:
    server = DNSTestServer({"example.org": [twisted_dns.Record_MX(10, b"mx.example.org")]})
    server.start()
    try:
        query = dns.message.make_query("example.org", "MX")
        response = await deferToThread(dns.query.tcp, query, server.host, 2.0, server.port)
        assert [r.to_text() for r in response.answer[0]] == ["10 mx.example.org."]
        assert server.asked("example.org", "MX") == 1
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_server_failure_is_a_temporary_error(dns_server: DNSTestServer) -> None:
    dns_server.fail("broken.example.org")
    lookups = make_lookups(dns_server.address)
    with pytest.raises(DNSTempError):
        await deferToThread(lookups.query, "broken.example.org", "TXT")


@pytest_twisted.ensureDeferred
async def test_lookups_share_one_deadline(dns_server: DNSTestServer) -> None:
    dns_server.drop("slow.example.org")
    dns_server.a("fast.example.org", "192.0.2.1")
    lookups = make_lookups(dns_server.address, timeout=0.4)
    start = time.monotonic()
    with pytest.raises(DNSTempError):
        await deferToThread(lookups.query, "slow.example.org", "A")
    assert 0.3 < time.monotonic() - start < 0.9
    # The budget is spent: the next lookup fails at once, without asking.
    asked = len(dns_server.queries)
    with pytest.raises(DNSTempError, match="budget"):
        await deferToThread(lookups.query, "fast.example.org", "A")
    assert len(dns_server.queries) == asked


def test_share_never_outlives_its_parent() -> None:
    clock = [100.0]
    client = DNSClient(DNSConfig(nameservers=["127.0.0.1"], timeout=4.0))
    lookups = Lookups(client.resolver, 4.0, clock=lambda: clock[0])
    assert lookups.share(0.25).deadline == pytest.approx(101.0)
    clock[0] = 102.0
    assert lookups.share(0.5).deadline == pytest.approx(103.0)
    assert lookups.share(2.0).deadline == pytest.approx(104.0)
    child = lookups.share(1.0)
    assert child.asked is lookups.asked


def test_no_nameserver_at_all_fails_at_once() -> None:
    # What build_resolver makes of a host without resolver configuration,
    # or of nameserver names that do not resolve: nothing to wait for.
    client = DNSClient(DNSConfig(nameservers=["127.0.0.1"], timeout=5.0))
    client.resolver.nameservers = []
    start = time.monotonic()
    with pytest.raises(DNSTempError):
        client.lookups().query("example.org", "TXT")
    assert time.monotonic() - start < 0.5


@pytest_twisted.ensureDeferred
async def test_answers_are_cached_for_their_ttl_across_checks(dns_server: DNSTestServer) -> None:
    """Sender domains recur: a later check asks the server only for what expired."""
    dns_server.txt("cached.example.org", "v=spf1 -all", ttl=300)
    dns_server.txt("fresh.example.org", "v=spf1 ~all")  # TTL 0: never kept
    client = DNSClient(DNSConfig(nameservers=[dns_server.address], timeout=2.0))
    for _ in range(2):
        lookups = client.lookups()
        assert await deferToThread(lookups.txt, "cached.example.org") == [b"v=spf1 -all"]
        assert await deferToThread(lookups.txt, "fresh.example.org") == [b"v=spf1 ~all"]
        # A negative answer whose SOA allows no caching is asked again.
        assert await deferToThread(lookups.txt, "missing.example.org") == []
    asked = [name for name, _type in dns_server.queries]
    assert asked.count("cached.example.org") == 1
    assert asked.count("fresh.example.org") == 2
    assert asked.count("missing.example.org") == 2
