#!/usr/bin/env python3
"""
IMAP benchmark: a folder of many messages, and the commands a mail client
sends on it, timed over a real connection.  Prints one JSON object.

It makes a throw-away instance (IMAP with implicit TLS on an ephemeral
loopback port, one user), APPENDs the messages (2 to 20 KB each, varied
senders and subjects), then times:

  - SELECT of the folder;
  - UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE), what a client does
    to list a folder;
  - a header SEARCH (SUBJECT) and a BODY search;
  - 100 full-message fetches (BODY.PEEK[]);
  - a STORE on every message (+FLAGS.SILENT (\\Seen));

and the server's resident memory after the APPENDs, at the end, and at its
peak: with --messages 100000 it shows that a session on a big folder does
not hold the folder in memory.

    .venv/bin/python bench/imap_fetch.py
    .venv/bin/python bench/imap_fetch.py --messages 100000 --connections 8
    .venv/bin/python bench/imap_fetch.py --messages 2000 --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import json
import random
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from smtp_ingest import BenchError, gk_command, postgres_schema, running_server, temporary_directory
from sqlalchemy.engine import make_url

DOMAIN = "bench.test"
USER = f"reader@{DOMAIN}"
PASSWORD = "bench password"
WORDS = [
    "meeting",
    "report",
    "invoice",
    "holiday",
    "project",
    "budget",
    "review",
    "draft",
    "travel",
    "lunch",
    "schedule",
    "update",
    "question",
    "answer",
    "release",
    "planning",
    "customer",
    "support",
]


def write_config(directory: Path, database_url: str | None) -> Path:
    database = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    config = directory / "gk.toml"
    config.write_text(
        "[server]\n"
        'hostname = "mail.bench.test"\n'
        f'domains = ["{DOMAIN}"]\n'
        'data_dir = "data"\n\n'
        f"{database}"
        "[smtp]\nlisten = []\n\n"
        "[submission]\nlisten = []\ntls_listen = []\n\n"
        '[imap]\nlisten = []\ntls_listen = ["tcp:0:interface=127.0.0.1"]\n\n'
        "[http]\nlisten = []\ntls_listen = []\n\n"
        "[delivery]\nworker = false\n\n"
        '[security]\nexempt_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    return config


def build_message(n: int, rng: random.Random) -> bytes:
    subject = " ".join(rng.choice(WORDS) for _ in range(4))
    sender = f"{rng.choice(WORDS)}{n % 97}@example.org"
    size = rng.randint(2_000, 20_000)
    head = (
        f"From: {sender}\r\nTo: {USER}\r\nSubject: {subject} #{n}\r\n"
        f"Message-ID: <{n}@bench.example.org>\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = " ".join(rng.choice(WORDS) for _ in range(10)).encode() + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    if n % 1000 == 7:
        body += b"the needle phrase appears here\r\n"
    return head + body


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return round(time.perf_counter() - start, 4)


def connect(port: int) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context)
    # Without it the literal of each APPEND waits for the delayed ACK (Nagle).
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(USER, PASSWORD)
    return client


def append_all(port: int, numbers: range) -> None:
    """APPEND messages C{numbers} to Archive over one connection."""
    client = connect(port)
    rng = random.Random(numbers.start)
    for n in numbers:
        typ, _ = client.append("Archive", None, None, build_message(n, rng))
        if typ != "OK":
            raise BenchError(f"APPEND {n} failed")
    client.logout()


def fill(port: int, count: int, connections: int) -> float:
    """APPEND C{count} messages over C{connections} at once; the rate per second."""
    share = -(-count // connections)
    parts = [range(i, min(i + share, count)) for i in range(0, count, share)]
    start = time.perf_counter()
    with ThreadPoolExecutor(len(parts)) as pool:
        for future in [pool.submit(append_all, port, part) for part in parts]:
            future.result()
    return count / (time.perf_counter() - start)


def rss_mb(pid: int, field: str) -> float:
    """The server's resident memory (C{VmRSS}) or its peak (C{VmHWM}), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchError(f"no {field} for process {pid}")


def measure(port: int, count: int, pid: int, connections: int) -> dict[str, object]:
    figures: dict[str, object] = {
        "messages": count,
        "append_per_second": round(fill(port, count, connections), 1),
        "append_connections": connections,
        "server_rss_mb_after_append": rss_mb(pid, "VmRSS"),
    }
    client = connect(port)
    figures["select_seconds"] = timed(lambda: client.select("Archive"))
    listing: list[object] = []
    figures["fetch_envelope_seconds"] = timed(
        lambda: listing.extend(client.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")[1])
    )
    figures["server_rss_mb_after_fetch"] = rss_mb(pid, "VmRSS")
    found: list[object] = []
    figures["search_subject_seconds"] = timed(
        lambda: found.append(client.search(None, "SUBJECT", "invoice")[1])
    )
    figures["search_body_seconds"] = timed(
        lambda: found.append(client.search(None, "BODY", '"needle phrase"')[1])
    )
    figures["server_rss_mb_after_search"] = rss_mb(pid, "VmRSS")
    uids = list(range(1, count + 1))
    picks = random.Random(2).sample(uids, min(100, count))
    figures["fetch_100_full_seconds"] = timed(
        lambda: [client.uid("FETCH", str(uid), "(BODY.PEEK[])") for uid in picks]
    )
    figures["store_all_seconds"] = timed(lambda: client.store("1:*", "+FLAGS.SILENT", "(\\Seen)"))
    client.logout()
    figures["server_rss_mb_at_end"] = rss_mb(pid, "VmRSS")
    figures["server_peak_rss_mb"] = rss_mb(pid, "VmHWM")
    if len([item for item in listing if isinstance(item, tuple)]) != count and len(listing) < count:
        raise BenchError(f"FETCH returned {len(listing)} items for {count} messages")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time gk's IMAP server on a big folder.")
    parser.add_argument("--messages", type=int, default=10_000, help="messages (10000)")
    parser.add_argument("--database-url", help="as for smtp_ingest.py; default SQLite")
    parser.add_argument(
        "--connections", type=int, default=1, help="APPEND over this many connections (1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the instance's files")
    args = parser.parse_args(argv)
    try:
        with contextlib.ExitStack() as stack:
            url = args.database_url
            if url and make_url(url).get_backend_name() == "postgresql":
                url = stack.enter_context(postgres_schema(url))
            directory = stack.enter_context(temporary_directory("gk-imap-bench-", args.keep))
            config = write_config(directory, url)
            gk_command(config, "init", "--domain", DOMAIN, "--hostname", "mail.bench.test")
            gk_command(config, "user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
            port, process = stack.enter_context(running_server(config, "imap"))
            figures = measure(port, args.messages, process.pid, args.connections)
            print(json.dumps(figures, indent=2))
        return 0
    except (BenchError, OSError, imaplib.IMAP4.error) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
