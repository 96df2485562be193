"""
Schema migrations: alembic, driven from code (no alembic.ini to keep in step).

The server calls L{upgrade} at start and C{gk migrate} calls it by hand;
both bring the database to the newest revision in ``migrations/versions``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from gk.storage.database import DatabaseError

#: PostgreSQL advisory lock held while migrating ("gk" in ASCII).
_LOCK_KEY = 0x676B


def migrations_dir() -> Path:
    """
    Where the alembic scripts are: ``migrations/`` beside the package in a
    source checkout, or the installed ``gk.migrations`` package.
    """
    source_tree = Path(__file__).resolve().parents[2] / "migrations"
    if (source_tree / "env.py").is_file():
        return source_tree
    package = importlib.import_module("gk.migrations")
    return Path(str(package.__file__)).parent


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def head_revision(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> bool:
    """
    Bring the schema to the newest revision.

    @return: whether anything was applied.
    @raise DatabaseError: the database is unreachable or a migration failed.
    """
    try:
        if current_revision(engine) == head_revision(engine):
            return False
        config = alembic_config(engine)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two processes starting on a fresh shared database: the
                # second waits here, then alembic finds the schema current.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise DatabaseError(f"database migration failed: {reason}") from None
    return True
