"""
The two kinds of SMTP listener, as L{ISMTPPolicy} implementations.

L{MXPolicy} receives mail from the internet for local domains only (never
an open relay) and runs the inbound checks; L{SubmissionPolicy} takes mail
from gk's own users after AUTH, lets them send only as themselves, and
hands remote recipients to the outbound queue.
"""

from __future__ import annotations

import datetime
from typing import Protocol

from twisted.logger import Logger
from zope.interface import implementer

from gk.accounts import AccountService, Resolution
from gk.mailauth import MailAuthenticator, remove_own_results
from gk.queue import new_queue_id
from gk.security.events import AuthOutcome
from gk.security.service import Security
from gk.smtp.backend import Connection, ISMTPPolicy, Recipient, Transaction
from gk.smtp.headers import complete_submission, received_header, return_path
from gk.smtp.parser import Address, Reply
from gk.storage.accounts import Account
from gk.storage.mailstore import MailStore


class OutboundQueue(Protocol):
    """Where mail for remote recipients goes; durable when enqueue returns."""

    async def enqueue(
        self,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        user_id: int | None = None,
        smtputf8: bool = False,
        queue_id: str | None = None,
    ) -> str: ...


def _mail_from(transaction: Transaction) -> str:
    sender = transaction.sender
    return "" if sender is None else f"{sender.local}@{sender.domain}"


def _route(recipient: Recipient) -> Resolution:
    route = recipient.route
    assert isinstance(route, Resolution)
    return route


class _LocalDelivery:
    """Shared by both policies: store local copies, queue remote ones."""

    #: The protocol name for logs, metrics and the security limits.
    name = "smtp"

    log = Logger()

    def __init__(
        self,
        hostname: str,
        accounts: AccountService,
        mailstore: MailStore,
        queue: OutboundQueue,
        security: Security,
    ) -> None:
        self.hostname = hostname
        self.accounts = accounts
        self.mailstore = mailstore
        self.queue = queue
        self.security = security

    async def authenticate(
        self, connection: Connection, username: str, password: str
    ) -> Account | Reply | None:
        """
        Check credentials behind the brute-force guard shared with IMAP and
        the web.  A blocked source gets a temporary failure (RFC 4954 454
        4.7.0) with its credentials unchecked: a 535 would wrongly tell a
        mail client that a possibly right password is wrong.
        """
        result = await self.security.auth.authenticate(
            connection.client_ip,
            username,
            self.name,
            lambda: self.accounts.authenticate(username, password),
        )
        if result.outcome is AuthOutcome.BLOCKED:
            return Reply(454, "4.7.0", "Too many failed attempts, try again later")
        return result.account

    async def admit_message(self, connection: Connection) -> Reply | None:
        decision = self.security.allow_message(connection.client_ip, self.name)
        if decision.allowed:
            return None
        return Reply(450, "4.7.1", "Too many messages from your address, try again later")

    async def _resolve_local(
        self, address: Address, resolution: Resolution | None
    ) -> Resolution | Reply:
        """The route for an address in a local domain, or the RCPT refusal."""
        if resolution is None or not resolution.deliverable:
            return Reply(550, "5.1.1", f"<{address}>: Recipient address rejected: User unknown")
        for account in resolution.local:
            if account.quota_bytes is not None:
                used = await self.mailstore.usage(account)
                if used >= account.quota_bytes:
                    return Reply(452, "4.2.2", f"<{address}>: Mailbox full")
        return resolution

    async def _store(
        self,
        connection: Connection,
        transaction: Transaction,
        message: bytes,
        folder: str = "INBOX",
        extra_headers: bytes = b"",
    ) -> Reply:
        queue_id = new_queue_id()
        single = transaction.recipients[0].address if len(transaction.recipients) == 1 else None
        trace = received_header(self.hostname, connection, transaction, queue_id, single)
        local: dict[int, Account] = {}
        remote: list[str] = []
        for recipient in transaction.recipients:
            route = _route(recipient)
            local.update((account.id, account) for account in route.local)
            remote.extend(route.remote)
        sender = "" if transaction.sender is None else str(transaction.sender)
        if remote:
            await self.queue.enqueue(
                sender,
                list(dict.fromkeys(remote)),
                trace + message,
                user_id=connection.account.id if connection.account else None,
                smtputf8=transaction.smtputf8,
                queue_id=queue_id,
            )
        stored = return_path(transaction.sender) + extra_headers + trace + message
        for account in local.values():
            # Quota was checked at RCPT; a message accepted there is never
            # refused here (a partial failure cannot be reported after DATA).
            await self.mailstore.deliver(account, stored, folder, check_quota=False)
        self.log.info(
            "{queue_id}: from=<{sender}> to={count} size={size} {how} client={ip}",
            queue_id=queue_id,
            sender=sender,
            count=len(transaction.recipients),
            size=len(message),
            how=connection.tls or "plaintext",
            ip=connection.client_ip,
        )
        return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


