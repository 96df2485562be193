"""
Chat storage: rooms, memberships with read markers, messages with their
reactions, mentions and search words, and the change log.

Blocking functions on a L{Session}, for the database's worker threads;
they check nothing about who may do what (L{gk.chat.ChatService} does)
and hand out frozen results, never ORM rows.

Every chat write begins with L{lock_log}, which locks the one row of
C{chat_sequence} until the transaction ends (C{FOR UPDATE} on PostgreSQL;
SQLite has one writer anyway), or with L{take_position}, which takes the
next position by updating that row and so locks it as well.  Chat writes
therefore run one at a time, which also settles races such as two people
opening the same direct conversation at once, and L{append_change}
numbers changes from that row:
a transaction takes positions only after the previous chat write has
committed or rolled back, so positions become visible in increasing
order and without gaps, and a reader that sees position N has every
change up to N (L{changes_for}).  A rolled-back write gives its positions
back with everything else.

The functions live in L{gk.storage.chat_rooms} (the change log, rooms,
members, read markers) and L{gk.storage.chat_messages} (messages,
reactions, mentions, search words), their results in
L{gk.storage.chat_common}; import them from here.  Their frequent
statements are prepared once (L{gk.storage.chat_sql}).
"""

from __future__ import annotations

from gk.storage.chat_common import (
    DIRECT,
    FORMER_MEMBER,
    KINDS,
    MEMBER,
    OWNER,
    PRIVATE,
    PUBLIC,
    ChangeRow,
    MemberInfo,
    Membership,
    MessageInfo,
    PublicRoom,
    Room,
    RoomInfo,
    RoomSummary,
    StoredMessage,
    rfc3339,
)
from gk.storage.chat_messages import (
    change_reply_count,
    get_message,
    history_ids,
    insert_message,
    make_tombstone,
    mentioned_ids,
    message_infos,
    new_message,
    reply_ids,
    search_ids,
    set_mentions,
    set_reaction,
    set_text,
    set_words,
)
from gk.storage.chat_rooms import (
    add_member,
    advance_read_marker,
    append_change,
    changes_for,
    current_position,
    direct_key,
    direct_room,
    display_name,
    get_membership,
    get_room,
    insert_room,
    lock_log,
    member_ids,
    members,
    peer_ids,
    public_rooms,
    remove_member,
    room_and_membership,
    room_info,
    room_summaries,
    send_read_marker,
    set_role,
    take_position,
    take_position_and_room,
    touch_room,
    unread_count,
    user_ids_by_email,
)
from gk.storage.chat_sql import pipeline

__all__ = [
    "DIRECT",
    "FORMER_MEMBER",
    "KINDS",
    "MEMBER",
    "OWNER",
    "PRIVATE",
    "PUBLIC",
    "ChangeRow",
    "MemberInfo",
    "Membership",
    "MessageInfo",
    "PublicRoom",
    "Room",
    "RoomInfo",
    "RoomSummary",
    "StoredMessage",
    "add_member",
    "advance_read_marker",
    "append_change",
    "change_reply_count",
    "changes_for",
    "current_position",
    "direct_key",
    "direct_room",
    "display_name",
    "get_membership",
    "get_message",
    "get_room",
    "history_ids",
    "insert_message",
    "insert_room",
    "lock_log",
    "make_tombstone",
    "member_ids",
    "members",
    "mentioned_ids",
    "message_infos",
    "new_message",
    "peer_ids",
    "pipeline",
    "public_rooms",
    "remove_member",
    "reply_ids",
    "rfc3339",
    "room_and_membership",
    "room_info",
    "room_summaries",
    "search_ids",
    "send_read_marker",
    "set_mentions",
    "set_reaction",
    "set_role",
    "set_text",
    "set_words",
    "take_position",
    "take_position_and_room",
    "touch_room",
    "unread_count",
    "user_ids_by_email",
]
