"""
Folder operations and message copies (IMAP CREATE, DELETE, RENAME,
SUBSCRIBE, COPY, MOVE), blocking: the index side as functions on a
L{Session} for the database writer thread, and the Maildir side they need.
L{gk.mailboxes.MailboxService} puts them together in the orders below.

Names are IMAP names with C{"/"} as the hierarchy delimiter.  A valid name
(L{check_name}) has no empty component (so no leading, trailing or doubled
C{"/"}), no control characters, no surrogates, no LIST wildcards (C{*},
C{%}), at most L{MAX_NAME_LENGTH} characters and a Maildir++ directory name
of at most L{MAX_DIR_BYTES} bytes.  C{INBOX} in any case is INBOX; its
subfolders must spell it C{INBOX/...} (C{inbox/x} would otherwise be a
different folder than C{INBOX/x}).

The hierarchy stays closed: creating or renaming to C{a/b/c} creates the
missing C{a} and C{a/b}, and a folder with subfolders cannot be deleted
(L{FolderHasChildren}: RFC 3501 would keep the name as C{\\Noselect}, a
state the index does not have).

Crash safety.  The start-up repair (L{gk.storage.mailstore.MailStore.repair})
walks the folders of the index only; so each operation keeps, at every
instant, every indexed folder's Maildir holding every file its rows name,
and a directory no row names is never read (a later CREATE or RENAME onto
that name sets it aside under C{mail/.deleted/}, L{prepare_dirs}):

 - CREATE: rows inserted and flushed; Maildirs made and fsynced; commit.
   A crash before the commit leaves empty Maildirs no row names.
 - DELETE: rows deleted and committed; then the Maildir is moved under
   C{mail/.deleted/} (L{set_aside}), never destroyed.  A crash between
   leaves the directory at its old place, unindexed.
 - RENAME: in one transaction the rows move to new folder rows (same
   UIDVALIDITY, UIDs, flags), every file is hard-linked (copied where links
   are impossible) into the new Maildirs, the new directories are fsynced,
   then the commit; only then are the old links and Maildirs removed
   (L{remove_old}).  Before the commit the old names hold every file;
   after it the new names do: a crash anywhere leaves nothing for the
   repair to do but an unindexed directory.  (Renaming the directories
   instead would be one rename(2) each, but a crash between it and the
   commit would leave the index naming an empty place, which the repair
   would "fix" by dropping every row: the mail would sit unindexed.)
 - COPY and MOVE: exactly delivery's order: each file is linked (or copied
   and fsynced) into the target's C{tmp/}; one transaction allocates the
   new UIDs (and, for MOVE, removes the source rows); the files move into
   C{new/}, which is fsynced; for MOVE, the source files are unlinked last.
   A crash before the commit leaves stale C{tmp/} files (removed by the
   repair), after it rows whose files are in C{tmp/} (completed by the
   repair); a MOVE's source file not yet unlinked is indexed again in the
   source (a duplicate, never a loss), as after an interrupted EXPUNGE.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gk.storage import maildir
from gk.storage.envelope import Envelope
from gk.storage.mail_changes import SYSTEM_FLAGS, remove_where
from gk.storage.mail_index import (
    add_message,
    get_folder,
    list_folders,
    lock_folder,
    mailbox_usage,
    uid_filter,
)
from gk.storage.mailstore import MailStoreError, NoSuchFolder, QuotaExceeded
from gk.storage.models import MailFolder, Message, User

DELIMITER = "/"
#: The C{mail_folders.name} column.
MAX_NAME_LENGTH = 255
#: One directory entry on common file systems (NAME_MAX).
MAX_DIR_BYTES = 255

#: What a renamed folder keeps (all but its id and name).
_KEPT_ON_RENAME = (
    "special_use",
    "uidvalidity",
    "uidnext",
    "highest_modseq",
    "subscribed",
    "created",
)
#: The parsed envelope, as Message columns (C{Envelope.imap} is C{imap_envelope}).
_ENVELOPE = (
    *("date", "subject", "from_", "sender", "reply_to", "to", "cc", "bcc"),
    *("message_id", "in_reply_to", "references"),
)
#: os.link errors after which the file is copied instead.


class FolderExists(MailStoreError):
    """The name is taken (IMAP C{[ALREADYEXISTS]})."""


class FolderRefused(MailStoreError):
    """The operation can never succeed on this folder (IMAP C{[CANNOT]})."""


class InvalidFolderName(FolderRefused):
    pass


class FolderHasChildren(FolderRefused):
    pass


# -- names -------------------------------------------------------------------


def check_name(name: str) -> str:
    """
    C{name} if it is a valid folder name (C{"INBOX"} for INBOX in any case).

    @raise InvalidFolderName: see the module docstring.
    """
    if name.upper() == "INBOX":
        return "INBOX"
    if not name:
        raise InvalidFolderName("a folder name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidFolderName(f"folder names are at most {MAX_NAME_LENGTH} characters")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise InvalidFolderName("folder names cannot contain control characters")
        if ch in "*%":
            raise InvalidFolderName(f"folder names cannot contain {ch!r}")
    parts = name.split(DELIMITER)
    if not all(parts):
        raise InvalidFolderName(
            f"{name!r}: empty hierarchy level (a leading, trailing or double /)"
        )
    if parts[0].upper() == "INBOX" and parts[0] != "INBOX":
        raise InvalidFolderName(f"{name!r}: write INBOX in capitals for its subfolders")
    if len(maildir.folder_dir(Path(), name).name.encode()) > MAX_DIR_BYTES:
        raise InvalidFolderName(f"{name!r} is too long")
    return name


def _parents(name: str) -> list[str]:
    """C{"a/b/c"} -> C{["a", "a/b"]}."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def _children(session: Session, user_id: int, name: str) -> list[MailFolder]:
    """The folders below C{name}, by name."""
    prefix = name + DELIMITER
    return [f for f in list_folders(session, user_id) if f.name.startswith(prefix)]


