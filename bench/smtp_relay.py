#!/usr/bin/env python3
"""
SMTP relay benchmark: submit many messages for remote recipients to gk's
submission listener and measure messages per second from submission to
"accepted by the remote MX".

It makes a throw-away instance (submission on an ephemeral loopback port,
STARTTLS and AUTH as a mail client does, a DKIM key so every message is
signed, loopback exempt from the rate limits), a loopback DNS responder
serving MX and A records for the remote domains, and one SMTP sink (run
by this script, asyncio) that plays every remote MX: the domains
remote0.bench.test ... remote19.bench.test have their MX hosts on
127.0.0.2 ... 127.0.0.21, all on the sink's port (C{[delivery] mx_port}).

    .venv/bin/python bench/smtp_relay.py
    .venv/bin/python bench/smtp_relay.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test

The clock starts before the first submission and stops when the sinks
have accepted every message.  It prints both rates, the queue's drain
time and the CPU of the server and of this script (client and sinks).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from smtp_ingest import (
    BenchError,
    LoopbackDNS,
    gk_command,
    postgres_schema,
    process_cpu,
    read_reply,
    running_server,
    temporary_directory,
)
from sqlalchemy.engine import make_url

DOMAIN = "bench.test"
SENDER = f"sender@{DOMAIN}"
PASSWORD = "bench password"
REMOTE = "remote{n}.bench.test"


# --- the remote MX hosts ---------------------------------------------------------


@dataclass
class SinkStats:
    messages: int = 0
    recipients: int = 0
    connections: int = 0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0


class Sink(asyncio.Protocol):
    """A minimal, pipelining SMTP server that accepts everything."""

    def __init__(self, stats: SinkStats) -> None:
        self.stats = stats
        self.buffer = b""
        self.in_data = False
        self.rcpts = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.connections += 1
        transport.write(b"220 sink.bench.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out: list[bytes] = []
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end == -1:
                    break
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                self.stats.messages += 1
                self.stats.recipients += self.rcpts
                self.stats.last = time.perf_counter()
                self.rcpts = 0
                out.append(b"250 2.0.0 queued\r\n")
                if self.stats.messages >= self.stats.expected:
                    self.stats.done.set()
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end == -1:
                break
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                out.append(b"250-sink.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE\r\n")
            elif verb == b"RCPT":
                self.rcpts += 1
                out.append(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                self.in_data = True
                # The message may already be in the buffer: write 354 first.
                out.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                out.append(b"221 bye\r\n")
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            elif verb == b"RSET":
                self.rcpts = 0
                out.append(b"250 ok\r\n")
            else:  # MAIL, HELO, NOOP
                out.append(b"250 ok\r\n")
        if out:
            self.transport.write(b"".join(out))


# --- the throw-away gk -----------------------------------------------------------


def write_config(
    directory: Path, dns_address: str, sink_port: int, database_url: str | None
) -> Path:
    database = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    config = directory / "gk.toml"
    config.write_text(
        "[server]\n"
        'hostname = "mail.bench.test"\n'
        f'domains = ["{DOMAIN}"]\n'
        'data_dir = "data"\n\n'
        f"{database}"
        "[smtp]\nlisten = []\n\n"
        '[submission]\nlisten = ["tcp:0:interface=127.0.0.1"]\ntls_listen = []\n\n'
        "[imap]\nlisten = []\ntls_listen = []\n\n"
        "[http]\nlisten = []\ntls_listen = []\n\n"
        f'[dns]\nnameservers = ["{dns_address}"]\ntimeout = 5.0\n\n'
        f"[delivery]\nmx_port = {sink_port}\nmta_sts = false\n\n"
        '[security]\nexempt_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    return config


@contextlib.contextmanager
def throwaway_instance(
    dns_address: str, sink_port: int, database_url: str | None, keep: bool
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    with temporary_directory("gk-relay-bench-", keep) as directory:
        config = write_config(directory, dns_address, sink_port, database_url)
        gk_command(config, "init", "--domain", DOMAIN, "--hostname", "mail.bench.test")
        gk_command(config, "user", "add", SENDER, "--password-stdin", stdin=PASSWORD + "\n")
        gk_command(config, "dkim", "keygen", DOMAIN)
        with running_server(config, "submission") as server:
            yield server


# --- the submitting client ---------------------------------------------------------


def build_messages(count: int, size: int, domains: int, run: str) -> list[tuple[str, bytes]]:
    """(recipient, message with the DATA terminator) pairs, spread over the domains."""
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    out = []
    for n in range(count):
        recipient = f"user{n}@{REMOTE.format(n=n % domains)}"
        head = (
            f"From: Bench Sender <{SENDER}>\r\nTo: <{recipient}>\r\n"
            f"Subject: relay bench {n} of run {run}\r\n"
            f"Message-ID: <{n}.{run}@{DOMAIN}>\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        ).encode("ascii")
        body = line * max(1, (size - len(head)) // len(line))
        out.append((recipient, head + body + b".\r\n"))
    return out


async def submitter(port: int, jobs: Iterator[tuple[str, bytes]], accepted: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await read_reply(reader)
        writer.write(b"EHLO client.bench.test\r\n")
        await read_reply(reader)
        writer.write(b"STARTTLS\r\n")
        code, text = await read_reply(reader)
        if code != 220:
            raise BenchError(f"STARTTLS: {text}")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        await writer.start_tls(context)
        writer.write(b"EHLO client.bench.test\r\n")
        await read_reply(reader)
        token = base64.b64encode(f"\0{SENDER}\0{PASSWORD}".encode()).decode()
        writer.write(f"AUTH PLAIN {token}\r\n".encode())
        code, text = await read_reply(reader)
        if code != 235:
            raise BenchError(f"AUTH: {text}")
        for recipient, message in jobs:
            writer.write(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
            replies = [await read_reply(reader) for _ in range(3)]
            if replies[2][0] != 354:
                raise BenchError(f"refused: {replies}")
            writer.write(message)
            code, text = await read_reply(reader)
            if code != 250:
                raise BenchError(f"after DATA: {text}")
            accepted[0] += 1
        writer.write(b"QUIT\r\n")
        await read_reply(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def run(args: argparse.Namespace) -> int:
    domains = args.domains
    stats = SinkStats(expected=args.messages)
    loop = asyncio.get_running_loop()
    hosts = [f"127.0.0.{2 + n}" for n in range(domains)]
    # One port on every address (port 0 would give each its own).
    first = await loop.create_server(lambda: Sink(stats), hosts[0], 0)
    sink_port = first.sockets[0].getsockname()[1]
    servers = [first]
    if hosts[1:]:
        servers.append(await loop.create_server(lambda: Sink(stats), hosts[1:], sink_port))
    records: dict[str, dict[str, list[str]]] = {}
    for n, host in enumerate(hosts):
        records[REMOTE.format(n=n)] = {"MX": [f"10 mx.{REMOTE.format(n=n)}."]}
        records[f"mx.{REMOTE.format(n=n)}"] = {"A": [host]}
    with contextlib.ExitStack() as stack:
        dns_server = stack.enter_context(LoopbackDNS(records))
        url = args.database_url
        if url and make_url(url).get_backend_name() == "postgresql":
            url = stack.enter_context(postgres_schema(url))
        port, process = stack.enter_context(
            throwaway_instance(dns_server.address, sink_port, url, args.keep)
        )
        messages = build_messages(args.messages, args.size, domains, secrets.token_hex(4))
        jobs = iter(messages)
        accepted = [0]
        server_cpu = process_cpu(process.pid)
        own_cpu = time.process_time()
        start = time.perf_counter()
        try:
            async with asyncio.timeout(args.timeout):
                await asyncio.gather(
                    *(submitter(port, jobs, accepted) for _ in range(args.connections))
                )
                submitted = time.perf_counter()
                await stats.done.wait()
        except TimeoutError:
            raise BenchError(
                f"not done after {args.timeout:.0f} s: {accepted[0]} submitted, "
                f"{stats.messages} delivered"
            ) from None
        end = stats.last
        after = process_cpu(process.pid)
        own_cpu = time.process_time() - own_cpu
        for server in servers:
            server.close()
    elapsed = end - start
    user, system = after[0] - server_cpu[0], after[1] - server_cpu[1]
    print(
        f"gk SMTP relay: {args.messages} messages of about {args.size} bytes, "
        f"{args.connections} submission connections, {domains} remote domains"
    )
    print(
        f"  submitted       {accepted[0]} in {submitted - start:.2f} s "
        f"({accepted[0] / (submitted - start):.0f} messages/s)"
    )
    print(f"  delivered       {stats.messages} to the sinks over {stats.connections} connections")
    print(f"  elapsed         {elapsed:.2f} s (first submission to last accepted by a sink)")
    print(f"  end to end      {stats.messages / elapsed:.0f} messages/s")
    print(
        f"  server CPU      {user + system:.2f} s ({100 * (user + system) / elapsed:.0f}% of one "
        f"core; user {user:.2f} s, system {system:.2f} s)"
    )
    print(f"  bench CPU       {own_cpu:.2f} s (client and sinks; {100 * own_cpu / elapsed:.0f}%)")
    return 0 if stats.messages == args.messages else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure how fast gk relays submitted mail to remote MX hosts."
    )
    parser.add_argument("--messages", type=int, default=2000, help="messages to send (2000)")
    parser.add_argument("--size", type=int, default=10240, help="bytes per message (10240)")
    parser.add_argument("--connections", type=int, default=8, help="submission connections (8)")
    parser.add_argument("--domains", type=int, default=20, help="remote domains (20, at most 200)")
    parser.add_argument("--database-url", help="as for smtp_ingest.py; default SQLite")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (600 s)")
    parser.add_argument("--keep", action="store_true", help="keep the instance's files")
    args = parser.parse_args(argv)
    if not 1 <= args.domains <= 200:
        parser.error("--domains must be between 1 and 200")
    if not 1 <= args.messages <= 1_000_000 or not 512 <= args.size <= 10_000_000:
        parser.error("--messages 1..1000000, --size 512..10000000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (BenchError, OSError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
