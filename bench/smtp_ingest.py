#!/usr/bin/env python3
"""
SMTP ingest benchmark: deliver many messages to gk's MX listener over
parallel connections and measure messages per second, accepted (every 250
received) and end to end (every message found in the recipient's index and
Maildir).

By default it makes a throw-away instance: a config in a temporary
directory (only the MX listener, on an ephemeral loopback port; loopback
exempt from the per-IP rate limits; SPF/DMARC lookups answered by a
loopback DNS responder run by this script, as a local caching resolver
would), C{gk init}, one user, then C{twistd -n gk --config FILE}.  When
done it stops the server with SIGTERM and removes the directory.

    .venv/bin/python bench/smtp_ingest.py
    .venv/bin/python bench/smtp_ingest.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/smtp_ingest.py --server 127.0.0.1:2525 \\
        --recipient admin@example.test --config var/gk.toml

The client is asyncio with PIPELINING (MAIL, RCPT and DATA in one write),
one task per connection; the messages are built before the clock starts.
It prints its own CPU time next to the server's so that one can see it is
not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from gk.config import load_config
from gk.storage import maildir
from gk.storage.models import MailFolder, Message, User

BIN = Path(sys.executable).parent
DOMAIN = "bench.test"
SENDER_DOMAIN = "sender.bench.test"
SENDER = f"mailer@{SENDER_DOMAIN}"
RECIPIENT = f"bench@{DOMAIN}"
#: Seconds to wait for the server to start or stop, and for the index after the run.
DEADLINE = 60.0


class BenchError(Exception):
    pass


# --- the loopback DNS responder ------------------------------------------------


class LoopbackDNS:
    """
    A UDP DNS responder on 127.0.0.1 answering from a small table (in a
    thread): what a local caching resolver gives an MX for the sender's
    SPF and DMARC records.  Every other name is NXDOMAIN.
    """

    def __init__(self, records: dict[str, dict[str, list[str]]]) -> None:
        self.records = {name.lower(): value for name, value in records.items()}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-dns", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()
        return f"{host}:{port}"

    def __enter__(self) -> LoopbackDNS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._sock.sendto(self._answer(data), peer)
            except Exception as e:  # a malformed query: ignore it, keep serving
                print(f"bench: DNS responder: {e}", file=sys.stderr)

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        by_type = self.records.get(name)
        if by_type is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = by_type.get(dns.rdatatype.to_text(question.rdtype), [])
            if values:
                response.answer.append(
                    dns.rrset.from_text_list(
                        question.name, 300, "IN", question.rdtype, list(values)
                    )
                )
        return response.to_wire()


# --- a throw-away gk instance ----------------------------------------------------


@dataclass
class Instance:
    """Where the server under test listens and how to count what it stored."""

    host: str
    port: int
    recipient: str
    database_url: str | None = None
    mail_root: Path | None = None
    process: subprocess.Popen[str] | None = None


def gk_command(config: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "gk"), "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=clean_environ(),
    )
    if result.returncode != 0:
        raise BenchError(f"gk {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def clean_environ() -> dict[str, str]:
    """This environment without GK_* variables, which would change the config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GK_")}


