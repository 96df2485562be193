"""
L{Prepared}: the chat storage's frequent statements, compiled once per
kind of database and run straight on the DBAPI connection of a session.

A chat post runs about eight one-row statements in the database's one
writer thread, and the other chat writes several each.  Even built once,
a Core statement spent 0.04 ms in SQLAlchemy's execution machinery
(cache key, execution context, result object) where the DBAPI call took
0.002 ms (a one-row SELECT on SQLite).  Here SQLAlchemy compiles a
statement once for each dialect it meets; a run converts the parameters
with the bind processors of their types (UTC timestamps, booleans on
SQLite), executes on a DBAPI cursor of the session's connection, inside
the session's transaction, and converts the rows with the result
processors of their columns, just as SQLAlchemy would; the DBAPI's
errors become SQLAlchemy's.

Only for statements of a fixed shape: an IN list or a parameter rendered
into the SQL per call is refused when compiled (such statements go
through L{gk.storage.chat_common.execute}).

On PostgreSQL every statement is a round trip to the server, and the
writer thread then waits for the GIL again, behind the reactor thread's
work; L{pipeline} sends statements whose outcome nobody waits for
(L{Prepared.send}) together with the next one whose rows are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ReturnsRows

#: A parameter's name, its bind processor and its value when not given.
_Field = tuple[str, Callable[[Any], Any] | None, Any]
_REQUIRED = object()

Row = tuple[Any, ...]
Params = Mapping[str, Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool
    fields: tuple[_Field, ...]
    #: A result processor per column (L{None}: none needed); empty: no rows.
    columns: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, params: Params) -> tuple[Any, ...] | dict[str, Any]:
        values = []
        for name, process, default in self.fields:
            value = params.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"no value for parameter {name!r}")
            values.append(value if process is None else process(value))
        if self.positional:
            return tuple(values)
        return {field[0]: value for field, value in zip(self.fields, values, strict=True)}

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Row]:
        if not any(self.columns):
            return [tuple(row) for row in raw]
        return [
            tuple(v if p is None else p(v) for p, v in zip(self.columns, row, strict=True))
            for row in raw
        ]


class Pending:
    """A statement sent (L{Prepared.send}) whose rows may be read."""

    def __init__(self, dialect: Dialect, compiled: _Compiled, cursor: Any) -> None:
        self._dialect = dialect
        self._compiled = compiled
        self._cursor = cursor

    def rows(self) -> list[Row]:
        """Every row, converted (in a L{pipeline}, once the database has sent them)."""
        try:
            raw = self._cursor.fetchall()
        except self._dialect.loaded_dbapi.Error as e:
            raise _translated(self._dialect, self._compiled.sql, e) from e
        finally:
            self._cursor.close()
        return self._compiled.rows(raw)


class Prepared:
    """A statement compiled once per dialect, run on the DBAPI cursor (module docstring)."""

    def __init__(self, statement: ClauseElement, columns: Sequence[str] | None = None) -> None:
        """
        @param columns: for an INSERT, the columns its parameters give
            (the others take their server defaults).
        """
        self._statement = statement
        self._columns = list(columns) if columns is not None else None
        self._compiled: dict[tuple[Any, ...], _Compiled] = {}

    def run(self, session: Session, params: Params | None = None) -> int:
        """Execute in the session's transaction; the rows it changed (C{rowcount})."""
        dialect, compiled, cursor = self._execute(session, params or {})
        try:
            active = session.info.get(_PIPELINE)
            if active is not None:  # the count comes with the results
                active.sync()
            return int(cursor.rowcount)
        except dialect.loaded_dbapi.Error as e:
            raise _translated(dialect, compiled.sql, e) from e
        finally:
            cursor.close()

    def rows(self, session: Session, params: Params | None = None) -> list[Row]:
        """Execute in the session's transaction; every row, converted."""
        return self.send(session, params).rows()

    def first(self, session: Session, params: Params | None = None) -> Row | None:
        """The first row, or L{None}."""
        found = self.rows(session, params)
        return found[0] if found else None

    def scalars(self, session: Session, params: Params | None = None) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self.rows(session, params)]

    def send(self, session: Session, params: Params | None = None) -> Pending:
        """
        Execute in the session's transaction without waiting for the
        outcome: inside a L{pipeline} the statement goes to the database
        with the next ones, and an error it meets is raised there, at the
        latest when the pipeline ends.  Its rows, if wanted, come from the
        L{Pending} returned.
        """
        return Pending(*self._execute(session, params or {}))

    def run_many(self, session: Session, params: Sequence[Params]) -> None:
        """
        Execute once per parameter set (an INSERT of many rows), in the
        session's transaction; inside a L{pipeline}, as L{send}.
        """
        if not params:
            return
        dialect, dbapi = _connection(session)
        compiled = self._for(dialect)
        cursor = dbapi.cursor()  # not closed: in a pipeline it receives its results later
        try:
            cursor.executemany(compiled.sql, [compiled.arguments(p) for p in params])
        except dialect.loaded_dbapi.Error as e:
            raise _translated(dialect, compiled.sql, e) from e

    def _execute(self, session: Session, params: Params) -> tuple[Dialect, _Compiled, Any]:
        dialect, dbapi = _connection(session)
        compiled = self._for(dialect)
        cursor = dbapi.cursor()
        try:
            cursor.execute(compiled.sql, compiled.arguments(params))
        except BaseException as e:
            cursor.close()
            if isinstance(e, dialect.loaded_dbapi.Error):
                raise _translated(dialect, compiled.sql, e) from e
            raise
        return dialect, compiled, cursor

    def _for(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver, dialect.paramstyle, dialect.server_version_info)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _compile(self._statement, self._columns, dialect)
        return found


