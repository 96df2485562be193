"""
L{MailSubmission}: a message a local user sends, from any door that is
not an SMTP session (the assistant, the web UI), handled the way the
submission port handles one: the sender address must be the user's, the
recipients are routed as at RCPT (local accounts through their aliases,
quota checked before anything happens; everything else to the outbound
queue, which signs with DKIM), Message-ID and Date are added when
missing, a trace header is prepended, and a copy goes to the sender's
Sent folder, as a mail client would put it there over IMAP.

A Bcc field stays in the Sent copy (the sender's record of who got it)
and is removed from what recipients get (RFC 5322 3.6.3).

Every check happens before the first delivery, so a refused submission
delivers nothing.  The one failure that can come after a delivery is the
Sent copy not fitting in the sender's quota: the message has gone, so
that is reported in the result, not raised.
"""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass

from twisted.logger import Logger

from gk.accounts import AccountService, InvalidAddress
from gk.errors import GkError
from gk.mailboxes import MailboxService
from gk.queue import DeliveryQueue, new_queue_id
from gk.smtp.headers import complete_submission
from gk.storage.accounts import Account
from gk.storage.envelope import header_block, parse_envelope
from gk.storage.mailstore import QuotaExceeded, StoredMessage


class SubmissionError(GkError):
    """A message that cannot be sent as given; nothing was delivered."""


class SenderRefused(SubmissionError):
    """The sender address is not one the account may use."""


