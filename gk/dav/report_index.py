"""
Reads of the calendar and card index without what reports do not need.

L{CollectionService.candidates} and C{all_objects} return whole
L{StoredObject}s; turning 10,000 rows into them costs about 20 ms per
thousand, most of it for the bodies and timestamps a query usually does
not look at.  These two reads return only the indexed columns (and, for
cards, the body, which costs little when nothing is made of it), for the
queries that can decide most resources from the index alone.

An adapter over L{gk.storage}: the collection is resolved for the account
exactly as L{CollectionService} resolves it, and the range condition is
the one of L{dav_store.time_range_candidates}.  It belongs in
L{gk.storage.dav_queries} and L{CollectionService} once those grow an
index-only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gk.dav.report_common import CollectionTarget
from gk.storage import dav_store
from gk.storage.dav_queries import overlaps
from gk.storage.models import DavObject


@dataclass(frozen=True, slots=True)
class EventEntry:
    """The index of one calendar object, without its body."""

    name: str
    etag: str
    size: int
    modified: datetime
    component: str
    #: UTC bounds of the whole recurrence set (L{None}: unbounded).
    start: datetime | None
    end: datetime | None
    recurring: bool
    #: The body, when asked for.
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class CardEntry:
    """A card's name, indexed FN and addresses (lower-case), and body."""

    name: str
    summary: str
    emails: tuple[str, ...]
    data: bytes


def _collection_id(session: Session, target: CollectionTarget) -> int:
    """@raise dav_store.NoSuchCollection: the account has no such collection (any more)."""
    info = dav_store.get_collection(
        session, target.account.id, target.service.kind, target.collection.name
    )
    return info.id


async def event_entries(
    target: CollectionTarget,
    component: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    with_data: bool = False,
) -> list[EventEntry]:
    """
    The entries L{CollectionService.candidates} would return (or
    C{all_objects}, for no component and range), by name; with their
    bodies if C{with_data}.

    @raise dav_store.NoSuchCollection: the collection is gone.
    """

    def read(session: Session) -> list[EventEntry]:
        query = select(
            DavObject.name,
            DavObject.etag,
            DavObject.size,
            DavObject.modified,
            DavObject.component,
            DavObject.range_start,
            DavObject.range_end,
            DavObject.recurring,
            *([DavObject.data] if with_data else []),
        ).where(DavObject.collection_id == _collection_id(session, target), overlaps(start, end))
        if component is not None:
            query = query.where(DavObject.component == component)
        return [
            EventEntry(
                row.name,
                row.etag,
                int(row.size),
                row.modified,
                row.component,
                row.range_start,
                row.range_end,
                bool(row.recurring),
                bytes(row.data) if with_data else None,
            )
            for row in session.execute(query.order_by(DavObject.name))
        ]

    return await target.service.db.read(read)


async def card_entries(target: CollectionTarget, *, with_data: bool = True) -> list[CardEntry]:
    """
    Every card of the address book, by name; C{data} is C{b""} unless C{with_data}.

    @raise dav_store.NoSuchCollection: the collection is gone.
    """

    def read(session: Session) -> list[CardEntry]:
        columns = [DavObject.name, DavObject.summary, DavObject.emails]
        query = (
            select(*columns, *([DavObject.data] if with_data else []))
            .where(DavObject.collection_id == _collection_id(session, target))
            .order_by(DavObject.name)
        )
        return [
            CardEntry(
                row.name,
                row.summary,
                tuple(line for line in row.emails.split("\n") if line),
                bytes(row.data) if with_data else b"",
            )
            for row in session.execute(query)
        ]

    return await target.service.db.read(read)


__all__ = ["CardEntry", "EventEntry", "card_entries", "event_entries"]
