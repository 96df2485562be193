"""
Chat fixtures: three people on a running GkApp (SQLite, and PostgreSQL
when configured), what the event bus tells each of them, and a bare
migrated database for the storage tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest_twisted

from gk.app import GkApp
from gk.events import ChatChanged, ChatMention, Event
from gk.storage.accounts import Account
from tests.storage.conftest import db

__all__ = ["db"]

PASSWORD = "correct horse battery staple"


@dataclass
class Heard:
    """Every chat event published, in order."""

    events: list[Event] = field(default_factory=list)

    def changes(self, user: Account) -> list[ChatChanged]:
        return [e for e in self.events if isinstance(e, ChatChanged) and e.user_id == user.id]

    def kinds(self, user: Account) -> list[str]:
        return [e.kind for e in self.changes(user)]

    def mentions(self, user: Account | None = None) -> list[ChatMention]:
        return [
            e
            for e in self.events
            if isinstance(e, ChatMention) and (user is None or e.user_id == user.id)
        ]

    def clear(self) -> None:
        self.events.clear()


@dataclass
class People:
    alice: Account
    bob: Account
    carol: Account
    heard: Heard


@pytest_twisted.async_fixture
async def people(app: GkApp) -> People:
    """alice, bob and carol @example.test, and the chat events from now on."""
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    carol = await app.accounts.create_user("carol@example.test", PASSWORD)
    heard = Heard()
    app.events.subscribe(ChatChanged, heard.events.append)
    app.events.subscribe(ChatMention, heard.events.append)
    return People(alice, bob, carol, heard)
