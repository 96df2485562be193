"""
Outbound queue data access: blocking functions on a L{Session}, for the
database's worker threads.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gk.storage.models import QueuedMessage, QueuedRecipient

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
) -> QueuedMessage:
    message = QueuedMessage(
        queue_id=queue_id, sender=sender, user_id=user_id, size=size, smtputf8=smtputf8
    )
    session.add(message)
    session.flush()
    for address in recipients:
        domain = address.rpartition("@")[2].lower()
        session.add(QueuedRecipient(message_id=message.id, address=address, domain=domain))
    session.flush()
    return message


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
