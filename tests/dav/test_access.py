"""
Who reaches what, and the limits, over raw HTTP: user isolation, crafted
paths, Basic authentication with account and app passwords, the shared
brute-force block, body size limits (XML, resources, the site's cap for
announced and chunked bodies), a client hanging up mid-answer, and the
seam implicit scheduling plugs into.
"""

from __future__ import annotations

import http.client
import socket
import struct

import pytest_twisted
from sqlalchemy.orm import Session

from gk.dav.resource import DavResource
from gk.dav.scheduling import OutboxError
from gk.storage import dav_store
from gk.storage.accounts import Account
from tests.dav.conftest import (
    ALICE,
    BOB,
    CALENDAR,
    HOME,
    ICS,
    NAMESPACES,
    PASSWORD,
    C,
    D,
    DavServer,
    basic,
    event,
    prop_text,
    propfind_body,
    proppatch,
)
from tests.helpers import in_thread

# -- access ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_users_reach_only_their_own_collections(dav_server: DavServer) -> None:
    """
    Bob cannot read, list, write or delete alice's resources (404, so
    that existence does not leak) nor read her principal (403); nothing
    of his attempts lands in her calendar.
    """
    assert (await dav_server.call("PUT", f"{CALENDAR}private.ics", event("p1"), ICS)).status == 201
    attempts = [
        ("GET", f"{CALENDAR}private.ics", b""),
        ("PROPFIND", CALENDAR, b""),
        ("PROPFIND", HOME, b""),
        ("PUT", f"{CALENDAR}planted.ics", event("planted")),
        ("DELETE", f"{CALENDAR}private.ics", b""),
        ("MKCALENDAR", f"{HOME}bobs/", b""),
        ("PROPPATCH", CALENDAR, proppatch("<d:set><d:prop><d:displayname>x</d:displayname>"
                                          "</d:prop></d:set>")),
    ]  # fmt: skip
    for method, path, body in attempts:
        answer = await dav_server.call(method, path, body, ICS if body else None, user=BOB)
        assert answer.status == 404, (method, path, answer.status)
    principal = await dav_server.call("PROPFIND", f"/dav/principals/{ALICE}/", user=BOB)
    assert principal.status == 403
    listing = await dav_server.call("PROPFIND", CALENDAR, headers={"Depth": "1"})
    assert set(listing.responses()) == {CALENDAR, f"{CALENDAR}private.ics"}
    displayname = await dav_server.call("PROPFIND", CALENDAR, propfind_body("d:displayname"))
    (response,) = displayname.responses().values()
    assert prop_text(response, f"{D}displayname") == "Calendar"


@pytest_twisted.ensureDeferred
async def test_crafted_paths_are_refused(dav_server: DavServer) -> None:
    """Dot segments (plain or encoded), encoded slashes, NUL, empty and over-long segments: 400."""
    bob_home = f"/dav/calendars/{BOB}/"
    crafted = [
        f"{bob_home}../{ALICE}/calendar/x.ics",
        f"{bob_home}%2e%2e/{ALICE}/calendar/x.ics",
        f"{bob_home}%2E%2E/{ALICE}/calendar/",
        f"{bob_home}calendar/..%2F..%2F{ALICE}%2Fcalendar%2Fx.ics",
        f"/dav/calendars/{ALICE}%2Fcalendar/x.ics",
        f"{bob_home}calendar/./x.ics",
        f"{bob_home}/calendar/x.ics",
        f"{bob_home}calendar/x%00.ics",
        f"{bob_home}calendar/{'a' * 256}.ics",
    ]
    for path in crafted:
        for method in ("GET", "PUT"):
            answer = await dav_server.call(method, path, event("c1"), ICS, user=BOB)
            assert answer.status == 400, (method, path, answer.status)
    listing = await dav_server.call("PROPFIND", CALENDAR, headers={"Depth": "1"})
    assert set(listing.responses()) == {CALENDAR}


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_401_and_app_passwords_work(dav_server: DavServer) -> None:
    """A wrong password gets 401; an app password signs in like the account password."""
    wrong = await dav_server.call("PROPFIND", "/dav/", password="not the password")
    assert wrong.status == 401
    app_password = await dav_server.app.accounts.create_app_password(ALICE, "phone")
    for _ in range(2):  # the second one comes from the credential cache
        answer = await dav_server.call("PROPFIND", "/dav/", password=app_password)
        assert answer.status == 207
    unknown = await dav_server.call("PROPFIND", "/dav/", user="nobody@example.test")
    assert unknown.status == 401


