"""
A running gk serving CalDAV/CardDAV on an ephemeral loopback HTTP port,
with two users (alice and bob), and a small blocking HTTP client for raw
protocol requests (run it with L{tests.helpers.in_thread}).
"""

from __future__ import annotations

import base64
import http.client
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import pytest_twisted

from gk.app import GkApp
from gk.config import load_config
from gk.service import GkService
from gk.storage.accounts import Account
from tests.conftest import ConfigWriter
from tests.helpers import in_thread

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
R = "{urn:ietf:params:xml:ns:carddav}"
CS = "{http://calendarserver.org/ns/}"
ICAL = "{http://apple.com/ns/ical/}"

NAMESPACES = (
    'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" '
    'xmlns:r="urn:ietf:params:xml:ns:carddav" xmlns:cs="http://calendarserver.org/ns/" '
    'xmlns:ical="http://apple.com/ns/ical/"'
)


HOME = f"/dav/calendars/{ALICE}/"
CALENDAR = f"{HOME}calendar/"


def event(uid: str, summary: str = "Meeting", component: str = "VEVENT", tz: bool = False) -> bytes:
    """A small calendar object; C{tz} gives it a VTIMEZONE and a local DTSTART."""
    zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        if tz
        else ""
    )
    start = "DTSTART;TZID=Europe/Paris:20250110T100000" if tz else "DTSTART:20250110T100000Z"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gk tests//EN\r\n"
        f"{zone}BEGIN:{component}\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
        f"{start}\r\nSUMMARY:{summary}\r\nEND:{component}\r\nEND:VCALENDAR\r\n"
    ).encode()


ICS = {"Content-Type": "text/calendar; charset=utf-8"}


def proppatch(*instructions: str) -> bytes:
    """A PROPPATCH body of C{instructions} (C{x:} is a dead-property namespace)."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><d:propertyupdate {NAMESPACES} '
        f'xmlns:x="urn:example:dead">{"".join(instructions)}</d:propertyupdate>'
    ).encode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Every value of every header, by lower-case name.
    all_headers: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def responses(self) -> dict[str, ET.Element]:
        """The multistatus responses by href."""
        root = self.xml()
        assert root.tag == f"{D}multistatus", self.body[:200]
        return {r.findtext(f"{D}href") or "": r for r in root.iter(f"{D}response")}


def prop_status(response: ET.Element, name: str) -> int | None:
    """The status of property C{name} in a multistatus response element."""
    for propstat in response.iter(f"{D}propstat"):
        prop = propstat.find(f"{D}prop")
        if prop is not None and prop.find(name) is not None:
            return int((propstat.findtext(f"{D}status") or "").split()[1])
    return None


def prop(response: ET.Element, name: str) -> ET.Element | None:
    """Property C{name} of a response, if found (200)."""
    for propstat in response.iter(f"{D}propstat"):
        if " 200 " in (propstat.findtext(f"{D}status") or ""):
            found = propstat.find(f"{D}prop/{name}")
            if found is not None:
                return found
    return None


def prop_text(response: ET.Element, name: str) -> str | None:
    """The text of property C{name} of a response, if found (200)."""
    found = prop(response, name)
    return None if found is None else (found.text or "")


def propfind_body(*names: str) -> bytes:
    """A PROPFIND asking for C{names}, given as C{prefix:local} with the NAMESPACES prefixes."""
    inner = "".join(f"<{name}/>" for name in names)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><d:propfind {NAMESPACES}>'
        f"<d:prop>{inner}</d:prop></d:propfind>"
    ).encode()


@dataclass
class DavServer:
    app: GkApp
    tree: GkService
    alice: Account
    bob: Account
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        user: str | None = ALICE,
        password: str = PASSWORD,
    ) -> Response:
        """One blocking request; C{user} L{None} sends no credentials."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = dict(headers or {})
            if user is not None and "Authorization" not in sent:
                sent["Authorization"] = basic(user, password)
            if body and "Content-Type" not in sent:
                sent["Content-Type"] = "application/xml; charset=utf-8"
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in sent.items():
                connection.putheader(name, value)
            if body or method in ("PUT", "POST", "PROPFIND", "PROPPATCH", "REPORT"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            answer = connection.getresponse()
            data = answer.read()
            all_headers: dict[str, list[str]] = {}
            for name, value in answer.getheaders():
                all_headers.setdefault(name.lower(), []).append(value)
            return Response(
                answer.status,
                {name: values[-1] for name, values in all_headers.items()},
                data,
                all_headers,
            )
        finally:
            connection.close()

    async def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        user: str | None = ALICE,
        password: str = PASSWORD,
    ) -> Response:
        """L{request} run off the reactor thread."""
        return await in_thread(
            lambda: self.request(method, path, body, headers, user=user, password=password)
        )


def http_port(tree: GkService) -> int:
    for listener in tree.listeners:
        if listener.role == "http" and listener.bound is not None:
            return int(listener.bound.address.rpartition(":")[2])
    raise LookupError("no http listener")


@pytest_twisted.async_yield_fixture
async def dav_server(write_config: ConfigWriter, database_url: str) -> AsyncIterator[DavServer]:
    """gk with the HTTP listener on 127.0.0.1:0 (delivery worker off), alice and bob."""
    from twisted.internet import reactor

    config_file = write_config("[delivery]\nworker = false\n", database_url=database_url)
    app = GkApp.build(load_config(config_file, environ={}), reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    try:
        alice = await app.accounts.create_user(ALICE, PASSWORD)
        bob = await app.accounts.create_user(BOB, PASSWORD)
        yield DavServer(app, tree, alice, bob, http_port(tree))
    finally:
        await tree.stopService()
        app.db.dispose()
