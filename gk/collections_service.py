"""
L{CollectionService}: a user's calendars or address books and the
resources in them, for every adapter (CalDAV/CardDAV, the web UI, the
assistant's tools).

Every method takes the L{Account} it acts for and names collections by
their name within that account, so that one user can never reach another's
data through it.  Bodies are checked (and indexed) by the subclass before
anything is stored: a body that fails gets L{InvalidObject} and nothing is
written.  Every change publishes an event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy.orm import Session

from gk.events import Event, EventBus
from gk.storage import dav_store, mail_index
from gk.storage.accounts import Account
from gk.storage.database import Database
from gk.storage.dav_store import (
    CardEntry,
    CollectionInfo,
    EventEntry,
    ObjectInfo,
    PutResult,
    StoredObject,
    SyncChanges,
)

T = TypeVar("T")

#: Largest calendar object or card accepted (CalDAV max-resource-size).
DEFAULT_MAX_RESOURCE_SIZE = 10 * 1024 * 1024


class InvalidObject(ValueError):
    """
    A body that cannot be stored in the collection.

    @ivar precondition: the Clark name of the DAV precondition it fails,
        e.g. C{{urn:ietf:params:xml:ns:caldav}valid-calendar-data}.
    """

    def __init__(self, message: str, precondition: str) -> None:
        super().__init__(message)
        self.precondition = precondition


class QuotaExceeded(dav_store.DavStoreError):
    """Storing the body would take the account over its quota."""


@dataclass(frozen=True)
class CheckedObject:
    """A body checked by the subclass, with what the index keeps of it."""

    data: bytes
    uid: str
    component: str
    start: datetime | None = None
    end: datetime | None = None
    recurring: bool = False
    summary: str = ""
    emails: tuple[str, ...] = ()
    #: Rows of C{dav_series_months} for a recurring event (L{gk.dav.calseries}).
    series: Mapping[tuple[str, int], bytes] = field(default_factory=dict)


class CollectionService(ABC):
    """The collections of one kind (see the module docstring)."""

    #: The dav_store kind this service manages.
    kind: ClassVar[str]

    def __init__(
        self, db: Database, events: EventBus, max_resource_size: int = DEFAULT_MAX_RESOURCE_SIZE
    ) -> None:
        self.db = db
        self.events = events
        self.max_resource_size = max_resource_size
        self._ensured: set[int] = set()

    # -- for subclasses --------------------------------------------------------

    @abstractmethod
    def check(self, data: bytes, collection: CollectionInfo) -> CheckedObject:
        """
        Check and index a body for C{collection} (blocking: runs in a thread).

        @raise InvalidObject: it cannot be stored there.
        """

    @abstractmethod
    def changed(self, account: Account, collection: str, name: str, action: str) -> Event:
        """The event announcing a change to resource C{name}."""

    # -- collections -----------------------------------------------------------

    async def ensure_defaults(self, account: Account) -> None:
        """
        Create the account's default collections if it has none (accounts
        made before calendars existed); cheap after the first call.
        """
        if account.id in self._ensured:
            return
        await self.db.write(lambda s: dav_store.ensure_default_collections(s, account.id))
        self._ensured.add(account.id)

    async def collections(self, account: Account) -> list[CollectionInfo]:
        await self.ensure_defaults(account)
        return await self.db.read(lambda s: dav_store.list_collections(s, account.id, self.kind))

    async def collection(self, account: Account, name: str) -> CollectionInfo:
        """@raise dav_store.NoSuchCollection: the account has no such collection."""
        await self.ensure_defaults(account)
        return await self.db.read(lambda s: self._collection(s, account, name))

    async def create_collection(
        self,
        account: Account,
        name: str,
        *,
        displayname: str,
        components: Iterable[str] = (),
        **properties: Any,
    ) -> CollectionInfo:
        """
        @param properties: description, color, sort_order, timezone.
        @raise dav_store.CollectionExists: the name is taken.
        """
        return await self.db.write(
            lambda s: dav_store.create_collection(
                s, account.id, self.kind, name,
                displayname=displayname, components=",".join(components), **properties,
            )
        )  # fmt: skip

    async def update_collection(
        self, account: Account, name: str, changes: dict[str, Any]
    ) -> CollectionInfo:
        def update(session: Session) -> CollectionInfo:
            collection = self._collection(session, account, name)
            return dav_store.update_collection(session, collection.id, changes)

        return await self.db.write(update)

    async def delete_collection(self, account: Account, name: str) -> None:
        def delete(session: Session) -> None:
            dav_store.delete_collection(session, self._collection(session, account, name).id)

        await self.db.write(delete)
        self.events.publish(self.changed(account, name, "", "collection-deleted"))

    # -- resources -------------------------------------------------------------

    async def objects(self, account: Account, collection: str) -> list[ObjectInfo]:
        """Every resource of the collection, without bodies."""
        return await self._read(account, collection, lambda s, c: dav_store.list_objects(s, c.id))

    async def get(self, account: Account, collection: str, name: str) -> StoredObject:
        """@raise dav_store.NoSuchObject: no such resource."""
        return await self._read(
            account, collection, lambda s, c: dav_store.get_object(s, c.id, name)
        )

    async def get_many(
        self, account: Account, collection: str, names: Iterable[str]
    ) -> list[StoredObject]:
        """The resources of C{names} that exist."""
        wanted = list(names)
        return await self._read(
            account, collection, lambda s, c: dav_store.get_objects(s, c.id, wanted)
        )

    async def all_objects(
        self, account: Account, collection: str, component: str | None = None
    ) -> list[StoredObject]:
        """Every resource with its body (of one component type, if given)."""
        return await self.candidates(account, collection, component, None, None)

    async def candidates(
        self,
        account: Account,
        collection: str,
        component: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> list[StoredObject]:
        """Resources whose indexed bounds overlap [start, end] (a superset of matches)."""
        return await self._read(
            account,
            collection,
            lambda s, c: dav_store.time_range_candidates(s, c.id, component, start, end),
        )

    async def event_entries(
        self,
        account: Account,
        collection: str,
        component: str | None,
        start: datetime | None,
        end: datetime | None,
        *,
        with_data: bool = False,
    ) -> list[EventEntry]:
        """
        The index entries of L{candidates} (all resources for no component
        and range), by name, bodies only if C{with_data}: what a report
        can decide most resources from.
        """
        return await self._read(
            account,
            collection,
            lambda s, c: dav_store.event_entries(
                s, c.id, component, start, end, with_data=with_data
            ),
        )

    async def series_months(
        self, account: Account, collection: str, zone_key: str, first: int, last: int
    ) -> list[tuple[str, int, bytes]]:
        """The months of recurring events stored with them (L{dav_store.series_months})."""
        return await self._read(
            account,
            collection,
            lambda s, c: dav_store.series_months(s, c.id, zone_key, first, last),
        )

    async def card_entries(
        self, account: Account, collection: str, *, with_data: bool = True
    ) -> list[CardEntry]:
        """Every card's name, indexed FN and addresses (and body if C{with_data}), by name."""
        return await self._read(
            account, collection, lambda s, c: dav_store.card_entries(s, c.id, with_data=with_data)
        )

    async def put(
        self,
        account: Account,
        collection: str,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PutResult:
        """
        Check, index and store a body (PUT); the result carries the bytes
        stored and those replaced.

        @raise InvalidObject: the body cannot be stored there (nothing is).
        @raise dav_store.PreconditionFailed: If-Match / If-None-Match failed.
        @raise dav_store.UidConflict: another resource has its UID.
        @raise QuotaExceeded: the account would go over its quota.
        @raise dav_store.NoSuchCollection: no such collection.
        """
        if len(data) > self.max_resource_size:
            raise InvalidObject("too large", self.size_precondition)
        await self.ensure_defaults(account)

        def check(session: Session) -> tuple[CollectionInfo, CheckedObject]:
            # One trip to a thread for both: parsing is CPU work, off the
            # reactor thread, and every hop costs a PUT latency.
            info = self._collection(session, account, collection)
            return info, self.check(data, info)

        info, checked = await self.db.read(check)

        def store(session: Session) -> PutResult:
            self._check_quota(session, account, len(checked.data))
            return dav_store.put_object(
                session, info.id, name, checked.data,
                uid=checked.uid, component=checked.component, start=checked.start,
                end=checked.end, recurring=checked.recurring, summary=checked.summary,
                emails=checked.emails, if_match=if_match, if_none_match=if_none_match,
                series=checked.series,
            )  # fmt: skip

        result = await self.db.write_together(store)
        action = "created" if result.created else "changed"
        self.events.publish(self.changed(account, collection, name, action))
        return result

    async def delete(
        self, account: Account, collection: str, name: str, if_match: str | None = None
    ) -> None:
        """@raise dav_store.NoSuchObject, dav_store.PreconditionFailed: as named."""

        def delete(session: Session) -> None:
            dav_store.delete_object(
                session, self._collection(session, account, collection).id, name, if_match
            )

        await self.db.write(delete)
        self.events.publish(self.changed(account, collection, name, "deleted"))

    async def transfer(
        self,
        account: Account,
        collection: str,
        name: str,
        target: str,
        new_name: str,
        *,
        move: bool,
        overwrite: bool,
    ) -> PutResult:
        """MOVE or COPY a resource between two of the account's collections."""

        def transfer(session: Session) -> PutResult:
            source = self._collection(session, account, collection)
            destination = self._collection(session, account, target)
            operation = dav_store.move_object if move else dav_store.copy_object
            return operation(session, source.id, name, destination.id, new_name, overwrite)

        result = await self.db.write(transfer)
        if move:
            self.events.publish(self.changed(account, collection, name, "deleted"))
        self.events.publish(
            self.changed(account, target, new_name, "created" if result.created else "changed")
        )
        return result

    async def changes_since(
        self, account: Account, collection: str, token: str | None, limit: int | None
    ) -> SyncChanges:
        """
        What changed since the sync C{token} (everything when L{None}).

        @raise dav_store.InvalidSyncToken: the token is not one of this collection's.
        """

        def read(session: Session, info: CollectionInfo) -> SyncChanges:
            revision = None if not token else dav_store.parse_sync_token(token, info)
            return dav_store.changes_since(session, info.id, revision, limit)

        return await self._read(account, collection, read)

    async def usage(self, account: Account) -> int:
        """Bytes the account's calendars and address books take."""
        return await self.db.read(lambda s: dav_store.collection_usage(s, account.id))

    async def quota_used(self, account: Account) -> int:
        """Bytes the account's quota counts: its mail and its DAV resources together."""
        return await self.db.read(lambda s: _quota_used(s, account))

    # -- helpers -----------------------------------------------------------------

    #: The precondition a too-large body fails.
    size_precondition: ClassVar[str] = "{DAV:}max-resource-size"

    def _collection(self, session: Session, account: Account, name: str) -> CollectionInfo:
        return dav_store.get_collection(session, account.id, self.kind, name)

    async def _read(
        self, account: Account, collection: str, fn: Callable[[Session, CollectionInfo], T]
    ) -> T:
        await self.ensure_defaults(account)

        def read(session: Session) -> T:
            return fn(session, self._collection(session, account, collection))

        return await self.db.read(read)

    @staticmethod
    def _check_quota(session: Session, account: Account, adding: int) -> None:
        if account.quota_bytes is None:
            return
        if _quota_used(session, account) + adding > account.quota_bytes:
            raise QuotaExceeded("over quota")


def _quota_used(session: Session, account: Account) -> int:
    return mail_index.mailbox_usage(session, account.id) + dav_store.collection_usage(
        session, account.id
    )
