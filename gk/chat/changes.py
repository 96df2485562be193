"""
The chat change log as clients see it: the kinds of change, their JSON
payloads, and the events that announce them.

A change names what changed, not a copy of it: a message change's
payload is the message as it is when the payload is built, so a client
that replays changes in order ends with the current state, and a deleted
message's text does not live on in the log.

Payloads by kind (every change also has C{position}, C{kind}, C{room_id}):

  - C{room.created}: C{{"room": room, "by"}} (the room with its members,
    as L{gk.storage.chat_store.RoomInfo.to_json}; C{by} made it).
  - C{member.joined}: C{{"room": ref, "email", "role", "by"}}: C{email}
    joined (C{by} is themselves) or was added by C{by}.
  - C{member.left}: C{{"room": ref, "email", "by"}}: left, or removed by C{by}.
  - C{member.role}: C{{"room": ref, "email", "role"}}: e.g. the longest
    member became owner when the last owner left.
  - C{message.posted}, C{message.edited}, C{message.deleted}:
    C{{"message": message}} (L{gk.storage.chat_store.MessageInfo.to_json};
    a reply also adds one to its root's C{reply_count}, a deleted reply
    takes it away).  Posting moves the sender's read marker to the new
    message without a C{read.marked} change.
  - C{reaction.changed}: C{{"message": message, "emoji", "email", "on"}}.
  - C{read.marked}: C{{"message_id"}}: the user's own read marker moved
    (only they see it).

C{ref} is C{{"id", "name", "kind"}}, the name as the viewer sees it (the
other person's address for a direct room).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from gk.events import ChatChanged, ChatMention, Event
from gk.storage import chat_store as store
from gk.storage.chat_store import ChangeRow, MemberInfo, MessageInfo, Room

ROOM_CREATED = "room.created"
MEMBER_JOINED = "member.joined"
MEMBER_LEFT = "member.left"
MEMBER_ROLE = "member.role"
MESSAGE_POSTED = "message.posted"
MESSAGE_EDITED = "message.edited"
MESSAGE_DELETED = "message.deleted"
REACTION_CHANGED = "reaction.changed"
READ_MARKED = "read.marked"

#: Kinds whose payload is built around the message they name.
MESSAGE_KINDS = frozenset({MESSAGE_POSTED, MESSAGE_EDITED, MESSAGE_DELETED, REACTION_CHANGED})


class Payloads:
    """
    Builds change payloads for their viewers within one transaction,
    loading each message, room and member list once.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._messages: dict[int, MessageInfo] = {}
        self._rooms: dict[int, Room | None] = {}
        self._members: dict[int, list[MemberInfo]] = {}
        self._shared: dict[int, dict[str, Any]] = {}

    def know(self, message: MessageInfo) -> None:
        """Use C{message} as it is now (just read by the caller) instead of reading it again."""
        self._messages[message.id] = message

    def prefetch(self, rows: Iterable[ChangeRow]) -> None:
        """Load the messages of many changes in a few queries."""
        wanted = [r.message_id for r in rows if r.message_id is not None]
        missing = [i for i in dict.fromkeys(wanted) if i not in self._messages]
        for info in store.message_infos(self._session, missing):
            self._messages[info.id] = info

    @staticmethod
    def shared(row: ChangeRow) -> bool:
        """Whether every viewer is told the same about C{row} (one payload object for all)."""
        return row.kind in MESSAGE_KINDS and row.message_id is not None

    def payload(self, row: ChangeRow, viewer_id: int) -> dict[str, Any]:
        """What C{viewer_id} is told about C{row} (see the module docstring)."""
        if self.shared(row):
            assert row.message_id is not None
            # The same for every viewer: built once, shared (read-only) by
            # the events of all of them.
            shared = self._shared.get(row.position)
            if shared is None:
                shared = {"message": self._message(row.message_id).to_json(), **row.data}
                self._shared[row.position] = shared
            return shared
        if row.kind == READ_MARKED:
            return {"message_id": row.message_id}
        room = self._room(row.room_id)
        if room is None:  # unreachable: a room's changes go with it
            return dict(row.data)
        if row.kind == ROOM_CREATED:
            return {"room": self._room_info(room, viewer_id).to_json(), **row.data}
        return {"room": self.ref(room, viewer_id), **row.data}

    def ref(self, room: Room, viewer_id: int) -> dict[str, Any]:
        """A short reference to a room, named as C{viewer_id} sees it."""
        name = store.display_name(room, viewer_id, self._room_members(room.id))
        return {"id": room.id, "name": name, "kind": room.kind}

    def _message(self, message_id: int) -> MessageInfo:
        if message_id not in self._messages:
            [self._messages[message_id]] = store.message_infos(self._session, [message_id])
        return self._messages[message_id]

    def _room(self, room_id: int) -> Room | None:
        if room_id not in self._rooms:
            self._rooms[room_id] = store.get_room(self._session, room_id)
        return self._rooms[room_id]

    def _room_members(self, room_id: int) -> list[MemberInfo]:
        if room_id not in self._members:
            self._members[room_id] = store.members(self._session, room_id)
        return self._members[room_id]

    def _room_info(self, room: Room, viewer_id: int) -> store.RoomInfo:
        return store.room_info(self._session, room, viewer_id, self._room_members(room.id))


class ChangeLog:
    """
    The changes one write transaction makes: each is logged at once (the
    log must be locked, L{store.lock_log}) and its events are kept, one
    per user told, to be published after the commit (L{events}).
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self.events: list[Event] = []

    def log(
        self,
        kind: str,
        room: Room,
        *,
        message_id: int | None = None,
        subject_id: int | None = None,
        private: bool = False,
        data: dict[str, Any] | None = None,
        message: MessageInfo | None = None,
        position: int | None = None,
    ) -> int:
        """
        Log a change made in this transaction; its position.  Everyone in
        the room now is told, and C{subject_id} too (a member who just
        left); a C{private} change only C{subject_id}.

        @param message: the message C{message_id} as it is after the
            change, when the caller has it (saves reading it again).
        @param position: the position the transaction took for this change
            (L{store.take_position}), else the next one is taken.
        """
        data = data or {}
        position = store.append_change(
            self._session,
            kind,
            room.id,
            message_id=message_id,
            subject_id=subject_id,
            private=private,
            data=data,
            position=position,
        )
        row = ChangeRow(position, kind, room.id, message_id, subject_id, private, data)
        told = [] if private else store.member_ids(self._session, room.id)
        if subject_id is not None and subject_id not in told:
            told.append(subject_id)
        # Built after the change, so each payload shows its outcome.
        payloads = Payloads(self._session)
        if message is not None:
            payloads.know(message)
        if told and payloads.shared(row):
            # The same payload for everyone (a message's change): built once.
            payload = payloads.payload(row, told[0])
            self.events.extend(ChatChanged(u, room.id, position, kind, payload) for u in told)
            return position
        for user_id in told:
            payload = payloads.payload(row, user_id)
            self.events.append(ChatChanged(user_id, room.id, position, kind, payload))
        return position

    def mentions(
        self, room: Room, message: MessageInfo, position: int, user_ids: Iterable[int]
    ) -> None:
        """Tell each of C{user_ids} that C{message} (logged at C{position}) mentions them."""
        for user_id in user_ids:
            self.events.append(
                ChatMention(user_id, room.id, message.id, position, message.sender, message.text)
            )
