"""
MTA-STS policy discovery against real peers on loopback: the twisted.names
test DNS server for C{_mta-sts} TXT and the policy host's A record, and a
twisted.web HTTPS server whose certificates come from a test CA.

The resolver is given the policy's real URL (C{https://mta-sts.remote.test:
PORT/...}) and verifies the certificate against that name, exactly as in
production.  Only name resolution differs: the reactor handed to the
resolver is the test reactor with a name resolver that asks the test DNS
server, where C{mta-sts.remote.test} has an A record for 127.0.0.1.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
)
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer, provider

from gk.config import DNSConfig
from gk.delivery.mtasts import (
    MXTLS,
    MTASTSPolicy,
    MTASTSResolver,
    PolicyError,
    default_policy_url,
    parse_policy,
    parse_sts_record,
    tls_requirement,
)
from gk.mailauth.resolver import Lookups, build_resolver
from gk.tls import ServerTLS
from tests.dnsserver import DNSTestServer, dns_server

__all__ = ["dns_server"]

DOMAIN = "remote.test"
POLICY_HOST = f"mta-sts.{DOMAIN}"
TXT_NAME = f"_mta-sts.{DOMAIN}"
POLICY_PATH = b"/.well-known/mta-sts.txt"

ENFORCE = (
    b"version: STSv1\r\nmode: enforce\r\n"
    b"mx: mx1.remote.test\r\nmx: *.mx.remote.test\r\nmax_age: 600\r\n"
)


# -- a test PKI -------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, Any] | None
) -> x509.Certificate:
    """A CA certificate when C{issuer} is None, else a server certificate for C{subject}."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


