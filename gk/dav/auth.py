"""
HTTP Basic authentication for the DAV server (RFC 7617), through the
brute-force guard every protocol shares (L{gk.security.authguard}, protocol
name C{"dav"}), with a short-lived cache of verified credentials.

Why a cache: DAV clients send the password with every request, and an
Argon2 check per request would cap a calendar's PUT rate far below what
syncing needs.  A credential that passed the full check is remembered for
L{CredentialCache.ttl} seconds (5 minutes by default) under an HMAC of the
user name and password keyed with a random per-process key, so the cache
never holds a password or anything from which one can be recovered
offline.  With it is kept what the check relied on (the password hash it
matched, or the app password's digest), and every later request asks the
database whether that still holds (L{AccountService.recheck}: one read, no
hashing): a changed password, a revoked app password or a deleted account
stops working at once, whichever process made the change.  Failures are
never cached, so each one goes through the guard and its delays.

A blocked source is refused before the cache is consulted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from twisted.internet.interfaces import IReactorTime

from gk.accounts import CheckedPassword
from gk.security.authguard import AuthGuard
from gk.security.events import AuthOutcome
from gk.storage.accounts import Account

#: The protocol name the guard counts DAV attempts under.
PROTOCOL = "dav"

#: The challenge of a 401 answer.
CHALLENGE = b'Basic realm="gk", charset="UTF-8"'

#: Longest Authorization header value looked at (a user name and password
#: longer than this are not credentials anyone uses).
MAX_AUTHORIZATION = 4096


@dataclass(frozen=True)
class Credentials:
    """A user name and password from an Authorization header."""

    username: str
    password: str


def parse_basic(header: bytes | None) -> Credentials | None:
    """
    The credentials of an C{Authorization: Basic ...} header; L{None} when
    there is none, it is another scheme, or it does not decode (base64,
    then UTF-8 as the challenge's C{charset} announces).
    """
    if not header or len(header) > MAX_AUTHORIZATION:
        return None
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        return None
    return Credentials(username, password)


class CredentialCache:
    """
    Verified credentials and what their check relied on, remembered for
    C{ttl} seconds, at most C{max_entries} of them (least recently used
    go first).
    """

    def __init__(self, clock: IReactorTime, ttl: float = 300.0, max_entries: int = 1024) -> None:
        self._clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        # Random per process: a key learned from memory is useless elsewhere.
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[CheckedPassword, float]] = OrderedDict()

    def _digest(self, credentials: Credentials) -> bytes:
        message = credentials.username.encode("utf-8") + b"\0" + credentials.password.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, credentials: Credentials) -> CheckedPassword | None:
        """The check the credentials passed, if still remembered."""
        digest = self._digest(credentials)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        checked, expires = entry
        if expires <= self._clock.seconds():
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return checked

    def put(self, credentials: Credentials, checked: CheckedPassword) -> None:
        """Remember credentials that just passed the full check."""
        digest = self._digest(credentials)
        self._entries[digest] = (checked, self._clock.seconds() + self.ttl)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, credentials: Credentials) -> None:
        self._entries.pop(self._digest(credentials), None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class AuthDecision:
    """
    The outcome for one request: C{account} when signed in; otherwise
    C{refusal} says whether to challenge (401) or tell a blocked source
    to come back after C{retry_after} seconds (429).
    """

    account: Account | None
    refusal: Literal["", "challenge", "blocked"] = ""
    retry_after: int = 0


class DavAuthenticator:
    """
    Decides who a request is (see the module docstring).

    @param check: the full password check (C{AccountService.authenticate_with_proof}).
    @param recheck: whether a remembered check still holds (C{AccountService.recheck}).
    """

    def __init__(
        self,
        guard: AuthGuard,
        check: Callable[[str, str], Awaitable[CheckedPassword | None]],
        recheck: Callable[[CheckedPassword], Awaitable[Account | None]],
        clock: IReactorTime,
        cache: CredentialCache | None = None,
    ) -> None:
        self.guard = guard
        self.check = check
        self.recheck = recheck
        self.cache = cache if cache is not None else CredentialCache(clock)

    async def authenticate(self, client_ip: str, authorization: bytes | None) -> AuthDecision:
        """The decision for a request from C{client_ip} with that Authorization header."""
        credentials = parse_basic(authorization)
        if credentials is None:
            # No attempt at all (the usual first request of a client): no failure counted.
            return AuthDecision(None, "challenge")
        if self.guard.is_blocked(client_ip):
            self.guard.refuse_if_blocked(client_ip, PROTOCOL, credentials.username)
            return AuthDecision(None, "blocked", _seconds(self.guard.blocked_for(client_ip)))
        remembered = self.cache.get(credentials)
        if remembered is not None:
            account = await self.recheck(remembered)
            if account is not None:
                return AuthDecision(account)
            # Changed or revoked since: the full check decides, and counts a failure.
            self.cache.forget(credentials)
        result = await self.guard.authenticate(
            client_ip,
            credentials.username,
            PROTOCOL,
            lambda: self.check(credentials.username, credentials.password),
        )
        if result.outcome is AuthOutcome.BLOCKED:
            return AuthDecision(None, "blocked", _seconds(result.retry_after))
        if result.account is None:
            return AuthDecision(None, "challenge")
        self.cache.put(credentials, result.account)
        return AuthDecision(result.account.account)


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))
