"""Client addresses as limit keys."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from gk.security.addresses import LOCAL_KEY, AddressKeyer, parse_ip, peer_ip


def test_ipv4_counts_per_address() -> None:
    keyer = AddressKeyer()
    assert keyer.key("192.0.2.1") == "192.0.2.1"
    assert keyer.key("192.0.2.2") != keyer.key("192.0.2.1")


def test_ipv6_counts_per_64_by_default() -> None:
    keyer = AddressKeyer()
    assert keyer.key("2001:db8::1") == "2001:db8::/64"
    assert keyer.key("2001:db8::ffff:abcd:1") == "2001:db8::/64"
    assert keyer.key("2001:DB8:0:0:1::9") == "2001:db8::/64"
    assert keyer.key("2001:db8:0:1::1") == "2001:db8:0:1::/64"


def test_prefixes_are_configurable() -> None:
    keyer = AddressKeyer(ipv6_prefix=56, ipv4_prefix=24)
    assert keyer.key("2001:db8:0:ff::1") == "2001:db8::/56"
    assert keyer.key("192.0.2.77") == "192.0.2.0/24"
    assert AddressKeyer(ipv6_prefix=128).key("2001:db8::1") == "2001:db8::1"


def test_mapped_bracketed_and_scoped_forms() -> None:
    keyer = AddressKeyer()
    assert keyer.key("::ffff:192.0.2.1") == "192.0.2.1"
    assert keyer.key("[2001:db8::1]") == "2001:db8::/64"
    assert keyer.key("fe80::1%eth0") == "fe80::/64"
    assert parse_ip(" 192.0.2.1 ") is not None
    assert parse_ip("not an address") is None


def test_non_addresses_are_their_own_short_key() -> None:
    keyer = AddressKeyer()
    assert keyer.key("Local") == "local"
    assert len(keyer.key("x" * 10_000)) == 64
    assert keyer.key("") == LOCAL_KEY


def test_exempt_networks() -> None:
    keyer = AddressKeyer(exempt=["127.0.0.0/8", "::1"])
    assert keyer.is_exempt("127.0.0.1")
    assert keyer.is_exempt("127.9.9.9")
    assert keyer.is_exempt("::1")
    assert keyer.is_exempt("::ffff:127.0.0.1")
    assert not keyer.is_exempt("192.0.2.1")
    assert not keyer.is_exempt("2001:db8::1")
    assert not keyer.is_exempt("garbage")
    assert not AddressKeyer().is_exempt("127.0.0.1")


@pytest.mark.parametrize(
    "kwargs",
    [{"exempt": ["not-a-network"]}, {"ipv6_prefix": 0}, {"ipv6_prefix": 129}, {"ipv4_prefix": 33}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AddressKeyer(**kwargs)  # type: ignore[arg-type]


def test_peer_ip_of_transport_addresses() -> None:
    assert peer_ip(IPv4Address("TCP", "192.0.2.1", 1234)) == "192.0.2.1"
    assert peer_ip(IPv6Address("TCP", "2001:db8::1", 1234)) == "2001:db8::1"
    assert peer_ip(UNIXAddress(b"/run/gk.sock")) == LOCAL_KEY
