"""
The assistant's mail tools, in the order of the interface document:
list_emails, search_emails, read_email, send_email, reply_email,
move_email, flag_email, delete_email, list_folders.

They act on the caller's mailbox only, through the services IMAP and SMTP
use: L{gk.mailboxes.MailboxService} for reading and changing mail, and
L{gk.submission.MailSubmission} for sending it.  The tools that look are
in L{gk.assistant.mail_read_tools}, those that act in
L{gk.assistant.mail_write_tools}; how they name messages and folders to
the model is in L{gk.assistant.mail_lookup}.
"""

from __future__ import annotations

from gk.app import GkApp
from gk.assistant.mail_read_tools import read_tools
from gk.assistant.mail_write_tools import write_tools
from gk.assistant.tools import Tool
from gk.submission import MailSubmission

#: The order tools are offered in (the interface document's).
ORDER = (
    "list_emails",
    "search_emails",
    "read_email",
    "send_email",
    "reply_email",
    "move_email",
    "flag_email",
    "delete_email",
    "list_folders",
)


def mail_submission(app: GkApp) -> MailSubmission:
    """The submission service as the SMTP submission port is configured."""
    return MailSubmission(
        app.accounts,
        app.mailboxes,
        app.queue,
        app.config.server.hostname,
        max_recipients=app.config.smtp.max_recipients,
        max_message_size=app.config.smtp.max_message_size,
    )


def mail_tools(app: GkApp) -> list[Tool]:
    """The mail tools over C{app}'s services."""
    tools = read_tools(app.mailboxes) + write_tools(
        app.mailboxes, app.accounts, mail_submission(app)
    )
    by_name = {tool.name: tool for tool in tools}
    return [by_name[name] for name in ORDER]
