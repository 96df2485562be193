"""
A delivery that dies: run by test_crash.py as a separate process.

Usage: python crash_child.py CONFIG EMAIL POINT MESSAGE_FILE

Delivers MESSAGE_FILE to EMAIL's INBOX through gk's MailStore, with a hook
at POINT that prints a marker line on stdout and then blocks forever, so
that the parent can SIGKILL the process exactly there:

  before-commit   inside the index transaction, after the row is inserted
                  (the tmp file is written and fsynced), before COMMIT;
  before-publish  after the transaction committed, before the rename
                  from tmp/ into new/.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from gk.app import GkApp
from gk.config import load_config
from gk.storage import mail_index, maildir


def stop_here(marker: str) -> None:
    sys.stdout.write(marker + "\n")
    sys.stdout.flush()
    threading.Event().wait()  # until SIGKILL


def install_hook(point: str) -> None:
    if point == "before-commit":
        add_message = mail_index.add_message

        def add_then_stop(session: Any, *args: Any, **kwargs: Any) -> Any:
            message = add_message(session, *args, **kwargs)
            session.flush()
            stop_here(f"KILL-POINT before-commit uid={message.uid} name={message.filename}")
            return message

        mail_index.add_message = add_then_stop
    elif point == "before-publish":

        def stop_before_publish(tmp: maildir.TmpFile) -> str:
            stop_here(f"KILL-POINT before-publish name={tmp.name}")
            raise AssertionError("not reached")

        maildir.move_to_new = stop_before_publish
    else:
        raise SystemExit(f"unknown kill point {point!r}")


async def deliver(reactor: Any, config_path: str, email: str, point: str, message: str) -> None:
    app = GkApp.build(load_config(config_path, environ={}), reactor)
    app.db.startService()
    account = await app.accounts.get_user(email)
    assert account is not None, email
    install_hook(point)
    data = Path(message).read_bytes()  # noqa: ASYNC240 (a tiny file, before any work)
    await app.mailstore.deliver(account, data)
    sys.stdout.write("DELIVERED (the kill point was never reached)\n")
    sys.stdout.flush()


def main(reactor: Any, *argv: str) -> defer.Deferred[None]:
    return defer.ensureDeferred(deliver(reactor, *argv))


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
