"""
The web UI's sessions on every database: a cookie value finds its
session and account, the table keeps only digests, sessions end on
sign-out, idle expiry, "end all others" and when the user goes.
"""

from __future__ import annotations

import datetime
import hashlib

import pytest_twisted
from sqlalchemy import select

from gk.app import GkApp
from gk.storage import web_sessions as store
from gk.storage.models import WebSession as Row
from gk.web.sessions import IDLE_LIFETIME, WebSessions

PASSWORD = "correct horse battery staple"


@pytest_twisted.ensureDeferred
async def test_a_cookie_finds_its_session_and_the_table_holds_only_its_digest(
    app: GkApp,
) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    sessions = WebSessions(app.db)
    value, created = await sessions.create(alice, "Firefox on a phone", "192.0.2.7")

    found = await sessions.find(value)
    assert found is not None
    assert found.account == alice and found.csrf_token == created.csrf_token
    assert found.csrf_ok(created.csrf_token) and not found.csrf_ok("forged")
    assert await sessions.find(value + "x") is None
    assert await sessions.find("") is None
    stored = await app.db.read(lambda s: list(s.scalars(select(Row.id))))
    assert stored == [hashlib.sha256(value.encode()).hexdigest()]
    assert value not in stored


@pytest_twisted.ensureDeferred
async def test_sessions_end_on_sign_out_idle_expiry_and_end_all(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    sessions = WebSessions(app.db)
    phone, phone_session = await sessions.create(alice, "phone", "192.0.2.1")
    laptop, _ = await sessions.create(alice, "laptop", "192.0.2.2")
    tablet, _ = await sessions.create(alice, "tablet", "192.0.2.3")
    bobs, bob_session = await sessions.create(bob, "bob", "192.0.2.4")

    await sessions.end(laptop)
    assert await sessions.find(laptop) is None
    assert not await sessions.end_by_digest(alice, bob_session.digest)  # not hers
    assert await sessions.find(bobs) is not None

    # Unused for longer than the idle lifetime: gone.
    long_ago = datetime.datetime.now(datetime.UTC) - IDLE_LIFETIME - datetime.timedelta(hours=1)
    digest = hashlib.sha256(tablet.encode()).hexdigest()
    await app.db.write(lambda s: store.touch_session(s, digest, long_ago, long_ago))
    assert await sessions.find(tablet) is None
    assert await sessions.expire() == 1

    again, _ = await sessions.create(alice, "desktop", "192.0.2.5")
    assert await sessions.end_all(alice, keep=phone_session) == 1
    assert await sessions.find(again) is None
    assert [s.user_agent for s in await sessions.list(alice)] == ["phone"]
    assert await sessions.find(phone) is not None

    await app.accounts.delete_user("alice@example.test")
    assert await sessions.find(phone) is None
    assert await sessions.find(bobs) is not None