def write_config(directory: Path, dns_address: str, database_url: str | None) -> Path:
    database = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    config = directory / "gk.toml"
    config.write_text(
        "[server]\n"
        'hostname = "mx.bench.test"\n'
        f'domains = ["{DOMAIN}"]\n'
        'data_dir = "data"\n\n'
        f"{database}"
        "[smtp]\n"
        'listen = ["tcp:0:interface=127.0.0.1"]\n\n'
        "[submission]\nlisten = []\ntls_listen = []\n\n"
        "[imap]\nlisten = []\ntls_listen = []\n\n"
        "[http]\nlisten = []\ntls_listen = []\n\n"
        f'[dns]\nnameservers = ["{dns_address}"]\ntimeout = 5.0\n\n'
        # The per-IP message rate limit would throttle a loopback client.
        '[security]\nexempt_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    return config


def write_http_config(
    directory: Path, database_url: str | None, *, hostname: str, domain: str
) -> Path:
    """A throw-away instance's config: HTTP on a free loopback port, nothing else."""
    database = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    config = directory / "gk.toml"
    config.write_text(
        "[server]\n"
        f'hostname = "{hostname}"\n'
        f'domains = ["{domain}"]\n'
        'data_dir = "data"\n\n'
        f"{database}"
        "[smtp]\nlisten = []\n\n"
        "[submission]\nlisten = []\ntls_listen = []\n\n"
        "[imap]\nlisten = []\ntls_listen = []\n\n"
        '[http]\nlisten = ["tcp:0:interface=127.0.0.1"]\ntls_listen = []\n\n'
        "[delivery]\nworker = false\n\n"
        # The per-IP limits would throttle loopback clients.
        '[security]\nexempt_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    return config


class ServerLog:
    """
    Reads the server's output in a thread: keeps the lines, notes the port
    of the C{role} listener, and sets L{ready} once the reactor runs ("gk started", from then
    on SIGTERM is handled) or the output ends.
    """

    def __init__(self, process: subprocess.Popen[str], role: str = "smtp") -> None:
        self.marker = f"{role} listening on "
        self.lines: list[str] = []
        self.port: int | None = None
        self.started = False
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                self.lines.append(line.rstrip("\n"))
                if self.port is None and self.marker in line:
                    self.port = int(line.rsplit(":", 1)[1].split()[0])
                elif "gk started:" in line:
                    self.started = True
                    self.ready.set()
        finally:
            self.ready.set()

    def join(self) -> None:
        self._thread.join(timeout=DEADLINE)

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])


