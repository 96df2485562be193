"""
Who may see what, checked inside the transaction that acts on it.

A user sees a room they are a member of, and every public room (the
directory); a private or direct room they are not in looks exactly like a
room that does not exist.  Messages are seen by the room's members only.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gk.chat.errors import NoSuchMessage, NoSuchRoom, NotAllowed
from gk.storage import chat_store as store
from gk.storage.accounts import Account
from gk.storage.chat_store import Membership, Room, StoredMessage

#: Ids outside this range name nothing (and never reach the database).
MAX_ID = 2**63 - 1


def is_id(value: object) -> bool:
    """Whether C{value} could be a room or message id."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def visible_room(
    session: Session, account: Account, room_id: int
) -> tuple[Room, Membership | None]:
    """
    The room and C{account}'s membership, if any.

    @raise NoSuchRoom: no such room, or a private or direct one the
        account is not in.
    """
    found = store.room_and_membership(session, room_id, account.id) if is_id(room_id) else None
    return _visible(room_id, found)


def member_room(session: Session, account: Account, room_id: int) -> tuple[Room, Membership]:
    """
    A room C{account} is a member of, and the membership.

    @raise NoSuchRoom: see L{visible_room}.
    @raise NotAllowed: a public room the account has not joined.
    """
    return _member(*visible_room(session, account, room_id))


def lock_and_enter(session: Session, account: Account, room_id: int) -> tuple[int, Room]:
    """
    The next position of the change log, which locks it (to write in a
    room: L{store.take_position}), and the room, which C{account} must
    be a member of (read with the log locked), in one trip to the database.

    @raise NoSuchRoom: see L{visible_room}.
    @raise NotAllowed: a public room the account has not joined.
    """
    if not is_id(room_id):
        raise NoSuchRoom(f"there is no room {room_id}")
    position, found = store.take_position_and_room(session, room_id, account.id)
    room, _ = _member(*_visible(room_id, found))
    return position, room


def _visible(
    room_id: int, found: tuple[Room, Membership | None] | None
) -> tuple[Room, Membership | None]:
    if found is None or (found[1] is None and found[0].kind != store.PUBLIC):
        raise NoSuchRoom(f"there is no room {room_id}")
    return found


def _member(room: Room, membership: Membership | None) -> tuple[Room, Membership]:
    if membership is None:
        raise NotAllowed(f"you are not in {room.name}; join it first")
    return room, membership


def visible_message(
    session: Session, account: Account, message_id: int
) -> tuple[StoredMessage, Room, Membership]:
    """
    A message of a room C{account} is in, its room and the membership.

    @raise NoSuchMessage: no such message, or not in one of the account's rooms.
    """
    message = store.get_message(session, message_id) if is_id(message_id) else None
    membership = None
    if message is not None:
        membership = store.get_membership(session, message.room_id, account.id)
    room = (
        None if membership is None or message is None else store.get_room(session, message.room_id)
    )
    if message is None or membership is None or room is None:
        raise NoSuchMessage(f"there is no message {message_id}")
    return message, room, membership


def live_message(
    session: Session, account: Account, message_id: int
) -> tuple[StoredMessage, Room, Membership]:
    """
    L{visible_message}, not deleted.

    @raise NoSuchMessage: as L{visible_message}, or the message was deleted.
    """
    message, room, membership = visible_message(session, account, message_id)
    if message.deleted:
        raise NoSuchMessage(f"message {message_id} was deleted")
    return message, room, membership


def own_message(
    session: Session, account: Account, message_id: int, action: str
) -> tuple[StoredMessage, Room]:
    """
    A message C{account} sent, in one of its rooms.

    @param action: what the caller does ("edit", "delete"), for the error.
    @raise NoSuchMessage: see L{visible_message}.
    @raise NotAllowed: someone else sent it.
    """
    message, room, _ = visible_message(session, account, message_id)
    if message.sender_id != account.id:
        raise NotAllowed(f"you can only {action} your own messages")
    return message, room
