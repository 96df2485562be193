"""
What the SMTP session asks of the rest of gk: the interface between the
protocol (parser, session, transport) and a listener's policy (MX or
submission).
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from zope.interface import Attribute, Interface

from gk.smtp.parser import Address, Reply
from gk.storage.accounts import Account


@dataclass
class Connection:
    """What is known about the client, for policies, headers and logs."""

    client_ip: str
    client_port: int
    local_ip: str
    local_port: int
    helo: str = ""
    esmtp: bool = False
    #: "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, else "".
    tls: str = ""
    account: Account | None = None


@dataclass
class Recipient:
    """One accepted RCPT: the address as given and the policy's routing."""

    address: Address
    #: Policy-private routing data (e.g. the resolved local accounts).
    route: Any = None


@dataclass
class Transaction:
    """One mail transaction, from MAIL to the end of DATA/BDAT."""

    sender: Address | None
    params: dict[str, str | None]
    recipients: list[Recipient] = field(default_factory=list)
    received: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    #: Policy-private state computed at MAIL time (e.g. the SPF result).
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.params


class ISMTPPolicy(Interface):
    """
    The decisions of one kind of listener.  Every method runs on the
    reactor thread and returns an awaitable; a L{Reply} with a 4xx/5xx code
    refuses, L{None} accepts (the session then sends its own 250).
    """

    name = Attribute("'mx' or 'submission', for logs and headers")
    offers_auth = Attribute("Whether AUTH is offered (only ever under TLS)")
    requires_auth = Attribute("Whether MAIL needs a successful AUTH first")

    def authenticate(
        connection: Connection, username: str, password: str
    ) -> Awaitable[Account | Reply | None]:
        """
        The account for these credentials; L{None} for wrong credentials
        (the session answers 535 5.7.8); or a L{Reply} refusing the attempt
        without a verdict on the credentials (a blocked source: 454 4.7.0).
        """

    def check_sender(connection: Connection, transaction: Transaction) -> Awaitable[Reply | None]:
        """Accept or refuse MAIL FROM (transaction.sender None is "<>")."""

    def check_recipient(
        connection: Connection, transaction: Transaction, recipient: Recipient
    ) -> Awaitable[Reply | None]:
        """Accept (setting recipient.route) or refuse one RCPT TO."""

    def deliver(
        connection: Connection, transaction: Transaction, message: bytes
    ) -> Awaitable[Reply]:
        """
        Store or queue the message for every accepted recipient.  A 250
        reply promises that the message is durable.
        """
