"""
CalDAV/CardDAV collections: a user's calendars, address books and
scheduling inbox, their properties, and the bytes they hold.

Blocking functions on a L{Session}, for the database's worker threads
(changes in the writer).  Results are frozen dataclasses from
L{gk.storage.dav_common}.  Every change to a collection's properties takes
a new revision, as member changes do, so that the sync token (usable as
the CTag) changes whenever anything about the collection does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gk.storage.dav_common import (
    ADDRESSBOOK,
    CALENDAR,
    COLLECTION_COLUMNS,
    KINDS,
    SCHEDULE_INBOX,
    CollectionExists,
    CollectionInfo,
    InvalidValue,
    NoSuchCollection,
    bump_revision,
    check_name,
    collection_info,
    lock_collection,
)
from gk.storage.models import DavCollection, DavObject, DavTombstone, User, utcnow

#: The collections every user gets: kind, name, display name, components.
DEFAULT_COLLECTIONS: tuple[tuple[str, str, str, str], ...] = (
    (CALENDAR, "calendar", "Calendar", "VEVENT"),
    (CALENDAR, "tasks", "Tasks", "VTODO"),
    (ADDRESSBOOK, "contacts", "Contacts", ""),
    (SCHEDULE_INBOX, "inbox", "Inbox", "VEVENT,VTODO,VJOURNAL,VFREEBUSY"),
)

#: What L{update_collection} may change.
UPDATABLE = frozenset(
    {
        "displayname",
        "description",
        "color",
        "sort_order",
        "timezone",
        "components",
        "dead_properties",
    }
)

_MAX_COLOR = 32
_MAX_COMPONENTS = 64
_INT32 = 2**31


def ensure_default_collections(session: Session, user_id: int) -> list[CollectionInfo]:
    """
    Create the user's default collections (L{DEFAULT_COLLECTIONS}) that
    are missing; the ones created.  Idempotent.  The calendars are made
    only when the user has no calendar at all, the address book only when
    the user has none: a default the user deleted stays deleted while
    another collection of its kind exists.  The scheduling inbox is
    always made.

    When nothing is missing this only reads (cheap enough for every
    request, and fine in a read transaction).  Otherwise it locks the
    user's row and looks again, so that two processes doing this at once
    create each collection once.

    @raise NoSuchCollection: the user does not exist.
    """
    if not _missing_defaults(session, user_id):
        return []
    if session.scalar(select(User.id).where(User.id == user_id).with_for_update()) is None:
        raise NoSuchCollection(f"no user {user_id}")
    return [
        create_collection(
            session, user_id, kind, name, displayname=displayname, components=components
        )
        for kind, name, displayname, components in _missing_defaults(session, user_id)
    ]


def _missing_defaults(session: Session, user_id: int) -> list[tuple[str, str, str, str]]:
    existing = session.execute(
        select(DavCollection.kind, DavCollection.name).where(DavCollection.user_id == user_id)
    ).all()
    kinds = {row.kind for row in existing}
    names = {(row.kind, row.name) for row in existing}
    return [
        default
        for default in DEFAULT_COLLECTIONS
        if (default[0], default[1]) not in names
        and (default[0] == SCHEDULE_INBOX or default[0] not in kinds)
    ]


def list_collections(
    session: Session, user_id: int, kind: str | None = None
) -> list[CollectionInfo]:
    """The user's collections (of one C{kind}, when given), by kind and name."""
    query = select(*COLLECTION_COLUMNS).where(DavCollection.user_id == user_id)
    if kind is not None:
        query = query.where(DavCollection.kind == kind)
    rows = session.execute(query.order_by(DavCollection.kind, DavCollection.name))
    return [collection_info(row) for row in rows]


def get_collection(session: Session, user_id: int, kind: str, name: str) -> CollectionInfo:
    """
    The user's collection of that kind and name.

    @raise NoSuchCollection: the user has none.
    """
    row = session.execute(
        select(*COLLECTION_COLUMNS).where(
            DavCollection.user_id == user_id,
            DavCollection.kind == kind,
            DavCollection.name == name,
        )
    ).one_or_none()
    if row is None:
        raise NoSuchCollection(f"no {kind} {name!r}")
    return collection_info(row)


def get_collection_by_id(session: Session, collection_id: int) -> CollectionInfo:
    """
    A collection by id, whoever owns it (the caller checks C{user_id}).

    @raise NoSuchCollection: there is none.
    """
    row = session.execute(
        select(*COLLECTION_COLUMNS).where(DavCollection.id == collection_id)
    ).one_or_none()
    if row is None:
        raise NoSuchCollection(f"no collection {collection_id}")
    return collection_info(row)


