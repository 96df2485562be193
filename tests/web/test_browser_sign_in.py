"""In Chromium: signing in, and the assistant's home page with its live socket."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.web.browser import browser_test, chromium, new_context, sign_in, socket_ready
from tests.web.conftest import ALICE, WebServer

__all__ = ["chromium"]


@browser_test
async def test_sign_in_lands_on_the_assistant_with_a_live_socket(
    web: WebServer, chromium: Browser
) -> None:
    context = await new_context(chromium)
    try:
        page = await context.new_page()
        await page.goto(web.base_url + "/mail")
        await expect(page).to_have_url(web.base_url + "/login?next=%2Fmail")
        await page.get_by_label("Email address").fill(ALICE)
        await page.get_by_label("Password").fill("wrong password, clearly")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("Wrong address or password")

        page = await sign_in(context, web, ALICE)
        await expect(page.get_by_role("heading", name="Ask gk")).to_be_visible()
        await socket_ready(page)
    finally:
        await context.close()
