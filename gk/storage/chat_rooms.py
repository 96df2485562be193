"""
Chat storage: the change log, rooms and memberships with read markers
(see L{gk.storage.chat_store} for the locking that numbers changes).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from gk.storage.chat_common import (
    DIRECT,
    FORMER_MEMBER,
    PUBLIC,
    ROOM_COLUMNS,
    ChangeRow,
    MemberInfo,
    Membership,
    PublicRoom,
    Room,
    RoomInfo,
    RoomSummary,
    chunks,
    inserted_id,
    room_from_row,
)
from gk.storage.chat_sql import Prepared, pipeline
from gk.storage.models import (
    ChatChange,
    ChatMember,
    ChatMessage,
    ChatRoom,
    ChatSequence,
    User,
    utcnow,
)

# -- prepared statements (gk.storage.chat_sql) -----------------------------------
#
# Bound parameters are called p_*: a name of a column in an INSERT or
# UPDATE's own values is reserved by SQLAlchemy.

_LOG_ROW = ChatSequence.id == 1
_LOCK_LOG = Prepared(select(ChatSequence.position).where(_LOG_ROW).with_for_update())
_CURRENT_POSITION = Prepared(select(ChatSequence.position).where(_LOG_ROW))
# One statement takes the next position; the row stays locked until the
# transaction ends (PostgreSQL; SQLite's writer holds the whole database).
_NEXT_POSITION = Prepared(
    update(ChatSequence)
    .where(_LOG_ROW)
    .values(position=ChatSequence.position + 1)
    .returning(ChatSequence.position)
)
_CHANGE_VALUES = ("position", "kind", "room_id", "message_id", "subject_id", "private", "data")
_INSERT_CHANGE = Prepared(insert(ChatChange), [*_CHANGE_VALUES, "created"])

_ROOM = Prepared(select(*ROOM_COLUMNS).where(ChatRoom.id == bindparam("p_room")))
_MEMBERSHIP_COLUMNS = (ChatMember.role, ChatMember.joined, ChatMember.last_read)
_MEMBERSHIP = Prepared(
    select(*_MEMBERSHIP_COLUMNS).where(
        ChatMember.room_id == bindparam("p_room"), ChatMember.user_id == bindparam("p_user")
    )
)
_ROOM_AND_MEMBERSHIP = Prepared(
    select(*ROOM_COLUMNS, *_MEMBERSHIP_COLUMNS)
    .outerjoin(
        ChatMember,
        and_(ChatMember.room_id == ChatRoom.id, ChatMember.user_id == bindparam("p_user")),
    )
    .where(ChatRoom.id == bindparam("p_room"))
)
_TOUCH_ROOM = Prepared(
    update(ChatRoom)
    .where(ChatRoom.id == bindparam("p_room"))
    .values(last_activity=bindparam("p_when"))
)
_MEMBERS = Prepared(
    select(ChatMember.user_id, User.email, ChatMember.role, ChatMember.joined)
    .join(User, User.id == ChatMember.user_id)
    .where(ChatMember.room_id == bindparam("p_room"))
    .order_by(ChatMember.joined, ChatMember.user_id)
)
_MEMBER_IDS = Prepared(select(ChatMember.user_id).where(ChatMember.room_id == bindparam("p_room")))
_ADVANCE_READ_MARKER = Prepared(
    update(ChatMember)
    .where(
        ChatMember.room_id == bindparam("p_room"),
        ChatMember.user_id == bindparam("p_user"),
        ChatMember.last_read < bindparam("p_message"),
    )
    .values(last_read=bindparam("p_message"))
)


# -- the change log ------------------------------------------------------------


def lock_log(session: Session) -> int:
    """
    Lock the change log for the rest of the transaction (every chat write
    calls this first) and return its latest position.
    """
    found = _LOCK_LOG.first(session)
    if found is None:
        raise RuntimeError("chat_sequence has no row: the database was not migrated")
    return int(found[0])


def current_position(session: Session) -> int:
    """The latest committed position (0 before the first change)."""
    found = _CURRENT_POSITION.first(session)
    return 0 if found is None else int(found[0])


def take_position(session: Session) -> int:
    """
    The next position of the log, taken for a change this transaction
    will append (L{append_change}).  It locks the log as L{lock_log}
    does, so a write whose only change is known from the start may call
    this first instead (one statement less).
    """
    # Counted by the database rather than in Python: several writes may
    # share a transaction (Database.write_together).
    found = _NEXT_POSITION.first(session)
    if found is None:
        raise RuntimeError("chat_sequence has no row: the database was not migrated")
    return int(found[0])


def take_position_and_room(
    session: Session, room_id: int, user_id: int
) -> tuple[int, tuple[Room, Membership | None] | None]:
    """
    L{take_position}, then L{room_and_membership} (read with the log
    locked), in one round trip on PostgreSQL.
    """
    with pipeline(session):
        taken = _NEXT_POSITION.send(session)
        found = room_and_membership(session, room_id, user_id)
        rows = taken.rows()
    if not rows:
        raise RuntimeError("chat_sequence has no row: the database was not migrated")
    return int(rows[0][0]), found


def append_change(
    session: Session,
    kind: str,
    room_id: int,
    *,
    message_id: int | None = None,
    subject_id: int | None = None,
    private: bool = False,
    data: dict[str, Any] | None = None,
    position: int | None = None,
) -> int:
    """
    Log a change at the next position and return it; the log must be
    locked (L{lock_log}).

    @param subject_id: the user a membership or read-marker change is
        about: they see it even when it took them out of the room.
    @param private: only C{subject_id} sees it (a read marker).
    @param position: a position this transaction took with
        L{take_position} and has not used yet (else the next one is taken).
    """
    if position is None:
        position = take_position(session)
    _INSERT_CHANGE.send(
        session,
        {
            "position": position,
            "kind": kind,
            "room_id": room_id,
            "message_id": message_id,
            "subject_id": subject_id,
            "private": private,
            "data": json.dumps(data or {}, separators=(",", ":")),
            "created": utcnow(),
        },
    )
    return position


def changes_for(
    session: Session, user_id: int, after: int, upto: int, limit: int
) -> list[ChangeRow]:
    """
    The first C{limit} changes in (C{after}, C{upto}] that C{user_id}
    sees, oldest first: the shared changes of the rooms they are in now,
    and every change about themselves (their memberships, their read
    markers), wherever it happened.

    Two index range scans (by room and by subject) merged here, rather
    than one C{OR} a planner might answer with a scan of the whole log.
    """
    window = and_(ChatChange.position > after, ChatChange.position <= upto)
    columns = (
        ChatChange.position,
        ChatChange.kind,
        ChatChange.room_id,
        ChatChange.message_id,
        ChatChange.subject_id,
        ChatChange.private,
        ChatChange.data,
    )
    rooms = select(ChatMember.room_id).where(ChatMember.user_id == user_id)
    shared = (
        select(*columns)
        .where(window, ChatChange.room_id.in_(rooms), ChatChange.private.is_(False))
        .order_by(ChatChange.position)
        .limit(limit)
    )
    own = (
        select(*columns)
        .where(window, ChatChange.subject_id == user_id)
        .order_by(ChatChange.position)
        .limit(limit)
    )
    merged = {row.position: row for row in (*session.execute(shared), *session.execute(own))}
    return [
        ChangeRow(
            position=int(row.position),
            kind=row.kind,
            room_id=int(row.room_id),
            message_id=row.message_id,
            subject_id=row.subject_id,
            private=bool(row.private),
            data=json.loads(row.data),
        )
        for _, row in sorted(merged.items())[:limit]
    ]


# -- users ---------------------------------------------------------------------


def user_ids_by_email(session: Session, emails: Collection[str]) -> dict[str, int]:
    """The accounts among C{emails} (lower-case addresses), address to id."""
    found: dict[str, int] = {}
    for chunk in chunks(sorted(emails)):
        rows = session.execute(select(User.email, User.id).where(User.email.in_(chunk)))
        found.update((row.email, int(row.id)) for row in rows)
    return found


# -- rooms and members ------------------------------------------------------------


def insert_room(
    session: Session, kind: str, name: str, created_by: int, direct_key: str | None = None
) -> Room:
    """A new room, without members."""
    now = utcnow()
    result = session.execute(
        insert(ChatRoom).values(
            kind=kind,
            name=name,
            direct_key=direct_key,
            created_by=created_by,
            created=now,
            last_activity=now,
        )
    )
    return Room(inserted_id(result), kind, name, now, now)


def direct_key(user_a: int, user_b: int) -> str:
    """The key of the direct room between two users (order does not matter)."""
    low, high = sorted((user_a, user_b))
    return f"{low}:{high}"


def direct_room(session: Session, key: str) -> Room | None:
    """The direct room of L{direct_key} C{key}, if it exists."""
    row = session.execute(select(*ROOM_COLUMNS).where(ChatRoom.direct_key == key)).first()
    return None if row is None else room_from_row(row)


def get_room(session: Session, room_id: int) -> Room | None:
    row = _ROOM.first(session, {"p_room": room_id})
    return None if row is None else _room(row)


def touch_room(session: Session, room_id: int, when: datetime.datetime) -> None:
    """Record activity (a new message) in a room at C{when}."""
    _TOUCH_ROOM.send(session, {"p_room": room_id, "p_when": when})


def get_membership(session: Session, room_id: int, user_id: int) -> Membership | None:
    row = _MEMBERSHIP.first(session, {"p_room": room_id, "p_user": user_id})
    if row is None:
        return None
    role, joined, last_read = row
    return Membership(room_id, user_id, role, joined, int(last_read))


def room_and_membership(
    session: Session, room_id: int, user_id: int
) -> tuple[Room, Membership | None] | None:
    """A room and C{user_id}'s membership of it (L{None} if not a member), in one query."""
    row = _ROOM_AND_MEMBERSHIP.first(session, {"p_room": room_id, "p_user": user_id})
    if row is None:
        return None
    room = _room(row)
    role, joined, last_read = row[len(ROOM_COLUMNS) :]
    if role is None:  # the outer join found no membership
        return room, None
    return room, Membership(room_id, user_id, role, joined, int(last_read))


