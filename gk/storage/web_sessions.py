"""
Storage of the web UI's sessions (L{gk.storage.models.WebSession}):
named operations that run inside a L{gk.storage.database.Database}
transaction.  Sessions are looked up by the digest of the cookie value.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gk.storage.accounts import Account, _account
from gk.storage.models import User, WebSession


@dataclass(frozen=True)
class StoredSession:
    """A session as the web layer sees it, with its account."""

    digest: str
    account: Account
    csrf_token: str
    created: datetime.datetime
    last_seen: datetime.datetime
    expires: datetime.datetime
    user_agent: str
    address: str


def add_session(
    session: Session,
    digest: str,
    user_id: int,
    csrf_token: str,
    now: datetime.datetime,
    expires: datetime.datetime,
    user_agent: str,
    address: str,
) -> None:
    session.add(
        WebSession(
            id=digest,
            user_id=user_id,
            csrf_token=csrf_token,
            created=now,
            last_seen=now,
            expires=expires,
            user_agent=user_agent[:200],
            address=address[:64],
        )
    )


def _stored(row: WebSession, user: User) -> StoredSession:
    return StoredSession(
        row.id, _account(user), row.csrf_token, row.created, row.last_seen, row.expires,
        row.user_agent, row.address,
    )  # fmt: skip


def find_session(session: Session, digest: str, now: datetime.datetime) -> StoredSession | None:
    """The unexpired session whose cookie has this digest."""
    found = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.id == digest, WebSession.expires > now)
    ).first()
    return None if found is None else _stored(found[0], found[1])


def touch_session(
    session: Session, digest: str, now: datetime.datetime, expires: datetime.datetime
) -> None:
    session.execute(
        update(WebSession).where(WebSession.id == digest).values(last_seen=now, expires=expires)
    )


def list_sessions(session: Session, user_id: int, now: datetime.datetime) -> list[StoredSession]:
    rows = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.user_id == user_id, WebSession.expires > now)
        .order_by(WebSession.last_seen.desc())
    ).all()
    return [_stored(row, user) for row, user in rows]


def delete_session(session: Session, digest: str, user_id: int | None = None) -> bool:
    """Delete one session (of C{user_id} only, when given); whether it existed."""
    statement = delete(WebSession).where(WebSession.id == digest)
    if user_id is not None:
        statement = statement.where(WebSession.user_id == user_id)
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def delete_user_sessions(session: Session, user_id: int, keep: str | None = None) -> int:
    """Delete every session of a user but C{keep}; how many went."""
    statement = delete(WebSession).where(WebSession.user_id == user_id)
    if keep is not None:
        statement = statement.where(WebSession.id != keep)
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def delete_expired(session: Session, now: datetime.datetime) -> int:
    statement = delete(WebSession).where(WebSession.expires <= now)
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
