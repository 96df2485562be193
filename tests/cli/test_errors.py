"""
The CLI's promise about failures: one line on stderr, a non-zero status
(2 for usage errors, 1 otherwise), never a traceback; C{--help} still helps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Gk, clean_environment, together
from tests.conftest import ConfigWriter

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: COMMAND (see: gk --help)"),
        (("frobnicate",), "argument COMMAND: invalid choice: 'frobnicate'"),
        (("user",), "user: the following arguments are required: ACTION"),
        (("user", "add"), "user add: the following arguments are required: email"),
        (("user", "list", "--bogus"), "unrecognized arguments: --bogus"),
        (("init",), "init: the following arguments are required: --domain"),
    ],
)
def test_usage_errors(config_file: Path, args: tuple[str, ...], message: str) -> None:
    assert message in Gk(config_file).fails(*args, status=2)


def test_no_config_file_named_is_a_usage_error() -> None:
    message = Gk(None).fails("user", "list", status=2)

    assert message == "no config file: pass --config FILE or set GK_CONFIG"


def test_help_still_works() -> None:
    top, sub = together(Gk(None).start("--help"), Gk(None).start("user", "add", "--help"))

    assert top.succeeded()[0].startswith("usage: gk [-h] [--config FILE] COMMAND")
    assert any("app-password" in line for line in top.lines)
    assert "--password-stdin" in sub.stdout
    assert sub.status == 0


def test_config_and_database_problems(tmp_path: Path, write_config: ConfigWriter) -> None:
    not_toml = tmp_path / "not-toml.toml"
    not_toml.write_text("[server\n")
    unreachable = write_config(database_url=UNREACHABLE, name="unreachable.toml")
    missing = tmp_path / "missing.toml"

    runs = {
        "missing": Gk(missing).start("user", "list"),
        "not toml": Gk(not_toml).start("domain", "list"),
        "unreachable": Gk(unreachable).start("user", "list"),
    }
    messages = {name: wait().failed(1) for name, wait in runs.items()}

    assert messages["missing"] == f"config file {missing} does not exist"
    assert messages["not toml"].startswith(f"config file {not_toml} is not valid TOML: ")
    assert messages["unreachable"].startswith(f"database {UNREACHABLE} is unreachable: ")


def test_gk_config_stands_for_the_option(config_file: Path) -> None:
    gk = Gk(None, env=clean_environment(GK_CONFIG=str(config_file)))

    assert gk.ok("domain", "list") == ["example.test"]