def _room(row: Sequence[Any]) -> Room:
    """A L{Room} from a row that starts with L{ROOM_COLUMNS}."""
    room_id, kind, name, created, last_activity = row[: len(ROOM_COLUMNS)]
    return Room(int(room_id), kind, name, created, last_activity)


def add_member(session: Session, room_id: int, user_id: int, role: str) -> None:
    """Make C{user_id} a member (not one yet) with C{role}."""
    session.execute(
        insert(ChatMember).values(
            room_id=room_id, user_id=user_id, role=role, joined=utcnow(), last_read=0
        )
    )


def remove_member(session: Session, room_id: int, user_id: int) -> None:
    """End a membership (and its read marker)."""
    session.execute(
        delete(ChatMember).where(ChatMember.room_id == room_id, ChatMember.user_id == user_id)
    )


def set_role(session: Session, room_id: int, user_id: int, role: str) -> None:
    session.execute(
        update(ChatMember)
        .where(ChatMember.room_id == room_id, ChatMember.user_id == user_id)
        .values(role=role)
    )


def members(session: Session, room_id: int) -> list[MemberInfo]:
    """A room's members, longest-standing first."""
    rows = _MEMBERS.rows(session, {"p_room": room_id})
    return [MemberInfo(int(user_id), email, role, joined) for user_id, email, role, joined in rows]


