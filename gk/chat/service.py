"""
L{ChatService}: team chat in public and private rooms and direct
conversations, for every adapter (the WebSocket, the HTTP API, the
assistant's tools).

Every method takes the L{Account} it acts for and acts only as that user:
a room they are not in can be neither read nor written, and a private or
direct room they are not in looks like one that does not exist
(L{gk.chat.access}).  Refusals raise a L{ChatError} subclass whose message
can be shown to the user.

Each write runs in one transaction that first locks the change log
(L{gk.storage.chat_store.lock_log}, or C{take_position} for a post), so
chat writes are serialised and every change gets the next position of
the log; once it has committed, one L{ChatChanged} per user told (and
one L{ChatMention} per newly mentioned member) is published on the event
bus, carrying the payload that L{ChatService.changes_since} would give,
so that the socket layer forwards it without a database trip.  A client
that was away catches up with L{ChatService.changes_since} from the last
position it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy.orm import Session

from gk.accounts import InvalidAddress, normalize_address
from gk.chat import access, mentions
from gk.chat import changes as kinds
from gk.chat import text as rules
from gk.chat.changes import ChangeLog, Payloads
from gk.chat.errors import InvalidInput, NoSuchMessage, NotAllowed
from gk.chat.results import Change, ChangeBatch, HistoryPage, Thread
from gk.events import Event, EventBus
from gk.storage import chat_store as store
from gk.storage.accounts import Account
from gk.storage.chat_store import MessageInfo, PublicRoom, Room, RoomInfo, RoomSummary
from gk.storage.database import Database
from gk.storage.models import utcnow

T = TypeVar("T")

#: Page sizes: default and largest.
HISTORY_LIMIT = (50, 200)
SEARCH_LIMIT = (50, 200)
CHANGES_LIMIT = (100, 1000)
#: Most addresses in one request (room creation, adding members).
MAX_MEMBERS = 500

#: A write's result and the events to publish once it has committed.
_Written = tuple[T, list[Event]]


class ChatService:
    """Rooms, messages, read markers, the change log and search (see the module docstring)."""

    def __init__(self, db: Database, events: EventBus) -> None:
        self.db = db
        self.events = events

    async def _write(
        self, fn: Callable[[Session], _Written[T]], together: bool = False, lock: bool = True
    ) -> T:
        """
        Run C{fn} in a write transaction that holds the change log's lock,
        then publish the events it returned (only after the commit).

        @param together: share a commit with concurrent writes (the
            frequent, small ones); C{fn} may then run twice, which is
            harmless since it is pure database work.
        @param lock: lock the log before C{fn}; L{False} when C{fn}'s
            first statement takes its position (L{store.take_position}),
            which locks it just the same.
        """

        def locked(session: Session) -> _Written[T]:
            store.lock_log(session)
            return fn(session)

        write = self.db.write_together if together else self.db.write
        result, events = await write(locked if lock else fn)
        for event in events:
            self.events.publish(event)
        return result

    # -- rooms -----------------------------------------------------------------

    async def create_room(
        self, account: Account, name: str, kind: str, members: Iterable[str] = ()
    ) -> RoomInfo:
        """
        Create a room with the account as its owner and C{members} in it.

        A direct room is between the account and exactly one other person
        and has no name (C{name} is ignored; each sees the other's
        address); creating it again returns the existing one unchanged.

        @param kind: C{public}, C{private} or C{direct}.
        @param members: the other members' addresses (the account's own is ignored).
        @raise InvalidInput: a bad name or kind, an address that is not an
            account (all such are named), or not exactly one other person
            for a direct room.
        """
        kind = rules.room_kind(kind)
        room_name = "" if kind == store.DIRECT else rules.room_name(name)
        emails = [e for e in _addresses(members) if e != account.email]
        if kind == store.DIRECT and len(emails) != 1:
            raise InvalidInput("a direct conversation is between you and one other person")

        def create(session: Session) -> _Written[RoomInfo]:
            ids = _user_ids(session, emails)
            key = None
            if kind == store.DIRECT:
                key = store.direct_key(account.id, ids[emails[0]])
                existing = store.direct_room(session, key)
                if existing is not None:
                    return store.room_info(session, existing, account.id), []
            room = store.insert_room(session, kind, room_name, account.id, key)
            store.add_member(session, room.id, account.id, store.OWNER)
            for email in emails:
                store.add_member(session, room.id, ids[email], store.MEMBER)
            log = ChangeLog(session)
            log.log(kinds.ROOM_CREATED, room, data={"by": account.email})
            return store.room_info(session, room, account.id), log.events

        return await self._write(create)

    async def join(self, account: Account, room_id: int) -> RoomInfo:
        """
        Join a public room (nothing happens if already in it).  Someone
        joining a room nobody is in becomes its owner.

        @raise NoSuchRoom: no such room, or one that is not public and the
            account is not in.
        """

        def join(session: Session) -> _Written[RoomInfo]:
            room, membership = access.visible_room(session, account, room_id)
            if membership is not None:
                return store.room_info(session, room, account.id), []
            role = store.MEMBER if store.member_ids(session, room.id) else store.OWNER
            store.add_member(session, room.id, account.id, role)
            log = ChangeLog(session)
            data = {"email": account.email, "role": role, "by": account.email}
            log.log(kinds.MEMBER_JOINED, room, subject_id=account.id, data=data)
            return store.room_info(session, room, account.id), log.events

        return await self._write(join)

    async def leave(self, account: Account, room_id: int) -> None:
        """
        Leave a room.  When its last owner leaves, the longest-standing
        member left becomes owner.

        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: not in the room, or it is a direct conversation.
        """

        def leave(session: Session) -> _Written[None]:
            room, membership = access.visible_room(session, account, room_id)
            if membership is None:
                raise NotAllowed(f"you are not in {room.name}")
            if room.kind == store.DIRECT:
                raise NotAllowed("you cannot leave a direct conversation")
            log = ChangeLog(session)
            _remove(session, log, room, account.id, account.email, by=account.email)
            if membership.role == store.OWNER:
                _ensure_owner(session, log, room)
            return None, log.events

        await self._write(leave)

    async def add_members(self, account: Account, room_id: int, emails: Iterable[str]) -> RoomInfo:
        """
        Add people to a room (the owner only); those already in it are
        left as they are.

        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: not the room's owner, or a direct conversation.
        @raise InvalidInput: addresses that are not accounts (named).
        """
        wanted = _addresses(emails)

        def add(session: Session) -> _Written[RoomInfo]:
            room = _owned_room(session, account, room_id, "add people to")
            ids = _user_ids(session, wanted)
            present = set(store.member_ids(session, room.id))
            log = ChangeLog(session)
            for email in wanted:
                if ids[email] in present:
                    continue
                store.add_member(session, room.id, ids[email], store.MEMBER)
                present.add(ids[email])
                data = {"email": email, "role": store.MEMBER, "by": account.email}
                log.log(kinds.MEMBER_JOINED, room, subject_id=ids[email], data=data)
            return store.room_info(session, room, account.id), log.events

        return await self._write(add)

    async def remove_member(self, account: Account, room_id: int, email: str) -> RoomInfo:
        """
        Take someone out of a room (the owner only; to leave, use L{leave}).

        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: not the room's owner, or a direct conversation.
        @raise InvalidInput: C{email} is the account's own or not a member's.
        """
        [address] = _addresses([email])
        if address == account.email:
            raise InvalidInput("to leave a room yourself, leave it")

        def remove(session: Session) -> _Written[RoomInfo]:
            room = _owned_room(session, account, room_id, "remove people from")
            user_id = store.user_ids_by_email(session, [address]).get(address)
            if user_id is None or store.get_membership(session, room.id, user_id) is None:
                raise InvalidInput(f"{address} is not in {room.name}")
            log = ChangeLog(session)
            _remove(session, log, room, user_id, address, by=account.email)
            return store.room_info(session, room, account.id), log.events

        return await self._write(remove)

    async def rooms(self, account: Account) -> list[RoomSummary]:
        """The account's rooms with their unread counts, most recently active first."""
        return await self.db.read(lambda s: store.room_summaries(s, account.id))

    async def peers(self, account: Account) -> list[int]:
        """
        The ids of the users who share at least one room with the account
        (who may see its presence), in ascending order.
        """
        return await self.db.read(lambda s: store.peer_ids(s, account.id))

    async def public_rooms(self, account: Account) -> list[PublicRoom]:
        """The directory: every public room, by name, and whether the account is in it."""
        return await self.db.read(lambda s: store.public_rooms(s, account.id))

    async def room(self, account: Account, room_id: int) -> RoomInfo:
        """
        A room the account is in, with its members.

        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: a public room the account has not joined.
        """

        def read(session: Session) -> RoomInfo:
            room, _ = access.member_room(session, account, room_id)
            return store.room_info(session, room, account.id)

        return await self.db.read(read)

    # -- messages ----------------------------------------------------------------

    async def post(
        self, account: Account, room_id: int, text: str, reply_to: int | None = None
    ) -> MessageInfo:
        """
        Post a message; it also moves the account's read marker to it.

        Members mentioned (L{gk.chat.mentions}) other than the sender get a
        L{ChatMention} event.

        @param text: 1 to 10,000 characters once trimmed.
        @param reply_to: a message of the same room: the new message joins
            its thread (the thread of its root if it is itself a reply).
        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: a public room the account has not joined.
        @raise NoSuchMessage: C{reply_to} is not a message of this room.
        @raise InvalidInput: bad text, or C{reply_to} was deleted.
        """
        body = rules.message_text(text)

        def post(session: Session) -> _Written[MessageInfo]:
            # First, as it locks the log: what follows sees every chat write before.
            position, room = access.lock_and_enter(session, account, room_id)
            root = None if reply_to is None else _thread_root(session, room, reply_to)
            now = utcnow()
            mentioned = _mentions(session, room, body)
            words = rules.words(body)
            # PostgreSQL: the statements from here go in two round trips (three in all).
            with store.pipeline(session):
                message_id = store.new_message(
                    session, room.id, account.id, body, root, now, words, mentioned
                )
                if root is not None:
                    store.change_reply_count(session, root, 1)
                store.touch_room(session, room.id, now)
                store.send_read_marker(session, room.id, account.id, message_id)
                # Exactly what was just stored, so not read back (three queries).
                message = MessageInfo(
                    id=message_id,
                    room_id=room.id,
                    sender=account.email,
                    text=body,
                    created=now,
                    edited=None,
                    deleted=False,
                    reply_to=root,
                    reply_count=0,
                    reactions={},
                    mentions=tuple(sorted(mentioned.values())),
                )
                log = ChangeLog(session)
                log.log(
                    kinds.MESSAGE_POSTED,
                    room,
                    message_id=message_id,
                    message=message,
                    position=position,
                )
            log.mentions(room, message, position, [u for u in mentioned if u != account.id])
            return message, log.events

        return await self._write(post, together=True, lock=False)

    async def edit(self, account: Account, message_id: int, text: str) -> MessageInfo:
        """
        Change the text of one's own message (nothing happens if it is the
        same).  Members it newly mentions get a L{ChatMention} event.

        @raise NoSuchMessage: not a message of the account's rooms, or deleted.
        @raise NotAllowed: someone else's message.
        @raise InvalidInput: bad text.
        """
        body = rules.message_text(text)

        def edit(session: Session) -> _Written[MessageInfo]:
            message, room = access.own_message(session, account, message_id, "edit")
            if message.deleted:
                raise NoSuchMessage(f"message {message_id} was deleted")
            if message.text == body:
                return _message(session, message.id), []
            store.set_text(session, message.id, body, utcnow())
            store.set_words(session, message.id, rules.words(body))
            before = store.mentioned_ids(session, message.id)
            mentioned = _mentions(session, room, body)
            store.set_mentions(session, message.id, mentioned)
            log = ChangeLog(session)
            info = _message(session, message.id)
            position = log.log(kinds.MESSAGE_EDITED, room, message_id=message.id, message=info)
            new = [u for u in mentioned if u not in before and u != account.id]
            log.mentions(room, info, position, new)
            return info, log.events

        return await self._write(edit)

    async def delete(self, account: Account, message_id: int) -> MessageInfo:
        """
        Delete one's own message: it stays in history as a tombstone (same
        id, empty text, C{deleted}), without reactions or mentions, and is
        no longer found by search.  Deleting it again changes nothing.

        @raise NoSuchMessage: not a message of the account's rooms.
        @raise NotAllowed: someone else's message.
        """

        def delete(session: Session) -> _Written[MessageInfo]:
            message, room = access.own_message(session, account, message_id, "delete")
            if message.deleted:
                return _message(session, message.id), []
            store.make_tombstone(session, message.id)
            if message.reply_to is not None:
                store.change_reply_count(session, message.reply_to, -1)
            log = ChangeLog(session)
            log.log(kinds.MESSAGE_DELETED, room, message_id=message.id)
            return _message(session, message.id), log.events

        return await self._write(delete)

    async def react(self, account: Account, message_id: int, emoji: str, on: bool) -> MessageInfo:
        """
        Add (C{on}) or take back the account's reaction C{emoji} to a
        message; one per person and emoji, so doing it twice is the same
        as once.

        @param emoji: 1 to 32 characters without spaces.
        @raise NoSuchMessage: not a message of the account's rooms, or deleted.
        @raise InvalidInput: a bad emoji, or C{on} is not a boolean.
        """
        reaction = rules.emoji(emoji)
        if not isinstance(on, bool):
            raise InvalidInput("say whether the reaction is on or off")

        def react(session: Session) -> _Written[MessageInfo]:
            message, room, _ = access.live_message(session, account, message_id)
            if not store.set_reaction(session, message.id, account.id, reaction, on):
                return _message(session, message.id), []
            log = ChangeLog(session)
            data = {"emoji": reaction, "email": account.email, "on": on}
            log.log(kinds.REACTION_CHANGED, room, message_id=message.id, data=data)
            return _message(session, message.id), log.events

        return await self._write(react, together=True)

    async def message(self, account: Account, message_id: int) -> MessageInfo:
        """
        One message (a tombstone if deleted).

        @raise NoSuchMessage: not a message of the account's rooms.
        """

        def read(session: Session) -> MessageInfo:
            message, _, _ = access.visible_message(session, account, message_id)
            return _message(session, message.id)

        return await self.db.read(read)

    async def history(
        self, account: Account, room_id: int, before: str | None = None, limit: int | None = None
    ) -> HistoryPage:
        """
        A page of a room's messages, newest first, replies and tombstones
        included.

        @param before: L{None} for the newest page, else the C{next} cursor
            of the previous page (opaque).
        @param limit: 1 to 200 messages (50 if L{None}).
        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: a public room the account has not joined.
        @raise InvalidInput: a bad cursor or limit.
        """
        older_than = None if before is None else rules.parse_cursor(before)
        size = rules.limit(limit, default=HISTORY_LIMIT[0], largest=HISTORY_LIMIT[1])

        def read(session: Session) -> HistoryPage:
            room, _ = access.member_room(session, account, room_id)
            ids = store.history_ids(session, room.id, older_than, size + 1)
            page = store.message_infos(session, ids[:size])
            more = len(ids) > size
            return HistoryPage(tuple(page), rules.make_cursor(page[-1].id) if more else None)

        return await self.db.read(read)

    async def thread(self, account: Account, message_id: int) -> Thread:
        """
        The thread a message belongs to (as its root or a reply): the root
        and its replies, oldest first.

        @raise NoSuchMessage: not a message of the account's rooms.
        """

        def read(session: Session) -> Thread:
            message, _, _ = access.visible_message(session, account, message_id)
            root = message.reply_to or message.id
            [head, *replies] = store.message_infos(session, [root, *store.reply_ids(session, root)])
            return Thread(head, tuple(replies))

        return await self.db.read(read)

    # -- read markers --------------------------------------------------------------

    async def mark_read(self, account: Account, room_id: int, message_id: int) -> int:
        """
        Move the account's read marker in a room up to C{message_id}; an
        older message leaves it where it is.

        @return: the room's unread count for the account afterwards.
        @raise NoSuchRoom: see L{join}.
        @raise NotAllowed: a public room the account has not joined.
        @raise NoSuchMessage: C{message_id} is not a message of the room.
        """

        def mark(session: Session) -> _Written[int]:
            room, _ = access.member_room(session, account, room_id)
            message = store.get_message(session, message_id) if access.is_id(message_id) else None
            if message is None or message.room_id != room.id:
                raise NoSuchMessage(f"there is no message {message_id} in this room")
            log = ChangeLog(session)
            if store.advance_read_marker(session, room.id, account.id, message.id):
                log.log(
                    kinds.READ_MARKED,
                    room,
                    message_id=message.id,
                    subject_id=account.id,
                    private=True,
                )
            return store.unread_count(session, room.id, account.id), log.events

        return await self._write(mark, together=True)

    # -- catching up ------------------------------------------------------------------

    async def position(self, account: Account) -> int:
        """The change log's latest position: where a freshly loaded client starts."""
        return await self.db.read(store.current_position)

    async def changes_since(
        self, account: Account, position: int, limit: int | None = None
    ) -> ChangeBatch:
        """
        The changes after C{position} that the account sees, oldest first:
        those of the rooms it is in now, and those about itself (its
        memberships, its read markers) wherever they happened.

        @param position: a position from L{position}, a previous batch or
            an event.
        @param limit: 1 to 1000 changes (100 if L{None}).
        @raise InvalidInput: a bad limit, or a position ahead of the log
            (e.g. the server was restored from a backup; start again from
            L{position}).
        """
        size = rules.limit(limit, default=CHANGES_LIMIT[0], largest=CHANGES_LIMIT[1])
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise InvalidInput("a position is a number from 0 up")

        def read(session: Session) -> ChangeBatch:
            # Positions are handed out in commit order (see chat_store):
            # every change up to the latest committed one is visible now.
            latest = store.current_position(session)
            if position > latest:
                raise InvalidInput("that position is ahead of the server; start again")
            rows = store.changes_for(session, account.id, position, latest, size + 1)
            more = len(rows) > size
            rows = rows[:size]
            payloads = Payloads(session)
            payloads.prefetch(rows)
            found = tuple(
                Change(r.position, r.kind, r.room_id, payloads.payload(r, account.id)) for r in rows
            )
            return ChangeBatch(found, rows[-1].position if more else latest, more)

        return await self.db.read(read)

    # -- search -------------------------------------------------------------------------

    async def search(
        self, account: Account, text: str, limit: int | None = None
    ) -> list[MessageInfo]:
        """
        The messages of the account's rooms (not deleted) that have every
        word of C{text}, newest first.  Words match whole, ignoring case
        and accents, except the last, which also matches as the start of
        a word ("deplo" finds "deployed") when it has two letters or more.

        @param limit: 1 to 200 messages (50 if L{None}).
        @raise InvalidInput: no word to search for, more than ten, or a bad limit.
        """
        words = rules.query_words(text)
        size = rules.limit(limit, default=SEARCH_LIMIT[0], largest=SEARCH_LIMIT[1])
        prefix = words[-1] if len(words[-1]) >= 2 else None
        exact = words[:-1] if prefix else words

        def read(session: Session) -> list[MessageInfo]:
            ids = store.search_ids(session, account.id, exact, prefix, size)
            return store.message_infos(session, ids)

        return await self.db.read(read)


