"""
SPF (RFC 7208) with pyspf, the reference implementation, asking its DNS
questions through a L{Lookups} (the C{[dns]} resolver and the check's
deadline).

pyspf does the whole evaluation: every mechanism and modifier, macros, the
limit of 10 DNS-querying terms, the void lookup limit of 2, CIDR lengths,
the HELO identity when MAIL FROM is null.  What it lacks is a way to choose
its resolver per query: it calls the module-level C{spf.DNSLookup}.  This
module installs, once, a stand-in for that function which sends the
lookups of a check running in the current thread to that check's
L{Lookups}, and those of any other caller to pyspf's own function, so
other users of pyspf in the process see no difference.
"""

from __future__ import annotations

import threading
from typing import Any

import spf as pyspf  # type: ignore[import-untyped]

from gk.mailauth.resolver import DNSTempError, Lookups, a_label
from gk.mailauth.results import SPFOutcome, SPFResult

_OUTCOMES: frozenset[str] = frozenset(
    ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
)

_current = threading.local()
_library_lookup = pyspf.DNSLookup


def _lookup(name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list[Any]:
    """pyspf's C{DNSLookup} contract, answered by the current check's L{Lookups}."""
    lookups: Lookups | None = getattr(_current, "lookups", None)
    if lookups is None:
        return _library_lookup(name, qtype, strict, timeout)  # type: ignore[no-any-return]
    try:
        records: list[Any] = list(lookups.query(name, qtype))
    except DNSTempError as e:
        raise pyspf.TempError(f"DNS {e}") from None
    key = (name, qtype)
    if qtype in ("A", "AAAA"):
        return [(key, r.address) for r in records]
    if qtype == "MX":
        return [(key, (r.preference, r.exchange.to_text())) for r in records]
    if qtype == "PTR":
        return [(key, r.target.to_text(omit_final_dot=True)) for r in records]
    if qtype in ("TXT", "SPF"):
        return [(key, tuple(r.strings)) for r in records]
    return []


pyspf.DNSLookup = _lookup


def check_spf(
    lookups: Lookups, client_ip: str, helo: str, mail_from: str, receiver: str
) -> SPFResult:
    """
    Evaluate SPF for a client (blocking: run it in a worker thread).

    @param client_ip: the SMTP client's address (IPv4, IPv6, or IPv4-mapped
        IPv6).
    @param helo: the HELO/EHLO name as the client gave it.
    @param mail_from: the MAIL FROM address without angle brackets, C{""}
        for the null reverse-path (the HELO identity is checked then).
    @param receiver: this server's host name (the C{%{r}} macro).
    @return: the result; DNS failures and an exhausted budget give
        C{temperror}, a broken record C{permerror}.  Never raises.
    """
    scope: Any = "mailfrom" if mail_from else "helo"
    identity = mail_from or helo
    domain = _domain_of(identity)
    if not domain:
        return SPFResult("none", "", scope, "no domain to check")
    _current.lookups = lookups
    try:
        query = pyspf.query(
            i=client_ip, s=mail_from, h=helo, receiver=receiver, strict=True, querytime=0
        )
        result, _code, explanation = query.check()
    except pyspf.TempError as e:
        result, explanation = "temperror", str(e)
    except (pyspf.PermError, ValueError) as e:
        result, explanation = "permerror", str(e)
    finally:
        _current.lookups = None
    outcome: SPFOutcome = result if result in _OUTCOMES else "permerror"
    return SPFResult(outcome, domain, scope, str(explanation))


def _domain_of(identity: str) -> str:
    """The domain of a MAIL FROM address or HELO name, as L{a_label} gives it."""
    return a_label(identity.rpartition("@")[2])
