"""
Prepared statements (L{gk.storage.chat_sql}) on a real database (SQLite,
and PostgreSQL when configured): values go in and come out as
SQLAlchemy's own statements would write and read them, statements run in
the session's transaction, in order also when sent in a pipeline, errors
are SQLAlchemy's, and what cannot be prepared is refused.
"""

from __future__ import annotations

import datetime

import pytest
import pytest_twisted
from sqlalchemy import String, bindparam, cast, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gk.storage import accounts
from gk.storage.chat_sql import Prepared, pipeline
from gk.storage.database import Database
from gk.storage.models import ChatMessage, ChatRoom

_NEW_ROOM = Prepared(
    insert(ChatRoom).returning(ChatRoom.id), ["kind", "name", "created", "last_activity"]
)
_ROOM = Prepared(
    select(ChatRoom.name, ChatRoom.created, ChatRoom.last_activity).where(
        ChatRoom.id == bindparam("p_room")
    )
)
_NEW_MESSAGE = Prepared(
    insert(ChatMessage), ["room_id", "text", "created", "deleted", "reply_count"]
)
# A literal ("public") becomes a parameter with its value; p_name is used twice.
_RENAME_PUBLIC = Prepared(
    update(ChatRoom)
    .where(ChatRoom.kind == "public", ChatRoom.name != bindparam("p_name"))
    .values(name=bindparam("p_name"))
)
_DELETED = Prepared(
    select(ChatMessage.text, ChatMessage.deleted)
    .where(ChatMessage.room_id == bindparam("p_room"))
    .order_by(ChatMessage.id)
)

#: A time with an offset and microseconds: stored as UTC, read back equal.
NOON_IN_PARIS = datetime.datetime(
    2026, 5, 4, 12, 30, 15, 123456, datetime.timezone(datetime.timedelta(hours=2))
)


@pytest_twisted.ensureDeferred
async def test_values_round_trip_as_sqlalchemy_writes_and_reads_them(db: Database) -> None:
    def write(session: Session) -> int:
        [(room_id,)] = _NEW_ROOM.rows(
            session,
            {
                "kind": "public",
                "name": "100% 'quoted'",
                "created": NOON_IN_PARIS,
                "last_activity": NOON_IN_PARIS,
            },
        )
        _NEW_MESSAGE.run_many(
            session,
            [
                {
                    "room_id": room_id,
                    "text": "kept",
                    "created": NOON_IN_PARIS,
                    "deleted": False,
                    "reply_count": 0,
                },
                {
                    "room_id": room_id,
                    "text": "",
                    "created": NOON_IN_PARIS,
                    "deleted": True,
                    "reply_count": 0,
                },
            ],
        )
        return int(room_id)

    room_id = await db.write(write)
    # The same row written by SQLAlchemy itself.
    other_id = await db.write(
        lambda s: s.execute(
            insert(ChatRoom)
            .values(kind="public", name="x", created=NOON_IN_PARIS, last_activity=NOON_IN_PARIS)
            .returning(ChatRoom.id)
        ).scalar_one()
    )

    def read(session: Session) -> None:
        # Stored alike (as text: e.g. UTC without an offset on SQLite).
        stored = select(cast(ChatRoom.created, String)).where(ChatRoom.id.in_([room_id, other_id]))
        [mine, theirs] = session.scalars(stored.order_by(ChatRoom.id))
        assert mine == theirs
        # Read through SQLAlchemy: the same values.
        name, created = session.execute(
            select(ChatRoom.name, ChatRoom.created).where(ChatRoom.id == room_id)
        ).one()
        assert name == "100% 'quoted'"
        assert created == NOON_IN_PARIS and created.tzinfo == datetime.UTC
        # And through the prepared statement: converted alike.
        assert _ROOM.first(session, {"p_room": room_id}) == (name, created, created)
        assert _ROOM.first(session, {"p_room": other_id + 1}) is None
        assert _DELETED.rows(session, {"p_room": room_id}) == [("kept", False), ("", True)]
        assert [type(d) for _, d in _DELETED.rows(session, {"p_room": room_id})] == [bool, bool]

    await db.read(read)


