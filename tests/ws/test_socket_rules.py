"""
What C{/ws} refuses and what it pushes besides chat: upgrades without
valid credentials or from a foreign Origin, bad JSON, unknown types,
oversize frames and flooding (with autobahn's own Twisted client as well
as C{websockets}), and live events: a mail delivered over SMTP reaches
the recipient's sockets only, a calendar change its owner's.
"""

from __future__ import annotations

import json
import smtplib
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gk.ws.connection import BURST, MAX_REFUSED
from gk.ws.protocol import MAX_FRAME
from tests.helpers import in_thread
from tests.ws.conftest import ALICE, BOB, ORIGIN, LiveServer, aio

EVENT = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:standup\r
DTSTAMP:20261101T000000Z\r
DTSTART:20261123T090000Z\r
DURATION:PT15M\r
SUMMARY:Standup\r
END:VEVENT\r
END:VCALENDAR\r
"""


async def refused_status(live_server: LiveServer, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await live_server.connect(headers=headers)
    return refused.value.response.status_code


@pytest_twisted.ensureDeferred
async def test_upgrades_need_a_valid_token_and_the_right_origin(live_server: LiveServer) -> None:
    token = live_server.tokens[ALICE]
    assert await refused_status(live_server, {}) == 401
    assert await refused_status(live_server, {"Authorization": "Bearer not-a-token"}) == 401
    assert await refused_status(live_server, {"Authorization": f"Basic {token}"}) == 401
    evil = {"Authorization": f"Bearer {token}", "Origin": "https://evil.example"}
    assert await refused_status(live_server, evil) == 403
    # The public origin (as browsers send it) and no Origin at all (a script) are fine.
    client = await live_server.connect(
        headers={"Authorization": f"Bearer {token}", "Origin": ORIGIN}
    )
    assert (await aio(client.call("hello")))["user"] == ALICE
    # A page served by this very host (opened by another of its names) too.
    own = {"Authorization": f"Bearer {token}", "Origin": f"http://127.0.0.1:{live_server.port}"}
    same_host = await live_server.connect(headers=own)
    assert (await aio(same_host.call("hello")))["user"] == ALICE
    await live_server.app.accounts.revoke_token(ALICE, "tests")
    assert await refused_status(live_server, {"Authorization": f"Bearer {token}"}) == 401


@pytest_twisted.ensureDeferred
async def test_bad_messages_get_one_error_each_and_the_socket_stays(
    live_server: LiveServer,
) -> None:
    client = await live_server.connect(ALICE)
    connection = client.connection
    for frame, code in [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"type": "hello"}', "bad_message"),
        ('{"id": 1}', "bad_message"),
        ('{"type": "no.such", "id": 7}', "unknown_type"),
        ('{"type": "chat.post", "id": 8, "room_id": "x", "text": "hi"}', "invalid_argument"),
        ('{"type": "chat.post", "id": 9, "room_id": 999, "text": "hi"}', "no_such_room"),
        ("x" * (MAX_FRAME + 1), "too_large"),
    ]:
        await aio(connection.send(frame))
        answer = await aio(client.errors.get())
        assert answer["type"] == "error" and answer["error"]["code"] == code, frame[:60]
    await aio(connection.send(b"\x00binary"))
    assert (await aio(client.errors.get()))["error"]["code"] == "bad_frame"
    assert (await aio(client.call("ping"))) == {}


@pytest_twisted.ensureDeferred
async def test_a_flooding_client_is_slowed_then_closed(live_server: LiveServer) -> None:
    client = await live_server.connect(ALICE)
    # A burst past the allowance and the refusals in a row it tolerates.
    for n in range(BURST + MAX_REFUSED + 20):
        try:
            await aio(client.connection.send(json.dumps({"type": "ping", "id": n})))
        except ConnectionClosed:
            break
    codes = []
    while not client.errors.empty():
        frame = await aio(client.errors.get())
        if frame["type"] == "error":
            codes.append(frame["error"]["code"])
    assert "rate_limited" in codes
    await aio(client.connection.wait_closed())
    assert client.connection.close_code == 1008
    assert codes.count("rate_limited") <= MAX_REFUSED


class _Recorder(WebSocketClientProtocol):
    """autobahn's Twisted client: sends what it is given, keeps what comes back."""

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.append(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed.callback(code)


@pytest_twisted.ensureDeferred
async def test_autobahn_client_gets_its_replies_and_a_1009_past_the_hard_limit(
    live_server: LiveServer,
) -> None:
    from twisted.internet import reactor

    factory: Any = WebSocketClientFactory(
        live_server.ws_url, headers={"Authorization": f"Bearer {live_server.tokens[BOB]}"}
    )
    factory.protocol = _Recorder
    factory.opened, factory.closed, factory.frames = Deferred(), Deferred(), []
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", live_server.port)
    await endpoint.connect(factory)
    client: _Recorder = await factory.opened
    client.sendMessage(json.dumps({"type": "hello", "id": "h"}).encode())
    client.sendMessage(json.dumps({"type": "chat.rooms", "id": "r"}).encode())
    client.sendMessage(b"{oops")
    while len([f for f in factory.frames if f["type"] != "event"]) < 3:
        await _tick()
    by_id = {f.get("id"): f for f in factory.frames if f["type"] != "event"}
    assert by_id["h"]["result"]["user"] == BOB
    assert by_id["r"]["result"] == {"rooms": []}
    assert by_id[None]["error"]["code"] == "bad_json"
    client.sendMessage(b"x" * (2 * 1024 * 1024))
    assert await factory.closed == 1009


async def _tick() -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    await deferLater(reactor, 0.02, lambda: None)


@pytest_twisted.ensureDeferred
async def test_mail_delivered_over_smtp_reaches_the_recipients_sockets_only(
    live_server: LiveServer,
) -> None:
    bob_phone = await live_server.connect(BOB)
    bob_laptop = await live_server.connect(BOB)
    alice = await live_server.connect(ALICE)
    port = live_server.mx_port()

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail(
                "carol@elsewhere.test",
                [BOB],
                b"From: Carol <carol@elsewhere.test>\r\nTo: bob@example.test\r\n"
                b"Subject: Lunch?\r\n\r\nAt noon.\r\n",
            )

    await in_thread(send)
    for client in (bob_phone, bob_laptop):
        event = await aio(client.event("mail.delivered"))
        assert event["data"]["folder"] == "INBOX"
        assert event["data"]["subject"] == "Lunch?"
        assert "carol@elsewhere.test" in event["data"]["from"]
    await aio(alice.no_event("mail.delivered"))

    await live_server.app.calendars.put(live_server.accounts[ALICE], "calendar", "s.ics", EVENT)
    changed = await aio(alice.event("calendar.changed"))
    assert changed["data"] == {"collection": "calendar", "href": "s.ics", "action": "created"}
    await aio(bob_phone.no_event("calendar.changed"))
