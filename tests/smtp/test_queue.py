"""
The durable outbound queue (L{gk.queue.DeliveryQueue}): the spool file is
on disk before its rows exist, a row never exists without its file, and
dead spool files are cleaned at start-up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gk.app import GkApp
from gk.queue import STALE_SPOOL_SECONDS
from gk.storage import queue_store
from gk.storage.models import QueuedMessage, QueuedRecipient
from tests.helpers import in_thread

T = TypeVar("T")

MESSAGE = b"Received: from a by b; Mon, 01 Jan 2024 12:00:00 +0000\r\nSubject: hi\r\n\r\nbody\r\n"


def spool_files(app: GkApp) -> dict[str, bytes]:
    """Every file in spool/ and spool/tmp/, by path relative to spool/."""
    root = app.config.spool_dir
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


async def queued_messages(app: GkApp) -> list[tuple[str, str, int | None, int, bool]]:
    def rows(session: Session) -> list[tuple[str, str, int | None, int, bool]]:
        messages = session.scalars(select(QueuedMessage).order_by(QueuedMessage.id))
        return [(m.queue_id, m.sender, m.user_id, m.size, m.smtputf8) for m in messages]

    return await app.db.read(rows)


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


@pytest_twisted.ensureDeferred
async def test_enqueue_writes_the_spool_file_before_the_rows(
    app: GkApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the spool holds at the moment the rows are written.
    seen_at_write: list[dict[str, bytes]] = []
    write = app.db.write_together

    async def spying_write(fn: Callable[[Session], T]) -> T:
        seen_at_write.append(spool_files(app))
        return await write(fn)

    monkeypatch.setattr(app.db, "write_together", spying_write)
    user = await app.accounts.create_user("alice@example.test", "correct horse battery")
    queue_id = await app.queue.enqueue(
        "alice@example.test",
        ["Bob@Remote.EXAMPLE", "carol@other.example"],
        MESSAGE,
        user_id=user.id,
        smtputf8=True,
    )

    assert seen_at_write[-1] == {queue_id: MESSAGE}  # complete, renamed, before the rows
    assert spool_files(app) == {queue_id: MESSAGE}  # nothing left in tmp/
    path = app.queue.path_of(queue_id)
    assert path == app.config.server.data_dir / "spool" / queue_id
    assert path.stat().st_mode & 0o777 == 0o600
    assert await queued_messages(app) == [
        (queue_id, "alice@example.test", user.id, len(MESSAGE), True)
    ]
    recipients = await app.db.read(lambda s: queue_store.recipients_of(s, queue_id))
    assert [(r.address, r.domain, r.state, r.attempts) for r in recipients] == [
        ("Bob@Remote.EXAMPLE", "remote.example", "pending", 0),
        ("carol@other.example", "other.example", "pending", 0),
    ]


@pytest_twisted.ensureDeferred
async def test_the_queue_id_given_is_used_else_a_new_one(app: GkApp) -> None:
    given = await app.queue.enqueue("", ["a@remote.example"], MESSAGE, queue_id="0123456789ABCDEF")
    made = await app.queue.enqueue("", ["a@remote.example"], MESSAGE)
    assert given == "0123456789ABCDEF"
    assert made != given and len(made) == 16 and made.isalnum() and made.isupper()
    assert set(spool_files(app)) == {given, made}
    # The null reverse-path (a bounce) is queued with an empty sender.
    assert [row[:2] for row in await queued_messages(app)] == [(given, ""), (made, "")]


@pytest_twisted.ensureDeferred
async def test_a_failed_database_write_removes_the_spool_file(
    app: GkApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_add_message(session: Session, *args: Any) -> None:
        session.add(QueuedMessage(queue_id="half", sender="", size=1))
        session.flush()
        raise RuntimeError("disk full")

    monkeypatch.setattr(queue_store, "add_message", failing_add_message)
    with pytest.raises(RuntimeError, match="disk full"):
        await app.queue.enqueue("alice@example.test", ["bob@remote.example"], MESSAGE)
    assert spool_files(app) == {}
    assert await queued_messages(app) == []  # the transaction was rolled back
    assert await app.queue.counts() == dict.fromkeys(queue_store.STATES, 0)


@pytest_twisted.ensureDeferred
async def test_a_reused_queue_id_never_replaces_a_queued_message(app: GkApp) -> None:
    first = await app.queue.enqueue("", ["a@remote.example"], MESSAGE, queue_id="SAME")
    with pytest.raises(OSError):
        await app.queue.enqueue("", ["b@remote.example"], b"other message\r\n", queue_id="SAME")
    # The first message keeps its file and its rows.
    assert spool_files(app) == {first: MESSAGE}
    recipients = await app.db.read(lambda s: queue_store.recipients_of(s, first))
    assert [r.address for r in recipients] == ["a@remote.example"]


@pytest_twisted.ensureDeferred
async def test_clean_spool_removes_only_old_files_without_rows(app: GkApp) -> None:
    spool = app.config.spool_dir
    queued = await app.queue.enqueue("", ["a@remote.example"], MESSAGE)
    old_queued = await app.queue.enqueue("", ["a@remote.example"], MESSAGE)
    (spool / "tmp").mkdir(exist_ok=True)
    for name in ("OLDORPHAN", "FRESHORPHAN", "tmp/OLDTMP", "tmp/FRESHTMP"):
        (spool / name).write_bytes(MESSAGE)
    stale = STALE_SPOOL_SECONDS + 60
    for name in (old_queued, "OLDORPHAN", "tmp/OLDTMP"):
        age(spool / name, stale)
    age(spool / "FRESHORPHAN", STALE_SPOOL_SECONDS - 60)

    assert await in_thread(app.queue.clean_spool) == 2
    assert set(spool_files(app)) == {queued, old_queued, "FRESHORPHAN", "tmp/FRESHTMP"}
    # Once they are old too, the orphans go; queued messages never do.
    later = time.time() + 2 * STALE_SPOOL_SECONDS
    assert await in_thread(app.queue.clean_spool, later) == 2
    assert set(spool_files(app)) == {queued, old_queued}
    assert await in_thread(app.queue.clean_spool, later) == 0


@pytest_twisted.ensureDeferred
async def test_clean_spool_copes_with_a_missing_spool_directory(app: GkApp) -> None:
    app.config.spool_dir.rmdir()
    assert await in_thread(app.queue.clean_spool) == 0


@pytest_twisted.ensureDeferred
async def test_counts_by_state(app: GkApp) -> None:
    assert await app.queue.counts() == dict.fromkeys(queue_store.STATES, 0)
    first = await app.queue.enqueue("", ["a@one.example", "b@two.example"], MESSAGE)
    await app.queue.enqueue("", ["c@three.example", "d@four.example"], MESSAGE)

    def progress(session: Session) -> None:
        [a, b] = queue_store.recipients_of(session, first)
        session.execute(
            update(QueuedRecipient).where(QueuedRecipient.id == a.id).values(state="sent")
        )
        session.execute(
            update(QueuedRecipient).where(QueuedRecipient.id == b.id).values(state="deferred")
        )

    await app.db.write(progress)
    assert await app.queue.counts() == {
        "pending": 2,
        "sending": 0,
        "deferred": 1,
        "sent": 1,
        "bounced": 0,
        "failed": 0,
    }
