"""
Assistant conversations in the database (SQLite and PostgreSQL): each
belongs to one user, keeps its messages in order, records a turn paused
on a confirmation until it is claimed, and goes with its user.
"""

from __future__ import annotations

import pytest_twisted
from sqlalchemy.orm import Session

from gk.app import GkApp
from gk.storage import assistant_store as store


@pytest_twisted.ensureDeferred
async def test_a_conversation_keeps_its_order_and_its_owner(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", "correct horse battery 1")
    bob = await app.accounts.create_user("bob@example.test", "correct horse battery 2")
    db = app.db

    await db.write(lambda s: store.create_conversation(s, alice.id, "c1"))
    await db.write(lambda s: store.create_conversation(s, alice.id, "c2"))
    for role, text in (("user", "hi"), ("assistant", "hello"), ("user", "again")):

        def append(session: Session, r: str = role, t: str = text) -> int:
            body = {"role": r, "content": t}
            return store.append_message(session, "c1", r, body, [{"type": "text", "text": t}])

        await db.write(append)
    await db.write(lambda s: store.set_title(s, "c1", "hi"))
    await db.write(lambda s: store.set_title(s, "c1", "not again"))  # the first title stays

    mine = await db.read(lambda s: store.list_conversations(s, alice.id))
    theirs = await db.read(lambda s: store.list_conversations(s, bob.id))
    messages = await db.read(lambda s: store.messages(s, "c1"))
    seen_by_bob = await db.read(lambda s: store.get_conversation(s, bob.id, "c1"))
    deleted_by_bob = await db.write(lambda s: store.delete_conversation(s, bob.id, "c1"))

    assert [c.id for c in mine] == ["c1", "c2"]  # the most recently updated first
    assert mine[0].title == "hi"
    assert theirs == [] and seen_by_bob is None and deleted_by_bob is False
    assert [(m.seq, m.body["content"]) for m in messages] == [(1, "hi"), (2, "hello"), (3, "again")]


@pytest_twisted.ensureDeferred
async def test_a_paused_turn_is_claimed_once_and_goes_with_its_user(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", "correct horse battery 1")
    bob = await app.accounts.create_user("bob@example.test", "correct horse battery 2")
    db = app.db
    await db.write(lambda s: store.create_conversation(s, alice.id, "c1"))
    pending = {"calls": [{"name": "send_email", "arguments": {"to": ["x@y.test"]}}], "index": 0}
    await db.write(lambda s: store.set_pending(s, "c1", "k" * 32, pending))

    not_bobs = await db.read(lambda s: store.conversation_of_confirmation(s, bob.id, "k" * 32))
    found = await db.write(lambda s: store.conversation_of_confirmation(s, alice.id, "k" * 32))
    await db.write(lambda s: store.set_pending(s, "c1", None, None))
    again = await db.write(lambda s: store.conversation_of_confirmation(s, alice.id, "k" * 32))

    assert not_bobs is None
    assert found is not None and found.id == "c1" and found.pending == pending
    assert again is None

    await db.write(lambda s: store.append_message(s, "c1", "user", {"content": "x"}, []))
    await app.accounts.delete_user("alice@example.test")
    assert await db.read(lambda s: store.messages(s, "c1")) == []
