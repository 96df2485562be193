"""
What L{gk.delivery.client.SMTPClient} raises.

A delivery worker needs to tell apart: the host could not be reached
(L{SMTPConnectError}: try the next MX), the server said no at a moment
where the client cannot go on (L{SMTPReplyError}, carrying the reply),
and the conversation broke down (L{SMTPTimeoutError},
L{SMTPConnectionLost} and its L{SMTPTLSError}, L{SMTPProtocolError}):
after any of those the connection is closed.  Replies to MAIL, RCPT and
DATA are never raised: they are the result of a send.
"""

from __future__ import annotations

from gk.delivery.replies import Reply


class SMTPClientError(Exception):
    """The base of every error of the SMTP client; the message is one line."""


class SMTPConnectError(SMTPClientError):
    """The TCP connection could not be made (refused, unreachable, timed out)."""


class SMTPReplyError(SMTPClientError):
    """
    The server refused a step the client cannot go on without: a non-2xx
    greeting, EHLO and HELO, STARTTLS, AUTH, RSET.  The connection stays
    open unless the server closed it.
    """

    def __init__(self, reply: Reply, command: str = "") -> None:
        self.reply = reply
        self.command = command
        where = f" to {command}" if command else ""
        super().__init__(f"server replied{where}: {reply}")


class SMTPTimeoutError(SMTPClientError):
    """The server did not answer in time; the connection has been dropped."""


class SMTPConnectionLost(SMTPClientError):
    """The connection closed while a reply was due, or before a command."""


class SMTPTLSError(SMTPConnectionLost):
    """
    The TLS handshake failed, for example because the server's certificate
    did not verify; the connection is closed.
    """


class SMTPProtocolError(SMTPClientError):
    """
    The server broke the protocol (a malformed, over-long or unsolicited
    reply); the connection has been dropped.
    """
