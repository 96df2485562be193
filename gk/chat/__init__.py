"""
Team chat: public and private rooms, direct conversations, threads,
reactions, mentions, read markers, search and a change log that clients
catch up from.  L{ChatService} is the one entry point; presence and typing
indicators are the WebSocket layer's (they are never stored).
"""

from gk.chat.changes import (
    MEMBER_JOINED,
    MEMBER_LEFT,
    MEMBER_ROLE,
    MESSAGE_DELETED,
    MESSAGE_EDITED,
    MESSAGE_POSTED,
    REACTION_CHANGED,
    READ_MARKED,
    ROOM_CREATED,
)
from gk.chat.errors import ChatError, InvalidInput, NoSuchMessage, NoSuchRoom, NotAllowed
from gk.chat.results import Change, ChangeBatch, HistoryPage, Thread
from gk.chat.service import ChatService
from gk.storage.chat_store import (
    DIRECT,
    OWNER,
    PRIVATE,
    PUBLIC,
    MemberInfo,
    MessageInfo,
    PublicRoom,
    RoomInfo,
    RoomSummary,
)

__all__ = [
    "DIRECT",
    "MEMBER_JOINED",
    "MEMBER_LEFT",
    "MEMBER_ROLE",
    "MESSAGE_DELETED",
    "MESSAGE_EDITED",
    "MESSAGE_POSTED",
    "OWNER",
    "PRIVATE",
    "PUBLIC",
    "REACTION_CHANGED",
    "READ_MARKED",
    "ROOM_CREATED",
    "Change",
    "ChangeBatch",
    "ChatError",
    "ChatService",
    "HistoryPage",
    "InvalidInput",
    "MemberInfo",
    "MessageInfo",
    "NoSuchMessage",
    "NoSuchRoom",
    "NotAllowed",
    "PublicRoom",
    "RoomInfo",
    "RoomSummary",
    "Thread",
]