@pytest_twisted.ensureDeferred
async def test_a_changed_password_or_revoked_app_password_stops_working_at_once(
    dav_server: DavServer,
) -> None:
    """The credential cache asks the database on each request whether the password still holds."""
    accounts = dav_server.app.accounts
    app_password = await accounts.create_app_password(ALICE, "phone")
    for password in (PASSWORD, app_password):
        for _ in range(2):  # the second one comes from the credential cache
            assert (await dav_server.call("PROPFIND", "/dav/", password=password)).status == 207

    await accounts.revoke_app_password(ALICE, "phone")
    assert (await dav_server.call("PROPFIND", "/dav/", password=app_password)).status == 401
    assert (await dav_server.call("PROPFIND", "/dav/", password=PASSWORD)).status == 207

    await accounts.set_password(ALICE, "a new and long password")
    assert (await dav_server.call("PROPFIND", "/dav/", password=PASSWORD)).status == 401
    answer = await dav_server.call("PROPFIND", "/dav/", password="a new and long password")
    assert answer.status == 207

    await accounts.delete_user(ALICE)
    answer = await dav_server.call("PROPFIND", "/dav/", password="a new and long password")
    assert answer.status == 401


@pytest_twisted.ensureDeferred
async def test_bodies_over_the_limits_are_413(dav_server: DavServer) -> None:
    """An XML body over 1 MB and a calendar object over max-resource-size get 413."""
    padding = b"<!-- " + b"x" * (1024 * 1024) + b" -->"
    big_xml = f"<d:propfind {NAMESPACES}><d:allprop/></d:propfind>".encode() + padding
    answer = await dav_server.call("PROPFIND", CALENDAR, big_xml)
    assert answer.status == 413
    dav_server.app.calendars.max_resource_size = 2000
    big_event = event("big", summary="x" * 3000)
    too_big = await dav_server.call("PUT", f"{CALENDAR}big.ics", big_event, ICS)
    assert too_big.status == 413
    assert too_big.xml().find(f"{C}max-resource-size") is not None
    assert (await dav_server.call("GET", f"{CALENDAR}big.ics")).status == 404


@pytest_twisted.ensureDeferred
async def test_bodies_over_the_site_limit_are_discarded_and_413(dav_server: DavServer) -> None:
    """
    Past the site's body limit the body is not kept, whether announced by
    Content-Length or sent chunked, and the request answers 413.
    """
    for listener in dav_server.tree.listeners:
        listener.factory.max_request_body = 4096  # type: ignore[attr-defined]
    chunk = b"<!-- " + b"x" * 1000 + b" -->"

    def chunked() -> int:
        connection = http.client.HTTPConnection("127.0.0.1", dav_server.port, timeout=30)
        try:
            connection.request(
                "PROPFIND",
                CALENDAR,
                body=iter([f"<d:propfind {NAMESPACES}><d:allprop/>".encode(), *[chunk] * 8,
                           b"</d:propfind>"]),
                headers={"Authorization": basic(ALICE, PASSWORD), "Depth": "0",
                         "Transfer-Encoding": "chunked"},
                encode_chunked=True,
            )  # fmt: skip
            answer = connection.getresponse()
            answer.read()
            return answer.status
        finally:
            connection.close()

    assert await in_thread(chunked) == 413
    announced = await dav_server.call("PUT", f"{CALENDAR}big.ics", chunk * 8, ICS)
    assert announced.status == 413
    small = await dav_server.call("PROPFIND", CALENDAR, propfind_body("d:getetag"))
    assert small.status == 207


@pytest_twisted.ensureDeferred
async def test_a_blocked_source_gets_429_even_with_the_right_password(
    dav_server: DavServer,
) -> None:
    """
    Once the brute-force guard (shared with SMTP and IMAP) blocks the
    source, DAV answers 429 with Retry-After without checking credentials,
    cached ones included.
    """
    assert (await dav_server.call("PROPFIND", "/dav/")).status == 207  # now cached
    guard = dav_server.app.security.auth
    for _ in range(guard.policy.auth_block_after):
        guard.record_failure("127.0.0.1", "mallory@example.test", "imap")
    answer = await dav_server.call("PROPFIND", "/dav/")
    assert answer.status == 429
    assert int(answer.header("retry-after") or "0") > 0
    assert answer.header("dav")


