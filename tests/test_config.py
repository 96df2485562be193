"""
The config file: what an operator writes, what gk reads from it, and the
one-line message that says exactly what is wrong when gk cannot use it.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
import typing
from pathlib import Path

import pytest

from gk.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "gk.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ={} if environ is None else environ)


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """Load a config that must be refused; return the message, checked to be one line."""
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, text, environ)
    message = str(refused.value)
    assert message, "an empty error message"
    assert "\n" not in message, f"not one line: {message!r}"
    return message


# --- the files we ship ---------------------------------------------------------


def test_the_example_config_is_valid() -> None:
    config = load_config(REPO / "config.example.toml", environ={})

    assert config.server.hostname == "mail.example.test"
    assert config.server.domains == ["example.test"]
    assert config.smtp.listen == ["tcp:25"]
    assert config.http.public_url == "http://localhost:8080/"
    assert config.tls_cert_path == Path("/var/lib/gk/tls/cert.pem")


def test_the_example_config_writes_out_every_key() -> None:
    text = (REPO / "config.example.toml").read_text()
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        if section.name == "path":
            continue
        assert f"\n[{section.name}]" in text
        body = text.split(f"\n[{section.name}]", 1)[1].split("\n[", 1)[0]
        for key in dataclasses.fields(hints[section.name]):
            assert f"\n{key.name} = " in body, f"[{section.name}] {key.name} is missing"


# --- defaults --------------------------------------------------------------------


def test_an_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "")

    assert config.path == tmp_path / "gk.toml"
    assert config.server.hostname == "localhost"
    assert config.server.domains == []
    assert config.server.data_dir == Path("/var/lib/gk")
    assert config.database_url == "sqlite:////var/lib/gk/gk.sqlite3"
    assert config.tls_cert_path == Path("/var/lib/gk/tls/cert.pem")
    assert config.tls_key_path == Path("/var/lib/gk/tls/key.pem")
    assert config.mail_dir == Path("/var/lib/gk/mail")
    assert config.smtp.listen == ["tcp:25"]
    assert config.smtp.max_message_size == 26214400
    assert config.smtp.max_recipients == 100
    assert config.submission.listen == ["tcp:587"]
    assert config.submission.tls_listen == ["tcp:465"]
    assert config.imap.listen == ["tcp:143"]
    assert config.imap.tls_listen == ["tcp:993"]
    assert config.http.listen == ["tcp:8080"]
    assert config.http.tls_listen == []
    assert config.http.public_url == "http://localhost:8080/"
    assert config.dns.nameservers == []
    assert config.dns.timeout == 5.0
    assert config.delivery.smarthost == ""
    assert config.assistant.ollama_url == "http://127.0.0.1:11434"
    assert config.assistant.model == "qwen3:8b"
    assert config.log.format == "text"


def test_listeners_lists_every_endpoint_with_its_role_and_tls(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [smtp]
        listen = ["tcp:2525"]
        [submission]
        listen = []
        tls_listen = ["tcp:2465"]
        [imap]
        listen = ["tcp:2143"]
        tls_listen = []
        [http]
        listen = ["tcp:8080:interface=127.0.0.1"]
        """,
    )
    assert config.listeners() == [
        ("smtp", "tcp:2525", False),
        ("submission", "tcp:2465", True),
        ("imap", "tcp:2143", False),
        ("http", "tcp:8080:interface=127.0.0.1", False),
    ]


def test_an_empty_list_disables_a_listener(tmp_path: Path) -> None:
    config = load(tmp_path, "[smtp]\nlisten = []\n")
    assert ("smtp", "tcp:25", False) not in config.listeners()


def test_an_integer_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    assert load(tmp_path, "[dns]\ntimeout = 3\n").dns.timeout == 3.0


# --- relative paths ----------------------------------------------------------------


def test_relative_paths_are_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(
        folder,
        """
        [server]
        data_dir = "data"
        [database]
        url = "sqlite:///db/gk.sqlite3"
        [tls]
        cert = "tls/cert.pem"
        key = "../secret/key.pem"
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config("../etc/gk.toml", environ={})

    assert config.path is not None and config.path.is_absolute()
    assert config.path.resolve() == path
    database = Path(config.database_url.removeprefix("sqlite:///"))
    assert database.is_absolute()
    resolved = {
        "data_dir": config.server.data_dir.resolve(),
        "mail_dir": config.mail_dir.resolve(),
        "database": database.resolve(),
        "cert": config.tls_cert_path.resolve(),
        "key": config.tls_key_path.resolve(),
    }
    assert resolved == {
        "data_dir": folder / "data",
        "mail_dir": folder / "data" / "mail",
        "database": folder / "db" / "gk.sqlite3",
        "cert": folder / "tls" / "cert.pem",
        "key": tmp_path / "secret" / "key.pem",
    }


def test_the_default_database_lives_in_the_data_dir(tmp_path: Path) -> None:
    config = load(tmp_path, '[server]\ndata_dir = "."\n')
    assert config.server.data_dir == tmp_path / "."
    assert Path(config.database_url.removeprefix("sqlite:///")).resolve() == (
        tmp_path / "gk.sqlite3"
    )


def test_absolute_paths_and_other_databases_are_kept_as_written(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [server]
        data_dir = "/srv/gk"
        [database]
        url = "postgresql+psycopg://gk@db.example.test/gk"
        """,
    )
    assert config.server.data_dir == Path("/srv/gk")
    assert config.database_url == "postgresql+psycopg://gk@db.example.test/gk"


