"""
C{gk init}: a new instance from nothing, and nothing changed the second time.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from sqlalchemy import create_engine, select

from gk.config import load_config
from gk.storage import migrate
from gk.storage.models import Domain
from tests.cli.conftest import Gk, open_database
from tests.conftest import ConfigWriter

LOOPBACK = "interface=127.0.0.1"


def migrate_head() -> str:
    """The newest schema revision (alembic needs an engine only for its URL)."""
    return migrate.head_revision(create_engine("sqlite://"))


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in paths}


def test_dev_instance_from_nothing_then_unchanged_by_a_second_init(tmp_path: Path) -> None:
    config_file = tmp_path / "var" / "gk.toml"
    gk = Gk(config_file)

    out = gk.ok("init", "--dev", "--domain", "Example.TEST")

    folder = config_file.parent
    database_file = folder / "gk.sqlite3"
    assert out == [
        f"created config {config_file}",
        f"created data directory {folder}",
        f"created database sqlite:///{database_file} at schema {migrate_head()}",
        f"created self-signed TLS certificate {folder / 'tls' / 'cert.pem'} for localhost",
    ]
    config = load_config(config_file, environ={})
    assert config.server.data_dir == folder
    assert config.server.hostname == "localhost"
    assert config.server.domains == ["example.test"]
    assert config.listeners() == [
        ("smtp", f"tcp:2525:{LOOPBACK}", False),
        ("submission", f"tcp:2587:{LOOPBACK}", False),
        ("submission", f"tcp:2465:{LOOPBACK}", True),
        ("imap", f"tcp:2143:{LOOPBACK}", False),
        ("imap", f"tcp:2993:{LOOPBACK}", True),
        ("http", f"tcp:8080:{LOOPBACK}", False),
    ]
    assert config.http.public_url == "http://127.0.0.1:8080/"
    assert stat.S_IMODE(config.tls_key_path.stat().st_mode) == 0o600
    assert config.tls_cert_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    with open_database(config_file) as database:
        assert migrate.current_revision(database.engine) == migrate.head_revision(database.engine)
        with database.transaction() as session:
            assert list(session.scalars(select(Domain.name))) == ["example.test"]
    before = snapshot(config_file, config.tls_cert_path, config.tls_key_path, database_file)

    again = gk.ok("init", "--dev", "--domain", "other.test", "--hostname", "mail.other.test")

    assert again == [
        f"kept config {config_file}",
        f"kept data directory {folder}",
        f"kept database sqlite:///{database_file} at schema {migrate_head()} (the newest)",
        f"kept TLS certificate {config.tls_cert_path}",
    ]
    assert snapshot(*before) == before


def test_production_defaults_and_a_data_dir_that_needs_escaping(tmp_path: Path) -> None:
    config_file = tmp_path / "etc" / "gk.toml"
    data_dir = tmp_path / 'odd "data" \\ dïr'

    out = Gk(config_file).ok("init", "--domain", "example.org", "--data-dir", str(data_dir))

    config = load_config(config_file, environ={})
    assert config.server.data_dir == data_dir
    assert config.server.hostname == socket.getfqdn()
    assert [(role, desc, tls) for role, desc, tls in config.listeners()] == [
        ("smtp", "tcp:25", False),
        ("submission", "tcp:587", False),
        ("submission", "tcp:465", True),
        ("imap", "tcp:143", False),
        ("imap", "tcp:993", True),
        ("http", "tcp:8080", False),
    ]
    assert out[1] == f"created data directory {data_dir}"
    assert out[2].startswith(f"created database sqlite:///{data_dir}/gk.sqlite3 at schema ")
    assert (data_dir / "gk.sqlite3").is_file()
    assert (data_dir / "tls" / "cert.pem").is_file()
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_a_bad_hostname_writes_nothing(tmp_path: Path) -> None:
    config_file = tmp_path / "gk.toml"

    message = Gk(config_file).fails("init", "--domain", "example.org", "--hostname", "mail x.org")

    assert message == "[server] hostname must be a host name"
    assert list(tmp_path.iterdir()) == []


def test_an_operators_config_and_half_a_certificate_are_left_alone(
    write_config: ConfigWriter,
) -> None:
    config_file = write_config()
    text = config_file.read_bytes()
    cert = config_file.parent / "data" / "tls" / "cert.pem"
    cert.parent.mkdir(parents=True)
    cert.write_text("the operator's certificate\n")

    result = Gk(config_file)("init", "--dev", "--domain", "example.test")

    assert result.failed() == (
        f"TLS: {cert} exists but {cert.parent / 'key.pem'} does not; provide both or neither"
    )
    assert result.lines == [f"kept config {config_file}"]
    assert config_file.read_bytes() == text
    assert cert.read_text() == "the operator's certificate\n"
    assert not (config_file.parent / "data" / "gk.sqlite3").exists()


def test_migrate_creates_then_keeps_the_schema(config_file: Path) -> None:
    gk = Gk(config_file)
    database = f"sqlite:///{config_file.parent / 'data' / 'gk.sqlite3'}"

    assert gk.ok("migrate") == [f"created database {database} at schema {migrate_head()}"]
    assert gk.ok("migrate") == [f"kept database {database} at schema {migrate_head()} (the newest)"]
