"""
Posts that arrive together share a commit (L{gk.storage.database.Database.write_together}):
they keep the order they came in, each gets the next position of the
change log, and nothing is lost or doubled, also when one of them is
refused.  What a post returns, and what its event carries, is what is
read back afterwards.  SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import pytest_twisted
from sqlalchemy import event
from sqlalchemy.orm import Session
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from gk.app import GkApp
from gk.chat import MessageInfo, NoSuchRoom
from gk.storage import chat_store as store
from gk.storage.accounts import Account
from tests.chat.conftest import People


@contextmanager
def counting_commits(app: GkApp) -> Iterator[list[int]]:
    """The number of commits on the writer's engine while the block runs (one item)."""
    count = [0]

    def commit(connection: Any) -> None:
        count[0] += 1

    event.listen(app.db.engine, "commit", commit)
    try:
        yield count
    finally:
        event.remove(app.db.engine, "commit", commit)


async def together(app: GkApp, posts: Sequence[Coroutine[Any, Any, MessageInfo]]) -> list[Any]:
    """
    Start C{posts} while a write holds the change log's lock, so that all
    but the first queue up and go to the database as one group; their
    results (a L{MessageInfo} or the exception), in order.
    """

    def hold(session: Session) -> None:
        store.lock_log(session)
        time.sleep(0.3)

    holding = Deferred.fromCoroutine(app.db.write(hold))
    started = [Deferred.fromCoroutine(p) for p in posts]
    await holding
    results = await DeferredList(started, consumeErrors=True)
    return [value if ok else cast(Failure, value).value for ok, value in results]


async def unread(app: GkApp, who: Account) -> int:
    [summary] = await app.chat.rooms(who)
    return summary.unread


@pytest_twisted.ensureDeferred
async def test_posts_arriving_together_keep_their_order_and_positions(
    app: GkApp, people: People
) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room = await chat.create_room(alice, "ops", "private", [bob.email])
    start = await chat.position(alice)
    senders = [alice, bob] * 10
    texts = [f"message {n} for @bob and @alice" if n % 5 == 0 else f"m{n}" for n in range(20)]
    people.heard.clear()

    with counting_commits(app) as commits:
        posted = await together(
            app, [chat.post(who, room.id, text) for who, text in zip(senders, texts, strict=True)]
        )
    # Twenty posts, a few commits: the hold's, the first post's, the others' together.
    assert commits[0] <= 4
    assert all(isinstance(m, MessageInfo) for m in posted)
    assert [m.text for m in posted] == texts
    ids = [m.id for m in posted]
    assert ids == sorted(ids) and len(set(ids)) == 20

    # Each post's change at the next position, in the order they came; one
    # event per member for each, published in that order.
    for who in (alice, bob):
        heard = [e for e in people.heard.changes(who) if e.kind == "message.posted"]
        assert [e.position for e in heard] == list(range(start + 1, start + 21))
        assert [e.payload["message"]["id"] for e in heard] == ids
    assert people.heard.changes(carol) == []
    batch = await chat.changes_since(alice, start)
    assert [(c.position, c.payload["message"]["id"]) for c in batch.changes] == [
        (start + 1 + n, message_id) for n, message_id in enumerate(ids)
    ]
    # The event carried the message as stored; the post returned it as stored.
    assert [c.payload for c in batch.changes] == [
        e.payload for e in people.heard.changes(alice) if e.kind == "message.posted"
    ]
    assert [await chat.message(alice, i) for i in ids] == posted
    assert posted[0].mentions == ("alice@example.test", "bob@example.test")
    mentioned = [m.message_id for m in people.heard.mentions()]
    assert mentioned == [ids[n] for n in (0, 5, 10, 15)]

    # Each post moved its sender's read marker to it: unread are the other's after it.
    assert await unread(app, alice) == 1 and await unread(app, bob) == 0
    summary = {s.id: s for s in await chat.rooms(alice)}[room.id]
    assert summary.last_read == ids[-2]


@pytest_twisted.ensureDeferred
async def test_a_refused_post_in_a_group_fails_alone(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room = await chat.create_room(alice, "ops", "private", [bob.email])
    start = await chat.position(alice)
    people.heard.clear()

    posts = [chat.post(alice, room.id, "one"), chat.post(bob, room.id, "two")]
    posts.append(chat.post(carol, room.id, "not in the room"))
    posts += [chat.post(alice, room.id, "three"), chat.post(bob, room.id, "four")]
    results = await together(app, posts)

    assert isinstance(results[2], NoSuchRoom)
    good = [r for n, r in enumerate(results) if n != 2]
    assert [m.text for m in good] == ["one", "two", "three", "four"]
    # No gap where carol's post was refused, nothing twice.
    heard = [e for e in people.heard.changes(alice) if e.kind == "message.posted"]
    assert [e.position for e in heard] == list(range(start + 1, start + 5))
    assert [e.payload["message"]["text"] for e in heard] == ["one", "two", "three", "four"]
    assert await chat.position(alice) == start + 4
    page = await chat.history(alice, room.id)
    assert [m.text for m in page.messages] == ["four", "three", "two", "one"]
