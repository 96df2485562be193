"""
What L{gk.chat.ChatService} returns beyond the storage results it passes
on (L{gk.storage.chat_store.RoomSummary}, C{RoomInfo}, C{PublicRoom},
C{MessageInfo}): pages of history, threads and batches of changes.  Each
has C{to_json()} for the HTTP API and the WebSocket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gk.storage.chat_store import MessageInfo


@dataclass(frozen=True)
class HistoryPage:
    """
    Messages of a room, newest first (tombstones of deleted ones
    included); C{next} is the cursor of the older page, L{None} when there
    is none.
    """

    messages: tuple[MessageInfo, ...]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"messages": [m.to_json() for m in self.messages], "next": self.next}


@dataclass(frozen=True)
class Thread:
    """A thread's root and its replies, oldest first."""

    root: MessageInfo
    replies: tuple[MessageInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {"root": self.root.to_json(), "replies": [m.to_json() for m in self.replies]}


@dataclass(frozen=True)
class Change:
    """One change of the log as one user sees it (see L{gk.chat.changes})."""

    position: int
    kind: str
    room_id: int
    payload: dict[str, Any] = field(hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "kind": self.kind,
            "room_id": self.room_id,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class ChangeBatch:
    """
    Changes after a position, oldest first.  C{position} is where the next
    call starts: the last change's when C{has_more}, else the log's latest
    position at the time of the call (past changes the user does not see).
    """

    changes: tuple[Change, ...]
    position: int
    has_more: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [c.to_json() for c in self.changes],
            "position": self.position,
            "has_more": self.has_more,
        }
