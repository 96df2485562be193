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
processes (asyncio and a minimal WebSocket client, L{Socket}; one socket
per user), connected and signed in before the clock starts.  Message i
(of rate x seconds) is posted at start + i / rate by user i mod clients,
over its own socket; its text carries its number and the time it was
sent.

Every client records each message of its room it receives from another
member and the delay from the sender's send to its receipt (one clock:
the same machine).  After the last post, the clients wait until they have
every message of their room (their own come back too) or nothing has
arrived for C{--drain} seconds, then report.  A message is lost if a
member of its room never received it; the JSON gives the count
(deliveries to sockets the server closed count as lost: the bench does
not reconnect and sync, and says on stderr which were missed and why).
Latency percentiles cover every delivery; delivered per second counts
deliveries from the first post to the last receipt.

The server's CPU (user and system, from /proc) is counted from when every
client is signed in until every client has all its messages: posting and
fan-out, not connecting or closing 500 sockets.  The clients' CPU over
the same time is given too, and the load average before and after: the
clients share the machine with the server, and so does anything else
running on it.

Issue target (2-core machine): p99 under 100 ms, nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

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


#: RFC 6455's key suffix for the handshake's C{Sec-WebSocket-Accept}.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final client frame (RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    key = os.urandom(4)
    stream = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
    return head + key + masked


class Socket(asyncio.Protocol):
    """
    One user's socket: a minimal RFC 6455 client on an asyncio protocol,
    requests by id, chat messages of its room recorded with their delay.

    Not the C{websockets} library: the clients share the two cores with
    the server, and its per-message machinery (a parser generator, a
    queue and a task switch per message) made the 500 clients use half as
    much CPU again (12 s instead of 8 s over a run at 200 messages/s).
    Every frame is still parsed and every delivery decoded from JSON and
    timed here.  The receive time is read once per chunk the kernel hands
    over (the frames in it had all arrived by then), so frames later in a
    chunk are not charged for the work on the ones before.
    """

    def __init__(self, index: int, host: str, token: str) -> None:
        self.index = index
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            b"GET /ws HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + self.key + b"\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buffer = bytearray()
        self.fragments: list[bytes] | None = None
        self.next_id = 0
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.received: dict[int, float] = {}
        self.errors = 0
        self.closing = False
        #: Why the server ended the connection before the bench did (1008: too slow...).
        self.dropped: str | None = None

    @classmethod
    async def connect(cls, index: int, port: int, token: str) -> Socket:
        loop = asyncio.get_running_loop()
        host = f"127.0.0.1:{port}"
        _, socket = await loop.create_connection(lambda: cls(index, host, token), "127.0.0.1", port)
        await asyncio.wait_for(asyncio.shield(socket.opened), DEADLINE)
        return socket

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and self.dropped is None:
            self.dropped = f"connection lost: {exc}"
        failure = BenchError(f"socket {self.index} closed")
        if not self.opened.done():
            self.opened.set_exception(failure)
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(failure)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        buffer, start, end = self.buffer, 0, len(self.buffer)
        while end - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            size, head = second & 0x7F, 2
            if second & 0x80:
                raise BenchError("the server masked a frame")
            if size == 126:
                if end - start < 4:
                    break
                size, head = int.from_bytes(buffer[start + 2 : start + 4], "big"), 4
            elif size == 127:
                if end - start < 10:
                    break
                size, head = int.from_bytes(buffer[start + 2 : start + 10], "big"), 10
            if end - start < head + size:
                break
            payload = bytes(buffer[start + head : start + head + size])
            start += head + size
            self._frame(first, payload, now)
        del buffer[:start]

    # -- the protocol -------------------------------------------------------------------

    def _upgrade(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        accept = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest()).decode()
        if not head[0].startswith("HTTP/1.1 101") or fields.get("sec-websocket-accept") != accept:
            self.opened.set_exception(BenchError(f"upgrade refused: {head[0]}"))
            assert self.transport is not None
            self.transport.close()
            return False
        self.upgraded = True
        self.opened.set_result(None)
        return True

    def _frame(self, first: int, payload: bytes, now: float) -> None:
        opcode = first & 0x0F
        if opcode in (OP_TEXT, OP_CONTINUATION):
            if first & 0x80 == 0:  # not final: gather the fragments
                self.fragments = [*(self.fragments or []), payload]
                return
            if self.fragments is not None:
                payload, self.fragments = b"".join([*self.fragments, payload]), None
            self._message(payload, now)
        elif opcode == OP_PING:
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if not self.closing:  # the server's own: answer it
                self.dropped = f"closed by the server: {payload[:2].hex()} {payload[2:]!r}"
                self._send(OP_CLOSE, payload[:2])
            assert self.transport is not None
            self.transport.close()

    def _message(self, raw: bytes, now: float) -> None:
        frame = json.loads(raw)
        kind = frame["type"]
        if kind == "event":
            if frame["event"] == "chat.message.posted":
                number, sent = frame["data"]["message"]["text"].split(" ")
                self.received[int(number)] = now - float(sent)
        elif kind == "error":
            self.errors += 1
        waiting = self.pending.pop(frame.get("id"), None)
        if waiting is not None and not waiting.done():
            waiting.set_result(frame)

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    # -- for the bench ------------------------------------------------------------------

    async def call(self, message_type: str, /, **args: Any) -> Any:
        self.next_id += 1
        key = f"r{self.next_id}"
        answer = asyncio.get_running_loop().create_future()
        self.pending[key] = answer
        self._send(OP_TEXT, json.dumps({"type": message_type, "id": key, **args}).encode())
        frame = await asyncio.wait_for(answer, DEADLINE)
        if frame["type"] == "error":
            raise BenchError(f"{message_type}: {frame['error']}")
        return frame["result"]

    def post(self, room_id: int, number: int) -> None:
        text = f"{number} {time.time():.6f}"
        message = {"type": "chat.post", "id": f"p{number}", "room_id": room_id, "text": text}
        self._send(OP_TEXT, json.dumps(message).encode())

    async def close(self) -> None:
        """The closing handshake (1000), then the end of the TCP connection."""
        self.closing = True
        self._send(OP_CLOSE, (1000).to_bytes(2, "big"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), 10)
        assert self.transport is not None
        self.transport.close()


