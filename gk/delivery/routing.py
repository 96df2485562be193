"""
Where mail for a domain goes: its MX hosts in preference order (RFC 5321
5.1), with their addresses.

  - MX records sorted by preference; hosts of equal preference in random
    order, so that load spreads as their owner meant;
  - no MX record: the domain itself is the one "implicit MX" (its A/AAAA);
  - a null MX (RFC 7505: one MX record, preference 0, exchange ".") means
    the domain takes no mail: a permanent failure at once;
  - a domain with neither MX nor address records does not receive mail: a
    permanent failure, as Postfix's "Host or domain name not found";
  - a DNS failure (timeout, SERVFAIL) is temporary: try again later.

Everything here blocks (dnspython): run it in a thread.  Addresses are
IPv4 first, then IPv6: many small servers have no IPv6 route, and a host
unreachable over one family is tried over the other anyway.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import dns.name

from gk.mailauth.resolver import DNSTempError, Lookups, a_label


@dataclass(frozen=True)
class MXHost:
    """One host to try, with its addresses (none: it did not resolve)."""

    name: str
    preference: int
    addresses: tuple[str, ...]


class RouteError(Exception):
    """
    No host to try.  C{permanent}: the domain takes no mail (bounce now);
    otherwise try again later.  C{status} is the RFC 3463 code for the DSN.
    """

    def __init__(self, message: str, *, permanent: bool, status: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


def mx_hosts(lookups: Lookups, domain: str, rng: random.Random | None = None) -> list[MXHost]:
    """
    The hosts to try for C{domain}, best first, each with its addresses.

    @raise RouteError: null MX or no such domain (permanent), or DNS
        failure (temporary).
    """
    rng = rng or random.Random()
    domain = a_label(domain)
    try:
        records = lookups.query(domain, "MX")
    except DNSTempError as e:
        raise RouteError(
            f"MX lookup for {domain} failed: {e}", permanent=False, status="4.4.3"
        ) from None
    exchanges = [
        (
            int(r.preference),  # type: ignore[attr-defined]
            "" if r.exchange == dns.name.root else r.exchange.to_text(omit_final_dot=True).lower(),  # type: ignore[attr-defined]
        )
        for r in records
    ]
    if any(exchange == "" for _, exchange in exchanges):
        if len(exchanges) == 1:
            raise RouteError(
                f"{domain} does not accept mail (null MX)", permanent=True, status="5.1.10"
            )
        # RFC 7505 3: a null MX among others is a mistake; ignore it.
        exchanges = [(p, e) for p, e in exchanges if e != ""]
    implicit = not exchanges
    if implicit:
        exchanges = [(0, domain)]
    rng.shuffle(exchanges)
    exchanges.sort(key=lambda item: item[0])  # stable: ties stay shuffled
    hosts: list[MXHost] = []
    failure: DNSTempError | None = None
    for preference, name in dict.fromkeys(exchanges):
        try:
            addresses = _addresses(lookups, name)
        except DNSTempError as e:
            failure = e
            continue
        hosts.append(MXHost(name, preference, addresses))
    if any(host.addresses for host in hosts):
        return hosts
    if failure is not None:
        raise RouteError(
            f"address lookup for {domain}'s mail hosts failed: {failure}",
            permanent=False,
            status="4.4.3",
        )
    if implicit:
        raise RouteError(
            f"{domain} has no MX and no address record: no such mail domain",
            permanent=True,
            status="5.1.2",
        )
    raise RouteError(
        f"none of {domain}'s MX hosts has an address ({', '.join(h.name for h in hosts)})",
        permanent=True,
        status="5.4.4",
    )


def _addresses(lookups: Lookups, name: str) -> tuple[str, ...]:
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        found.extend(r.address for r in lookups.query(name, rdtype))  # type: ignore[attr-defined]
    return tuple(dict.fromkeys(found))
