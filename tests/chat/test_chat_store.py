"""
Chat storage through a real database (SQLite, and PostgreSQL when
configured): change log positions that a reader never sees out of order,
even with concurrent writers; the word index's exact and prefix look-ups
in byte order whatever the locale; unread counts; what remains of a
deleted account's messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import pytest_twisted
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twisted.internet.defer import Deferred, gatherResults

from gk.storage import accounts
from gk.storage import chat_store as store
from gk.storage.database import Database
from gk.storage.models import ChatChange, ChatMessage, utcnow


async def make_users(db: Database, *names: str) -> list[int]:
    def add(session: Session) -> list[int]:
        accounts.add_domain(session, "example.test")
        return [accounts.add_user(session, f"{n}@example.test", "hash").id for n in names]

    return await db.write(add)


async def make_room(db: Database, owner: int, *others: int, kind: str = store.PUBLIC) -> int:
    def add(session: Session) -> int:
        store.lock_log(session)
        room = store.insert_room(session, kind, "room", owner)
        store.add_member(session, room.id, owner, store.OWNER)
        for other in others:
            store.add_member(session, room.id, other, store.MEMBER)
        store.append_change(session, "room.created", room.id)
        return room.id

    return await db.write(add)


async def post(db: Database, room_id: int, sender: int, text: str, words: list[str]) -> int:
    def add(session: Session) -> int:
        store.lock_log(session)
        message_id = store.insert_message(session, room_id, sender, text, None, utcnow())
        store.set_words(session, message_id, words)
        store.append_change(session, "message.posted", room_id, message_id=message_id)
        return message_id

    return await db.write(add)


@pytest_twisted.ensureDeferred
async def test_positions_follow_each_other_and_a_rollback_gives_its_back(db: Database) -> None:
    [alice] = await make_users(db, "alice")
    room_id = await make_room(db, alice)
    assert await db.read(store.current_position) == 1

    def fail(session: Session) -> None:
        store.lock_log(session)
        store.append_change(session, "message.posted", room_id)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await db.write(fail)

    def two(session: Session) -> list[int]:
        store.lock_log(session)
        return [store.append_change(session, "member.joined", room_id) for _ in range(2)]

    assert await db.write(two) == [2, 3]
    assert await db.read(store.current_position) == 3
    rows = await db.read(lambda s: store.changes_for(s, alice, 0, 3, 10))
    assert [(r.position, r.kind) for r in rows] == [
        (1, "room.created"),
        (2, "member.joined"),
        (3, "member.joined"),
    ]


@pytest_twisted.ensureDeferred
async def test_a_reader_never_sees_a_position_before_the_ones_below_it(db: Database) -> None:
    """
    Concurrent writers (twelve threads on PostgreSQL) each hold their
    transaction open a little after taking a position; a reader polling
    all along must see every position, in order, with no gap, ever.
    """
    [alice] = await make_users(db, "alice")
    room_id = await make_room(db, alice)
    start = await db.read(store.current_position)

    def write(session: Session) -> int:
        store.lock_log(session)
        position = store.append_change(session, "message.posted", room_id)
        time.sleep(0.002)  # commit a little later, while others wait
        return position

    seen: list[int] = []
    done = False

    async def poll() -> None:
        after = start
        while not done or after < await db.read(store.current_position):

            def read(session: Session, after: int = after) -> list[int]:
                upto = store.current_position(session)
                return [r.position for r in store.changes_for(session, alice, after, upto, 1000)]

            batch = await db.read(read)
            # Each batch starts right after the last one and has no holes.
            assert batch == list(range(after + 1, after + 1 + len(batch)))
            seen.extend(batch)
            after = batch[-1] if batch else after

    reader = Deferred.fromCoroutine(poll())
    positions = await gatherResults(
        [Deferred.fromCoroutine(db.write(write)) for _ in range(60)], consumeErrors=True
    )
    done = True
    await reader
    assert sorted(positions) == list(range(start + 1, start + 61))
    assert seen == sorted(positions)
    assert await db.read(lambda s: s.scalar(select(func.count()).select_from(ChatChange))) == 61


@pytest_twisted.ensureDeferred
async def test_changes_for_a_user_are_their_rooms_and_their_own(db: Database) -> None:
    alice, bob, carol = await make_users(db, "alice", "bob", "carol")
    shared = await make_room(db, alice, bob, kind=store.PRIVATE)
    other = await make_room(db, alice, kind=store.PRIVATE)  # bob is not in it

    def changes(session: Session) -> None:
        store.lock_log(session)
        store.append_change(session, "read.marked", shared, subject_id=alice, private=True)
        store.append_change(session, "read.marked", shared, subject_id=bob, private=True)
        store.add_member(session, other, bob, store.MEMBER)
        store.append_change(session, "member.joined", other, subject_id=bob, data={"x": 1})
        store.remove_member(session, other, bob)
        store.append_change(session, "member.left", other, subject_id=bob)
        store.append_change(session, "message.posted", other)

    await db.write(changes)
    latest = await db.read(store.current_position)

    def seen_by(user: int, limit: int = 100) -> Callable[[Session], list[tuple[int, str, int]]]:
        def read(session: Session) -> list[tuple[int, str, int]]:
            rows = store.changes_for(session, user, 0, latest, limit)
            return [(r.position, r.kind, r.room_id) for r in rows]

        return read

    assert await db.read(seen_by(bob)) == [
        (1, "room.created", shared),
        (4, "read.marked", shared),  # his own marker, not alice's
        (5, "member.joined", other),  # about him, though he has left since
        (6, "member.left", other),
    ]
    assert [p for p, _, _ in await db.read(seen_by(alice))] == [1, 2, 3, 5, 6, 7]
    assert await db.read(seen_by(carol)) == []
    assert [p for p, _, _ in await db.read(seen_by(bob, limit=2))] == [1, 4]
    [row] = await db.read(lambda s: store.changes_for(s, bob, 4, 5, 10))
    assert (row.subject_id, row.data, row.private) == (bob, {"x": 1}, False)


@pytest_twisted.ensureDeferred
async def test_words_match_exactly_or_by_prefix_in_byte_order(db: Database) -> None:
    alice, bob = await make_users(db, "alice", "bob")
    room_id = await make_room(db, alice)
    elsewhere = await make_room(db, bob)
    ids = {
        "deploy": await post(db, room_id, alice, "", ["deploy", "deployment", "cafe"]),
        "cart": await post(db, room_id, alice, "", ["cart", "zebra"]),
        "cb": await post(db, room_id, alice, "", ["cb", "cafe"]),
        "kanji": await post(db, room_id, alice, "", ["日本語", "cafe"]),
        "kanji2": await post(db, room_id, alice, "", ["日本人"]),
        "sunday": await post(db, room_id, alice, "", ["日曜"]),
        "upper": await post(db, room_id, alice, "", ["Cafe", "CAR"]),
        "bob's": await post(db, elsewhere, bob, "", ["cafe", "deploy"]),
    }

    async def search(words: list[str], prefix: str | None, user: int = alice) -> list[int]:
        return await db.read(lambda s: store.search_ids(s, user, words, prefix, 50))

    assert await search(["cafe"], None) == [ids["kanji"], ids["cb"], ids["deploy"]]
    assert await search([], "ca") == [ids["kanji"], ids["cb"], ids["cart"], ids["deploy"]]
    # A message with two words of the prefix comes once.
    assert await search([], "depl") == [ids["deploy"]]
    assert await search(["cafe"], "zeb") == []
    assert await search(["zebra"], "car") == [ids["cart"]]
    assert await search(["cafe", "deploy"], None) == [ids["deploy"]]
    assert await search([], "日本") == [ids["kanji2"], ids["kanji"]]
    # Bytes, not a locale's collation: "C" is not "c".
    assert await search([], "C") == [ids["upper"]]
    assert await search([], "Caf") == [ids["upper"]]
    assert await search(["deploy"], None, user=bob) == [ids["bob's"]]
    assert await db.read(lambda s: store.search_ids(s, alice, [], "ca", 1)) == [ids["kanji"]]


@pytest_twisted.ensureDeferred
async def test_unread_counts_skip_ones_own_and_deleted_messages(db: Database) -> None:
    alice, bob = await make_users(db, "alice", "bob")
    room_id = await make_room(db, alice, bob)
    first = await post(db, room_id, alice, "one", [])
    await post(db, room_id, bob, "mine", [])
    third = await post(db, room_id, alice, "three", [])
    await post(db, room_id, alice, "four", [])

    async def unread() -> tuple[int, int]:
        [summary] = await db.read(lambda s: store.room_summaries(s, bob))
        return summary.unread, await db.read(lambda s: store.unread_count(s, room_id, bob))

    assert await unread() == (3, 3)
    await db.write(lambda s: store.make_tombstone(s, third))
    assert await unread() == (2, 2)
    assert await db.write(lambda s: store.advance_read_marker(s, room_id, bob, first)) is True
    assert await unread() == (1, 1)
    assert await db.write(lambda s: store.advance_read_marker(s, room_id, bob, first)) is False
    [summary] = await db.read(lambda s: store.room_summaries(s, alice))
    assert summary.unread == 1  # bob's


@pytest_twisted.ensureDeferred
async def test_a_deleted_account_leaves_its_messages_without_a_sender(db: Database) -> None:
    alice, bob = await make_users(db, "alice", "bob")

    def direct(session: Session) -> int:
        store.lock_log(session)
        room = store.insert_room(session, store.DIRECT, "", alice, store.direct_key(bob, alice))
        store.add_member(session, room.id, alice, store.OWNER)
        store.add_member(session, room.id, bob, store.MEMBER)
        return room.id

    room_id = await db.write(direct)
    assert await db.read(lambda s: store.direct_room(s, store.direct_key(alice, bob))) is not None
    hello = await post(db, room_id, bob, "hello", ["hello"])
    await db.write(lambda s: store.set_reaction(s, hello, bob, "👋", True))
    await db.write(lambda s: store.set_mentions(s, hello, [alice, bob]))
    [before] = await db.read(lambda s: store.message_infos(s, [hello]))
    assert (before.sender, before.reactions, before.mentions) == (
        "bob@example.test",
        {"👋": ("bob@example.test",)},
        ("alice@example.test", "bob@example.test"),
    )

    await db.write(lambda s: accounts.delete_user(s, "bob@example.test"))
    [after] = await db.read(lambda s: store.message_infos(s, [hello, 10**6]))
    assert (after.sender, after.text, after.reactions, after.mentions) == (
        "",
        "hello",
        {},
        ("alice@example.test",),
    )
    [summary] = await db.read(lambda s: store.room_summaries(s, alice))
    assert summary.name == store.FORMER_MEMBER
    stored = await db.read(
        lambda s: s.scalar(select(ChatMessage.sender_id).where(ChatMessage.id == hello))
    )
    assert stored is None
