"""
The settings page over real HTTP: changing the password (and what it ends),
signing one browser out, app passwords and MCP tokens shown once and
revoked, and the client set-up documents (the Apple profile, Thunderbird's
autoconfiguration).
"""

from __future__ import annotations

import dataclasses
import hashlib
import plistlib
import re
import xml.etree.ElementTree as ET

import httpx
import pytest_twisted

from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, PASSWORD, WebClient, WebServer

NEW_PASSWORD = "a much better passphrase"
#: Where a profile would carry passwords (it must not).
PASSWORD_KEYS = {"IncomingPassword", "OutgoingPassword", "CalDAVPassword", "CardDAVPassword"}
_SESSION_FORM = re.compile(r'action="/settings/sessions/([0-9a-f]{64})/end"')


@pytest_twisted.ensureDeferred
async def test_browsers_are_listed_and_signed_out_one_by_one_or_all_by_a_new_password(
    web: WebServer,
) -> None:
    accounts = web.app.accounts
    laptop = await web.client(ALICE)
    phone = await web.client(ALICE)
    tablet = await web.client(ALICE)
    bob = await web.client(BOB)

    def digest(client: WebClient) -> str:
        return hashlib.sha256(client.http.cookies["gk_session"].encode()).hexdigest()

    page = await in_thread(lambda: laptop.get("/settings"))
    listed = _SESSION_FORM.findall(page.text)
    assert sorted(listed) == sorted(digest(c) for c in (laptop, phone, tablet))
    assert "(this browser)" in page.text and "127.0.0.1" in page.text

    not_yours = await in_thread(lambda: laptop.post(f"/settings/sessions/{digest(bob)}/end"))
    assert not_yours.status_code == 404
    ended = await in_thread(lambda: laptop.post(f"/settings/sessions/{digest(phone)}/end"))
    assert ended.status_code == 303
    assert ended.headers["location"] == "/settings?done=session#sessions"
    assert (await in_thread(lambda: phone.get("/settings"))).status_code == 303
    assert (await in_thread(lambda: tablet.get("/settings"))).status_code == 200

    def change(current: str, new: str, again: str) -> httpx.Response:
        fields = {"current": current, "new": new, "again": again}
        return laptop.post("/settings/password", fields)

    differ = await in_thread(lambda: change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!"))
    assert differ.status_code == 400
    assert "The two new passwords are not the same." in differ.text
    short = await in_thread(lambda: change(PASSWORD, "short", "short"))
    assert short.status_code == 400 and "at least 10 characters" in short.text

    changed = await in_thread(lambda: change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD))
    assert changed.status_code == 303
    assert changed.headers["location"] == "/settings?done=password#password"
    assert await accounts.authenticate(ALICE, PASSWORD) is None

    signed_out = await in_thread(lambda: tablet.get("/chat"))
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/login")
    still_in = await in_thread(lambda: laptop.get("/settings?done=password"))
    assert still_in.status_code == 200
    assert "Your password was changed" in still_in.text
    assert (await in_thread(lambda: bob.get("/settings"))).status_code == 200

    wrong = await in_thread(
        lambda: change("not my password", "another passphrase", "another passphrase")
    )
    assert wrong.status_code == 403
    assert "Your current password is not right." in wrong.text
    assert await accounts.authenticate(ALICE, NEW_PASSWORD) is not None


