"""
The chat part of the JSON API (C{/api/chat/...}): the operations of
L{gk.chat.ChatService} for scripts and the assistant's tools, which need
no socket.  Answers use the same JSON as the WebSocket (C{to_json()} of
the service's results).

    GET  /api/chat/rooms                       the user's rooms, with unread counts
    POST /api/chat/rooms                       {"name", "kind", "members"} -> the room (201)
    GET  /api/chat/rooms/{id}                  the room with its members
    POST /api/chat/rooms/{id}/join             a public room -> the room
    POST /api/chat/rooms/{id}/leave            {}
    GET  /api/chat/rooms/{id}/messages         ?before=CURSOR&limit=N -> {"messages", "next"}
    POST /api/chat/rooms/{id}/messages         {"text"[, "reply_to"]} -> the message (201)
    POST /api/chat/rooms/{id}/read             {"message_id"} -> {"unread"}
    GET  /api/chat/search                      ?q=TEXT&limit=N -> {"messages"}
"""

from __future__ import annotations

from typing import Any

from gk.chat import ChatService
from gk.chat.errors import ChatError, InvalidInput, NoSuchMessage, NoSuchRoom, NotAllowed
from gk.web.api import ApiError, Call, Handler, Route, route

_STATUS: dict[type[ChatError], int] = {
    NoSuchRoom: 404,
    NoSuchMessage: 404,
    NotAllowed: 403,
    InvalidInput: 400,
}


def chat_routes(chat: ChatService) -> list[Route]:
    """The routes above, acting through C{chat}."""

    async def rooms(call: Call) -> tuple[int, Any]:
        return 200, {"rooms": [r.to_json() for r in await chat.rooms(call.account)]}

    async def create(call: Call) -> tuple[int, Any]:
        name = call.field("name", str, required=False) or ""
        kind = call.field("kind", str)
        members = call.field("members", list, required=False) or []
        if not all(isinstance(m, str) for m in members):
            raise ApiError(400, "invalid_argument", "members must be a list of addresses")
        room = await chat.create_room(call.account, name, kind, members)
        return 201, room.to_json()

    async def room(call: Call) -> tuple[int, Any]:
        return 200, (await chat.room(call.account, call.params["room"])).to_json()

    async def join(call: Call) -> tuple[int, Any]:
        return 200, (await chat.join(call.account, call.params["room"])).to_json()

    async def leave(call: Call) -> tuple[int, Any]:
        await chat.leave(call.account, call.params["room"])
        return 200, {}

    async def history(call: Call) -> tuple[int, Any]:
        before = call.query.get("before") or None
        page = await chat.history(
            call.account, call.params["room"], before, call.query_int("limit")
        )
        return 200, page.to_json()

    async def post(call: Call) -> tuple[int, Any]:
        text = call.field("text", str)
        reply_to = call.field("reply_to", int, required=False)
        message = await chat.post(call.account, call.params["room"], text, reply_to)
        return 201, message.to_json()

    async def read(call: Call) -> tuple[int, Any]:
        message_id = call.field("message_id", int)
        unread = await chat.mark_read(call.account, call.params["room"], message_id)
        return 200, {"unread": unread}

    async def search(call: Call) -> tuple[int, Any]:
        text = call.query.get("q", "")
        found = await chat.search(call.account, text, call.query_int("limit"))
        return 200, {"messages": [m.to_json() for m in found]}

    routes = [
        ("GET", "chat/rooms", rooms),
        ("POST", "chat/rooms", create),
        ("GET", "chat/rooms/{room:int}", room),
        ("POST", "chat/rooms/{room:int}/join", join),
        ("POST", "chat/rooms/{room:int}/leave", leave),
        ("GET", "chat/rooms/{room:int}/messages", history),
        ("POST", "chat/rooms/{room:int}/messages", post),
        ("POST", "chat/rooms/{room:int}/read", read),
        ("GET", "chat/search", search),
    ]
    return [route(method, path, _chat_errors(handler)) for method, path, handler in routes]


def _chat_errors(handler: Handler) -> Handler:
    """The service's refusals as API errors (404, 403, 400)."""

    async def guarded(call: Call) -> tuple[int, Any]:
        try:
            return await handler(call)
        except ChatError as e:
            status = next((s for kind, s in _STATUS.items() if isinstance(e, kind)), 400)
            raise ApiError(status, e.code, str(e)) from None

    return guarded
