"""
The outbound delivery queue: mail for remote recipients, made durable
before the submitting client gets its 250.

Order, as for the Maildir store: the message is written to
C{spool/tmp/}, fsynced and renamed into C{spool/}; then one transaction
inserts the message row and a row per recipient in state C{pending}.  A
crash between the two leaves a spool file without a row, removed at start
once old; a row never exists without its file.  The worker that delivers
the queue (MX routing, retries, bounces) builds on these rows.
"""

from __future__ import annotations

import datetime
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.errors import GkError
from gk.storage import queue_store
from gk.storage.database import Database
from gk.storage.maildir import fsync_dir
from gk.storage.queue_store import QueueEntry


def new_queue_id() -> str:
    """A short unique id for logs, Received headers and spool file names."""
    return secrets.token_hex(8).upper()


#: A spool file with no row older than this is a dead enqueue.
STALE_SPOOL_SECONDS = 3600
#: Longest queue id looked up (ids from L{new_queue_id} have 16 characters).
MAX_QUEUE_ID = 64


class NotQueued(GkError):
    """No message with that queue id is in the queue."""

    def __init__(self, queue_id: str) -> None:
        super().__init__(f"no message {queue_id} in the queue")
        self.queue_id = queue_id


def normalize_queue_id(text: str) -> str:
    """A queue id as typed or pasted (spaces, lower case) in its stored form."""
    return text.strip().upper()[:MAX_QUEUE_ID]


class DeliveryQueue:
    """Durable storage of outbound messages (C{data_dir/spool})."""

    log = Logger()

    def __init__(
        self,
        db: Database,
        spool_dir: Path,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """
        @param sign: adds DKIM signatures to a message (blocking; run in a
            thread before the message is spooled), see L{DKIMSigner.sign}.
        """
        self.db = db
        self.spool_dir = spool_dir
        self._sign = sign
        #: Called after each enqueue (the delivery worker's wake-up).
        self.on_enqueue: Callable[[], None] | None = None

    def path_of(self, queue_id: str) -> Path:
        return self.spool_dir / queue_id

    async def enqueue(
        self,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        user_id: int | None = None,
        smtputf8: bool = False,
        queue_id: str | None = None,
    ) -> str:
        """
        Queue C{message} for C{recipients}; when this returns, it is on disk
        and in the database.

        @param queue_id: the id the SMTP session already logged and put in
            the Received header, so one id follows the message.
        @return: the queue id.
        """
        queue_id = queue_id or new_queue_id()
        size = await deferToThread(self._write_spool, queue_id, message)
        try:
            # Enqueues made at the same time share one commit.
            await self.db.write_together(
                lambda s: queue_store.add_message(
                    s, queue_id, sender, recipients, size, user_id, smtputf8
                )
            )
        except BaseException:
            self.path_of(queue_id).unlink(missing_ok=True)
            raise
        # The SMTP session logs the message; this is the queue's detail.
        self.log.debug(
            "{queue_id}: queued from=<{sender}> for {count} remote recipient(s)",
            queue_id=queue_id,
            sender=sender,
            count=len(recipients),
        )
        if self.on_enqueue is not None:
            self.on_enqueue()
        return queue_id

    def _write_spool(self, queue_id: str, message: bytes) -> int:
        """Sign C{message} if a signer is set, spool it durably; its size."""
        if self._sign is not None:
            message = self._sign(message)
        tmp_dir = self.spool_dir / "tmp"
        tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = tmp_dir / queue_id
        final = self.path_of(queue_id)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(message)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            # Never replace a queued message's file (a reused queue id):
            # its row would lose it when this enqueue's insert fails.  The
            # O_EXCL above orders two enqueues of one id, so the check holds.
            if final.exists():
                raise FileExistsError(f"spool file {final} exists")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.rename(tmp, final)
        fsync_dir(self.spool_dir)
        return len(message)

    async def counts(self) -> dict[str, int]:
        return await self.db.read(queue_store.count_by_state)

    # -- the operator's actions (gk queue, the web admin) ----------------------

    async def entries(self) -> list[QueueEntry]:
        """Every queued message with each recipient's state, oldest first."""
        return await self.db.read(queue_store.list_queue)

    async def retry_now(self, queue_id: str) -> int:
        """
        Make the deferred recipients of message C{queue_id} due now, and
        wake the delivery worker of this process (if it runs here; another
        process's worker takes them at its next round).

        @param queue_id: as typed (see L{normalize_queue_id}).
        @raise NotQueued: no such message.
        @return: how many recipients were deferred (pending ones are due already).
        """
        queue_id = normalize_queue_id(queue_id)
        now = datetime.datetime.now(datetime.UTC)
        try:
            count = await self.db.write(lambda s: queue_store.retry_now(s, queue_id, now))
        except LookupError:
            raise NotQueued(queue_id) from None
        if count and self.on_enqueue is not None:
            self.on_enqueue()
        return count

    async def delete(self, queue_id: str) -> str:
        """
        Remove message C{queue_id} and its spool file: it is not delivered
        and nobody is told (no bounce), as C{gk queue delete} does.

        @param queue_id: as typed (see L{normalize_queue_id}).
        @raise NotQueued: no such message.
        @return: the normalised queue id.
        """
        queue_id = normalize_queue_id(queue_id)
        try:
            await self.db.write(lambda s: queue_store.delete_queued(s, queue_id))
        except LookupError:
            raise NotQueued(queue_id) from None
        await deferToThread(self.path_of(queue_id).unlink, missing_ok=True)
        return queue_id

    def clean_spool(self, now: float | None = None) -> int:
        """
        Remove spool files that never got a row (blocking; at start-up).

        @return: how many were removed.
        """
        now = time.time() if now is None else now
        with self.db.transaction(write=False) as session:
            known = queue_store.spool_names(session)
        removed = 0
        for directory in (self.spool_dir, self.spool_dir / "tmp"):
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if not entry.is_file() or entry.name in known:
                    continue
                if now - entry.stat().st_mtime > STALE_SPOOL_SECONDS:
                    os.unlink(entry.path)
                    removed += 1
        return removed
