"""
Finding messages in the index by what a person asks about: who sent it,
to whom, its subject, when it arrived, whether it is read or flagged;
newest first, a page at a time.  No message file is opened here.

Pages are cut by keyset, not by offset: a L{Position} is the arrival time
and row id of the last message of a page, and the next page is what comes
strictly after it in the order C{(internal_date DESC, id DESC)}.  Each
folder is read on its own so that the C{(folder_id, internal_date)} index
gives its rows already in that order and the database stops after a page
(SQLite's index rows end with the rowid, so the tie-break costs nothing);
the folders' pages are then merged.  Messages arriving while someone pages
never shift the pages already seen.

Text criteria are matched case-insensitively as substrings (C{ILIKE} on
PostgreSQL; C{LIKE} on SQLite, where only ASCII letters fold).

Blocking functions on a L{Session}, for the database's reader threads.
"""

from __future__ import annotations

import datetime
import functools
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Row, Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from gk.storage.models import MailFolder, Message


@dataclass(frozen=True)
class FolderRef:
    """A folder by its row id, name and RFC 6154 special use."""

    id: int
    name: str
    special_use: str | None


@dataclass(frozen=True)
class FolderCount:
    """How many messages a folder holds, and how many of them are unread."""

    folder: FolderRef
    total: int
    unread: int


@dataclass(frozen=True, order=True)
class Position:
    """Where a page ended: its last message's arrival time and row id."""

    internal_date: datetime.datetime
    row_id: int


@dataclass(frozen=True)
class Criteria:
    """
    What the messages must match; every criterion given must hold.  Text
    criteria are substrings; C{since} is inclusive, C{before} exclusive,
    both on the arrival time.
    """

    sender: str = ""
    #: Matched against To, Cc and Bcc (Bcc is known for one's own sent mail).
    recipient: str = ""
    subject: str = ""
    since: datetime.datetime | None = None
    before: datetime.datetime | None = None
    #: True: only unread; False: only read; None: both.
    unread: bool | None = None
    flagged: bool | None = None
    #: Each matched against From, To, Cc and Subject: one of them must
    #: contain it (a search box's words).
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessageSummary:
    """One message as the index knows it: where it is, its envelope, flags."""

    row_id: int
    folder: FolderRef
    uid: int
    internal_date: datetime.datetime
    size: int
    #: The file's path relative to the folder's Maildir.
    path: str
    #: The Date header (None when missing or unreadable).
    date: datetime.datetime | None
    subject: str
    from_: str
    reply_to: str
    to: str
    cc: str
    bcc: str
    message_id: str
    in_reply_to: str
    references: str
    seen: bool
    answered: bool
    flagged: bool
    draft: bool

    @property
    def position(self) -> Position:
        return Position(self.internal_date, self.row_id)


_COLUMNS = (
    Message.id,
    Message.folder_id,
    Message.uid,
    Message.internal_date,
    Message.size,
    Message.path,
    Message.date,
    Message.subject,
    Message.from_,
    Message.reply_to,
    Message.to,
    Message.cc,
    Message.bcc,
    Message.message_id,
    Message.in_reply_to,
    Message.references,
    Message.seen,
    Message.answered,
    Message.flagged,
    Message.draft,
)


#: Statements are built once and reused: building a statement and its cache
#: key costs more than running it on a page of rows.
_FOLDER_REFS = (
    select(MailFolder.id, MailFolder.name, MailFolder.special_use)
    .where(MailFolder.user_id == bindparam("user_id"))
    .order_by(MailFolder.name)
)
_LOCATE = (
    select(*_COLUMNS, MailFolder.name, MailFolder.special_use)
    .join(MailFolder, Message.folder_id == MailFolder.id)
    .where(
        Message.folder_id == bindparam("folder_id"),
        Message.uid == bindparam("uid"),
        MailFolder.user_id == bindparam("user_id"),
    )
)


#: One pass over the covering index (folder_id, seen, ...) for all folders.
_COUNTS = (
    select(Message.folder_id, func.count(), func.count().filter(Message.seen.is_(False)))
    .where(
        Message.folder_id.in_(
            select(MailFolder.id).where(MailFolder.user_id == bindparam("user_id"))
        )
    )
    .group_by(Message.folder_id)
)


def folder_refs(session: Session, user_id: int) -> list[FolderRef]:
    """Every folder of the user, by name: one narrow query."""
    rows = session.connection().execute(_FOLDER_REFS, {"user_id": user_id})
    return [FolderRef(int(i), str(name), special) for i, name, special in rows]


