"""
A real DNS server on loopback for tests: twisted.names answering from
records held in memory, over UDP and TCP on one ephemeral port of
127.0.0.1, in the test's own reactor.

Use the fixtures (import them into a conftest.py)::

    from tests.dnsserver import dead_dns_server, dns_server  # noqa: F401

    @pytest_twisted.ensureDeferred
    async def test_something(dns_server: DNSTestServer) -> None:
        dns_server.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
        dns_server.mx("example.org", "mx.example.org")
        dns_server.a("mx.example.org", "192.0.2.25")
        config = DNSConfig(nameservers=[dns_server.address], timeout=2.0)
        ...

Records have a TTL of 0 unless a test gives one, and negative answers
carry an SOA with a negative-caching TTL of 0, so that resolvers (which
cache answers for their TTL) see a record changed in the middle of a test.

The server is authoritative for every name: a name with no records, and no
records below it, is NXDOMAIN; a name with records of other types only (or
only names below it) answers NOERROR with no answer.  A CNAME is followed
within the server's own data.  L{DNSTestServer.fail} makes a name answer
SERVFAIL, L{DNSTestServer.drop} makes it never answer, and
L{DNSTestServer.queries} records what was asked, so tests can count lookups.

Code under test that resolves in worker threads works as long as the test
awaits (the server runs on the reactor thread): never block the reactor
while a lookup is in flight.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.names import common, dns, server
from twisted.python.failure import Failure

#: Record type numbers to names, for L{DNSTestServer.queries}.
TYPE_NAMES: dict[int, str] = {**dns.QUERY_TYPES, **dns.EXT_QUERIES}

Record = Any  # any twisted.names.dns.Record_* instance


def _key(name: str | bytes) -> str:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.lower().rstrip(".")


#: The SOA sent with every negative answer (RFC 2308): a negative-caching
#: TTL of 0, so that a record added later in a test is seen at once.
NEGATIVE_SOA = dns.RRHeader(
    name=b"",
    type=dns.SOA,
    cls=dns.IN,
    ttl=0,
    auth=True,
    payload=dns.Record_SOA(mname=b"ns.test", rname=b"hostmaster.test", serial=1, minimum=0, ttl=0),
)


class _SimulatedServerFailure(Exception):
    """Raised by the authority for a name set to fail: the server answers SERVFAIL."""


class _MemoryAuthority(common.ResolverBase):
    """An IResolver answering from the L{DNSTestServer}'s records."""

    def __init__(self, owner: DNSTestServer) -> None:
        super().__init__()
        self._owner = owner

    def query(self, query: dns.Query, timeout: Any = None) -> defer.Deferred[Any]:
        name = _key(query.name.name)
        if name in self._owner.failing:
            return defer.fail(_SimulatedServerFailure(name))
        answers: list[dns.RRHeader] = []
        seen: set[str] = set()
        current = name
        while current not in seen:
            seen.add(current)
            records = self._owner.records.get(current, [])
            matching = [r for r in records if query.type in (r.TYPE, dns.ALL_RECORDS)]
            if matching or query.type == dns.CNAME:
                answers += [self._rr(current, r) for r in matching]
                break
            cnames = [r for r in records if r.TYPE == dns.CNAME]
            if not cnames:
                break
            answers.append(self._rr(current, cnames[0]))
            current = _key(cnames[0].name.name)
        if not answers and not self._owner.exists(name):
            return defer.fail(dns.AuthoritativeDomainError(name))
        return defer.succeed((answers, [] if answers else [NEGATIVE_SOA], []))

    @staticmethod
    def _rr(name: str, record: Record) -> dns.RRHeader:
        return dns.RRHeader(
            name=name, type=record.TYPE, cls=dns.IN, ttl=record.ttl or 0, payload=record, auth=True
        )


class _Factory(server.DNSServerFactory):
    def __init__(self, owner: DNSTestServer) -> None:
        super().__init__(authorities=[_MemoryAuthority(owner)])
        self._owner = owner

    def handleQuery(self, message: dns.Message, protocol: Any, address: Any) -> Any:
        query = message.queries[0]
        name = _key(query.name.name)
        self._owner.queries.append((name, TYPE_NAMES.get(query.type, str(query.type))))
        if name in self._owner.dropped:
            return None
        return super().handleQuery(message, protocol, address)

    def gotResolverError(self, failure: Failure, protocol: Any, message: Any, address: Any) -> None:
        if failure.check(_SimulatedServerFailure):
            response = self._responseFromMessage(message=message, rCode=dns.ESERVER)
            self.sendReply(protocol, response, address)
            return
        if failure.check(dns.AuthoritativeDomainError):
            # NXDOMAIN with the SOA that says how long to remember it (0 s).
            response = self._responseFromMessage(
                message=message, rCode=dns.ENAME, authority=[NEGATIVE_SOA]
            )
            self.sendReply(protocol, response, address)
            return
        super().gotResolverError(failure, protocol, message, address)


