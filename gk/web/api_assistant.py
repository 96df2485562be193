"""
The assistant part of the JSON API (C{/api/assistant/...}), over
L{gk.assistant.conversations.AssistantService}.  A message or a
confirmation answers when the turn is done or paused on the next
confirmation, with the turn's events in order (the same events stream
over C{/ws} as they happen).

    POST   /api/assistant/conversations                   -> {"id"} (201)
    GET    /api/assistant/conversations                   -> {"conversations": [...]}
    GET    /api/assistant/conversations/{id}              -> the conversation's events
    DELETE /api/assistant/conversations/{id}              -> {}
    POST   /api/assistant/conversations/{id}/messages     {"text"} -> {"events", "state"}
    POST   /api/assistant/conversations/{id}/cancel       -> {"cancelled": bool}
    POST   /api/assistant/confirmations/{confirmation_id} {"approve"} -> {"events", "state"}
"""

from __future__ import annotations

from typing import Any

from gk.assistant.conversations import AssistantError, AssistantService
from gk.web.api import ApiError, Call, Handler, Route, route


def assistant_routes(assistant: AssistantService) -> list[Route]:
    """The routes above, acting through C{assistant}."""

    async def create(call: Call) -> tuple[int, Any]:
        return 201, {"id": await assistant.create(call.account)}

    async def listing(call: Call) -> tuple[int, Any]:
        found = await assistant.conversations(call.account)
        return 200, {"conversations": [c.to_json() for c in found]}

    async def conversation(call: Call) -> tuple[int, Any]:
        return 200, await assistant.history(call.account, call.params["id"])

    async def delete(call: Call) -> tuple[int, Any]:
        await assistant.delete(call.account, call.params["id"])
        return 200, {}

    async def message(call: Call) -> tuple[int, Any]:
        text = call.field("text", str)
        turn = await assistant.send(call.account, call.params["id"], text)
        return 200, turn.to_json()

    async def cancel(call: Call) -> tuple[int, Any]:
        return 200, {"cancelled": assistant.cancel(call.account, call.params["id"])}

    async def confirm(call: Call) -> tuple[int, Any]:
        approve = call.field("approve", bool)
        turn = await assistant.confirm(call.account, call.params["confirmation"], approve)
        return 200, turn.to_json()

    routes = [
        ("POST", "assistant/conversations", create),
        ("GET", "assistant/conversations", listing),
        ("GET", "assistant/conversations/{id}", conversation),
        ("DELETE", "assistant/conversations/{id}", delete),
        ("POST", "assistant/conversations/{id}/messages", message),
        ("POST", "assistant/conversations/{id}/cancel", cancel),
        ("POST", "assistant/confirmations/{confirmation}", confirm),
    ]
    return [route(method, path, _assistant_errors(handler)) for method, path, handler in routes]


def _assistant_errors(handler: Handler) -> Handler:
    async def guarded(call: Call) -> tuple[int, Any]:
        try:
            return await handler(call)
        except AssistantError as e:
            raise ApiError(e.status, e.code, str(e)) from None

    return guarded
