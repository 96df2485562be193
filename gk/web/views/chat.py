"""
The web UI's chat: the user's rooms and direct conversations with their
unread counts, the public room directory, creating a room or opening a
direct conversation, and one room's history with a box to write in.

Routes (every id is resolved through L{ChatService} as the signed-in
user, so a room they may not see answers 404 like one that does not exist)::

    GET  /chat                          rooms, directory, create forms
    GET  /chat/{room}                   a room: the newest page of history
                                        (?before=CURSOR: an older page, without JavaScript)
    GET  /chat/{room}/older             ?before=CURSOR: an older page as a fragment (htmx)
    POST /chat/{room}                   post a message (text)
    POST /chat/{room}/join              join a public room
    POST /chat/{room}/leave             leave a room
    POST /chat/{room}/read              mark everything read (JavaScript does it by itself)
    POST /chat/{room}/members           add people (the owner)
    POST /chat/rooms                    create a room (name, kind, members)
    POST /chat/direct                   open a direct conversation (email)

With JavaScript (C{static/chat.js}) messages are posted and received over
C{/ws} (C{chat.post}, events C{chat.message.*}) and the room is marked
read while it is on screen; without it the forms above do the same work
and the page comes back after each.  Viewing a page never changes state.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gk.chat import (
    DIRECT,
    OWNER,
    PRIVATE,
    PUBLIC,
    ChatError,
    ChatService,
    InvalidInput,
    NoSuchMessage,
    NoSuchRoom,
    NotAllowed,
    RoomSummary,
)
from gk.web.page import Page, PageCall, PageError, Reply, page, redirect

if TYPE_CHECKING:
    from gk.service import GkService

#: Messages on a page of history.
PAGE_SIZE = 40
#: The longest form field read (the service has its own, stricter limits).
MAX_FIELD = 20_000
#: Separators of a list of addresses typed in a form.
_SEPARATORS = re.compile(r"[\s,;]+")

_STATUS: dict[type[ChatError], int] = {
    NoSuchRoom: 404,
    NoSuchMessage: 404,
    NotAllowed: 403,
    InvalidInput: 400,
}


def addresses(text: str) -> list[str]:
    """The addresses of a form field, separated by commas, semicolons or spaces."""
    return [part for part in _SEPARATORS.split(text[:MAX_FIELD]) if part]


def refusal(error: ChatError) -> PageError:
    """A refusal of the chat service as the page answer it calls for."""
    status = next((s for kind, s in _STATUS.items() if isinstance(error, kind)), 400)
    message = str(error)
    if isinstance(error, NoSuchRoom):
        message = "There is no such room, or you are not in it."
    return PageError(status, message[:1].upper() + message[1:])


def split_rooms(rooms: list[RoomSummary]) -> tuple[list[RoomSummary], list[RoomSummary]]:
    """Rooms and direct conversations, each most recently active first."""
    return [r for r in rooms if r.kind != DIRECT], [r for r in rooms if r.kind == DIRECT]


class ChatPages:
    """The chat pages of the web UI, acting through the service tree's L{ChatService}."""

    def __init__(self, tree: GkService) -> None:
        self.tree = tree
        self.chat: ChatService = tree.app.chat

    def pages(self) -> list[Page]:
        return [
            page("GET", "/chat", self.overview),
            page("GET", "/chat/{room:int}", self.room),
            page("GET", "/chat/{room:int}/older", self.older),
            page("POST", "/chat/{room:int}", self.post),
            page("POST", "/chat/{room:int}/join", self.join),
            page("POST", "/chat/{room:int}/leave", self.leave),
            page("POST", "/chat/{room:int}/read", self.mark_read),
            page("POST", "/chat/{room:int}/members", self.add_members),
            page("POST", "/chat/rooms", self.create_room),
            page("POST", "/chat/direct", self.direct),
        ]

    # -- pages ---------------------------------------------------------------------

    async def _sidebar(self, call: PageCall) -> dict[str, Any]:
        summaries = await self.chat.rooms(call.account)
        rooms, directs = split_rooms(summaries)
        return {"nav": "chat", "rooms": rooms, "directs": directs, "summaries": summaries}

    async def overview(self, call: PageCall) -> Reply:
        return await self._overview(call)

    async def _overview(
        self, call: PageCall, status: int = 200, error: str = "", form: str = ""
    ) -> Reply:
        context = await self._sidebar(call)
        directory = await self.chat.public_rooms(call.account)
        return call.render(
            "chat.html",
            status,
            current=None,
            directory=directory,
            error=error,
            error_form=form,
            values=call.form,
            **context,
        )

    async def room(self, call: PageCall) -> Reply:
        return await self._room(call, call.params["room"])

    async def _room(
        self, call: PageCall, room_id: int, status: int = 200, error: str = "", text: str = ""
    ) -> Reply:
        before = call.query.get("before") or None
        context = await self._sidebar(call)
        try:
            room = await self.chat.room(call.account, room_id)
            history = await self.chat.history(call.account, room_id, before, PAGE_SIZE)
        except NotAllowed:
            return await self._preview(call, room_id, context)
        except ChatError as e:
            raise refusal(e) from None
        summary = next((s for s in context["summaries"] if s.id == room_id), None)
        messages = list(reversed(history.messages))
        return call.render(
            "chat_room.html",
            status,
            current=room,
            current_id=room.id,
            messages=messages,
            next=history.next,
            before=before,
            live=before is None,
            last_id=messages[-1].id if messages and before is None else 0,
            unread=0 if summary is None else summary.unread,
            is_owner=room.role == OWNER,
            error=error,
            text=text,
            **context,
        )

    async def _preview(self, call: PageCall, room_id: int, context: dict[str, Any]) -> Reply:
        """A public room the user has not joined: its name and a Join button."""
        directory = await self.chat.public_rooms(call.account)
        found = next((r for r in directory if r.id == room_id), None)
        if found is None:
            raise PageError(404, "There is no such room, or you are not in it.")
        return call.render("chat_join.html", public=found, current=None, **context)

    async def older(self, call: PageCall) -> Reply:
        room_id = call.params["room"]
        before = call.query.get("before") or None
        if before is None:
            raise PageError(400, "Say which messages to go back from.")
        try:
            history = await self.chat.history(call.account, room_id, before, PAGE_SIZE)
        except ChatError as e:
            raise refusal(e) from None
        return call.render(
            "chat_older.html",
            current_id=room_id,
            messages=list(reversed(history.messages)),
            next=history.next,
        )

    # -- forms -----------------------------------------------------------------------

    async def post(self, call: PageCall) -> Reply:
        room_id = call.params["room"]
        text = call.form.get("text")[:MAX_FIELD]
        if not text.strip():
            return await self._room(call, room_id, 400, "Write a message first.")
        try:
            await self.chat.post(call.account, room_id, text)
        except InvalidInput as e:
            return await self._room(call, room_id, 400, refusal(e).message, text)
        except ChatError as e:
            raise refusal(e) from None
        return redirect(f"/chat/{room_id}")

    async def join(self, call: PageCall) -> Reply:
        room_id = call.params["room"]
        try:
            await self.chat.join(call.account, room_id)
        except ChatError as e:
            raise refusal(e) from None
        return redirect(f"/chat/{room_id}")

    async def leave(self, call: PageCall) -> Reply:
        try:
            await self.chat.leave(call.account, call.params["room"])
        except ChatError as e:
            raise refusal(e) from None
        return redirect("/chat")

    async def mark_read(self, call: PageCall) -> Reply:
        room_id = call.params["room"]
        try:
            newest = await self.chat.history(call.account, room_id, None, 1)
            if newest.messages:
                await self.chat.mark_read(call.account, room_id, newest.messages[0].id)
        except ChatError as e:
            raise refusal(e) from None
        return redirect(f"/chat/{room_id}")

    async def add_members(self, call: PageCall) -> Reply:
        room_id = call.params["room"]
        members = addresses(call.form.get("members"))
        if not members:
            return await self._room(call, room_id, 400, "Name at least one person to add.")
        try:
            await self.chat.add_members(call.account, room_id, members)
        except (InvalidInput, NotAllowed) as e:
            return await self._room(call, room_id, refusal(e).status, refusal(e).message)
        except ChatError as e:
            raise refusal(e) from None
        return redirect(f"/chat/{room_id}")

    async def create_room(self, call: PageCall) -> Reply:
        kind = call.form.get("kind", PUBLIC)
        if kind not in (PUBLIC, PRIVATE):
            return await self._overview(call, 400, "Choose a public or a private room.", "room")
        name = call.form.get("name").strip()[:MAX_FIELD]
        if not name:
            return await self._overview(call, 400, "Give the room a name.", "room")
        members = addresses(call.form.get("members"))
        try:
            room = await self.chat.create_room(call.account, name, kind, members)
        except ChatError as e:
            return await self._overview(call, refusal(e).status, refusal(e).message, "room")
        return redirect(f"/chat/{room.id}")

    async def direct(self, call: PageCall) -> Reply:
        people = addresses(call.form.get("email"))
        if len(people) != 1:
            return await self._overview(
                call, 400, "Give the address of the one person to write to.", "direct"
            )
        try:
            room = await self.chat.create_room(call.account, "", DIRECT, people)
        except ChatError as e:
            return await self._overview(call, refusal(e).status, refusal(e).message, "direct")
        return redirect(f"/chat/{room.id}")
