"""
CalDAV/CardDAV storage (RFC 4791, 6352, 6578): the API the DAV server,
scheduling and the assistant use.  Import from here; the functions live
in L{gk.storage.dav_collections}, L{gk.storage.dav_objects},
L{gk.storage.dav_queries} and L{gk.storage.dav_sync}, the types in
L{gk.storage.dav_common}.

All functions are blocking and take a L{Session} first: run them through
L{gk.storage.database.Database.read} (queries) or C{write} (changes), one
transaction each.  They return frozen dataclasses, never ORM rows, and
raise the L{DavStoreError} subclasses below (each maps to one HTTP/DAV
answer: L{NoSuchCollection} and L{NoSuchObject} 404, L{CollectionExists}
405, L{PreconditionFailed} 412, L{UidConflict} 403 no-uid-conflict,
L{InvalidSyncToken} 403 valid-sync-token, L{InvalidValue} 400 or 403).

Conventions:

 - Entity tags are quoted strong tags, C{"<32 hex digits>"} (128 bits of
   the SHA-256 of the stored bytes), ready for ETag and DAV:getetag; an
   If-Match value may come with or without quotes (or as a list).
 - Revisions: a collection starts at 0; each change (one call: a PUT, a
   DELETE, a MOVE's source and target each, a PROPPATCH that changes
   something) takes the next revision.  Objects carry the revision they
   were last written at; removed names leave tombstones at theirs.
 - Sync tokens: C{http://gk.invalid/sync/<collection id>-<revision>},
   also the CTag (getctag).
 - Time bounds are aware datetimes, stored in UTC; L{None} is unbounded.
 - Access control is the caller's: functions taking a collection id do
   not check its owner; resolve ids with L{get_collection} for the user.
   MOVE and COPY refuse collections of different users.
"""

from __future__ import annotations

from gk.storage.dav_collections import (
    DEFAULT_COLLECTIONS,
    UPDATABLE,
    collection_usage,
    create_collection,
    delete_collection,
    ensure_default_collections,
    get_collection,
    get_collection_by_id,
    list_collections,
    update_collection,
)
from gk.storage.dav_common import (
    ADDRESSBOOK,
    CALENDAR,
    KINDS,
    MAX_NAME,
    SCHEDULE_INBOX,
    CollectionExists,
    CollectionInfo,
    DavStoreError,
    InvalidSyncToken,
    InvalidValue,
    NoSuchCollection,
    NoSuchObject,
    ObjectInfo,
    PreconditionFailed,
    PutResult,
    StoredObject,
    UidConflict,
    etag_matches,
    make_etag,
)
from gk.storage.dav_objects import (
    copy_object,
    delete_object,
    find_by_uid,
    find_by_uid_for_user,
    get_object,
    get_objects,
    list_objects,
    move_object,
    put_object,
)
from gk.storage.dav_queries import (
    CardEntry,
    EventEntry,
    card_entries,
    event_entries,
    events_between,
    objects_with_component,
    search_cards,
    series_months,
    time_range_candidates,
)
from gk.storage.dav_sync import (
    TOKEN_PREFIX,
    SyncChanges,
    changes_since,
    make_sync_token,
    parse_sync_token,
    prune_tombstones,
    sync_token,
)

__all__ = [
    "ADDRESSBOOK",
    "CALENDAR",
    "DEFAULT_COLLECTIONS",
    "KINDS",
    "MAX_NAME",
    "SCHEDULE_INBOX",
    "TOKEN_PREFIX",
    "UPDATABLE",
    "CardEntry",
    "CollectionExists",
    "CollectionInfo",
    "DavStoreError",
    "EventEntry",
    "InvalidSyncToken",
    "InvalidValue",
    "NoSuchCollection",
    "NoSuchObject",
    "ObjectInfo",
    "PreconditionFailed",
    "PutResult",
    "StoredObject",
    "SyncChanges",
    "UidConflict",
    "card_entries",
    "changes_since",
    "collection_usage",
    "copy_object",
    "create_collection",
    "delete_collection",
    "delete_object",
    "ensure_default_collections",
    "etag_matches",
    "event_entries",
    "events_between",
    "find_by_uid",
    "find_by_uid_for_user",
    "get_collection",
    "get_collection_by_id",
    "get_object",
    "get_objects",
    "list_collections",
    "list_objects",
    "make_etag",
    "make_sync_token",
    "move_object",
    "objects_with_component",
    "parse_sync_token",
    "prune_tombstones",
    "put_object",
    "search_cards",
    "series_months",
    "sync_token",
    "time_range_candidates",
    "update_collection",
]
