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
  - a STORE on every message (+FLAGS.SILENT (\\Seen)).

    .venv/bin/python bench/imap_fetch.py
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


def measure(port: int, count: int) -> dict[str, object]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context)
    # Without it the literal of each APPEND waits for the delayed ACK (Nagle).
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(USER, PASSWORD)
    rng = random.Random(1)
    start = time.perf_counter()
    for n in range(count):
        typ, _ = client.append("Archive", None, None, build_message(n, rng))
        if typ != "OK":
            raise BenchError(f"APPEND {n} failed")
    append_seconds = time.perf_counter() - start
    figures: dict[str, object] = {
        "messages": count,
        "append_per_second": round(count / append_seconds, 1),
    }
    figures["select_seconds"] = timed(lambda: client.select("Archive"))
    listing: list[object] = []
    figures["fetch_envelope_seconds"] = timed(
        lambda: listing.extend(client.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")[1])
    )
    found: list[object] = []
    figures["search_subject_seconds"] = timed(
        lambda: found.append(client.search(None, "SUBJECT", "invoice")[1])
    )
    figures["search_body_seconds"] = timed(
        lambda: found.append(client.search(None, "BODY", '"needle phrase"')[1])
    )
    uids = list(range(1, count + 1))
    picks = random.Random(2).sample(uids, min(100, count))
    figures["fetch_100_full_seconds"] = timed(
        lambda: [client.uid("FETCH", str(uid), "(BODY.PEEK[])") for uid in picks]
    )
    figures["store_all_seconds"] = timed(lambda: client.store("1:*", "+FLAGS.SILENT", "(\\Seen)"))
    client.logout()
    if len([item for item in listing if isinstance(item, tuple)]) != count and len(listing) < count:
        raise BenchError(f"FETCH returned {len(listing)} items for {count} messages")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time gk's IMAP server on a big folder.")
    parser.add_argument("--messages", type=int, default=10_000, help="messages (10000)")
    parser.add_argument("--database-url", help="as for smtp_ingest.py; default SQLite")
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
            port, _process = stack.enter_context(running_server(config, "imap"))
            print(json.dumps(measure(port, args.messages), indent=2))
        return 0
    except (BenchError, OSError, imaplib.IMAP4.error) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