def member_ids(session: Session, room_id: int) -> list[int]:
    return [int(i) for i in _MEMBER_IDS.scalars(session, {"p_room": room_id})]


def peer_ids(session: Session, user_id: int) -> list[int]:
    """The other users who share at least one room with C{user_id}, by id."""
    mine = select(ChatMember.room_id).where(ChatMember.user_id == user_id)
    query = (
        select(ChatMember.user_id)
        .where(ChatMember.room_id.in_(mine), ChatMember.user_id != user_id)
        .distinct()
        .order_by(ChatMember.user_id)
    )
    return [int(i) for i in session.scalars(query)]


def display_name(room: Room, viewer_id: int, room_members: Iterable[MemberInfo]) -> str:
    """A room's name for C{viewer_id}: for a direct room, the other person's address."""
    if room.kind != DIRECT:
        return room.name
    others = [m.email for m in room_members if m.user_id != viewer_id]
    return others[0] if others else FORMER_MEMBER


def room_info(
    session: Session, room: Room, viewer_id: int, room_members: list[MemberInfo] | None = None
) -> RoomInfo:
    """
    C{room} with its members as C{viewer_id} sees it (role "" if not a
    member); C{room_members} saves loading them if the caller has them.
    """
    if room_members is None:
        room_members = members(session, room.id)
    role = next((m.role for m in room_members if m.user_id == viewer_id), "")
    return RoomInfo(
        id=room.id,
        name=display_name(room, viewer_id, room_members),
        kind=room.kind,
        role=role,
        created=room.created,
        last_activity=room.last_activity,
        members=tuple(room_members),
    )


