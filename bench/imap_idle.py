#!/usr/bin/env python3
"""
IMAP IDLE benchmark: how much memory one gk process needs to hold many
clients idling at once (each signed in over TLS, INBOX selected, in IDLE),
and whether a new message still reaches every one of them.

    .venv/bin/python bench/imap_idle.py                  # 500 connections
    .venv/bin/python bench/imap_idle.py --connections 1000

It makes a throw-away instance (IMAP with implicit TLS; loopback exempt
from the connection limits), opens the connections with asyncio, reads the
server's resident memory (VmRSS in /proc) before and while they idle,
delivers one message with `gk`-independent SMTP-free means (APPEND from one
more connection) and counts the clients that got "* 1 EXISTS".  Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import time
from pathlib import Path

from smtp_ingest import BenchError, gk_command, running_server, temporary_directory

DOMAIN = "bench.test"
USER = f"idler@{DOMAIN}"
PASSWORD = "bench password"


def write_config(directory: Path) -> Path:
    config = directory / "gk.toml"
    config.write_text(
        "[server]\n"
        'hostname = "mail.bench.test"\n'
        f'domains = ["{DOMAIN}"]\n'
        'data_dir = "data"\n\n'
        "[smtp]\nlisten = []\n\n"
        "[submission]\nlisten = []\ntls_listen = []\n\n"
        '[imap]\nlisten = []\ntls_listen = ["tcp:0:interface=127.0.0.1"]\n\n'
        "[http]\nlisten = []\ntls_listen = []\n\n"
        "[delivery]\nworker = false\n\n"
        '[security]\nexempt_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    return config


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchError("no VmRSS")


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str, text: str
) -> None:
    writer.write(f"{tag} {text}\r\n".encode())
    while True:
        line = await reader.readline()
        if not line:
            raise BenchError(f"connection closed during {text}")
        if line.startswith(tag.encode() + b" "):
            if b" OK " not in line:
                raise BenchError(f"{text}: {line!r}")
            return


async def idler(port: int, ready: asyncio.Event, pushed: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls())
    await reader.readline()
    await command(reader, writer, "a", f'LOGIN {USER} "{PASSWORD}"')
    await command(reader, writer, "b", "SELECT INBOX")
    writer.write(b"c IDLE\r\n")
    await reader.readline()  # "+ idling"
    ready.set()
    line = await reader.readline()
    if line.strip() == b"* 1 EXISTS":
        pushed.append(1)
    writer.write(b"DONE\r\n")
    writer.close()


async def run(port: int, pid: int, connections: int) -> dict[str, object]:
    before = rss_mb(pid)
    pushed: list[int] = []
    started = time.perf_counter()
    readies = [asyncio.Event() for _ in range(connections)]
    tasks = []
    for i in range(connections):
        tasks.append(asyncio.create_task(idler(port, readies[i], pushed)))
        if i % 50 == 49:
            await asyncio.gather(*(r.wait() for r in readies[: i + 1]))
    await asyncio.gather(*(r.wait() for r in readies))
    connect_seconds = time.perf_counter() - started
    await asyncio.sleep(1)
    idling = rss_mb(pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls())
    await reader.readline()
    await command(reader, writer, "a", f'LOGIN {USER} "{PASSWORD}"')
    message = b"Subject: wake up\r\n\r\nnew mail\r\n"
    writer.write(f"b APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
    sent = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    push_seconds = time.perf_counter() - sent
    writer.close()
    return {
        "connections": connections,
        "rss_mb_before": before,
        "rss_mb_idling": idling,
        "rss_kb_per_connection": round((idling - before) * 1024 / connections, 1),
        "connect_and_idle_seconds": round(connect_seconds, 2),
        "clients_told_of_new_mail": len(pushed),
        "push_to_all_seconds": round(push_seconds, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Memory of many idling IMAP clients.")
    parser.add_argument("--connections", type=int, default=500)
    args = parser.parse_args(argv)
    try:
        with contextlib.ExitStack() as stack:
            directory = stack.enter_context(temporary_directory("gk-idle-bench-", False))
            config = write_config(directory)
            gk_command(config, "init", "--domain", DOMAIN, "--hostname", "mail.bench.test")
            gk_command(config, "user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
            port, process = stack.enter_context(running_server(config, "imap"))
            print(json.dumps(asyncio.run(run(port, process.pid, args.connections)), indent=2))
        return 0
    except (BenchError, OSError, TimeoutError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