def folder_counts(session: Session, user_id: int) -> list[FolderCount]:
    """
    Every folder of the user, by name, with its number of messages and of
    unread ones (C{\\Deleted} ones included, as IMAP STATUS counts them).
    """
    connection = session.connection()
    counts = {
        int(folder_id): (int(total), int(unread))
        for folder_id, total, unread in connection.execute(_COUNTS, {"user_id": user_id})
    }
    return [
        FolderCount(folder, *counts.get(folder.id, (0, 0)))
        for folder in folder_refs(session, user_id)
    ]


def find(
    session: Session,
    user_id: int,
    folder_ids: Iterable[int],
    criteria: Criteria,
    after: Position | None,
    limit: int,
) -> list[MessageSummary]:
    """
    Up to C{limit} messages of the user's folders C{folder_ids} that match
    C{criteria} and come after C{after}, newest first.  Messages marked
    C{\\Deleted} (waiting for an IMAP expunge) are left out.  Folder ids
    that are not the user's are ignored: one user never reaches another's
    mail, whatever ids are asked for.
    """
    wanted = set(folder_ids)
    folders = [f for f in folder_refs(session, user_id) if f.id in wanted]
    if not folders or limit <= 0:
        return []
    return _run_find(session, folders, criteria, after, limit, newer=False)


def find_newer(
    session: Session,
    user_id: int,
    folder_ids: Iterable[int],
    criteria: Criteria,
    before: Position,
    limit: int,
) -> list[MessageSummary]:
    """
    The page before a page that started at C{before}: up to C{limit}
    messages matching C{criteria} that come strictly before C{before} in
    the list (are newer), the ones nearest to it, newest first.  The
    same rules as L{find} otherwise.
    """
    wanted = set(folder_ids)
    folders = [f for f in folder_refs(session, user_id) if f.id in wanted]
    if not folders or limit <= 0:
        return []
    found = _run_find(session, folders, criteria, before, limit, newer=True)
    found.reverse()
    return found


def _run_find(
    session: Session,
    folders: list[FolderRef],
    criteria: Criteria,
    start: Position | None,
    limit: int,
    *,
    newer: bool,
) -> list[MessageSummary]:
    """Each folder's page, merged: newest first, or (C{newer}) oldest first."""
    dialect = session.get_bind().dialect.name
    statement = _find_statement(dialect, _shape(criteria, start), newer)
    params = _parameters(criteria, start, limit)
    connection = session.connection()
    pages = []
    for folder in folders:
        rows = connection.execute(statement, {**params, "folder_id": folder.id})
        pages.append([_summary(row, folder) for row in rows])
    if len(pages) == 1:
        return pages[0]
    merged = heapq.merge(*pages, key=lambda m: m.position, reverse=not newer)
    return [message for message, _ in zip(merged, range(limit), strict=False)]


def thread(
    session: Session,
    user_id: int,
    folder_ids: Iterable[int],
    message_ids: list[str],
    limit: int,
) -> list[MessageSummary]:
    """
    The messages of the user's folders C{folder_ids} that belong to the
    conversation C{message_ids} names (its root first, as in a References
    field, the message itself last), oldest first, at most C{limit}: those
    whose Message-ID is one of C{message_ids}, those replying to one of
    them (In-Reply-To), and those whose References name the root, which
    every reply down the conversation repeats (RFC 5322 3.6.4).  Messages
    marked C{\\Deleted} are left out, as in L{find}.

    The References match is a substring scan of the user's rows in those
    folders (no index serves it): bounded by the folders' sizes, once per
    reading of a message.
    """
    wanted = set(folder_ids)
    folders = {f.id: f for f in folder_refs(session, user_id) if f.id in wanted}
    ids = [i for i in dict.fromkeys(message_ids) if i][:_MAX_THREAD_IDS]
    if not folders or not ids or limit <= 0:
        return []
    root = ids[0]
    statement = (
        select(*_COLUMNS)
        .where(
            Message.folder_id.in_(list(folders)),
            Message.deleted.is_(False),
            or_(
                Message.message_id.in_(ids),
                Message.in_reply_to.in_(ids),
                Message.references.like("%" + _escape_like(root) + "%", escape="\\"),
            ),
        )
        .order_by(Message.internal_date, Message.id)
        .limit(limit)
    )
    rows = session.connection().execute(statement)
    return [_summary(row, folders[int(row[1])]) for row in rows]


#: Message-ids of a conversation looked up at most (a References field's worth).
_MAX_THREAD_IDS = 50


def locate(session: Session, user_id: int, folder_id: int, uid: int) -> MessageSummary | None:
    """The message C{uid} of folder C{folder_id}, if that folder is the user's."""
    row = (
        session.connection()
        .execute(_LOCATE, {"folder_id": folder_id, "uid": uid, "user_id": user_id})
        .first()
    )
    if row is None:
        return None
    name, special_use = tuple(row)[len(_COLUMNS) :]
    return _summary(row, FolderRef(folder_id, str(name), special_use))