def _existing(session: Session, user_id: int, name: str) -> MailFolder:
    folder = get_folder(session, user_id, name)
    if folder is None:
        raise NoSuchFolder(f"no folder {name!r}")
    return folder


# -- UIDVALIDITY -------------------------------------------------------------

_uidvalidity_lock = threading.Lock()
_last_uidvalidity = 0


def next_uidvalidity(session: Session, user_id: int) -> int:
    """
    A UIDVALIDITY for a new folder, greater than any this user's name may
    have had before (RFC 3501 2.3.1.1: a folder deleted and created again
    must not look like the old one): above the clock plus the 8 random bits
    of L{gk.storage.mail_index.new_uidvalidity}, above every folder the
    user has, and above the last one this process gave out.
    """
    global _last_uidvalidity
    highest = session.scalar(
        select(func.max(MailFolder.uidvalidity)).where(MailFolder.user_id == user_id)
    )
    with _uidvalidity_lock:
        value = max(int(time.time()) + 256, int(highest or 0) + 1, _last_uidvalidity + 1)
        _last_uidvalidity = value
    return value & 0xFFFFFFFF or 1


def _insert_folders(session: Session, user_id: int, names: list[str]) -> None:
    for name in names:
        session.add(
            MailFolder(
                user_id=user_id,
                name=name,
                uidvalidity=next_uidvalidity(session, user_id),
                uidnext=1,
                highest_modseq=1,
                subscribed=True,
            )
        )
        _flush(session, name)


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:  # the name was taken concurrently (PostgreSQL)
        raise FolderExists(f"folder {name!r} exists") from None


# -- folders -----------------------------------------------------------------


def create_folders(session: Session, user_id: int, name: str) -> list[str]:
    """
    Create folder C{name} and its missing parents; the names created,
    parents first.

    @raise FolderExists: C{name} exists (INBOX always does).
    @raise InvalidFolderName: see L{check_name}.
    """
    name = check_name(name)
    if get_folder(session, user_id, name) is not None:
        raise FolderExists(f"folder {name!r} exists")
    names = [p for p in _parents(name) if get_folder(session, user_id, p) is None] + [name]
    _insert_folders(session, user_id, names)
    return names


