"""
The assistant, the web UI's home page: the conversation list, one
conversation's transcript (the user's words, the answers rendered from
Markdown, the trace of tool calls and the confirmation cards), and the
forms that drive it.

With JavaScript (C{static/assistant.js}) a turn streams over C{/ws}
(C{assistant.send}, C{assistant.confirm}) and the transcript is re-read
from L{AssistantPages.transcript} when it ends; without it the same forms
post here and the page comes back when the turn is over.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from gk.assistant.conversations import AssistantError, AssistantService
from gk.web.markdown import render_markdown
from gk.web.page import Page, PageCall, PageError, Reply, page, redirect

#: The longest message accepted from the form.
MAX_TEXT = 8000


def transcript_items(history: dict[str, Any]) -> list[dict[str, Any]]:
    """
    The events of a conversation prepared for the template: answers as
    safe HTML, arguments as pretty JSON, and which confirmation (the last,
    while the turn waits) can still be answered.
    """
    events: list[dict[str, Any]] = history["events"]
    waiting = history["state"] == "awaiting_confirmation"
    last_confirm = max((i for i, e in enumerate(events) if e.get("type") == "confirm"), default=-1)
    items = []
    for index, event in enumerate(events):
        item = dict(event)
        kind = event.get("type")
        if kind == "text":
            item["html"] = Markup(render_markdown(str(event.get("text", ""))))
        if kind in ("tool_call", "confirm"):
            item["pretty"] = json.dumps(event.get("arguments", {}), indent=2, ensure_ascii=False)
        if kind == "tool_result":
            item["pretty"] = json.dumps(event.get("content"), indent=2, ensure_ascii=False)[:4000]
        if kind == "confirm":
            item["open"] = waiting and index == last_confirm
        items.append(item)
    return items


class AssistantPages:
    def __init__(self, assistant: AssistantService) -> None:
        self.assistant = assistant

    def pages(self) -> list[Page]:
        return [
            page("GET", "/", self.home),
            page("GET", "/assistant/{id}", self.conversation),
            page("GET", "/assistant/{id}/transcript", self.transcript),
            page("POST", "/assistant/new", self.create),
            page("POST", "/assistant/{id}/send", self.send),
            page("POST", "/assistant/{id}/delete", self.delete),
            page("POST", "/assistant/confirm/{cid}", self.confirm),
        ]

    async def _page(self, call: PageCall, conversation_id: str | None) -> Reply:
        conversations = await self.assistant.conversations(call.account)
        history = None
        if conversation_id is not None:
            history = await self._history(call, conversation_id)
        problem = await self.assistant.problem()
        return call.render(
            "assistant.html",
            nav="assistant",
            conversations=conversations,
            current=conversation_id,
            history=history,
            items=[] if history is None else transcript_items(history),
            problem=problem,
        )

    async def _history(self, call: PageCall, conversation_id: str) -> dict[str, Any]:
        try:
            return await self.assistant.history(call.account, conversation_id)
        except AssistantError:
            raise PageError(404, "There is no such conversation.") from None

    async def home(self, call: PageCall) -> Reply:
        conversations = await self.assistant.conversations(call.account)
        if conversations and "new" not in call.query:
            return redirect(f"/assistant/{conversations[0].id}")
        return await self._page(call, None)

    async def conversation(self, call: PageCall) -> Reply:
        return await self._page(call, call.params["id"])

    async def transcript(self, call: PageCall) -> Reply:
        history = await self._history(call, call.params["id"])
        return call.render(
            "assistant_transcript.html", history=history, items=transcript_items(history)
        )

    async def create(self, call: PageCall) -> Reply:
        conversation_id = await self.assistant.create(call.account)
        text = call.form.get("text").strip()
        if text:
            await self._run(self.assistant.send(call.account, conversation_id, text[:MAX_TEXT]))
        return redirect(f"/assistant/{conversation_id}")

    async def send(self, call: PageCall) -> Reply:
        conversation_id = call.params["id"]
        text = call.form.get("text").strip()
        if not text:
            raise PageError(400, "Write a message first.")
        await self._run(self.assistant.send(call.account, conversation_id, text[:MAX_TEXT]))
        return redirect(f"/assistant/{conversation_id}")

    async def confirm(self, call: PageCall) -> Reply:
        approve = call.form.get("approve") == "yes"
        try:
            await self.assistant.confirm(call.account, call.params["cid"], approve)
        except AssistantError as e:
            raise PageError(e.status, "That confirmation was already answered.") from None
        back = call.form.get("conversation")
        return redirect(f"/assistant/{back}" if back.isalnum() else "/")

    async def delete(self, call: PageCall) -> Reply:
        try:
            await self.assistant.delete(call.account, call.params["id"])
        except AssistantError:
            raise PageError(404, "There is no such conversation.") from None
        return redirect("/?new")

    @staticmethod
    async def _run(turn: Any) -> None:
        try:
            await turn
        except AssistantError as e:
            raise PageError(e.status, str(e)) from None