async def _worker(
    plan: Plan, mine: list[int], tokens: list[str], room_ids: list[int], barrier: Barrier
) -> dict[str, Any]:
    sockets = [await Socket.connect(n, plan.port, tokens[n]) for n in mine]
    for socket in sockets:
        await socket.call("hello")
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    start = time.time() + 1.0  # every worker read the same clock after the barrier
    cpu_before = time.process_time()
    by_index = {s.index: s for s in sockets}
    posts = [i for i in range(plan.messages) if i % plan.clients in by_index]
    for i in posts:
        delay = start + i / plan.rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = by_index[i % plan.clients]
        sender.post(room_ids[plan.room_of(sender.index)], i)
    end = start + plan.messages / plan.rate
    await asyncio.sleep(max(0.0, end - time.time()))
    # Then until every socket has all of its room's messages (its own come
    # back too, as to every member), or the drain time passes without any
    # arriving.
    in_room = [plan.room_of(i % plan.clients) for i in range(plan.messages)]
    expected = {s.index: in_room.count(plan.room_of(s.index)) for s in sockets}
    quiet_since, seen = time.time(), -1
    while time.time() - quiet_since < plan.drain:
        count = sum(len(s.received) for s in sockets)
        if all(len(s.received) >= expected[s.index] for s in sockets):
            break
        if count != seen:
            quiet_since, seen = time.time(), count
        await asyncio.sleep(0.1)
    cpu_used = time.process_time() - cpu_before
    # The parent reads the server's CPU between these two (closing 500
    # sockets, with presence changes for all their peers, is not fan-out).
    for _ in range(2):
        with contextlib.suppress(threading.BrokenBarrierError):
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    await asyncio.gather(*(s.close() for s in sockets))
    return {
        "received": {s.index: s.received for s in sockets},
        "errors": sum(s.errors for s in sockets),
        "dropped": [s.dropped for s in sockets if s.dropped is not None],
        "start": start,
        "cpu": cpu_used,
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
    room_ids = []
    for room in range(plan.rooms):
        members = [user(n) for n in range(plan.clients) if plan.room_of(n) == room]
        socket = await Socket.connect(room, plan.port, tokens[room])
        made = await socket.call(
            "chat.create_room", name=f"room {room}", kind="private", members=members
        )
        room_ids.append(int(made["id"]))
        await socket.close()
    return room_ids


# --- the run ----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(plan: Plan, tokens: list[str], processes: int, pid: int) -> dict[str, Any]:
    room_ids = asyncio.run(make_rooms(plan, tokens))
    context = multiprocessing.get_context("spawn")
    # The parent waits at the barrier too, so that the server's CPU is
    # counted from when every client is connected and signed in until they
    # all have their messages (or gave up waiting).
    barrier = context.Barrier(processes + 1)
    results: Queue[Any] = context.Queue()
    shares = [list(range(plan.clients))[k::processes] for k in range(processes)]
    workers = [
        context.Process(target=worker, args=(plan, share, tokens, room_ids, barrier, results))
        for share in shares
    ]
    for process in workers:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed: reported below
        barrier.wait(timeout=DEADLINE + plan.clients * 0.5)
    cpu_before = process_cpu(pid)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=plan.seconds + plan.drain + DEADLINE)
    user_after, system_after = process_cpu(pid)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=DEADLINE)
    user, system = user_after - cpu_before[0], system_after - cpu_before[1]
    cpu_used = user + system
    reports = [results.get(timeout=DEADLINE) for _ in workers]
    for process in workers:
        process.join(timeout=DEADLINE)
    failed = [r["failed"] for r in reports if "failed" in r]
    if failed:
        raise BenchError("a client process failed:\n" + failed[0])
    for reason in [d for r in reports for d in r["dropped"]][:5]:
        print(f"bench: a socket was dropped: {reason}", file=sys.stderr)
    received: dict[int, dict[int, float]] = {}
    for report in reports:
        received.update({int(k): v for k, v in report["received"].items()})
    start = min(r["start"] for r in reports)
    latencies: list[float] = []
    lost = 0
    missing: dict[int, list[int]] = {}  # message: the sockets that never got it
    for n, got in received.items():
        for i in range(plan.messages):
            sender = i % plan.clients
            if sender == n or plan.room_of(sender) != plan.room_of(n):
                continue
            delay = got.get(i)
            if delay is None:
                lost += 1
                missing.setdefault(i, []).append(n)
            else:
                latencies.append(delay)
    if missing:
        # Which: whole messages (never posted or stored), or some sockets' share?
        print(
            f"bench: {len(missing)} messages missed by some socket, "
            f"{len({n for ns in missing.values() for n in ns})} sockets missed some; "
            f"e.g. {dict(list(missing.items())[:3])}",
            file=sys.stderr,
        )
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
        "sockets_dropped": sum(len(r["dropped"]) for r in reports),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
            "p90": round(percentile(latencies, 0.90) * 1000, 1) if latencies else None,
            "p99": round(p99, 1) if p99 is not None else None,
            "max": round(max(latencies) * 1000, 1) if latencies else None,
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        },
        "delivered_per_second": round(len(latencies) / span, 1) if span > 0 else None,
        "server_cpu_seconds": round(cpu_used, 1),
        "server_cpu_user_system": [round(user, 1), round(system, 1)],
        "server_cpu_ms_per_message": round(cpu_used / plan.messages * 1000, 2),
        "client_cpu_seconds": round(sum(r["cpu"] for r in reports), 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
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
    # The machine's load before the bench adds its own (others' work skews the figures).
    load_before = [round(x, 2) for x in os.getloadavg()]
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
            figures = {
                "database": database,
                "load_average_before": load_before,
                **measure(plan, tokens, args.processes, process.pid),
            }
            print(json.dumps(figures, indent=2))
        return 0
    except (BenchError, OSError, TimeoutError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