#: Where L{pipeline} keeps the DBAPI's pipeline in C{session.info}.
_PIPELINE = "gk.storage.chat_sql.pipeline"
#: Where L{_connection} keeps the transaction's DBAPI connection.
_CONNECTION = "gk.storage.chat_sql.connection"


@contextmanager
def pipeline(session: Session) -> Iterator[None]:
    """
    Within the block, statements go to the database together until one
    whose rows or count are read (psycopg's pipeline mode on PostgreSQL);
    on a database without such a mode they run one by one, as outside.
    The block may be nested (in one pipeline).
    """
    dialect, dbapi = _connection(session)
    enter = getattr(dbapi, "pipeline", None)
    # psycopg has one with libpq 14 or later (its binary package brings one).
    pipelines = getattr(dialect.loaded_dbapi, "Pipeline", None)
    supported = pipelines is not None and pipelines.is_supported()
    if enter is None or not supported or _PIPELINE in session.info:
        yield
        return
    try:
        with enter() as active:
            session.info[_PIPELINE] = active
            try:
                yield
            finally:
                del session.info[_PIPELINE]
    except dialect.loaded_dbapi.Error as e:  # raised as the pipeline ends
        raise _translated(dialect, "(pipeline)", e) from e


def _connection(session: Session) -> tuple[Dialect, Any]:
    """
    The dialect and the DBAPI connection of the session's transaction,
    which begins if need be.  Kept for the transaction's other statements
    (asking the session each time cost as much as running a statement).
    """
    transaction = session.get_transaction()
    kept = session.info.get(_CONNECTION)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1], kept[2]
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    session.info[_CONNECTION] = (session.get_transaction(), connection.dialect, dbapi)
    return connection.dialect, dbapi


def _translated(dialect: Dialect, sql: str, error: Exception) -> DBAPIError:
    """The DBAPI's error as SQLAlchemy's (IntegrityError...), as a Core statement raises it."""
    found = DBAPIError.instance(sql, None, error, dialect.loaded_dbapi.Error, dialect=dialect)
    assert isinstance(found, DBAPIError)
    return found


def _compile(statement: ClauseElement, columns: list[str] | None, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=columns)
    assert isinstance(compiled, SQLCompiler)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("a statement rendered per call (an IN list?) cannot be prepared")
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    names = compiled.positiontup if dialect.positional else list(binds)
    assert names is not None
    fields = []
    for name in names:
        bind = binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        fields.append((name, process, _REQUIRED if bind.required else bind.effective_value))
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    if isinstance(statement, ReturnsRows):
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.exported_columns
        )
    return _Compiled(compiled.string, bool(dialect.positional), tuple(fields), results)
