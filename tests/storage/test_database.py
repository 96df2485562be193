"""
The database service: work runs in worker threads inside one transaction,
a failure rolls back, and concurrent writers never trip over SQLite's lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
import pytest_twisted
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.python import threadable

from gk.storage.database import SQLITE_BUSY_TIMEOUT_MS, Database, DatabaseError
from gk.storage.models import Domain


def _where(session: Session) -> tuple[threading.Thread, bool]:
    session.execute(text("SELECT 1"))
    return threading.current_thread(), threadable.isInIOThread()


@pytest_twisted.ensureDeferred
async def test_read_and_write_run_off_the_reactor_thread(db: Database) -> None:
    assert threadable.isInIOThread(), "the test itself runs on the reactor thread"
    main = threading.main_thread()
    for thread, in_io_thread in (await db.read(_where), await db.write(_where)):
        assert thread is not main
        assert thread is not threading.current_thread()
        assert not in_io_thread


@pytest_twisted.ensureDeferred
async def test_write_commits_and_a_raising_write_rolls_back(db: Database) -> None:
    class Boom(Exception):
        pass

    def add(name: str, fail: bool) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            session.add(Domain(name=name))
            session.flush()  # the row is really sent to the database
            if fail:
                raise Boom()

        return work

    await db.write(add("kept.test", fail=False))
    with pytest.raises(Boom):
        await db.write(add("rolled-back.test", fail=True))

    names = await db.read(lambda s: list(s.scalars(select(Domain.name).order_by(Domain.name))))
    assert names == ["kept.test"]
    # The writer is still usable after the failure.
    await db.write(add("after.test", fail=False))
    assert await db.read(lambda s: s.scalar(select(func.count()).select_from(Domain))) == 2


@pytest_twisted.ensureDeferred
async def test_many_concurrent_writes_and_reads_all_succeed(db: Database) -> None:
    def insert(i: int):
        def work(session: Session) -> int:
            session.add(Domain(name=f"d{i}.test"))
            session.flush()
            return session.scalar(select(func.count()).select_from(Domain)) or 0

        return work

    def count(session: Session) -> int:
        return session.scalar(select(func.count()).select_from(Domain)) or 0

    writes = [defer.ensureDeferred(db.write(insert(i))) for i in range(60)]
    reads = [defer.ensureDeferred(db.read(count)) for _ in range(30)]
    written = await defer.gatherResults(writes, consumeErrors=True)
    seen = await defer.gatherResults(reads, consumeErrors=True)

    assert all(1 <= n <= 60 for n in written)
    if db.dialect == "sqlite":
        # One writer at a time: each write saw its own row and every earlier one.
        assert sorted(written) == list(range(1, 61))
    assert all(0 <= n <= 60 for n in seen)
    assert await db.read(count) == 60


@pytest_twisted.ensureDeferred
async def test_ping(db: Database) -> None:
    assert await db.ping() is True


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        for engine in (db.engine, db._read_engine):
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
                assert busy == SQLITE_BUSY_TIMEOUT_MS
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                # FULL: a committed index row survives power loss.
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        db.dispose()


@pytest_twisted.ensureDeferred
async def test_work_is_refused_when_the_service_is_not_running(database_url: str) -> None:
    from twisted.internet import reactor

    db = Database(database_url, cast(Any, reactor))
    try:
        with pytest.raises(RuntimeError, match="not running"):
            await db.read(_where)
    finally:
        db.dispose()
    without_reactor = Database(database_url)
    try:
        with pytest.raises(RuntimeError, match="transaction"):
            await without_reactor.write(_where)
    finally:
        without_reactor.dispose()


def test_unreachable_database_is_one_clear_line(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'gk.sqlite3'}")
    try:
        with pytest.raises(DatabaseError) as info:
            db.check_connection()
    finally:
        db.dispose()
    message = str(info.value)
    assert "unreachable" in message
    assert "\n" not in message