@pytest_twisted.ensureDeferred
async def test_statements_run_in_the_sessions_transaction(db: Database) -> None:
    def add(session: Session, name: str) -> int:
        now = datetime.datetime.now(datetime.UTC)
        values = {"kind": "public", "name": name, "created": now, "last_activity": now}
        [(room_id,)] = _NEW_ROOM.rows(session, values)
        return int(room_id)

    first = await db.write(lambda s: add(s, "first"))

    def rename_then_fail(session: Session) -> None:
        assert _RENAME_PUBLIC.run(session, {"p_name": "renamed"}) == 1
        add(session, "second")
        # The session sees what the prepared statements did...
        assert session.scalar(select(ChatRoom.name).where(ChatRoom.id == first)) == "renamed"
        raise RuntimeError("roll it all back")

    with pytest.raises(RuntimeError):
        await db.write(rename_then_fail)
    # ...and a rollback takes it back with everything else.
    names = await db.read(lambda s: list(s.scalars(select(ChatRoom.name).order_by(ChatRoom.id))))
    assert names == ["first"]
    # Rows already so named are not changed again: the parameter compared and set alike.
    assert await db.write(lambda s: _RENAME_PUBLIC.run(s, {"p_name": "first"})) == 0


@pytest_twisted.ensureDeferred
async def test_what_cannot_be_prepared_is_refused(db: Database) -> None:
    in_list = Prepared(
        select(ChatRoom.id).where(ChatRoom.id.in_(bindparam("p_ids", expanding=True)))
    )
    with pytest.raises(ValueError, match="IN list"):
        await db.read(lambda s: in_list.rows(s, {"p_ids": [1, 2]}))
    with pytest.raises(KeyError, match="p_room"):
        await db.read(lambda s: _ROOM.rows(s, {}))
    # Nothing was left half done: the database still answers.
    await db.write(lambda s: accounts.add_domain(s, "example.test"))


_NAMES = Prepared(select(ChatRoom.name).order_by(ChatRoom.id))


@pytest_twisted.ensureDeferred
async def test_a_pipeline_keeps_the_order_and_raises_errors_in_it(db: Database) -> None:
    def values(name: str) -> dict[str, object]:
        now = datetime.datetime.now(datetime.UTC)
        return {"kind": "public", "name": name, "created": now, "last_activity": now}

    def write(session: Session) -> tuple[list[str], int, int]:
        with pipeline(session):
            created = _NEW_ROOM.send(session, values("a"))
            _RENAME_PUBLIC.send(session, {"p_name": "b"})
            # Read after what was sent before: the rename is seen...
            names = _NAMES.scalars(session)
            # ...and the count of a statement run in the pipeline is its own.
            renamed = _RENAME_PUBLIC.run(session, {"p_name": "c"})
            [(room_id,)] = created.rows()
        return names, renamed, int(room_id)

    names, renamed, room_id = await db.write(write)
    assert (names, renamed) == (["b"], 1)
    assert await db.read(lambda s: _NAMES.scalars(s)) == ["c"]

    def orphan(session: Session) -> None:
        with pipeline(session):
            message = {"text": "x", "created": NOON_IN_PARIS, "deleted": False, "reply_count": 0}
            _NEW_MESSAGE.send(session, {**message, "room_id": room_id + 1})
            _RENAME_PUBLIC.send(session, {"p_name": "d"})

    # No such room: the error comes (as SQLAlchemy's) by the end of the
    # pipeline, wherever the database reports it, and nothing is kept.
    with pytest.raises(IntegrityError):
        await db.write(orphan)
    assert await db.read(lambda s: _NAMES.scalars(s)) == ["c"]


@pytest_twisted.ensureDeferred
async def test_each_transaction_of_a_session_gets_its_own_connection(db: Database) -> None:
    def values(name: str) -> dict[str, object]:
        now = datetime.datetime.now(datetime.UTC)
        return {"kind": "public", "name": name, "created": now, "last_activity": now}

    def twice(session: Session) -> None:
        _NEW_ROOM.rows(session, values("first"))
        session.commit()
        # A new transaction, maybe on another connection of the pool: the
        # statement runs in it, where the session sees what it did...
        _NEW_ROOM.rows(session, values("second"))
        assert session.scalars(select(ChatRoom.name).order_by(ChatRoom.id)).all() == [
            "first",
            "second",
        ]
        # ...and takes it back with it.
        session.rollback()

    await db.write(twice)
    assert await db.read(lambda s: _NAMES.scalars(s)) == ["first"]