@pytest_twisted.ensureDeferred
async def test_a_client_leaving_mid_answer_does_not_disturb_others(
    dav_server: DavServer,
) -> None:
    """
    A client that asks for a long Depth 1 listing and hangs up after the
    first bytes: the server stops writing and goes on serving others.
    """
    app = dav_server.app
    info = await app.calendars.collection(dav_server.alice, "calendar")

    def fill(session: Session) -> None:
        for i in range(3000):
            dav_store.put_object(
                session, info.id, f"e{i}.ics", event(f"u{i}"), uid=f"u{i}", component="VEVENT",
                start=None, end=None, recurring=False, summary="", emails=(),
            )  # fmt: skip

    await app.db.write(fill)

    def hang_up() -> bytes:
        with socket.create_connection(("127.0.0.1", dav_server.port), timeout=30) as sock:
            sock.sendall(
                f"PROPFIND {CALENDAR} HTTP/1.1\r\nHost: x\r\nDepth: 1\r\n"
                f"Authorization: {basic(ALICE, PASSWORD)}\r\nContent-Length: 0\r\n\r\n".encode()
            )
            first = sock.recv(100)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return first

    assert (await in_thread(hang_up)).startswith(b"HTTP/1.1 207")
    after = await dav_server.call("PROPFIND", CALENDAR, propfind_body("d:getetag"), {"Depth": "1"})
    assert after.status == 207 and len(after.responses()) == 3001


class RecordingScheduler:
    """A scheduler that remembers what the DAV layer told it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, bytes | None, bytes | None]] = []

    async def after_put(
        self, account: Account, collection: str, name: str, old: bytes | None, new: bytes
    ) -> None:
        self.calls.append(("put", collection, name, old, new))

    async def after_delete(self, account: Account, collection: str, name: str, old: bytes) -> None:
        self.calls.append(("delete", collection, name, old, None))

    async def outbox_post(self, account: Account, body: bytes) -> bytes:
        if b"VFREEBUSY" not in body:
            raise OutboxError(400, "valid-scheduling-message", "not a free-busy request")
        return (
            b'<?xml version="1.0"?><C:schedule-response xmlns:C="urn:ietf:params:xml:ns:caldav"/>'
        )


@pytest_twisted.ensureDeferred
async def test_scheduler_seam_sees_calendar_changes_and_outbox_posts(
    dav_server: DavServer,
) -> None:
    """
    With a scheduler plugged in, each calendar PUT and DELETE is reported
    after it is stored, with the previous body; address books are not;
    POSTs to the outbox are answered by it.
    """
    scheduler = RecordingScheduler()
    resource = dav_server.tree.dav_resource()
    assert isinstance(resource, DavResource)
    resource.ctx.scheduler = scheduler
    path = f"{CALENDAR}s.ics"
    assert (await dav_server.call("PUT", path, event("s1", "One"), ICS)).status == 201
    assert (await dav_server.call("PUT", path, event("s1", "Two"), ICS)).status == 204
    assert (await dav_server.call("DELETE", path)).status == 204
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:C\r\nEND:VCARD\r\n"
    book = f"/dav/addressbooks/{ALICE}/contacts/c.vcf"
    assert (await dav_server.call("PUT", book, card, {"Content-Type": "text/vcard"})).status == 201
    kinds = [(kind, collection, name) for kind, collection, name, _, _ in scheduler.calls]
    assert kinds == [("put", "calendar", "s.ics")] * 2 + [("delete", "calendar", "s.ics")]
    first, second, deleted = scheduler.calls
    assert first[3] is None and b"SUMMARY:One" in (first[4] or b"")
    assert b"SUMMARY:One" in (second[3] or b"") and b"SUMMARY:Two" in (second[4] or b"")
    assert b"SUMMARY:Two" in (deleted[3] or b"")
    outbox = f"{HOME}outbox/"
    answered = await dav_server.call("POST", outbox, b"BEGIN:VCALENDAR\r\nBEGIN:VFREEBUSY", ICS)
    assert answered.status == 200 and answered.xml().tag == f"{C}schedule-response"
    refused = await dav_server.call("POST", outbox, b"BEGIN:VCALENDAR", ICS)
    assert refused.status == 400
    assert refused.xml().find(f"{C}valid-scheduling-message") is not None
