"""
Mail index data access: folders and message rows.

Blocking functions on a L{Session}, for the database's worker threads.
"""

from __future__ import annotations

import datetime
import secrets
import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from gk.storage.envelope import Envelope
from gk.storage.models import MailFolder, Message, User

#: The folders every account gets, with their RFC 6154 special use.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


def new_uidvalidity() -> int:
    """A UIDVALIDITY unlikely to repeat (time-based, 32 bits, non-zero)."""
    return (int(time.time()) ^ secrets.randbits(8)) & 0xFFFFFFFF or 1


def create_folder(
    session: Session, user_id: int, name: str, special_use: str | None = None
) -> MailFolder:
    existing = get_folder(session, user_id, name)
    if existing is not None:
        return existing
    folder = MailFolder(
        user_id=user_id,
        name=name,
        special_use=special_use,
        uidvalidity=new_uidvalidity(),
        uidnext=1,
        highest_modseq=1,
    )
    session.add(folder)
    session.flush()
    return folder


def create_default_folders(session: Session, user_id: int) -> None:
    for name, special_use in DEFAULT_FOLDERS:
        create_folder(session, user_id, name, special_use)


def get_folder(session: Session, user_id: int, name: str) -> MailFolder | None:
    if name.upper() == "INBOX":
        name = "INBOX"
    return session.scalar(
        select(MailFolder).where(MailFolder.user_id == user_id, MailFolder.name == name)
    )


def list_folders(session: Session, user_id: int) -> list[MailFolder]:
    return list(
        session.scalars(
            select(MailFolder).where(MailFolder.user_id == user_id).order_by(MailFolder.name)
        )
    )


def all_folders(session: Session) -> list[tuple[MailFolder, str]]:
    """Every folder with its owner's address, for the start-up repair."""
    rows = session.execute(
        select(MailFolder, User.email)
        .join(User, MailFolder.user_id == User.id)
        .order_by(User.email, MailFolder.name)
    )
    return [(f, e) for f, e in rows]


def lock_folder(session: Session, folder_id: int) -> MailFolder:
    """
    The folder row, locked for the rest of the transaction (PostgreSQL's
    C{FOR UPDATE}; SQLite's single writer serialises anyway) so that two
    deliveries never take the same UID.
    """
    # populate_existing: the folder may already be in the session's identity
    # map (loaded before the lock was taken); without it the locked SELECT
    # would hand back that stale object and two deliveries could read the
    # same uidnext on PostgreSQL.
    folder = session.scalar(
        select(MailFolder)
        .where(MailFolder.id == folder_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if folder is None:
        raise LookupError(f"folder {folder_id} vanished")
    return folder


def mailbox_usage(session: Session, user_id: int) -> int:
    """Bytes of mail the user stores, over all folders."""
    total = session.scalar(
        select(func.coalesce(func.sum(Message.size), 0))
        .join(MailFolder, Message.folder_id == MailFolder.id)
        .where(MailFolder.user_id == user_id)
    )
    return int(total or 0)


#: Takes the folder's next UID and modseq in one statement.  On PostgreSQL
#: the UPDATE locks the row until the transaction ends (SQLite's single
#: writer serialises anyway), so two deliveries never take the same UID.
_ALLOCATE_UID = (
    update(MailFolder)
    .where(MailFolder.id == bindparam("folder_id"))
    .values(uidnext=MailFolder.uidnext + 1, highest_modseq=MailFolder.highest_modseq + 1)
    .returning(MailFolder.uidnext, MailFolder.highest_modseq)
)

_INSERT_MESSAGE = insert(Message)
#: Message attribute name -> column key, for Core inserts (C{from_} is C{from_addr}).
_COLUMN_KEYS = {name: column.key for name, column in Message.__mapper__.columns.items()}

_FOLDER_KEY = select(MailFolder.id, MailFolder.uidvalidity).where(
    MailFolder.user_id == bindparam("user_id"), MailFolder.name == bindparam("name")
)


def folder_key(session: Session, user_id: int, name: str) -> tuple[int, int] | None:
    """
    The id and UIDVALIDITY of a user's folder, or L{None}: what a delivery
    needs, without loading the ORM object (the cheap lookup of the hot path).
    """
    if name.upper() == "INBOX":
        name = "INBOX"
    row = session.connection().execute(_FOLDER_KEY, {"user_id": user_id, "name": name}).first()
    return None if row is None else (int(row[0]), int(row[1]))


def add_message(
    session: Session,
    folder_id: int,
    *,
    filename: str,
    path: str,
    size: int,
    internal_date: datetime.datetime,
    envelope: Envelope,
    flags: dict[str, bool] | None = None,
    keywords: str = "",
) -> Message:
    """
    Index one message in the folder; allocates its UID and modseq.

    Core statements rather than an ORM flush (this is every delivery's hot
    path); the returned L{Message} is attached to C{session} as persistent,
    without a further query.
    """
    connection = session.connection()
    allocated = connection.execute(_ALLOCATE_UID, {"folder_id": folder_id}).first()
    if allocated is None:
        raise LookupError(f"folder {folder_id} vanished")
    uid, modseq = int(allocated[0]) - 1, int(allocated[1])
    # A folder object already in the session is stale after the UPDATE.
    stale = session.identity_map.get(session.identity_key(MailFolder, folder_id))
    if stale is not None:
        session.expire(stale, ["uidnext", "highest_modseq"])
    flags = flags or {}
    values = {
        "folder_id": folder_id,
        "uid": uid,
        "filename": filename,
        "path": path,
        "size": size,
        "internal_date": internal_date,
        "modseq": modseq,
        "seen": flags.get("seen", False),
        "answered": flags.get("answered", False),
        "flagged": flags.get("flagged", False),
        "deleted": flags.get("deleted", False),
        "draft": flags.get("draft", False),
        "keywords": keywords,
        "date": envelope.date,
        "subject": envelope.subject,
        "from_": envelope.from_,
        "sender": envelope.sender,
        "reply_to": envelope.reply_to,
        "to": envelope.to,
        "cc": envelope.cc,
        "bcc": envelope.bcc,
        "message_id": envelope.message_id,
        "in_reply_to": envelope.in_reply_to,
        "references": envelope.references,
        "imap_envelope": envelope.imap or None,
    }
    result = connection.execute(
        _INSERT_MESSAGE, {_COLUMN_KEYS[key]: value for key, value in values.items()}
    )
    key = result.inserted_primary_key
    assert key is not None
    message = Message(id=key[0], **values)
    make_transient_to_detached(message)
    session.add(message)
    return message


def messages_in(session: Session, folder_id: int) -> list[Message]:
    return list(
        session.scalars(select(Message).where(Message.folder_id == folder_id).order_by(Message.uid))
    )


def get_message(session: Session, folder_id: int, uid: int) -> Message | None:
    return session.scalar(select(Message).where(Message.folder_id == folder_id, Message.uid == uid))


def uid_filter(uids: Collection[int]) -> tuple[Any, set[int] | None]:
    """
    A condition selecting the messages of C{uids} (a non-empty collection),
    and the set to filter the rows by in Python when the condition is wider:
    a short list is one C{IN}; a long one (a command on 1:* of a big
    folder) is the range from its lowest to its highest UID, since
    databases cap the parameters of one statement.
    """
    if len(uids) <= _IN_LIMIT:
        return Message.uid.in_(list(uids)), None
    return Message.uid.between(min(uids), max(uids)), set(uids)


#: UIDs given as parameters of one C{IN}, at most.
_IN_LIMIT = 500
