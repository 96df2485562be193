"""
The route cache: a stream of mail to the same recipients is routed without
a database trip per RCPT, yet changes made in this process show at once,
changes made elsewhere (the CLI, another gk process) within the cache's
lifetime, and an address that did not exist is never remembered as
missing.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest_twisted

from gk.accounts import Resolution, RouteCache
from gk.app import GkApp
from gk.config import Config
from gk.storage.accounts import Account

PASSWORD = "correct horse battery staple"
NOW = datetime.datetime(2026, 11, 21, tzinfo=datetime.UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emails(resolution: Resolution) -> list[str]:
    return sorted(a.email for a in resolution.local)


def with_clock(app: GkApp, ttl: float = 15.0) -> FakeClock:
    clock = FakeClock()
    app.accounts.routes = RouteCache(ttl, clock=clock)
    return clock


@pytest_twisted.async_yield_fixture
async def other_process(config: Config) -> AsyncIterator[GkApp]:
    """A second GkApp on the same database: what `gk` on the command line is."""
    from twisted.internet import reactor

    other = GkApp.build(config, reactor)
    other.db.startService()
    other.accounts.startService()
    try:
        yield other
    finally:
        other.accounts.stopService()
        other.db.stopService()
        other.db.dispose()


def account(email: str) -> Account:
    return Account(id=1, email=email, is_admin=False, quota_bytes=None, created=NOW)


def test_only_deliverable_local_routes_are_kept_and_they_expire() -> None:
    clock = FakeClock()
    cache = RouteCache(10.0, clock=clock)
    alice = Resolution((account("alice@example.test"),), ())
    cache.put("alice@example.test", alice)
    cache.put("nobody@example.test", Resolution((), ()))
    cache.put("bob@remote.test", Resolution((), ("bob@remote.test",), local_domain=False))

    assert cache.get("alice@example.test") is alice
    assert cache.get("nobody@example.test") is None
    assert cache.get("bob@remote.test") is None

    clock.now += 9.9
    assert cache.get("alice@example.test") is alice
    clock.now += 0.1
    assert cache.get("alice@example.test") is None


def test_the_cache_holds_at_most_its_size_dropping_the_oldest() -> None:
    cache = RouteCache(10.0, max_entries=3, clock=FakeClock())
    for name in "abcd":
        cache.put(f"{name}@example.test", Resolution((account(f"{name}@example.test"),), ()))
    assert cache.get("a@example.test") is None
    assert all(cache.get(f"{name}@example.test") is not None for name in "bcd")


@pytest_twisted.ensureDeferred
async def test_a_route_is_reused_without_asking_the_database(app: GkApp) -> None:
    with_clock(app)
    await app.accounts.create_user("alice@example.test", PASSWORD)
    first = await app.accounts.resolve("Alice@Example.test")

    async def refuse(fn: object) -> object:
        raise AssertionError("the database was asked again")

    app.db.read = refuse  # type: ignore[method-assign,assignment]
    assert await app.accounts.resolve("alice@example.test") is first


@pytest_twisted.ensureDeferred
async def test_changes_made_in_this_process_take_effect_at_once(app: GkApp) -> None:
    with_clock(app)
    accounts = app.accounts
    await accounts.create_user("alice@example.test", PASSWORD)
    await accounts.create_user("bob@example.test", PASSWORD)
    await accounts.add_alias("sales@example.test", "alice@example.test")
    await accounts.add_alias("@example.test", "alice@example.test")
    assert emails(await accounts.resolve("sales@example.test")) == ["alice@example.test"]
    assert emails(await accounts.resolve("carol@example.test")) == ["alice@example.test"]

    await accounts.delete_alias("sales@example.test")
    await accounts.add_alias("sales@example.test", "bob@example.test")
    assert emails(await accounts.resolve("sales@example.test")) == ["bob@example.test"]

    # Carol was caught by the catch-all; once she exists, her mail is hers.
    await accounts.create_user("carol@example.test", PASSWORD)
    assert emails(await accounts.resolve("carol@example.test")) == ["carol@example.test"]

    await accounts.delete_user("bob@example.test")
    assert emails(await accounts.resolve("bob@example.test")) == ["alice@example.test"]
    await accounts.delete_alias("@example.test")
    assert not (await accounts.resolve("bob@example.test")).deliverable


@pytest_twisted.ensureDeferred
async def test_another_process_is_seen_at_once_for_new_addresses_and_within_the_ttl_otherwise(
    app: GkApp, other_process: GkApp
) -> None:
    clock = with_clock(app, ttl=15.0)
    await app.accounts.create_user("alice@example.test", PASSWORD)
    await app.accounts.create_user("bob@example.test", PASSWORD)
    await app.accounts.add_alias("sales@example.test", "alice@example.test")

    # Unknown here, then created by the other process: found at once.
    assert not (await app.accounts.resolve("dave@example.test")).deliverable
    await other_process.accounts.create_user("dave@example.test", PASSWORD)
    assert emails(await app.accounts.resolve("dave@example.test")) == ["dave@example.test"]

    # A route changed elsewhere: the old one until the entry expires.
    assert emails(await app.accounts.resolve("sales@example.test")) == ["alice@example.test"]
    await other_process.accounts.delete_alias("sales@example.test")
    await other_process.accounts.add_alias("sales@example.test", "bob@example.test")
    clock.now += 14.0
    assert emails(await app.accounts.resolve("sales@example.test")) == ["alice@example.test"]
    clock.now += 1.0
    assert emails(await app.accounts.resolve("sales@example.test")) == ["bob@example.test"]
