"""
Chromium (Debian's C{chromium} package, which C{make test} installs)
driven by Playwright's async API on the reactor's own asyncio loop, so a
browser test and the gk it drives run in one process and one loop.

Tests are plain functions returning a Deferred: decorate an asyncio
coroutine function with L{browser_test}; inside it, await Playwright
directly and gk's Deferreds through L{wait}.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import pytest_twisted
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from twisted.internet.defer import Deferred

from tests.web.conftest import PASSWORD, WebServer

T = TypeVar("T")

#: Phone and desktop viewport sizes (the screenshot script uses them too).
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def chromium_path() -> str:
    found = os.environ.get("GK_CHROMIUM") or shutil.which("chromium")
    if found is None:
        raise RuntimeError("no chromium: `make test` installs Debian's chromium package")
    return found


def browser_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Deferred[None]]:
    """Run an asyncio test coroutine on the reactor's loop (pytest-twisted awaits the Deferred)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(fn(*args, **kwargs)))

    return run


async def wait(d: Deferred[T] | Awaitable[T]) -> T:
    """Await a Deferred (or a Twisted coroutine) from asyncio code."""
    if not isinstance(d, Deferred):
        d = Deferred.fromCoroutine(d)  # type: ignore[arg-type]
    return await d.asFuture(asyncio.get_running_loop())


async def _launch() -> tuple[Any, Browser]:
    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(
        executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
    )
    return playwright, browser


def _block(coroutine: Coroutine[Any, Any, T]) -> T:
    result: T = pytest_twisted.blockon(Deferred.fromFuture(asyncio.ensure_future(coroutine)))
    return result


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One Chromium for the whole run (a context per test keeps tests apart)."""
    playwright, browser = _block(_launch())
    try:
        yield browser
    finally:
        _block(browser.close())
        _block(playwright.stop())


async def new_context(browser: Browser, viewport: dict[str, int] | None = None) -> BrowserContext:
    context = await browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    return context


async def sign_in(context: BrowserContext, web: WebServer, email: str) -> Page:
    """A page of C{context}, signed in as C{email} through the form, on the assistant."""
    page = await context.new_page()
    await page.goto(web.base_url + "/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


async def socket_ready(page: Page) -> None:
    """Wait until the page's live socket (/ws) is open."""
    await page.wait_for_function("window.gk && window.gk.ready()")
