"""
Reading a folder as a whole: its status (IMAP STATUS and SELECT), the UIDs
a session starts from, and rows or flag changes by UID, straight from the
index (no message file is opened).

Blocking functions on a L{Session}, for the database's worker threads.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, func, select
from sqlalchemy.orm import Session

from gk.storage.mail_changes import SYSTEM_FLAGS
from gk.storage.mail_index import uid_filter
from gk.storage.models import MailFolder, Message, VanishedMessage


@dataclass(frozen=True)
class FolderStatus:
    """What STATUS reports, and SELECT's counters."""

    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    messages: int
    unseen: int
    size: int
    special_use: str | None
    subscribed: bool


@dataclass(frozen=True)
class Selection:
    """What a session needs to open a folder."""

    status: FolderStatus
    #: Every UID, ascending.
    uids: list[int]
    #: The lowest UID without \\Seen (SELECT's UNSEEN), if any.
    first_unseen: int | None
    #: Keywords in use in the folder (for FLAGS and PERMANENTFLAGS).
    keywords: list[str]


@dataclass(frozen=True)
class IndexedMessage:
    """The index row of one message, as FETCH answers from it."""

    uid: int
    modseq: int
    size: int
    internal_date: datetime.datetime
    path: str
    flags: tuple[str, ...]
    #: Decoded header values from the index (SEARCH on them opens no file).
    date: datetime.datetime | None = None
    subject: str = ""
    from_: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    #: The IMAP ENVELOPE kept at delivery (None for rows from before it was).
    envelope: bytes | None = None


def status(session: Session, folder: MailFolder) -> FolderStatus:
    """The counters of C{folder} (one aggregate query)."""
    messages, size, unseen = session.execute(
        select(
            func.count(Message.id),
            func.coalesce(func.sum(Message.size), 0),
            func.count(Message.id).filter(Message.seen.is_(False)),
        ).where(Message.folder_id == folder.id)
    ).one()
    return FolderStatus(
        folder.name,
        folder.uidvalidity,
        folder.uidnext,
        folder.highest_modseq,
        int(messages),
        int(unseen),
        int(size),
        folder.special_use,
        folder.subscribed,
    )


def select_folder(session: Session, folder: MailFolder) -> Selection:
    """Everything SELECT needs: status, all UIDs, the first unseen, keywords."""
    uids = [
        int(uid)
        for uid in session.scalars(
            select(Message.uid).where(Message.folder_id == folder.id).order_by(Message.uid)
        )
    ]
    first_unseen = session.scalar(
        select(func.min(Message.uid)).where(
            and_(Message.folder_id == folder.id, Message.seen.is_(False))
        )
    )
    keywords: set[str] = set()
    for value in session.scalars(
        select(Message.keywords)
        .where(Message.folder_id == folder.id, Message.keywords != "")
        .distinct()
    ):
        keywords.update(value.split())
    return Selection(
        status(session, folder),
        uids,
        None if first_unseen is None else int(first_unseen),
        sorted(keywords),
    )


_ROW_COLUMNS = (
    Message.uid,
    Message.modseq,
    Message.size,
    Message.internal_date,
    Message.path,
    Message.keywords,
    Message.date,
    Message.subject,
    Message.from_,
    Message.to,
    Message.cc,
    Message.bcc,
    Message.imap_envelope,
    *(getattr(Message, column) for column in SYSTEM_FLAGS.values()),
)


def indexed(session: Session, folder_id: int, uids: list[int]) -> list[IndexedMessage]:
    """
    The rows of C{uids} that exist, ascending by UID.  Callers ask for a
    bounded number at a time (a few thousand: databases cap the parameters
    of one statement).
    """
    if not uids:
        return []
    condition, wanted = uid_filter(uids)
    rows = session.execute(
        select(*_ROW_COLUMNS).where(Message.folder_id == folder_id, condition).order_by(Message.uid)
    )
    return [_indexed(row) for row in rows if wanted is None or row.uid in wanted]


def changed_since(session: Session, folder_id: int, modseq: int) -> list[IndexedMessage]:
    """Messages whose flags changed (or that arrived) after C{modseq} (CONDSTORE)."""
    rows = session.execute(
        select(*_ROW_COLUMNS)
        .where(Message.folder_id == folder_id, Message.modseq > modseq)
        .order_by(Message.uid)
    )
    return [_indexed(row) for row in rows]


def vanished_since(session: Session, folder_id: int, modseq: int) -> list[int]:
    """
    UIDs expunged from the folder after C{modseq}, ascending (QRESYNC's
    VANISHED (EARLIER)).
    """
    uids = session.scalars(
        select(VanishedMessage.uid)
        .where(VanishedMessage.folder_id == folder_id, VanishedMessage.modseq > modseq)
        .order_by(VanishedMessage.uid)
    )
    return [int(uid) for uid in uids]


def _indexed(row: Row[Any]) -> IndexedMessage:
    values = tuple(row)
    uid, modseq, size, internal_date, path, keywords = values[:6]
    date, subject, from_, to, cc, bcc, envelope = values[6:13]
    flags = [name for name, on in zip(SYSTEM_FLAGS, values[13:], strict=True) if on]
    flags.extend(str(keywords).split())
    return IndexedMessage(
        int(uid),
        int(modseq),
        int(size),
        internal_date,
        str(path),
        tuple(flags),
        date,
        subject or "",
        from_ or "",
        to or "",
        cc or "",
        bcc or "",
        envelope,
    )
