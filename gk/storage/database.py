"""
The database: one SQLAlchemy engine and the thread pools that use it.

No database call runs on the reactor thread.  Code on the reactor awaits
L{Database.read} or L{Database.write} with a function that takes a
L{Session}; the function runs in a worker thread inside one transaction,
committed when it returns and rolled back when it raises.

SQLite allows one writer at a time, so writes go through a pool of exactly
one thread (no C{database is locked} under load) while reads use several
threads against the WAL.  PostgreSQL gets one larger pool for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from gk.errors import GkError

T = TypeVar("T")

#: Seconds SQLite waits for a lock before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


class DatabaseError(GkError):
    """The database is unreachable or refused an operation."""


def create_database_engine(url: str, *, writer: bool = False) -> Engine:
    """
    Make an engine for C{url}.

    For SQLite: WAL journal, a busy timeout, enforced foreign keys and full
    fsync on commit (an acknowledged message's index row must survive power
    loss); a C{writer} engine starts every transaction with C{BEGIN
    IMMEDIATE} so that two writers never deadlock upgrading a read lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_size=12, max_overflow=4, pool_pre_ping=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=1 if writer else 4,
        max_overflow=0,
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"
    # pysqlite's own transaction handling begins lazily and never for a
    # SELECT; take it over (the SQLAlchemy-documented recipe).
    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql(begin))
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


#: A call waiting for L{Database.write_together}, and where its result goes.
_Grouped = tuple[Callable[[Session], Any], Deferred[Any]]


class Database(Service):
    """
    The engine plus its thread pools, started and stopped with the service
    tree.  Also usable without a reactor (the CLI, start-up checks) through
    L{transaction}.
    """

    name = "database"

    def __init__(self, url: str, reactor: IReactorThreads | None = None) -> None:
        self.url = url
        self.engine = create_database_engine(url, writer=True)
        self._reactor = reactor
        self._write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        if is_sqlite(self.engine):
            self._read_engine = create_database_engine(url)
            self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
            self._writer = ThreadPool(1, 1, name="gk-db-writer")
            self._reader = ThreadPool(1, 4, name="gk-db-reader")
        else:
            self._read_engine = self.engine
            self._read_sessions = self._write_sessions
            self._writer = ThreadPool(1, 12, name="gk-db")
            self._reader = self._writer
        self._grouped: list[_Grouped] = []
        self._group_busy = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def check_connection(self) -> None:
        """
        Connect once, synchronously.

        @raise DatabaseError: the database cannot be reached.
        """
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as e:
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise DatabaseError(
                f"database {make_url(self.url).render_as_string()} is unreachable: {reason}"
            ) from None

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Session]:
        """
        A session in one transaction, committed on success, rolled back on
        an exception.  Blocking: for worker threads and code that runs
        without a reactor.
        """
        sessions = self._write_sessions if write else self._read_sessions
        with sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _run(self, fn: Callable[[Session], T], write: bool) -> T:
        with self.transaction(write=write) as session:
            return fn(session)

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run C{fn(session)} in a reader thread and return its result."""
        return await self._defer(self._reader, self._run, fn, False)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run C{fn(session)} in the writer thread in one transaction."""
        return await self._defer(self._writer, self._run, fn, True)

    async def write_together(self, fn: Callable[[Session], T]) -> T:
        """
        L{write}, except that the calls made while an earlier group is in
        the writer share one transaction: one commit (on SQLite one fsync)
        for all of them.  If the shared transaction fails, each C{fn} is
        run again in a transaction of its own, so that an error is only
        its caller's: C{fn} must be safe to run twice (its first run was
        rolled back).
        """
        done: Deferred[Any] = Deferred()
        self._grouped.append((fn, done))
        self._next_group()
        result: T = await done
        return result

    def _next_group(self) -> None:
        if self._group_busy or not self._grouped:
            return
        batch, self._grouped = self._grouped, []
        self._group_busy = True
        Deferred.fromCoroutine(self._write_group(batch))

    async def _write_group(
        self, batch: list[tuple[Callable[[Session], Any], Deferred[Any]]]
    ) -> None:
        try:
            outcomes = await self._defer(self._writer, self._run_group, [fn for fn, _ in batch])
        except BaseException as e:  # the service stopped
            outcomes = [e] * len(batch)
        finally:
            self._group_busy = False
            self._next_group()
        for (_fn, done), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                done.errback(outcome)
            else:
                done.callback(outcome)

    def _run_group(self, fns: list[Callable[[Session], Any]]) -> list[Any]:
        if len(fns) > 1:
            # If this fails, each runs alone below, so that an error is its own.
            with suppress(Exception), self.transaction() as session:
                return [fn(session) for fn in fns]
        outcomes: list[Any] = []
        for fn in fns:
            try:
                outcomes.append(self._run(fn, True))
            except Exception as e:
                outcomes.append(e)
        return outcomes

    async def in_writer(self, fn: Callable[[], T]) -> T:
        """
        Run the blocking C{fn()} in the writer thread, serialised with the
        writes, and return its result.  C{fn} opens its own transactions
        with L{transaction} (several, and work between them, in one trip
        to the thread: e.g. a group commit and what must follow it).
        """
        return await self._defer(self._writer, fn)

    async def _defer(self, pool: ThreadPool, fn: Callable[..., T], *args: Any) -> T:
        if self._reactor is None:
            raise RuntimeError("Database was made without a reactor; use transaction()")
        if not pool.started:
            raise RuntimeError("the database service is not running")
        return await deferToThreadPool(self._reactor, pool, fn, *args)

    async def ping(self) -> bool:
        """Whether a trivial query succeeds, for readiness checks."""
        try:
            await self.read(lambda s: s.execute(text("SELECT 1")).scalar_one())
        except SQLAlchemyError:
            return False
        return True

    def startService(self) -> None:
        super().startService()
        self._writer.start()
        if self._reader is not self._writer:
            self._reader.start()

    def stopService(self) -> None:
        super().stopService()
        # Joining waits for queries already running; new ones are refused.
        if self._reader is not self._writer:
            self._reader.stop()
        self._writer.stop()

    def dispose(self) -> None:
        self.engine.dispose()
        self._read_engine.dispose()
