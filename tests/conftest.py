"""
Shared fixtures: real databases (SQLite, and PostgreSQL when
GK_TEST_DATABASE_URL is set), config files, and a running GkApp.
"""

from __future__ import annotations

import os
import secrets
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gk.app import GkApp
from gk.config import Config, load_config

POSTGRES_URL = os.environ.get("GK_TEST_DATABASE_URL", "")

DATABASE_KINDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def _postgres_schema_url() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database, dropped afterwards."""
    schema = f"gk_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=DATABASE_KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: SQLite in tmp_path, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gk.sqlite3'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database, for checks of SQLite-only settings."""
    return f"sqlite:///{tmp_path / 'gk.sqlite3'}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgresql: needs a PostgreSQL server (GK_TEST_DATABASE_URL)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    Without GK_TEST_DATABASE_URL the PostgreSQL-only tests are deselected
    (reported as such), not skipped: `make test` sets the variable whenever
    a server answers, so on CI they always run.
    """
    if POSTGRES_URL:
        return
    selected = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(selected) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in selected])
        items[:] = selected


ConfigWriter = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> ConfigWriter:
    """
    Write a config file in tmp_path with every listener off except HTTP on
    an ephemeral loopback port; C{extra} is appended TOML, C{database_url}
    replaces the default SQLite file.
    """

    def write(extra: str = "", database_url: str | None = None, name: str = "gk.toml") -> Path:
        path = tmp_path / name
        database = f'[database]\nurl = "{database_url}"\n' if database_url else ""
        body = textwrap.dedent(
            """
            [server]
            hostname = "mail.example.test"
            domains = ["example.test"]
            data_dir = "data"

            [smtp]
            listen = []

            [submission]
            listen = []
            tls_listen = []

            [imap]
            listen = []
            tls_listen = []

            [http]
            listen = ["tcp:0:interface=127.0.0.1"]
            """
        )
        path.write_text(body + database + textwrap.dedent(extra))
        return path

    return write


@pytest.fixture
def config(write_config: ConfigWriter, database_url: str) -> Config:
    return load_config(write_config(database_url=database_url), environ={})


@pytest_twisted.async_yield_fixture
async def app(config: Config) -> AsyncIterator[GkApp]:
    """A prepared GkApp with its database and account services running."""
    from twisted.internet import reactor

    gk_app = GkApp.build(config, reactor)
    gk_app.prepare()
    gk_app.db.startService()
    gk_app.accounts.startService()
    try:
        yield gk_app
    finally:
        gk_app.accounts.stopService()
        gk_app.db.stopService()
        gk_app.db.dispose()
