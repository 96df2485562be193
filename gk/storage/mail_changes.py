"""
Changes to stored messages' metadata: flags and keywords, and expunging.

Blocking functions on a L{Session}, for the database's writer thread.
Each change takes a new modification sequence of the folder (RFC 7162
CONDSTORE): one value for all messages changed by one call, higher than any
before it, so that a client that last saw modseq N asks for what changed
since N and gets exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from gk.storage.mail_index import lock_folder
from gk.storage.models import Message, VanishedMessage

#: The system flags stored as columns, by IMAP name.
SYSTEM_FLAGS = {
    "\\Seen": "seen",
    "\\Answered": "answered",
    "\\Flagged": "flagged",
    "\\Deleted": "deleted",
    "\\Draft": "draft",
}


#: UIDs per statement: well within every database's parameter limit.
_CHUNK = 1000


@dataclass(frozen=True)
class FlagState:
    """A message's flags after a change."""

    uid: int
    modseq: int
    #: IMAP flag names: system flags (e.g. C{\\Seen}) then keywords.
    flags: tuple[str, ...]


@dataclass(frozen=True)
class StoreResult:
    #: Messages whose flags changed, with their new state.
    changed: list[FlagState]
    #: Messages left alone because they changed after C{unchanged_since}.
    modified: list[int]
    #: Messages asked for that already had the requested flags.
    unchanged: list[FlagState]


def flags_of(message: Message) -> tuple[str, ...]:
    """A message row's flags as IMAP names."""
    names = [name for name, column in SYSTEM_FLAGS.items() if getattr(message, column)]
    names.extend(keyword for keyword in message.keywords.split() if keyword)
    return tuple(names)


def store_flags(
    session: Session,
    folder_id: int,
    uids: list[int],
    mode: str,
    flags: set[str],
    unchanged_since: int | None = None,
) -> StoreResult:
    """
    Add (C{mode} "add"), remove ("remove") or set ("replace") C{flags} on
    the messages C{uids} of a folder.  System flags are matched
    case-insensitively; any other name is a keyword, kept as given.

    @param unchanged_since: RFC 7162 UNCHANGEDSINCE: a message whose modseq
        is higher is not changed and is listed in C{modified}.
    @raise LookupError: the folder does not exist.
    """
    if mode not in ("add", "remove", "replace"):
        raise ValueError(mode)
    system = {SYSTEM_FLAGS[f] for f in _system_names(flags)}
    keywords = [f for f in flags if _canonical(f) is None]
    folder = lock_folder(session, folder_id)
    rows = [
        row
        for start in range(0, len(uids), _CHUNK)
        for row in session.scalars(
            select(Message).where(
                Message.folder_id == folder_id, Message.uid.in_(uids[start : start + _CHUNK])
            )
        )
    ]
    rows.sort(key=lambda row: row.uid)
    new_modseq = folder.highest_modseq + 1
    changed: list[FlagState] = []
    modified: list[int] = []
    unchanged: list[FlagState] = []
    for row in rows:
        if unchanged_since is not None and row.modseq > unchanged_since:
            modified.append(row.uid)
            continue
        values = _new_values(row, mode, system, keywords)
        if not values:
            unchanged.append(FlagState(row.uid, row.modseq, flags_of(row)))
            continue
        for column, value in values.items():
            setattr(row, column, value)
        row.modseq = new_modseq
        changed.append(FlagState(row.uid, new_modseq, flags_of(row)))
    if changed:
        folder.highest_modseq = new_modseq
    session.flush()
    return StoreResult(changed, modified, unchanged)


def expunge(
    session: Session, folder_id: int, uids: list[int] | None = None
) -> list[tuple[int, str]]:
    """
    Remove the messages flagged C{\\Deleted} (only those in C{uids}, when
    given: UID EXPUNGE) from the index; their C{(uid, path)}, ascending,
    so that the caller removes the files once this commits.

    @raise LookupError: the folder does not exist.
    """
    return remove_where(
        session, folder_id, Message.deleted.is_(True), None if uids is None else set(uids)
    )


def remove_where(
    session: Session, folder_id: int, condition: Any, uids: set[int] | None = None
) -> list[tuple[int, str]]:
    """
    Remove a folder's messages matching C{condition} (and, when given,
    whose UID is in C{uids}) from the index, with one new modseq for the
    folder; their C{(uid, path)}, ascending, for the caller to unlink once
    this commits.  Any number of messages: statements stay within the
    databases' parameter limits.

    @raise LookupError: the folder does not exist.
    """
    folder = lock_folder(session, folder_id)
    query = select(Message.id, Message.uid, Message.path).where(
        Message.folder_id == folder_id, condition
    )
    rows = [
        row
        for row in session.execute(query.order_by(Message.uid))
        if uids is None or row.uid in uids
    ]
    if not rows:
        return []
    for start in range(0, len(rows), _CHUNK):
        ids = [row.id for row in rows[start : start + _CHUNK]]
        session.execute(delete(Message).where(Message.id.in_(ids)))
    modseq = folder.highest_modseq + 1
    folder.highest_modseq = modseq
    # Remembered for QRESYNC: a client that last saw an older modseq is told
    # these UIDs vanished (RFC 7162 3.2.5.1).
    session.execute(
        insert(VanishedMessage),
        [{"folder_id": folder_id, "uid": row.uid, "modseq": modseq} for row in rows],
    )
    session.flush()
    return [(int(row.uid), str(row.path)) for row in rows]


def _canonical(name: str) -> str | None:
    """The system flag C{name} stands for (any case), or L{None} for a keyword."""
    for flag in SYSTEM_FLAGS:
        if name.lower() == flag.lower():
            return flag
    return None


def _system_names(flags: set[str]) -> set[str]:
    return {canonical for canonical in map(_canonical, flags) if canonical is not None}


def _new_values(
    row: Message, mode: str, system: set[str], keywords: list[str]
) -> dict[str, object]:
    """The columns to change on C{row} (empty when nothing changes)."""
    values: dict[str, object] = {}
    for column in SYSTEM_FLAGS.values():
        current = bool(getattr(row, column))
        if mode == "replace":
            wanted = column in system
        elif column in system:
            wanted = mode == "add"
        else:
            continue
        if wanted != current:
            values[column] = wanted
    current_keywords = row.keywords.split()
    if mode == "replace":
        new_keywords = list(dict.fromkeys(keywords))
    elif mode == "add":
        new_keywords = current_keywords + [k for k in keywords if k not in current_keywords]
    else:
        new_keywords = [k for k in current_keywords if k not in keywords]
    if new_keywords != current_keywords:
        values["keywords"] = " ".join(new_keywords)
    return values
