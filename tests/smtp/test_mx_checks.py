"""
The inbound checks end to end on the MX listener: records in the loopback
DNS server, messages signed with dkimpy in the test, delivered over a raw
socket; the verdict is read back from the stored message.
"""

from __future__ import annotations

import re

import dkim  # type: ignore[import-untyped]
import pytest
import pytest_twisted

from tests.dnsserver import DNSTestServer
from tests.helpers import in_thread
from tests.mailauth.helpers import DKIMKey, ed25519_key, make_message, rsa_key, sign
from tests.smtp.conftest import MailServer
from tests.smtp.rawclient import RawClient, SMTPReply, client_part, ehlo, expect

HOSTNAME = "mail.example.test"


@pytest.fixture(scope="module", params=["rsa-sha256", "ed25519-sha256"])
def key(request: pytest.FixtureRequest) -> DKIMKey:
    return rsa_key(2048) if request.param == "rsa-sha256" else ed25519_key()


def deliver(server: MailServer, mail_from: str, message: bytes) -> SMTPReply:
    """One message for alice; the reply to its end of DATA (the session goes on)."""
    assert b"\r\n." not in message  # sent as is: nothing to dot-stuff
    with RawClient(server.mx_port) as client:
        expect(client.greeting, 220)
        ehlo(client)
        client.send(f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n".encode())
        assert [r.code for r in client.replies(3)] == [250, 250, 354]
        client.send(message + b".\r\n")
        reply = client.reply()
        expect(client.command("NOOP"), 250, "2.0.0")
        expect(client.command("QUIT"), 221, "2.0.0")
        return reply


def own_results(stored: bytes) -> str:
    """gk's Authentication-Results field of a stored message, unfolded."""
    header = stored[: stored.index(b"\r\n\r\n") + 2]
    [field] = re.findall(
        rb"^Authentication-Results: " + re.escape(HOSTNAME.encode()) + rb";.*?\r\n(?![ \t])",
        header,
        re.MULTILINE | re.DOTALL,
    )
    return re.sub(r"\s+", " ", field.decode()).strip()


def dkim_still_verifies(stored: bytes, dns: DNSTestServer, selector: str, domain: str) -> bool:
    """Whether the stored bytes still carry a valid signature (nothing was altered)."""
    [record] = dns.records[f"{selector}._domainkey.{domain}"]

    def txt(name: bytes, timeout: int = 5) -> bytes:
        assert name.decode().rstrip(".") == f"{selector}._domainkey.{domain}"
        return b"".join(record.data)

    return bool(dkim.verify(stored, dnsfunc=txt))


@pytest_twisted.ensureDeferred
async def test_a_signed_message_passes_dmarc_despite_a_reject_policy(
    mail_server: MailServer, key: DKIMKey
) -> None:
    dns = mail_server.dns
    dns.txt("signed.example", "v=spf1 ip4:192.0.2.1 -all")  # SPF fails for 127.0.0.1
    dns.txt("_dmarc.signed.example", "v=DMARC1; p=reject")
    key.publish(dns, "sel", "signed.example")
    message = sign(
        make_message(from_="News <news@signed.example>", to="alice@example.test"),
        key,
        domain="signed.example",
    )

    reply = await in_thread(deliver, mail_server, "bounce@signed.example", message)

    expect(reply, 250, "2.0.0")
    [stored] = await mail_server.inbox(mail_server.alice)
    assert client_part(stored) == message
    results = own_results(stored)
    assert results.startswith(f"Authentication-Results: {HOSTNAME}; ")
    assert " spf=fail smtp.mailfrom=signed.example;" in results
    algorithm = key.algorithm.decode()
    assert f" dkim=pass header.d=signed.example header.s=sel header.a={algorithm} " in results
    assert results.endswith(" dmarc=pass (p=reject dis=none) header.from=signed.example")
    assert dkim_still_verifies(stored, dns, "sel", "signed.example")
    assert await mail_server.inbox(mail_server.alice, "Junk") == []


@pytest_twisted.ensureDeferred
async def test_dmarc_reject_refuses_at_the_end_of_data(
    mail_server: MailServer, key: DKIMKey
) -> None:
    dns = mail_server.dns
    dns.txt("strict.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns.txt("_dmarc.strict.example", "v=DMARC1; p=reject")
    key.publish(dns, "sel", "strict.example")
    unsigned = make_message(from_="CEO <ceo@strict.example>", to="alice@example.test")
    signed = sign(make_message(from_="ceo@strict.example"), key, domain="strict.example")
    altered = signed.replace(b"Shall we meet at noon?", b"Please wire the money.")
    assert altered != signed

    for mail_from, message in (
        ("ceo@strict.example", unsigned),
        ("", unsigned),
        ("ceo@strict.example", altered),
    ):
        reply = await in_thread(deliver, mail_server, mail_from, message)
        expect(reply, 550, "5.7.1")
    assert await mail_server.inbox(mail_server.alice) == []
    assert await mail_server.inbox(mail_server.alice, "Junk") == []


@pytest_twisted.ensureDeferred
async def test_dmarc_quarantine_files_into_junk(mail_server: MailServer) -> None:
    dns = mail_server.dns
    dns.txt("promo.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns.txt("_dmarc.promo.example", "v=DMARC1; p=quarantine")
    message = make_message(from_="Deals <deals@promo.example>", to="alice@example.test")

    reply = await in_thread(deliver, mail_server, "deals@promo.example", message)

    expect(reply, 250, "2.0.0")
    assert await mail_server.inbox(mail_server.alice) == []
    [stored] = await mail_server.inbox(mail_server.alice, "Junk")
    assert client_part(stored) == message
    results = own_results(stored)
    assert " spf=fail smtp.mailfrom=promo.example;" in results
    assert results.endswith(" dmarc=fail (p=quarantine dis=quarantine) header.from=promo.example")


@pytest_twisted.ensureDeferred
async def test_forged_results_for_this_server_are_removed_and_others_kept(
    mail_server: MailServer,
) -> None:
    forged = (
        b"Authentication-Results: mail.example.test; dkim=pass header.d=bank.example\r\n",
        b"authentication-results:  (looks legit) MAIL.Example.Test;\r\n"
        b"\tspf=pass smtp.mailfrom=bank.example;\r\n"
        b"\tdmarc=pass header.from=bank.example\r\n",
    )
    other = b"Authentication-Results: relay.example.net; spf=pass smtp.mailfrom=example.org\r\n"
    head = b"From: Carol <carol@example.org>\r\nTo: alice@example.test\r\n"
    tail = b"Subject: trust me\r\n\r\nBody\r\nAuthentication-Results: mail.example.test; body\r\n"
    message = head + forged[0] + other + forged[1] + tail

    reply = await in_thread(deliver, mail_server, "carol@example.org", message)

    expect(reply, 250, "2.0.0")
    [stored] = await mail_server.inbox(mail_server.alice)
    # Header fields claiming to be gk's are gone; the body is untouched.
    assert client_part(stored) == head + other + tail
    assert own_results(stored).startswith(f"Authentication-Results: {HOSTNAME}; spf=none ")
    assert b"bank.example" not in stored
