"""
Client addresses as anti-abuse keys.

Limits are counted per I{source}, not per literal address: an IPv6 client
usually owns a whole /64 and can pick a new address in it for every
connection, so IPv6 addresses are grouped by prefix (/64 by default).
IPv4 addresses count one by one (/32).  IPv4-mapped IPv6 addresses
(C{::ffff:192.0.2.1}, what a dual-stack socket reports for an IPv4
client) count as the IPv4 address.  Configured networks (for example
loopback, or an office LAN) can be exempted from limits and blocks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The key of a peer that has no IP address (a UNIX socket).
LOCAL_KEY = "local"


def parse_ip(text: str) -> IPAddress | None:
    """
    C{text} as an IP address (brackets and an IPv6 zone such as C{%eth0}
    ignored, IPv4-mapped IPv6 turned into IPv4), or L{None} if it is not one.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def peer_ip(address: IAddress) -> str:
    """
    The IP address text of a transport's peer (C{transport.getPeer()}), or
    L{LOCAL_KEY} for a UNIX socket and anything else without an IP.
    """
    if isinstance(address, IPv4Address | IPv6Address):
        return str(address.host)
    return LOCAL_KEY


class AddressKeyer:
    """
    Turns client IP addresses into the keys limits are counted under, and
    says which addresses are exempt.

    Contract of L{key}: two addresses get the same key if and only if they
    are in the same IPv4 /C{ipv4_prefix} or IPv6 /C{ipv6_prefix} network;
    keys are short printable strings (C{"192.0.2.1"}, C{"2001:db8::/64"}).
    Text that is not an IP address is its own key, lower-cased and
    truncated, so that garbage cannot be used to build huge keys.
    """

    def __init__(
        self,
        ipv6_prefix: int = 64,
        ipv4_prefix: int = 32,
        exempt: Iterable[str] = (),
    ) -> None:
        """
        @param exempt: networks or addresses (C{"127.0.0.0/8"}, C{"::1"})
            that limits and blocks never apply to.
        @raise ValueError: a prefix is out of range or a network is invalid.
        """
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError("the IPv6 prefix must be between 1 and 128")
        if not 1 <= ipv4_prefix <= 32:
            raise ValueError("the IPv4 prefix must be between 1 and 32")
        self.ipv6_prefix = ipv6_prefix
        self.ipv4_prefix = ipv4_prefix
        networks: list[IPNetwork] = []
        for item in exempt:
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network") from None
        self.exempt: tuple[IPNetwork, ...] = tuple(networks)

    def key(self, ip: str) -> str:
        """The key C{ip} is counted under (see the class contract)."""
        address = parse_ip(ip)
        if address is None:
            return ip.strip().lower()[:64] or LOCAL_KEY
        if isinstance(address, ipaddress.IPv4Address):
            if self.ipv4_prefix == 32:
                return str(address)
            return str(ipaddress.ip_network(f"{address}/{self.ipv4_prefix}", strict=False))
        if self.ipv6_prefix == 128:
            return str(address)
        return str(ipaddress.ip_network(f"{address}/{self.ipv6_prefix}", strict=False))

    def is_exempt(self, ip: str) -> bool:
        """Whether C{ip} is in one of the exempt networks."""
        if not self.exempt:
            return False
        address = parse_ip(ip)
        if address is None:
            return False
        return any(address in network for network in self.exempt)
