"""
Helpers shared by tests that talk to gk over real sockets: a real
C{twistd -n gk} subprocess whose log lines can be awaited, and small HTTP
and TLS clients.

Nothing here sleeps: a test waits for the log line that says the thing it
needs has happened, with a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

T = TypeVar("T")

#: The twistd script of the running virtualenv.
TWISTD = Path(sys.executable).parent / "twistd"

#: Seconds to wait for a gk process to start or stop.
DEADLINE = 30.0

#: "http listening on 127.0.0.1:8080" or "... (TLS)", logged by ListenerService.
LISTENING = re.compile(
    r"(?P<role>\w+) listening on (?P<host>[^\s]+):(?P<port>\d+)(?P<tls> \(TLS\))?"
)

_EOF = object()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking client (smtplib, imaplib, sockets) off the reactor thread."""
    result: T = await deferToThread(fn, *args)
    return result


def client_tls() -> ssl.SSLContext:
    """A client TLS context that accepts the tests' self-signed certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    This process's environment without any gk variable (C{GK_CONFIG},
    C{GK_<SECTION>__<KEY>}), so that the developer's shell cannot change
    what a test starts; plus C{extra}.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GK_")}
    env.update(extra or {})
    return env


class LineReader:
    """
    Reads a pipe line by line in a thread; L{next_line} waits with a deadline.
    Every line read is also kept in L{lines}.
    """

    def __init__(self, stream: IO[str], name: str) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(
            target=self._read, args=(stream,), name=f"gk-{name}-reader", daemon=True
        )
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
        finally:
            self._queue.put(_EOF)

    def next_line(self, deadline: float) -> str | None:
        """
        The next line, or L{None} at end of file.

        @raise TimeoutError: no line came before C{deadline} (C{time.monotonic()}).
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            item = self._queue.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None
        if item is _EOF:
            self._queue.put(_EOF)  # stay at end of file for later calls
            return None
        assert isinstance(item, str)
        self.lines.append(item)
        return item

    def drain(self, timeout: float = DEADLINE) -> list[str]:
        """Every line up to end of file (after the process exited)."""
        deadline = time.monotonic() + timeout
        while self.next_line(deadline) is not None:
            pass
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return self.lines


@dataclass
class Listening:
    role: str
    host: str
    port: int
    tls: bool


@dataclass
class GkProcess:
    """A running C{twistd -n gk} and its output."""

    process: subprocess.Popen[str]
    stdout: LineReader
    stderr: LineReader
    log_format: str = "text"
    listening: list[Listening] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, match: Callable[[str], T | None], timeout: float = DEADLINE) -> T:
        """
        Read stdout until C{match(line)} returns something other than
        L{None}, and return that.

        @raise AssertionError: the process ended, or the deadline passed,
            first; the message carries everything it wrote.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.stdout.next_line(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"no matching log line within {timeout}s; output so far:\n" + self.output()
                ) from None
            if line is None:
                self.process.wait(timeout=DEADLINE)
                self.stderr.drain()
                raise AssertionError(
                    f"gk exited ({self.process.returncode}) before the expected log line:\n"
                    + self.output()
                )
            found = match(line)
            if found is not None:
                return found

    def wait_for_text(self, text: str, timeout: float = DEADLINE) -> str:
        """Wait for a log line containing C{text} (either log format)."""
        return self.wait_for(lambda line: line if text in self.message(line) else None, timeout)

    def message(self, line: str) -> str:
        """The human-readable text of one log line, whatever the format."""
        if self.log_format != "json":
            return line
        try:
            event = json.loads(line)
        except ValueError:
            return line
        return format_json_event(event)

    def wait_for_listening(self, role: str, tls: bool = False) -> Listening:
        """Wait for "ROLE listening on HOST:PORT" and return where."""

        def match(line: str) -> Listening | None:
            found = LISTENING.search(self.message(line))
            if found is None:
                return None
            seen = Listening(
                found["role"], found["host"], int(found["port"]), found["tls"] is not None
            )
            self.listening.append(seen)
            return seen if (seen.role, seen.tls) == (role, tls) else None

        for seen in self.listening:
            if (seen.role, seen.tls) == (role, tls):
                return seen
        return self.wait_for(match)

    def wait_for_serving(self) -> Listening:
        """
        Wait until gk answers C{/health} on its (first plain) HTTP listener:
        the reactor runs, so signal handlers are in place.
        """
        http = self.wait_for_listening("http")
        answer = http_get_blocking(f"http://{http.host}:{http.port}/health", timeout=DEADLINE)
        assert answer.status == 200, f"/health answered {answer.status}:\n{self.output()}"
        return http

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        """Send C{signum}, wait for the exit, read the rest of the output."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            returncode = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self.stdout.drain()
        self.stderr.drain()
        return returncode

    def stop_cleanly(self, timeout: float = 10) -> None:
        """
        SIGTERM, then check the shutdown was graceful: twistd logged
        "Server Shut Down.", nothing logged a traceback, and the process
        ended by re-raising SIGTERM.  (twistd, since Twisted 21, exits
        through the signal that stopped it so that its parent knows why;
        systemd counts an exit by SIGTERM as a clean stop.)
        """
        returncode = self.stop(signal.SIGTERM, timeout)
        output = self.output()
        assert returncode == -signal.SIGTERM, f"exit status {returncode}:\n{output}"
        assert "Traceback" not in output, output
        assert any("Server Shut Down." in self.message(line) for line in self.stdout.lines), output

    def output(self) -> str:
        return "\n".join(
            ["--- stdout ---", *self.stdout.lines, "--- stderr ---", *self.stderr.lines]
        )


