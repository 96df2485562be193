"""
A running gk with IMAP (STARTTLS and implicit TLS) and the MX listener on
ephemeral loopback ports, a self-signed certificate, and two users.
"""

from __future__ import annotations

import imaplib
import smtplib
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest_twisted

from gk.app import GkApp
from gk.config import load_config
from gk.service import GkService
from gk.storage.accounts import Account
from gk.tls import write_self_signed
from tests.conftest import ConfigWriter
from tests.dnsserver import DNSTestServer, dns_server
from tests.helpers import client_tls

__all__ = ["dns_server"]

T = TypeVar("T")

PASSWORD = "correct horse battery staple"


@dataclass
class IMAPServer:
    app: GkApp
    tree: GkService
    alice: Account
    bob: Account

    def port(self, role: str, tls: bool = False) -> int:
        for listener in self.tree.listeners:
            if listener.role == role and listener.implicit_tls == tls and listener.bound:
                return int(listener.bound.address.rpartition(":")[2])
        raise LookupError(role)

    def plain(self) -> imaplib.IMAP4:
        """A connection to the STARTTLS listener, not yet secured."""
        return imaplib.IMAP4("127.0.0.1", self.port("imap"))

    def login(self, user: str = "alice@example.test") -> imaplib.IMAP4_SSL:
        """Signed in over implicit TLS."""
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", self.port("imap", tls=True), ssl_context=client_tls()
        )
        client.login(user, PASSWORD)
        return client

    def send_mail(self, recipient: str, message: bytes) -> None:
        """Through the MX listener, as the internet would."""
        with smtplib.SMTP("127.0.0.1", self.port("smtp"), local_hostname="client.example.org") as c:
            c.sendmail("someone@example.org", [recipient], message)


@pytest_twisted.async_yield_fixture
async def imap_server(
    write_config: ConfigWriter, database_url: str, dns_server: DNSTestServer, tmp_path: Path
) -> AsyncIterator[IMAPServer]:
    from twisted.internet import reactor

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mail.example.test")
    config_file = write_config(
        textwrap.dedent(
            f"""
            [tls]
            cert = "{cert}"
            key = "{key}"

            [dns]
            nameservers = ["{dns_server.address}"]
            timeout = 2.0

            [delivery]
            worker = false
            """
        ),
        database_url=database_url,
    )
    text = (
        config_file.read_text()
        .replace("[smtp]\nlisten = []", '[smtp]\nlisten = ["tcp:0:interface=127.0.0.1"]')
        .replace(
            "[imap]\nlisten = []\ntls_listen = []",
            '[imap]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
            'tls_listen = ["tcp:0:interface=127.0.0.1"]',
        )
    )
    config_file.write_text(text)
    app = GkApp.build(load_config(config_file, environ={}), reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    try:
        alice = await app.accounts.create_user("alice@example.test", PASSWORD)
        bob = await app.accounts.create_user("bob@example.test", PASSWORD)
        yield IMAPServer(app, tree, alice, bob)
    finally:
        await tree.stopService()
        app.db.dispose()
