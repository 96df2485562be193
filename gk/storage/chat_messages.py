"""
Chat storage: messages with their reactions, mentions and search words.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from gk.storage.chat_common import (
    MESSAGE_COLUMNS,
    MessageInfo,
    StoredMessage,
    chunks,
    execute,
    rowcount,
    stored_message_from_row,
)
from gk.storage.chat_sql import Prepared
from gk.storage.models import (
    ChatMember,
    ChatMention,
    ChatMessage,
    ChatReaction,
    ChatWord,
    User,
    utcnow,
)

# -- prepared statements (gk.storage.chat_sql; bound parameters are p_*) ----------

_THIS_MESSAGE = ChatMessage.id == bindparam("p_message")
_MESSAGE_VALUES = ("room_id", "sender_id", "text", "created", "deleted", "reply_to")
_INSERT_MESSAGE = Prepared(
    insert(ChatMessage).returning(ChatMessage.id), [*_MESSAGE_VALUES, "reply_count"]
)
_GET_MESSAGE = Prepared(select(*MESSAGE_COLUMNS).where(_THIS_MESSAGE))
_CHANGE_REPLY_COUNT = Prepared(
    update(ChatMessage)
    .where(_THIS_MESSAGE)
    .values(reply_count=ChatMessage.reply_count + bindparam("p_delta"))
)
_SET_TEXT = Prepared(
    update(ChatMessage)
    .where(_THIS_MESSAGE)
    .values(text=bindparam("p_text"), edited=bindparam("p_edited"))
)
_INSERT_WORDS = Prepared(insert(ChatWord), ["word", "message_id"])
_DELETE_WORDS = Prepared(delete(ChatWord).where(ChatWord.message_id == bindparam("p_message")))
_INSERT_MENTIONS = Prepared(insert(ChatMention), ["message_id", "user_id"])
_DELETE_MENTIONS = Prepared(
    delete(ChatMention).where(ChatMention.message_id == bindparam("p_message"))
)
_MENTIONED_IDS = Prepared(
    select(ChatMention.user_id).where(ChatMention.message_id == bindparam("p_message"))
)
# Run as Core statements (chat_common.execute): their IN lists are rendered per call.
_IDS: BindParameter[int] = bindparam("p_ids", expanding=True)
_MESSAGE_ROWS = (
    select(*MESSAGE_COLUMNS, User.email)
    .outerjoin(User, User.id == ChatMessage.sender_id)
    .where(ChatMessage.id.in_(_IDS))
)
_REACTION_ROWS = (
    select(ChatReaction.message_id, ChatReaction.emoji, User.email)
    .join(User, User.id == ChatReaction.user_id)
    .where(ChatReaction.message_id.in_(_IDS))
    .order_by(ChatReaction.created, User.email)
)
_MENTION_ROWS = (
    select(ChatMention.message_id, User.email)
    .join(User, User.id == ChatMention.user_id)
    .where(ChatMention.message_id.in_(_IDS))
)


# -- messages --------------------------------------------------------------------


def insert_message(
    session: Session,
    room_id: int,
    sender_id: int,
    text: str,
    reply_to: int | None,
    created: datetime.datetime,
) -> int:
    """Store a new message; its id.  The caller counts it in its thread's root."""
    values = {
        "room_id": room_id,
        "sender_id": sender_id,
        "text": text,
        "created": created,
        "deleted": False,
        "reply_to": reply_to,
        "reply_count": 0,
    }
    [(message_id,)] = _INSERT_MESSAGE.rows(session, values)
    return int(message_id)


def new_message(
    session: Session,
    room_id: int,
    sender_id: int,
    text: str,
    reply_to: int | None,
    created: datetime.datetime,
    words: Iterable[str],
    mentioned: Iterable[int],
) -> int:
    """
    L{insert_message} with its search words and the users it mentions
    (a new message has none yet: nothing to replace); its id.
    """
    message_id = insert_message(session, room_id, sender_id, text, reply_to, created)
    _insert_words(session, message_id, words)
    _insert_mentions(session, message_id, mentioned)
    return message_id


def get_message(session: Session, message_id: int) -> StoredMessage | None:
    row = _GET_MESSAGE.first(session, {"p_message": message_id})
    if row is None:
        return None
    found_id, room_id, sender_id, text, created, edited, deleted, reply_to, reply_count = row
    return StoredMessage(
        id=int(found_id),
        room_id=int(room_id),
        sender_id=sender_id,
        text=text,
        created=created,
        edited=edited,
        deleted=bool(deleted),
        reply_to=reply_to,
        reply_count=int(reply_count),
    )


def change_reply_count(session: Session, root_id: int, delta: int) -> None:
    _CHANGE_REPLY_COUNT.send(session, {"p_message": root_id, "p_delta": delta})


def set_text(session: Session, message_id: int, text: str, edited: datetime.datetime) -> None:
    _SET_TEXT.send(session, {"p_message": message_id, "p_text": text, "p_edited": edited})


def make_tombstone(session: Session, message_id: int) -> None:
    """
    Delete a message's content but keep its row: empty text, C{deleted},
    no reactions, mentions or search words.  The caller uncounts it from
    its thread's root.
    """
    session.execute(
        update(ChatMessage).where(ChatMessage.id == message_id).values(text="", deleted=True)
    )
    for table in (ChatReaction, ChatMention, ChatWord):
        session.execute(delete(table).where(table.message_id == message_id))


def history_ids(session: Session, room_id: int, before: int | None, limit: int) -> list[int]:
    """Up to C{limit} ids of a room's messages older than C{before}, newest first."""
    query = select(ChatMessage.id).where(ChatMessage.room_id == room_id)
    if before is not None:
        query = query.where(ChatMessage.id < before)
    return [int(i) for i in session.scalars(query.order_by(ChatMessage.id.desc()).limit(limit))]