def test_an_in_memory_sqlite_database_is_not_made_a_path(tmp_path: Path) -> None:
    assert load(tmp_path, '[database]\nurl = "sqlite://"\n').database_url == "sqlite://"


# --- environment overrides -------------------------------------------------------------


def test_an_environment_variable_overrides_one_value(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "[smtp]\nmax_message_size = 1048576\nmax_recipients = 50\n",
        environ={"GK_SMTP__MAX_MESSAGE_SIZE": "2097152"},
    )
    assert config.smtp.max_message_size == 2097152
    assert config.smtp.max_recipients == 50  # the rest of the section is untouched


def test_a_listener_list_is_overridden_by_a_toml_array(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[http]\nlisten = ["tcp:8080"]\n',
        environ={"GK_HTTP__LISTEN": '["tcp:9090:interface=127.0.0.1", "tcp:9091"]'},
    )
    assert config.http.listen == ["tcp:9090:interface=127.0.0.1", "tcp:9091"]


def test_a_listener_list_is_overridden_by_a_comma_list(tmp_path: Path) -> None:
    config = load(
        tmp_path, "", environ={"GK_HTTP__LISTEN": "tcp:9090:interface=127.0.0.1, tcp:9091"}
    )
    assert config.http.listen == ["tcp:9090:interface=127.0.0.1", "tcp:9091"]


def test_an_empty_override_disables_a_listener(tmp_path: Path) -> None:
    assert load(tmp_path, "", environ={"GK_SMTP__LISTEN": ""}).smtp.listen == []


def test_an_override_may_add_a_section_the_file_lacks(tmp_path: Path) -> None:
    config = load(tmp_path, "", environ={"GK_ASSISTANT__MODEL": "mistral:7b"})
    assert config.assistant.model == "mistral:7b"


def test_a_relative_data_dir_override_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path.parent)
    config = load(tmp_path, "", environ={"GK_SERVER__DATA_DIR": "state"})
    assert config.server.data_dir == tmp_path / "state"
    assert config.database_url == f"sqlite:///{tmp_path / 'state' / 'gk.sqlite3'}"


def test_overrides_come_from_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("GK_")]:
        monkeypatch.delenv(name)  # whatever the developer's shell sets
    monkeypatch.setenv("GK_SMTP__MAX_RECIPIENTS", "7")
    assert load_config(write(tmp_path, "")).smtp.max_recipients == 7


def test_variables_without_a_double_underscore_are_not_overrides(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "",
        environ={
            "GK_CONFIG": "/etc/gk/gk.toml",
            "GK_TEST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/test",
            "GKSMTP__LISTEN": "tcp:1",
            "HOME": "/root",
        },
    )
    assert config == load(tmp_path, "")


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("GK_BOGUS__X", "environment variable GK_BOGUS__X: no section [bogus]"),
        ("GK_SMTP__NOPE", "environment variable GK_SMTP__NOPE: no key 'nope' in [smtp]"),
    ],
)
def test_an_override_naming_nothing_is_an_error(
    tmp_path: Path, variable: str, expected: str
) -> None:
    assert config_error(tmp_path, "", environ={variable: "1"}) == expected


def test_an_override_of_the_wrong_type_is_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path, "", environ={"GK_SMTP__MAX_MESSAGE_SIZE": "big"})
    assert message == "[smtp] max_message_size must be an integer"


def test_an_override_is_validated_like_the_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, "", environ={"GK_HTTP__LISTEN": "bogus:1"})
    assert message.startswith("[http] listen: bad endpoint 'bogus:1'")


