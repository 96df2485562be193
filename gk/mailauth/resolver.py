"""
DNS lookups for the mail checks, through the resolver of C{[dns]}, under one
time budget per check.

A L{DNSClient} is built once from L{gk.config.DNSConfig}: a dnspython
resolver that asks the configured nameservers (C{"host"} or C{"host:port"},
IPv6 as C{"::1"} or C{"[::1]:5353"}), or the system's when the list is
empty.  Each check (one SPF evaluation, or the DKIM + DMARC checks of one
message) takes a fresh L{Lookups} from L{DNSClient.lookups}: every query it
makes shares one deadline, C{timeout} seconds after the L{Lookups} was made,
so a check never outlives its budget however many names it looks up.

Everything here blocks: call it from a worker thread, never from the
reactor.  Answers are cached for their TTL, across checks.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable

import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
import idna

from gk.config import DNSConfig

#: The UDP payload size announced with EDNS0 (the DNS Flag Day 2020 value).
EDNS_PAYLOAD = 1232


def a_label(domain: str) -> str:
    """
    C{domain} as compared by the checks: lower case, A-labels, no final
    dot.  A name that IDNA cannot encode is only lower-cased.
    """
    domain = domain.strip().rstrip(".")
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return domain.lower()


class DNSTempError(Exception):
    """
    A lookup could not be answered now: the budget is spent, a nameserver
    timed out or failed (SERVFAIL, REFUSED), or none could be reached.  The
    checks report this as C{temperror}.
    """


def parse_nameserver(entry: str) -> tuple[str, int]:
    """
    Split one C{[dns] nameservers} entry into host and port.

    @param entry: C{"host"}, C{"host:port"}, C{"v6-address"} or
        C{"[v6-address]:port"}.
    @return: C{(host, port)}, port 53 when none is given.
    @raise ValueError: the entry is empty or its port is not a number.
    """
    entry = entry.strip()
    host, port = entry, "53"
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not host or host:port")
        port = rest[1:] or "53"
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} is not host or host:port")
    return host, int(port)


def _addresses(host: str) -> list[str]:
    """C{host} itself when it is an IP address, else its addresses (blocking)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, 53, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: Answers the resolver's cache keeps at most (bounded under a flood of domains).
CACHE_ENTRIES = 20_000


def build_resolver(config: DNSConfig) -> dns.resolver.Resolver:
    """
    A dnspython resolver for C{config}: the configured nameservers in their
    order, or the system's (C{/etc/resolv.conf}) when the list is empty.

    A nameserver given by name is resolved once, here (this blocks).  A
    system without a resolver configuration, or names that do not resolve,
    give a resolver without nameservers: every lookup then fails at once
    with L{DNSTempError} rather than hanging.
    """
    if config.nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        nameservers: list[str | dns.nameserver.Nameserver] = []
        for entry in config.nameservers:
            host, port = parse_nameserver(entry)
            nameservers.extend(dns.nameserver.Do53Nameserver(a, port) for a in _addresses(host))
        resolver.nameservers = nameservers
    else:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = []
    resolver.use_edns(0, 0, EDNS_PAYLOAD)
    # dnspython's LRU cache keeps each answer for its TTL and negative
    # answers for the SOA's negative TTL (RFC 2308): the same sender
    # domains recur from message to message.
    resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
    # A single try never waits longer than the whole budget.
    resolver.timeout = min(resolver.timeout, config.timeout)
    resolver.lifetime = config.timeout
    return resolver


class Lookups:
    """
    The DNS queries of one check, sharing one deadline.

    Not thread-safe: one check uses it from one thread.
    """

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._clock = clock
        self.deadline = clock() + timeout
        #: Every C{(name, type)} asked, in order (for logs and tests).
        self.asked: list[tuple[str, str]] = []

    def remaining(self) -> float:
        """Seconds left in the budget (never negative)."""
        return max(0.0, self.deadline - self._clock())

    def share(self, fraction: float) -> Lookups:
        """
        A L{Lookups} for one step of the check: its deadline is C{fraction}
        of the time left from now (never later than this one's), so that a
        slow step cannot starve the steps after it.
        """
        child = Lookups(
            self._resolver, self.remaining() * min(max(fraction, 0.0), 1.0), self._clock
        )
        child.asked = self.asked
        return child

    def query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """
        The records of type C{rdtype} at C{name}, after any CNAME chain.

        @param name: a domain name, absolute whether or not it ends in a dot;
            U-labels are encoded to A-labels.
        @return: the records; empty when the name does not exist (NXDOMAIN),
            has no records of that type, or is not a valid domain name.
        @raise DNSTempError: the budget is spent, or no nameserver gave an
            answer in time.
        """
        remaining = self.remaining()
        if remaining <= 0:
            raise DNSTempError(f"DNS time budget spent before {rdtype} {name}")
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError, ValueError):
            return []
        self.asked.append((qname.to_text(omit_final_dot=True), rdtype))
        try:
            answer = self._resolver.resolve(
                qname,
                dns.rdatatype.from_text(rdtype),
                search=False,
                raise_on_no_answer=False,
                lifetime=remaining,
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise DNSTempError(f"DNS timeout for {rdtype} {name}") from None
        except dns.resolver.NoNameservers:
            raise DNSTempError(f"no nameserver answered {rdtype} {name}") from None
        except dns.exception.DNSException as e:
            raise DNSTempError(f"DNS error for {rdtype} {name}: {e}") from None
        return list(answer.rrset) if answer.rrset is not None else []

    def txt(self, name: str) -> list[bytes]:
        """
        The TXT records at C{name}, each one's strings joined (RFC 7208
        3.3, RFC 6376 3.6.2.2, RFC 7489 6.1).

        @raise DNSTempError: as L{query}.
        """
        return [b"".join(rdata.strings) for rdata in self.query(name, "TXT")]  # type: ignore[attr-defined]


class DNSClient:
    """The resolver of C{[dns]}, handing out one L{Lookups} per check."""

    def __init__(self, config: DNSConfig) -> None:
        """Build the resolver (see L{build_resolver}; this may block briefly)."""
        self.timeout = config.timeout
        self.resolver = build_resolver(config)

    def lookups(self) -> Lookups:
        """A fresh L{Lookups}: its budget of C{timeout} seconds starts now."""
        return Lookups(self.resolver, self.timeout)
