#!/usr/bin/env python3
"""
Chat fan-out benchmark: many WebSocket clients in a few rooms, messages
posted at a steady rate, and how long each takes to reach every other
member of its room.  Prints one JSON object.

    .venv/bin/python bench/chat_fanout.py                       # 500 clients, 10 rooms, 200/s, 20 s
    .venv/bin/python bench/chat_fanout.py --clients 100 --rate 50 --seconds 5
    .venv/bin/python bench/chat_fanout.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test

It makes a throw-away instance (HTTP only, on an ephemeral loopback
port), creates C{--clients} users with a bearer token each directly in
the database (one password hash for all: Argon2 per user would take
minutes), then C{--rooms} private rooms over the socket, each with an
equal share of the users.  The clients run in C{--processes} worker
processes (asyncio and the C{websockets} library, one socket per user),
connected and signed in before the clock starts.  Message i (of rate x
seconds) is posted at start + i / rate by user i mod clients, over its
own socket; its text carries its number and the time it was sent.

Every client records each message of its room it receives from another
member and the delay from the sender's send to its receipt (one clock:
the same machine).  After the last post, the clients wait until they have
every message or nothing has arrived for C{--drain} seconds, then report.
A message is lost if a member of its room never received it; the JSON
gives the count (deliveries to sockets the server closed count as lost:
the bench does not reconnect and sync).  Latency percentiles
cover every delivery; delivered per second counts deliveries from the
first post to the last receipt.

Issue target (2-core machine): p99 under 100 ms, nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import secrets
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import websockets
from dav import rss_mb
from smtp_ingest import (
    BenchError,
    gk_command,
    postgres_schema,
    process_cpu,
    running_server,
    temporary_directory,
    write_http_config,
)
from sqlalchemy.engine import make_url

from gk import passwords
from gk.config import load_config
from gk.storage import accounts as account_store
from gk.storage.database import Database

DOMAIN = "chat.bench.test"
DEADLINE = 120.0


def write_config(directory: Path, database_url: str | None) -> Path:
    return write_http_config(directory, database_url, hostname="chat.bench.test", domain=DOMAIN)


def user(n: int) -> str:
    return f"user{n:05d}@{DOMAIN}"


def make_users(config_path: Path, count: int) -> list[str]:
    """C{count} users and a bearer token each, straight into the database; the tokens."""
    config = load_config(config_path, environ={})
    db = Database(config.database_url)
    try:
        password_hash = passwords.hash_password(secrets.token_urlsafe(16))
        tokens = [secrets.token_urlsafe(32) for _ in range(count)]
        with db.transaction() as session:
            for n, token in enumerate(tokens):
                account_store.add_user(session, user(n), password_hash)
                account_store.add_token(session, user(n), "bench", passwords.secret_digest(token))
        return tokens
    finally:
        db.dispose()


# --- the clients (worker processes) ---------------------------------------------------


@dataclass(frozen=True)
class Plan:
    port: int
    clients: int
    rooms: int
    rate: float
    seconds: float
    drain: float

    @property
    def messages(self) -> int:
        return int(self.rate * self.seconds)

    def room_of(self, n: int) -> int:
        return n % self.rooms


class Socket:
    """One user's socket: requests by id, chat messages of its room recorded."""

    def __init__(self, index: int, connection: Any) -> None:
        self.index = index
        self.connection = connection
        self.next_id = 0
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.received: dict[int, float] = {}
        self.errors = 0

    async def call(self, message_type: str, /, **args: Any) -> Any:
        self.next_id += 1
        key = f"r{self.next_id}"
        answer = asyncio.get_running_loop().create_future()
        self.pending[key] = answer
        await self.connection.send(json.dumps({"type": message_type, "id": key, **args}))
        frame = await asyncio.wait_for(answer, DEADLINE)
        if frame["type"] == "error":
            raise BenchError(f"{message_type}: {frame['error']}")
        return frame["result"]

    async def post(self, room_id: int, number: int) -> None:
        self.next_id += 1
        text = f"{number} {time.time():.6f}"
        message = {"type": "chat.post", "id": f"p{number}", "room_id": room_id, "text": text}
        await self.connection.send(json.dumps(message))

    async def read(self) -> None:
        async for raw in self.connection:
            now = time.time()
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "event":
                if frame["event"] == "chat.message.posted":
                    text = frame["data"]["message"]["text"]
                    number, sent = text.split(" ")
                    self.received[int(number)] = now - float(sent)
            elif kind == "error":
                self.errors += 1
            waiting = self.pending.pop(frame.get("id"), None)
            if waiting is not None:
                waiting.set_result(frame)