@pytest_twisted.ensureDeferred
async def test_app_passwords_and_tokens_are_shown_once_and_stop_working_when_revoked(
    web: WebServer,
) -> None:
    accounts = web.app.accounts
    client = await web.client(ALICE)

    made = await in_thread(lambda: client.post("/settings/app-passwords", {"name": "Phone mail"}))
    assert made.status_code == 201
    found = re.search(r'id="app-password-secret">([^<]+)<', made.text)
    assert found is not None
    secret = found.group(1)
    checked = await accounts.authenticate_with_proof(ALICE, secret)
    assert checked is not None and checked.app_password_digest is not None
    again = await in_thread(lambda: client.get("/settings"))
    assert "Phone mail" in again.text and secret not in again.text

    twice = await in_thread(lambda: client.post("/settings/app-passwords", {"name": "Phone mail"}))
    assert (
        twice.status_code == 400
        and "You already have an app password with that name." in twice.text
    )
    slash = await in_thread(lambda: client.post("/settings/tokens", {"name": "a/b"}))
    assert slash.status_code == 400

    revoked = await in_thread(lambda: client.post("/settings/app-passwords/Phone%20mail/revoke"))
    assert revoked.status_code == 303
    assert await accounts.authenticate(ALICE, secret) is None
    gone = await in_thread(lambda: client.post("/settings/app-passwords/Phone%20mail/revoke"))
    assert gone.status_code == 404

    made = await in_thread(lambda: client.post("/settings/tokens", {"name": "My MCP client"}))
    assert made.status_code == 201
    assert web.base_url + "/mcp" in made.text
    found = re.search(r'id="token-secret">([^<]+)<', made.text)
    assert found is not None
    token = found.group(1)

    def api() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(web.base_url + "/api/chat/rooms", headers=headers).status_code

    assert await in_thread(api) == 200
    revoked = await in_thread(lambda: client.post("/settings/tokens/My%20MCP%20client/revoke"))
    assert revoked.status_code == 303
    assert await in_thread(api) == 401


@pytest_twisted.ensureDeferred
async def test_clients_get_their_settings_from_the_profile_and_autoconfig(web: WebServer) -> None:
    config = web.app.config
    web.app.config = dataclasses.replace(
        config,
        imap=dataclasses.replace(config.imap, listen=["tcp:143"], tls_listen=["tcp:993"]),
        submission=dataclasses.replace(config.submission, listen=["tcp:587"], tls_listen=[]),
    )
    client = await web.client(ALICE)

    page = await in_thread(lambda: client.get("/settings"))
    assert "993" in page.text and "587" in page.text
    assert "/.well-known/autoconfig/mail/config-v1.1.xml" in page.text

    profile = await in_thread(lambda: client.get("/settings/apple.mobileconfig"))
    assert profile.status_code == 200
    assert profile.headers["content-type"] == "application/x-apple-aspen-config"
    assert profile.headers["content-disposition"].startswith("attachment")
    assert PASSWORD.encode() not in profile.content
    document = plistlib.loads(profile.content)
    payloads = {p["PayloadType"]: p for p in document["PayloadContent"]}
    assert set(payloads) == {
        "com.apple.mail.managed",
        "com.apple.caldav.account",
        "com.apple.carddav.account",
    }
    mail = payloads["com.apple.mail.managed"]
    assert (mail["EmailAddress"], mail["IncomingMailServerPortNumber"]) == (ALICE, 993)
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is False
    assert mail["OutgoingMailServerPortNumber"] == 587
    assert payloads["com.apple.caldav.account"]["CalDAVUsername"] == ALICE
    for payload in document["PayloadContent"]:
        assert not PASSWORD_KEYS & set(payload)

    anonymous = await web.client(None)
    answer = await in_thread(
        lambda: anonymous.get(f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={ALICE}")
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    # Thunderbird also asks http://autoconfig.DOMAIN/mail/config-v1.1.xml.
    other = await in_thread(lambda: anonymous.get("/mail/config-v1.1.xml"))
    assert other.status_code == 200 and other.content == answer.content
    provider = ET.fromstring(answer.content).find("emailProvider")
    assert provider is not None
    assert [d.text for d in provider.findall("domain")] == ["example.test"]
    incoming = [
        (s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
        for s in provider.findall("incomingServer[@type='imap']")
    ]
    assert incoming == [
        ("mail.example.test", "993", "SSL"),
        ("mail.example.test", "143", "STARTTLS"),
    ]
    [smtp] = provider.findall("outgoingServer[@type='smtp']")
    assert (smtp.findtext("port"), smtp.findtext("socketType")) == ("587", "STARTTLS")
    assert smtp.findtext("username") == "%EMAILADDRESS%"
    other = await in_thread(lambda: anonymous.get("/.well-known/autoconfig/other.xml"))
    assert other.status_code == 404
