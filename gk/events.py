"""
The in-process event bus.

Services publish what happened (a message delivered, flags changed, a
calendar object changed, a chat message posted); IMAP IDLE, the WebSocket
and the assistant subscribe instead of polling.  Events are published and
delivered on the reactor thread, synchronously, in subscription order.  A
failing subscriber is logged and never affects the publisher or the other
subscribers.

Every event names the user it concerns (C{user_id}); subscribers that act
for one user subscribe with that C{user_id} and never see another's events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.logger import Logger


@dataclass(frozen=True)
class Event:
    """Base of every event; C{user_id} is the account it concerns."""

    user_id: int


@dataclass(frozen=True)
class MailDelivered(Event):
    folder: str
    uid: int
    sender: str = ""
    subject: str = ""


@dataclass(frozen=True)
class FlagsChanged(Event):
    folder: str
    uids: tuple[int, ...]
    modseq: int = 0


@dataclass(frozen=True)
class MessageExpunged(Event):
    folder: str
    uids: tuple[int, ...]


@dataclass(frozen=True)
class FolderChanged(Event):
    """A folder was created, renamed or deleted."""

    folder: str
    action: str
    new_name: str = ""


@dataclass(frozen=True)
class CalendarChanged(Event):
    """A calendar object was created, changed or deleted (C{action})."""

    collection: str
    href: str
    action: str = "changed"


@dataclass(frozen=True)
class ContactsChanged(Event):
    """A contact card was created, changed or deleted (C{action})."""

    collection: str
    href: str
    action: str = "changed"


@dataclass(frozen=True)
class ChatChanged(Event):
    """
    A change in a chat room the user is in, or to their own membership or
    read marker, logged at C{position} (see L{gk.chat.changes} for the
    kinds and their payloads).  C{payload} is JSON-ready and is what
    L{gk.chat.ChatService.changes_since} gives for the same change, so
    that it can be forwarded to clients as it is.
    """

    room_id: int
    position: int
    kind: str
    payload: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ChatMention(Event):
    """
    The user was mentioned (C{@name}) in message C{message_id} of a room
    they are in, posted or edited by C{sender} (an address) at log
    C{position}; C{text} is the message's text.
    """

    room_id: int
    message_id: int
    position: int
    sender: str
    text: str


@dataclass(frozen=True)
class AssistantActivity(Event):
    """
    Something happened in one of the user's assistant conversations, as
    it happens: C{event} is one of the turn's events (see
    L{gk.assistant.conversations}) or a C{delta} of the model's words.
    """

    conversation_id: str
    event: dict[str, Any] = field(default_factory=dict, hash=False)


E = TypeVar("E", bound=Event)


class Subscription:
    """A handle to stop receiving events; L{cancel} is idempotent."""

    def __init__(self, bus: EventBus, entry: _Entry) -> None:
        self._bus = bus
        self._entry = entry

    def cancel(self) -> None:
        self._bus._remove(self._entry)


@dataclass(eq=False)
class _Entry:
    kind: type[Event]
    callback: Callable[[Any], object]
    user_id: int | None
    active: bool = True


class EventBus:
    """Publish/subscribe within one process."""

    log = Logger()

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def subscribe(
        self,
        kind: type[E],
        callback: Callable[[E], object],
        user_id: int | None = None,
    ) -> Subscription:
        """
        Call C{callback(event)} for every published event that is an
        instance of C{kind} and, when C{user_id} is given, concerns that user.
        """
        entry = _Entry(kind, callback, user_id)
        self._entries.append(entry)
        return Subscription(self, entry)

    def _remove(self, entry: _Entry) -> None:
        # Also seen by a publish() already iterating over its copy.
        entry.active = False
        if entry in self._entries:
            self._entries.remove(entry)

    def publish(self, event: Event) -> None:
        # Iterate over a copy: a subscriber may cancel itself or subscribe.
        for entry in list(self._entries):
            if not entry.active or not isinstance(event, entry.kind):
                continue
            if entry.user_id is not None and entry.user_id != event.user_id:
                continue
            try:
                entry.callback(event)
            except Exception:
                self.log.failure("event subscriber failed on {event!r}", event=event)

    def subscriber_count(self) -> int:
        return len(self._entries)