# -- helpers, inside a transaction ---------------------------------------------------------


def _addresses(emails: Iterable[str]) -> list[str]:
    """
    Normalised addresses, each once, in order.

    @raise InvalidInput: too many, or not addresses (all such named).
    """
    if isinstance(emails, str):
        emails = [emails]
    found: dict[str, None] = {}
    bad = []
    for email in emails:
        try:
            found[normalize_address(email)] = None
        except (InvalidAddress, AttributeError, TypeError):
            bad.append(str(email))
    if bad:
        raise InvalidInput(f"not an address: {', '.join(bad)}")
    if len(found) > MAX_MEMBERS:
        raise InvalidInput(f"at most {MAX_MEMBERS} people at a time")
    return list(found)


def _user_ids(session: Session, emails: list[str]) -> dict[str, int]:
    """
    The accounts of C{emails}.

    @raise InvalidInput: some are not accounts (all of them named).
    """
    ids = store.user_ids_by_email(session, emails)
    unknown = [e for e in emails if e not in ids]
    if unknown:
        raise InvalidInput(f"no such user: {', '.join(unknown)}")
    return ids


def _owned_room(session: Session, account: Account, room_id: int, action: str) -> Room:
    """
    A public or private room C{account} owns.

    @raise NoSuchRoom: see L{access.visible_room}.
    @raise NotAllowed: a direct room, or not its owner.
    """
    room, membership = access.member_room(session, account, room_id)
    if room.kind == store.DIRECT:
        raise NotAllowed("a direct conversation is between two people; create a room instead")
    if membership.role != store.OWNER:
        raise NotAllowed(f"only the owner of {room.name} can {action} it")
    return room


