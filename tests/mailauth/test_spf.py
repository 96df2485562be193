"""
SPF (RFC 7208) through MailAuthenticator.check_sender, against real records
served by the loopback DNS server.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from gk.mailauth import MailAuthenticator, SPFResult
from tests.dnsserver import DNSTestServer

GOOD_IP = "192.0.2.7"
OTHER_IP = "198.51.100.9"


async def spf(
    authenticator: MailAuthenticator,
    ip: str = GOOD_IP,
    mail_from: str = "alice@example.org",
    helo: str = "mx.example.org",
) -> SPFResult:
    return await authenticator.check_sender(ip, helo, mail_from)


@pytest_twisted.ensureDeferred
async def test_ip4_cidr(authenticator: MailAuthenticator, dns_server: DNSTestServer) -> None:
    dns_server.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    result = await spf(authenticator)
    assert result == SPFResult("pass", "example.org", "mailfrom", result.detail)
    assert (await spf(authenticator, "192.0.3.1")).result == "fail"


@pytest_twisted.ensureDeferred
async def test_ip6_cidr_and_ipv4_mapped_clients(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 ip6:2001:db8:10::/48 ip4:192.0.2.7 -all")
    assert (await spf(authenticator, "2001:db8:10:1::25")).result == "pass"
    assert (await spf(authenticator, "2001:db8:11::25")).result == "fail"
    assert (await spf(authenticator, "::ffff:192.0.2.7")).result == "pass"


@pytest_twisted.ensureDeferred
async def test_a_with_and_without_cidr(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 a a:out.example.net/28 -all")
    dns_server.a("example.org", "192.0.2.7")
    dns_server.a("out.example.net", "203.0.113.1")
    assert (await spf(authenticator, "192.0.2.7")).result == "pass"
    assert (await spf(authenticator, "203.0.113.14")).result == "pass"
    assert (await spf(authenticator, "203.0.113.17")).result == "fail"


@pytest_twisted.ensureDeferred
async def test_mx(authenticator: MailAuthenticator, dns_server: DNSTestServer) -> None:
    dns_server.txt("example.org", "v=spf1 mx mx:example.net/24 -all")
    dns_server.mx("example.org", "mx1.example.org")
    dns_server.a("mx1.example.org", "192.0.2.7")
    dns_server.mx("example.net", "mx.example.net", preference=5)
    dns_server.aaaa("mx.example.net", "2001:db8::25")
    dns_server.a("mx.example.net", "203.0.113.1")
    assert (await spf(authenticator, "192.0.2.7")).result == "pass"
    assert (await spf(authenticator, "203.0.113.200")).result == "pass"
    assert (await spf(authenticator, "2001:db8::25")).result == "pass"
    assert (await spf(authenticator, OTHER_IP)).result == "fail"


@pytest_twisted.ensureDeferred
async def test_nested_include(authenticator: MailAuthenticator, dns_server: DNSTestServer) -> None:
    dns_server.txt("example.org", "v=spf1 include:_spf.example.net ~all")
    dns_server.txt("_spf.example.net", "v=spf1 include:_spf2.example.com -all")
    dns_server.txt("_spf2.example.com", "v=spf1 ip4:192.0.2.0/25 -all")
    assert (await spf(authenticator, "192.0.2.7")).result == "pass"
    # A fail inside an include is only "no match": the outer ~all decides.
    assert (await spf(authenticator, OTHER_IP)).result == "softfail"


@pytest_twisted.ensureDeferred
async def test_include_of_a_domain_without_record_is_permerror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 include:nothing.example.net -all")
    assert (await spf(authenticator)).result == "permerror"


@pytest_twisted.ensureDeferred
async def test_redirect(authenticator: MailAuthenticator, dns_server: DNSTestServer) -> None:
    dns_server.txt("example.org", "v=spf1 redirect=_spf.example.net")
    dns_server.txt("_spf.example.net", "v=spf1 ip4:192.0.2.7 ?all")
    assert (await spf(authenticator, "192.0.2.7")).result == "pass"
    assert (await spf(authenticator, OTHER_IP)).result == "neutral"
    dns_server.txt("example.com", "v=spf1 redirect=nothing.example.net")
    result = await spf(authenticator, mail_from="bob@example.com")
    assert result.result == "permerror"


@pytest_twisted.ensureDeferred
async def test_exists_with_macros(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 exists:%{i}.%{l}._allow.%{d} -all")
    dns_server.a("192.0.2.7.alice._allow.example.org", "127.0.0.2")
    assert (await spf(authenticator, "192.0.2.7")).result == "pass"
    assert (await spf(authenticator, "192.0.2.8")).result == "fail"
    assert (await spf(authenticator, "192.0.2.7", mail_from="eve@example.org")).result == "fail"


@pytest_twisted.ensureDeferred
async def test_ptr(authenticator: MailAuthenticator, dns_server: DNSTestServer) -> None:
    dns_server.txt("example.org", "v=spf1 ptr -all")
    dns_server.ptr("192.0.2.7", "out.example.org")
    dns_server.a("out.example.org", "192.0.2.7")
    dns_server.ptr("192.0.2.8", "forged.example.org")  # no forward confirmation
    assert (await spf(authenticator, "192.0.2.7")).result == "pass"
    assert (await spf(authenticator, "192.0.2.8")).result == "fail"


@pytest.mark.parametrize(
    ("qualifier", "expected"),
    [("+", "pass"), ("", "pass"), ("-", "fail"), ("~", "softfail"), ("?", "neutral")],
)
@pytest_twisted.ensureDeferred
async def test_all_with_each_qualifier(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, qualifier: str, expected: str
) -> None:
    dns_server.txt("example.org", f"v=spf1 ip4:203.0.113.0/24 {qualifier}all")
    assert (await spf(authenticator, GOOD_IP)).result == expected


@pytest_twisted.ensureDeferred
async def test_more_than_ten_dns_terms_is_permerror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    for n in range(1, 12):
        dns_server.a(f"h{n}.example.org", "203.0.113.1")
    ten = " ".join(f"a:h{n}.example.org" for n in range(1, 11))
    dns_server.txt("example.org", f"v=spf1 {ten} ip4:192.0.2.7 -all")
    assert (await spf(authenticator)).result == "pass"
    dns_server.remove("example.org")
    dns_server.txt("example.org", f"v=spf1 {ten} a:h11.example.org ip4:192.0.2.7 -all")
    result = await spf(authenticator)
    assert result.result == "permerror"
    assert dns_server.asked("h11.example.org") == 0


@pytest_twisted.ensureDeferred
async def test_include_chain_counts_towards_the_limit(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    for n in range(12):
        dns_server.txt(f"i{n}.example.net", f"v=spf1 include:i{n + 1}.example.net -all")
    dns_server.txt("example.org", "v=spf1 include:i0.example.net -all")
    assert (await spf(authenticator)).result == "permerror"


@pytest_twisted.ensureDeferred
async def test_void_lookup_limit(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 a:v1.example.org mx:v2.example.org -all")
    assert (await spf(authenticator)).result == "fail"  # two void lookups are allowed
    dns_server.remove("example.org")
    dns_server.txt(
        "example.org", "v=spf1 a:v1.example.org mx:v2.example.org exists:v3.example.org -all"
    )
    assert (await spf(authenticator)).result == "permerror"


@pytest_twisted.ensureDeferred
async def test_no_record_is_none(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "google-site-verification=abc")
    assert (await spf(authenticator)).result == "none"
    assert (await spf(authenticator, mail_from="x@nowhere.example")).result == "none"


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 ip4:192.0.2.300 -all",
        "v=spf1 ip4:192.0.2.0/33 -all",
        "v=spf1 frobnicate -all",
        "v=spf1 =a -all",
        "v=spf1 redirect=a.example.net redirect=b.example.net",
    ],
)
@pytest_twisted.ensureDeferred
async def test_syntax_error_is_permerror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer, record: str
) -> None:
    dns_server.txt("example.org", record)
    assert (await spf(authenticator)).result == "permerror"


@pytest_twisted.ensureDeferred
async def test_two_records_are_permerror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 -all", "v=spf1 +all")
    assert (await spf(authenticator)).result == "permerror"


@pytest_twisted.ensureDeferred
async def test_helo_identity_when_mail_from_is_null(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("mx.example.org", "v=spf1 ip4:192.0.2.7 -all")
    result = await spf(authenticator, mail_from="")
    assert (result.result, result.domain, result.scope) == ("pass", "mx.example.org", "helo")
    assert (await spf(authenticator, OTHER_IP, mail_from="")).result == "fail"
    # An address literal as HELO is no domain to check.
    result = await spf(authenticator, mail_from="", helo="[192.0.2.7]")
    assert result.result == "none"


@pytest_twisted.ensureDeferred
async def test_server_failure_is_temperror(
    authenticator: MailAuthenticator, dns_server: DNSTestServer
) -> None:
    dns_server.txt("example.org", "v=spf1 include:broken.example.net -all")
    dns_server.fail("broken.example.net")
    assert (await spf(authenticator)).result == "temperror"
    dns_server.fail("example.org")
    assert (await spf(authenticator)).result == "temperror"