@dataclass
class PKI:
    """The trusted test CA, and certificate/key files for the HTTPS server."""

    ca_pem: bytes
    files: dict[str, tuple[Path, Path]]

    def trust_root(self) -> Any:
        return trustRootFromCertificates([Certificate.loadPEM(self.ca_pem)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = (_certificate("gk test CA", ca_key, None), ca_key)
    other_ca = (_certificate("unknown test CA", other_key, None), other_key)
    files = {}
    for kind, host, issuer in [
        ("good", POLICY_HOST, ca),
        ("wrong_name", "mta-sts.elsewhere.test", ca),
        ("unknown_ca", POLICY_HOST, other_ca),
    ]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert_path, key_path = directory / f"{kind}.pem", directory / f"{kind}.key"
        cert_path.write_bytes(
            _certificate(host, key, issuer).public_bytes(serialization.Encoding.PEM)
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files[kind] = (cert_path, key_path)
    return PKI(ca[0].public_bytes(serialization.Encoding.PEM), files)


# -- the policy host ---------------------------------------------------------


class PolicyResource(Resource):
    """Serve one configurable answer at every path, recording each request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.content_type = b"text/plain; charset=utf-8"
        self.body = ENFORCE
        self.extra_headers: dict[bytes, bytes] = {}
        self.chunked = False
        self.hang = False
        self.cut = False
        #: (Host header, path) of every request.
        self.requests: list[tuple[bytes | None, bytes]] = []

    def render_GET(self, request: Any) -> Any:
        from twisted.internet import reactor

        self.requests.append((request.getHeader(b"host"), request.path))
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", self.content_type)
        for name, value in self.extra_headers.items():
            request.setHeader(name, value)
        if self.cut:  # half the body, then TCP closes without a TLS close
            request.write(self.body[: len(self.body) // 2])
            # After the TLS layer's own write flush, queued for the next turn.
            reactor.callLater(0, request.transport.transport.loseConnection)
            return NOT_DONE_YET
        if self.chunked:  # no Content-Length: the size is only known while reading
            request.write(self.body)
            request.finish()
            return NOT_DONE_YET
        return self.body

    @property
    def count(self) -> int:
        return len(self.requests)


@pytest.fixture
def server_cert() -> str:
    """Which certificate the policy host shows (parametrize to change it)."""
    return "good"


@pytest_twisted.async_yield_fixture
async def policy_host(pki: PKI, server_cert: str) -> AsyncIterator[tuple[PolicyResource, int]]:
    from twisted.internet import reactor

    resource = PolicyResource()
    port = reactor.listenSSL(  # type: ignore[attr-defined]
        0, Site(resource), ServerTLS(*pki.files[server_cert]), interface="127.0.0.1"
    )
    try:
        yield resource, port.getHost().port
    finally:
        await defer.maybeDeferred(port.stopListening)


# -- names through the test DNS server ---------------------------------------


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class LoopbackDNSNames:
    """Host names to IPv4 addresses from the A records of the test DNS server."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self._resolver = resolver

    def resolveHostName(
        self,
        resolutionReceiver: Any,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)

        def lookup() -> list[str]:
            return [r.address for r in Lookups(self._resolver, 2.0).query(hostName, "A")]  # type: ignore[attr-defined]

        def resolved(addresses: list[str]) -> None:
            for address in addresses:
                resolutionReceiver.addressResolved(IPv4Address("TCP", address, portNumber))

        d = deferToThread(lookup)
        d.addCallback(resolved)
        d.addErrback(lambda _: None)  # like getaddrinfo failing: no address
        d.addCallback(lambda _: resolutionReceiver.resolutionComplete())
        return resolution


@implementer(IReactorPluggableNameResolver)
class ReactorWithNames:
    """The test reactor, resolving host names with another name resolver."""

    def __init__(self, reactor: Any, names: IHostnameResolver) -> None:
        self._reactor = reactor
        self.nameResolver = names

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        previous, self.nameResolver = self.nameResolver, resolver
        return previous

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def txt_lookup(dns_address: str, timeout: float = 2.0) -> Callable[[str], Awaitable[list[str]]]:
    """gk's blocking resolver in a thread: the TXT records at a name, strings joined."""
    resolver = build_resolver(DNSConfig(nameservers=[dns_address], timeout=timeout))

    def blocking(name: str) -> list[str]:
        records = Lookups(resolver, timeout).query(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]  # type: ignore[attr-defined]

    async def lookup(name: str) -> list[str]:
        result: list[str] = await deferToThread(blocking, name)
        return result

    return lookup


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Remote:
    """The remote domain's DNS and policy host, and a way to build resolvers for it."""

    dns: DNSTestServer
    http: PolicyResource
    port: int
    pki: PKI
    clock: FakeClock

    def publish(self, policy_id: str = "20240101") -> None:
        self.dns.remove(TXT_NAME)
        self.dns.txt(TXT_NAME, f"v=STSv1; id={policy_id}")

    def resolver(self, dns_timeout: float = 2.0, **kwargs: Any) -> MTASTSResolver:
        from twisted.internet import reactor

        names = LoopbackDNSNames(build_resolver(DNSConfig(nameservers=[self.dns.address])))
        kwargs.setdefault("trust_root", self.pki.trust_root())
        return MTASTSResolver(
            ReactorWithNames(reactor, names),
            txt_lookup(self.dns.address, dns_timeout),
            clock=self.clock,
            policy_url=lambda domain: (
                f"https://mta-sts.{domain}:{self.port}/.well-known/mta-sts.txt"
            ),
            **kwargs,
        )


@pytest.fixture
def remote(dns_server: DNSTestServer, policy_host: tuple[PolicyResource, int], pki: PKI) -> Remote:
    dns_server.a(POLICY_HOST, "127.0.0.1")
    dns_server.txt(TXT_NAME, "v=STSv1; id=20240101")
    return Remote(dns_server, policy_host[0], policy_host[1], pki, FakeClock())


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The messages gk.delivery.mtasts logs during the test."""
    messages: list[str] = []

    @provider(ILogObserver)
    def observer(event: LogEvent) -> None:
        if event.get("log_namespace") == "gk.delivery.mtasts":
            messages.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        yield messages
    finally:
        globalLogPublisher.removeObserver(observer)


# -- discovery ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_enforce_policy_is_fetched_then_cached(remote: Remote) -> None:
    resolver = remote.resolver()
    policy = await resolver.policy_for(DOMAIN)
    assert policy == MTASTSPolicy(
        "20240101", "enforce", ("mx1.remote.test", "*.mx.remote.test"), 600
    )
    # The request went to the policy host by name, over verified TLS.
    assert remote.http.requests == [(f"{POLICY_HOST}:{remote.port}".encode(), POLICY_PATH)]

    remote.clock.now += 599
    assert await resolver.policy_for("Remote.Test.") == policy
    assert remote.http.count == 1
    assert remote.dns.asked(TXT_NAME, "TXT") == 2  # the TXT record is checked every time


@pytest_twisted.ensureDeferred
async def test_a_new_id_is_fetched_again(remote: Remote) -> None:
    resolver = remote.resolver()
    assert (await resolver.policy_for(DOMAIN)) is not None
    remote.publish("20250101")
    remote.http.body = b"version: STSv1\nmode: testing\nmx: mx2.remote.test\nmax_age: 86400\n"
    policy = await resolver.policy_for(DOMAIN)
    assert policy == MTASTSPolicy("20250101", "testing", ("mx2.remote.test",), 86400)
    assert remote.http.count == 2


@pytest_twisted.ensureDeferred
async def test_an_expired_policy_with_the_same_id_is_fetched_again(remote: Remote) -> None:
    resolver = remote.resolver()
    await resolver.policy_for(DOMAIN)
    remote.clock.now += 600
    assert (await resolver.policy_for(DOMAIN)) is not None
    assert remote.http.count == 2


@pytest_twisted.ensureDeferred
async def test_a_removed_record_keeps_the_cached_policy_until_max_age(
    remote: Remote, logged: list[str]
) -> None:
    resolver = remote.resolver()
    policy = await resolver.policy_for(DOMAIN)
    remote.dns.remove(TXT_NAME)
    remote.clock.now += 599
    assert await resolver.policy_for(DOMAIN) == policy
    assert any("no STS record" in m and "cached" in m for m in logged)
    remote.clock.now += 1
    assert await resolver.policy_for(DOMAIN) is None
    assert remote.http.count == 1


@pytest_twisted.ensureDeferred
async def test_no_record_means_no_policy(remote: Remote, logged: list[str]) -> None:
    remote.dns.remove(TXT_NAME)
    remote.dns.txt(TXT_NAME, "v=spf1 -all")
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert remote.http.count == 0
    assert logged == []  # most domains have none: nothing worth a log line


@pytest.mark.parametrize(
    "records",
    [
        ["v=STSv1; id=1", "v=STSv1; id=2"],
        ["v=STSv1; id=not-alnum"],
        ["v=STSv1"],
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_records_mean_no_policy(
    remote: Remote, logged: list[str], records: list[str]
) -> None:
    remote.dns.remove(TXT_NAME)
    remote.dns.txt(TXT_NAME, *records)
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert remote.http.count == 0
    assert len(logged) == 1 and "invalid or several STS records" in logged[0]


@pytest.mark.parametrize("server_cert", ["wrong_name", "unknown_ca"])
@pytest_twisted.ensureDeferred
async def test_an_invalid_certificate_means_no_policy(remote: Remote, logged: list[str]) -> None:
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert remote.http.count == 0  # TLS failed before any request
    assert len(logged) == 1
    assert DOMAIN in logged[0] and "not used" in logged[0] and "no policy" in logged[0]


@pytest_twisted.ensureDeferred
async def test_the_platform_trust_does_not_know_the_test_ca(remote: Remote) -> None:
    assert await remote.resolver(trust_root=None).policy_for(DOMAIN) is None
    assert remote.http.count == 0


@pytest_twisted.ensureDeferred
async def test_a_redirect_is_not_followed(remote: Remote, logged: list[str]) -> None:
    remote.http.status = 301
    location = f"https://{POLICY_HOST}:{remote.port}/elsewhere.txt".encode()
    remote.http.extra_headers[b"location"] = location
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert [path for _, path in remote.http.requests] == [POLICY_PATH]
    assert "HTTP status 301" in logged[0]


@pytest_twisted.ensureDeferred
async def test_not_found_means_no_policy(remote: Remote) -> None:
    remote.http.status = 404
    assert await remote.resolver().policy_for(DOMAIN) is None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest_twisted.ensureDeferred
async def test_a_body_over_the_limit_is_refused(
    remote: Remote, logged: list[str], chunked: bool
) -> None:
    remote.http.chunked = chunked
    remote.http.body = ENFORCE + b"x-padding: " + b"p" * 2000 + b"\n"
    assert await remote.resolver(max_bytes=1000).policy_for(DOMAIN) is None
    assert "larger than 1000 bytes" in logged[0]
    # The same body within the limit is a policy.
    assert await remote.resolver(max_bytes=4000).policy_for(DOMAIN) is not None


@pytest_twisted.ensureDeferred
async def test_html_is_not_a_policy(remote: Remote, logged: list[str]) -> None:
    remote.http.content_type = b"text/html"
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert "not text/plain" in logged[0]


@pytest_twisted.ensureDeferred
async def test_a_slow_policy_host_times_out(remote: Remote, logged: list[str]) -> None:
    remote.http.hang = True
    # Long enough for the TLS handshake and the request to arrive on a busy
    # machine (the time limit covers the whole fetch): the host is reached
    # and then never answers.
    assert await remote.resolver(fetch_timeout=2).policy_for(DOMAIN) is None
    assert remote.http.count == 1
    assert "no policy within 2 s" in logged[0]


@pytest_twisted.ensureDeferred
async def test_a_cut_body_means_no_policy(remote: Remote, logged: list[str]) -> None:
    remote.http.cut = True
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert "the body was cut" in logged[0]


@pytest.mark.parametrize("failure", ["fail", "drop"])
@pytest_twisted.ensureDeferred
async def test_a_dns_failure_keeps_the_cached_policy(
    remote: Remote, logged: list[str], failure: str
) -> None:
    resolver = remote.resolver(dns_timeout=0.3)
    policy = await resolver.policy_for(DOMAIN)
    getattr(remote.dns, failure)(TXT_NAME)  # SERVFAIL, or no answer at all
    assert await resolver.policy_for(DOMAIN) == policy
    assert any("TXT lookup" in m and "cached policy" in m for m in logged)
    # Without a cached policy, the same failure means none.
    assert await remote.resolver(dns_timeout=0.3).policy_for(DOMAIN) is None
    assert remote.http.count == 1


@pytest_twisted.ensureDeferred
async def test_a_failed_refetch_keeps_the_cached_policy(remote: Remote) -> None:
    resolver = remote.resolver()
    policy = await resolver.policy_for(DOMAIN)
    remote.publish("20250101")
    remote.http.status = 500
    assert await resolver.policy_for(DOMAIN) == policy
    assert remote.http.count == 2


@pytest.mark.parametrize(
    "body",
    [
        b"version: STSv1\nmode: enforce\nmax_age: 600\n",  # no mx
        b"version: STSv1\nmode: strict\nmx: mx1.remote.test\nmax_age: 600\n",
        b"version: STSv1\nmode: enforce\nmx: mx1.remote.test\nmax_age: 31557601\n",
        b"\xff\xfe not utf-8",
    ],
    ids=["no-mx", "bad-mode", "max-age-too-large", "not-utf8"],
)
@pytest_twisted.ensureDeferred
async def test_a_malformed_policy_means_no_policy(
    remote: Remote, logged: list[str], body: bytes
) -> None:
    remote.http.body = body
    assert await remote.resolver().policy_for(DOMAIN) is None
    assert "not used" in logged[0]


@pytest_twisted.ensureDeferred
async def test_mode_none_is_returned(remote: Remote) -> None:
    remote.http.body = b"version: STSv1\nmode: none\nmax_age: 86400\n"
    policy = await remote.resolver().policy_for(DOMAIN)
    assert policy == MTASTSPolicy("20240101", "none", (), 86400)
    assert tls_requirement(policy, "mx1.remote.test").tls is MXTLS.OPPORTUNISTIC


@pytest_twisted.ensureDeferred
async def test_concurrent_calls_share_one_fetch(remote: Remote) -> None:
    resolver = remote.resolver()
    first, second = await defer.gatherResults(
        [
            defer.Deferred.fromCoroutine(resolver.policy_for(DOMAIN)),
            defer.Deferred.fromCoroutine(resolver.policy_for(DOMAIN)),
        ]
    )
    assert first is not None and first == second
    assert remote.http.count == 1
    assert remote.dns.asked(TXT_NAME, "TXT") == 1


@pytest_twisted.ensureDeferred
async def test_a_cancelled_caller_leaves_the_others_their_answer(remote: Remote) -> None:
    resolver = remote.resolver()
    cancelled = defer.Deferred.fromCoroutine(resolver.policy_for(DOMAIN))
    waiting = defer.Deferred.fromCoroutine(resolver.policy_for(DOMAIN))
    cancelled.cancel()
    with pytest.raises(defer.CancelledError):
        await cancelled
    assert (await waiting) is not None
    assert remote.http.count == 1
    assert resolver.cached(DOMAIN) == await waiting


def test_default_policy_url() -> None:
    assert (
        default_policy_url("example.com") == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    )


# -- parsing and matching -----------------------------------------------------


def test_parse_sts_record() -> None:
    assert parse_sts_record(["v=STSv1; id=20160831085700Z;"]) == "20160831085700Z"
    assert parse_sts_record(["v=STSv1;id=abc"]) == "abc"
    assert parse_sts_record(["v=STSv1; ext=val; id=abc ;\t"]) == "abc"
    assert parse_sts_record(["v=spf1 -all", "v=STSv1; id=abc", "other"]) == "abc"
    assert parse_sts_record(["v=STSv1x; id=abc"]) is None  # not an STS record
    for bad in [
        [],
        ["v=STSv1; id=abc", "v=STSv1; id=abc"],  # more than one
        ["v=STSv1"],
        ["v=STSv1;"],
        ["v=STSv1 id=abc"],
        ["v=STSv1; id="],
        ["v=STSv1; id=" + "a" * 33],
        ["v=STSv1; id=a; id=b"],
        ["v=STSv1;; id=abc"],
        ["v=STSv1; id=abc; bad value=x"],
        ["v=STSv1; ext=a=b; id=abc"],
        ["V=STSV1; id=abc"],
        [" v=STSv1; id=abc"],
    ]:
        assert parse_sts_record(bad) is None, bad


def test_parse_policy() -> None:
    policy = parse_policy(
        "version: STSv1\nmode:testing\r\nmx:  MX.Example.COM.  \nunknown: x\n\nmax_age: 0", "id1"
    )
    assert policy == MTASTSPolicy("id1", "testing", ("mx.example.com",), 0)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("mode: enforce\nmx: a.test\nmax_age: 1\n", "no version"),
        ("version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", "version"),
        ("version: STSv1\nmx: a.test\nmax_age: 1\n", "no mode"),
        ("version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1\n", "invalid mode"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
        ("version: STSv1\nmode: enforce\nmx: a.test\n", "no max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: ١٢\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmode: none\nmx: a.test\nmax_age: 1\n", "more than once"),
        ("version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age 1\n", "key: value"),
    ],
)
def test_parse_policy_errors(text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        parse_policy(text)


def test_matches() -> None:
    policy = MTASTSPolicy("1", "enforce", ("*.example.com", "mail.example.net"), 60)
    assert policy.matches("mx1.example.com")
    assert policy.matches("MX1.Example.COM.")
    assert not policy.matches("a.b.example.com")
    assert not policy.matches("example.com")
    assert not policy.matches("mx1.example.com.evil.test")
    assert not policy.matches("mx1example.com")
    assert policy.matches("Mail.Example.Net.")
    assert not policy.matches("mx.mail.example.net")
    assert not policy.matches("")


def test_tls_requirement() -> None:
    mx = ("mx.example.com",)
    enforce = MTASTSPolicy("1", "enforce", mx, 60)
    testing = MTASTSPolicy("1", "testing", mx, 60)
    listed = tls_requirement(enforce, "MX.example.com.")
    assert (listed.tls, listed.deliver, listed.require_verified_tls) == (MXTLS.VERIFIED, True, True)
    skipped = tls_requirement(enforce, "other.example.com")
    assert (skipped.tls, skipped.deliver) == (MXTLS.SKIP, False)
    assert "other.example.com" in skipped.reason
    assert tls_requirement(testing, "mx.example.com").tls is MXTLS.REPORT
    report = tls_requirement(testing, "other.example.com")
    assert (report.tls, report.deliver, report.require_verified_tls) == (MXTLS.REPORT, True, False)
    assert "not in the MTA-STS policy" in report.reason
    assert tls_requirement(None, "mx.example.com").tls is MXTLS.OPPORTUNISTIC


_policy_lines = st.lists(
    st.one_of(
        st.sampled_from(
            ["version: STSv1", "mode: enforce", "mode: none", "mx: *.a.test", "max_age: 86400"]
        ),
        st.text(max_size=40),
    ),
    max_size=8,
)


@given(st.one_of(st.text(), _policy_lines.map("\r\n".join)))
def test_parse_policy_raises_only_policy_error(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError:
        return
    assert policy.mode in ("enforce", "testing", "none")
    assert 0 <= policy.max_age <= 31_557_600
    for pattern in policy.mx:
        policy.matches(pattern)


@given(st.lists(st.one_of(st.text(), st.text().map(lambda t: "v=STSv1;" + t)), max_size=3))
def test_parse_sts_record_never_raises(records: list[str]) -> None:
    policy_id = parse_sts_record(records)
    assert policy_id is None or (policy_id.isascii() and policy_id.isalnum())


@given(st.text())
def test_matches_never_raises(host: str) -> None:
    MTASTSPolicy("1", "enforce", ("*.example.com", "mx.example.com"), 1).matches(host)
