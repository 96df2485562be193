"""
The outbound queue end to end: Alice submits over SMTP, gk looks up the MX
in a real DNS server on loopback and hands the message to SMTP sinks
playing the remote MX hosts, which accept, defer, refuse, drop the
connection or require STARTTLS.  Outcomes are checked where a user sees
them: the sink's copy, the queue, and delivery reports in Alice's INBOX.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest_twisted

from gk.delivery.dkim_sign import generate_key, key_directory, read_keys
from tests.conftest import ConfigWriter
from tests.delivery.relay import Relay, start_relay, stop_relay
from tests.delivery.sinks import Fault, Script, SMTPSink, make_tls, start_sinks
from tests.dnsserver import DNSTestServer, dns_server

__all__ = ["dns_server"]

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@remote.test>\r\n"
    b"Subject: Lunch\r\n"
    b"\r\n"
    b"Thursday at noon?\r\n"
)


@dataclass
class World:
    """Two MX hosts for remote.test (preference 10 and 20), and gk."""

    primary: SMTPSink
    backup: SMTPSink
    dns: DNSTestServer
    tmp_path: Path
    write_config: ConfigWriter
    database_url: str
    relay: Relay | None = None

    async def start(self, delivery: str = "") -> Relay:
        self.relay = await start_relay(
            self.write_config,
            self.database_url,
            self.dns,
            self.tmp_path,
            self.primary.port,
            delivery,
        )
        return self.relay


@pytest_twisted.async_yield_fixture
async def world(
    write_config: ConfigWriter, database_url: str, dns_server: DNSTestServer, tmp_path: Path
) -> AsyncIterator[World]:
    tls = make_tls(tmp_path, "mx1.remote.test")
    primary, backup = await start_sinks(["127.0.0.2", "127.0.0.3"], [Script(), Script()], tls=tls)
    dns_server.mx("remote.test", "mx1.remote.test", 10)
    dns_server.mx("remote.test", "mx2.remote.test", 20)
    dns_server.a("mx1.remote.test", "127.0.0.2")
    dns_server.a("mx2.remote.test", "127.0.0.3")
    world = World(primary, backup, dns_server, tmp_path, write_config, database_url)
    try:
        yield world
    finally:
        if world.relay is not None:
            await stop_relay(world.relay)
        await primary.stop()
        await backup.stop()


def parse(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def status_blocks(part: object) -> list[str]:
    """The blocks of a message/delivery-status part: per message, then per recipient."""
    assert isinstance(part, email.message.Message)
    payload = part.get_payload()
    assert isinstance(payload, list)
    return [str(block) for block in payload]


@pytest_twisted.ensureDeferred
async def test_mail_reaches_the_preferred_mx_signed_and_leaves_the_queue(world: World) -> None:
    relay = await world.start()
    generate_key(key_directory(relay.app.config.server.data_dir), "example.test")
    await relay.submit(["bob@remote.test"], MESSAGE)

    [received] = await world.primary.wait_for_messages(1)
    assert received.sender == "alice@example.test"
    assert received.recipients == ["bob@remote.test"]
    assert received.tls  # STARTTLS was offered, so it was used
    assert received.data.endswith(MESSAGE)
    assert received.data.startswith(b"DKIM-Signature:")
    assert world.backup.messages == []
    await relay.wait_until(relay.queue_empty, what="the queue to empty")
    assert list(relay.app.config.spool_dir.glob("[0-9A-F]*")) == []
    assert await relay.inbox(relay.alice) == []  # no report for a delivered message
    # Counted right after the outcome is committed (maybe a moment after the queue empties).
    await relay.wait_until(
        lambda: (
            'gk_outbound_deliveries_total{outcome="sent"} 1.0'
            in relay.app.metrics.render().decode()
        ),
        what="the delivery to be counted",
    )

    # The signature verifies against the key gk would publish.
    [key], _problems = read_keys(key_directory(relay.app.config.server.data_dir), "example.test")
    record = key.dns_value.encode()
    assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record)


@pytest_twisted.ensureDeferred
async def test_several_recipients_of_one_domain_share_one_connection_and_transaction(
    world: World,
) -> None:
    relay = await world.start()
    await relay.submit(["bob@remote.test", "carol@remote.test"], MESSAGE)
    await relay.submit(["dave@remote.test"], MESSAGE.replace(b"Lunch", b"Dinner"))
    await world.primary.wait_for_messages(2)
    await relay.wait_until(relay.queue_empty, what="the queue to empty")
    assert sorted(m.recipients for m in world.primary.messages) == [
        ["bob@remote.test", "carol@remote.test"],
        ["dave@remote.test"],
    ]


@pytest_twisted.ensureDeferred
async def test_a_temporary_refusal_is_retried_until_accepted(world: World) -> None:
    world.primary.script.rcpt_replies["bob@remote.test"] = ["450 4.2.1 try again later"]
    world.backup.script.rcpt_replies["bob@remote.test"] = ["451 4.3.0 busy"]
    relay = await world.start()
    await relay.submit(["bob@remote.test"], MESSAGE)

    [received] = await world.primary.wait_for_messages(1)
    assert received.recipients == ["bob@remote.test"]
    await relay.wait_until(relay.queue_empty, what="the queue to empty")
    # First attempt: 450 at the primary (a per-recipient refusal is the
    # answer; the backup is not asked).  Second attempt: accepted.
    assert world.backup.data_blocks == []
    assert await relay.inbox(relay.alice) == []


@pytest_twisted.ensureDeferred
async def test_a_permanent_refusal_bounces_into_the_senders_inbox_at_once(world: World) -> None:
    world.primary.script.rcpt_replies["nobody@remote.test"] = ["550 5.1.1 no such user here"]
    relay = await world.start()
    await relay.submit(["nobody@remote.test", "bob@remote.test"], MESSAGE)

    [received] = await world.primary.wait_for_messages(1)
    assert received.recipients == ["bob@remote.test"]
    await relay.wait_until(relay.queue_empty, what="the queue to empty")
    [report_bytes] = await relay.inbox(relay.alice)
    report = parse(report_bytes)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report.get_content_type() == "multipart/report"
    _human, status, headers = report.iter_parts()
    recipient_block = status_blocks(status)[1]
    assert "Final-Recipient: rfc822; nobody@remote.test" in recipient_block
    assert "Status: 5.1.1" in recipient_block
    assert "550 5.1.1 no such user here" in recipient_block
    assert "Remote-MTA: dns; mx1.remote.test" in recipient_block
    assert b"Subject: Lunch" in headers.get_payload(decode=True)
    assert "bob@remote.test" not in str(status)


@pytest_twisted.ensureDeferred
async def test_the_second_mx_takes_the_mail_when_the_first_drops_the_connection(
    world: World,
) -> None:
    world.primary.script.faults.extend([Fault("drop", "connect")] * 5)
    relay = await world.start()
    await relay.submit(["bob@remote.test"], MESSAGE)
    [received] = await world.backup.wait_for_messages(1)
    assert received.recipients == ["bob@remote.test"]
    assert world.primary.messages == []
    await relay.wait_until(relay.queue_empty, what="the queue to empty")


@pytest_twisted.ensureDeferred
async def test_an_mx_that_requires_starttls_gets_the_mail_over_tls(world: World) -> None:
    world.primary.script.require_tls = True
    relay = await world.start()
    await relay.submit(["bob@remote.test"], MESSAGE)
    [received] = await world.primary.wait_for_messages(1)
    assert received.tls
    assert "STARTTLS" in world.primary.connections[0].verbs()


@pytest_twisted.ensureDeferred
async def test_a_domain_that_requires_verified_tls_gets_nothing_over_a_bad_certificate(
    world: World,
) -> None:
    relay = await world.start('require_tls_domains = ["remote.test"]\n')
    await relay.submit(["bob@remote.test"], MESSAGE)
    await relay.wait_until(
        lambda: _has_error(relay, "certificate"), what="a certificate error in the queue"
    )
    assert world.primary.messages == [] and world.backup.messages == []
    [entry] = await relay.queue()
    [(address, state, _attempts, _next, _error)] = entry.recipients
    assert address == "bob@remote.test" and state in ("deferred", "sending")


@pytest_twisted.ensureDeferred
async def test_a_domain_that_requires_verified_tls_gets_mail_over_a_trusted_certificate(
    world: World,
) -> None:
    ca = world.tmp_path / "mx1.remote.test.crt"
    relay = await world.start(f'require_tls_domains = ["remote.test"]\nca_file = "{ca}"\n')
    # Only mx1 has a certificate for its own name; mx2 would fail the check.
    await relay.submit(["bob@remote.test"], MESSAGE)
    [received] = await world.primary.wait_for_messages(1)
    assert received.tls


async def _has_error(relay: Relay, text: str) -> bool:
    for entry in await relay.queue():
        for _address, _state, _attempts, _next, error in entry.recipients:
            if text in error:
                return True
    return False


@pytest_twisted.ensureDeferred
async def test_mail_undeliverable_for_its_whole_lifetime_comes_back_after_a_warning(
    world: World,
) -> None:
    world.primary.script.faults.extend([Fault("drop", "connect")] * 50)
    world.backup.script.faults.extend([Fault("drop", "connect")] * 50)
    relay = await world.start("max_lifetime = 1.5\ndelay_warning = 0.5\n")
    await relay.submit(["bob@remote.test"], MESSAGE)

    await relay.wait_until(relay.queue_empty, what="the message to expire")
    delayed, failed = (parse(m) for m in await relay.inbox(relay.alice))
    assert delayed["Subject"] == "Delayed Mail (still being retried)"
    assert "Action: delayed" in str(list(delayed.iter_parts())[1])
    assert failed["Subject"] == "Undelivered Mail Returned to Sender"
    status_block = status_blocks(list(failed.iter_parts())[1])[1]
    assert "Action: failed" in status_block and "Status: 4.4.7" in status_block
    assert "delivery time expired" in status_block


@pytest_twisted.ensureDeferred
async def test_a_null_mx_domain_bounces_without_any_connection(world: World) -> None:
    world.dns.mx("nomail.test", "", 0)
    relay = await world.start()
    await relay.submit(["someone@nomail.test"], MESSAGE)
    await relay.wait_until(relay.queue_empty, what="the bounce")
    [report] = await relay.inbox(relay.alice)
    assert "Status: 5.1.10" in report.decode()
    assert world.primary.connections == [] and world.backup.connections == []


@pytest_twisted.ensureDeferred
async def test_a_smarthost_takes_everything_after_tls_and_auth(world: World) -> None:
    tls = make_tls(world.tmp_path, "localhost")
    async with SMTPSink(
        Script(require_tls=True, auth=("relayuser", "relay secret")), tls=tls
    ) as smarthost:
        relay = await world.start(
            f'smarthost = "localhost:{smarthost.port}"\n'
            'smarthost_username = "relayuser"\n'
            'smarthost_password = "relay secret"\n'
            f'ca_file = "{world.tmp_path / "localhost.crt"}"\n'
        )
        await relay.submit(["bob@remote.test", "erin@elsewhere.test"], MESSAGE)
        messages = await smarthost.wait_for_messages(2)
        assert sorted(r for m in messages for r in m.recipients) == [
            "bob@remote.test",
            "erin@elsewhere.test",
        ]
        assert all(m.tls and m.auth_user == "relayuser" for m in messages)
        assert world.primary.connections == []
        await relay.wait_until(relay.queue_empty, what="the queue to empty")


@pytest_twisted.ensureDeferred
async def test_mail_without_a_local_sender_never_causes_a_bounce(world: World) -> None:
    # E.g. mail from outside forwarded by an alias: nobody here to tell.
    world.primary.script.rcpt_replies["gone@remote.test"] = ["550 5.1.1 no such user"] * 2
    relay = await world.start()
    await relay.app.queue.enqueue("someone@elsewhere.example", ["gone@remote.test"], MESSAGE)
    await relay.app.queue.enqueue("", ["gone@remote.test"], MESSAGE)  # itself a bounce
    await relay.wait_until(relay.queue_empty, what="both to be given up")
    assert await relay.inbox(relay.alice) == []
    assert world.primary.messages == [] and world.backup.connections == []
