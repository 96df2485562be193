"""
The DNS records to publish for a local domain (C{gk dns DOMAIN}), as data,
and their zone-file lines.

Nothing here does I/O: L{domain_records} builds the list from the config
and the domain's DKIM keys (read by the caller), L{zone_lines} turns it
into lines an operator pastes into a zone file or reads off into a DNS
provider's form.  L{check_records} compares the list with what DNS says,
through the L{Lookups} the caller hands it (blocking: run it in a thread).

Which records and why:

  - MX: the server itself (C{[server] hostname}).
  - SPF C{v=spf1 mx -all}: gk sends from the host its MX names.
  - DKIM: one TXT record per key under C{data_dir/dkim/DOMAIN/}.
  - DMARC: see L{DMARC_POLICY}.
  - MTA-STS (RFC 8461) and TLS-RPT (RFC 8460): see L{mta_sts_policy}.
  - C{autoconfig} (Thunderbird's autoconfiguration), and SRV records for
    mail clients (RFC 6186, RFC 8314) and CalDAV/CardDAV (RFC 6764).

SRV ports are those of the first listener of each role in the config (the
standard ports by default).  A role whose listener list is empty is
published with RFC 6186's target C{.} ("this service is not offered")
rather than left out: a client then stops looking instead of guessing host
names and ports.  CalDAV and CardDAV need HTTPS: their target is
C{[http] public_url} when it is an https:// URL (gk behind a TLS proxy),
else the first C{[http] tls_listen} port on C{[server] hostname}, else
"not offered".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import dns.rdata

from gk.config import Config
from gk.delivery.dkim_sign import DKIMKey
from gk.mailauth.resolver import DNSTempError, Lookups, a_label

#: Time to live of every record: an hour, short enough to fix a mistake soon.
DEFAULT_TTL = 3600
MX_PREFERENCE = 10
#: SRV priorities: implicit TLS is preferred over STARTTLS (RFC 8314 5.1).
IMPLICIT_TLS_PRIORITY = 0
STARTTLS_PRIORITY = 10
#: One week: senders refetch the MTA-STS policy at least that often.
MTA_STS_MAX_AGE = 604800
#: RFC 8461 3.2: "testing" first.  In "enforce" mode a sender refuses to
#: deliver when the certificate does not check (a self-signed one from
#: C{gk init}, an expired one, a name missing): testing lets the TLS-RPT
#: reports show such problems while mail still flows.  Switch to enforce
#: once the reports are clean.
MTA_STS_MODE = "testing"

#: DMARC defaults (RFC 7489), with C{{domain}} filled in:
#:   - p=quarantine: mail failing DMARC goes to the spam folder; p=none
#:     protects nothing, and p=reject would bounce the odd legitimate
#:     message a forwarder or mailing list broke before the operator has
#:     read a single report;
#:   - adkim=s, aspf=s: strict alignment holds for all mail gk sends, as
#:     it signs with d= the exact From domain and sends with that domain
#:     in MAIL FROM; strict stops other hosts of the organisation (a
#:     sub-domain's newsletter service) from passing as this domain;
#:   - rua=postmaster@: aggregate reports to an address every domain must
#:     have (RFC 5321 4.5.1); in the domain itself, so no authorisation
#:     record is needed (RFC 7489 7.1).
DMARC_POLICY = "v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{domain}"

#: Longest character-string in a TXT record (RFC 1035 3.3).
TXT_STRING_MAX = 255


@dataclass(frozen=True)
class Record:
    """
    One resource record.

    @ivar name: the owner name, absolute, without the final dot.
    @ivar type: C{MX}, C{TXT}, C{CNAME} or C{SRV}.
    @ivar value: the RDATA in zone-file form (host names with their final
        dot), except for TXT: the text itself, unquoted and whole.
    """

    name: str
    type: str
    value: str


@dataclass(frozen=True)
class Comment:
    """A line of explanation between the records."""

    text: str


Entry = Record | Comment


@dataclass(frozen=True)
class SRVTarget:
    """Where a service is offered: host and port, or not at all (L{NOT_OFFERED})."""

    host: str
    port: int

    @property
    def offered(self) -> bool:
        return self.host != "."


NOT_OFFERED = SRVTarget(".", 0)


def domain_records(
    domain: str,
    config: Config,
    dkim_keys: Sequence[DKIMKey] = (),
    dkim_problems: Sequence[str] = (),
) -> list[Entry]:
    """
    Every record to publish for the local domain C{domain}, with comments.

    @param domain: lower case, A-labels.
    @param dkim_keys: the domain's usable DKIM keys; none gives a comment
        saying how to make one.
    @param dkim_problems: one line per key file that could not be used.
    """
    hostname = a_label(config.server.hostname)
    entries: list[Entry] = [
        Comment(f"DNS records for {domain} (gk dns {domain})"),
        Comment(f"{hostname} also needs A/AAAA records, and PTR records naming it back"),
    ]
    if "." not in hostname:
        entries.append(
            Comment(f"warning: [server] hostname {hostname!r} is not a public host name")
        )
    entries += _mail_records(domain, hostname, config)
    entries += _dkim_records(domain, dkim_keys, dkim_problems)
    entries += _policy_records(domain, hostname)
    entries += _client_records(domain, hostname, config)
    return entries


def _mail_records(domain: str, hostname: str, config: Config) -> list[Entry]:
    entries: list[Entry] = [
        Comment("mail exchanger, and SPF: mail from this domain comes from that host"),
        Record(domain, "MX", f"{MX_PREFERENCE} {hostname}."),
    ]
    if first_port(config.smtp.listen) != 25:
        entries.append(
            Comment("warning: [smtp] listen has no port 25 first; other servers deliver to 25")
        )
    entries.append(Record(domain, "TXT", "v=spf1 mx -all"))
    if config.delivery.smarthost:
        entries.append(
            Comment(
                f"mail leaves through the smarthost {config.delivery.smarthost}: "
                "add what its provider asks for (e.g. include:...) to the SPF record"
            )
        )
    return entries


def _dkim_records(domain: str, keys: Sequence[DKIMKey], problems: Sequence[str]) -> list[Entry]:
    entries: list[Entry] = [Comment("DKIM: the public key of each signing key")]
    entries += [Record(key.dns_name, "TXT", key.dns_value) for key in keys]
    entries += [Comment(f"skipped: {problem}") for problem in problems]
    if not keys:
        entries.append(
            Comment(f"no DKIM key yet: run gk dkim keygen {domain}, then publish its record")
        )
    return entries


def _policy_records(domain: str, hostname: str) -> list[Entry]:
    policy = mta_sts_policy(hostname)
    entries: list[Entry] = [
        Comment(
            "DMARC: quarantine what fails, strict alignment, "
            f"aggregate reports to postmaster@{domain}"
        ),
        Record(f"_dmarc.{domain}", "TXT", DMARC_POLICY.format(domain=domain)),
        Comment("MTA-STS and TLS reports; the id changes whenever the policy does"),
        Record(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={mta_sts_id(policy)}"),
        Record(f"mta-sts.{domain}", "CNAME", f"{hostname}."),
        Comment(
            f"serve this policy at https://mta-sts.{domain}/.well-known/mta-sts.txt "
            f"(a certificate valid for mta-sts.{domain}):"
        ),
    ]
    entries += [Comment(f"  {line}") for line in policy.splitlines()]
    entries += [
        Comment(
            f"mode: {MTA_STS_MODE} first; once the TLS reports show no failure, "
            "serve mode: enforce (the id changes with it)"
        ),
        Record(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
    ]
    return entries


def _client_records(domain: str, hostname: str, config: Config) -> list[Entry]:
    def target(listeners: Sequence[str]) -> SRVTarget:
        port = first_port(listeners)
        return NOT_OFFERED if port is None else SRVTarget(hostname, port)

    mail_services = (
        ("_submissions._tcp", IMPLICIT_TLS_PRIORITY, target(config.submission.tls_listen)),
        ("_submission._tcp", STARTTLS_PRIORITY, target(config.submission.listen)),
        ("_imaps._tcp", IMPLICIT_TLS_PRIORITY, target(config.imap.tls_listen)),
        ("_imap._tcp", STARTTLS_PRIORITY, target(config.imap.listen)),
    )
    entries: list[Entry] = [
        Comment("mail client set-up: autoconfig, and SRV (RFC 6186, RFC 8314); . = not offered"),
        Record(f"autoconfig.{domain}", "CNAME", f"{hostname}."),
    ]
    for service, priority, where in mail_services:
        entries.append(Record(f"{service}.{domain}", "SRV", srv_value(priority, where)))
    dav, path = dav_location(config)
    entries.append(Comment("calendar and contacts clients (RFC 6764)"))
    for service in ("_caldavs._tcp", "_carddavs._tcp"):
        entries.append(Record(f"{service}.{domain}", "SRV", srv_value(0, dav)))
        if dav.offered:
            entries.append(Record(f"{service}.{domain}", "TXT", f"path={path}"))
    if not dav.offered:
        entries.append(
            Comment(
                "no HTTPS: set [http] public_url to the https:// address of gk "
                "or give [http] tls_listen a port"
            )
        )
    return entries


def srv_value(priority: int, target: SRVTarget) -> str:
    """The SRV RDATA: C{priority weight port target.} (C{0 0 0 .} when not offered)."""
    if not target.offered:
        return "0 0 0 ."
    return f"{priority} 1 {target.port} {target.host}."


def dav_location(config: Config) -> tuple[SRVTarget, str]:
    """
    Where CalDAV and CardDAV clients connect, and the DAV root's path: see
    the module's docstring.
    """
    url = urlsplit(config.http.public_url)
    try:
        url_port = url.port
    except ValueError:
        url_port = None
    if url.scheme == "https" and url.hostname:
        return SRVTarget(a_label(url.hostname), url_port or 443), url.path.rstrip("/") + "/dav/"
    port = first_port(config.http.tls_listen)
    if port is None:
        return NOT_OFFERED, ""
    return SRVTarget(a_label(config.server.hostname), port), "/dav/"


# -- MTA-STS ---------------------------------------------------------------------


def mta_sts_policy(hostname: str, mode: str = MTA_STS_MODE, max_age: int = MTA_STS_MAX_AGE) -> str:
    """The MTA-STS policy text (RFC 8461 3.2, CRLF line ends) for MX host C{hostname}."""
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {hostname}\r\nmax_age: {max_age}\r\n"


def mta_sts_id(policy: str) -> str:
    """
    The C{id=} of the C{_mta-sts} record for C{policy}: 20 hex digits of its
    SHA-256, so that it changes exactly when the policy does.
    """
    return hashlib.sha256(policy.encode()).hexdigest()[:20]


# -- listeners --------------------------------------------------------------------

_UNESCAPED_COLON = re.compile(r"(?<!\\):")


def endpoint_port(description: str) -> int | None:
    """
    The TCP port of a Twisted server endpoint string: C{tcp:465},
    C{tcp:2465:interface=127.0.0.1}, C{tcp6:port=993}, C{ssl:993:...}.
    L{None} for other kinds (C{unix:...}) and for port 0 (any free port).
    """
    kind, *args = (part.replace("\\:", ":") for part in _UNESCAPED_COLON.split(description))
    if kind.strip().lower() not in ("tcp", "tcp6", "ssl"):
        return None
    keywords = dict(arg.split("=", 1) for arg in args if "=" in arg)
    positional = [arg for arg in args if "=" not in arg]
    text = keywords.get("port", positional[0] if positional else "").strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        return None
    return int(text)


def first_port(descriptions: Sequence[str]) -> int | None:
    """The port of the first endpoint in C{descriptions}; L{None} when there is none."""
    return endpoint_port(descriptions[0]) if descriptions else None


# -- zone-file lines -------------------------------------------------------------


def txt_strings(text: str) -> list[bytes]:
    """C{text} in UTF-8, cut into the character-strings of a TXT record (255 bytes each)."""
    data = text.encode("utf-8")
    return [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]


def quote(string: bytes) -> str:
    """
    One character-string in zone-file form: in quotes, with C{"} and C{\\}
    escaped, and bytes other than printable ASCII as C{\\DDD}.
    """
    out = []
    for byte in string:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def zone_line(record: Record, ttl: int = DEFAULT_TTL) -> str:
    """C{NAME. TTL IN TYPE VALUE}; a TXT value as quoted strings of at most 255 bytes."""
    value = record.value
    if record.type == "TXT":
        value = " ".join(quote(s) for s in txt_strings(record.value))
    return f"{record.name}. {ttl} IN {record.type} {value}"


def zone_lines(entries: Iterable[Entry], ttl: int = DEFAULT_TTL) -> list[str]:
    """Every entry as a zone-file line; comments as C{; text}."""
    return [
        f"; {entry.text}" if isinstance(entry, Comment) else zone_line(entry, ttl)
        for entry in entries
    ]


# -- what DNS says now ----------------------------------------------------------

#: C{match}: DNS has the record; C{differs}: DNS has records of that kind at
#: the name, none equal to it; C{missing}: none at all; C{failed}: the
#: lookup itself failed (timeout, SERVFAIL), nothing is known.
CheckStatus = Literal["match", "differs", "missing", "failed"]


@dataclass(frozen=True)
class RecordCheck:
    """
    One record to publish and what DNS answered for it.

    @ivar found: for C{differs}, the values found that stand in its place
        (in the form of L{Record.value}).
    @ivar error: for C{failed}, why.
    """

    record: Record
    status: CheckStatus
    found: tuple[str, ...] = ()
    error: str = ""


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def normalize_value(record_type: str, value: str) -> str:
    """
    C{value} in the form two values are compared in: whitespace runs as
    one space; for TXT tag lists (C{v=DKIM1; k=rsa; p=...}) no space around
    C{;} and C{=} and no final C{;}; other types in lower case (host names
    are case-insensitive and carry their final dot).
    """
    if record_type != "TXT":
        return _squeeze(value).lower()
    text = _squeeze(value)
    text = re.sub(r"\s*;\s*", ";", text)
    if text.startswith("v=") or "=" in text.split(";")[0]:
        text = re.sub(r"\s*=\s*", "=", text)
    return text.rstrip(";")


def txt_kind(value: str) -> str:
    """
    What a TXT value is, to tell which records at a name stand for which:
    its version tag (C{v=spf1}, C{v=DKIM1}, C{v=DMARC1}...) in lower case;
    C{v=dkim1} too for a key record without the optional version tag (it
    has a C{p=} tag, RFC 6376 3.6.1); else its first tag's name (C{path});
    else the empty string.
    """
    tags = [tag.split(" ")[0] for tag in normalize_value("TXT", value).split(";")]
    names = [tag.partition("=")[0].lower() for tag in tags if "=" in tag]
    if not names:
        return ""
    if names[0] == "v":
        return "v=" + tags[0].partition("=")[2].lower()
    return "v=dkim1" if "p" in names else names[0]


def rdata_value(record_type: str, rdata: dns.rdata.Rdata) -> str:
    """An answer's record in the form of L{Record.value} (TXT strings joined, UTF-8)."""
    if record_type == "TXT":
        strings: Iterable[bytes] = getattr(rdata, "strings", ())
        return b"".join(strings).decode("utf-8", "replace")
    return rdata.to_text()


def compare(record: Record, found: Sequence[str]) -> RecordCheck:
    """
    L{RecordCheck} of C{record} against the values DNS returned for its
    name and type.  Several records of a type may share a name (a backup
    MX, a site-verification TXT next to SPF): it is a match when one of
    them is equal; for TXT only records of the same kind (L{txt_kind})
    count, so an unrelated TXT record neither matches nor differs.
    """
    expected = normalize_value(record.type, record.value)
    candidates = list(found)
    if record.type == "TXT":
        kind = txt_kind(record.value)
        candidates = [value for value in found if txt_kind(value) == kind]
    if any(normalize_value(record.type, value) == expected for value in candidates):
        return RecordCheck(record, "match")
    if candidates:
        return RecordCheck(record, "differs", tuple(candidates))
    return RecordCheck(record, "missing")


def check_records(lookups: Lookups, records: Iterable[Record]) -> list[RecordCheck]:
    """
    What DNS says about each of C{records}, in their order (blocking).

    Each name and type is asked once, all within the budget of C{lookups};
    a lookup that fails (the budget spent, a nameserver failing) makes
    its records C{failed} and the others are still asked.
    """
    answers: dict[tuple[str, str], list[str] | DNSTempError] = {}
    checks: list[RecordCheck] = []
    for record in records:
        key = (record.name, record.type)
        if key not in answers:
            try:
                rdatas = lookups.query(record.name + ".", record.type)
                answers[key] = [rdata_value(record.type, r) for r in rdatas]
            except DNSTempError as e:
                answers[key] = e
        answer = answers[key]
        if isinstance(answer, DNSTempError):
            checks.append(RecordCheck(record, "failed", error=str(answer)))
        else:
            checks.append(compare(record, answer))
    return checks
