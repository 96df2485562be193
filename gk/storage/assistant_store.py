"""
Storage of assistant conversations: named operations on a session, each
scoped to the user who owns the conversation (a conversation id of
another user is not found, exactly like one that does not exist).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from gk.storage.models import AssistantConversation, AssistantMessage, utcnow


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    title: str
    created: datetime.datetime
    updated: datetime.datetime
    #: The confirmation the conversation waits for, if a turn is paused.
    confirmation_id: str | None
    #: The paused turn's state (JSON-able), empty when none.
    pending: dict[str, Any]


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    role: str
    #: The message as the model API takes it back.
    body: dict[str, Any]
    #: The events the user was shown for it.
    events: list[dict[str, Any]]
    created: datetime.datetime


def _info(row: AssistantConversation) -> ConversationInfo:
    return ConversationInfo(
        row.id,
        row.title,
        row.created,
        row.updated,
        row.confirmation_id,
        json.loads(row.pending) if row.pending else {},
    )


def create_conversation(session: Session, user_id: int, conversation_id: str) -> ConversationInfo:
    now = utcnow()
    row = AssistantConversation(
        id=conversation_id, user_id=user_id, title="", created=now, updated=now, pending=""
    )
    session.add(row)
    session.flush()
    return _info(row)


def list_conversations(session: Session, user_id: int, limit: int = 200) -> list[ConversationInfo]:
    rows = session.scalars(
        select(AssistantConversation)
        .where(AssistantConversation.user_id == user_id)
        .order_by(AssistantConversation.updated.desc(), AssistantConversation.id)
        .limit(limit)
    )
    return [_info(row) for row in rows]


def get_conversation(
    session: Session, user_id: int, conversation_id: str, lock: bool = False
) -> ConversationInfo | None:
    query = select(AssistantConversation).where(
        AssistantConversation.id == conversation_id, AssistantConversation.user_id == user_id
    )
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    return None if row is None else _info(row)


def conversation_of_confirmation(
    session: Session, user_id: int, confirmation_id: str
) -> ConversationInfo | None:
    row = session.scalars(
        select(AssistantConversation)
        .where(
            AssistantConversation.confirmation_id == confirmation_id,
            AssistantConversation.user_id == user_id,
        )
        .with_for_update()
    ).one_or_none()
    return None if row is None else _info(row)


def delete_conversation(session: Session, user_id: int, conversation_id: str) -> bool:
    result = session.execute(
        delete(AssistantConversation).where(
            AssistantConversation.id == conversation_id, AssistantConversation.user_id == user_id
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def messages(session: Session, conversation_id: str) -> list[StoredMessage]:
    rows = session.scalars(
        select(AssistantMessage)
        .where(AssistantMessage.conversation_id == conversation_id)
        .order_by(AssistantMessage.seq)
    )
    return [
        StoredMessage(row.seq, row.role, json.loads(row.body), json.loads(row.events), row.created)
        for row in rows
    ]


def append_message(
    session: Session,
    conversation_id: str,
    role: str,
    body: dict[str, Any],
    events: list[dict[str, Any]],
) -> int:
    """Add a message after the conversation's last one; its seq."""
    last = session.scalar(
        select(func.max(AssistantMessage.seq)).where(
            AssistantMessage.conversation_id == conversation_id
        )
    )
    seq = 1 if last is None else last + 1
    session.add(
        AssistantMessage(
            conversation_id=conversation_id,
            seq=seq,
            role=role,
            body=json.dumps(body, ensure_ascii=False),
            events=json.dumps(events, ensure_ascii=False),
        )
    )
    session.execute(
        update(AssistantConversation)
        .where(AssistantConversation.id == conversation_id)
        .values(updated=utcnow())
    )
    return seq


def set_title(session: Session, conversation_id: str, title: str) -> None:
    session.execute(
        update(AssistantConversation)
        .where(AssistantConversation.id == conversation_id, AssistantConversation.title == "")
        .values(title=title[:200])
    )


def set_pending(
    session: Session,
    conversation_id: str,
    confirmation_id: str | None,
    pending: dict[str, Any] | None,
) -> None:
    """Record (or, with None, clear) the turn paused on a confirmation."""
    session.execute(
        update(AssistantConversation)
        .where(AssistantConversation.id == conversation_id)
        .values(
            confirmation_id=confirmation_id,
            pending=json.dumps(pending, ensure_ascii=False) if pending else "",
            updated=utcnow(),
        )
    )
