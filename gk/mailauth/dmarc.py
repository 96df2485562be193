"""
DMARC (RFC 7489): policy discovery, identifier alignment and disposition.

Written here rather than taken from a library: the candidates on PyPI each
fall short on a point that matters to a receiver.  C{dmarc} (1.2.1) calls
identifiers aligned in relaxed mode whenever one is a parent of the other,
so an SPF pass for a private public suffix (C{herokuapp.com}) would align
with any customer's From domain under it; it also leaves C{pct} and record
discovery to the caller.  C{authheaders} (0.16.3) looks up through the
global resolver (no C{[dns]} nameservers, no budget), uses a 2019 copy of
the Public Suffix List and ignores C{pct}.  C{checkdmarc} checks a domain's
published records, not a received message.  What is left is small: this
module, with the organizational domain taken from C{publicsuffixlist}
(the Public Suffix List, refreshed with each release).

Every DNS question goes through the check's L{Lookups} (L{discover} blocks:
run it in a worker thread); L{evaluate} is pure.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Literal, cast

from publicsuffixlist import PublicSuffixList

from gk.mailauth.resolver import DNSTempError, Lookups, a_label
from gk.mailauth.results import (
    Disposition,
    DKIMResult,
    DMARCResult,
    Policy,
    SPFResult,
)

#: From domains evaluated per message (RFC 7489 6.6.1: every one, the
#: strictest result wins); a From field naming more goes to Junk.
MAX_FROM_DOMAINS = 5

_VERSION = re.compile(r"v[ \t]*=[ \t]*DMARC1[ \t]*(;|\Z)")
_POLICIES = ("none", "quarantine", "reject")
_DISPOSITIONS: dict[Policy, Disposition] = {
    "none": "accept",
    "quarantine": "quarantine",
    "reject": "reject",
}
#: RFC 7489 6.6.4: a message sampled out of pct= gets the next less strict policy.
_LESS_STRICT: dict[Policy, Policy] = {"reject": "quarantine", "quarantine": "none", "none": "none"}


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str | None:
    """
    RFC 7489 3.2: the public suffix of C{domain} plus one label, or L{None}
    when C{domain} is itself a public suffix.
    """
    org: str | None = _psl().privatesuffix(a_label(domain))
    return org


def aligned(identifier: str, from_domain: str, strict: bool) -> bool:
    """
    RFC 7489 3.1: strict alignment needs the same domain; relaxed, the same
    organizational domain (a public suffix aligns with nothing but itself).
    """
    identifier, from_domain = a_label(identifier), a_label(from_domain)
    if not identifier or not from_domain:
        return False
    if identifier == from_domain:
        return True
    if strict:
        return False
    org = organizational_domain(from_domain)
    return org is not None and org == organizational_domain(identifier)


class InvalidRecord(Exception):
    """A DMARC record without a valid policy (RFC 7489 6.6.3): no DMARC applies."""


@dataclass(frozen=True)
class Record:
    """The tags of a DMARC record that a receiver acts on."""

    p: Policy
    sp: Policy | None = None
    adkim_strict: bool = False
    aspf_strict: bool = False
    pct: int = 100


def parse_record(text: str) -> Record:
    """
    Read a DMARC record (RFC 7489 6.3, 6.4).

    Unknown tags are ignored; an invalid C{adkim}, C{aspf} or C{pct} falls
    back to its default.  A record whose C{p} is missing or invalid, or whose
    C{sp} is invalid, counts as C{p=none} when it names a report address
    (C{rua}), and as unusable otherwise (RFC 7489 6.6.3).

    @raise InvalidRecord: not a DMARC record, or unusable as above.
    """
    parts = [part.strip() for part in text.split(";")]
    tags: dict[str, str] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        if eq:
            tags.setdefault(name.strip().lower(), value.strip())
    if not _VERSION.match(text.strip()):
        raise InvalidRecord("not a DMARC1 record")
    p, sp = tags.get("p", "").lower(), tags.get("sp")
    if p not in _POLICIES or (sp is not None and sp.lower() not in _POLICIES):
        if any(":" in uri for uri in tags.get("rua", "").split(",")):
            return Record("none")
        raise InvalidRecord("no valid policy in DMARC record")
    pct = tags.get("pct", "100")
    return Record(
        p=cast(Policy, p),
        sp=cast(Policy, sp.lower()) if sp is not None else None,
        adkim_strict=tags.get("adkim", "r").lower() == "s",
        aspf_strict=tags.get("aspf", "r").lower() == "s",
        pct=int(pct) if pct.isdigit() and int(pct) <= 100 else 100,
    )


@dataclass(frozen=True)
class Discovery:
    """
    The outcome of looking for the DMARC record of one From domain.

    @ivar outcome: C{"found"}; C{"none"} (no record, or several, at the
        place that decides); C{"temperror"}; C{"permerror"} (the record has
        no usable policy).
    """

    from_domain: str
    outcome: Literal["found", "none", "temperror", "permerror"]
    record: Record | None = None
    record_domain: str = ""


def discover(lookups: Lookups, from_domain: str) -> Discovery:
    """
    RFC 7489 6.6.3: the record at C{_dmarc.<From domain>}, else at the
    organizational domain's (blocking; never raises).
    """
    try:
        for domain in _candidates(from_domain):
            records = [
                text
                for text in (t.decode("utf-8", "replace") for t in lookups.txt(f"_dmarc.{domain}"))
                if _VERSION.match(text.strip())
            ]
            if len(records) > 1:
                return Discovery(from_domain, "none")
            if records:
                return Discovery(from_domain, "found", parse_record(records[0]), domain)
    except DNSTempError:
        return Discovery(from_domain, "temperror")
    except InvalidRecord:
        return Discovery(from_domain, "permerror")
    return Discovery(from_domain, "none")


def _candidates(from_domain: str) -> list[str]:
    org = organizational_domain(from_domain)
    return [from_domain] if org is None or org == from_domain else [from_domain, org]


def evaluate(
    discovery: Discovery,
    spf: SPFResult,
    dkim: Sequence[DKIMResult],
    rng: random.Random,
) -> DMARCResult:
    """
    The DMARC result for one From domain, from its record and the SPF and
    DKIM results.

    Passes when SPF or a DKIM signature passes for an identifier aligned
    with the From domain.  Otherwise a temporary error of an aligned
    identifier gives C{temperror} (RFC 7489 section 6.6.2: the policy
    cannot be applied), and anything else fails and takes the record's
    policy: C{sp=} for a subdomain whose record is its organizational
    domain's, C{p=} otherwise, one step weaker when the message falls
    outside C{pct=} (RFC 7489 6.6.4).  Only a failure has a disposition
    other than C{"accept"}.
    """
    from_domain = discovery.from_domain
    if discovery.outcome == "temperror":
        return DMARCResult("temperror", from_domain, reason="DMARC record lookup failed")
    if discovery.outcome == "permerror":
        return DMARCResult("permerror", from_domain, reason="invalid DMARC record")
    record = discovery.record
    if record is None:
        return DMARCResult("none", from_domain)
    spf_aligned = bool(spf.domain) and aligned(spf.domain, from_domain, record.aspf_strict)
    aligned_dkim = [d for d in dkim if aligned(d.domain, from_domain, record.adkim_strict)]
    spf_pass = spf_aligned and spf.result == "pass"
    dkim_pass = any(d.result == "pass" for d in aligned_dkim)
    result = functools.partial(
        DMARCResult,
        from_domain=from_domain,
        policy=record.p,
        subdomain_policy=record.sp,
        record_domain=discovery.record_domain,
        spf_aligned=spf_pass,
        dkim_aligned=dkim_pass,
        pct=record.pct,
    )
    if spf_pass or dkim_pass:
        return result("pass")
    if (spf_aligned and spf.result == "temperror") or any(
        d.result == "temperror" for d in aligned_dkim
    ):
        return result("temperror", reason="SPF or DKIM could not be checked")
    is_subdomain = discovery.record_domain != from_domain
    policy = record.sp if is_subdomain and record.sp is not None else record.p
    sampled_out = record.pct < 100 and rng.random() * 100 >= record.pct
    if sampled_out:
        policy = _LESS_STRICT[policy]
    return result("fail", sampled_out=sampled_out, disposition=_DISPOSITIONS[policy])


def from_domains(message: bytes) -> list[str] | None:
    """
    The distinct domains of the RFC5322.From field(s) of C{message}, in
    order (lower case, A-labels); L{None} when there is no From field.
    """
    values = header_values(message, b"from")
    if not values:
        return None
    domains = [
        a_label(addr.rpartition("@")[2]) for _name, addr in getaddresses(values) if "@" in addr
    ]
    return list(dict.fromkeys(d for d in domains if d))


def header_values(message: bytes, name: bytes) -> list[str]:
    """
    The unfolded values of the header fields called C{name} (lower case),
    decoded as UTF-8 (RFC 6532) with undecodable bytes replaced.
    """
    header = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", header):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    values = []
    for field in fields:
        field_name, colon, value = field.partition(b":")
        if colon and field_name.rstrip(b" \t").lower() == name:
            values.append(value.decode("utf-8", "replace").strip())
    return values