def add_user_with_cli(config: Path, email: str, password: str) -> None:
    """C{gk user add EMAIL --password-stdin}, as an operator does before the first start."""
    result = subprocess.run(
        [
            str(TWISTD.parent / "gk"),
            "--config",
            str(config),
            "user",
            "add",
            email,
            "--password-stdin",
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=clean_environ(),
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stderr


def start_serving(config: Path, role: str) -> tuple[GkProcess, int]:
    """twistd on C{config}; the port of C{role}'s listener once it serves (signals handled)."""
    gk = spawn_gk(config, config.parent)
    try:
        listening = gk.wait_for_listening(role)
        gk.wait_for_serving()
    except BaseException:
        gk.stop(signal.SIGKILL)
        raise
    return gk, listening.port


def format_json_event(event: dict[str, Any]) -> str:
    """The text of a JSON log event, formatted the way the text observer would."""
    from twisted.logger import formatEvent

    return formatEvent(event)


def twistd_command(config: Path | None) -> list[str]:
    """The documented command: C{twistd -n gk --config FILE}."""
    return [str(TWISTD), "-n", "gk", *(["--config", str(config)] if config else [])]


def spawn_gk(
    config: Path | None, cwd: Path, env: Mapping[str, str] | None = None, log_format: str = "text"
) -> GkProcess:
    """Start C{twistd -n gk --config CONFIG} in C{cwd} (twistd writes its pid file there)."""
    process = subprocess.Popen(
        twistd_command(config),
        cwd=cwd,
        env=clean_environ(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert process.stdout is not None and process.stderr is not None
    return GkProcess(
        process,
        LineReader(process.stdout, "stdout"),
        LineReader(process.stderr, "stderr"),
        log_format=log_format,
    )


@contextmanager
def running_gk(
    config: Path | None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log_format: str = "text",
) -> Iterator[GkProcess]:
    """
    A gk process that serves HTTP; killed on the way out if the test did
    not stop it.

    The "listening" line comes before the reactor runs (ports are bound
    first); twistd installs its SIGTERM/SIGHUP handlers only when the
    reactor starts, so a signal sent before then would kill the process
    outright.  An answer from C{/health} proves the reactor is running.
    """
    directory = cwd or (config.parent if config is not None else None)
    assert directory is not None, "say where to run gk"
    gk = spawn_gk(config, directory, env, log_format)
    try:
        gk.wait_for_serving()
        yield gk
    finally:
        if gk.process.poll() is None:
            gk.process.kill()
            gk.process.wait()


@dataclass
class Finished:
    """A process that ran to its end."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_gk_to_end(
    config: Path | None, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> Finished:
    """Run twistd for a config expected to stop it at start-up."""
    result = subprocess.run(
        twistd_command(config),
        cwd=cwd,
        env=clean_environ(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(result.returncode, result.stdout, result.stderr)


def write_server_config(
    directory: Path,
    *,
    http_listen: tuple[str, ...] = ("tcp:0:interface=127.0.0.1",),
    http_tls_listen: tuple[str, ...] = (),
    database_url: str | None = None,
    extra: str = "",
    name: str = "gk.toml",
) -> Path:
    """
    Write a whole config file in C{directory}: every listener off except
    HTTP (an ephemeral loopback port by default), data in C{directory/data},
    SQLite unless C{database_url}; C{extra} is appended TOML (sections other
    than those written here).
    """

    def toml_list(items: tuple[str, ...]) -> str:
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    database = f"[database]\nurl = {json.dumps(database_url)}\n\n" if database_url else ""
    path = directory / name
    path.write_text(
        "[server]\n"
        'hostname = "mail.example.test"\n'
        'domains = ["example.test"]\n'
        'data_dir = "data"\n\n'
        f"{database}"
        "[smtp]\nlisten = []\n\n"
        "[submission]\nlisten = []\ntls_listen = []\n\n"
        "[imap]\nlisten = []\ntls_listen = []\n\n"
        f"[http]\nlisten = {toml_list(http_listen)}\n"
        f"tls_listen = {toml_list(http_tls_listen)}\n\n" + extra,
        encoding="utf-8",
    )
    return path


# --- HTTP ------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def http_get_blocking(url: str, timeout: float = 10) -> Response:
    """GET with urllib, from a thread or a test that does not run the reactor."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return Response(
                answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
            )
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


class _BodyCollector(Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def read_body(response: IResponse) -> Deferred[bytes]:
    """The whole body of an Agent response (C{readBody} without its deprecation warning)."""
    done: Deferred[bytes] = Deferred()
    response.deliverBody(_BodyCollector(done))
    return done


async def http_get(url: str) -> Response:
    """GET through Twisted's Agent, for tests running on the reactor."""
    from twisted.internet import reactor

    agent = Agent(reactor)
    d: Deferred[Any] = agent.request(b"GET", url.encode("ascii"), Headers({}))
    answer = await d
    body = await read_body(answer)
    headers = {
        name.decode("latin-1").lower(): values[-1].decode("latin-1")
        for name, values in answer.headers.getAllRawHeaders()
    }
    return Response(answer.code, headers, body)


# --- sockets and TLS --------------------------------------------------------


def port_is_closed(host: str, port: int) -> bool:
    """Whether a TCP connection to C{host:port} is refused."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def insecure_client_context(
    minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """
    A client context that accepts any certificate (gk's is self-signed) and
    is able to offer every protocol version this OpenSSL knows, so that a
    refusal comes from the server rather than from the client's own policy.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if minimum is not None and minimum < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 allows TLS 1.0/1.1 only at security level 0.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


@dataclass
class TLSSession:
    version: str
    certificate: bytes


def tls_handshake(host: str, port: int, context: ssl.SSLContext) -> TLSSession:
    """Connect, complete a handshake, and report the version and server certificate (DER)."""
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
        version = tls.version()
        assert certificate is not None and version is not None
        return TLSSession(version, certificate)
