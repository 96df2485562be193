"""
The Maildir side of folder operations and message copies (see
L{gk.storage.folder_ops} for the order of steps that keeps them crash-safe):
setting a Maildir aside, preparing directories, linking or copying message
files, publishing them and removing the old ones.  Blocking: run in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from pathlib import Path

from gk.storage import maildir
from gk.storage.folder_ops import Renamed, SourceFile

#: Errors that mean "this file system cannot hard-link here": copy instead.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def set_aside(mail_root: Path, root: Path, folder: Path) -> Path | None:
    """
    Move a folder's Maildir to C{mail/.deleted/DOMAIN/LOCAL/NAME.TIME}
    (like L{gk.storage.mailstore.MailStore.archive_user_files}: nothing is
    destroyed, the operator purges it); where it went, or L{None} if absent.
    """
    if not os.path.lexists(folder):
        return None
    base = (
        mail_root
        / ".deleted"
        / root.parent.name
        / root.name
        / f"{folder.name[1:]}.{int(time.time())}"
    )
    target, n = base, 0
    while os.path.lexists(target):
        n += 1
        target = base.with_name(f"{base.name}.{n}")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.rename(folder, target)
    return target


def prepare_dirs(mail_root: Path, root: Path, names: Iterable[str]) -> None:
    """
    Make fresh, durable Maildirs for folders the index is about to have.
    A directory already there belongs to no folder (left by a crash, see
    L{gk.mailboxes}): it is set aside, so that no old mail reappears.
    """
    for name in names:
        path = maildir.folder_dir(root, name)
        set_aside(mail_root, root, path)
        maildir.ensure_maildir(path)
        maildir.fsync_dir(path)
    maildir.fsync_dir(root)


def link_or_copy(source: Path, target: Path) -> None:
    """Make C{target} a hard link to C{source}, or an fsynced copy where none can be made."""
    try:
        os.link(source, target)
        return
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    stat = source.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


class _Finder:
    """Finds a message's file in a Maildir where the row says, or where it went."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._scanned: dict[str, str] | None = None

    def find(self, filename: str, path: str) -> str | None:
        """The file's path relative to the folder (possibly C{tmp/NAME}), or L{None}."""
        for relative in (path, f"tmp/{filename}"):
            if (self.folder / relative).is_file():
                return relative
        if self._scanned is None:
            self._scanned = {}
            for sub in ("new", "cur"):
                try:
                    entries = list(os.scandir(self.folder / sub))
                except FileNotFoundError:
                    continue
                for entry in entries:
                    base, _info = maildir.split_info(entry.name)
                    self._scanned[base] = f"{sub}/{entry.name}"
        return self._scanned.get(filename)


def link_to_tmp(source: Path, target: Path, files: list[SourceFile]) -> dict[int, maildir.TmpFile]:
    """
    Link (or copy) each message's file into C{target/tmp} under a new
    unique name: source UID -> the file.  A message without a file is left
    out (the start-up repair drops its row).
    """
    maildir.ensure_maildir(target)
    finder = _Finder(source)
    made: dict[int, maildir.TmpFile] = {}
    try:
        for file in files:
            relative = finder.find(file.filename, file.path)
            if relative is None:
                continue
            tmp = maildir.TmpFile(target, maildir.unique_name(), file.size)
            link_or_copy(source / relative, tmp.path)
            made[file.uid] = tmp
    except BaseException:
        discard(made.values())
        raise
    return made


def publish_all(tmps: Iterable[maildir.TmpFile]) -> None:
    """Move committed copies into C{new/}, then fsync each C{new/} once."""
    folders = set()
    for tmp in tmps:
        maildir.move_to_new(tmp)
        folders.add(tmp.folder)
    for folder in folders:
        maildir.fsync_dir(folder / "new")


def discard(tmps: Iterable[maildir.TmpFile]) -> None:
    for tmp in tmps:
        maildir.discard(tmp)


def unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def transfer(root: Path, renamed: list[Renamed]) -> tuple[dict[int, str], dict[str, list[str]]]:
    """
    Link (or copy) every message file of renamed folders from the old
    Maildir to the same place in the new one (a committed delivery's file
    still in C{tmp/} goes to C{new/}) and make it durable.  The new Maildirs
    must exist (L{prepare_dirs}).

    @return: the row paths that change (row id -> path), and per old name
        the files transferred (relative paths), for L{remove_old}.
    """
    paths: dict[int, str] = {}
    transferred: dict[str, list[str]] = {}
    for folder in renamed:
        old_dir, new_dir = (
            maildir.folder_dir(root, folder.old),
            maildir.folder_dir(root, folder.new),
        )
        finder = _Finder(old_dir)
        done = transferred[folder.old] = []
        for message_id, filename, path in folder.files:
            relative = finder.find(filename, path)
            if relative is None:
                continue  # no file: the start-up repair drops the row
            destination = f"new/{filename}" if relative.startswith("tmp/") else relative
            link_or_copy(old_dir / relative, new_dir / destination)
            done.append(relative)
            if destination != path:
                paths[message_id] = destination
        for sub in ("new", "cur"):
            maildir.fsync_dir(new_dir / sub)
    return paths, transferred


def remove_old(mail_root: Path, root: Path, transferred: dict[str, list[str]]) -> None:
    """
    After a rename committed: remove the transferred links from the old
    Maildirs and the Maildirs themselves; one that still holds anything (a
    delivery that raced the rename) is set aside instead.
    """
    for name, files in transferred.items():
        old_dir = maildir.folder_dir(root, name)
        unlink_all(old_dir / relative for relative in files)
        try:
            (old_dir / "maildirfolder").unlink(missing_ok=True)
            for directory in [*(old_dir / sub for sub in maildir.SUBDIRS), old_dir]:
                with contextlib.suppress(FileNotFoundError):
                    directory.rmdir()
        except OSError:
            set_aside(mail_root, root, old_dir)