# --- one clear line for every mistake ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[smpt]\nlisten = []\n", "unknown section [smpt]", id="unknown section"),
        pytest.param(
            "[smtp]\nmax_size = 10\n", "unknown key 'max_size' in [smtp]", id="unknown key"
        ),
        pytest.param("smtp = 1\n", "[smtp] must be a table", id="section not a table"),
        pytest.param(
            '[smtp]\nmax_message_size = "25M"\n',
            "[smtp] max_message_size must be an integer",
            id="string for an integer",
        ),
        pytest.param(
            "[smtp]\nmax_recipients = true\n",
            "[smtp] max_recipients must be an integer",
            id="boolean for an integer",
        ),
        pytest.param(
            '[smtp]\nlisten = "tcp:25"\n',
            "[smtp] listen must be a list of strings",
            id="string for a list",
        ),
        pytest.param(
            "[imap]\nlisten = [143]\n",
            "[imap] listen must be a list of strings",
            id="list of integers",
        ),
        pytest.param(
            '[dns]\ntimeout = "soon"\n', "[dns] timeout must be a number", id="string for a number"
        ),
        pytest.param(
            "[server]\ndata_dir = 1\n", "[server] data_dir must be a path", id="integer for a path"
        ),
        pytest.param(
            "[server]\nhostname = 7\n", "[server] hostname must be a string", id="int for a string"
        ),
        pytest.param(
            '[server]\nhostname = "mail example"\n',
            "[server] hostname must be a host name",
            id="bad hostname",
        ),
        pytest.param(
            '[server]\nhostname = ""\n', "[server] hostname must be a host name", id="no hostname"
        ),
        pytest.param(
            '[server]\ndomains = ["example..test"]\n',
            "[server] domains: 'example..test' is not a domain name",
            id="empty label",
        ),
        pytest.param(
            '[server]\ndomains = ["-bad.example"]\n',
            "[server] domains: '-bad.example' is not a domain name",
            id="leading hyphen",
        ),
        pytest.param(
            '[server]\ndomains = ["ex ample.test"]\n',
            "[server] domains: 'ex ample.test' is not a domain name",
            id="space in domain",
        ),
        pytest.param(
            '[http]\npublic_url = "localhost:8080"\n',
            "[http] public_url must be an http:// or https:// URL",
            id="URL without scheme",
        ),
        pytest.param(
            '[assistant]\nollama_url = "ftp://127.0.0.1"\n',
            "[assistant] ollama_url must be an http:// or https:// URL",
            id="URL with a wrong scheme",
        ),
        pytest.param(
            '[database]\nurl = "not a url"\n',
            "[database] url is not a database URL: 'not a url'",
            id="bad database URL",
        ),
        pytest.param(
            '[tls]\ncert = "cert.pem"\n',
            "[tls] cert and key go together: set both or neither",
            id="cert without key",
        ),
        pytest.param(
            '[tls]\nkey = "key.pem"\n',
            "[tls] cert and key go together: set both or neither",
            id="key without cert",
        ),
        pytest.param(
            "[smtp]\nmax_message_size = 10\n",
            "[smtp] max_message_size must be at least 1024 bytes",
            id="tiny message size",
        ),
        pytest.param(
            "[smtp]\nmax_recipients = 0\n",
            "[smtp] max_recipients must be at least 1",
            id="no recipients",
        ),
        pytest.param("[dns]\ntimeout = 0\n", "[dns] timeout must be positive", id="zero timeout"),
        pytest.param(
            '[dns]\nnameservers = ["127.0.0.1:dns"]\n',
            "[dns] nameservers: '127.0.0.1:dns' is not host or host:port",
            id="bad nameserver",
        ),
        pytest.param(
            '[delivery]\nsmarthost = "relay.example.test"\n',
            "[delivery] smarthost must be host:port",
            id="smarthost without port",
        ),
        pytest.param(
            '[log]\nformat = "xml"\n', '[log] format must be "text" or "json"', id="log format"
        ),
    ],
)
def test_a_mistake_is_reported_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("section", "key", "endpoint", "reason"),
    [
        ("smtp", "listen", "tcp:notaport", "invalid literal"),
        ("http", "listen", "bogus:1", "Unknown endpoint type: 'bogus'"),
        ("imap", "tls_listen", "tcp:993:backlog=many", "invalid literal"),
        ("submission", "listen", "", ""),
    ],
)
def test_a_bad_endpoint_names_the_listener_and_the_string(
    tmp_path: Path, section: str, key: str, endpoint: str, reason: str
) -> None:
    message = config_error(tmp_path, f'[{section}]\n{key} = ["{endpoint}"]\n')
    assert message.startswith(f"[{section}] {key}: bad endpoint {endpoint!r}: ")
    assert reason in message


def test_several_endpoints_in_one_list_are_all_checked(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[http]\nlisten = ["tcp:8080", "tcp:x"]\n')
    assert message.startswith("[http] listen: bad endpoint 'tcp:x'")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "gk.toml"
    with pytest.raises(ConfigError) as refused:
        load_config(missing, environ={})
    assert str(refused.value) == f"config file {missing} does not exist"


def test_a_directory_instead_of_a_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, environ={})
    message = str(refused.value)
    assert message.startswith(f"config file {tmp_path} cannot be read: ")
    assert "\n" not in message


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "gk.toml"
    path.write_bytes(b'[server]\nhostname = "\xff"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert str(refused.value).startswith(f"config file {path} cannot be read: ")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "text",
    [
        "[server\nhostname = 'x'\n",
        "[server]\nhostname = mail.example.test\n",
        "[server]\nhostname = 'a'\nhostname = 'b'\n",
        "[http]\nlisten = []\n[http]\nlisten = []\n",
    ],
    ids=["unclosed table", "unquoted string", "duplicate key", "duplicate table"],
)
def test_invalid_toml_is_one_line_with_the_position(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text)
    assert message.startswith(f"config file {tmp_path / 'gk.toml'} is not valid TOML: ")
    assert "line" in message
