"""
The IMAP server as imapclient (the library many sync tools use) drives it:
a 5 MB message and a UTF-8 subject round trip byte-exact, flags and UIDs
as structured answers, and APPEND over quota refused with OVERQUOTA.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from tests.helpers import client_tls, in_thread
from tests.imap.conftest import PASSWORD, IMAPServer

BIG = (
    b"From: Alice <alice@example.test>\r\nSubject: the big one\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n"
    + b"0123456789abcdef" * 4 * 80 * 1024  # 5 MB of lines without line ends
    + b"\r\n"
)
UTF8 = "From: Zoë <zoe@example.test>\r\nSubject: Grüße aus Köln ☕\r\n\r\nHallo!\r\n".encode()


def connect(server: IMAPServer, user: str = "alice@example.test") -> Any:
    client = IMAPClient("127.0.0.1", port=server.port("imap", tls=True), ssl_context=client_tls())
    client.login(user, PASSWORD)
    return client


@pytest_twisted.ensureDeferred
async def test_big_and_utf8_messages_round_trip_byte_exact(imap_server: IMAPServer) -> None:
    def scenario() -> dict[str, Any]:
        client = connect(imap_server)
        client.append("INBOX", BIG, flags=[b"\\Seen"])
        client.append("INBOX", UTF8)
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "RFC822.SIZE", "ENVELOPE"])
        found = client.search(["SUBJECT", "Köln"], charset="UTF-8")
        client.logout()
        return {"uids": uids, "fetched": fetched, "found": found}

    out = await in_thread(scenario)
    first, second = out["uids"]
    big, utf8 = out["fetched"][first], out["fetched"][second]
    assert big[b"BODY[]"] == BIG and big[b"RFC822.SIZE"] == len(BIG)
    assert big[b"FLAGS"] == (b"\\Seen",)
    assert utf8[b"BODY[]"] == UTF8
    assert utf8[b"ENVELOPE"].subject == "Grüße aus Köln ☕".encode()
    assert out["found"] == [second]


@pytest_twisted.ensureDeferred
async def test_append_over_quota_is_refused_with_overquota(imap_server: IMAPServer) -> None:
    app = imap_server.app
    small = await app.accounts.create_user(
        "small@example.test", PASSWORD, quota_bytes=len(UTF8) + 10
    )
    await app.mailstore.deliver(small, UTF8)

    def scenario() -> str:
        client = connect(imap_server, "small@example.test")
        try:
            client.append("INBOX", UTF8)
        except IMAPClientError as e:
            return str(e)
        finally:
            client.logout()
        return "accepted"

    assert "OVERQUOTA" in await in_thread(scenario)
