"""
CalDAV/CardDAV resources: reading, writing (PUT with If-Match and
If-None-Match), deleting, moving and copying calendar objects and vCards.

Blocking functions on a L{Session}, for the database's worker threads
(changes in the writer).  The caller parses the iCalendar or vCard and
passes what the index keeps (UID, component, UTC bounds, summary,
addresses); checking that the component suits the collection is the
caller's too.

Every change locks its collection(s) first, takes the next revision of
each collection it touches (one per call), stamps what it wrote with it
and leaves a tombstone at it for each name it removed, so that
sync-collection (L{gk.storage.dav_sync}) reports exactly the changes made
after a token.  Writing a name drops its tombstone.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from gk.storage.dav_common import (
    CALENDAR,
    OBJECT_COLUMNS,
    OBJECT_INFO_COLUMNS,
    InvalidValue,
    Locked,
    NoSuchCollection,
    NoSuchObject,
    ObjectInfo,
    PreconditionFailed,
    PutResult,
    StoredObject,
    UidConflict,
    bump_revision,
    check_name,
    check_preconditions,
    claim_revision,
    lock_collection,
    lock_collections,
    make_etag,
    object_info,
    stored_object,
)
from gk.storage.models import DavCollection, DavObject, DavSeriesMonth, DavTombstone, utcnow

#: Longest component name (the column's size).
MAX_COMPONENT = 16

#: Names per query in L{get_objects} (far below every database's bind limit).
MULTIGET_CHUNK = 1000


def list_objects(session: Session, collection_id: int) -> list[ObjectInfo]:
    """
    A collection's resources without their bytes, by name (PROPFIND
    Depth 1 reads only the columns it needs).
    """
    rows = session.execute(
        select(*OBJECT_INFO_COLUMNS)
        .where(DavObject.collection_id == collection_id)
        .order_by(DavObject.name)
    )
    return [object_info(row) for row in rows]


def get_object(session: Session, collection_id: int, name: str) -> StoredObject:
    """
    One resource with its bytes.

    @raise NoSuchObject: the collection has no resource C{name}.
    """
    row = session.execute(
        select(*OBJECT_COLUMNS).where(
            DavObject.collection_id == collection_id, DavObject.name == name
        )
    ).one_or_none()
    if row is None:
        raise NoSuchObject(f"no resource {name!r}")
    return stored_object(row)


def get_objects(session: Session, collection_id: int, names: Iterable[str]) -> list[StoredObject]:
    """
    The resources named (calendar-multiget, addressbook-multiget) in the
    order asked, each once; names without a resource are left out.  One
    query per L{MULTIGET_CHUNK} names.
    """
    wanted = list(dict.fromkeys(names))
    found: dict[str, StoredObject] = {}
    for i in range(0, len(wanted), MULTIGET_CHUNK):
        chunk = wanted[i : i + MULTIGET_CHUNK]
        rows = session.execute(
            select(*OBJECT_COLUMNS).where(
                DavObject.collection_id == collection_id, DavObject.name.in_(chunk)
            )
        )
        found.update((row.name, stored_object(row)) for row in rows)
    return [found[name] for name in wanted if name in found]


def put_object(
    session: Session,
    collection_id: int,
    name: str,
    data: bytes,
    *,
    uid: str,
    component: str,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    recurring: bool,
    summary: str,
    emails: Iterable[str],
    if_match: str | None = None,
    if_none_match: bool = False,
    series: Mapping[tuple[str, int], bytes] | None = None,
) -> PutResult:
    """
    Create or replace the resource C{name} with C{data} (PUT).

    @param start: with C{end}, the UTC bounds of the whole recurrence set
        (aware datetimes); L{None} is unbounded on that side.  They must
        include every instance: time-range queries use them as a filter.
    @param emails: addresses (a card's EMAILs, an event's ORGANIZER and
        ATTENDEEs), stored lower-case.
    @param if_match: the If-Match header as sent (see
        L{gk.storage.dav_common.etag_matches}); it fails when there is no
        resource.
    @param if_none_match: If-None-Match: * (create only).
    @param series: the rows of C{dav_series_months} for a recurring event,
        (zone key, month) -> spans (L{gk.dav.calseries}); they replace
        the resource's former ones.
    @raise NoSuchCollection: there is no such collection.
    @raise PreconditionFailed: If-Match or If-None-Match failed.
    @raise UidConflict: another resource of the collection has C{uid}.
    @raise InvalidValue: an empty or too long name or component, or an
        empty UID.
    """
    check_name(name)
    if not uid:
        raise InvalidValue("empty UID")
    if not component or len(component) > MAX_COMPONENT:
        raise InvalidValue(f"invalid component {component!r}")
    # The revision first: it locks the collection before anything is read.
    revision = claim_revision(session, collection_id)
    connection = session.connection()
    existing: Row[Any] | None = None
    other: str | None = None
    for row in connection.execute(_FIND_NAME_OR_UID, {"cid": collection_id, "n": name, "u": uid}):
        if row.name == name:
            existing = row
        else:
            other = row.name
    check_preconditions(None if existing is None else existing.etag, if_match, if_none_match)
    if other is not None:
        raise UidConflict(other)
    etag = make_etag(data)
    now = utcnow()
    values = {
        "uid": uid,
        "etag": etag,
        "data": data,
        "component": component,
        "range_start": start,
        "range_end": end,
        "recurring": recurring,
        "summary": summary,
        "emails": _emails(emails),
        "size": len(data),
        "revision": revision,
        "modified": now,
    }
    if existing is None:
        values.update(collection_id=collection_id, name=name, created=now)
        inserted = connection.execute(_INSERT_OBJECT, values).inserted_primary_key
        assert inserted is not None
        object_id = inserted[0]
        connection.execute(_DROP_TOMBSTONE, {"cid": collection_id, "n": name})
    else:
        object_id = existing.id
        connection.execute(_UPDATE_OBJECT, {"oid": object_id, **values})
        if existing.recurring:
            connection.execute(_DROP_SERIES, {"oid": object_id})
    if series:
        connection.execute(
            _INSERT_SERIES,
            [
                {"object_id": object_id, "zone_key": zone, "month": month, "spans": spans}
                for (zone, month), spans in series.items()
            ],
        )
    previous = None if existing is None else bytes(existing.data)
    return PutResult(etag, existing is None, revision, previous, data)


# PUT's statements, built once (building them costs more than running them).
_objects = cast(Table, DavObject.__table__)
_tombstones = cast(Table, DavTombstone.__table__)
_series = cast(Table, DavSeriesMonth.__table__)
_FIND_NAME_OR_UID = select(
    _objects.c.id, _objects.c.name, _objects.c.etag, _objects.c.data, _objects.c.recurring
).where(
    _objects.c.collection_id == bindparam("cid"),
    or_(_objects.c.name == bindparam("n"), _objects.c.uid == bindparam("u")),
)
_INSERT_OBJECT = insert(_objects)
_UPDATE_OBJECT = update(_objects).where(_objects.c.id == bindparam("oid"))
_DROP_SERIES = delete(_series).where(_series.c.object_id == bindparam("oid"))
_INSERT_SERIES = insert(_series)
_DROP_TOMBSTONE = delete(_tombstones).where(
    _tombstones.c.collection_id == bindparam("cid"), _tombstones.c.name == bindparam("n")
)


def delete_object(
    session: Session, collection_id: int, name: str, if_match: str | None = None
) -> int:
    """
    Remove a resource, leaving a tombstone; the collection's new revision.

    @raise NoSuchCollection: there is no such collection.
    @raise NoSuchObject: the collection has no resource C{name}.
    @raise PreconditionFailed: C{if_match} does not match.
    """
    locked = lock_collection(session, collection_id)
    existing = _existing(session, collection_id, name)
    check_preconditions(existing.etag, if_match, False)
    revision = bump_revision(session, locked)
    session.execute(delete(DavObject).where(DavObject.id == existing.id))
    _add_tombstone(session, collection_id, name, revision)
    return revision


def move_object(
    session: Session,
    source_collection_id: int,
    name: str,
    target_collection_id: int,
    new_name: str,
    overwrite: bool,
) -> PutResult:
    """
    Move a resource (MOVE) to C{new_name} in a collection of the same
    user, possibly the same collection.  The source name gets a tombstone;
    a resource at the target is replaced when C{overwrite}.  Bytes, UID
    and entity tag are kept.

    @raise NoSuchCollection: either collection is missing, or they belong
        to different users.
    @raise NoSuchObject: there is no resource C{name} in the source.
    @raise PreconditionFailed: the target exists and not C{overwrite}.
    @raise UidConflict: another resource of the target has the UID.
    @raise InvalidValue: a bad new name, or source and target are the same.
    """
    return _transfer(
        session, source_collection_id, name, target_collection_id, new_name, overwrite, move=True
    )


def copy_object(
    session: Session,
    source_collection_id: int,
    name: str,
    target_collection_id: int,
    new_name: str,
    overwrite: bool,
) -> PutResult:
    """
    Copy a resource (COPY) to C{new_name} in a collection of the same
    user.  Since a collection holds each UID once, a copy within one
    collection always conflicts.  Raises as L{move_object} does.
    """
    return _transfer(
        session, source_collection_id, name, target_collection_id, new_name, overwrite, move=False
    )


def find_by_uid(session: Session, collection_id: int, uid: str) -> str | None:
    """The name of the collection's resource with C{uid}, if any."""
    return session.scalar(
        select(DavObject.name).where(DavObject.collection_id == collection_id, DavObject.uid == uid)
    )


