"""
Storage fixtures: a migrated, running L{Database}, and an account with its
folders for mail store tests (through the shared C{app} fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest_twisted

from gk.app import GkApp
from gk.storage import migrate
from gk.storage.accounts import Account
from gk.storage.database import Database

PASSWORD = "correct horse battery staple"


@pytest_twisted.async_yield_fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A database at the newest schema with its thread pools running."""
    from twisted.internet import reactor

    database = Database(database_url, cast(Any, reactor))
    migrate.upgrade(database.engine)
    database.startService()
    try:
        yield database
    finally:
        database.stopService()
        database.dispose()


@pytest_twisted.async_fixture
async def alice(app: GkApp) -> Account:
    """alice@example.test with the default folders, no quota."""
    account: Account = await app.accounts.create_user("alice@example.test", PASSWORD)
    return account
