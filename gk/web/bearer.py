"""
Bearer tokens (C{Authorization: Bearer TOKEN}, from C{gk token create}):
who an API request or a WebSocket upgrade is, through the brute-force
guard every protocol shares.

Failures count against the source address; the "account" the guard
keys them under is the token itself (hashed), so someone guessing tokens
slows down only themselves and never a real token's owner.
"""

from __future__ import annotations

import hashlib

from gk.accounts import AccountService
from gk.security.authguard import AuthGuard
from gk.security.events import AuthOutcome
from gk.storage.accounts import Account

#: Longest Authorization header looked at.
MAX_AUTHORIZATION = 4096


class Blocked(Exception):
    """The source is blocked by the guard; C{retry_after} seconds remain."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"blocked for {retry_after:.0f} s")
        self.retry_after = retry_after


def bearer_token(authorization: str | None) -> str | None:
    """The token of an C{Authorization: Bearer} header value, if that is what it is."""
    if not authorization or len(authorization) > MAX_AUTHORIZATION:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class BearerAuthenticator:
    """Checks bearer tokens for one protocol name of the guard (C{"api"}, C{"ws"}, ...)."""

    def __init__(self, accounts: AccountService, guard: AuthGuard, protocol: str) -> None:
        self.accounts = accounts
        self.guard = guard
        self.protocol = protocol

    async def authenticate(self, authorization: str | None, client_ip: str) -> Account | None:
        """
        The token's account, or L{None} (no bearer token, or a wrong one).

        @raise Blocked: the source is blocked (answer 429).
        """
        token = bearer_token(authorization)
        if token is None:
            return None
        label = "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        result = await self.guard.authenticate(
            client_ip, label, self.protocol, lambda: self.accounts.authenticate_token(token)
        )
        if result.outcome is AuthOutcome.BLOCKED:
            raise Blocked(result.retry_after)
        return result.account