class DNSTestServer:
    """
    An authoritative DNS server for every name, serving records added by the
    test.  Changes take effect at once, also while it runs.

    @ivar records: lower-case name (no final dot) to its records.
    @ivar queries: every C{(name, type name)} received, in order.
    """

    host = "127.0.0.1"

    def __init__(
        self, zones: Mapping[str, Iterable[Record]] | None = None, reactor: Any = None
    ) -> None:
        """
        @param zones: records to serve from the start, as for L{load}.
        @param reactor: the reactor to listen with (the global one by default).
        """
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self._reactor = reactor
        self.records: dict[str, list[Record]] = {}
        self.failing: set[str] = set()
        self.dropped: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._listening: list[Any] = []
        self.load(zones or {})

    # -- life --------------------------------------------------------------

    def start(self) -> None:
        """Listen on UDP and TCP, same ephemeral port of 127.0.0.1."""
        factory = _Factory(self)
        for _attempt in range(20):
            # A fresh protocol each try: one whose UDP port was just given
            # up is still attached to it until the reactor turns.
            protocol = dns.DNSDatagramProtocol(controller=factory)
            udp = self._reactor.listenUDP(0, protocol, interface=self.host)
            port = udp.getHost().port
            try:
                tcp = self._reactor.listenTCP(port, factory, interface=self.host)
            except Exception:
                udp.stopListening()
                continue
            self._listening = [udp, tcp]
            self.port = port
            return
        raise RuntimeError("no free UDP+TCP port pair on 127.0.0.1")

    async def stop(self) -> None:
        for port in self._listening:
            await defer.maybeDeferred(port.stopListening)
        self._listening = []

    @property
    def address(self) -> str:
        """C{"127.0.0.1:PORT"}, as C{[dns] nameservers} takes it."""
        return f"{self.host}:{self.port}"

    # -- data --------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """Whether C{name} has records, or names below it have (RFC 8020)."""
        name = _key(name)
        return name in self.records or any(k.endswith("." + name) for k in self.records)

    def add(self, name: str, *records: Record) -> None:
        """Add any C{twisted.names.dns.Record_*} at C{name}."""
        self.records.setdefault(_key(name), []).extend(records)

    def load(self, zones: Mapping[str, Iterable[Record]]) -> None:
        """Add many: C{{name: [records]}}."""
        for name, records in zones.items():
            self.add(name, *records)

    def remove(self, name: str) -> None:
        """Forget every record at C{name}."""
        self.records.pop(_key(name), None)

    def txt(self, name: str, *texts: str | bytes, ttl: int = 0) -> None:
        """One TXT record per text, each cut into strings of 255 bytes."""
        for text in texts:
            data = text.encode() if isinstance(text, str) else text
            chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
            self.add(name, dns.Record_TXT(*chunks, ttl=ttl))

    def a(self, name: str, *addresses: str, ttl: int = 0) -> None:
        self.add(name, *(dns.Record_A(a, ttl=ttl) for a in addresses))

    def aaaa(self, name: str, *addresses: str, ttl: int = 0) -> None:
        self.add(name, *(dns.Record_AAAA(a, ttl=ttl) for a in addresses))

    def mx(self, name: str, exchange: str, preference: int = 10, ttl: int = 0) -> None:
        self.add(name, dns.Record_MX(preference, exchange.encode(), ttl=ttl))

    def cname(self, name: str, target: str, ttl: int = 0) -> None:
        self.add(name, dns.Record_CNAME(target.encode(), ttl=ttl))

    def ptr(self, address: str, target: str, ttl: int = 0) -> None:
        """A PTR record for C{address} in in-addr.arpa or ip6.arpa."""
        name = ipaddress.ip_address(address).reverse_pointer
        self.add(name, dns.Record_PTR(target.encode(), ttl=ttl))

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for C{name} from now on."""
        self.failing.add(_key(name))

    def drop(self, name: str) -> None:
        """Never answer queries for C{name} from now on."""
        self.dropped.add(_key(name))

    def asked(self, name: str, type_name: str | None = None) -> int:
        """How many queries for C{name} (of C{type_name}, if given) arrived."""
        name = _key(name)
        return sum(1 for n, t in self.queries if n == name and type_name in (None, t))


@pytest_twisted.async_yield_fixture
async def dns_server() -> AsyncIterator[DNSTestServer]:
    """A running, empty L{DNSTestServer}; stopped after the test."""
    instance = DNSTestServer()
    instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
def dead_dns_server() -> Iterator[str]:
    """
    C{"127.0.0.1:PORT"} of a UDP socket that is bound but never read: a
    nameserver that never answers (nor refuses).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
