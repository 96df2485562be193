"""
Routing with the route cache over real SMTP: an account deleted by another
process (the CLI) while the MX still remembers its route gets a temporary
failure (the sender retries and then learns the truth), never a 250 for
mail that went nowhere.
"""

from __future__ import annotations

import smtplib

import pytest_twisted

from gk.app import GkApp
from tests.helpers import in_thread
from tests.smtp.conftest import MailServer

MESSAGE = b"From: carol@example.org\r\nSubject: hello\r\n\r\nHi Bob.\r\n"


def send(
    server: MailServer, recipient: str
) -> tuple[int, bytes | str] | dict[str, tuple[int, bytes]]:
    with server.mx() as client:
        try:
            return client.sendmail("carol@example.org", [recipient], MESSAGE)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        except smtplib.SMTPRecipientsRefused as e:
            return e.recipients[recipient]


@pytest_twisted.ensureDeferred
async def test_mail_for_an_account_deleted_elsewhere_is_deferred_not_lost(
    mail_server: MailServer,
) -> None:
    from twisted.internet import reactor

    assert await in_thread(send, mail_server, "bob@example.test") == {}
    assert len(await mail_server.inbox(mail_server.bob)) == 1

    cli = GkApp.build(mail_server.app.config, reactor)
    cli.db.startService()
    cli.accounts.startService()
    try:
        await cli.accounts.delete_user("bob@example.test")
    finally:
        cli.accounts.stopService()
        cli.db.stopService()
        cli.db.dispose()

    # The MX still has Bob's route: the message is refused for now ...
    code, text = await in_thread(send, mail_server, "bob@example.test")
    assert code == 451, text
    # ... and once the route expires, for good, at RCPT.
    mail_server.app.accounts.routes.clear()
    code, text = await in_thread(send, mail_server, "bob@example.test")
    assert code == 550 and b"5.1.1" in text, text
    # Nothing was left behind in the archived Maildir or the index.
    archived = mail_server.app.config.mail_dir / ".deleted" / "example.test"
    [bob_archive] = archived.iterdir()
    assert len(list((bob_archive / "new").iterdir())) == 1
    assert list((bob_archive / "tmp").iterdir()) == []
