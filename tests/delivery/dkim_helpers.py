"""
Checking gk's DKIM signatures the way receivers do: with dkimpy against
records held in memory, and with gk's own verifier (L{MailAuthenticator})
against records published in the loopback DNS server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import cast

import dkim  # type: ignore[import-untyped]
import pytest
from dkim.util import parse_tag_value  # type: ignore[import-untyped]
from twisted.internet.interfaces import IReactorFromThreads

from gk.config import DNSConfig
from gk.mailauth import AuthResults, MailAuthenticator
from tests.dnsserver import DNSTestServer

#: The connecting client in the checks (192.0.2.0/24: TEST-NET-1).
CLIENT_IP = "192.0.2.25"


def signature_count(message: bytes) -> int:
    """How many DKIM-Signature fields the header holds."""
    header = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    return len(re.findall(rb"(?im)^dkim-signature:", header))


def signature_tags(message: bytes, index: int) -> dict[str, str]:
    """The tags of the DKIM-Signature field C{index} (topmost is 0), whitespace removed."""
    verifier = dkim.DKIM(message)
    values = [v for n, v in verifier.headers if n.lower() == b"dkim-signature"]
    tags = parse_tag_value(values[index])
    return {k.decode(): re.sub(r"\s+", "", v.decode()) for k, v in tags.items()}


def dkimpy_verifies(message: bytes, records: Mapping[str, str], index: int = 0) -> bool:
    """
    Whether dkimpy verifies signature C{index} of C{message}, the keys
    being looked up in C{records} (C{<selector>._domainkey.<domain>} -> TXT).
    """

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        value = records.get(name.decode().rstrip(".").lower())
        return None if value is None else value.encode()

    try:
        return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


def dkimpy_verifies_all(message: bytes, records: Mapping[str, str]) -> list[bool]:
    """L{dkimpy_verifies} for each signature, topmost first."""
    return [dkimpy_verifies(message, records, i) for i in range(signature_count(message))]


async def gk_checks(authenticator: MailAuthenticator, message: bytes, sender: str) -> AuthResults:
    """What gk's inbound checks make of C{message} (DKIM, DMARC), sent by C{sender}."""
    return await authenticator.check_message(CLIENT_IP, "mx.example.org", sender, message)


@pytest.fixture
def authenticator(dns_server: DNSTestServer) -> Iterator[MailAuthenticator]:
    """A running L{MailAuthenticator} asking the loopback DNS server."""
    from twisted.internet import reactor

    auth = MailAuthenticator(
        DNSConfig(nameservers=[dns_server.address], timeout=2.0),
        "mx.example.org",
        cast(IReactorFromThreads, reactor),
    )
    auth.startService()
    try:
        yield auth
    finally:
        auth.stopService()