def _others_in_direct_rooms(session: Session, user_id: int, room_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunks(room_ids):
        rows = session.execute(
            select(ChatMember.room_id, User.email)
            .join(User, User.id == ChatMember.user_id)
            .where(ChatMember.room_id.in_(chunk), ChatMember.user_id != user_id)
        )
        found.update((int(row.room_id), row.email) for row in rows)
    return found


def _unread_counts(session: Session, user_id: int, room_id: int | None = None) -> dict[int, int]:
    marker = aliased(ChatMember)
    query = (
        select(ChatMessage.room_id, func.count())
        .join(marker, and_(marker.room_id == ChatMessage.room_id, marker.user_id == user_id))
        .where(
            ChatMessage.id > marker.last_read,
            ChatMessage.deleted.is_(False),
            or_(ChatMessage.sender_id != user_id, ChatMessage.sender_id.is_(None)),
        )
        .group_by(ChatMessage.room_id)
    )
    if room_id is not None:
        query = query.where(ChatMessage.room_id == room_id)
    return {int(r[0]): int(r[1]) for r in session.execute(query)}


def unread_count(session: Session, room_id: int, user_id: int) -> int:
    """Messages by others after the user's read marker, not deleted."""
    return _unread_counts(session, user_id, room_id).get(room_id, 0)


def room_summaries(session: Session, user_id: int) -> list[RoomSummary]:
    """The rooms C{user_id} is in, most recently active first."""
    rows = list(
        session.execute(
            select(
                ChatRoom.id,
                ChatRoom.kind,
                ChatRoom.name,
                ChatRoom.last_activity,
                ChatMember.role,
                ChatMember.last_read,
            )
            .join(ChatMember, ChatMember.room_id == ChatRoom.id)
            .where(ChatMember.user_id == user_id)
            .order_by(ChatRoom.last_activity.desc(), ChatRoom.id.desc())
        )
    )
    unread = _unread_counts(session, user_id)
    direct = [int(r.id) for r in rows if r.kind == DIRECT]
    others = _others_in_direct_rooms(session, user_id, direct) if direct else {}
    return [
        RoomSummary(
            id=int(r.id),
            name=others.get(int(r.id), FORMER_MEMBER) if r.kind == DIRECT else r.name,
            kind=r.kind,
            role=r.role,
            unread=unread.get(int(r.id), 0),
            last_read=int(r.last_read),
            last_activity=r.last_activity,
        )
        for r in rows
    ]


def public_rooms(session: Session, user_id: int) -> list[PublicRoom]:
    """Every public room with its member count, by name."""
    counts = (
        select(ChatMember.room_id, func.count().label("n")).group_by(ChatMember.room_id).subquery()
    )
    mine = exists().where(ChatMember.room_id == ChatRoom.id, ChatMember.user_id == user_id)
    rows = session.execute(
        select(
            ChatRoom.id,
            ChatRoom.name,
            ChatRoom.last_activity,
            func.coalesce(counts.c.n, 0).label("n"),
            mine.label("joined"),
        )
        .outerjoin(counts, counts.c.room_id == ChatRoom.id)
        .where(ChatRoom.kind == PUBLIC)
        .order_by(ChatRoom.name, ChatRoom.id)
    )
    return [PublicRoom(int(r.id), r.name, int(r.n), bool(r.joined), r.last_activity) for r in rows]


def advance_read_marker(session: Session, room_id: int, user_id: int, message_id: int) -> bool:
    """Move the user's read marker up to C{message_id}, never back; whether it moved."""
    params = {"p_room": room_id, "p_user": user_id, "p_message": message_id}
    return _ADVANCE_READ_MARKER.run(session, params) > 0


def send_read_marker(session: Session, room_id: int, user_id: int, message_id: int) -> None:
    """
    L{advance_read_marker} without waiting to learn whether it moved (in
    a L{gk.storage.chat_sql.pipeline}, it goes with the next statements).
    """
    params = {"p_room": room_id, "p_user": user_id, "p_message": message_id}
    _ADVANCE_READ_MARKER.send(session, params)
