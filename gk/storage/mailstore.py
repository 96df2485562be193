"""
The mail store: Maildir++ files plus their index rows, kept in agreement.

Delivery order, and why it is crash-safe:

 1. the message is written to C{tmp/} and fsynced (invisible to readers);
 2. one transaction allocates the UID and inserts the index row;
 3. the file is renamed into C{new/} and the directory fsynced;
 4. an event is published.

A crash before 2 commits leaves only a stray file in C{tmp/}: neither a
file in C{new/} nor a row; the repair removes it once it is old.  A crash
between 2 and 3 leaves a committed row whose complete file is still in
C{tmp/}; the start-up repair finishes the rename.  So a message is either
delivered whole (file and row) or not at all, and the caller may
acknowledge it (SMTP 250) as soon as L{MailStore.deliver} returns.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.errors import GkError
from gk.events import EventBus, MailDelivered
from gk.storage import mail_index, maildir
from gk.storage.accounts import Account
from gk.storage.database import Database
from gk.storage.envelope import parse_envelope
from gk.storage.models import MailFolder, Message, User

#: A file in tmp/ with no index row older than this is a dead delivery.
STALE_TMP_SECONDS = 3600


class MailStoreError(GkError):
    pass


class QuotaExceeded(MailStoreError):
    pass


class NoSuchFolder(MailStoreError):
    pass


@dataclass(frozen=True)
class StoredMessage:
    """Where a delivered message ended up."""

    user_id: int
    folder: str
    uid: int
    uidvalidity: int
    size: int
    path: Path


@dataclass
class RepairReport:
    """What the start-up check found and fixed."""

    completed: int = 0  # committed rows whose file was still in tmp/
    relocated: int = 0  # rows whose file moved between new/ and cur/
    indexed: int = 0  # files with no row, now indexed
    dropped: int = 0  # rows whose file is gone
    stale_tmp: int = 0  # dead deliveries removed from tmp/
    details: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.completed, self.relocated, self.indexed, self.dropped, self.stale_tmp))


class MailStore:
    """
    Every user's mail: delivery, folder creation, reading, and repair.

    @param mail_root: C{data_dir/mail}.
    """

    log = Logger()

    def __init__(
        self,
        db: Database,
        mail_root: Path,
        events: EventBus,
        reactor: IReactorThreads | None = None,
    ) -> None:
        self.db = db
        self.mail_root = mail_root
        self.events = events
        self._reactor = reactor

    # -- layout ------------------------------------------------------------

    def user_root(self, email: str) -> Path:
        return maildir.user_root(self.mail_root, email)

    def folder_path(self, email: str, folder: str) -> Path:
        return maildir.folder_dir(self.user_root(email), folder)

    def create_default_folders_on_disk(self, email: str) -> None:
        """Create the Maildirs of a new account (blocking; idempotent)."""
        for name, _special in mail_index.DEFAULT_FOLDERS:
            maildir.ensure_maildir(self.folder_path(email, name))

    def archive_user_files(self, email: str) -> Path | None:
        """
        Move a deleted account's Maildir to C{mail/.deleted/DOMAIN/LOCAL.TIME}
        (blocking).  Nothing is destroyed: the operator purges it.
        """
        root = self.user_root(email)
        if not root.exists():
            return None
        base = self.mail_root / ".deleted" / root.parent.name / f"{root.name}.{int(time.time())}"
        target, n = base, 0
        while target.exists():
            # The same address deleted twice within a second.
            n += 1
            target = base.with_name(f"{base.name}.{n}")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.rename(root, target)
        return target

    # -- delivery ----------------------------------------------------------

    async def deliver(
        self,
        account: Account,
        data: bytes,
        folder: str = "INBOX",
        *,
        flags: dict[str, bool] | None = None,
        internal_date: datetime.datetime | None = None,
        check_quota: bool = True,
    ) -> StoredMessage:
        """
        Store C{data} in C{account}'s C{folder}; when this returns, the
        message is durable and indexed.

        @raise QuotaExceeded: the account's quota would be exceeded.
        @raise NoSuchFolder: the folder does not exist.
        """
        path = self.folder_path(account.email, folder)
        tmp = await self._in_thread(self._write_tmp, path, data, False)
        if tmp is None:
            # Not on disk.  A folder the index knows (created but not yet on
            # disk, or removed by an operator) is recreated rather than the
            # message lost; an unknown name must not leave a directory behind.
            def known(session: Session) -> bool:
                return mail_index.get_folder(session, account.id, folder) is not None

            if not await self.db.read(known):
                raise NoSuchFolder(f"{account.email} has no folder {folder!r}")
            tmp = await self._in_thread(self._write_tmp, path, data, True)
        try:
            when = internal_date or datetime.datetime.now(datetime.UTC)
            envelope = parse_envelope(data)

            def index(session: Session) -> tuple[int, int]:
                row = mail_index.get_folder(session, account.id, folder)
                if row is None:
                    raise NoSuchFolder(f"{account.email} has no folder {folder!r}")
                if check_quota and account.quota_bytes is not None:
                    # Lock the user first: on PostgreSQL concurrent deliveries
                    # would otherwise all fit in the same remaining space.
                    session.execute(select(User.id).where(User.id == account.id).with_for_update())
                    used = mail_index.mailbox_usage(session, account.id)
                    if used + tmp.size > account.quota_bytes:
                        raise QuotaExceeded(f"{account.email} is over quota")
                message = mail_index.add_message(
                    session,
                    row.id,
                    filename=tmp.name,
                    path=f"new/{tmp.name}",
                    size=tmp.size,
                    internal_date=when,
                    envelope=envelope,
                    flags=flags,
                )
                return message.uid, row.uidvalidity

            uid, uidvalidity = await self.db.write(index)
        except BaseException:
            await self._in_thread(maildir.discard, tmp)
            raise
        relative = await self._in_thread(maildir.publish, tmp)
        self.events.publish(
            MailDelivered(
                user_id=account.id,
                folder=folder,
                uid=uid,
                sender=envelope.from_,
                subject=envelope.subject,
            )
        )
        return StoredMessage(account.id, folder, uid, uidvalidity, tmp.size, path / relative)

    @staticmethod
    def _write_tmp(folder: Path, data: bytes, create: bool) -> maildir.TmpFile | None:
        """The written tmp file, or L{None} if the folder is not on disk and not C{create}."""
        if not (folder / "tmp").is_dir():
            if not create:
                return None
            maildir.ensure_maildir(folder)
        return maildir.write_tmp(folder, data)

    async def usage(self, account: Account) -> int:
        """Bytes of mail C{account} stores, over all folders."""
        return await self.db.read(lambda s: mail_index.mailbox_usage(s, account.id))

    async def read(self, account: Account, folder: str, uid: int) -> bytes:
        """The stored bytes of one message, exactly as delivered."""

        def locate(session: Session) -> str | None:
            row = mail_index.get_folder(session, account.id, folder)
            if row is None:
                raise NoSuchFolder(f"{account.email} has no folder {folder!r}")
            message = mail_index.get_message(session, row.id, uid)
            return None if message is None else message.path

        relative = await self.db.read(locate)
        if relative is None:
            raise MailStoreError(f"no message {uid} in {folder}")
        path = self.folder_path(account.email, folder) / relative
        data: bytes = await self._in_thread(path.read_bytes)
        return data

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        if self._reactor is None:
            return fn(*args)
        return await deferToThread(fn, *args)

    # -- repair ------------------------------------------------------------

    def repair(self, now: float | None = None) -> RepairReport:
        """
        Make the index agree with the files (blocking: run at start-up
        before the listeners, or in a thread).
        """
        report = RepairReport()
        now = time.time() if now is None else now
        with self.db.transaction() as session:
            for folder, email in mail_index.all_folders(session):
                self._repair_folder(session, folder, email, report, now)
        if report.changed:
            self.log.warn(
                "mail index repaired: {completed} completed, {relocated} relocated, "
                "{indexed} indexed, {dropped} dropped, {stale} stale tmp files removed",
                completed=report.completed,
                relocated=report.relocated,
                indexed=report.indexed,
                dropped=report.dropped,
                stale=report.stale_tmp,
            )
        return report

    def _repair_folder(
        self, session: Session, folder: MailFolder, email: str, report: RepairReport, now: float
    ) -> None:
        path = self.folder_path(email, folder.name)
        maildir.ensure_maildir(path)
        on_disk: dict[str, str] = {}  # base name -> relative path in new/ or cur/
        for sub in ("new", "cur"):
            for entry in os.scandir(path / sub):
                if entry.is_file() and not entry.name.startswith("."):
                    base, _info = maildir.split_info(entry.name)
                    on_disk[base] = f"{sub}/{entry.name}"
        in_tmp = {e.name: e for e in os.scandir(path / "tmp") if e.is_file()}

        rows = mail_index.messages_in(session, folder.id)
        known = set()
        for message in rows:
            known.add(message.filename)
            if message.filename in on_disk:
                actual = on_disk[message.filename]
                if actual != message.path:
                    message.path = actual
                    report.relocated += 1
            elif message.filename in in_tmp:
                tmp = maildir.TmpFile(
                    path, message.filename, in_tmp.pop(message.filename).stat().st_size
                )
                message.path = maildir.publish(tmp)
                report.completed += 1
                report.details.append(f"completed {email}/{folder.name}/{message.uid}")
            else:
                session.execute(delete(Message).where(Message.id == message.id))
                report.dropped += 1
                report.details.append(f"dropped {email}/{folder.name}/{message.uid}")

        for base, relative in sorted(on_disk.items()):
            if base in known:
                continue
            self._index_file(session, folder, path, base, relative)
            report.indexed += 1
            report.details.append(f"indexed {email}/{folder.name}/{relative}")

        for name, entry in in_tmp.items():
            if name not in known and now - entry.stat().st_mtime > STALE_TMP_SECONDS:
                os.unlink(entry.path)
                report.stale_tmp += 1

    @staticmethod
    def _index_file(
        session: Session, folder: MailFolder, path: Path, base: str, relative: str
    ) -> None:
        file = path / relative
        stat = file.stat()
        with open(file, "rb") as f:
            head = f.read(256 * 1024)
        _base, info = maildir.split_info(os.path.basename(relative))
        mail_index.add_message(
            session,
            folder.id,
            filename=base,
            path=relative,
            size=stat.st_size,
            internal_date=datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC),
            envelope=parse_envelope(head),
            flags=maildir.flags_from_info(info),
        )
