"""
In Chromium: asking the assistant (the scripted Ollama plays the model)
and approving a send on its confirmation card; the answer streams over
/ws and the mail goes only after the click.
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.assistant.scripted_ollama import Reply
from tests.web.browser import browser_test, chromium, new_context, sign_in, socket_ready, wait
from tests.web.conftest import ALICE, BOB, WebServer

__all__ = ["chromium"]


async def inbox_subjects(web: WebServer, email: str) -> list[str]:
    account = web.accounts[email]
    selection = await wait(web.app.mailboxes.select(account, "INBOX"))
    indexed = await wait(web.app.mailboxes.indexed(account, "INBOX", selection.uids))
    return [m.subject for m in indexed]


@browser_test
async def test_ask_the_assistant_and_approve_a_send(web: WebServer, chromium: Browser) -> None:
    web.ollama.script(
        Reply.call("send_email", to=[BOB], subject="Lunch", body="Lunch at noon?"),
        Reply.text("Done: I sent **Lunch** to Bob."),
    )
    context = await new_context(chromium)
    try:
        page = await sign_in(context, web, ALICE)
        await socket_ready(page)
        await page.get_by_label("Message to the assistant").fill("send bob an email about lunch")
        await page.keyboard.press("Enter")

        card = page.locator(".confirm.open")
        await expect(card).to_contain_text(BOB)
        await expect(card).to_contain_text("Lunch")
        assert await inbox_subjects(web, BOB) == []  # nothing before the approval

        await card.get_by_role("button", name="Approve").click()

        answer = page.locator(".msg.answer").last
        await expect(answer).to_contain_text("Done: I sent Lunch to Bob.")
        # The final answer is rendered from Markdown by the server.
        await expect(answer.locator("strong")).to_have_text("Lunch")
        await expect(page.locator(".confirm.open")).to_have_count(0)
        assert await inbox_subjects(web, BOB) == ["Lunch"]

        # The conversation is kept: after a reload it is listed and shown again.
        await page.reload()
        await expect(page.locator("#conversations a")).to_have_count(1)
        await expect(page.locator(".msg.user")).to_have_text("send bob an email about lunch")
    finally:
        await context.close()


@browser_test
async def test_a_cancelled_send_is_not_sent(web: WebServer, chromium: Browser) -> None:
    web.ollama.script(
        Reply.call("send_email", to=[BOB], subject="Oops", body="Not this."),
        Reply.text("All right, I did not send it."),
    )
    context = await new_context(chromium)
    try:
        page = await sign_in(context, web, ALICE)
        await socket_ready(page)
        await page.get_by_label("Message to the assistant").fill("email bob oops")
        await page.get_by_role("button", name="Send", exact=True).click()
        card = page.locator(".confirm.open")
        await card.get_by_role("button", name="Cancel").click()
        await expect(page.locator(".msg.answer").last).to_contain_text("I did not send it")
        assert await inbox_subjects(web, BOB) == []
    finally:
        await context.close()