class RecipientRefused(SubmissionError):
    """A recipient cannot get mail (unknown here, invalid, or mailbox full)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason


@dataclass(frozen=True)
class SubmissionResult:
    """What happened to a submitted message."""

    #: The Message-ID field's value, with its angle brackets.
    message_id: str
    #: The id in logs and the Received field (also the outbound queue's).
    queue_id: str
    #: Local accounts that got it in their INBOX.
    delivered: tuple[str, ...]
    #: Addresses handed to the outbound queue.
    queued: tuple[str, ...]
    #: The copy in the sender's Sent folder; None if it did not fit in the quota.
    sent_copy: StoredMessage | None


class MailSubmission:
    """See the module docstring."""

    log = Logger()

    def __init__(
        self,
        accounts: AccountService,
        mailboxes: MailboxService,
        queue: DeliveryQueue,
        hostname: str,
        *,
        max_recipients: int = 100,
        max_message_size: int = 26214400,
    ) -> None:
        self.accounts = accounts
        self.mailboxes = mailboxes
        self.queue = queue
        self.hostname = hostname
        self.max_recipients = max_recipients
        self.max_message_size = max_message_size

    async def submit(
        self,
        account: Account,
        message: bytes,
        sender: str,
        recipients: list[str],
        *,
        save_copy: bool = True,
    ) -> SubmissionResult:
        """
        Send C{message} (CRLF line ends) from C{sender} to C{recipients}
        (the envelope: To, Cc and Bcc addresses alike) as C{account}.

        @param save_copy: store a copy in C{account}'s Sent folder (a
            client that saves its own copy says False).
        @raise SenderRefused: C{account} may not send as C{sender}.
        @raise RecipientRefused: a recipient is invalid, unknown here or
            has a full mailbox.
        @raise SubmissionError: no recipients, too many, or too big.
        """
        if len(message) > self.max_message_size:
            raise SubmissionError(
                f"the message is {len(message)} bytes; at most {self.max_message_size}"
            )
        wanted = _addresses(recipients)
        local, remote = await self._check(account, sender, wanted)

        queue_id = new_queue_id()
        now = datetime.datetime.now(datetime.UTC)
        complete = complete_submission(message, self.hostname, now)
        sent = remove_field(complete, b"Bcc")
        trace = self._received(queue_id, now, wanted[0] if len(wanted) == 1 else None)
        if remote:
            await self.queue.enqueue(
                sender,
                remote,
                trace + sent,
                user_id=account.id,
                smtputf8=not all(a.isascii() for a in (sender, *remote)),
                queue_id=queue_id,
            )
        stored = f"Return-Path: <{sender}>\r\n".encode() + trace + sent
        for recipient in local:
            # Quota was checked with the routes; a message accepted then is
            # not refused half-way through its recipients.
            await self.mailboxes.mailstore.deliver(recipient, stored, "INBOX", check_quota=False)
        copy = await self._save_copy(account, complete, now) if save_copy else None
        self.log.info(
            "{queue_id}: submitted by {user} from=<{sender}> local={local} remote={remote}",
            queue_id=queue_id,
            user=account.email,
            sender=sender,
            local=len(local),
            remote=len(remote),
        )
        return SubmissionResult(
            message_id=parse_envelope(header_block(complete)).message_id,
            queue_id=queue_id,
            delivered=tuple(a.email for a in local),
            queued=tuple(remote),
            sent_copy=copy,
        )

    async def check(self, account: Account, sender: str, recipients: list[str]) -> None:
        """
        Whether L{submit} would take a message from C{sender} to
        C{recipients}: raises what it would raise, sends nothing (so that
        a user is never asked to confirm a message that cannot go).
        """
        await self._check(account, sender, _addresses(recipients))

    async def _check(
        self, account: Account, sender: str, recipients: list[str]
    ) -> tuple[list[Account], list[str]]:
        """
        The local accounts and remote addresses mail to C{recipients} goes
        to, as the submission port routes them.

        @raise SenderRefused, RecipientRefused, SubmissionError: see L{submit}.
        """
        if not recipients:
            raise SubmissionError("a message needs at least one recipient")
        if len(recipients) > self.max_recipients:
            raise SubmissionError(f"at most {self.max_recipients} recipients per message")
        if not await self.accounts.may_send_as(account, sender):
            raise SenderRefused(f"{account.email} may not send as {sender}")
        local: dict[int, Account] = {}
        remote: list[str] = []
        for address in recipients:
            try:
                resolution = await self.accounts.resolve(address)
            except InvalidAddress as e:
                raise RecipientRefused(address, str(e)) from None
            if not resolution.local_domain:
                # As written: the local part is the remote domain's to interpret.
                remote.append(address)
                continue
            if not resolution.deliverable:
                raise RecipientRefused(address, "no such address here")
            for owner in resolution.local:
                quota = owner.quota_bytes
                if quota is not None and await self.mailboxes.mailstore.usage(owner) >= quota:
                    raise RecipientRefused(address, "the mailbox is full")
                local[owner.id] = owner
            remote.extend(resolution.remote)
        return list(local.values()), list(dict.fromkeys(remote))

    async def _save_copy(
        self, account: Account, message: bytes, when: datetime.datetime
    ) -> StoredMessage | None:
        folders = await self.mailboxes.folder_refs(account)
        sent = next((f.name for f in folders if f.special_use == "\\Sent"), "Sent")
        try:
            return await self.mailboxes.append(account, sent, message, {"\\Seen"}, when)
        except QuotaExceeded:
            self.log.warn("{user}: no room for the Sent copy", user=account.email)
            return None

    def _received(self, queue_id: str, when: datetime.datetime, recipient: str | None) -> bytes:
        """An RFC 5322 trace field for a message that came by no SMTP session."""
        line = f"Received: by {self.hostname} (gk) id {queue_id}"
        if recipient is not None:
            line += f"\r\n\tfor <{recipient}>"
        line += f"; {email.utils.format_datetime(when)}\r\n"
        return line.encode("utf-8")


def _addresses(recipients: list[str]) -> list[str]:
    """The distinct addresses of C{recipients}, in order, surrounding spaces gone."""
    return list(dict.fromkeys(r.strip() for r in recipients if r.strip()))


def remove_field(message: bytes, name: bytes) -> bytes:
    """C{message} without the header fields called C{name}, continuation lines included."""
    header = header_block(message)
    wanted = name.lower() + b":"
    kept: list[bytes] = []
    dropping = False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and line.strip():
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().replace(b" ", b"").startswith(wanted)
        if not dropping:
            kept.append(line)
    return b"".join(kept) + message[len(header) :]
