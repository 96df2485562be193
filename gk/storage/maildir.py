"""
Maildir++ on disk: where each folder lives, unique names, atomic writes.

Pure filesystem code, blocking: callers on the reactor run it in a thread.
The layout is Maildir++ as Dovecot and Courier use it, so an operator's
tools keep working: a user's INBOX is the Maildir at
``mail/<domain>/<local-part>/`` and a folder ``A/B`` is ``.A.B/`` inside it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

SUBDIRS = ("tmp", "new", "cur")

#: IMAP flag <-> Maildir info letter (``:2,`` suffix), in Maildir's sort order.
FLAG_LETTERS = {"draft": "D", "flagged": "F", "answered": "R", "seen": "S", "deleted": "T"}

_counter = itertools.count()


def _escape(component: str, unsafe: str) -> str:
    """Percent-encode characters that would change the path's meaning."""
    out: list[str] = []
    for i, ch in enumerate(component):
        if ch in unsafe or ch == "%" or ord(ch) < 0x20 or ch == "\x7f" or (i == 0 and ch == "."):
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def user_root(mail_root: Path, email: str) -> Path:
    """The INBOX Maildir of C{email} (lower-case C{local@domain})."""
    local, _, domain = email.rpartition("@")
    if not local or not domain:
        raise ValueError(f"not an address: {email!r}")
    return mail_root / _escape(domain, "/") / _escape(local, "/")


def folder_dir(root: Path, name: str) -> Path:
    """
    The Maildir of folder C{name} ("/"-separated IMAP name) under a user's
    C{root}.  Dots inside a name are escaped so C{"a.b"} and C{"a/b"} differ.
    """
    if name.upper() == "INBOX":
        return root
    parts = name.split("/")
    if any(not p for p in parts):
        raise ValueError(f"bad folder name: {name!r}")
    return root / ("." + ".".join(_escape(p, "./") for p in parts))


def ensure_maildir(path: Path) -> None:
    """Create C{path} with its tmp/new/cur (mode 0700), if missing."""
    for sub in SUBDIRS:
        (path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.name.startswith("."):
        # Maildir++ marks folders with an empty "maildirfolder" file.
        (path / "maildirfolder").touch(exist_ok=True)


def unique_name() -> str:
    """A Maildir unique name: time, microseconds, pid, counter, randomness, host."""
    now = time.time()
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return (
        f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}"
        f"Q{next(_counter)}R{secrets.token_hex(4)}.{host}"
    )


def split_info(filename: str) -> tuple[str, str]:
    """C{"NAME:2,FS"} -> C{("NAME", "FS")}; no info -> C{(filename, "")}."""
    base, sep, info = filename.partition(":2,")
    return base, info if sep else ""


def flags_from_info(info: str) -> dict[str, bool]:
    return {flag: letter in info for flag, letter in FLAG_LETTERS.items()}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TmpFile:
    """A message written and fsynced in C{tmp/}, not yet visible."""

    folder: Path
    name: str
    size: int

    @property
    def path(self) -> Path:
        return self.folder / "tmp" / self.name


def write_tmp(folder: Path, data: bytes) -> TmpFile:
    """
    Write C{data} to a new file in C{folder/tmp} and fsync it.  Nothing is
    visible to readers of the Maildir until L{publish}.
    """
    name = unique_name()
    path = folder / "tmp" / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return TmpFile(folder, name, len(data))


def publish(tmp: TmpFile) -> str:
    """
    Move a written file from tmp/ into new/ atomically and make the rename
    durable.

    @return: the path relative to the folder, C{new/NAME}.
    """
    relative = move_to_new(tmp)
    fsync_dir(tmp.folder / "new")
    return relative


def move_to_new(tmp: TmpFile) -> str:
    """
    Move a written file from tmp/ into new/ atomically; durable only once
    new/ is fsynced (L{publish} does both, a group commit fsyncs once for
    several files).

    @return: the path relative to the folder, C{new/NAME}.
    """
    target = tmp.folder / "new" / tmp.name
    try:
        os.rename(tmp.path, target)
    except FileNotFoundError:
        # The start-up repair may have completed this very rename.
        if not target.exists():
            raise
    return f"new/{tmp.name}"


def discard(tmp: TmpFile) -> None:
    tmp.path.unlink(missing_ok=True)
