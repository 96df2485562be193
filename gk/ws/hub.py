"""
L{LiveHub}: who is connected to C{/ws}, what each user is told, and
presence.

The hub subscribes to the event bus once for every kind of live event and
hands each event to the connections of the user it concerns (the bus
publishes one event per user concerned, so a connection never receives
another user's events).  The events of one change for its many
recipients come one after the other: their frame is encoded once, and
sent as the same bytes to every socket (which frames it once,
L{gk.ws.connection.LiveSocketFactory.framed}).  Presence is derived from the live connections:
a user is C{online} with at least one connection not set away, C{away}
when all are, C{offline} with none; a change is pushed to the users who
share a room with them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gk.events import (
    CalendarChanged,
    ContactsChanged,
    Event,
    EventBus,
    MailDelivered,
    Subscription,
)
from gk.storage.accounts import Account
from gk.ws import protocol

ONLINE, AWAY, OFFLINE = "online", "away", "offline"

#: Who shares a room with a user (their user ids), for presence changes.
PeersOf = Callable[[Account], Awaitable[Iterable[int]]]


class LiveConnection(Protocol):
    """What the hub needs of one socket."""

    account: Account
    away: bool

    def send_frame(self, frame: bytes) -> None:
        """Queue a text frame to the client (never blocks)."""

    def going_away(self) -> None:
        """Close the socket because the server stops."""


class LiveHub:
    """The registry of live connections (see the module docstring)."""

    log = Logger()

    def __init__(self, events: EventBus, peers_of: PeersOf | None = None) -> None:
        self.events = events
        self.peers_of = peers_of
        self._connections: dict[int, set[LiveConnection]] = {}
        self._presence: dict[int, str] = {}
        self._subscriptions: list[Subscription] = []
        self._stopped = False
        self._last_frame: tuple[object, bytes] = ((), b"")
        #: Event kinds the hub forwards, with their wire form.
        self._forwarders: dict[type[Event], Callable[[Any], tuple[str, Any, int | None]]] = {
            MailDelivered: _mail_delivered,
            CalendarChanged: _collection_changed("calendar.changed"),
            ContactsChanged: _collection_changed("contacts.changed"),
        }

    def forward(
        self, kind: type[Event], render: Callable[[Any], tuple[str, Any, int | None]]
    ) -> None:
        """Also push events of C{kind}, as C{render(event)} -> (name, data, position)."""
        self._forwarders[kind] = render
        if self._subscriptions:
            self._subscriptions.append(self.events.subscribe(kind, self._push))

    def start(self) -> None:
        self._stopped = False
        for kind in self._forwarders:
            self._subscriptions.append(self.events.subscribe(kind, self._push))

    def stop(self) -> None:
        """Stop forwarding and announcing, and close every socket (1001: going away)."""
        self._stopped = True
        for subscription in self._subscriptions:
            subscription.cancel()
        self._subscriptions.clear()
        for connections in list(self._connections.values()):
            for connection in list(connections):
                connection.going_away()
        self._connections.clear()
        self._presence.clear()

    # -- connections ------------------------------------------------------------------

    def add(self, connection: LiveConnection) -> None:
        user_id = connection.account.id
        self._connections.setdefault(user_id, set()).add(connection)
        self._presence_changed(connection.account)

    def remove(self, connection: LiveConnection) -> None:
        user_id = connection.account.id
        mine = self._connections.get(user_id)
        if mine is None or connection not in mine:
            return
        mine.discard(connection)
        if not mine:
            del self._connections[user_id]
        self._presence_changed(connection.account)

    def set_away(self, connection: LiveConnection, away: bool) -> None:
        connection.away = away
        self._presence_changed(connection.account)

    def connections(self, user_id: int) -> tuple[LiveConnection, ...]:
        """A user's live connections."""
        return tuple(self._connections.get(user_id, ()))

    def connection_count(self, user_id: int | None = None) -> int:
        if user_id is not None:
            return len(self._connections.get(user_id, ()))
        return sum(len(c) for c in self._connections.values())

    def presence(self, user_id: int) -> str:
        return self._presence.get(user_id, OFFLINE)

    # -- sending ----------------------------------------------------------------------

    def send_to_user(
        self, user_id: int, frame: bytes, *, skip: LiveConnection | None = None
    ) -> int:
        """Send C{frame} to every connection of a user; how many got it."""
        connections = self._connections.get(user_id)
        if not connections:
            return 0
        sent = 0
        # A copy: a connection that reads too slowly is dropped (removed) on sending.
        for connection in tuple(connections):
            if connection is not skip:
                connection.send_frame(frame)
                sent += 1
        return sent

    def _renderer(self, kind: type[Event]) -> Callable[[Any], tuple[str, Any, int | None]] | None:
        render = self._forwarders.get(kind)
        if render is None:  # a subclass of a forwarded kind
            render = next((r for k, r in self._forwarders.items() if issubclass(kind, k)), None)
        return render

    def _push(self, event: Event) -> None:
        # Once per recipient of every change (e.g. 50 times per chat
        # message in a room of 50): kept to a few look-ups.
        connections = self._connections.get(event.user_id)
        if not connections:
            return
        render = self._renderer(type(event))
        if render is None:
            return
        # The events of one change for its many recipients come one after
        # the other and share their payload object when it is the same for
        # all (gk.chat.changes): encode it once.  Positions are unique per
        # change, and the payloads of one change are alive together, so
        # the key never matches another change's or viewer's.
        position = getattr(event, "position", None)
        key = (type(event), position, id(getattr(event, "payload", None)))
        if position is not None and self._last_frame[0] == key:
            frame = self._last_frame[1]
        else:
            name, data, position = render(event)
            frame = protocol.event(name, data, position)
            self._last_frame = (key, frame)
        # A copy: a connection that reads too slowly is dropped (removed) on sending.
        for connection in tuple(connections):
            connection.send_frame(frame)

    # -- presence ---------------------------------------------------------------------

    def _status(self, user_id: int) -> str:
        connections = self._connections.get(user_id)
        if not connections:
            return OFFLINE
        return AWAY if all(c.away for c in connections) else ONLINE

    def _presence_changed(self, account: Account) -> None:
        status = self._status(account.id)
        if self._presence.get(account.id, OFFLINE) == status:
            return
        if status == OFFLINE:
            self._presence.pop(account.id, None)
        else:
            self._presence[account.id] = status
        if self.peers_of is not None and not self._stopped:
            Deferred.fromCoroutine(self._announce(account, status))

    async def _announce(self, account: Account, status: str) -> None:
        assert self.peers_of is not None
        try:
            peers = set(await self.peers_of(account))
        except Exception:
            self.log.failure("presence of {email} not announced", email=account.email)
            return
        if self._status(account.id) != status:
            return  # changed again meanwhile; that change announces itself
        frame = protocol.event("presence", {"user": account.email, "status": status})
        for user_id in peers | {account.id}:
            self.send_to_user(user_id, frame)


def _mail_delivered(event: MailDelivered) -> tuple[str, Any, int | None]:
    data = {
        "folder": event.folder,
        "uid": event.uid,
        "from": event.sender,
        "subject": event.subject,
    }
    return "mail.delivered", data, None


def _collection_changed(name: str) -> Callable[[Any], tuple[str, Any, int | None]]:
    def render(event: CalendarChanged | ContactsChanged) -> tuple[str, Any, int | None]:
        data = {"collection": event.collection, "href": event.href, "action": event.action}
        return name, data, None

    return render
