"""
The outcome of the checks on one inbound message, and its
Authentication-Results header field (RFC 8601).

Every result is a frozen dataclass.  Text that came from the outside (the
HELO name, the MAIL FROM domain, DKIM tags) is only ever written into the
header as a token or an escaped quoted-string of printable ASCII, so a
hostile value can neither break the header nor add a field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

SPFOutcome = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
DKIMOutcome = Literal["none", "pass", "fail", "neutral", "temperror", "permerror"]
DMARCOutcome = Literal["none", "pass", "fail", "temperror", "permerror"]
Policy = Literal["none", "quarantine", "reject"]
#: What the SMTP layer does with the message: deliver to the inbox, file it
#: into Junk, or refuse it (550 5.7.1).
Disposition = Literal["accept", "quarantine", "reject"]

_STRICTNESS: dict[Disposition, int] = {"accept": 0, "quarantine": 1, "reject": 2}


@dataclass(frozen=True)
class SPFResult:
    """
    The SPF result (RFC 7208) for the MAIL FROM identity, or for the HELO
    identity when MAIL FROM is null.

    @ivar domain: the domain that was checked (lower case, A-labels); empty
        when there was none to check.
    @ivar scope: C{"mailfrom"} or C{"helo"}, the identity that was checked.
    @ivar detail: the evaluator's explanation, for logs only: it may quote the
        sender's DNS records.
    """

    result: SPFOutcome
    domain: str
    scope: Literal["mailfrom", "helo"]
    detail: str = ""


@dataclass(frozen=True)
class DKIMResult:
    """
    The result of verifying one DKIM-Signature field (RFC 6376).

    @ivar domain: the signing domain (C{d=}), empty when unreadable.
    @ivar selector: the selector (C{s=}).
    @ivar algorithm: C{a=}, e.g. C{rsa-sha256} or C{ed25519-sha256}.
    @ivar signature: the C{b=} value without whitespace.
    @ivar reason: why it did not pass, in gk's own words (empty on pass).
    """

    result: DKIMOutcome
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    signature: str = ""
    reason: str = ""


@dataclass(frozen=True)
class DMARCResult:
    """
    The DMARC result (RFC 7489) for one RFC5322.From domain.

    @ivar from_domain: the From domain evaluated (empty when none was found).
    @ivar policy: the record's C{p=}; L{None} when no usable record was
        found.
    @ivar subdomain_policy: the record's C{sp=}, which applies instead of
        C{p=} to a subdomain that has no record of its own.
    @ivar record_domain: where the record was found: the From domain or its
        organizational domain.
    @ivar pct: the record's C{pct=}.
    @ivar sampled_out: a failing message fell outside C{pct=}, so the next
        less strict policy applied (RFC 7489 6.6.4).
    @ivar disposition: what to do with the message because of this result.
    """

    result: DMARCOutcome
    from_domain: str = ""
    policy: Policy | None = None
    subdomain_policy: Policy | None = None
    record_domain: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    pct: int = 100
    sampled_out: bool = False
    disposition: Disposition = "accept"
    reason: str = ""


def strictest(dispositions: list[Disposition]) -> Disposition:
    """The strictest of C{dispositions} (C{"accept"} for none)."""
    return max(dispositions, key=_STRICTNESS.__getitem__, default="accept")


@dataclass(frozen=True)
class AuthResults:
    """
    Everything checked on one message.

    @ivar dmarc_results: one result per distinct From domain; a From field
        naming several domains is judged by the strictest of them.
    """

    authserv_id: str
    spf: SPFResult
    dkim: tuple[DKIMResult, ...] = ()
    dmarc_results: tuple[DMARCResult, ...] = field(default=())

    @property
    def dmarc(self) -> DMARCResult:
        """The DMARC result that decides the disposition."""
        if not self.dmarc_results:
            return DMARCResult("none", reason="no From domain")
        return max(self.dmarc_results, key=lambda r: _STRICTNESS[r.disposition])

    @property
    def disposition(self) -> Disposition:
        """C{"accept"}, C{"quarantine"} (file into Junk) or C{"reject"} (550 5.7.1)."""
        return strictest([r.disposition for r in self.dmarc_results])

    def header(self) -> str:
        """
        The whole C{Authentication-Results} field, folded to lines of at most
        78 characters where possible (never more than 998), CRLF-terminated.

        The text is pure ASCII: C{header().encode("ascii")} is ready to put
        in front of the message.
        """
        return format_header(self.authserv_id, self._resinfos())

    def _resinfos(self) -> list[list[str]]:
        infos: list[list[str]] = [_spf_resinfo(self.spf)]
        if self.dkim:
            infos.extend(_dkim_resinfo(d) for d in self.dkim)
        else:
            infos.append(["dkim=none"])
        dmarcs = self.dmarc_results or (self.dmarc,)
        infos.extend(_dmarc_resinfo(d) for d in dmarcs)
        return infos


# -- RFC 8601 formatting ---------------------------------------------------

#: RFC 2045 token characters: printable ASCII less SPACE and tspecials.
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
#: Longest value written; longer ones are cut (RFC 5322 allows 998 a line).
_MAX_VALUE = 255
_SOFT_LIMIT = 78


def pvalue(text: str) -> str:
    """
    C{text} as an RFC 8601 value: a token when it is one, otherwise a
    quoted-string.  Anything but printable ASCII becomes C{?}; the result is
    at most about 260 characters.
    """
    text = text[:_MAX_VALUE]
    if _TOKEN.match(text):
        return text
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(text: str) -> str:
    """C{text} as an RFC 5322 comment of printable ASCII, parentheses escaped."""
    safe = "".join(c if " " <= c <= "~" else "?" for c in text[:_MAX_VALUE])
    return "(" + re.sub(r"([()\\])", r"\\\1", safe) + ")"


def format_header(authserv_id: str, resinfos: list[list[str]]) -> str:
    """
    Assemble the field: each resinfo (a list of words: C{method=result},
    comments, C{reason=}, properties) starts a new line; a line that would
    pass 78 characters folds between words.
    """
    lines = [f"Authentication-Results: {pvalue(authserv_id)}"]
    if not resinfos:
        lines[-1] += "; none"
    for words in resinfos:
        lines[-1] += ";"
        line = " " + words[0]
        for word in words[1:]:
            if len(line) + 1 + len(word) > _SOFT_LIMIT:
                lines.append(line)
                line = "  " + word
            else:
                line += " " + word
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _spf_resinfo(spf: SPFResult) -> list[str]:
    words = [f"spf={spf.result}"]
    if spf.domain:
        words.append(f"smtp.{spf.scope}={pvalue(spf.domain)}")
    return words


def _dkim_resinfo(dkim: DKIMResult) -> list[str]:
    words = [f"dkim={dkim.result}"]
    if dkim.reason:
        words.append(f"reason={pvalue(dkim.reason)}")
    if dkim.domain:
        words.append(f"header.d={pvalue(dkim.domain)}")
    if dkim.selector:
        words.append(f"header.s={pvalue(dkim.selector)}")
    if dkim.algorithm:
        words.append(f"header.a={pvalue(dkim.algorithm)}")
    if dkim.signature:
        # RFC 6008: enough of b= to tell signatures apart.
        words.append(f"header.b={pvalue(dkim.signature[:12])}")
    return words


def _dmarc_resinfo(dmarc: DMARCResult) -> list[str]:
    words = [f"dmarc={dmarc.result}"]
    if dmarc.policy is not None:
        details = [f"p={dmarc.policy}"]
        if dmarc.subdomain_policy is not None:
            details.append(f"sp={dmarc.subdomain_policy}")
        if dmarc.pct != 100:
            details.append(f"pct={dmarc.pct}")
        # In DMARC's words (RFC 7489 appendix C): none, quarantine, reject.
        details.append("dis=" + ("none" if dmarc.disposition == "accept" else dmarc.disposition))
        words.append(comment(" ".join(details)))
    if dmarc.reason:
        words.append(f"reason={pvalue(dmarc.reason)}")
    if dmarc.from_domain:
        words.append(f"header.from={pvalue(dmarc.from_domain)}")
    return words


# -- forged fields ---------------------------------------------------------

_FIELD_NAME = re.compile(rb"authentication-results[ \t]*:", re.IGNORECASE)
_LEADING_CFWS = re.compile(rb"(?:[ \t\r\n]+|\((?:[^()\\]|\\.)*\))*")


def remove_own_results(message: bytes, authserv_id: str) -> bytes:
    """
    Remove every C{Authentication-Results} field that claims to come from
    C{authserv_id} (RFC 8601 section 5: a sender must not be able to forge
    this server's verdict).  Other fields and the body are left byte-exact.
    """
    own = authserv_id.lower().encode("ascii", "replace")
    end = _header_end(message)
    kept: list[bytes] = []
    current: list[bytes] = []

    def flush() -> None:
        if current and not _claims(b"".join(current), own):
            kept.extend(current)
        current.clear()

    for line in message[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        flush()
        current.append(line)
    flush()
    return b"".join(kept) + message[end:]


def _header_end(message: bytes) -> int:
    """Offset of the blank line after the header (or the end)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = message.find(sep)
        if i >= 0:
            return i + len(sep) // 2
    return len(message)


def _claims(field_bytes: bytes, own: bytes) -> bool:
    match = _FIELD_NAME.match(field_bytes)
    if match is None:
        return False
    rest = field_bytes[match.end() :]
    cfws = _LEADING_CFWS.match(rest)
    if cfws is not None:
        rest = rest[cfws.end() :]
    ident = re.match(rb'"((?:[^"\\]|\\.)*)"|[^\s;()]+', rest)
    if ident is None:
        return False
    value = ident.group(1) if ident.group(1) is not None else ident.group(0)
    return value.lower() == own
