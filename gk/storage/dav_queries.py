"""
Queries over stored calendar objects and vCards that use the index
instead of parsing every resource: time-range candidates for
calendar-query and free-busy, component filters, and contact search.

Blocking functions on a L{Session}, for the database's reader threads.
Time-range results are candidates: the index keeps each resource's UTC
bounds over its whole recurrence set, so the caller still evaluates the
exact RFC 4791 9.9 rules (recurrences, time zones of floating times) on
the few resources returned.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from gk.storage.dav_common import (
    ADDRESSBOOK,
    CALENDAR,
    OBJECT_COLUMNS,
    StoredObject,
    stored_object,
)
from gk.storage.models import DavCollection, DavObject, DavSeriesMonth

_EARLIEST = datetime.datetime.min.replace(tzinfo=datetime.UTC)


def overlaps(start: datetime.datetime | None, end: datetime.datetime | None) -> ColumnElement[bool]:
    """
    The condition that a resource's bounds meet the range C{[start, end]}
    (L{None}: unbounded on that side); a resource with a L{None} bound is
    unbounded on that side.  Both ends compare inclusively so that
    zero-length items and the RFC 4791 9.9 VTODO rules (C{end >=
    CREATED}, ...) keep their candidates.
    """
    conditions: list[ColumnElement[bool]] = []
    if end is not None:
        conditions.append(or_(DavObject.range_start.is_(None), DavObject.range_start <= end))
    if start is not None:
        conditions.append(or_(DavObject.range_end.is_(None), DavObject.range_end >= start))
    return and_(True, *conditions)


def time_range_candidates(
    session: Session,
    collection_id: int,
    component: str | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
) -> list[StoredObject]:
    """
    The collection's resources of C{component} (L{None}: any) whose
    bounds meet C{[start, end]} (see L{overlaps}), by name.  Resources
    stored without bounds are always candidates.
    """
    query = select(*OBJECT_COLUMNS).where(
        DavObject.collection_id == collection_id, overlaps(start, end)
    )
    if component is not None:
        query = query.where(DavObject.component == component)
    return [stored_object(row) for row in session.execute(query.order_by(DavObject.name))]


def objects_with_component(
    session: Session, collection_id: int, component: str
) -> list[StoredObject]:
    """The collection's resources of C{component}, by name (a query without time range)."""
    rows = session.execute(
        select(*OBJECT_COLUMNS)
        .where(DavObject.collection_id == collection_id, DavObject.component == component)
        .order_by(DavObject.name)
    )
    return [stored_object(row) for row in rows]


def events_between(
    session: Session,
    user_id: int,
    start: datetime.datetime,
    end: datetime.datetime,
    component: str = "VEVENT",
) -> list[StoredObject]:
    """
    Candidates (see L{overlaps}) of C{component} meeting C{[start, end]}
    in all the user's calendars (not the scheduling inbox), for
    free-busy and the assistant; by start (unbounded first), collection
    and name.  C{StoredObject.collection_id} tells the calendar.
    """
    rows = session.execute(
        select(*OBJECT_COLUMNS)
        .join(DavCollection, DavObject.collection_id == DavCollection.id)
        .where(
            DavCollection.user_id == user_id,
            DavCollection.kind == CALENDAR,
            DavObject.component == component,
            overlaps(start, end),
        )
    )
    found = [stored_object(row) for row in rows]
    found.sort(key=lambda o: (o.start or _EARLIEST, o.collection_id, o.name))
    return found


def search_cards(session: Session, user_id: int, text: str, limit: int) -> list[StoredObject]:
    """
    Up to C{limit} vCards in all the user's address books whose FN or an
    e-mail address contains C{text}, ignoring case (Unicode case folding,
    which SQLite's C{lower()} lacks: the matching runs here over the
    names and addresses, then only the matches' bytes are read); by name
    as folded, then resource name.  An empty C{text} matches every card.
    """
    if limit <= 0:
        return []
    needle = text.casefold()
    rows = session.execute(
        select(DavObject.id, DavObject.summary, DavObject.emails, DavObject.name)
        .join(DavCollection, DavObject.collection_id == DavCollection.id)
        .where(DavCollection.user_id == user_id, DavCollection.kind == ADDRESSBOOK)
    ).all()
    matches = [row for row in rows if _matches(row, needle)]
    matches.sort(key=lambda row: (row.summary.casefold(), row.name, row.id))
    ids = [int(row.id) for row in matches[:limit]]
    if not ids:
        return []
    found = {
        int(row.id): stored_object(row)
        for row in session.execute(
            select(DavObject.id, *OBJECT_COLUMNS).where(DavObject.id.in_(ids))
        )
    }
    return [found[i] for i in ids if i in found]


def _matches(row: Any, needle: str) -> bool:
    return needle in row.summary.casefold() or needle in row.emails.casefold()


@dataclass(frozen=True, slots=True)
class EventEntry:
    """The index of one calendar object, without its body unless asked for."""

    name: str
    etag: str
    size: int
    modified: datetime.datetime
    component: str
    #: UTC bounds of the whole recurrence set (L{None}: unbounded).
    start: datetime.datetime | None
    end: datetime.datetime | None
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


def event_entries(
    session: Session,
    collection_id: int,
    component: str | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    *,
    with_data: bool = False,
) -> list[EventEntry]:
    """
    The index entries L{time_range_candidates} would return, by name,
    without the columns reports rarely need (and without bodies unless
    C{with_data}): building full L{StoredObject}s for 10,000 rows costs
    about 20 ms a thousand, most of it for what a query does not look at.
    """
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
    ).where(DavObject.collection_id == collection_id, overlaps(start, end))
    if component is not None:
        query = query.where(DavObject.component == component)
    # Sorted here, not by the database: an ORDER BY name would make SQLite
    # walk the (collection_id, name) key and read every wide row instead of
    # the covering ix_dav_objects_event_entries.
    entries = [
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
        for row in session.execute(query)
    ]
    entries.sort(key=lambda entry: entry.name)
    return entries


def card_entries(session: Session, collection_id: int, *, with_data: bool) -> list[CardEntry]:
    """Every card of an address book, by name; C{data} is C{b""} unless C{with_data}."""
    columns = [DavObject.name, DavObject.summary, DavObject.emails]
    query = (
        select(*columns, *([DavObject.data] if with_data else []))
        .where(DavObject.collection_id == collection_id)
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


def series_months(
    session: Session, collection_id: int, zone_key: str, first: int, last: int
) -> list[tuple[str, int, bytes]]:
    """
    (entity tag, month, spans) of the months C{first}..C{last} stored for
    the collection's recurring events with floating times in C{zone_key}
    (see L{gk.dav.calseries}).
    """
    rows = session.execute(
        select(DavObject.etag, DavSeriesMonth.month, DavSeriesMonth.spans)
        .join(DavObject, DavSeriesMonth.object_id == DavObject.id)
        .where(
            DavObject.collection_id == collection_id,
            DavSeriesMonth.zone_key == zone_key,
            DavSeriesMonth.month.between(first, last),
        )
        .order_by(DavSeriesMonth.object_id, DavSeriesMonth.month)
    )
    return [(str(etag), int(month), bytes(spans)) for etag, month, spans in rows]