def delete_folder(session: Session, user_id: int, name: str) -> str:
    """
    Remove folder C{name} and its messages from the index; its name.

    @raise FolderRefused: C{name} is INBOX.
    @raise FolderHasChildren: it has subfolders (delete those first).
    @raise NoSuchFolder: no such folder.
    """
    if name.upper() == "INBOX":
        raise FolderRefused("INBOX cannot be deleted")
    folder = _existing(session, user_id, name)
    if _children(session, user_id, folder.name):
        raise FolderHasChildren(f"{name!r} has subfolders: delete them first")
    lock_folder(session, folder.id)
    session.execute(delete(Message).where(Message.folder_id == folder.id))
    session.execute(delete(MailFolder).where(MailFolder.id == folder.id))
    return folder.name


@dataclass(frozen=True)
class Renamed:
    """One folder of a rename, with the files its messages have."""

    old: str
    new: str
    #: C{(message id, file name, path)} of every message, now under C{new}.
    files: list[tuple[int, str, str]]


@dataclass(frozen=True)
class RenamePlan:
    #: Missing parents of the new name, created (parents first).
    created: list[str]
    #: The folder, then each of its subfolders.
    renamed: list[Renamed]


def rename_folders(session: Session, user_id: int, old: str, new: str) -> RenamePlan:
    """
    Rename C{old} and its subfolders (C{old/x} becomes C{new/x}), creating
    the missing parents of C{new}.  Each folder keeps its UIDVALIDITY, UIDs,
    flags and modseqs but gets a new row id, so that a delivery that looked
    the old name up before this commits fails instead of adding a row whose
    file would stay behind in the old directory.

    @raise NoSuchFolder: no folder C{old}.
    @raise FolderExists: C{new} (or a subfolder's new name) exists.
    @raise InvalidFolderName: C{new} is invalid or inside C{old}.
    @raise FolderRefused: C{old} is INBOX (see L{gk.mailboxes.MailboxService.rename_folder}).
    """
    if old.upper() == "INBOX":
        raise FolderRefused("INBOX is renamed by moving its messages")
    new = check_name(new)
    folder = _existing(session, user_id, old)
    if new == folder.name or get_folder(session, user_id, new) is not None:
        raise FolderExists(f"folder {new!r} exists")
    if new.startswith(folder.name + DELIMITER):
        raise InvalidFolderName(f"cannot move {folder.name!r} inside itself")
    family = [folder, *_children(session, user_id, folder.name)]
    names = {f.id: new + f.name[len(folder.name) :] for f in family}
    for name in names.values():
        if get_folder(session, user_id, check_name(name)) is not None:
            raise FolderExists(f"folder {name!r} exists")
    for f in sorted(family, key=lambda f: f.id):  # one lock order for everyone
        lock_folder(session, f.id)
    created = [p for p in _parents(new) if get_folder(session, user_id, p) is None]
    _insert_folders(session, user_id, created)
    renamed = []
    for f in family:
        moved = MailFolder(
            user_id=user_id, name=names[f.id], **{k: getattr(f, k) for k in _KEPT_ON_RENAME}
        )
        session.add(moved)
        _flush(session, moved.name)
        session.execute(update(Message).where(Message.folder_id == f.id).values(folder_id=moved.id))
        session.execute(delete(MailFolder).where(MailFolder.id == f.id))
        rows = session.execute(
            select(Message.id, Message.filename, Message.path).where(Message.folder_id == moved.id)
        )
        files = [(int(i), str(filename), str(path)) for i, filename, path in rows]
        renamed.append(Renamed(f.name, moved.name, files))
    return RenamePlan(created, renamed)


def relocate(session: Session, paths: dict[int, str]) -> None:
    """Set the C{path} of messages (by row id) whose file was found elsewhere."""
    for message_id, path in paths.items():
        session.execute(update(Message).where(Message.id == message_id).values(path=path))


