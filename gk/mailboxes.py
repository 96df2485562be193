"""
L{MailboxService}: a user's folders and the messages in them, as IMAP, the
web UI and the assistant see them.  It reads from the index (no message
file is opened for flags, sizes, dates or envelopes) and changes mail
through L{MailStore}, which keeps files and index in agreement and tells
every session through the event bus.

Every method takes the L{Account} it acts for: one user never reaches
another's folders, whatever name is asked for.
"""

from __future__ import annotations

import datetime

from sqlalchemy.orm import Session

from gk.storage import mail_folders, mail_index
from gk.storage.accounts import Account
from gk.storage.database import Database
from gk.storage.mail_changes import StoreResult
from gk.storage.mail_folders import FolderStatus, IndexedMessage, Selection
from gk.storage.mailstore import MailStore, NoSuchFolder, StoredMessage
from gk.storage.models import MailFolder


def canonical_name(name: str) -> str:
    """INBOX in any case is INBOX; other names are case-sensitive (RFC 3501 5.1)."""
    return "INBOX" if name.upper() == "INBOX" else name


class MailboxService:
    """See the module docstring."""

    def __init__(self, db: Database, mailstore: MailStore) -> None:
        self.db = db
        self.mailstore = mailstore

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
        def read(session: Session) -> list[IndexedMessage]:
            folder = self._folder(session, account, name)
            return mail_folders.changed_since(session, folder.id, modseq)

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

    @staticmethod
    def _folder(session: Session, account: Account, name: str) -> MailFolder:
        folder = mail_index.get_folder(session, account.id, canonical_name(name))
        if folder is None:
            raise NoSuchFolder(f"{account.email} has no folder {name!r}")
        return folder
