"""
Helpers for running the real C{gk} executable in a subprocess, the way an
operator or a script does, and for looking at what it did to the database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gk import passwords
from gk.app import GkApp
from gk.config import load_config
from gk.storage import accounts as store
from gk.storage.database import Database
from tests.conftest import ConfigWriter


def gk_executable() -> str:
    """The C{gk} console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "gk"
    if beside.exists():
        return str(beside)
    found = shutil.which("gk")
    assert found, "the gk console script is not installed"
    return found


def clean_environment(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would steer gk (GK_CONFIG, overrides)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k == "GK_CONFIG" or (k.startswith("GK_") and "__" in k))
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class Result:
    """What one run of C{gk} did."""

    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def succeeded(self) -> list[str]:
        """Assert success without any stderr output; the stdout lines."""
        assert (self.status, self.stderr) == (0, ""), self
        return self.lines

    def failed(self, status: int = 1) -> str:
        """
        Assert the failure contract: C{status}, exactly one stderr line
        C{gk: error: ...}, no traceback; the message.
        """
        assert self.status == status, self
        assert "Traceback" not in self.stderr, self
        assert self.stderr.endswith("\n") and self.stderr.count("\n") == 1, self
        assert self.stderr.startswith("gk: error: "), self
        return self.stderr.removeprefix("gk: error: ").rstrip("\n")


class Gk:
    """
    The C{gk} command bound to one config file (or none: C{config=None}
    passes no C{--config}).  C{start} launches a run and returns a function
    that waits for it, so that independent runs can overlap.
    """

    def __init__(self, config: Path | None, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = clean_environment() if env is None else env

    def start(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> Callable[[], Result]:
        argv = (gk_executable(), *(["--config", str(self.config)] if self.config else []), *args)
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env if env is None else env,
        )

        def wait() -> Result:
            stdout, stderr = process.communicate(stdin, timeout=60)
            return Result(tuple(args), process.returncode, stdout, stderr)

        return wait

    def __call__(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
        return self.start(*args, stdin=stdin, env=env)()

    def ok(self, *args: str, stdin: str = "") -> list[str]:
        """Run, assert success, return the stdout lines."""
        return self(*args, stdin=stdin).succeeded()

    def fails(self, *args: str, status: int = 1, stdin: str = "") -> str:
        """Run, assert the one-line failure with C{status}, return the message."""
        return self(*args, stdin=stdin).failed(status)


def together(*runs: Callable[[], Result]) -> list[Result]:
    """Wait for runs started with L{Gk.start} (they ran side by side)."""
    return [wait() for wait in runs]


def add_user(config_file: Path, email: str, password: str = "a long password") -> None:
    """Make an account directly in the database (quicker than a C{gk user add})."""
    with open_database(config_file) as database, database.transaction() as session:
        store.add_user(session, email, passwords.hash_password(password))


@pytest.fixture
def config_file(write_config: ConfigWriter) -> Path:
    """A config for example.test with its data (and SQLite database) in tmp_path/data."""
    return write_config()


@pytest.fixture
def gk(config_file: Path) -> Gk:
    """
    C{gk} on an instance whose database is prepared as the server's start
    would (schema, config domains), so that runs may overlap from the start.
    """
    app = GkApp.build(load_config(config_file, environ={}))
    try:
        app.prepare(repair=False)
    finally:
        app.db.dispose()
    return Gk(config_file)


@contextmanager
def open_database(config_file: Path) -> Iterator[Database]:
    """The instance's database, opened in this process without a reactor."""
    database = Database(load_config(config_file, environ={}).database_url)
    try:
        yield database
    finally:
        database.dispose()