@implementer(ISMTPPolicy)
class MXPolicy(_LocalDelivery):
    name = "smtp"
    offers_auth = False
    requires_auth = False

    def __init__(
        self,
        hostname: str,
        accounts: AccountService,
        mailstore: MailStore,
        queue: OutboundQueue,
        security: Security,
        postmaster_domain: str,
        authenticator: MailAuthenticator,
    ) -> None:
        super().__init__(hostname, accounts, mailstore, queue, security)
        self.postmaster_domain = postmaster_domain
        self.authenticator = authenticator

    async def check_sender(self, connection: Connection, transaction: Transaction) -> Reply | None:
        refusal = await self.admit_message(connection)
        if refusal is not None:
            return refusal
        # SPF, DKIM and DMARC run together after DATA, in one trip to the
        # checks' threads: SPF alone refuses nothing (the sender domain's
        # DMARC policy decides), so MAIL need not wait for it.
        return None

    async def check_recipient(
        self, connection: Connection, transaction: Transaction, recipient: Recipient
    ) -> Reply | None:
        address = recipient.address
        if address.domain == "":  # bare <Postmaster>
            address = Address("postmaster", self.postmaster_domain)
        relay_denied = Reply(554, "5.7.1", f"<{recipient.address}>: Relay access denied")
        if address.is_literal:
            return relay_denied
        # One lookup answers both "is the domain ours?" and "who gets it?".
        resolution = await self.accounts.resolve_or_none(f"{address.local}@{address.domain}")
        if resolution is None:
            if not await self.accounts.is_local_domain(address.domain):
                return relay_denied
        elif not resolution.local_domain:
            return relay_denied
        route = await self._resolve_local(address, resolution)
        if isinstance(route, Reply):
            return route
        recipient.route = route
        return None

    async def deliver(
        self, connection: Connection, transaction: Transaction, message: bytes
    ) -> Reply:
        results = await self.authenticator.check_message(
            connection.client_ip,
            connection.helo,
            _mail_from(transaction),
            message,
        )
        if results.disposition == "reject":
            return Reply(550, "5.7.1", "Message rejected by the sender domain's DMARC policy")
        folder = "Junk" if results.disposition == "quarantine" else "INBOX"
        # Fields claiming to be our verdict were forged upstream (RFC 8601 5).
        message = remove_own_results(message, self.hostname)
        header = results.header().encode("ascii")
        return await self._store(connection, transaction, message, folder, header)


@implementer(ISMTPPolicy)
class SubmissionPolicy(_LocalDelivery):
    name = "submission"
    offers_auth = True
    requires_auth = True

    async def check_sender(self, connection: Connection, transaction: Transaction) -> Reply | None:
        account = connection.account
        sender = transaction.sender
        if account is None:
            return Reply(530, "5.7.0", "Authentication required")
        if sender is None or not await self.accounts.may_send_as(account, str(sender)):
            shown = "<>" if sender is None else f"<{sender}>"
            return Reply(553, "5.7.1", f"{shown}: Sender address not owned by {account.email}")
        # Charged last: a refused MAIL does not use up the sender's allowance.
        return await self.admit_message(connection)

    async def check_recipient(
        self, connection: Connection, transaction: Transaction, recipient: Recipient
    ) -> Reply | None:
        address = recipient.address
        if address.domain == "":
            return Reply(550, "5.1.1", "<Postmaster>: a domain is needed here")
        if not address.is_literal:
            resolution = await self.accounts.resolve_or_none(f"{address.local}@{address.domain}")
            local = (
                resolution.local_domain
                if resolution is not None
                else await self.accounts.is_local_domain(address.domain)
            )
            if local:
                route = await self._resolve_local(address, resolution)
                if isinstance(route, Reply):
                    return route
                recipient.route = route
                return None
        # Remote: the address exactly as the client wrote it (local parts
        # are the remote domain's to interpret).
        recipient.route = Resolution((), (str(address),), local_domain=False)
        return None

    async def deliver(
        self, connection: Connection, transaction: Transaction, message: bytes
    ) -> Reply:
        when = datetime.datetime.now(datetime.UTC)
        message = complete_submission(message, self.hostname, when)
        return await self._store(connection, transaction, message)
