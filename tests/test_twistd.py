"""
The real server process: C{twistd -n gk --config FILE}, started as an
operator would, observed through its log lines, its sockets and its exit
status.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from OpenSSL import SSL

from gk.tls import ServerTLS, write_self_signed
from tests.helpers import (
    Finished,
    GkProcess,
    http_get_blocking,
    insecure_client_context,
    port_is_closed,
    run_gk_to_end,
    running_gk,
    tls_handshake,
    write_server_config,
)

LOOPBACK_EPHEMERAL = "tcp:0:interface=127.0.0.1"


def base_url(gk: GkProcess) -> str:
    """Where gk's (first plain) HTTP listener is, as its log said."""
    http = gk.wait_for_listening("http")
    return f"http://{http.host}:{http.port}"


# --- a healthy server -------------------------------------------------------


def test_operator_starts_gk_checks_it_and_stops_it(tmp_path: Path) -> None:
    config = write_server_config(tmp_path)
    with running_gk(config) as gk:
        http = gk.wait_for_listening("http")
        url = f"http://127.0.0.1:{http.port}"

        health = http_get_blocking(f"{url}/health")
        assert health.status == 200
        assert health.json() == {"status": "ok"}

        ready = http_get_blocking(f"{url}/ready")
        assert ready.status == 200, ready.text
        assert ready.headers["content-type"] == "application/json"
        body = ready.json()
        assert body["ready"] is True
        assert body["database"] == {"ok": True, "dialect": "sqlite"}
        assert body["listeners"] == [
            {
                "role": "http",
                "endpoint": LOOPBACK_EPHEMERAL,
                "tls": False,
                "bound": True,
                "address": f"127.0.0.1:{http.port}",
            }
        ]

        metrics = http_get_blocking(f"{url}/metrics")
        assert metrics.status == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'gk_build_info{version="' in metrics.text
        assert 'gk_listeners{role="http"} 1.0' in metrics.text

        gk.stop_cleanly(timeout=10)

    assert port_is_closed("127.0.0.1", http.port)


def test_json_log_format_writes_one_json_object_a_line(tmp_path: Path) -> None:
    config = write_server_config(tmp_path, extra='[log]\nformat = "json"\n')
    with running_gk(config, log_format="json") as gk:
        url = base_url(gk)
        assert http_get_blocking(f"{url}/health").status == 200
        gk.stop_cleanly()

    assert len(gk.stdout.lines) >= 3, gk.output()
    events = [json.loads(line) for line in gk.stdout.lines]
    namespaces = {event.get("log_namespace") for event in events}
    assert "gk.listeners.ListenerService" in namespaces
    listening = next(e for e in events if e.get("log_namespace") == "gk.listeners.ListenerService")
    assert listening["role"] == "http"
    assert listening["address"].startswith("127.0.0.1:")


def test_database_is_created_at_the_newest_schema_on_first_start(tmp_path: Path) -> None:
    config = write_server_config(tmp_path)
    with running_gk(config) as gk:
        gk.stop_cleanly()
    assert (tmp_path / "data" / "gk.sqlite3").is_file()
    assert (tmp_path / "data" / "mail").is_dir()
    assert any("database schema upgraded" in line for line in gk.stdout.lines), gk.output()

    # A second start finds the schema current and says nothing about it.
    with running_gk(config) as again:
        again.stop_cleanly()
    assert not any("database schema upgraded" in line for line in again.stdout.lines)


# --- TLS ----------------------------------------------------------------------