#: Which criteria a query has: sender, recipient, subject, since, before,
#: unread, flagged, how many words, a position to start after.
_Shape = tuple[bool, bool, bool, bool, bool, bool, bool, int, bool]


def _shape(criteria: Criteria, after: Position | None) -> _Shape:
    return (
        bool(criteria.sender),
        bool(criteria.recipient),
        bool(criteria.subject),
        criteria.since is not None,
        criteria.before is not None,
        criteria.unread is not None,
        criteria.flagged is not None,
        len(criteria.words),
        after is not None,
    )


@functools.cache
def _find_statement(dialect: str, shape: _Shape, newer: bool = False) -> Select[Any]:
    """
    The query for criteria of this shape (each built once; callers bound
    the number of words): newest first after the position, or (C{newer})
    oldest first before it.
    """
    sender, recipient, subject, since, before, unread, flagged, words, after = shape
    # SQLite's LIKE ignores ASCII case already (and lower() knows no more);
    # ILIKE elsewhere.
    fold = dialect != "sqlite"

    def contains(column: Any, name: str) -> Any:
        pattern: Any = bindparam(name)
        return column.ilike(pattern, escape="\\") if fold else column.like(pattern, escape="\\")

    conditions: list[Any] = [
        Message.folder_id == bindparam("folder_id"),
        Message.deleted.is_(False),
    ]
    if sender:
        conditions.append(contains(Message.from_, "sender"))
    if recipient:
        conditions.append(
            or_(*(contains(c, "recipient") for c in (Message.to, Message.cc, Message.bcc)))
        )
    if subject:
        conditions.append(contains(Message.subject, "subject"))
    if since:
        conditions.append(Message.internal_date >= bindparam("since"))
    if before:
        conditions.append(Message.internal_date < bindparam("before"))
    if unread:
        conditions.append(Message.seen == bindparam("seen"))
    if flagged:
        conditions.append(Message.flagged == bindparam("flagged"))
    for n in range(words):
        columns = (Message.from_, Message.to, Message.cc, Message.subject)
        conditions.append(or_(*(contains(c, f"word{n}") for c in columns)))
    if after and newer:
        conditions.append(Message.internal_date >= bindparam("after_date"))
        conditions.append(
            or_(
                Message.internal_date > bindparam("after_date"),
                and_(
                    Message.internal_date == bindparam("after_date"),
                    Message.id > bindparam("after_id"),
                ),
            )
        )
    elif after:
        # The "<=" alone is an index range; the OR only breaks ties.
        conditions.append(Message.internal_date <= bindparam("after_date"))
        conditions.append(
            or_(
                Message.internal_date < bindparam("after_date"),
                and_(
                    Message.internal_date == bindparam("after_date"),
                    Message.id < bindparam("after_id"),
                ),
            )
        )
    order = (
        (Message.internal_date, Message.id)
        if newer
        else (Message.internal_date.desc(), Message.id.desc())
    )
    return (
        select(*_COLUMNS)
        .where(*conditions)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
    )


def _parameters(criteria: Criteria, after: Position | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    for name in ("sender", "recipient", "subject"):
        value = getattr(criteria, name)
        if value:
            params[name] = "%" + _escape_like(value) + "%"
    for n, word in enumerate(criteria.words):
        params[f"word{n}"] = "%" + _escape_like(word) + "%"
    if criteria.since is not None:
        params["since"] = criteria.since
    if criteria.before is not None:
        params["before"] = criteria.before
    if criteria.unread is not None:
        params["seen"] = not criteria.unread
    if criteria.flagged is not None:
        params["flagged"] = criteria.flagged
    if after is not None:
        params["after_date"] = after.internal_date
        params["after_id"] = after.row_id
    return params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _summary(row: Row[Any], folder: FolderRef) -> MessageSummary:
    """A row of L{_COLUMNS} (by position: Core results name columns by their SQL names)."""
    (
        row_id,
        _folder_id,
        uid,
        internal_date,
        size,
        path,
        date,
        subject,
        from_,
        reply_to,
        to,
        cc,
        bcc,
        message_id,
        in_reply_to,
        references,
        seen,
        answered,
        flagged,
        draft,
    ) = tuple(row)[: len(_COLUMNS)]
    return MessageSummary(
        row_id=int(row_id),
        folder=folder,
        uid=int(uid),
        internal_date=internal_date,
        size=int(size),
        path=str(path),
        date=date,
        subject=subject or "",
        from_=from_ or "",
        reply_to=reply_to or "",
        to=to or "",
        cc=cc or "",
        bcc=bcc or "",
        message_id=message_id or "",
        in_reply_to=in_reply_to or "",
        references=references or "",
        seen=bool(seen),
        answered=bool(answered),
        flagged=bool(flagged),
        draft=bool(draft),
    )
