"""
The web UI's sign-ins: server-side sessions behind an opaque cookie.

The cookie holds 256 random bits; the database keeps only their SHA-256
(L{gk.storage.web_sessions}), so a leaked table signs nobody in.  A new
value is issued at every sign-in and the one the browser brought is
revoked, which defeats session fixation.  Sessions end after
L{IDLE_LIFETIME} without use and at most L{MAX_LIFETIME} after sign-in;
a user can end one, or all others, from the settings page; changing the
password ends all others.

Each session carries its own CSRF token (the synchronizer pattern): every
state-changing request of the UI must bring it back in a form field or an
C{X-CSRF-Token} header.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gk.storage import web_sessions as store
from gk.storage.accounts import Account
from gk.storage.database import Database
from gk.storage.web_sessions import StoredSession

#: The cookie's name over plain HTTP, and under HTTPS (the C{__Host-}
#: prefix makes browsers refuse it unless Secure, Path=/ and host-only).
COOKIE = "gk_session"
SECURE_COOKIE = "__Host-gk_session"
#: A session unused this long ends.
IDLE_LIFETIME = datetime.timedelta(days=14)
#: No session lives longer than this after its sign-in.
MAX_LIFETIME = datetime.timedelta(days=30)
#: last_seen is written at most this often per session.
TOUCH_EVERY = datetime.timedelta(minutes=5)
#: The longest cookie value looked at.
MAX_COOKIE = 200


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser: its account, CSRF token and the cookie digest."""

    digest: str
    account: Account
    csrf_token: str
    created: datetime.datetime
    last_seen: datetime.datetime
    user_agent: str
    address: str

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(
            self.csrf_token.encode(), (token or "").encode("utf-8", "replace")
        )


def _session(stored: StoredSession) -> WebSession:
    return WebSession(
        stored.digest, stored.account, stored.csrf_token, stored.created, stored.last_seen,
        stored.user_agent, stored.address,
    )  # fmt: skip


def cookie_value(header: str | None) -> str | None:
    """
    The session cookie's value in a C{Cookie} header, if any (the
    C{__Host-} one first: under HTTPS it is the only one gk sets).
    """
    if not header:
        return None
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name in (SECURE_COOKIE, COOKIE) and 0 < len(value) <= MAX_COOKIE:
            found.setdefault(name, value)
    return found.get(SECURE_COOKIE) or found.get(COOKIE)


class WebSessions:
    """Creates, finds and ends web sessions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, account: Account, user_agent: str, address: str
    ) -> tuple[str, WebSession]:
        """A new session for C{account}: the cookie value (shown once) and the session."""
        value = secrets.token_urlsafe(32)
        digest = _digest(value)
        csrf = secrets.token_urlsafe(32)
        now = _utcnow()
        expires = min(now + IDLE_LIFETIME, now + MAX_LIFETIME)
        await self.db.write(
            lambda s: store.add_session(
                s, digest, account.id, csrf, now, expires, user_agent, address
            )
        )
        return value, WebSession(digest, account, csrf, now, now, user_agent[:200], address[:64])

    async def find(self, value: str | None) -> WebSession | None:
        """The live session of a cookie value, refreshing its idle deadline now and then."""
        if not value or len(value) > MAX_COOKIE:
            return None
        digest = _digest(value)
        now = _utcnow()
        stored = await self.db.read(lambda s: store.find_session(s, digest, now))
        if stored is None:
            return None
        if now - stored.last_seen >= TOUCH_EVERY:
            expires = min(now + IDLE_LIFETIME, stored.created + MAX_LIFETIME)
            await self.db.write(lambda s: store.touch_session(s, digest, now, expires))
        return _session(stored)

    async def end(self, value: str | None) -> None:
        """End the session of a cookie value, if there is one (sign-out, fixation)."""
        if value and len(value) <= MAX_COOKIE:
            digest = _digest(value)
            await self.db.write(lambda s: store.delete_session(s, digest))

    async def end_by_digest(self, account: Account, digest: str) -> bool:
        """End one of C{account}'s sessions (from the settings page)."""
        return await self.db.write(lambda s: store.delete_session(s, digest, account.id))

    async def end_all(self, account: Account, keep: WebSession | None = None) -> int:
        """End all of C{account}'s sessions but C{keep}."""
        digest = None if keep is None else keep.digest
        return await self.db.write(lambda s: store.delete_user_sessions(s, account.id, digest))

    async def list(self, account: Account) -> list[WebSession]:
        now = _utcnow()
        found = await self.db.read(lambda s: store.list_sessions(s, account.id, now))
        return [_session(s) for s in found]

    async def expire(self) -> int:
        now = _utcnow()
        return await self.db.write(lambda s: store.delete_expired(s, now))
