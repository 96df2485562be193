"""
What the CalDAV/CardDAV storage modules share: their exceptions, the
frozen results they hand out (never ORM rows), entity tags, and locking a
collection for a change.

The public API is L{gk.storage.dav_store}; import from there.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select, update
from sqlalchemy.orm import Session

from gk.errors import GkError
from gk.storage.models import DavCollection, DavObject

#: Collection kinds.
CALENDAR = "calendar"
ADDRESSBOOK = "addressbook"
SCHEDULE_INBOX = "schedule-inbox"
KINDS = (CALENDAR, ADDRESSBOOK, SCHEDULE_INBOX)

#: Longest collection or resource name (the columns' size).
MAX_NAME = 255


class DavStoreError(GkError):
    """A DAV storage request that cannot be done."""


class NoSuchCollection(DavStoreError):
    """The collection does not exist (or is not the user's)."""


class NoSuchObject(DavStoreError):
    """The collection has no resource of that name."""


class CollectionExists(DavStoreError):
    """The user already has a collection of that kind and name."""


class PreconditionFailed(DavStoreError):
    """An If-Match or If-None-Match condition (or MOVE/COPY Overwrite: F) failed."""


class UidConflict(DavStoreError):
    """
    Another resource of the collection has the UID (CalDAV/CardDAV
    no-uid-conflict); C{existing_name} is that resource's name.
    """

    def __init__(self, existing_name: str) -> None:
        super().__init__(f"UID already used by {existing_name!r}")
        self.existing_name = existing_name


class InvalidSyncToken(DavStoreError):
    """
    Not a sync token of this collection, or one too old or too new (RFC
    6578 valid-sync-token).
    """


class InvalidValue(DavStoreError, ValueError):
    """A name, kind or property value the storage cannot hold."""


@dataclass(frozen=True)
class CollectionInfo:
    """A collection and its properties."""

    id: int
    user_id: int
    #: L{CALENDAR}, L{ADDRESSBOOK} or L{SCHEDULE_INBOX}.
    kind: str
    name: str
    displayname: str
    description: str
    color: str | None
    sort_order: int | None
    timezone: str | None
    #: Supported component names, e.g. C{("VEVENT", "VTODO")}; empty for address books.
    components: tuple[str, ...]
    #: The last change's number (0 when new): the sync token's and CTag's source.
    revision: int
    #: Sync tokens below this revision are refused (their tombstones are gone).
    pruned_revision: int
    #: Dead properties from PROPPATCH: Clark name to the property's XML (a copy).
    dead_properties: Mapping[str, str]
    created: datetime.datetime


@dataclass(frozen=True)
class ObjectInfo:
    """A resource without its bytes: what PROPFIND Depth 1 and sync need."""

    name: str
    etag: str
    size: int
    modified: datetime.datetime
    component: str
    uid: str


@dataclass(frozen=True)
class StoredObject:
    """A resource with its bytes and indexed values."""

    collection_id: int
    name: str
    uid: str
    etag: str
    data: bytes
    component: str
    #: UTC bounds of the whole recurrence set; L{None} is unbounded.
    start: datetime.datetime | None
    end: datetime.datetime | None
    recurring: bool
    summary: str
    #: Lower-case addresses.
    emails: tuple[str, ...]
    size: int
    #: The collection's revision when this was last written.
    revision: int
    created: datetime.datetime
    modified: datetime.datetime


@dataclass(frozen=True)
class PutResult:
    """What a PUT, MOVE or COPY wrote."""

    #: The new resource's entity tag (quoted, for ETag as is).
    etag: str
    #: Whether the target name was new (201) rather than replaced (204).
    created: bool
    #: The (target) collection's new revision.
    revision: int
    #: What a PUT replaced (L{None} when it created), for scheduling's
    #: comparison of the old and the new event.
    previous: bytes | None = None
    #: The bytes stored (a PUT's).
    data: bytes = b""


# -- entity tags ---------------------------------------------------------------


def make_etag(data: bytes) -> str:
    """
    The strong entity tag of stored bytes, quoted as HTTP writes it: 128
    bits of SHA-256, so equal bytes have equal tags (RFC 9110 8.8.3).
    """
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def etag_matches(current: str | None, condition: str) -> bool:
    """
    Whether an If-Match value holds for a resource whose tag is C{current}
    (L{None}: no resource).  C{condition} is the header as sent: C{*}, or
    entity tags separated by commas; quotes may be left off a tag.  The
    comparison is strong (RFC 9110 13.1.1): a weak tag (C{W/"..."}) never
    matches.
    """
    if current is None:
        return False
    if condition.strip() == "*":
        return True
    for tag in condition.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            continue
        if not tag.startswith('"'):
            tag = f'"{tag}"'
        if tag == current:
            return True
    return False


def check_preconditions(current: str | None, if_match: str | None, if_none_match: bool) -> None:
    """
    @raise PreconditionFailed: C{if_match} does not match C{current}, or
        C{if_none_match} (If-None-Match: *) and the resource exists.
    """
    if if_match is not None and not etag_matches(current, if_match):
        raise PreconditionFailed("If-Match failed")
    if if_none_match and current is not None:
        raise PreconditionFailed("If-None-Match failed: the resource exists")


# -- rows to results -------------------------------------------------------

COLLECTION_COLUMNS = (
    DavCollection.id,
    DavCollection.user_id,
    DavCollection.kind,
    DavCollection.name,
    DavCollection.displayname,
    DavCollection.description,
    DavCollection.color,
    DavCollection.sort_order,
    DavCollection.timezone,
    DavCollection.components,
    DavCollection.revision,
    DavCollection.pruned_revision,
    DavCollection.dead_properties,
    DavCollection.created,
)

OBJECT_INFO_COLUMNS = (
    DavObject.name,
    DavObject.etag,
    DavObject.size,
    DavObject.modified,
    DavObject.component,
    DavObject.uid,
)

OBJECT_COLUMNS = (
    DavObject.collection_id,
    DavObject.name,
    DavObject.uid,
    DavObject.etag,
    DavObject.data,
    DavObject.component,
    DavObject.range_start,
    DavObject.range_end,
    DavObject.recurring,
    DavObject.summary,
    DavObject.emails,
    DavObject.size,
    DavObject.revision,
    DavObject.created,
    DavObject.modified,
)


def load_dead_properties(text: str) -> dict[str, str]:
    """The stored JSON of dead properties; {} for anything unreadable."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def collection_info(row: Row[Any]) -> CollectionInfo:
    """A row of L{COLLECTION_COLUMNS} as a L{CollectionInfo}."""
    return CollectionInfo(
        id=int(row.id),
        user_id=int(row.user_id),
        kind=row.kind,
        name=row.name,
        displayname=row.displayname,
        description=row.description,
        color=row.color,
        sort_order=row.sort_order,
        timezone=row.timezone,
        components=split_components(row.components),
        revision=int(row.revision),
        pruned_revision=int(row.pruned_revision),
        dead_properties=load_dead_properties(row.dead_properties),
        created=row.created,
    )


def object_info(row: Row[Any]) -> ObjectInfo:
    """A row of L{OBJECT_INFO_COLUMNS} as an L{ObjectInfo}."""
    return ObjectInfo(
        name=row.name,
        etag=row.etag,
        size=int(row.size),
        modified=row.modified,
        component=row.component,
        uid=row.uid,
    )


def stored_object(row: Row[Any]) -> StoredObject:
    """A row of L{OBJECT_COLUMNS} as a L{StoredObject}."""
    return StoredObject(
        collection_id=int(row.collection_id),
        name=row.name,
        uid=row.uid,
        etag=row.etag,
        data=bytes(row.data),
        component=row.component,
        start=row.range_start,
        end=row.range_end,
        recurring=bool(row.recurring),
        summary=row.summary,
        emails=tuple(line for line in row.emails.split("\n") if line),
        size=int(row.size),
        revision=int(row.revision),
        created=row.created,
        modified=row.modified,
    )


def split_components(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def check_name(name: str, what: str = "name") -> str:
    """
    @raise InvalidValue: C{name} is empty, longer than L{MAX_NAME} or
        contains a slash (it is one URL segment).
    """
    if not name or len(name) > MAX_NAME or "/" in name:
        raise InvalidValue(f"invalid {what} {name!r}")
    return name


# -- locking -----------------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    """A collection locked for a change in this transaction."""

    id: int
    user_id: int
    revision: int


def lock_collection(session: Session, collection_id: int) -> Locked:
    """
    Lock a collection's row for the rest of the transaction (PostgreSQL
    C{FOR UPDATE}; SQLite's single writer serialises anyway), so that
    concurrent changes take distinct revisions and see each other's
    objects before checking preconditions and UIDs.

    @raise NoSuchCollection: there is no such collection.
    """
    row = session.execute(
        select(DavCollection.id, DavCollection.user_id, DavCollection.revision)
        .where(DavCollection.id == collection_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise NoSuchCollection(f"no collection {collection_id}")
    return Locked(int(row.id), int(row.user_id), int(row.revision))


_collections = cast(Table, DavCollection.__table__)
#: Built once: PUT runs it every time, and building costs more than running.
_CLAIM_REVISION = (
    update(_collections)
    .where(_collections.c.id == bindparam("cid"))
    .values(revision=_collections.c.revision + 1)
    .returning(_collections.c.revision)
)


def claim_revision(session: Session, collection_id: int) -> int:
    """
    L{lock_collection} and L{bump_revision} in one statement where the
    database can return updated rows (SQLite 3.35+, PostgreSQL): the
    collection's new revision, its row locked for the rest of the
    transaction.

    @raise NoSuchCollection: there is no such collection.
    """
    connection = session.connection()
    if not connection.dialect.update_returning:
        return bump_revision(session, lock_collection(session, collection_id))
    revision = connection.execute(_CLAIM_REVISION, {"cid": collection_id}).scalar()
    if revision is None:
        raise NoSuchCollection(f"no collection {collection_id}")
    return int(revision)


def lock_collections(session: Session, *collection_ids: int) -> dict[int, Locked]:
    """L{lock_collection} for several, in ascending id order (no deadlocks)."""
    return {cid: lock_collection(session, cid) for cid in sorted(set(collection_ids))}


def bump_revision(session: Session, locked: Locked) -> int:
    """Give a locked collection its next revision; that revision."""
    revision = locked.revision + 1
    session.execute(
        update(DavCollection).where(DavCollection.id == locked.id).values(revision=revision)
    )
    return revision
