"""
Schema migrations: an empty database reaches the newest revision, a second
run changes nothing, and the newest migration builds exactly the schema
the models describe.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect, text

from gk.storage import migrate
from gk.storage.database import Database
from gk.storage.models import Base

TABLES = {
    "alembic_version",
    "aliases",
    "assistant_conversations",
    "assistant_messages",
    "api_tokens",
    "app_passwords",
    "chat_changes",
    "chat_members",
    "chat_mentions",
    "chat_messages",
    "chat_reactions",
    "chat_rooms",
    "chat_sequence",
    "chat_words",
    "dav_collections",
    "dav_objects",
    "dav_series_months",
    "dav_tombstones",
    "domains",
    "mail_folders",
    "messages",
    "queued_messages",
    "vanished_messages",
    "queued_recipients",
    "users",
    "web_sessions",
}


def test_empty_database_upgrades_to_head_once(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert migrate.current_revision(db.engine) is None
        assert migrate.upgrade(db.engine) is True
        assert migrate.current_revision(db.engine) == migrate.head_revision(db.engine)
        assert set(inspect(db.engine).get_table_names()) == TABLES

        # A second run (every server start does one) is a no-op.
        assert migrate.upgrade(db.engine) is False
        assert migrate.current_revision(db.engine) == migrate.head_revision(db.engine)
    finally:
        db.dispose()


def test_models_and_newest_migration_agree(database_url: str) -> None:
    db = Database(database_url)
    try:
        migrate.upgrade(db.engine)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert compare_metadata(context, Base.metadata) == []

            # The comparison does see a difference when there is one.
            changed = MetaData()
            for table in Base.metadata.tables.values():
                table.to_metadata(changed)
            Table("not_migrated", changed, Column("id", Integer, primary_key=True))
            diff = compare_metadata(context, changed)
            assert [d[0] for d in diff] == ["add_table"]
            assert diff[0][1].name == "not_migrated"
    finally:
        db.dispose()


def test_sqlite_autoincrement_tables_match_the_models(sqlite_url: str) -> None:
    """What compare_metadata cannot see: ids that must never be reused."""
    db = Database(sqlite_url)
    try:
        migrate.upgrade(db.engine)
        with db.engine.connect() as connection:
            query = text("SELECT name, sql FROM sqlite_master WHERE type='table'")
            ddl = {name: sql for name, sql in connection.execute(query)}
        for name, table in Base.metadata.tables.items():
            wanted = bool(table.kwargs.get("sqlite_autoincrement"))
            assert ("AUTOINCREMENT" in ddl[name]) == wanted, name
        assert Base.metadata.tables["users"].kwargs["sqlite_autoincrement"]
    finally:
        db.dispose()
