"""
In Chromium: alice and bob chat live in a room, each in their own browser,
and a message for bob while he is elsewhere raises his unread badge and a
notification.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page, expect

from tests.web.browser import browser_test, chromium, new_context, sign_in, socket_ready
from tests.web.conftest import ALICE, BOB, WebServer

__all__ = ["chromium"]


async def say(page: Page, text: str) -> None:
    """Type a message in the room's box and send it with Enter."""
    box = page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


@browser_test
async def test_two_people_chat_live_and_the_absent_one_is_notified(
    web: WebServer, chromium: Browser
) -> None:
    alice_context = await new_context(chromium)
    bob_context = await new_context(chromium)
    try:
        alice = await sign_in(alice_context, web, ALICE)
        await alice.goto(web.base_url + "/chat")
        await alice.get_by_label("Name", exact=True).fill("team")
        await alice.get_by_label("Private: only the people you add").check()
        await alice.get_by_label("People to add").fill(BOB)
        await alice.get_by_role("button", name="Create room").click()
        await expect(alice.get_by_role("heading", name="team")).to_be_visible()
        room_url = alice.url

        bob = await sign_in(bob_context, web, BOB)
        await bob.goto(web.base_url + "/chat")
        await bob.get_by_role("link", name="team").click()
        await expect(bob).to_have_url(room_url)
        await socket_ready(alice)
        await socket_ready(bob)

        await alice.get_by_label("Message", exact=True).fill("Hello Bob")
        await expect(bob.locator("#chat-typing")).to_have_text("alice is typing…")
        await say(alice, "Hello Bob, is the deploy done?")
        await expect(bob.locator("#chat-log")).to_contain_text("Hello Bob, is the deploy done?")
        await expect(bob.locator("#chat-typing")).to_have_text("")
        await say(bob, "Yes, <b>all green</b>")
        await expect(alice.locator("#chat-log")).to_contain_text("Yes, <b>all green</b>")
        await expect(bob.locator("#chat-log")).to_contain_text("Yes, <b>all green</b>")

        # Alice edits her question; Bob sees the change live and reacts to it.
        asked = alice.locator(".chat-line.mine", has_text="is the deploy done?")
        question = alice.locator(f"#{await asked.get_attribute('id')}")
        alice.once("dialog", lambda d: asyncio.ensure_future(d.accept("Is the deploy done now?")))
        await question.hover()
        await question.get_by_role("button", name="Edit").click()
        edited = bob.locator(".chat-line", has_text="Is the deploy done now?")
        await expect(edited.locator(".edited")).to_have_text("(edited)")
        await edited.hover()
        await edited.get_by_role("button", name="👍").click()
        await expect(question.locator(".reaction")).to_have_text("👍 1")
        # Bob's own extra line, deleted: gone for Alice too.
        await say(bob, "typo, ignore")
        mistake = bob.locator(".chat-line.mine", has_text="typo, ignore")
        bob.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await mistake.hover()
        await mistake.get_by_role("button", name="Delete").click()
        await expect(alice.locator("#chat-log")).not_to_contain_text("typo, ignore")
        await expect(alice.locator(".chat-line.deleted")).to_have_count(1)

        await bob.goto(web.base_url + "/settings")
        await socket_ready(bob)
        await expect(bob.locator("#chat-unread")).to_be_hidden()
        await say(alice, "Thanks! Lunch?")
        await expect(bob.locator("#chat-unread")).to_have_text("1")
        notification = bob.locator("#toasts").get_by_role("link")
        await expect(notification).to_contain_text("alice@example.test: Thanks! Lunch?")
        await notification.click()
        await expect(bob).to_have_url(room_url)
        await expect(bob.locator("#chat-log")).to_contain_text("Thanks! Lunch?")
        await expect(bob.locator("#chat-unread")).to_be_hidden()
    finally:
        await alice_context.close()
        await bob_context.close()