def find_by_uid_for_user(
    session: Session, user_id: int, uid: str, kind: str | None = CALENDAR
) -> list[tuple[str, str]]:
    """
    C{(collection name, resource name)} of every resource with C{uid} in
    the user's collections of C{kind} (L{None}: every kind; then a
    calendar and the scheduling inbox may share a name), sorted: where
    scheduling finds an attendee's copy of an event.
    """
    query = (
        select(DavCollection.name, DavObject.name)
        .join(DavCollection, DavObject.collection_id == DavCollection.id)
        .where(DavCollection.user_id == user_id, DavObject.uid == uid)
    )
    if kind is not None:
        query = query.where(DavCollection.kind == kind)
    return sorted((str(c), str(o)) for c, o in session.execute(query))


# -- internals ---------------------------------------------------------------


@dataclass(frozen=True)
class _Existing:
    id: int
    uid: str
    etag: str


def _existing(session: Session, collection_id: int, name: str) -> _Existing:
    row = session.execute(
        select(DavObject.id, DavObject.uid, DavObject.etag).where(
            DavObject.collection_id == collection_id, DavObject.name == name
        )
    ).one_or_none()
    if row is None:
        raise NoSuchObject(f"no resource {name!r}")
    return _Existing(int(row.id), row.uid, row.etag)