async def _worker(
    plan: Plan, mine: list[int], tokens: list[str], room_ids: list[int], barrier: Barrier
) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{plan.port}/ws"
    sockets: list[Socket] = []
    readers = []
    for n in mine:
        connection = await websockets.connect(
            url,
            additional_headers={"Authorization": f"Bearer {tokens[n]}"},
            open_timeout=DEADLINE,
            max_size=2**22,
            max_queue=None,
            compression=None,
        )
        socket = Socket(n, connection)
        sockets.append(socket)
        readers.append(asyncio.ensure_future(socket.read()))
    for socket in sockets:
        await socket.call("hello")
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    start = time.time() + 1.0  # every worker read the same clock after the barrier
    by_index = {s.index: s for s in sockets}
    posts = [i for i in range(plan.messages) if i % plan.clients in by_index]
    for i in posts:
        delay = start + i / plan.rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = by_index[i % plan.clients]
        await sender.post(room_ids[plan.room_of(sender.index)], i)
    end = start + plan.messages / plan.rate
    await asyncio.sleep(max(0.0, end - time.time()))
    # Then until every socket has all of its room's messages from others,
    # or the drain time passes without any arriving.
    expected = {
        s.index: sum(
            1
            for i in range(plan.messages)
            if i % plan.clients != s.index
            and plan.room_of(i % plan.clients) == plan.room_of(s.index)
        )
        for s in sockets
    }
    quiet_since, seen = time.time(), -1
    while time.time() - quiet_since < plan.drain:
        count = sum(len(s.received) for s in sockets)
        if all(len(s.received) >= expected[s.index] for s in sockets):
            break
        if count != seen:
            quiet_since, seen = time.time(), count
        await asyncio.sleep(0.1)
    for socket in sockets:
        await socket.connection.close()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "received": {s.index: s.received for s in sockets},
        "errors": sum(s.errors for s in sockets),
        "start": start,
    }


