"""
The commands of C{/ws} (protocol version 1, C{docs/websocket.md}): each
client message type mapped to a call of a service module, as the
connection's user.  Chat commands call L{gk.chat.ChatService}; presence
and typing indicators live here, since they last only as long as the
sockets that carry them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from gk.chat import ChatService
from gk.chat.errors import ChatError
from gk.events import ChatChanged, ChatMention
from gk.storage.accounts import Account
from gk.ws import protocol
from gk.ws.connection import Handler, LiveSocket
from gk.ws.hub import LiveHub
from gk.ws.protocol import ClientMessage, ProtocolError

Command = Callable[[LiveSocket, ClientMessage], Awaitable[Any]]

#: Seconds between two typing indicators of one socket for one room that
#: are passed on (clients send one every few seconds while typing).
TYPING_INTERVAL = 2.0

#: Longest texts and lists accepted (the service checks its own limits
#: again; these only keep frames from holding absurd values).
MAX_TEXT = 20_000
MAX_NAME = 200
MAX_MEMBERS = 500
MAX_EMOJI = 64
MAX_CURSOR = 200
MAX_QUERY = 500


class LiveCommands(Handler):
    """The socket's command table (see the module docstring)."""

    def __init__(
        self, hub: LiveHub, chat: ChatService, more: Mapping[str, Command] | None = None
    ) -> None:
        """
        @param more: further commands by type (the assistant's), added to
            the table; a type already taken is an error.
        """
        self.hub = hub
        self.chat = chat
        self._typing: dict[tuple[int, int], float] = {}
        self._commands: dict[str, Command] = {
            "hello": self.hello,
            "ping": self.ping,
            "sync": self.sync,
            "presence.set": self.presence_set,
            "presence.get": self.presence_get,
            "chat.rooms": self.rooms,
            "chat.public_rooms": self.public_rooms,
            "chat.room": self.room,
            "chat.create_room": self.create_room,
            "chat.join": self.join,
            "chat.leave": self.leave,
            "chat.add_members": self.add_members,
            "chat.remove_member": self.remove_member,
            "chat.history": self.history,
            "chat.thread": self.thread,
            "chat.post": self.post,
            "chat.edit": self.edit,
            "chat.delete": self.delete,
            "chat.react": self.react,
            "chat.read": self.read,
            "chat.search": self.search,
            "chat.typing": self.typing,
        }
        for name, command in (more or {}).items():
            if name in self._commands:
                raise ValueError(f"command {name!r} defined twice")
            self._commands[name] = command
        hub.forward(ChatChanged, _chat_changed)
        hub.forward(ChatMention, _chat_mention)
        hub.peers_of = self.peers_of

    # -- Handler --------------------------------------------------------------------

    async def handle(self, connection: LiveSocket, message: ClientMessage) -> Any:
        command = self._commands.get(message.type)
        if command is None:
            raise ProtocolError("unknown_type", f"no command {message.type!r}", message.id)
        try:
            return await command(connection, message)
        except ChatError as e:
            raise ProtocolError(e.code, str(e), message.id) from None

    def opened(self, connection: LiveSocket) -> None:
        self.hub.add(connection)

    def closed(self, connection: LiveSocket) -> None:
        self.hub.remove(connection)
        for key in [k for k in self._typing if k[0] == id(connection)]:
            del self._typing[key]

    async def peers_of(self, account: Account) -> Iterable[int]:
        """The users who share a room with C{account} (its presence goes to them)."""
        return await self.chat.peers(account)

    # -- the connection -------------------------------------------------------------

    async def hello(self, connection: LiveSocket, message: ClientMessage) -> Any:
        """Who the socket is, the protocol version, and the chat log's position."""
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "user": connection.account.email,
            "position": await self.chat.position(connection.account),
        }

    async def ping(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return {}

    async def sync(self, connection: LiveSocket, message: ClientMessage) -> Any:
        """The chat changes after C{since} (what a reconnecting client missed)."""
        since = message.integer("since")
        limit = message.integer("limit", required=False, minimum=1)
        assert since is not None
        batch = await self.chat.changes_since(connection.account, since, limit)
        # The same shape as the live events, so a client handles both alike.
        events = [
            {
                "event": f"chat.{c.kind}",
                "position": c.position,
                "data": _chat_data(c.room_id, c.payload),
            }
            for c in batch.changes
        ]
        return {"events": events, "position": batch.position, "more": batch.has_more}

    async def presence_set(self, connection: LiveSocket, message: ClientMessage) -> Any:
        status = message.text("status", max_length=16)
        if status not in ("online", "away"):
            raise message.invalid('status is "online" or "away"')
        self.hub.set_away(connection, status == "away")
        return {"status": self.hub.presence(connection.account.id)}

    async def presence_get(self, connection: LiveSocket, message: ClientMessage) -> Any:
        """The presence of the members of a room the user is in."""
        info = await self.chat.room(connection.account, self._room_id(message))
        return {m.email: self.hub.presence(m.user_id) for m in info.members}

    # -- chat -----------------------------------------------------------------------

    async def rooms(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return {"rooms": [r.to_json() for r in await self.chat.rooms(connection.account)]}

    async def public_rooms(self, connection: LiveSocket, message: ClientMessage) -> Any:
        found = await self.chat.public_rooms(connection.account)
        return {"rooms": [r.to_json() for r in found]}

    async def room(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return (await self.chat.room(connection.account, self._room_id(message))).to_json()

    async def create_room(self, connection: LiveSocket, message: ClientMessage) -> Any:
        name = message.text("name", max_length=MAX_NAME, required=False) or ""
        kind = message.text("kind", max_length=16)
        assert kind is not None
        members = message.strings("members", max_items=MAX_MEMBERS, max_length=320)
        room = await self.chat.create_room(connection.account, name, kind, members)
        return room.to_json()

    async def join(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return (await self.chat.join(connection.account, self._room_id(message))).to_json()

    async def leave(self, connection: LiveSocket, message: ClientMessage) -> Any:
        await self.chat.leave(connection.account, self._room_id(message))
        return {}

    async def add_members(self, connection: LiveSocket, message: ClientMessage) -> Any:
        members = message.strings("members", max_items=MAX_MEMBERS, max_length=320)
        room = await self.chat.add_members(connection.account, self._room_id(message), members)
        return room.to_json()

    async def remove_member(self, connection: LiveSocket, message: ClientMessage) -> Any:
        email = message.text("member", max_length=320)
        assert email is not None
        room = await self.chat.remove_member(connection.account, self._room_id(message), email)
        return room.to_json()

    async def history(self, connection: LiveSocket, message: ClientMessage) -> Any:
        before = message.text("before", max_length=MAX_CURSOR, required=False)
        limit = message.integer("limit", required=False, minimum=1)
        page = await self.chat.history(connection.account, self._room_id(message), before, limit)
        return page.to_json()

    async def thread(self, connection: LiveSocket, message: ClientMessage) -> Any:
        found = await self.chat.thread(connection.account, self._message_id(message))
        return found.to_json()

    async def post(self, connection: LiveSocket, message: ClientMessage) -> Any:
        text = message.text("text", max_length=MAX_TEXT)
        assert text is not None
        reply_to = message.integer("reply_to", required=False, minimum=1)
        posted = await self.chat.post(connection.account, self._room_id(message), text, reply_to)
        return posted.to_json()

    async def edit(self, connection: LiveSocket, message: ClientMessage) -> Any:
        text = message.text("text", max_length=MAX_TEXT)
        assert text is not None
        edited = await self.chat.edit(connection.account, self._message_id(message), text)
        return edited.to_json()

    async def delete(self, connection: LiveSocket, message: ClientMessage) -> Any:
        deleted = await self.chat.delete(connection.account, self._message_id(message))
        return deleted.to_json()

    async def react(self, connection: LiveSocket, message: ClientMessage) -> Any:
        emoji = message.text("emoji", max_length=MAX_EMOJI)
        assert emoji is not None
        on = message.flag("on", True)
        found = await self.chat.react(connection.account, self._message_id(message), emoji, on)
        return found.to_json()

    async def read(self, connection: LiveSocket, message: ClientMessage) -> Any:
        unread = await self.chat.mark_read(
            connection.account, self._room_id(message), self._message_id(message)
        )
        return {"unread": unread}

    async def search(self, connection: LiveSocket, message: ClientMessage) -> Any:
        text = message.text("text", max_length=MAX_QUERY)
        assert text is not None
        limit = message.integer("limit", required=False, minimum=1)
        found = await self.chat.search(connection.account, text, limit)
        return {"messages": [m.to_json() for m in found]}

    async def typing(self, connection: LiveSocket, message: ClientMessage) -> Any:
        """
        Tell the room's other members that the user is typing (an event
        C{chat.typing}; clients show it for a few seconds).  Repeats within
        L{TYPING_INTERVAL} are accepted and not passed on.
        """
        room_id = self._room_id(message)
        key = (id(connection), room_id)
        now = connection.factory.clock.seconds()
        if now - self._typing.get(key, -TYPING_INTERVAL) < TYPING_INTERVAL:
            return {}
        self._typing[key] = now
        info = await self.chat.room(connection.account, room_id)
        frame = protocol.event(
            "chat.typing", {"room_id": room_id, "user": connection.account.email}
        )
        for member in info.members:
            if member.user_id != connection.account.id:
                self.hub.send_to_user(member.user_id, frame)
        return {}

    # -- arguments ------------------------------------------------------------------

    @staticmethod
    def _room_id(message: ClientMessage) -> int:
        room_id = message.integer("room_id", minimum=1)
        assert room_id is not None
        return room_id

    @staticmethod
    def _message_id(message: ClientMessage) -> int:
        message_id = message.integer("message_id", minimum=1)
        assert message_id is not None
        return message_id


def _chat_data(room_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"room_id": room_id, **payload}


def _chat_changed(event: ChatChanged) -> tuple[str, Any, int | None]:
    return f"chat.{event.kind}", _chat_data(event.room_id, event.payload), event.position


def _chat_mention(event: ChatMention) -> tuple[str, Any, int | None]:
    data = {
        "room_id": event.room_id,
        "message_id": event.message_id,
        "from": event.sender,
        "text": event.text,
    }
    return "chat.mention", data, None
