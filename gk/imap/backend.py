"""
What an IMAP session needs from the rest of gk, behind one small
interface: signing in (through the brute-force guard shared with SMTP and
the web), the user's mailboxes (L{MailboxService}), and the event bus that
tells a session what other sessions, SMTP delivery and the web UI changed.
"""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import Interface, implementer

from gk.accounts import AccountService
from gk.events import Event, EventBus, Subscription
from gk.mailboxes import MailboxService
from gk.security.events import AuthOutcome
from gk.security.service import Security
from gk.storage.accounts import Account


class IIMAPBackend(Interface):
    """The services behind an IMAP session."""

    mailboxes: MailboxService

    async def login(client_ip: str, username: str, password: str) -> Account | str | None:
        """
        The account, L{None} for wrong credentials, or C{"blocked"} when
        the source is locked out (its credentials unchecked).
        """

    def subscribe(
        kind: type[Event], callback: Callable[[Event], object], user_id: int
    ) -> Subscription:
        """Events of C{kind} about C{user_id}'s mail."""


@implementer(IIMAPBackend)
class IMAPBackend:
    """L{IIMAPBackend} over gk's services."""

    name = "imap"

    def __init__(
        self,
        accounts: AccountService,
        mailboxes: MailboxService,
        security: Security,
        events: EventBus,
    ) -> None:
        self.accounts = accounts
        self.mailboxes = mailboxes
        self.security = security
        self.events = events

    async def login(self, client_ip: str, username: str, password: str) -> Account | str | None:
        result = await self.security.auth.authenticate(
            client_ip,
            username,
            self.name,
            lambda: self.accounts.authenticate(username, password),
        )
        if result.outcome is AuthOutcome.BLOCKED:
            return "blocked"
        return result.account

    def subscribe(
        self, kind: type[Event], callback: Callable[[Event], object], user_id: int
    ) -> Subscription:
        return self.events.subscribe(kind, callback, user_id=user_id)
