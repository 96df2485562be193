"""
L{MailboxService}: a user's folders and the messages in them, as IMAP, the
web UI and the assistant see them.  It reads from the index (no message
file is opened for flags, sizes, dates or envelopes) and changes mail
through L{MailStore}, which keeps files and index in agreement and tells
every session through the event bus.

Every method takes the L{Account} it acts for: one user never reaches
another's folders, whatever name is asked for.

Folder operations and copies (CREATE, DELETE, RENAME, SUBSCRIBE, COPY,
MOVE) put together the blocking steps of L{gk.storage.folder_ops}, whose
docstring gives their crash-safe order: database work through C{db}, file
work off the reactor (in the writer thread where it must happen inside
the transaction, else in a thread of its own).  One account's folder
operations and copies run one at a time (in this process), so that, e.g.,
a DELETE setting its directory aside never meets a CREATE of the same
name.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.orm import Session
from twisted.internet.defer import DeferredLock
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.events import Event, FolderChanged, MailDelivered, MessageExpunged
from gk.storage import folder_files, folder_ops, mail_folders, mail_index, mail_search, maildir
from gk.storage.accounts import Account
from gk.storage.database import Database
from gk.storage.folder_ops import (
    CopyResult,
    FolderExists,
    FolderHasChildren,
    FolderRefused,
    InvalidFolderName,
    RenamePlan,
)
from gk.storage.mail_changes import StoreResult
from gk.storage.mail_folders import FolderStatus, IndexedMessage, Selection
from gk.storage.mail_search import (
    Criteria,
    FolderCount,
    FolderRef,
    MessageSummary,
    Position,
)
from gk.storage.mailstore import MailStore, NoSuchFolder, StoredMessage
from gk.storage.models import MailFolder

__all__ = [
    "FolderExists",
    "FolderHasChildren",
    "FolderRefused",
    "InvalidFolderName",
    "MailboxService",
    "NoSuchFolder",
    "canonical_name",
]


def canonical_name(name: str) -> str:
    """INBOX in any case is INBOX; other names are case-sensitive (RFC 3501 5.1)."""
    return "INBOX" if name.upper() == "INBOX" else name


class MailboxService:
    """See the module docstring."""

    log = Logger()

    def __init__(self, db: Database, mailstore: MailStore) -> None:
        self.db = db
        self.mailstore = mailstore
        self._locks: dict[int, DeferredLock] = {}

    async def folders(self, account: Account) -> list[FolderStatus]:
        """Every folder of C{account} with its counters, by name."""

        def read(session: Session) -> list[FolderStatus]:
            return [
                mail_folders.status(session, folder)
                for folder in mail_index.list_folders(session, account.id)
            ]

        return await self.db.read(read)

    async def status(self, account: Account, name: str) -> FolderStatus:
        """@raise NoSuchFolder: C{account} has no such folder."""

        def read(session: Session) -> FolderStatus:
            return mail_folders.status(session, self._folder(session, account, name))

        return await self.db.read(read)

    async def select(self, account: Account, name: str) -> Selection:
        """What opening a folder needs. @raise NoSuchFolder: no such folder."""

        def read(session: Session) -> Selection:
            return mail_folders.select_folder(session, self._folder(session, account, name))

        return await self.db.read(read)

    async def indexed(self, account: Account, name: str, uids: list[int]) -> list[IndexedMessage]:
        """The index rows of C{uids} that still exist, ascending."""

        def read(session: Session) -> list[IndexedMessage]:
            return mail_folders.indexed(session, self._folder(session, account, name).id, uids)

        return await self.db.read(read)

    async def changed_since(self, account: Account, name: str, modseq: int) -> list[IndexedMessage]:
        """Messages changed or added after C{modseq}, ascending (CONDSTORE)."""

        def read(session: Session) -> list[IndexedMessage]:
            folder = self._folder(session, account, name)
            return mail_folders.changed_since(session, folder.id, modseq)

        return await self.db.read(read)

    async def vanished_since(self, account: Account, name: str, modseq: int) -> list[int]:
        """UIDs expunged from the folder after C{modseq}, ascending (QRESYNC)."""

        def read(session: Session) -> list[int]:
            folder = self._folder(session, account, name)
            return mail_folders.vanished_since(session, folder.id, modseq)

        return await self.db.read(read)

    async def read(self, account: Account, name: str, uid: int) -> bytes:
        """A message's bytes, exactly as stored."""
        return await self.mailstore.read(account, canonical_name(name), uid)

    async def set_flags(
        self,
        account: Account,
        name: str,
        uids: list[int],
        mode: str,
        flags: set[str],
        unchanged_since: int | None = None,
    ) -> StoreResult:
        return await self.mailstore.set_flags(
            account, canonical_name(name), uids, mode, flags, unchanged_since
        )

    async def expunge(
        self, account: Account, name: str, uids: list[int] | None = None
    ) -> list[int]:
        return await self.mailstore.expunge(account, canonical_name(name), uids)

    async def append(
        self,
        account: Account,
        name: str,
        data: bytes,
        flags: set[str] | None = None,
        internal_date: datetime.datetime | None = None,
    ) -> StoredMessage:
        """
        Store a message a client uploads (IMAP APPEND, a draft, a Sent copy).

        @raise QuotaExceeded: it would not fit in the account's quota.
        @raise NoSuchFolder: no such folder.
        """
        system = {f.lower().lstrip("\\"): True for f in flags or set() if f.startswith("\\")}
        stored = await self.mailstore.deliver(
            account, data, canonical_name(name), flags=system, internal_date=internal_date
        )
        keywords = {f for f in flags or set() if not f.startswith("\\")}
        if keywords:
            await self.mailstore.set_flags(account, stored.folder, [stored.uid], "add", keywords)
        return stored

    # -- finding messages (the assistant, the web UI) --------------------------

    async def folder_refs(self, account: Account) -> list[FolderRef]:
        """C{account}'s folders (row id, name, special use) by name, without counters."""
        return await self.db.read(lambda s: mail_search.folder_refs(s, account.id))

    async def folder_counts(self, account: Account) -> list[FolderCount]:
        """
        C{account}'s folders by name with their numbers of messages and of
        unread ones: what a folder list shows, in one query (L{folders}
        gives IMAP STATUS's every counter, a query per folder).
        """
        return await self.db.read(lambda s: mail_search.folder_counts(s, account.id))

    async def find_messages(
        self,
        account: Account,
        folder_ids: list[int],
        criteria: Criteria,
        after: Position | None = None,
        limit: int = 20,
    ) -> list[MessageSummary]:
        """
        Up to C{limit} messages of C{account}'s folders C{folder_ids}
        matching C{criteria}, newest first, after C{after} (the
        L{MessageSummary.position} that ended the previous page); see
        L{mail_search.find}.  Ids of folders that are not C{account}'s
        match nothing.
        """
        return await self.db.read(
            lambda s: mail_search.find(s, account.id, folder_ids, criteria, after, limit)
        )

    async def find_newer(
        self,
        account: Account,
        folder_ids: list[int],
        criteria: Criteria,
        before: Position,
        limit: int = 20,
    ) -> list[MessageSummary]:
        """
        The page before the one that started at C{before} (the
        L{MessageSummary.position} of its first message): up to C{limit}
        messages newer than it, newest first; see L{mail_search.find_newer}.
        """
        return await self.db.read(
            lambda s: mail_search.find_newer(s, account.id, folder_ids, criteria, before, limit)
        )

    async def thread(
        self, account: Account, folder_ids: list[int], message_ids: list[str], limit: int = 100
    ) -> list[MessageSummary]:
        """
        The messages of C{account}'s folders C{folder_ids} in the
        conversation of C{message_ids} (its root first: a message's
        References, In-Reply-To and Message-ID), oldest first; see
        L{mail_search.thread}.
        """
        return await self.db.read(
            lambda s: mail_search.thread(s, account.id, folder_ids, message_ids, limit)
        )

    async def locate(self, account: Account, folder_id: int, uid: int) -> MessageSummary | None:
        """
        The message C{uid} of the folder with row id C{folder_id}, or None
        when there is none or the folder is not C{account}'s.
        """
        return await self.db.read(lambda s: mail_search.locate(s, account.id, folder_id, uid))

    async def read_files(
        self, account: Account, messages: list[MessageSummary]
    ) -> list[bytes | None]:
        """
        The bytes of C{messages} (found for C{account}), in their order,
        one trip to a thread per folder; None for a file that is gone.
        """
        by_folder: dict[str, list[int]] = {}
        for i, message in enumerate(messages):
            by_folder.setdefault(message.folder.name, []).append(i)
        found: list[bytes | None] = [None] * len(messages)
        for name, indexes in by_folder.items():
            paths = [messages[i].path for i in indexes]
            for i, data in zip(
                indexes, await self.mailstore.read_paths(account, name, paths), strict=True
            ):
                found[i] = data
        return found

    # -- folders -------------------------------------------------------------

    async def create_folder(self, account: Account, name: str) -> None:
        """
        IMAP CREATE: folder C{name} and its missing parents (each a
        L{FolderChanged} "created", parents first).  One trailing "/" is
        dropped (RFC 3501 6.3.3: it only announces subfolders).

        @raise FolderExists: C{name} exists (INBOX always does).
        @raise InvalidFolderName: see L{folder_ops.check_name}.
        """
        async with self._serialised(account):
            created = await self._create(account, name.removesuffix(folder_ops.DELIMITER))
        self._publish(
            FolderChanged(user_id=account.id, folder=n, action="created") for n in created
        )

    async def delete_folder(self, account: Account, name: str) -> None:
        """
        IMAP DELETE: the folder's rows go, its Maildir is set aside under
        C{mail/.deleted/} (L{folder_files.set_aside}), not destroyed.

        @raise FolderRefused: C{name} is INBOX.
        @raise FolderHasChildren: it has subfolders (gk does not keep a
            deleted name as C{\\Noselect} the way RFC 3501 allows).
        @raise NoSuchFolder: no such folder.
        """
        mail_root, root = self._roots(account)
        async with self._serialised(account):
            deleted = await self.db.write(
                lambda s: folder_ops.delete_folder(s, account.id, canonical_name(name))
            )
            try:
                await deferToThread(
                    folder_files.set_aside, mail_root, root, maildir.folder_dir(root, deleted)
                )
            except Exception:
                # Deleted all the same: a directory no row names is never read.
                self.log.failure("folder {name!r} deleted, its Maildir stays", name=deleted)
        self._publish([FolderChanged(user_id=account.id, folder=deleted, action="deleted")])

    async def rename_folder(self, account: Account, old: str, new: str) -> None:
        """
        IMAP RENAME of C{old} and its subfolders (C{old/x} -> C{new/x}),
        creating the missing parents of C{new}; each folder keeps its
        UIDVALIDITY and UIDs.  Events: L{FolderChanged} "created" for the
        parents, "renamed" (C{new_name}) for each folder.

        Renaming INBOX (RFC 3501 6.3.5) creates C{new} and moves every INBOX
        message there (new UIDs); INBOX stays, empty, with its subfolders.
        Events: "created", then those of a L{move}.

        @raise NoSuchFolder: no folder C{old}.
        @raise FolderExists: C{new} (or a subfolder's new name) exists.
        @raise InvalidFolderName: C{new} is invalid or inside C{old}.
        """
        old = canonical_name(old)
        mail_root, root = self._roots(account)

        def rename(session: Session) -> tuple[RenamePlan, dict[str, list[str]]]:
            plan = folder_ops.rename_folders(session, account.id, old, new)
            made = [*plan.created, *(folder.new for folder in plan.renamed)]
            folder_files.prepare_dirs(mail_root, root, made)
            paths, transferred = folder_files.transfer(root, plan.renamed)
            folder_ops.relocate(session, paths)
            return plan, transferred

        async with self._serialised(account):
            if old == "INBOX":
                created = await self._create(account, new)
                self._publish(
                    FolderChanged(user_id=account.id, folder=n, action="created") for n in created
                )
                result = await self._copy(account, "INBOX", None, created[-1], move=True)
                self._publish_copy(account, "INBOX", created[-1], result)
                return
            plan, transferred = await self.db.write(rename)
            try:
                await deferToThread(folder_files.remove_old, mail_root, root, transferred)
            except Exception:
                # Renamed all the same: a directory no row names is never read.
                self.log.failure("folder {name!r} renamed, its old Maildirs stay", name=old)
        events: list[Event] = [
            FolderChanged(user_id=account.id, folder=n, action="created") for n in plan.created
        ]
        events.extend(
            FolderChanged(user_id=account.id, folder=f.old, action="renamed", new_name=f.new)
            for f in plan.renamed
        )
        self._publish(events)

    async def subscribe(self, account: Account, name: str, subscribed: bool) -> None:
        """
        IMAP SUBSCRIBE (C{True}) and UNSUBSCRIBE (C{False}).

        @raise NoSuchFolder: no such folder (subscriptions live on folders).
        """
        await self.db.write(
            lambda s: folder_ops.set_subscribed(s, account.id, canonical_name(name), subscribed)
        )

    # -- copies ----------------------------------------------------------------

    async def copy(
        self, account: Account, source: str, uids: list[int], target: str
    ) -> list[tuple[int, int]]:
        """
        IMAP COPY: copy the messages C{uids} of C{source} (those that exist)
        to C{target} with their flags and internal dates; each copy's file
        is a hard link where the file system allows.  One L{MailDelivered}
        per copy.

        @return: C{(source UID, new UID)} pairs, both ascending (RFC 4315
            COPYUID).
        @raise NoSuchFolder: no folder C{source} or C{target}.
        @raise QuotaExceeded: the copies would not fit in the account's quota.
        """
        source, target = canonical_name(source), canonical_name(target)
        async with self._serialised(account):
            result = await self._copy(account, source, uids, target, move=False)
        self._publish_copy(account, source, target, result)
        return [(c.source_uid, c.uid) for c in result.copied]

    async def move(
        self, account: Account, source: str, uids: list[int], target: str
    ) -> list[tuple[int, int]]:
        """
        RFC 6851 MOVE: L{copy}, and in the same transaction the removal of
        exactly those messages from C{source}, whatever their flags (other
        C{\\Deleted} messages stay).  No quota check: the account's usage
        does not change.  Events: those of L{copy}, then one
        L{MessageExpunged} in C{source}.

        @return: as L{copy}.
        @raise NoSuchFolder: no folder C{source} or C{target}.
        """
        source, target = canonical_name(source), canonical_name(target)
        async with self._serialised(account):
            result = await self._copy(account, source, uids, target, move=True)
        self._publish_copy(account, source, target, result)
        return [(c.source_uid, c.uid) for c in result.copied]

    async def _create(self, account: Account, name: str) -> list[str]:
        mail_root, root = self._roots(account)

        def create(session: Session) -> list[str]:
            names = folder_ops.create_folders(session, account.id, name)
            folder_files.prepare_dirs(mail_root, root, names)
            return names

        return await self.db.write(create)

    async def _copy(
        self, account: Account, source: str, uids: list[int] | None, target: str, *, move: bool
    ) -> CopyResult:
        _mail_root, root = self._roots(account)
        try:
            source_dir = maildir.folder_dir(root, source)
            target_dir = maildir.folder_dir(root, target)
        except ValueError:
            raise NoSuchFolder(target) from None  # a name with an empty level: no such folder

        def read(session: Session) -> list[folder_ops.SourceFile]:
            source_id = self._folder(session, account, source).id
            self._folder(session, account, target)
            return folder_ops.source_files(session, source_id, uids)

        files = await self.db.read(read)
        if not files:
            return CopyResult([], [])
        tmps = await deferToThread(folder_files.link_to_tmp, source_dir, target_dir, files)
        names = {uid: tmp.name for uid, tmp in tmps.items()}
        adding = sum(tmp.size for tmp in tmps.values())

        def commit(session: Session) -> CopyResult:
            source_id = self._folder(session, account, source).id
            target_id = self._folder(session, account, target).id
            if not move:
                folder_ops.check_quota(session, account.id, account.quota_bytes, adding)
            return folder_ops.copy_rows(session, source_id, target_id, names, move=move)

        try:
            result = await self.db.write(commit)
        except BaseException:
            await deferToThread(folder_files.discard, tmps.values())
            raise
        copied = {c.source_uid for c in result.copied}
        await deferToThread(
            _finish_copy,
            [tmps[uid] for uid in sorted(copied)],
            [tmp for uid, tmp in tmps.items() if uid not in copied],
            [source_dir / path for _uid, path in result.removed],
        )
        return result

    def _publish_copy(self, account: Account, source: str, target: str, result: CopyResult) -> None:
        events: list[Event] = [
            MailDelivered(
                user_id=account.id, folder=target, uid=c.uid, sender=c.sender, subject=c.subject
            )
            for c in result.copied
        ]
        if result.removed:
            events.append(
                MessageExpunged(
                    user_id=account.id,
                    folder=source,
                    uids=tuple(uid for uid, _path in result.removed),
                )
            )
        self._publish(events)

    def _publish(self, events: Iterable[Event]) -> None:
        for event in events:
            self.mailstore.events.publish(event)

    def _roots(self, account: Account) -> tuple[Path, Path]:
        """The mail root and C{account}'s INBOX Maildir."""
        return self.mailstore.mail_root, self.mailstore.user_root(account.email)

    @asynccontextmanager
    async def _serialised(self, account: Account) -> AsyncIterator[None]:
        """One folder operation or copy of C{account} at a time."""
        lock = self._locks.setdefault(account.id, DeferredLock())
        await lock.acquire()
        try:
            yield
        finally:
            lock.release()
            if not lock.locked:
                del self._locks[account.id]

    @staticmethod
    def _folder(session: Session, account: Account, name: str) -> MailFolder:
        folder = mail_index.get_folder(session, account.id, canonical_name(name))
        if folder is None:
            raise NoSuchFolder(f"{account.email} has no folder {name!r}")
        return folder


def _finish_copy(
    published: list[maildir.TmpFile], unused: list[maildir.TmpFile], removed: list[Path]
) -> None:
    """
    After a copy committed: its files into C{new/} (durably) first, then
    files no row names dropped, then (a move) the source files unlinked.
    """
    folder_files.publish_all(published)
    folder_files.discard(unused)
    folder_files.unlink_all(removed)
