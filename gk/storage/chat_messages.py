"""
Chat storage: messages with their reactions, mentions and search words.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session, aliased

from gk.storage.chat_common import (
    MESSAGE_COLUMNS,
    MessageInfo,
    StoredMessage,
    chunks,
    inserted_id,
    rowcount,
    stored_message_from_row,
)
from gk.storage.models import (
    ChatMember,
    ChatMention,
    ChatMessage,
    ChatReaction,
    ChatWord,
    User,
    utcnow,
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
    result = session.execute(
        insert(ChatMessage).values(
            room_id=room_id,
            sender_id=sender_id,
            text=text,
            created=created,
            deleted=False,
            reply_to=reply_to,
            reply_count=0,
        )
    )
    return inserted_id(result)


def get_message(session: Session, message_id: int) -> StoredMessage | None:
    row = session.execute(select(*MESSAGE_COLUMNS).where(ChatMessage.id == message_id)).first()
    return None if row is None else stored_message_from_row(row)


def change_reply_count(session: Session, root_id: int, delta: int) -> None:
    session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == root_id)
        .values(reply_count=ChatMessage.reply_count + delta)
    )


def set_text(session: Session, message_id: int, text: str, edited: datetime.datetime) -> None:
    session.execute(
        update(ChatMessage).where(ChatMessage.id == message_id).values(text=text, edited=edited)
    )


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
    """The messages of C{ids} that exist, in that order, with reactions and mentions."""
    rows: dict[int, Any] = {}
    reactions: dict[int, dict[str, list[str]]] = {}
    mentions: dict[int, list[str]] = {}
    for chunk in chunks(list(dict.fromkeys(ids))):
        for row in session.execute(
            select(*MESSAGE_COLUMNS, User.email)
            .outerjoin(User, User.id == ChatMessage.sender_id)
            .where(ChatMessage.id.in_(chunk))
        ):
            rows[int(row.id)] = row
        for r in session.execute(
            select(ChatReaction.message_id, ChatReaction.emoji, User.email)
            .join(User, User.id == ChatReaction.user_id)
            .where(ChatReaction.message_id.in_(chunk))
            .order_by(ChatReaction.created, User.email)
        ):
            reactions.setdefault(int(r.message_id), {}).setdefault(r.emoji, []).append(r.email)
        for m in session.execute(
            select(ChatMention.message_id, User.email)
            .join(User, User.id == ChatMention.user_id)
            .where(ChatMention.message_id.in_(chunk))
            .order_by(User.email)
        ):
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
                mentions=tuple(mentions.get(message_id, ())),
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
    query = select(ChatMention.user_id).where(ChatMention.message_id == message_id)
    return {int(i) for i in session.scalars(query)}


def set_mentions(session: Session, message_id: int, user_ids: Iterable[int]) -> None:
    """Replace the users a message mentions."""
    session.execute(delete(ChatMention).where(ChatMention.message_id == message_id))
    values = [{"message_id": message_id, "user_id": u} for u in dict.fromkeys(user_ids)]
    if values:
        session.execute(insert(ChatMention), values)


def set_words(session: Session, message_id: int, words: Iterable[str]) -> None:
    """Replace a message's search words (normalised, at most 64 characters)."""
    session.execute(delete(ChatWord).where(ChatWord.message_id == message_id))
    values = [{"word": w, "message_id": message_id} for w in dict.fromkeys(words)]
    if values:
        session.execute(insert(ChatWord), values)


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