def create_collection(
    session: Session,
    user_id: int,
    kind: str,
    name: str,
    *,
    displayname: str,
    components: str,
    description: str = "",
    color: str | None = None,
    sort_order: int | None = None,
    timezone: str | None = None,
) -> CollectionInfo:
    """
    Make a collection (MKCALENDAR, extended MKCOL), at revision 0.

    @param components: comma-separated component names, e.g.
        C{"VEVENT,VTODO"}; "" for an address book.
    @raise CollectionExists: the user has a collection of that kind and name.
    @raise InvalidValue: an unknown kind, or a name or value too long.
    """
    if kind not in KINDS:
        raise InvalidValue(f"unknown collection kind {kind!r}")
    check_name(name, "collection name")
    values = _checked(
        {
            "displayname": displayname,
            "description": description,
            "color": color,
            "sort_order": sort_order,
            "timezone": timezone,
            "components": components,
        }
    )
    if session.scalar(
        select(DavCollection.id).where(
            DavCollection.user_id == user_id,
            DavCollection.kind == kind,
            DavCollection.name == name,
        )
    ):
        raise CollectionExists(f"{kind} {name!r} exists")
    try:
        collection_id = session.execute(
            insert(DavCollection)
            .values(
                user_id=user_id,
                kind=kind,
                name=name,
                revision=0,
                pruned_revision=0,
                dead_properties="{}",
                created=utcnow(),
                **values,
            )
            .returning(DavCollection.id)
        ).scalar_one()
    except IntegrityError:  # made concurrently (PostgreSQL), or no such user
        raise CollectionExists(f"{kind} {name!r} exists") from None
    return get_collection_by_id(session, int(collection_id))


def update_collection(
    session: Session, collection_id: int, changes: Mapping[str, Any]
) -> CollectionInfo:
    """
    Change a collection's properties (PROPPATCH) and take a new revision
    if anything differs; the collection as it is now.

    C{changes} maps names in L{UPDATABLE} to new values: L{None} removes
    C{color}, C{sort_order} or C{timezone}, and is "" for C{displayname}
    and C{description}.  C{dead_properties} is merged: a mapping from
    Clark name to the property's XML, L{None} removing that property.

    @raise NoSuchCollection: there is no such collection.
    @raise InvalidValue: a name not in L{UPDATABLE} or a value too long.
    """
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InvalidValue(f"cannot change {', '.join(sorted(unknown))}")
    locked = lock_collection(session, collection_id)
    current = get_collection_by_id(session, collection_id)
    modelled = {k: v for k, v in changes.items() if k != "dead_properties"}
    for key in ("displayname", "description"):
        if key in modelled and modelled[key] is None:
            modelled[key] = ""
    values = _checked(modelled)
    values = {k: v for k, v in values.items() if _current(current, k) != v}
    if "dead_properties" in changes:
        if not isinstance(changes["dead_properties"], Mapping):
            raise InvalidValue("dead_properties must be a mapping")
        dead = dict(current.dead_properties)
        for clark, xml in changes["dead_properties"].items():
            if xml is None:
                dead.pop(clark, None)
            else:
                dead[str(clark)] = str(xml)
        if dead != current.dead_properties:
            values["dead_properties"] = json.dumps(dead, sort_keys=True)
    if not values:
        return current
    bump_revision(session, locked)
    session.execute(update(DavCollection).where(DavCollection.id == collection_id).values(**values))
    return get_collection_by_id(session, collection_id)


def delete_collection(session: Session, collection_id: int) -> None:
    """
    Remove a collection with its objects and tombstones.

    @raise NoSuchCollection: there is no such collection.
    """
    lock_collection(session, collection_id)
    # Explicit deletes rather than relying on ON DELETE CASCADE alone.
    session.execute(delete(DavObject).where(DavObject.collection_id == collection_id))
    session.execute(delete(DavTombstone).where(DavTombstone.collection_id == collection_id))
    session.execute(delete(DavCollection).where(DavCollection.id == collection_id))


def collection_usage(session: Session, user_id: int) -> int:
    """Bytes of all the user's DAV objects (for quotas)."""
    total = session.scalar(
        select(func.coalesce(func.sum(DavObject.size), 0))
        .join(DavCollection, DavObject.collection_id == DavCollection.id)
        .where(DavCollection.user_id == user_id)
    )
    return int(total or 0)


def _current(collection: CollectionInfo, key: str) -> object:
    if key == "components":
        return ",".join(collection.components)
    return getattr(collection, key)


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """
    C{values} as the columns take them.

    @raise InvalidValue: one does not fit its column.
    """
    checked = dict(values)
    for key in ("displayname", "description"):
        if key in checked and not isinstance(checked[key], str):
            raise InvalidValue(f"{key} must be text")
    color = checked.get("color")
    if color is not None and (not isinstance(color, str) or len(color) > _MAX_COLOR):
        raise InvalidValue(f"invalid color {color!r}")
    order = checked.get("sort_order")
    if order is not None and (
        isinstance(order, bool) or not isinstance(order, int) or not -_INT32 <= order < _INT32
    ):
        raise InvalidValue(f"invalid sort order {order!r}")
    timezone = checked.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise InvalidValue("timezone must be text")
    if "components" in checked:
        components = checked["components"]
        if not isinstance(components, str):
            raise InvalidValue("components must be text")
        normalized = ",".join(c.strip().upper() for c in components.split(",") if c.strip())
        if len(normalized) > _MAX_COMPONENTS:
            raise InvalidValue(f"too many components: {components!r}")
        checked["components"] = normalized
    return checked
