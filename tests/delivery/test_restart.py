"""
A killed server delivers the rest after a restart, and nothing twice: one
message goes to two domains; the first domain's MX takes it (and a second
message) at once, the second domain's MX hangs in the middle of the
message; gk is killed with SIGKILL there and started again.
"""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.threads import deferToThread

from gk.tls import write_self_signed
from tests.delivery.sinks import Fault, Script, start_sinks
from tests.dnsserver import DNSTestServer, dns_server
from tests.helpers import (
    DEADLINE,
    GkProcess,
    add_user_with_cli,
    clean_environ,
    client_tls,
    start_serving,
    write_server_config,
)

__all__ = ["dns_server"]

GK = str(Path(sys.executable).parent / "gk")
PASSWORD = "a long enough password"
MESSAGE = b"From: alice@example.test\r\nSubject: to two domains\r\n\r\nHello.\r\n"


def queue_list(config: Path) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "gk"), "--config", str(config), "queue", "list"],
        capture_output=True,
        text=True,
        env=clean_environ(),
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def submit(port: int, recipients: list[str], message: bytes) -> None:
    context = client_tls()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="laptop") as client:
        client.starttls(context=context)
        client.login("alice@example.test", PASSWORD)
        assert client.sendmail("alice@example.test", recipients, message) == {}


def wait_sent(gk: GkProcess, addresses: set[str]) -> None:
    """Read the log until each address has its "status=sent" line."""
    seen: set[str] = set()
    while seen != addresses:
        seen.add(
            gk.wait_for(
                lambda line: next((a for a in addresses if f"to=<{a}> status=sent" in line), None)
            )
        )


async def until(condition: object, what: str, seconds: float = DEADLINE) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():  # type: ignore[operator]
            return
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_twisted.ensureDeferred
async def test_after_sigkill_mid_delivery_the_rest_is_delivered_and_nothing_twice(
    tmp_path: Path, database_url: str, dns_server: DNSTestServer
) -> None:
    # The slow MX hangs once the message starts coming (first connection only).
    fast, slow = await start_sinks(
        ["127.0.0.2", "127.0.0.3"], [Script(), Script(faults=[Fault("hang", "body")])]
    )
    dns_server.mx("fast.test", "mx.fast.test")
    dns_server.a("mx.fast.test", "127.0.0.2")
    dns_server.mx("slow.test", "mx.slow.test")
    dns_server.a("mx.slow.test", "127.0.0.3")
    write_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.test")
    config = write_server_config(
        tmp_path,
        database_url=database_url,
        extra=(
            '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n\n'
            f'[dns]\nnameservers = ["{dns_server.address}"]\ntimeout = 2.0\n\n'
            f"[delivery]\nmx_port = {fast.port}\nmta_sts = false\n"
        ),
    )
    config.write_text(
        config.read_text().replace(
            "[submission]\nlisten = []", '[submission]\nlisten = ["tcp:0:interface=127.0.0.1"]'
        )
    )
    await deferToThread(add_user_with_cli, config, "alice@example.test", PASSWORD)
    gk, port = await deferToThread(start_serving, config, "submission")
    try:
        await deferToThread(submit, port, ["bob@fast.test", "carol@slow.test"], MESSAGE)
        await deferToThread(submit, port, ["dave@fast.test"], MESSAGE)
        # Logged once committed: these two are done, whatever happens next.
        await deferToThread(wait_sent, gk, {"bob@fast.test", "dave@fast.test"})
        await until(
            lambda: any("DATA" in c.verbs() for c in slow.connections),
            "the slow MX to be in the middle of the message",
        )
        gk.process.send_signal(signal.SIGKILL)
        assert await deferToThread(gk.process.wait, DEADLINE) == -signal.SIGKILL
    finally:
        if gk.process.poll() is None:
            gk.process.kill()
            gk.process.wait()

    connections_before = len(fast.connections)
    again, _port = await deferToThread(start_serving, config, "submission")
    try:
        [carols] = await slow.wait_for_messages(1, seconds=DEADLINE)
        assert carols.recipients == ["carol@slow.test"]
        assert carols.data.endswith(MESSAGE)
        await deferToThread(wait_sent, again, {"carol@slow.test"})
        # Bob's and Dave's copies were accepted before the kill: not again.
        assert sorted(r for m in fast.messages for r in m.recipients) == [
            "bob@fast.test",
            "dave@fast.test",
        ]
        assert len(fast.connections) == connections_before  # nothing for it after the restart
        await deferToThread(again.stop_cleanly)
        # Nothing is left in the queue (as the operator sees it).
        listing = await deferToThread(queue_list, config)
        assert listing == "the queue is empty\n", listing
    finally:
        if again.process.poll() is None:
            again.process.kill()
            again.process.wait()
        await fast.stop()
        await slow.stop()