@contextlib.contextmanager
def temporary_directory(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh directory, removed afterwards unless C{keep}."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        if keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_server(config: Path, role: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """
    C{twistd -n gk --config CONFIG} until the block ends (then SIGTERM, and
    an error unless it stopped cleanly); the port of C{role}'s listener.
    """
    process = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "gk", "--config", str(config)],
        cwd=config.parent,
        env=clean_environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        log = ServerLog(process, role)
        if not log.ready.wait(timeout=DEADLINE) or not log.started or log.port is None:
            raise BenchError("the server did not start:\n" + log.tail())
        yield log.port, process
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE)
        log.join()
        if process.returncode != -signal.SIGTERM:
            raise BenchError(f"the server exited with {process.returncode}:\n" + log.tail())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def throwaway_instance(
    dns_address: str, database_url: str | None, keep: bool
) -> Iterator[Instance]:
    with temporary_directory("gk-bench-", keep) as directory:
        config = write_config(directory, dns_address, database_url)
        gk_command(config, "init", "--domain", DOMAIN, "--hostname", "mx.bench.test")
        gk_command(config, "user", "add", RECIPIENT, "--password-stdin", stdin="bench password\n")
        loaded = load_config(config, environ={})
        with running_server(config, "smtp") as (port, process):
            yield Instance(
                "127.0.0.1", port, RECIPIENT, loaded.database_url, loaded.mail_dir, process
            )


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL database of C{url}, dropped afterwards."""
    schema = f"gk_bench_{secrets.token_hex(6)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# --- counting what was stored ------------------------------------------------------


class Counter:
    """Counts the recipient's INBOX: index rows and files in new/ and cur/."""

    def __init__(self, database_url: str, mail_root: Path, recipient: str) -> None:
        self.engine: Engine = create_engine(database_url)
        self.inbox = maildir.user_root(mail_root, recipient)
        self.recipient = recipient

    def rows(self) -> int:
        with self.engine.connect() as connection:
            count = connection.scalar(
                select(func.count(Message.id))
                .join(MailFolder, Message.folder_id == MailFolder.id)
                .join(User, MailFolder.user_id == User.id)
                .where(User.email == self.recipient, MailFolder.name == "INBOX")
            )
        return int(count or 0)

    def files(self) -> int:
        return sum(
            1
            for sub in ("new", "cur")
            for entry in os.scandir(self.inbox / sub)
            if not entry.name.startswith(".")
        )

    def close(self) -> None:
        self.engine.dispose()


# --- the client ------------------------------------------------------------------


def build_messages(count: int, size: int, run: str) -> list[bytes]:
    """
    C{count} distinct messages of exactly C{size} bytes each, with the
    DATA terminator appended (no line starts with ".": nothing to stuff).
    """
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    messages = []
    for n in range(count):
        head = (
            f"From: Bench Mailer <{SENDER}>\r\n"
            f"To: <{RECIPIENT}>\r\n"
            f"Subject: bench message {n} of run {run}\r\n"
            f"Message-ID: <{n}.{run}@{SENDER_DOMAIN}>\r\n"
            "Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n"
        ).encode("ascii")
        remaining = size - len(head)
        if remaining < 3:
            raise BenchError(f"--size {size} is smaller than the headers")
        full, tail = divmod(remaining - 3, len(line))
        # The last line takes what is left: 3 to len(line) + 2 bytes.
        body = line * full + b"x" * (tail + 1) + b"\r\n"
        messages.append(head + body + b".\r\n")
    return messages


@dataclass
class Results:
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    last_accept: float = 0.0


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines: list[bytes] = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        lines.append(line)
        if line[3:4] != b"-":
            break
    text = b"".join(lines).decode("utf-8", "replace")
    return int(lines[0][:3]), text


async def connection_worker(
    host: str, port: int, recipient: str, jobs: Iterator[bytes], results: Results
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        code, text = await read_reply(reader)
        if code != 220:
            raise BenchError(f"greeting: {text}")
        writer.write(b"EHLO client.bench.test\r\n")
        code, text = await read_reply(reader)
        if code != 250 or "PIPELINING" not in text:
            raise BenchError(f"EHLO: {text}")
        envelope = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii")
        for message in jobs:
            writer.write(envelope)
            replies = [await read_reply(reader) for _ in range(3)]
            if replies[2][0] != 354:
                code = next((r[0] for r in replies if r[0] >= 400), replies[2][0])
                results.refused[str(code)] = results.refused.get(str(code), 0) + 1
                writer.write(b"RSET\r\n")
                await read_reply(reader)
                continue
            writer.write(message)
            code, text = await read_reply(reader)
            if code == 250:
                results.accepted += 1
                results.bytes_sent += len(message) - 3
                results.last_accept = time.perf_counter()
            else:
                results.refused[str(code)] = results.refused.get(str(code), 0) + 1
        writer.write(b"QUIT\r\n")
        await read_reply(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def drive(
    host: str, port: int, recipient: str, messages: list[bytes], connections: int, limit: float
) -> Results:
    """Send every message over C{connections} connections, within C{limit} seconds."""
    results = Results()
    jobs = iter(messages)  # shared: each connection takes the next message
    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(
                *(
                    connection_worker(host, port, recipient, jobs, results)
                    for _ in range(connections)
                )
            )
    except TimeoutError:
        raise BenchError(f"not done after {limit:.0f} s ({results.accepted} accepted)") from None
    return results


# --- main -------------------------------------------------------------------------


def process_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run(args: argparse.Namespace, instance: Instance) -> int:
    counter = None
    if instance.database_url and instance.mail_root:
        counter = Counter(instance.database_url, instance.mail_root, instance.recipient)
    try:
        before = (counter.rows(), counter.files()) if counter else (0, 0)
        run_id = secrets.token_hex(4)
        messages = build_messages(args.messages, args.size, run_id)
        server_pid = instance.process.pid if instance.process else None
        server_cpu = process_cpu(server_pid) if server_pid else (0.0, 0.0)
        client_cpu = time.process_time()
        start = time.perf_counter()
        results = asyncio.run(
            drive(
                instance.host,
                instance.port,
                instance.recipient,
                messages,
                args.connections,
                args.timeout,
            )
        )
        end = time.perf_counter()
        client_cpu = time.process_time() - client_cpu
        if server_pid:
            after = process_cpu(server_pid)
            server_cpu = (after[0] - server_cpu[0], after[1] - server_cpu[1])

        indexed_at = None
        if counter is not None:
            target = (before[0] + results.accepted, before[1] + results.accepted)
            deadline = time.monotonic() + DEADLINE
            while True:
                now = (counter.rows(), counter.files())
                if now[0] >= target[0] and now[1] >= target[1]:
                    indexed_at = time.perf_counter()
                    break
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"after {DEADLINE}s the INBOX holds {now[0] - before[0]} rows and "
                        f"{now[1] - before[1]} files, {results.accepted} were accepted"
                    )
                time.sleep(0.01)  # polling the store, not waiting for a server to start
    finally:
        if counter is not None:
            counter.close()

    elapsed = end - start
    accept_span = (results.last_accept or end) - start
    print(
        f"gk SMTP ingest: {args.messages} messages of {args.size} bytes over "
        f"{args.connections} connections to {instance.host}:{instance.port}"
    )
    print(f"  accepted        {results.accepted} (250)")
    if results.refused:
        print(f"  refused         {dict(sorted(results.refused.items()))}")
    print(f"  bytes           {results.bytes_sent}")
    print(f"  elapsed         {elapsed:.2f} s")
    print(f"  accepted/s      {results.accepted / accept_span:.0f} messages/s")
    if indexed_at is not None:
        span = indexed_at - start
        print(f"  indexed after   {span:.2f} s (index rows and Maildir files counted)")
        print(f"  end to end      {results.accepted / span:.0f} messages/s")
    print(f"  client CPU      {client_cpu:.2f} s ({100 * client_cpu / elapsed:.0f}% of one core)")
    if server_pid:
        user, system = server_cpu
        print(
            f"  server CPU      {user + system:.2f} s ({100 * (user + system) / elapsed:.0f}% of "
            f"one core; user {user:.2f} s, system {system:.2f} s)"
        )
    return 0 if results.accepted == args.messages else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure how fast gk's MX listener accepts and indexes mail."
    )
    parser.add_argument("--messages", type=int, default=2000, help="messages to send (2000)")
    parser.add_argument("--size", type=int, default=10240, help="bytes per message (10240)")
    parser.add_argument("--connections", type=int, default=8, help="parallel connections (8)")
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="an existing instance's MX listener (default: start a throw-away instance)",
    )
    parser.add_argument(
        "--recipient", default=RECIPIENT, help="with --server: a local address to deliver to"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="with --server: the instance's config file, to count its index and Maildir",
    )
    parser.add_argument(
        "--database-url",
        help="the throw-away instance's database, e.g. postgresql+psycopg://postgres@127.0.0.1"
        ":5432/test (a fresh schema is made in it and dropped afterwards); default SQLite",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up after this many seconds (600)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the throw-away instance's files")
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= 1_000_000:
        parser.error("--messages must be between 1 and 1000000")
    if not 512 <= args.size <= 10_000_000:
        parser.error("--size must be between 512 and 10000000")
    if not 1 <= args.connections <= 256:
        parser.error("--connections must be between 1 and 256")
    if args.server and args.database_url:
        parser.error("--database-url is for the throw-away instance, not with --server")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.server:
            host, _, port = args.server.rpartition(":")
            instance = Instance(host or "127.0.0.1", int(port), args.recipient)
            if args.config is not None:
                config = load_config(args.config)
                instance.database_url, instance.mail_root = config.database_url, config.mail_dir
            return run(args, instance)
        records = {
            SENDER_DOMAIN: {"TXT": ['"v=spf1 ip4:127.0.0.0/8 -all"']},
            f"_dmarc.{SENDER_DOMAIN}": {"TXT": ['"v=DMARC1; p=none"']},
        }
        with contextlib.ExitStack() as stack:
            dns_server = stack.enter_context(LoopbackDNS(records))
            url = args.database_url
            if url and make_url(url).get_backend_name() == "postgresql":
                url = stack.enter_context(postgres_schema(url))
            instance = stack.enter_context(throwaway_instance(dns_server.address, url, args.keep))
            return run(args, instance)
    except (BenchError, OSError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