def set_subscribed(session: Session, user_id: int, name: str, subscribed: bool) -> None:
    """@raise NoSuchFolder: no such folder."""
    _existing(session, user_id, name).subscribed = subscribed


# -- copies ------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """Where a message to copy has its file."""

    uid: int
    filename: str
    path: str
    size: int


@dataclass(frozen=True)
class Copied:
    source_uid: int
    uid: int
    sender: str
    subject: str


@dataclass(frozen=True)
class CopyResult:
    #: Ascending by source UID, hence by new UID.
    copied: list[Copied]
    #: C{(uid, path)} removed from the source (a move), ascending.
    removed: list[tuple[int, str]]


def source_files(session: Session, folder_id: int, uids: list[int] | None) -> list[SourceFile]:
    """The messages of C{uids} (every one if L{None}) that exist, ascending."""
    query = select(Message.uid, Message.filename, Message.path, Message.size).where(
        Message.folder_id == folder_id
    )
    wanted = None
    if uids is not None:
        if not uids:
            return []
        condition, wanted = uid_filter(uids)
        query = query.where(condition)
    rows = session.execute(query.order_by(Message.uid))
    return [
        SourceFile(int(u), str(f), str(p), int(s))
        for u, f, p, s in rows
        if wanted is None or u in wanted
    ]


def check_quota(session: Session, user_id: int, quota_bytes: int | None, adding: int) -> None:
    """
    @raise QuotaExceeded: C{adding} more bytes would exceed C{quota_bytes}.
    Locks the user first, as delivery does (and in the same order: before
    any folder), so that concurrent copies and deliveries add up.
    """
    if quota_bytes is None:
        return
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    if mailbox_usage(session, user_id) + adding > quota_bytes:
        raise QuotaExceeded("over quota")


def copy_rows(
    session: Session, source_id: int, target_id: int, names: dict[int, str], *, move: bool
) -> CopyResult:
    """
    Index copies in the target of the source messages C{names} maps (source
    UID -> the copy's file name in the target's C{tmp/}, published into
    C{new/} once this commits), in ascending source UID order so that the
    new UIDs ascend with them (RFC 4315 COPYUID).  Flags and keywords are
    copied (RFC 3501: \\Recent is not, it is no stored flag), each copy gets
    a new modseq.  Messages expunged since their file was linked are left
    out.  With C{move}, the source rows are removed (L{remove_messages}).
    """
    if move:
        for folder_id in sorted({source_id, target_id}):
            lock_folder(session, folder_id)
    rows = []
    if names:
        condition, wanted = uid_filter(names.keys())
        query = select(Message).where(Message.folder_id == source_id, condition)
        rows = [
            row
            for row in session.scalars(query.order_by(Message.uid))
            if wanted is None or row.uid in wanted
        ]
    copied = []
    for row in rows:
        message = add_message(
            session,
            target_id,
            filename=names[row.uid],
            path=f"new/{names[row.uid]}",
            size=row.size,
            internal_date=row.internal_date,
            envelope=Envelope(
                **{name: getattr(row, name) for name in _ENVELOPE},
                imap=row.imap_envelope or b"",
            ),
            flags={column: bool(getattr(row, column)) for column in SYSTEM_FLAGS.values()},
            keywords=row.keywords,
        )
        copied.append(Copied(row.uid, message.uid, row.from_, row.subject))
    removed = remove_messages(session, source_id, [c.source_uid for c in copied]) if move else []
    return CopyResult(copied, removed)


def remove_messages(session: Session, folder_id: int, uids: list[int]) -> list[tuple[int, str]]:
    """
    Remove exactly C{uids} from the index, whatever their flags (MOVE's
    expunge: other C{\\Deleted} messages stay); their C{(uid, path)},
    ascending, for the caller to unlink once this commits.
    """
    if not uids:
        return []
    condition, _wanted = uid_filter(uids)
    return remove_where(session, folder_id, condition, set(uids))
