"""
A running gk with its SMTP listeners on ephemeral loopback ports: the MX
listener, submission with STARTTLS and submission with implicit TLS, a
self-signed certificate, and a loopback DNS server for the inbound checks.
"""

from __future__ import annotations

import smtplib
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted

from gk.app import GkApp
from gk.config import load_config
from gk.service import GkService
from gk.storage.accounts import Account
from gk.tls import write_self_signed
from tests.conftest import ConfigWriter
from tests.dnsserver import DNSTestServer, dead_dns_server, dns_server
from tests.helpers import client_tls

__all__ = ["dead_dns_server", "dns_server"]

T = TypeVar("T")

PASSWORD = "correct horse battery staple"


@dataclass
class MailServer:
    app: GkApp
    tree: GkService
    dns: DNSTestServer
    alice: Account
    bob: Account

    def port(self, role: str, tls: bool = False) -> int:
        for listener in self.tree.listeners:
            if listener.role == role and listener.implicit_tls == tls and listener.bound:
                return int(listener.bound.address.rpartition(":")[2])
        raise LookupError(role)

    @property
    def mx_port(self) -> int:
        return self.port("smtp")

    def mx(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.mx_port, local_hostname="client.example.org")

    def submission(self) -> smtplib.SMTP:
        client = smtplib.SMTP(
            "127.0.0.1", self.port("submission"), local_hostname="laptop.example.test"
        )
        client.starttls(context=client_tls())
        return client

    def submissions(self) -> smtplib.SMTP_SSL:
        return smtplib.SMTP_SSL(
            "127.0.0.1",
            self.port("submission", tls=True),
            local_hostname="laptop.example.test",
            context=client_tls(),
        )

    async def inbox(self, account: Account, folder: str = "INBOX") -> list[bytes]:
        """Every stored message of the folder, read from the Maildir via the index."""
        from gk.storage import mail_index

        def uids(session: Any) -> list[int]:
            row = mail_index.get_folder(session, account.id, folder)
            assert row is not None
            return [m.uid for m in mail_index.messages_in(session, row.id)]

        return [
            await self.app.mailstore.read(account, folder, uid)
            for uid in await self.app.db.read(uids)
        ]


@pytest.fixture
def mail_server_config_extra() -> str:
    """
    TOML appended to the C{mail_server}'s config, for example a
    C{[security]} section; override this fixture, or parametrize a test
    with it, to change the server's settings.
    """
    return ""


@pytest_twisted.async_yield_fixture
async def mail_server(
    write_config: ConfigWriter,
    database_url: str,
    dns_server: DNSTestServer,
    tmp_path: Path,
    mail_server_config_extra: str,
) -> AsyncIterator[MailServer]:
    from twisted.internet import reactor

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mail.example.test")
    config_file = write_config(
        f"""
        [tls]
        cert = "{cert}"
        key = "{key}"

        [dns]
        nameservers = ["{dns_server.address}"]
        timeout = 2.0
        """,
        database_url=database_url,
    )
    text = config_file.read_text()
    text = text.replace(
        "[smtp]\nlisten = []", '[smtp]\nlisten = ["tcp:0:interface=127.0.0.1"]\nmax_recipients = 5'
    ).replace(
        "[submission]\nlisten = []\ntls_listen = []",
        '[submission]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
        'tls_listen = ["tcp:0:interface=127.0.0.1"]',
    )
    text = text.replace("[smtp]\n", "[smtp]\nmax_message_size = 100000\n")
    # These tests look at the queue as submission leaves it; the delivery
    # worker's own tests are in tests/delivery.
    text += "\n[delivery]\nworker = false\n"
    config_file.write_text(text + "\n" + textwrap.dedent(mail_server_config_extra))
    config = load_config(config_file, environ={})
    app = GkApp.build(config, reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    try:
        alice = await app.accounts.create_user("alice@example.test", PASSWORD)
        bob = await app.accounts.create_user("bob@example.test", PASSWORD)
        yield MailServer(app, tree, dns_server, alice, bob)
    finally:
        await tree.stopService()
        app.db.dispose()