@pytest.fixture
def tls_gk(tmp_path: Path) -> Iterator[GkProcess]:
    """gk with HTTP over implicit TLS on an ephemeral port and a self-signed certificate."""
    write_self_signed(tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem", "localhost")
    config = write_server_config(
        tmp_path,
        http_tls_listen=(LOOPBACK_EPHEMERAL,),
        extra='[tls]\ncert = "tls/cert.pem"\nkey = "tls/key.pem"\n',
    )
    with running_gk(config) as gk:
        gk.wait_for_listening("http", tls=True)
        yield gk
        gk.stop_cleanly()


def test_sighup_reloads_the_tls_certificate(tmp_path: Path, tls_gk: GkProcess) -> None:
    tls = tls_gk.wait_for_listening("http", tls=True)
    before = tls_handshake(tls.host, tls.port, insecure_client_context()).certificate

    write_self_signed(tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem", "localhost")
    # Until the signal, the running server keeps the certificate it loaded.
    assert tls_handshake(tls.host, tls.port, insecure_client_context()).certificate == before

    tls_gk.send_signal(signal.SIGHUP)
    tls_gk.wait_for_text("TLS certificate reloaded")

    after = tls_handshake(tls.host, tls.port, insecure_client_context()).certificate
    assert after != before
    assert after == ssl.PEM_cert_to_DER_cert((tmp_path / "tls" / "cert.pem").read_text())
    # The server is still up and serving plain HTTP after the reload.
    assert http_get_blocking(f"{base_url(tls_gk)}/health").status == 200


def test_sighup_with_a_broken_certificate_keeps_the_previous_one(
    tmp_path: Path, tls_gk: GkProcess
) -> None:
    tls = tls_gk.wait_for_listening("http", tls=True)
    before = tls_handshake(tls.host, tls.port, insecure_client_context()).certificate

    (tmp_path / "tls" / "cert.pem").write_text("not a certificate\n")
    tls_gk.send_signal(signal.SIGHUP)
    tls_gk.wait_for_text("TLS reload failed, keeping the previous certificate")

    assert tls_handshake(tls.host, tls.port, insecure_client_context()).certificate == before


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    ids=["TLSv1.2", "TLSv1.3"],
)
def test_tls_1_2_and_1_3_are_accepted(
    tls_gk: GkProcess, version: ssl.TLSVersion, name: str
) -> None:
    tls = tls_gk.wait_for_listening("http", tls=True)
    session = tls_handshake(tls.host, tls.port, insecure_client_context(version, version))
    assert session.version == name


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused_by_the_server(tmp_path: Path, tls_gk: GkProcess) -> None:
    tls = tls_gk.wait_for_listening("http", tls=True)
    old = insecure_client_context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)

    # Control: the same client completes a TLS 1.1 handshake with a server
    # that allows it, so a failure below is gk's refusal, not the client's.
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_context.minimum_version = ssl.TLSVersion.TLSv1
    server_context.load_cert_chain(tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        server_errors: list[OSError] = []

        def serve_one() -> None:
            try:
                connection, _ = listener.accept()
                with connection, server_context.wrap_socket(connection, server_side=True) as c:
                    c.recv(1)
            except OSError as e:  # reported with the client's failure below
                server_errors.append(e)

        control = threading.Thread(target=serve_one, daemon=True)
        control.start()
        try:
            version = tls_handshake("127.0.0.1", listener.getsockname()[1], old).version
        except ssl.SSLError as e:
            pytest.fail(
                "the control failed: this machine's OpenSSL cannot speak TLS 1.1: "
                f"{e} (server side: {server_errors})"
            )
        finally:
            control.join(timeout=10)
        assert version == "TLSv1.1"

    with pytest.raises(ssl.SSLError) as refused:
        tls_handshake(tls.host, tls.port, old)
    # The server answered with a protocol_version alert.
    assert "PROTOCOL_VERSION" in str(refused.value).upper(), refused.value


def test_gk_itself_disables_tls_before_1_2(tmp_path: Path) -> None:
    """
    A recent OpenSSL refuses TLS 1.1 at its default security level anyway;
    gk must not rely on that: its server context turns the old versions off.
    """
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "localhost")
    # set_options returns the options in force.
    context = ServerTLS(cert, key).getContext()
    options: int = context.set_options(0)
    for old in (SSL.OP_NO_SSLv3, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1):
        assert options & old
    assert not options & (SSL.OP_NO_TLSv1_2 | SSL.OP_NO_TLSv1_3)


# --- start-up failures ---------------------------------------------------------


def one_line_error(result: Finished) -> str:
    """The refusal: a non-zero exit and one "gk: error:" line on stderr, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert len(result.stderr_lines) == 1, result.stderr
    assert result.stderr_lines[0].startswith("gk: error: "), result.stderr
    return result.stderr_lines[0]


def test_without_a_config_file_gk_says_how_to_give_one(tmp_path: Path) -> None:
    line = one_line_error(run_gk_to_end(None, cwd=tmp_path))
    assert "--config" in line and "GK_CONFIG" in line


def test_gk_config_environment_variable_stands_for_the_option(tmp_path: Path) -> None:
    config = write_server_config(tmp_path)
    with running_gk(None, cwd=tmp_path, env={"GK_CONFIG": str(config)}) as gk:
        assert http_get_blocking(f"{base_url(gk)}/health").status == 200
        gk.stop_cleanly()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing file", "does not exist"),
        ("unknown key", "unknown key 'bogus' in [delivery]"),
        ("bad endpoint", "[http] listen: bad endpoint 'tcp:notaport'"),
        ("unreachable database", "is unreachable"),
    ],
)
def test_a_bad_config_stops_gk_with_one_line(tmp_path: Path, case: str, expected: str) -> None:
    if case == "missing file":
        config = tmp_path / "nowhere.toml"
    elif case == "unknown key":
        config = write_server_config(tmp_path, extra='[delivery]\nbogus = "x"\n')
    elif case == "bad endpoint":
        config = write_server_config(tmp_path, http_listen=("tcp:notaport",))
    else:
        config = write_server_config(
            tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/x"
        )

    line = one_line_error(run_gk_to_end(config, cwd=tmp_path))
    assert expected in line


def test_a_port_in_use_stops_gk_with_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = write_server_config(tmp_path, http_listen=(f"tcp:{port}:interface=127.0.0.1",))

        line = one_line_error(run_gk_to_end(config, cwd=tmp_path))

    assert f"cannot listen on 'tcp:{port}:interface=127.0.0.1'" in line
    assert "in use" in line
