"""
Outbound queue data access: blocking functions on a L{Session}, for the
database's worker threads.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from gk.storage.models import QueuedMessage, QueuedRecipient, UTCDateTime, utcnow

#: Every state a queued recipient can be in.
STATES = ("pending", "sending", "deferred", "sent", "bounced", "failed")
#: States in which a recipient still waits for delivery.
WAITING = ("pending", "sending", "deferred")


def add_message(
    session: Session,
    queue_id: str,
    sender: str,
    recipients: list[str],
    size: int,
    user_id: int | None,
    smtputf8: bool,
) -> int:
    """
    Insert a queued message and its recipients (Core statements: this is
    every submission's path); the message row's id.
    """
    connection = session.connection()
    message_id = connection.execute(
        insert(QueuedMessage)
        .values(
            queue_id=queue_id,
            sender=sender,
            user_id=user_id,
            size=size,
            smtputf8=smtputf8,
            created=utcnow(),
        )
        .returning(QueuedMessage.id)
    ).scalar_one()
    now = utcnow()
    connection.execute(
        insert(QueuedRecipient),
        [
            {
                "message_id": message_id,
                "address": address,
                "domain": address.rpartition("@")[2].lower(),
                "state": "pending",
                "attempts": 0,
                "next_attempt": now,
                "last_error": "",
                "delay_warned": False,
            }
            for address in recipients
        ],
    )
    return int(message_id)


def spool_names(session: Session) -> set[str]:
    """The queue ids that have a row (their spool files must be kept)."""
    return set(session.scalars(select(QueuedMessage.queue_id)))


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(QueuedRecipient.state, func.count()).group_by(QueuedRecipient.state)
    )
    counts = dict.fromkeys(STATES, 0)
    counts.update({state: int(n) for state, n in rows})
    return counts


def recipients_of(session: Session, queue_id: str) -> list[QueuedRecipient]:
    return list(
        session.scalars(
            select(QueuedRecipient)
            .join(QueuedMessage, QueuedRecipient.message_id == QueuedMessage.id)
            .where(QueuedMessage.queue_id == queue_id)
            .order_by(QueuedRecipient.id)
        )
    )


# -- the delivery worker ----------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """One recipient taken for a delivery attempt, with its message's envelope."""

    recipient_id: int
    message_id: int
    queue_id: str
    sender: str
    user_id: int | None
    smtputf8: bool
    created: datetime.datetime
    size: int
    address: str
    domain: str
    attempts: int
    delay_warned: bool


@dataclass(frozen=True)
class Outcome:
    """What one attempt did for one recipient."""

    recipient_id: int
    #: sent, deferred, bounced or failed.
    state: str
    error: str = ""
    next_attempt: datetime.datetime | None = None


def recover_sending(session: Session, now: datetime.datetime) -> int:
    """
    Recipients left in C{sending} by a stopped or killed process go back
    to C{deferred}, due now.  Only one process runs the delivery worker.
    """
    result = session.execute(
        update(QueuedRecipient)
        .where(QueuedRecipient.state == "sending")
        .values(state="deferred", next_attempt=now)
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)


def claim_due(session: Session, now: datetime.datetime, limit: int) -> list[Claimed]:
    """
    Take up to C{limit} recipients due for an attempt (C{pending}, or
    C{deferred} with C{next_attempt} passed), oldest first, and mark them
    C{sending} in this transaction.
    """
    query = (
        select(
            QueuedRecipient.id,
            QueuedRecipient.message_id,
            QueuedMessage.queue_id,
            QueuedMessage.sender,
            QueuedMessage.user_id,
            QueuedMessage.smtputf8,
            QueuedMessage.created,
            QueuedMessage.size,
            QueuedRecipient.address,
            QueuedRecipient.domain,
            QueuedRecipient.attempts,
            QueuedRecipient.delay_warned,
        )
        .join(QueuedMessage, QueuedRecipient.message_id == QueuedMessage.id)
        .where(QueuedRecipient.state.in_(("pending", "deferred")))
        .where(QueuedRecipient.next_attempt <= now)
        .order_by(QueuedRecipient.next_attempt, QueuedRecipient.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=QueuedRecipient)
    claimed = [Claimed(*row) for row in session.execute(query)]
    if claimed:
        session.execute(
            update(QueuedRecipient)
            .where(QueuedRecipient.id.in_([c.recipient_id for c in claimed]))
            .values(state="sending", last_attempt=now)
        )
    return claimed


def record(session: Session, outcomes: list[Outcome], now: datetime.datetime) -> None:
    """Store the outcome of an attempt for each recipient (one more attempt each)."""
    if not outcomes:
        return
    statement = (
        update(QueuedRecipient)
        .where(QueuedRecipient.id == bindparam("rid"))
        .values(
            state=bindparam("new_state"),
            last_error=bindparam("error"),
            attempts=QueuedRecipient.attempts + 1,
            last_attempt=now,
            next_attempt=func.coalesce(
                bindparam("due", type_=UTCDateTime()), QueuedRecipient.next_attempt
            ),
        )
    )
    session.connection().execute(
        statement,
        [
            {
                "rid": outcome.recipient_id,
                "new_state": outcome.state,
                "error": outcome.error[:2000],
                "due": outcome.next_attempt,
            }
            for outcome in outcomes
        ],
    )


def mark_delay_warned(session: Session, recipient_ids: list[int]) -> None:
    session.execute(
        update(QueuedRecipient)
        .where(QueuedRecipient.id.in_(recipient_ids))
        .values(delay_warned=True)
    )


def finished(session: Session, message_ids: list[int]) -> list[int]:
    """Which of C{message_ids} have no recipient waiting any more."""
    if not message_ids:
        return []
    waiting = set(
        session.scalars(
            select(QueuedRecipient.message_id)
            .where(QueuedRecipient.message_id.in_(message_ids))
            .where(QueuedRecipient.state.in_(WAITING))
        )
    )
    return [m for m in dict.fromkeys(message_ids) if m not in waiting]


def delete_messages(session: Session, message_ids: list[int]) -> list[str]:
    """Remove messages and their recipients; their queue ids (for the spool)."""
    if not message_ids:
        return []
    queue_ids = list(
        session.scalars(select(QueuedMessage.queue_id).where(QueuedMessage.id.in_(message_ids)))
    )
    session.execute(delete(QueuedRecipient).where(QueuedRecipient.message_id.in_(message_ids)))
    session.execute(delete(QueuedMessage).where(QueuedMessage.id.in_(message_ids)))
    return queue_ids


def next_due(session: Session) -> datetime.datetime | None:
    """When the earliest waiting recipient is due (None: nothing waits)."""
    value: datetime.datetime | None = session.scalar(
        select(func.min(QueuedRecipient.next_attempt)).where(
            QueuedRecipient.state.in_(("pending", "deferred"))
        )
    )
    return value


# -- the operator (gk queue) --------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    """A queued message as `gk queue list` shows it."""

    queue_id: str
    sender: str
    size: int
    created: datetime.datetime
    #: (address, state, attempts, next attempt, last error) per recipient.
    recipients: list[tuple[str, str, int, datetime.datetime, str]] = field(default_factory=list)


def list_queue(session: Session) -> list[QueueEntry]:
    """Every queued message with its recipients, oldest first."""
    rows = session.execute(
        select(QueuedMessage, QueuedRecipient)
        .join(QueuedRecipient, QueuedRecipient.message_id == QueuedMessage.id)
        .order_by(QueuedMessage.created, QueuedMessage.id, QueuedRecipient.id)
    ).all()
    entries: dict[int, QueueEntry] = {}
    for message, recipient in rows:
        entry = entries.setdefault(
            message.id, QueueEntry(message.queue_id, message.sender, message.size, message.created)
        )
        entry.recipients.append(
            (
                recipient.address,
                recipient.state,
                recipient.attempts,
                recipient.next_attempt,
                recipient.last_error,
            )
        )
    return list(entries.values())


def retry_now(session: Session, queue_id: str, now: datetime.datetime) -> int:
    """
    Make the deferred recipients of C{queue_id} due now.

    @raise LookupError: no such queued message.
    @return: how many recipients were deferred.
    """
    message_id = session.scalar(select(QueuedMessage.id).where(QueuedMessage.queue_id == queue_id))
    if message_id is None:
        raise LookupError(queue_id)
    result = session.execute(
        update(QueuedRecipient)
        .where(QueuedRecipient.message_id == message_id)
        .where(QueuedRecipient.state == "deferred")
        .values(next_attempt=now)
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)


def delete_queued(session: Session, queue_id: str) -> None:
    """
    Remove a queued message (its spool file is the caller's).

    @raise LookupError: no such queued message.
    """
    message_id = session.scalar(select(QueuedMessage.id).where(QueuedMessage.queue_id == queue_id))
    if message_id is None:
        raise LookupError(queue_id)
    delete_messages(session, [message_id])