def _remove(
    session: Session, log: ChangeLog, room: Room, user_id: int, email: str, *, by: str
) -> None:
    """End a membership and log it (the member who went is told too)."""
    store.remove_member(session, room.id, user_id)
    data = {"email": email, "by": by}
    log.log(kinds.MEMBER_LEFT, room, subject_id=user_id, data=data)


def _ensure_owner(session: Session, log: ChangeLog, room: Room) -> None:
    """Make the longest-standing member owner if the room has members but no owner."""
    remaining = store.members(session, room.id)
    if not remaining or any(m.role == store.OWNER for m in remaining):
        return
    heir = remaining[0]
    store.set_role(session, room.id, heir.user_id, store.OWNER)
    data = {"email": heir.email, "role": store.OWNER}
    log.log(kinds.MEMBER_ROLE, room, subject_id=heir.user_id, data=data)


def _thread_root(session: Session, room: Room, reply_to: int) -> int:
    """
    The root of the thread a reply to C{reply_to} joins.

    @raise NoSuchMessage: C{reply_to} is not a message of C{room} (the
        same answer whether or not it exists elsewhere).
    @raise InvalidInput: it was deleted.
    """
    parent = store.get_message(session, reply_to) if access.is_id(reply_to) else None
    if parent is None or parent.room_id != room.id:
        raise NoSuchMessage(f"there is no message {reply_to} in this room")
    if parent.deleted:
        raise InvalidInput("you cannot reply to a deleted message")
    return parent.reply_to or parent.id


def _mentions(session: Session, room: Room, body: str) -> dict[int, str]:
    """The members of C{room} that C{body} mentions: user id to address, in order of mention."""
    if "@" not in body:
        return {}  # most messages: no need to read the members
    members = {m.email: m.user_id for m in store.members(session, room.id)}
    emails = {user_id: email for email, user_id in members.items()}
    return {user_id: emails[user_id] for user_id in mentions.mentioned(body, members)}


def _message(session: Session, message_id: int) -> MessageInfo:
    [message] = store.message_infos(session, [message_id])
    return message
