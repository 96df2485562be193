"""
MTA-STS (RFC 8461): discover a recipient domain's policy for outbound
delivery, and say what it requires of each MX host.

L{MTASTSResolver.policy_for} looks up C{_mta-sts.DOMAIN} TXT, fetches the
policy from C{https://mta-sts.DOMAIN/.well-known/mta-sts.txt} when its id
is new, and caches it in memory for its C{max_age}.  It never raises for a
domain's misconfiguration: a policy that cannot be found or used is logged
and gives C{None} (deliver as though the domain had no MTA-STS), unless a
cached policy is still valid, which then applies (RFC 8461 5.1).

L{tls_requirement} turns a policy and one MX host name into what the
delivery to that host must do (L{MXTLS}).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from gk.mailauth.resolver import a_label

if TYPE_CHECKING:
    # Twisted documents the interface but only exports it from here.
    from twisted.internet._sslverify import IOpenSSLTrustRoot

log = Logger()

#: The largest C{max_age} a policy may give (RFC 8461 3.2: about a year).
MAX_AGE_LIMIT = 31_557_600

_WSP = " \t"
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_MX_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_MAX_AGE = re.compile(r"[0-9]{1,10}")


class PolicyError(Exception):
    """A policy (or its fetch) is not usable; the message says why."""


def _is_sts_record(text: str) -> bool:
    """Whether a TXT record claims to be an STS record (RFC 8461 3.1)."""
    rest = text.removeprefix("v=STSv1")
    return rest != text and (not rest or rest[0] in _WSP + ";")


def parse_sts_record(txt_strings: list[str]) -> str | None:
    """
    The policy id announced by the TXT records at C{_mta-sts.DOMAIN}.

    @param txt_strings: one string per TXT record (its character-strings joined).
    @return: the C{id} when exactly one record starts with C{v=STSv1} and
        it is well-formed (RFC 8461 3.1: C{v=STSv1; id=...}, extension
        fields allowed, exactly one id of 1 to 32 letters and digits); else
        C{None} (no record, several, or a malformed one: no policy).
    """
    records = [text for text in txt_strings if _is_sts_record(text)]
    if len(records) != 1:
        return None
    parts = records[0].removeprefix("v=STSv1").split(";")
    if parts[0].strip(_WSP) or len(parts) < 2:
        return None
    fields = [part.strip(_WSP) for part in parts[1:]]
    if fields[-1] == "":
        fields.pop()  # the optional final ";"
    ids: list[str] = []
    for field in fields:
        name, sep, value = field.partition("=")
        if not sep or not _EXT_NAME.fullmatch(name) or not _EXT_VALUE.fullmatch(value):
            return None
        if name == "id":
            ids.append(value)
    if len(ids) != 1 or not _STS_ID.fullmatch(ids[0]):
        return None
    return ids[0]


@dataclass(frozen=True)
class MTASTSPolicy:
    """
    One domain's MTA-STS policy (RFC 8461 3.2).

    @ivar id: the id of the TXT record it was fetched for ("" when parsed alone).
    @ivar mode: C{"enforce"}, C{"testing"} or C{"none"}.  A C{"none"}
        policy is returned like the others; it means "no policy" to
        L{tls_requirement} (the domain is withdrawing MTA-STS).
    @ivar mx: the MX patterns, lower case, without final dot; a pattern
        may start with C{*.}.
    @ivar max_age: seconds the policy may be cached.
    """

    id: str
    mode: str
    mx: tuple[str, ...]
    max_age: int

    def matches(self, mx_host: str) -> bool:
        """
        Whether C{mx_host} is allowed by one of the C{mx} patterns (RFC
        8461 4.1): compared without case or final dot, and C{*.} stands for
        exactly one left-most label (C{*.example.com} matches
        C{mx.example.com}, not C{example.com} nor C{a.b.example.com}).
        """
        host = a_label(mx_host)
        for pattern in self.mx:
            if pattern.startswith("*."):
                suffix = pattern[1:]
                first = host[: -len(suffix)]
                if host.endswith(suffix) and first and "." not in first:
                    return True
            elif host == pattern:
                return True
        return False


def parse_policy(text: str, policy_id: str = "") -> MTASTSPolicy:
    """
    Parse the body of C{mta-sts.txt} (RFC 8461 3.2).

    Lines end in LF or CRLF; blank lines and unknown keys are ignored.
    C{version: STSv1}, C{mode} and C{max_age} must appear once each, and
    C{mx} at least once unless the mode is C{none}.

    @param policy_id: the id of the TXT record, kept in the result.
    @raise PolicyError: a line is not C{key: value}, or a required field
        is missing, repeated or invalid.
    """
    single: dict[str, str] = {}
    mx: list[str] = []
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if not line.strip(_WSP):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"policy line {line[:80]!r} is not 'key: value'")
        value = value.strip(_WSP)
        if key == "mx":
            pattern = value.lower().removesuffix(".")
            if not _MX_PATTERN.fullmatch(pattern) or len(pattern) > 253:
                raise PolicyError(f"invalid mx pattern {value[:80]!r}")
            mx.append(pattern)
        elif key in ("version", "mode", "max_age"):
            if key in single:
                raise PolicyError(f"{key} appears more than once")
            single[key] = value
    for key in ("version", "mode", "max_age"):
        if key not in single:
            raise PolicyError(f"the policy has no {key}")
    if single["version"] != "STSv1":
        raise PolicyError(f"unknown policy version {single['version'][:40]!r}")
    mode = single["mode"]
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"invalid mode {mode[:40]!r}")
    if not _MAX_AGE.fullmatch(single["max_age"]) or int(single["max_age"]) > MAX_AGE_LIMIT:
        raise PolicyError(f"max_age {single['max_age'][:40]!r} is not 0 to {MAX_AGE_LIMIT}")
    if not mx and mode != "none":
        raise PolicyError("the policy has no mx")
    return MTASTSPolicy(policy_id, mode, tuple(mx), int(single["max_age"]))


class MXTLS(enum.Enum):
    """What delivery to one MX host must do about TLS."""

    #: No policy (or mode C{none}): STARTTLS when offered, any certificate,
    #: plain text when TLS is not offered or fails.
    OPPORTUNISTIC = "opportunistic"
    #: Mode C{testing}: deliver as with L{OPPORTUNISTIC}, but check the
    #: certificate against the MX name and log (report) what would fail.
    REPORT = "report"
    #: Mode C{enforce}, listed MX: STARTTLS is required and the certificate
    #: must be valid for the MX host name; otherwise do not deliver there.
    VERIFIED = "verified"
    #: Mode C{enforce}, MX not listed in the policy: do not connect to it.
    SKIP = "skip"


@dataclass(frozen=True)
class TLSRequirement:
    """
    The verdict of L{tls_requirement} for one MX host.

    @ivar tls: what to do (see L{MXTLS}).
    @ivar reason: why, for the delivery log and reports; C{""} when there
        is nothing to say (no policy, or a listed MX).
    """

    tls: MXTLS
    reason: str = ""

    @property
    def deliver(self) -> bool:
        """Whether this MX may be tried at all."""
        return self.tls is not MXTLS.SKIP

    @property
    def require_verified_tls(self) -> bool:
        """Whether a missing STARTTLS or an invalid certificate must stop the delivery."""
        return self.tls is MXTLS.VERIFIED


def tls_requirement(policy: MTASTSPolicy | None, mx_host: str) -> TLSRequirement:
    """
    What delivery to C{mx_host} must do under C{policy} (RFC 8461 4 and 5).

    C{None} and mode C{none} give L{MXTLS.OPPORTUNISTIC}; mode C{testing}
    gives L{MXTLS.REPORT} (with the reason when the MX is not listed);
    mode C{enforce} gives L{MXTLS.VERIFIED} for a listed MX and
    L{MXTLS.SKIP} for another.
    """
    if policy is None or policy.mode == "none":
        return TLSRequirement(MXTLS.OPPORTUNISTIC)
    listed = policy.matches(mx_host)
    unlisted = "" if listed else f"MX {mx_host} is not in the MTA-STS policy {policy.id!r}"
    if policy.mode == "testing":
        return TLSRequirement(MXTLS.REPORT, unlisted)
    if listed:
        return TLSRequirement(MXTLS.VERIFIED)
    return TLSRequirement(MXTLS.SKIP, unlisted)


def default_policy_url(domain: str) -> str:
    """The policy's address for C{domain} (RFC 8461 3.3)."""
    return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"


