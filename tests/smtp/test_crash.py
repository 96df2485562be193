"""
Killing gk with SIGKILL in the middle of an SMTP load loses no message that
got its 250.

A real C{twistd -n gk} takes mail on its MX listener from several parallel
smtplib connections; once enough messages were acknowledged (while the
other connections are in the middle of theirs) the process is SIGKILLed,
started again on the same config (its start-up repair runs), and every
acknowledged message must be in the recipient's INBOX exactly once, file
and index row, byte for byte; nothing half-written may be visible.
Nothing here sleeps: the test waits for log lines and for the senders.
"""

from __future__ import annotations

import os
import signal
import smtplib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_twisted

from gk.config import load_config
from gk.storage import accounts as store
from gk.storage import mail_index, maildir
from gk.storage.database import Database
from gk.tls import write_self_signed
from tests.dnsserver import DNSTestServer
from tests.helpers import (
    DEADLINE,
    GkProcess,
    add_user_with_cli,
    in_thread,
    start_serving,
    write_server_config,
)

GK = str(Path(sys.executable).parent / "gk")
RECIPIENT = "alice@example.test"
SENDER = "mailer@sender.example"
CONNECTIONS = 6
PER_CONNECTION = 60
#: Acknowledged messages after which the server is killed.
KILL_AFTER = 60

pytestmark = pytest.mark.timeout(90)


def message(number: int, run: str) -> bytes:
    """A distinct message of about 4 KB whose last line names it (truncation shows)."""
    body = b"".join(
        b"line %04d of message %d, which must arrive whole\r\n" % (i, number) for i in range(80)
    )
    return (
        (
            f"From: Mailer <{SENDER}>\r\n"
            f"To: <{RECIPIENT}>\r\n"
            f"Subject: crash test {number}\r\n"
            f"Message-ID: <{number}.{run}@sender.example>\r\n"
            "\r\n"
        ).encode("ascii")
        + body
        + f"end of message {number}\r\n".encode("ascii")
    )


@dataclass
class Load:
    """The senders' shared state."""

    port: int
    run: str
    acknowledged: set[int] = field(default_factory=set)
    #: Messages whose transaction started and did not end with a reply:
    #: after the kill, those it interrupted.
    in_flight: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def send(self, numbers: range) -> None:
        """One connection sending its messages until the server goes away."""
        try:
            client = smtplib.SMTP("127.0.0.1", self.port, "client.sender.example", timeout=30)
        except OSError as e:
            self.errors.append(f"connect: {e}")
            return
        try:
            for number in numbers:
                with self.lock:
                    self.in_flight.add(number)
                try:
                    refused = client.sendmail(SENDER, [RECIPIENT], message(number, self.run))
                except smtplib.SMTPResponseException as e:
                    self.errors.append(f"{number}: {e.smtp_code} {e.smtp_error!r}")
                    return
                except (smtplib.SMTPServerDisconnected, OSError):
                    return  # the server was killed under this transaction
                with self.lock:
                    self.in_flight.discard(number)
                    if refused:
                        self.errors.append(f"{number} refused: {refused}")
                        return
                    self.acknowledged.add(number)
                    if len(self.acknowledged) >= KILL_AFTER:
                        self.enough.set()
        finally:
            client.close()


def add_user(config: Path) -> None:
    add_user_with_cli(config, RECIPIENT, "a long enough password")


def start(config: Path) -> tuple[GkProcess, int]:
    return start_serving(config, "smtp")


def load_and_kill(config: Path, run: str) -> Load:
    """Start gk, send over parallel connections, SIGKILL it mid-load."""
    gk, port = start(config)
    load = Load(port, run)
    senders = [
        threading.Thread(
            target=load.send,
            args=(range(n * PER_CONNECTION, (n + 1) * PER_CONNECTION),),
            name=f"sender-{n}",
        )
        for n in range(CONNECTIONS)
    ]
    try:
        for sender in senders:
            sender.start()
        reached = load.enough.wait(timeout=DEADLINE)
        gk.process.send_signal(signal.SIGKILL)
        assert gk.process.wait(timeout=DEADLINE) == -signal.SIGKILL
        assert reached, f"only {len(load.acknowledged)} acknowledged: {load.errors}\n{gk.output()}"
    finally:
        if gk.process.poll() is None:
            gk.process.kill()
            gk.process.wait()
        for sender in senders:
            sender.join(timeout=DEADLINE)
        gk.stdout.drain()
        gk.stderr.drain()
    assert not load.errors, load.errors
    return load