def worker(
    plan: Plan,
    mine: list[int],
    tokens: list[str],
    room_ids: list[int],
    barrier: Barrier,
    results: Queue[Any],
) -> None:
    try:
        results.put(asyncio.run(_worker(plan, mine, tokens, room_ids, barrier)))
    except BaseException as e:  # reported by the parent
        barrier.abort()
        results.put({"failed": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"})


async def make_rooms(plan: Plan, tokens: list[str]) -> list[int]:
    """The rooms, each made by its first member with the others in it."""
    url = f"ws://127.0.0.1:{plan.port}/ws"
    room_ids = []
    for room in range(plan.rooms):
        members = [user(n) for n in range(plan.clients) if plan.room_of(n) == room]
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {tokens[room]}"}
        ) as connection:
            socket = Socket(room, connection)
            reader = asyncio.ensure_future(socket.read())
            made = await socket.call(
                "chat.create_room", name=f"room {room}", kind="private", members=members
            )
            room_ids.append(int(made["id"]))
            await connection.close()
            await reader
    return room_ids


# --- the run ----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(plan: Plan, tokens: list[str], processes: int, pid: int) -> dict[str, Any]:
    room_ids = asyncio.run(make_rooms(plan, tokens))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Queue[Any] = context.Queue()
    shares = [list(range(plan.clients))[k::processes] for k in range(processes)]
    workers = [
        context.Process(target=worker, args=(plan, share, tokens, room_ids, barrier, results))
        for share in shares
    ]
    for process in workers:
        process.start()
    cpu_before = sum(process_cpu(pid))
    reports = [results.get(timeout=plan.seconds + plan.drain + DEADLINE) for _ in workers]
    cpu_used = sum(process_cpu(pid)) - cpu_before
    for process in workers:
        process.join(timeout=DEADLINE)
    failed = [r["failed"] for r in reports if "failed" in r]
    if failed:
        raise BenchError("a client process failed:\n" + failed[0])
    received: dict[int, dict[int, float]] = {}
    for report in reports:
        received.update({int(k): v for k, v in report["received"].items()})
    start = min(r["start"] for r in reports)
    latencies: list[float] = []
    lost = 0
    for n, got in received.items():
        for i in range(plan.messages):
            sender = i % plan.clients
            if sender == n or plan.room_of(sender) != plan.room_of(n):
                continue
            delay = got.get(i)
            if delay is None:
                lost += 1
            else:
                latencies.append(delay)
    last = max((start + i / plan.rate for i in range(plan.messages)), default=start)
    span = last - start + max(latencies, default=0.0)
    members = plan.clients / plan.rooms
    p99 = percentile(latencies, 0.99) * 1000 if latencies else None
    return {
        "clients": plan.clients,
        "rooms": plan.rooms,
        "client_processes": processes,
        "rate_per_second": plan.rate,
        "seconds": plan.seconds,
        "messages_posted": plan.messages,
        "deliveries_expected": int(plan.messages * (members - 1)),
        "deliveries": len(latencies),
        "lost": lost,
        "error_answers": sum(r["errors"] for r in reports),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
            "p90": round(percentile(latencies, 0.90) * 1000, 1) if latencies else None,
            "p99": round(p99, 1) if p99 is not None else None,
            "max": round(max(latencies) * 1000, 1) if latencies else None,
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        },
        "delivered_per_second": round(len(latencies) / span, 1) if span > 0 else None,
        "server_cpu_seconds": round(cpu_used, 1),
        "server_rss_mb": rss_mb(pid),
        "targets_met": {
            "p99_ms < 100": p99 is not None and p99 < 100,
            "no message lost": lost == 0,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time gk's chat fan-out over /ws.")
    parser.add_argument("--clients", type=int, default=500, help="sockets, one user each (500)")
    parser.add_argument("--rooms", type=int, default=10, help="rooms sharing the users (10)")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second (200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to post (20)")
    parser.add_argument(
        "--drain", type=float, default=10.0, help="give up after this long without a delivery (10)"
    )
    parser.add_argument("--processes", type=int, default=4, help="client processes (4)")
    parser.add_argument("--database-url", help="as for smtp_ingest.py; default SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the instance's files")
    args = parser.parse_args(argv)
    if not 2 <= args.rooms <= args.clients // 2 or args.clients > 20_000:
        parser.error("need 2 to clients/2 rooms and at most 20000 clients")
    if not 0 < args.rate <= 10_000 or not 0 < args.seconds <= 600:
        parser.error("rate must be in (0, 10000] and seconds in (0, 600]")
    if not 1 <= args.processes <= 64:
        parser.error("processes must be 1 to 64")
    try:
        with contextlib.ExitStack() as stack:
            url = args.database_url
            database = "sqlite"
            if url and make_url(url).get_backend_name() == "postgresql":
                url = stack.enter_context(postgres_schema(url))
                database = "postgresql"
            directory = stack.enter_context(temporary_directory("gk-chat-bench-", args.keep))
            config = write_config(directory, url)
            gk_command(config, "init", "--domain", DOMAIN, "--hostname", "chat.bench.test")
            tokens = make_users(config, args.clients)
            port, process = stack.enter_context(running_server(config, "http"))
            plan = Plan(port, args.clients, args.rooms, args.rate, args.seconds, args.drain)
            figures = {"database": database, **measure(plan, tokens, args.processes, process.pid)}
            print(json.dumps(figures, indent=2))
        return 0
    except (BenchError, OSError, TimeoutError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
