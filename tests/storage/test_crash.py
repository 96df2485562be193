"""
Delivery is atomic across a real crash: a child process delivers through
MailStore and is SIGKILLed at a chosen point (it announces the point on
stdout and blocks there; nothing here sleeps or guesses timings).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest_twisted

from gk.app import GkApp
from gk.storage import mail_index
from gk.storage.accounts import Account
from gk.storage.mailstore import STALE_TMP_SECONDS
from gk.storage.models import Message

CHILD = Path(__file__).with_name("crash_child.py")

MESSAGE = (
    b"From: sender@remote.test\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: =?UTF-8?Q?survives_a_crash_=E2=9C=93?=\r\n"
    b"\r\n" + b"A body line that must arrive intact.\r\n" * 2000
)


def deliver_and_kill(app: GkApp, tmp_path: Path, account: Account, point: str) -> str:
    """Run the child until it reports C{point}, SIGKILL it; return the marker line."""
    assert app.config.path is not None
    message_file = tmp_path / "message.eml"
    message_file.write_bytes(MESSAGE)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(app.config.path), account.email, point, str(message_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.startswith(f"KILL-POINT {point}"):
            child.kill()
            _out, err = child.communicate()
            raise AssertionError(f"child did not reach {point}: {line!r}\n{err}")
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        assert child.returncode == -signal.SIGKILL
        return line
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def listing(app: GkApp, account: Account) -> dict[str, list[str]]:
    root = app.mailstore.folder_path(account.email, "INBOX")
    return {sub: sorted(os.listdir(root / sub)) for sub in ("tmp", "new", "cur")}


async def inbox_rows(app: GkApp, account: Account) -> list[Message]:
    def load(session):
        folder = mail_index.get_folder(session, account.id, "INBOX")
        assert folder is not None
        return mail_index.messages_in(session, folder.id)

    return await app.db.read(load)


@pytest_twisted.ensureDeferred
async def test_killed_before_the_index_commit_leaves_no_message(
    app: GkApp, alice: Account, tmp_path: Path
) -> None:
    marker = deliver_and_kill(app, tmp_path, alice, "before-commit")
    assert "uid=1" in marker

    # Not delivered: no visible file, no row, the UID not consumed.
    files = listing(app, alice)
    assert files["new"] == [] and files["cur"] == []
    assert await inbox_rows(app, alice) == []
    # Only the complete, invisible tmp file is left ...
    [name] = files["tmp"]
    tmp_file = app.mailstore.folder_path(alice.email, "INBOX") / "tmp" / name
    assert tmp_file.read_bytes() == MESSAGE

    # ... which the repair keeps while it might be a delivery in progress,
    report = app.mailstore.repair()
    assert not report.changed
    assert tmp_file.exists()
    # and removes once it is stale; it is never indexed.
    report = app.mailstore.repair(now=time.time() + STALE_TMP_SECONDS + 1)
    assert report.stale_tmp == 1
    assert report.indexed == 0
    assert listing(app, alice) == {"tmp": [], "new": [], "cur": []}
    assert await inbox_rows(app, alice) == []

    # The database is not left locked, and the next delivery takes UID 1.
    assert (await app.mailstore.deliver(alice, b"Subject: next\r\n\r\n")).uid == 1


@pytest_twisted.ensureDeferred
async def test_killed_after_the_commit_is_completed_by_the_start_up_repair(
    app: GkApp, alice: Account, tmp_path: Path
) -> None:
    marker = deliver_and_kill(app, tmp_path, alice, "before-publish")
    name = marker.rpartition("name=")[2]

    # Committed but not yet renamed: the row points into new/, the file is in tmp/.
    [row] = await inbox_rows(app, alice)
    assert (row.uid, row.filename, row.path) == (1, name, f"new/{name}")
    assert listing(app, alice) == {"tmp": [name], "new": [], "cur": []}

    # What twistd does at start, before any listener.
    report = app.prepare()
    assert report is not None
    assert report.completed == 1
    assert report.details == [f"completed {alice.email}/INBOX/1"]

    assert listing(app, alice) == {"tmp": [], "new": [name], "cur": []}
    [row] = await inbox_rows(app, alice)
    assert row.path == f"new/{name}"
    assert row.size == len(MESSAGE)
    assert row.subject == "survives a crash ✓"
    assert await app.mailstore.read(alice, "INBOX", 1) == MESSAGE
    assert not app.mailstore.repair().changed
    assert (await app.mailstore.deliver(alice, b"Subject: next\r\n\r\n")).uid == 2
