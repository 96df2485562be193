"""
WebDAV collection synchronisation (RFC 6578 sync-collection) from the
collections' revisions and tombstones.

A collection's C{revision} is 0 when made and grows by one with each
change (L{gk.storage.dav_objects} and L{gk.storage.dav_collections});
every resource carries the revision it was last written at and every
removed name a tombstone at the revision of its removal.  A sync token
names a collection and a revision, C{http://gk.invalid/sync/<id>-<rev>}:
a URI, as RFC 6578 wants, and durable, since both numbers live in the
database.  Collection ids are never reused (AUTOINCREMENT on SQLite,
sequences on PostgreSQL), so a deleted collection's tokens never fit a
new one.

Blocking functions on a L{Session}, for the database's worker threads.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from gk.storage.dav_common import (
    OBJECT_INFO_COLUMNS,
    CollectionInfo,
    InvalidSyncToken,
    NoSuchCollection,
    ObjectInfo,
    object_info,
)
from gk.storage.models import DavCollection, DavObject, DavTombstone

#: What every sync token starts with.
TOKEN_PREFIX = "http://gk.invalid/sync/"
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"([0-9]{1,18})-([0-9]{1,18})")


@dataclass(frozen=True)
class SyncChanges:
    """What changed in a collection after a revision."""

    #: Resources written after it (their current state), oldest change first.
    changed: list[ObjectInfo]
    #: Names removed after it (moved away or deleted), oldest first.
    deleted: list[str]
    #: The revision this answer brings the client to (its new token's).
    revision: int
    #: L{revision}'s token.
    token: str
    #: Whether changes after L{revision} were left out (the limit was
    #: reached): the client asks again with L{token} (RFC 6578 3.6).
    truncated: bool


def make_sync_token(collection_id: int, revision: int) -> str:
    """The token of a collection at a revision."""
    return f"{TOKEN_PREFIX}{collection_id}-{revision}"


def sync_token(collection: CollectionInfo) -> str:
    """A collection's current sync token; it also serves as its CTag."""
    return make_sync_token(collection.id, collection.revision)


def parse_sync_token(token: str, collection: CollectionInfo) -> int:
    """
    The revision in C{token}, a token of C{collection}.

    @raise InvalidSyncToken: C{token} is not one of ours, is another
        collection's, is from the future (above the current revision: a
        restored backup, a forged token) or from before tombstones were
        pruned.
    """
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        raise InvalidSyncToken(f"not a sync token: {token!r}")
    collection_id, revision = int(match[1]), int(match[2])
    if collection_id != collection.id:
        raise InvalidSyncToken("a sync token of another collection")
    _check_revision(revision, collection.pruned_revision, collection.revision)
    return revision


def changes_since(
    session: Session, collection_id: int, revision: int | None, limit: int | None = None
) -> SyncChanges:
    """
    The changes after C{revision} (L{None}: the initial sync, every
    current resource and no deletions).

    With a C{limit}, at most that many entries (changed plus deleted),
    oldest first, and the revision up to which the answer is complete:
    entries are never split inside one revision, so a client that goes
    on from the returned token loses nothing.  A single revision with more
    entries than C{limit} (a MOVE within a collection has two) is
    returned whole rather than never.

    @raise NoSuchCollection: there is no such collection.
    @raise InvalidSyncToken: C{revision} is above the collection's or
        below its pruned revision.
    @raise ValueError: C{limit} is below 1.
    """
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    row = session.execute(
        select(DavCollection.revision, DavCollection.pruned_revision).where(
            DavCollection.id == collection_id
        )
    ).one_or_none()
    if row is None:
        raise NoSuchCollection(f"no collection {collection_id}")
    # Read first: on PostgreSQL each later statement may see newer
    # commits; entries past this revision are left for the next sync.
    current = int(row.revision)
    if revision is not None:
        _check_revision(revision, int(row.pruned_revision), current)
    after = revision or 0
    entries = _entries(session, collection_id, after, current, limit, revision is not None)
    if limit is None or len(entries) <= limit:
        return _answer(collection_id, entries, current, truncated=False)
    cut = entries[limit][0]
    complete = [e for e in entries[:limit] if e[0] < cut]
    if complete:
        return _answer(collection_id, complete, cut - 1, truncated=True)
    # The first revision alone is over the limit: all of it.
    whole = _entries(session, collection_id, cut - 1, cut, None, revision is not None)
    return _answer(collection_id, whole, cut, truncated=cut < current)


def prune_tombstones(session: Session, before: datetime.datetime) -> int:
    """
    Forget the tombstones of names removed before C{before} (they would
    otherwise pile up forever); the number removed.  Each collection
    concerned then refuses sync tokens older than its newest pruned
    tombstone, and their clients sync afresh.
    """
    rows = session.execute(
        select(DavTombstone.collection_id, func.max(DavTombstone.revision))
        .where(DavTombstone.deleted < before)
        .group_by(DavTombstone.collection_id)
    ).all()
    removed = 0
    for collection_id, newest in rows:
        session.execute(
            update(DavCollection)
            .where(DavCollection.id == collection_id, DavCollection.pruned_revision < newest)
            .values(pruned_revision=newest)
        )
        result: Any = session.execute(
            delete(DavTombstone).where(
                DavTombstone.collection_id == collection_id, DavTombstone.revision <= newest
            )
        )
        removed += int(result.rowcount or 0)
    return removed


# -- internals ---------------------------------------------------------------

#: (revision, resource name, the resource or None for a deletion)
_Entry = tuple[int, str, ObjectInfo | None]


def _check_revision(revision: int, pruned: int, current: int) -> None:
    if revision > current:
        raise InvalidSyncToken("a sync token from the future")
    if revision < pruned:
        raise InvalidSyncToken("a sync token older than the kept history")


def _entries(
    session: Session,
    collection_id: int,
    after: int,
    upto: int,
    limit: int | None,
    deletions: bool,
) -> list[_Entry]:
    """
    Up to C{limit + 1} entries with revisions in C{(after, upto]}, by
    revision then name (both queries use their C{(collection_id,
    revision)} index).
    """
    changed = (
        select(DavObject.revision, *OBJECT_INFO_COLUMNS)
        .where(
            DavObject.collection_id == collection_id,
            DavObject.revision > after,
            DavObject.revision <= upto,
        )
        .order_by(DavObject.revision, DavObject.name)
    )
    if limit is not None:
        changed = changed.limit(limit + 1)
    entries: list[_Entry] = [
        (int(row.revision), row.name, object_info(row)) for row in session.execute(changed)
    ]
    if deletions:
        deleted = (
            select(DavTombstone.revision, DavTombstone.name)
            .where(
                DavTombstone.collection_id == collection_id,
                DavTombstone.revision > after,
                DavTombstone.revision <= upto,
            )
            .order_by(DavTombstone.revision, DavTombstone.name)
        )
        if limit is not None:
            deleted = deleted.limit(limit + 1)
        entries.extend((int(r), str(n), None) for r, n in session.execute(deleted))
    entries.sort(key=lambda e: (e[0], e[1]))
    return entries if limit is None else entries[: limit + 1]


def _answer(
    collection_id: int, entries: list[_Entry], revision: int, *, truncated: bool
) -> SyncChanges:
    return SyncChanges(
        changed=[info for _, _, info in entries if info is not None],
        deleted=[name for _, name, info in entries if info is None],
        revision=revision,
        token=make_sync_token(collection_id, revision),
        truncated=truncated,
    )
