"""
In Chromium: a hostile HTML mail is read and nothing in it runs or loads
(until the reader asks for the images), and a message written in the
browser with an attachment arrives intact, as IMAP shows it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from imapclient import IMAPClient  # type: ignore[import-untyped]
from playwright.async_api import Browser, FilePayload, expect
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.helpers import client_tls, in_thread
from tests.web.browser import browser_test, chromium, new_context, sign_in, wait
from tests.web.conftest import ALICE, BOB, CAROL, PASSWORD, WebServer

__all__ = ["chromium"]

#: A 1x1 transparent GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


class Counter(Resource):
    """A web server on loopback that notes every request made to it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.arrived = asyncio.Event()

    def render_GET(self, request: Request) -> bytes:
        self.paths.append(request.path.decode("ascii", "replace"))
        self.arrived.set()
        request.setHeader(b"content-type", b"image/gif")
        return PIXEL


def hostile(port: int) -> bytes:
    """A mail that tries every way to run a script or fetch from C{port}."""
    here = f"http://127.0.0.1:{port}"
    mail = EmailMessage()
    mail["From"] = CAROL
    mail["To"] = ALICE
    mail["Subject"] = "Quarterly figures"
    mail.set_content("See the HTML version.")
    mail.add_alternative(
        f"""<html><head><link rel="stylesheet" href="{here}/style.css">
<meta http-equiv="refresh" content="0;url={here}/refresh"></head><body>
<p>Dear reader, the figures are in.</p>
<img src="{here}/pixel.png" alt="tracking pixel">
<img src="nothing" onerror="fetch('{here}/onerror-ran')">
<div style="background-image: url({here}/css.png)">styled</div>
<script>
  fetch("{here}/script-ran");
  document.title = "script ran";
  document.body.insertAdjacentHTML("beforeend", "<p>script ran</p>");
</script>
<iframe src="{here}/frame"></iframe>
<a href="javascript:fetch('{here}/link-ran')">a link</a>
</body></html>""",
        subtype="html",
    )
    return mail.as_bytes(policy=email.policy.SMTP)


@browser_test
async def test_a_hostile_mail_runs_and_loads_nothing_until_images_are_asked_for(
    web: WebServer, chromium: Browser
) -> None:
    counter = Counter()
    site: Any = Site(counter)
    port: IListeningPort = reactor.listenTCP(0, site, interface="127.0.0.1")
    context = await new_context(chromium)
    try:
        account = web.accounts[ALICE]
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        server_port = address.port
        stored = await wait(web.app.mailstore.deliver(account, hostile(server_port)))
        refs = await wait(web.app.mailboxes.folder_refs(account))
        ident = f"{next(f.id for f in refs if f.name == 'INBOX')}-{stored.uid}"

        page = await sign_in(context, web, ALICE)
        await page.goto(f"{web.base_url}/mail/m/{ident}")
        await expect(page.get_by_role("heading", name="Quarterly figures")).to_be_visible()
        frame = page.frame_locator("iframe.mail-frame")
        await expect(frame.get_by_text("Dear reader, the figures are in.")).to_be_visible()
        await expect(frame.get_by_text("styled")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        assert counter.paths == []
        await expect(frame.get_by_text("script ran")).to_have_count(0)
        assert "script ran" not in await page.title()

        await page.get_by_role("link", name="Show images").click()
        await expect(page).to_have_url(f"{web.base_url}/mail/m/{ident}?images=1")
        await asyncio.wait_for(counter.arrived.wait(), 15)
        assert "/pixel.png" in counter.paths
        await page.wait_for_load_state("networkidle")
        ran = [p for p in counter.paths if p.endswith("-ran") or p in ("/refresh", "/frame")]
        assert ran == []
        await expect(frame.get_by_text("script ran")).to_have_count(0)
    finally:
        await context.close()
        await wait(maybeDeferred(port.stopListening))


@browser_test
async def test_write_and_send_a_message_with_an_attachment(
    web: WebServer, chromium: Browser
) -> None:
    payload = bytes(range(256)) * 40 + b"\r\nend\n"
    context = await new_context(chromium)
    try:
        page = await sign_in(context, web, ALICE)
        await page.goto(f"{web.base_url}/mail")
        await page.get_by_role("link", name="Write a message").click()
        await page.get_by_label("To", exact=True).fill(f"Bob <{BOB}>")
        await page.get_by_label("Subject").fill("The figures")
        await page.get_by_label("Message", exact=True).fill("Here they are.\nAlice")
        await page.get_by_label("Attach files").set_input_files(
            files=FilePayload(name="figures 2026.bin", mimeType="application/x-gk", buffer=payload)
        )
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("status").filter(has_text="Message sent.")).to_be_visible()
        await expect(page.locator(".mail-subject").first).to_have_text("The figures")

        port = web.port_of("imap")

        def fetch(user: str, folder: str) -> list[bytes]:
            client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=15)
            try:
                client.starttls(client_tls())
                client.login(user, PASSWORD)
                client.select_folder(folder, readonly=True)
                uids = client.search(["SUBJECT", "The figures"])
                found: dict[int, dict[bytes, Any]] = client.fetch(uids, ["BODY.PEEK[]"])
                return [found[uid][b"BODY[]"] for uid in uids]
            finally:
                client.logout()

        for user, folder in ((ALICE, "Sent"), (BOB, "INBOX")):
            [raw] = await wait(in_thread(fetch, user, folder))
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert parsed["To"] == f"Bob <{BOB}>" and parsed["From"] == ALICE
            assert "Here they are." in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            [attachment] = list(parsed.iter_attachments())
            assert attachment.get_filename() == "figures 2026.bin"
            assert attachment.get_content_type() == "application/x-gk"
            assert attachment.get_payload(decode=True) == payload
    finally:
        await context.close()
