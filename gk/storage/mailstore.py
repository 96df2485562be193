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

Each delivery writes its file on its own (in a thread, while earlier
deliveries are being committed); then the deliveries waiting take steps
2 and 3 together (a group commit): one transaction inserts all the rows
(one fsync of SQLite's WAL, one trip to the database writer thread), the
files are renamed, and each new/ directory is fsynced once.  Each delivery
still returns only after its own steps 1 to 3.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.errors import GkError
from gk.events import EventBus, FlagsChanged, MailDelivered, MessageExpunged
from gk.storage import mail_changes, mail_index, maildir
from gk.storage.accounts import Account
from gk.storage.database import Database
from gk.storage.envelope import Envelope, parse_envelope
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


@dataclass(eq=False)
class _Delivery:
    """One delivery on its way through the group commit."""

    account: Account
    folder: str
    path: Path
    when: datetime.datetime
    flags: dict[str, bool] | None
    check_quota: bool
    #: The file in tmp/, written and fsynced before the group commit.
    tmp: maildir.TmpFile
    envelope: Envelope
    done: Deferred[StoredMessage] = field(default_factory=Deferred)


class _GroupCommit:
    """
    Group commit of deliveries: every delivery that arrives while a batch
    is in the writer thread goes into the next batch, and a batch takes one
    trip to the writer thread and one transaction for all its index rows
    (on SQLite one fsync of the WAL) instead of one each.

    The guarantee of each delivery is unchanged: it completes only after
    its file was fsynced in tmp/, the transaction holding its row committed,
    and the file was renamed into new/ with the directory fsynced.  If a
    shared transaction fails, its deliveries are retried one transaction
    each, so that one delivery's error (quota, a vanished folder) is
    reported to it alone.
    """

    def __init__(self, db: Database, run: Callable[[list[_Delivery]], list[Outcome]]) -> None:
        self._db = db
        self._run = run
        self._queue: list[_Delivery] = []
        self._busy = False

    async def submit(self, delivery: _Delivery) -> StoredMessage:
        self._queue.append(delivery)
        self._next()
        return await delivery.done

    def _next(self) -> None:
        if self._busy or not self._queue:
            return
        batch, self._queue = self._queue, []
        self._busy = True
        Deferred.fromCoroutine(self._process(batch))

    async def _process(self, batch: list[_Delivery]) -> None:
        try:
            outcomes = await self._db.in_writer(lambda: self._run(batch))
        except BaseException as e:  # the database service stopped, or a bug
            outcomes = [e] * len(batch)
        finally:
            # The writer takes the next batch while these complete.
            self._busy = False
            self._next()
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                delivery.done.errback(outcome)
            else:
                delivery.done.callback(outcome)


Outcome = StoredMessage | BaseException


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
        self._group_commit = _GroupCommit(db, self._deliver_batch)

    # -- layout ------------------------------------------------------------

    def user_root(self, email: str) -> Path:
        return maildir.user_root(self.mail_root, email)

    def folder_path(self, email: str, folder: str) -> Path:
        """
        The Maildir of a folder name.

        @raise NoSuchFolder: the name cannot be a folder (an empty level,
            as in C{"a//b"} or C{"x/"}), so no folder has it.
        """
        try:
            return maildir.folder_dir(self.user_root(email), folder)
        except ValueError:
            raise NoSuchFolder(folder) from None

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

        Concurrent deliveries are committed together (L{_GroupCommit}); each
        still returns only when its own file and row are durable.

        @raise QuotaExceeded: the account's quota would be exceeded.
        @raise NoSuchFolder: the folder does not exist.
        """
        path = self.folder_path(account.email, folder)
        # The file is written before the group commit, so that the writes
        # of the next batch overlap the commit of this one.
        written = await self._in_thread(self._write_tmp, path, data, False)
        if written is None:
            # Not on disk: recreate a folder the index knows (created but
            # not yet on disk, or removed by an operator) rather than lose
            # the message; an unknown name must not leave a directory behind.
            def known(session: Session) -> bool:
                return mail_index.folder_key(session, account.id, folder) is not None

            if not await self.db.read(known):
                raise NoSuchFolder(f"{account.email} has no folder {folder!r}")
            written = await self._in_thread(self._write_tmp, path, data, True)
        tmp, envelope = written
        delivery = _Delivery(
            account,
            folder,
            path,
            internal_date or datetime.datetime.now(datetime.UTC),
            flags,
            check_quota,
            tmp,
            envelope,
        )
        # On failure the batch removed the file if its row was not committed;
        # otherwise the start-up repair finds both.
        stored = await self._group_commit.submit(delivery)
        self.events.publish(
            MailDelivered(
                user_id=account.id,
                folder=folder,
                uid=stored.uid,
                sender=envelope.from_,
                subject=envelope.subject,
            )
        )
        return stored

    def _deliver_batch(self, batch: list[_Delivery]) -> list[Outcome]:
        """
        The group commit of C{batch} (blocking, in the writer thread): one
        transaction for every row, then the renames into new/, then one
        fsync of each new/ directory the batch touched.
        """
        outcomes: list[Outcome | None] = [None] * len(batch)
        rows: dict[int, tuple[int, int]] = {}
        try:
            with self.db.transaction() as session:
                folders: dict[tuple[int, str], tuple[int, int] | None] = {}
                for i, delivery in enumerate(batch):
                    rows[i] = self._index(session, delivery, folders)
        except Exception as e:
            rows = {}
            if len(batch) == 1:
                outcomes[0] = e
            else:
                for i, delivery in enumerate(batch):
                    try:
                        with self.db.transaction() as session:
                            rows[i] = self._index(session, delivery, {})
                    except Exception as each:
                        outcomes[i] = each
        moved: dict[Path, list[int]] = {}
        for i, delivery in enumerate(batch):
            if i not in rows:
                maildir.discard(delivery.tmp)  # not committed: nothing refers to it
                continue
            try:
                # A failure here is reported, but the row is committed: the
                # file stays in tmp/ for the start-up repair to complete.
                maildir.move_to_new(delivery.tmp)
            except Exception as e:
                outcomes[i] = e
                continue
            moved.setdefault(delivery.path, []).append(i)
        for folder, indexes in moved.items():
            try:
                maildir.fsync_dir(folder / "new")
            except Exception as e:
                for i in indexes:
                    outcomes[i] = e
                continue
            for i in indexes:
                delivery = batch[i]
                uid, uidvalidity = rows[i]
                outcomes[i] = StoredMessage(
                    delivery.account.id,
                    delivery.folder,
                    uid,
                    uidvalidity,
                    delivery.tmp.size,
                    delivery.path / "new" / delivery.tmp.name,
                )
        assert all(outcome is not None for outcome in outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _index(
        session: Session,
        delivery: _Delivery,
        folders: dict[tuple[int, str], tuple[int, int] | None],
    ) -> tuple[int, int]:
        """
        Insert a delivery's row (blocking); its UID and the folder's
        UIDVALIDITY.  C{folders} caches folder lookups within the transaction.
        """
        account, folder, tmp, envelope = (
            delivery.account,
            delivery.folder,
            delivery.tmp,
            delivery.envelope,
        )
        if (account.id, folder) not in folders:
            folders[account.id, folder] = mail_index.folder_key(session, account.id, folder)
        key = folders[account.id, folder]
        if key is None:
            raise NoSuchFolder(f"{account.email} has no folder {folder!r}")
        folder_id, uidvalidity = key
        if delivery.check_quota and account.quota_bytes is not None:
            # Lock the user first: on PostgreSQL concurrent deliveries
            # would otherwise all fit in the same remaining space.
            session.execute(select(User.id).where(User.id == account.id).with_for_update())
            used = mail_index.mailbox_usage(session, account.id)
            if used + tmp.size > account.quota_bytes:
                raise QuotaExceeded(f"{account.email} is over quota")
        message = mail_index.add_message(
            session,
            folder_id,
            filename=tmp.name,
            path=f"new/{tmp.name}",
            size=tmp.size,
            internal_date=delivery.when,
            envelope=envelope,
            flags=delivery.flags,
        )
        return message.uid, uidvalidity

    @staticmethod
    def _write_tmp(
        folder: Path, data: bytes, create: bool
    ) -> tuple[maildir.TmpFile, Envelope] | None:
        """
        The written tmp file and the parsed envelope, or L{None} if the
        folder is not on disk and not C{create}.
        """
        if not (folder / "tmp").is_dir():
            if not create:
                return None
            maildir.ensure_maildir(folder)
        return maildir.write_tmp(folder, data), parse_envelope(data)

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

    async def read_paths(
        self, account: Account, folder: str, paths: list[str]
    ) -> list[bytes | None]:
        """
        The bytes of several messages of one folder, by their index C{path},
        in one trip to a thread (L{None} for a file that is gone).
        """
        directory = self.folder_path(account.email, folder)

        def read_all() -> list[bytes | None]:
            found: list[bytes | None] = []
            for path in paths:
                try:
                    found.append((directory / path).read_bytes())
                except OSError:
                    found.append(None)
            return found

        result: list[bytes | None] = await self._in_thread(read_all)
        return result

    # -- changes -------------------------------------------------------------

    async def set_flags(
        self,
        account: Account,
        folder: str,
        uids: list[int],
        mode: str,
        flags: set[str],
        unchanged_since: int | None = None,
    ) -> mail_changes.StoreResult:
        """
        Add, remove or replace flags (see L{mail_changes.store_flags}) and
        tell every session (L{FlagsChanged}).

        @raise NoSuchFolder: the folder does not exist.
        """

        def change(session: Session) -> mail_changes.StoreResult:
            return mail_changes.store_flags(
                session,
                self._folder_id(session, account, folder),
                uids,
                mode,
                flags,
                unchanged_since,
            )

        result = await self.db.write(change)
        if result.changed:
            self.events.publish(
                FlagsChanged(
                    user_id=account.id,
                    folder=folder,
                    uids=tuple(state.uid for state in result.changed),
                    modseq=result.changed[0].modseq,
                )
            )
        return result

    async def expunge(
        self, account: Account, folder: str, uids: list[int] | None = None
    ) -> list[int]:
        """
        Remove the messages flagged C{\\Deleted} (of C{uids}, if given) for
        good: index rows first, then the files; tell every session
        (L{MessageExpunged}).  The UIDs removed, ascending.

        @raise NoSuchFolder: the folder does not exist.
        """

        def remove(session: Session) -> list[tuple[int, str]]:
            return mail_changes.expunge(session, self._folder_id(session, account, folder), uids)

        removed = await self.db.write(remove)
        if not removed:
            return []
        directory = self.folder_path(account.email, folder)
        # A file left behind by a crash here has no row: the start-up repair
        # would index it again, so unlink before reporting the expunge.
        await self._in_thread(_unlink_all, [directory / path for _uid, path in removed])
        expunged = [uid for uid, _path in removed]
        self.events.publish(
            MessageExpunged(user_id=account.id, folder=folder, uids=tuple(expunged))
        )
        return expunged

    @staticmethod
    def _folder_id(session: Session, account: Account, folder: str) -> int:
        key = mail_index.folder_key(session, account.id, folder)
        if key is None:
            raise NoSuchFolder(f"{account.email} has no folder {folder!r}")
        return key[0]

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


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