def reply_ids(session: Session, root_id: int) -> list[int]:
    """The ids of a thread's replies, oldest first."""
    query = select(ChatMessage.id).where(ChatMessage.reply_to == root_id).order_by(ChatMessage.id)
    return [int(i) for i in session.scalars(query)]


def message_infos(session: Session, ids: Sequence[int]) -> list[MessageInfo]:
    """
    The messages of C{ids} that exist, in that order, with reactions and
    mentions (by address, in code point order on every database: a new
    message's are sorted in Python, L{gk.chat.ChatService.post}).
    """
    rows: dict[int, Any] = {}
    reactions: dict[int, dict[str, list[str]]] = {}
    mentions: dict[int, list[str]] = {}
    for chunk in chunks(list(dict.fromkeys(ids))):
        params = {"p_ids": list(chunk)}
        for row in execute(session, _MESSAGE_ROWS, params):
            rows[int(row.id)] = row
        for r in execute(session, _REACTION_ROWS, params):
            reactions.setdefault(int(r.message_id), {}).setdefault(r.emoji, []).append(r.email)
        for m in execute(session, _MENTION_ROWS, params):
            mentions.setdefault(int(m.message_id), []).append(m.email)
    found = []
    for message_id in ids:
        if message_id not in rows:
            continue
        row = rows[message_id]
        stored = stored_message_from_row(row)
        found.append(
            MessageInfo(
                id=stored.id,
                room_id=stored.room_id,
                sender=row.email or "",
                text=stored.text,
                created=stored.created,
                edited=stored.edited,
                deleted=stored.deleted,
                reply_to=stored.reply_to,
                reply_count=stored.reply_count,
                reactions={e: tuple(who) for e, who in reactions.get(message_id, {}).items()},
                mentions=tuple(sorted(mentions.get(message_id, ()))),
            )
        )
    return found


# -- reactions, mentions and words ---------------------------------------------------


def set_reaction(session: Session, message_id: int, user_id: int, emoji: str, on: bool) -> bool:
    """Add (C{on}) or remove a user's reaction; whether anything changed."""
    which = (
        ChatReaction.message_id == message_id,
        ChatReaction.emoji == emoji,
        ChatReaction.user_id == user_id,
    )
    if not on:
        return rowcount(session.execute(delete(ChatReaction).where(*which))) > 0
    if session.execute(select(ChatReaction.user_id).where(*which)).first() is not None:
        return False
    session.execute(
        insert(ChatReaction).values(
            message_id=message_id, emoji=emoji, user_id=user_id, created=utcnow()
        )
    )
    return True


def mentioned_ids(session: Session, message_id: int) -> set[int]:
    """The users a message mentions now."""
    return {int(i) for i in _MENTIONED_IDS.scalars(session, {"p_message": message_id})}


def set_mentions(session: Session, message_id: int, user_ids: Iterable[int]) -> None:
    """Replace the users a message mentions."""
    _DELETE_MENTIONS.send(session, {"p_message": message_id})
    _insert_mentions(session, message_id, user_ids)


def _insert_mentions(session: Session, message_id: int, user_ids: Iterable[int]) -> None:
    values = [{"message_id": message_id, "user_id": u} for u in dict.fromkeys(user_ids)]
    if values:
        _INSERT_MENTIONS.run_many(session, values)


def set_words(session: Session, message_id: int, words: Iterable[str]) -> None:
    """Replace a message's search words (normalised, at most 64 characters)."""
    _DELETE_WORDS.send(session, {"p_message": message_id})
    _insert_words(session, message_id, words)


def _insert_words(session: Session, message_id: int, words: Iterable[str]) -> None:
    values = [{"word": w, "message_id": message_id} for w in dict.fromkeys(words)]
    if values:
        _INSERT_WORDS.run_many(session, values)


def _prefix_bound(prefix: str) -> str | None:
    """The least string above every string that starts with C{prefix} (code point order)."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates cannot be stored; skip them
        last = 0xE000
    return None if last > 0x10FFFF else prefix[:-1] + chr(last)


def search_ids(
    session: Session, user_id: int, words: Sequence[str], prefix: str | None, limit: int
) -> list[int]:
    """
    Up to C{limit} ids, newest first, of the messages not deleted in the
    rooms C{user_id} is in that have every one of C{words} and, if given,
    a word starting with C{prefix}.  Each word is one index look-up on
    C{chat_words}' primary key (a prefix is a range of it: the column
    compares bytes on every database).
    """
    query = (
        select(ChatMessage.id)
        .join(
            ChatMember,
            and_(ChatMember.room_id == ChatMessage.room_id, ChatMember.user_id == user_id),
        )
        .where(ChatMessage.deleted.is_(False))
    )
    for word in dict.fromkeys(words):
        # (word, message_id) is unique: one join per word adds no duplicates.
        match = aliased(ChatWord)
        query = query.join(match, and_(match.message_id == ChatMessage.id, match.word == word))
    if prefix:
        starts = [ChatWord.word >= prefix]
        bound = _prefix_bound(prefix)
        if bound is not None:
            starts.append(ChatWord.word < bound)
        # IN, not a join: several words of one message may share the
        # prefix.  A subquery of its own, so that the planner reads the
        # range of the index rather than every message's words.
        query = query.where(ChatMessage.id.in_(select(ChatWord.message_id).where(*starts)))
    query = query.order_by(ChatMessage.id.desc()).limit(limit)
    return [int(i) for i in session.scalars(query)]