@dataclass
class Stored:
    """One message of the INBOX: its index row and its file."""

    message_id: str
    uid: int
    size: int
    data: bytes


def inbox(config_path: Path) -> tuple[list[Stored], dict[str, list[str]]]:
    """The recipient's INBOX as the index and the Maildir have it (gk stopped)."""
    config = load_config(config_path, environ={})
    root = maildir.user_root(config.mail_dir, RECIPIENT)
    listing = {sub: sorted(os.listdir(root / sub)) for sub in ("tmp", "new", "cur")}
    db = Database(config.database_url)
    try:
        with db.transaction(write=False) as session:
            account = store.get_user(session, RECIPIENT)
            assert account is not None
            folder = mail_index.get_folder(session, account.id, "INBOX")
            assert folder is not None
            rows = mail_index.messages_in(session, folder.id)
            stored = [
                Stored(row.message_id, row.uid, row.size, (root / row.path).read_bytes())
                for row in rows
            ]
            indexed = {row.filename for row in rows}
    finally:
        db.dispose()
    visible = {maildir.split_info(name)[0] for name in listing["new"] + listing["cur"]}
    # Every visible file has its row and every row its file; what is left
    # in tmp/ (deliveries that never committed) is invisible and unindexed.
    assert visible == indexed
    assert not indexed & set(listing["tmp"])
    return stored, listing


@pytest_twisted.ensureDeferred
async def test_sigkill_during_smtp_load_loses_no_acknowledged_message(
    tmp_path: Path, database_url: str, dns_server: DNSTestServer
) -> None:
    dns_server.txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.txt("_dmarc.sender.example", "v=DMARC1; p=none")
    write_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.test")
    config = write_server_config(
        tmp_path,
        database_url=database_url,
        extra=(
            '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n\n'
            f'[dns]\nnameservers = ["{dns_server.address}"]\ntimeout = 5.0\n\n'
            '[security]\nexempt_networks = ["127.0.0.0/8"]\n'
        ),
    )
    config.write_text(
        config.read_text().replace(
            "[smtp]\nlisten = []", '[smtp]\nlisten = ["tcp:0:interface=127.0.0.1"]'
        )
    )
    await in_thread(add_user, config)
    run = f"{os.getpid()}.{time.monotonic_ns()}"

    # The senders block: run them, and the waits, off the reactor, which
    # serves the DNS the server's SPF and DMARC checks ask.
    load = await in_thread(load_and_kill, config, run)
    assert len(load.acknowledged) >= KILL_AFTER
    assert len(load.acknowledged) < CONNECTIONS * PER_CONNECTION
    # The other connections were in the middle of a transaction.
    assert load.in_flight, "no transaction was in progress when the server was killed"

    # The same config again: the start-up repair makes index and files agree.
    again, _port = await in_thread(start, config)
    await in_thread(again.stop_cleanly)

    stored, listing = await in_thread(inbox, config)
    by_id: dict[str, list[Stored]] = {}
    for item in stored:
        by_id.setdefault(item.message_id, []).append(item)
    # Exactly once, whole, byte for byte after gk's own trace fields.
    for number in sorted(load.acknowledged):
        copies = by_id.get(f"<{number}.{run}@sender.example>", [])
        assert len(copies) == 1, f"message {number}: {len(copies)} copies"
        [copy] = copies
        assert copy.data.endswith(b"\r\n" + message(number, run)), f"message {number} differs"
        assert copy.size == len(copy.data)
    # Anything else stored is a message whose 250 was lost with the
    # process (it may be delivered: SMTP is at least once), equally whole
    # and not duplicated; nothing from elsewhere.
    sent = {f"<{n}.{run}@sender.example>": n for n in range(CONNECTIONS * PER_CONNECTION)}
    for message_id, copies in by_id.items():
        assert message_id in sent, message_id
        assert len(copies) == 1, f"{message_id}: {len(copies)} copies"
        number = sent[message_id]
        assert number in load.acknowledged or number in load.in_flight, number
        assert copies[0].data.endswith(b"\r\n" + message(number, run))
    assert len({item.uid for item in stored}) == len(stored)
    assert len(listing["new"]) + len(listing["cur"]) == len(stored)
