"""
A running gk that delivers outbound mail: submission on a loopback port,
the delivery worker on, DNS from a loopback twisted.names server, remote
MX hosts played by the sinks of L{tests.delivery.sinks} on 127.0.0.2,
127.0.0.3, ... (all on one port, C{[delivery] mx_port}).
"""

from __future__ import annotations

import smtplib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from gk.app import GkApp
from gk.config import load_config
from gk.service import GkService
from gk.storage import mail_index, queue_store
from gk.storage.accounts import Account
from gk.tls import write_self_signed
from tests.conftest import ConfigWriter
from tests.dnsserver import DNSTestServer
from tests.helpers import client_tls

PASSWORD = "correct horse battery staple"


@dataclass
class Relay:
    app: GkApp
    tree: GkService
    dns: DNSTestServer
    alice: Account

    @property
    def submission_port(self) -> int:
        for listener in self.tree.listeners:
            if listener.role == "submission" and listener.bound:
                return int(listener.bound.address.rpartition(":")[2])
        raise LookupError("submission")

    def _submit(self, sender: str, recipients: list[str], message: bytes) -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", self.submission_port, local_hostname="laptop") as client:
            client.starttls(context=client_tls())
            client.login("alice@example.test", PASSWORD)
            return client.sendmail(sender, recipients, message)

    async def submit(
        self, recipients: list[str], message: bytes, sender: str = "alice@example.test"
    ) -> None:
        """Send as Alice through the submission listener, as her mail client does."""
        refused = await deferToThread(self._submit, sender, recipients, message)
        assert refused == {}, refused

    async def queue(self) -> list[queue_store.QueueEntry]:
        return await self.app.db.read(queue_store.list_queue)

    async def wait_until(
        self, condition: Callable[[], Any], seconds: float = 10.0, what: str = "a condition"
    ) -> None:
        """Wait for the server to get somewhere (it works in the background)."""
        from twisted.internet import reactor

        for _ in range(int(seconds / 0.05)):
            result = condition()
            if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await task.deferLater(reactor, 0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def queue_empty(self) -> bool:
        return not await self.queue()

    async def inbox(self, account: Account, folder: str = "INBOX") -> list[bytes]:
        def uids(session: Any) -> list[int]:
            row = mail_index.get_folder(session, account.id, folder)
            assert row is not None
            return [m.uid for m in mail_index.messages_in(session, row.id)]

        return [
            await self.app.mailstore.read(account, folder, uid)
            for uid in await self.app.db.read(uids)
        ]


async def start_relay(
    write_config: ConfigWriter,
    database_url: str,
    dns_server: DNSTestServer,
    tmp_path: Path,
    mx_port: int,
    delivery: str = "",
) -> Relay:
    """Build and start the server; C{delivery} is extra C{[delivery]} TOML."""
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

        [delivery]
        mx_port = {mx_port}
        first_retry = 0.3
        max_retry_interval = 0.6
        connect_timeout = 2.0
        mta_sts = false
        """
        + textwrap.dedent(delivery),
        database_url=database_url,
    )
    text = config_file.read_text().replace(
        "[submission]\nlisten = []", '[submission]\nlisten = ["tcp:0:interface=127.0.0.1"]'
    )
    config_file.write_text(text)
    app = GkApp.build(load_config(config_file, environ={}), reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    return Relay(app, tree, dns_server, alice)


async def stop_relay(relay: Relay) -> None:
    await relay.tree.stopService()
    relay.app.db.dispose()
