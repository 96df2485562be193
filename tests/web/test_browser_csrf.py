"""
In Chromium: a page of another origin that posts a form to gk with the
signed-in user's cookie is refused, and a session id planted in the
browser before sign-in is never the one signed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.web.browser import browser_test, chromium, new_context, sign_in, wait
from tests.web.conftest import ALICE, WebServer

__all__ = ["chromium"]


class EvilPage(Resource):
    """A page on another origin (same host, another port) that auto-posts to gk."""

    isLeaf = True

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            f'<form id="f" method="post" action="{self.target}/assistant/new">'
            '<input name="csrf" value="guessed"><input name="text" value="send all my mail">'
            "</form><script>document.getElementById('f').submit()</script>"
        ).encode()


@pytest.fixture
def evil_site(web: WebServer) -> Iterator[str]:
    from twisted.internet import reactor

    site: Any = Site(EvilPage(web.base_url))
    port: Any = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port.getHost().port}/"
    finally:
        port.stopListening()


@browser_test
async def test_a_cross_origin_form_post_is_refused(
    web: WebServer, chromium: Browser, evil_site: str
) -> None:
    context = await new_context(chromium)
    try:
        page = await sign_in(context, web, ALICE)
        await page.goto(evil_site)
        await page.wait_for_url(web.base_url + "/assistant/new")
        await expect(page.get_by_role("alert")).to_contain_text("Cross-site requests are refused")
        assert await wait(web.tree.assistant.conversations(web.accounts[ALICE])) == []
    finally:
        await context.close()


@browser_test
async def test_a_planted_session_id_is_replaced_at_sign_in(
    web: WebServer, chromium: Browser
) -> None:
    context = await new_context(chromium)
    try:
        planted = "planted-by-an-attacker-0123456789abcdef"
        await context.add_cookies(
            [{"name": "gk_session", "value": planted, "url": web.base_url + "/"}]
        )
        page = await sign_in(context, web, ALICE)
        cookies = {c["name"]: c["value"] for c in await context.cookies(web.base_url)}
        assert cookies["gk_session"] != planted
        assert await wait(web.tree.web_sessions.find(planted)) is None
        assert await wait(web.tree.web_sessions.find(cookies["gk_session"])) is not None
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    finally:
        await context.close()