def _check_uid(session: Session, collection_id: int, uid: str, exclude: Sequence[str]) -> None:
    """@raise UidConflict: a resource not named in C{exclude} has C{uid}."""
    other = session.scalar(
        select(DavObject.name).where(
            DavObject.collection_id == collection_id,
            DavObject.uid == uid,
            DavObject.name.not_in(exclude),
        )
    )
    if other is not None:
        raise UidConflict(other)


def _emails(addresses: Iterable[str]) -> str:
    cleaned = (a.strip().lower() for a in addresses)
    return "\n".join(dict.fromkeys(a for a in cleaned if a))


def _drop_tombstone(session: Session, collection_id: int, name: str) -> None:
    session.execute(
        delete(DavTombstone).where(
            DavTombstone.collection_id == collection_id, DavTombstone.name == name
        )
    )


def _add_tombstone(session: Session, collection_id: int, name: str, revision: int) -> None:
    _drop_tombstone(session, collection_id, name)
    session.execute(
        insert(DavTombstone).values(
            collection_id=collection_id, name=name, revision=revision, deleted=utcnow()
        )
    )


def _transfer(
    session: Session,
    source_id: int,
    name: str,
    target_id: int,
    new_name: str,
    overwrite: bool,
    *,
    move: bool,
) -> PutResult:
    check_name(new_name)
    if source_id == target_id and name == new_name:
        raise InvalidValue("source and target are the same resource")
    locks = lock_collections(session, source_id, target_id)
    source: Locked = locks[source_id]
    target: Locked = locks[target_id]
    if source.user_id != target.user_id:
        raise NoSuchCollection(f"collection {target_id} is not the source's owner's")
    moving = _existing(session, source_id, name)
    replaced = session.execute(
        select(DavObject.id).where(DavObject.collection_id == target_id, DavObject.name == new_name)
    ).scalar_one_or_none()
    if replaced is not None and not overwrite:
        raise PreconditionFailed(f"{new_name!r} exists")
    exclude = (new_name, name) if move and source_id == target_id else (new_name,)
    _check_uid(session, target_id, moving.uid, exclude)

    target_revision = bump_revision(session, target)
    now = utcnow()
    if replaced is not None:
        session.execute(delete(DavObject).where(DavObject.id == replaced))
    if move:
        session.execute(
            update(DavObject)
            .where(DavObject.id == moving.id)
            .values(collection_id=target_id, name=new_name, revision=target_revision, modified=now)
        )
        # A rename within one collection is one change: one revision.
        same = source_id == target_id
        source_revision = target_revision if same else bump_revision(session, source)
        _add_tombstone(session, source_id, name, source_revision)
    else:
        row = session.execute(select(*OBJECT_COLUMNS).where(DavObject.id == moving.id)).one()
        session.execute(
            insert(DavObject).values(
                collection_id=target_id,
                name=new_name,
                uid=row.uid,
                etag=row.etag,
                data=row.data,
                component=row.component,
                range_start=row.range_start,
                range_end=row.range_end,
                recurring=row.recurring,
                summary=row.summary,
                emails=row.emails,
                size=row.size,
                revision=target_revision,
                created=now,
                modified=now,
            )
        )
    _drop_tombstone(session, target_id, new_name)
    return PutResult(moving.etag, replaced is None, target_revision)
