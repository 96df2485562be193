"""
The pure parts of the CLI, in-process: sizes, times, TOML strings and the
generated config file.
"""

from __future__ import annotations

import argparse
import datetime
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gk.cli import UsageError, build_parser
from gk.cli_commands import format_size, format_time, parse_size
from gk.config import build_config, load_config
from gk.initconfig import InitSettings, render_config, toml_string, write_config_file


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1", 1),
        ("500M", 500 * 2**20),
        ("2G", 2 * 2**30),
        ("2gib", 2 * 2**30),
        ("64 KB", 2**16),
        ("7B", 7),
    ],
)
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-5", "1.5G", "5X", "G", "5iB"])
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


@given(st.integers(min_value=1, max_value=2**50))
def test_a_listed_size_reads_back_exactly(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_listed_values_for_nothing_and_times() -> None:
    assert format_size(None) == "-"
    assert format_time(None) == "-"
    moment = datetime.datetime(
        2030, 1, 2, 3, 4, 5, 678, tzinfo=datetime.timezone(-datetime.timedelta(hours=2))
    )
    assert format_time(moment) == "2030-01-02T05:04:05Z"


@given(st.text())
def test_any_text_survives_as_a_toml_string(text: str) -> None:
    assert tomllib.loads(f"v = {toml_string(text)}")["v"] == text


def test_the_generated_config_is_what_gk_reads(tmp_path: Path) -> None:
    settings = InitSettings.choose("example.org", "mx.example.org", dev=False, data_dir="data")

    config = build_config(tomllib.loads(render_config(settings)), tmp_path)

    assert config.server.hostname == "mx.example.org"
    assert config.server.data_dir == tmp_path / "data"
    assert config.http.public_url == "http://mx.example.org:8080/"
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'gk.sqlite3'}"
    assert config.tls_cert_path == tmp_path / "data" / "tls" / "cert.pem"


def test_an_existing_config_file_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "gk.toml"
    path.write_text("# mine\n")
    settings = InitSettings.choose("example.org", None, dev=True, data_dir=None)

    assert write_config_file(path, settings) is False
    assert path.read_text() == "# mine\n"
    assert write_config_file(tmp_path / "new" / "gk.toml", settings) is True
    assert load_config(tmp_path / "new" / "gk.toml", environ={}).server.hostname == "localhost"


def test_parser_errors_are_raised_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=r"^alias delete: .*required: alias"):
        build_parser().parse_args(["alias", "delete"])

    assert capsys.readouterr() == ("", "")