class _BodyReader(Protocol):
    """Collect a response body of at most C{limit} bytes into C{done}."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: defer.Deferred[bytes] = defer.Deferred(lambda _: self._stop())

    def _stop(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.done.errback(PolicyError(f"the policy is larger than {self.limit} bytes"))
            self._stop()
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(PolicyError(f"the body was cut: {reason.getErrorMessage()}"))


def _why(error: BaseException) -> str:
    """A one-line reason for a failed fetch (Agent wraps the real causes)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(f.getErrorMessage() or f.type.__name__ for f in reasons)
    return str(error) or type(error).__name__


class MTASTSResolver:
    """
    Discover and cache MTA-STS policies (RFC 8461 3 and 5), in memory.

    Concurrent calls for one domain share one discovery.  A cache entry
    lives for its policy's C{max_age} from the moment it was fetched.
    """

    def __init__(
        self,
        reactor: Any,
        txt_lookup: Callable[[str], Awaitable[list[str]]],
        *,
        clock: Callable[[], float] | None = None,
        policy_url: Callable[[str], str] = default_policy_url,
        trust_root: IOpenSSLTrustRoot | None = None,
        fetch_timeout: float = 10.0,
        max_bytes: int = 64 * 1024,
    ) -> None:
        """
        @param reactor: the reactor to connect and time out with; its name
            resolver finds the policy host's address.
        @param txt_lookup: the TXT records at a name, each one's strings
            joined, as a coroutine or Deferred; it must give up on its own
            (raising, e.g. L{gk.mailauth.resolver.DNSTempError}) when DNS
            does not answer.  Any exception counts as a temporary failure.
        @param clock: seconds now, for cache expiry (C{reactor.seconds} by default).
        @param policy_url: the policy's https URL for a domain (A-labels).
        @param trust_root: the CAs that may sign policy hosts' certificates
            (the platform's by default).
        @param fetch_timeout: seconds a whole fetch, connection to last byte, may take.
        @param max_bytes: the largest policy body taken.
        """
        self._reactor = reactor
        self._txt_lookup = txt_lookup
        self._clock = clock or reactor.seconds
        self._policy_url = policy_url
        self._fetch_timeout = fetch_timeout
        self._max_bytes = max_bytes
        # The plain Agent follows no redirects (RFC 8461 3.3), and verifies
        # the certificate against the URL's host name.
        self._agent = Agent(
            reactor,
            contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust_root),
            connectTimeout=fetch_timeout,
        )
        self._cache: dict[str, tuple[MTASTSPolicy, float]] = {}
        self._inflight: dict[str, list[defer.Deferred[MTASTSPolicy | None]]] = {}

    async def policy_for(self, domain: str) -> MTASTSPolicy | None:
        """
        The policy that applies to mail for C{domain} now, or C{None}.

        Never raises for DNS or HTTPS failures: they are logged, and the
        cached policy (while valid) or C{None} is returned.  A mode C{none}
        policy is returned too; see L{tls_requirement}.
        """
        domain = a_label(domain)
        observer: defer.Deferred[MTASTSPolicy | None] = defer.Deferred()
        waiting = self._inflight.get(domain)
        if waiting is not None:
            waiting.append(observer)
        else:
            self._inflight[domain] = [observer]
            discovery = defer.Deferred.fromCoroutine(self._discover(domain))
            discovery.addBoth(self._finish, domain)
        return await observer

    def _finish(self, result: MTASTSPolicy | Failure | None, domain: str) -> None:
        """Hand a discovery's outcome to every caller still waiting for it."""
        for observer in self._inflight.pop(domain, []):
            if observer.called:  # that caller was cancelled
                continue
            if isinstance(result, Failure):
                observer.errback(result)
            else:
                observer.callback(result)

    def cached(self, domain: str) -> MTASTSPolicy | None:
        """The cached policy of C{domain} while it is valid (expired ones are dropped)."""
        domain = a_label(domain)
        entry = self._cache.get(domain)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._cache[domain]
            return None
        return entry[0]

    async def _discover(self, domain: str) -> MTASTSPolicy | None:
        cached = self.cached(domain)
        fallback = f"using the cached policy {cached.id!r}" if cached else "no policy"
        try:
            records = await self._txt_lookup(f"_mta-sts.{domain}")
        except Exception as e:
            log.warn(
                "MTA-STS: TXT lookup for {domain} failed ({error}); {fallback}",
                domain=domain,
                error=_why(e),
                fallback=fallback,
            )
            return cached
        policy_id = parse_sts_record(records)
        if policy_id is None:
            if any(_is_sts_record(r) for r in records):
                log.warn(
                    "MTA-STS: invalid or several STS records at _mta-sts.{domain}; {fallback}",
                    domain=domain,
                    fallback=fallback,
                )
            elif cached is not None:
                log.info(
                    "MTA-STS: no STS record at _mta-sts.{domain}; {fallback} until it expires",
                    domain=domain,
                    fallback=fallback,
                )
            return cached
        if cached is not None and cached.id == policy_id:
            return cached
        try:
            policy = await self._fetch(domain, policy_id)
        except Exception as e:
            log.warn(
                "MTA-STS: policy {id} of {domain} not used ({error}); {fallback}",
                id=policy_id,
                domain=domain,
                error=_why(e),
                fallback=fallback,
            )
            return cached
        self._cache[domain] = (policy, self._clock() + policy.max_age)
        return policy

    async def _fetch(self, domain: str, policy_id: str) -> MTASTSPolicy:
        """
        Fetch and parse the policy of C{domain}.

        @raise PolicyError: the answer is not a usable policy.
        @raise Exception: DNS, connection, TLS or timeout failures.
        """
        fetch = defer.Deferred.fromCoroutine(self._download(self._policy_url(domain)))
        late = PolicyError(f"no policy within {self._fetch_timeout:g} s")
        fetch.addTimeout(
            self._fetch_timeout, self._reactor, onTimeoutCancel=lambda *_: Failure(late)
        )
        body = await fetch
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("the policy is not UTF-8") from None
        return parse_policy(text, policy_id)

    async def _download(self, url: str) -> bytes:
        """The body of a 200 text/plain answer to GET C{url}."""
        headers = Headers({b"User-Agent": [b"gk MTA-STS"]})
        response: IResponse = await self._agent.request(b"GET", url.encode("ascii"), headers)
        reader = _BodyReader(self._max_bytes)
        problem = ""
        types = response.headers.getRawHeaders(b"content-type") or []
        media = types[0].split(b";")[0].strip().lower() if len(types) == 1 else b""
        if response.code != 200:
            problem = f"HTTP status {response.code}"
            if 300 <= response.code < 400:
                problem += " (redirects are not followed, RFC 8461 3.3)"
        elif media != b"text/plain":
            problem = f"content type {b', '.join(types).decode('latin-1')!r}, not text/plain"
        elif isinstance(response.length, int) and response.length > self._max_bytes:
            problem = f"the policy is larger than {self._max_bytes} bytes"
        response.deliverBody(reader)
        if problem:
            reader.done.cancel()
            reader.done.addErrback(lambda _: None)
            raise PolicyError(problem)
        return await reader.done
