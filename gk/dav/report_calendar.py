"""
The calendar-query REPORT (RFC 4791 7.8): which calendar objects of a
collection pass a filter, with the properties asked for.

The work is split so that large calendars stay fast:

  1. The index narrows the objects: the filter's first component test
     (VEVENT, VTODO ...) and its time-range select the candidates whose
     stored UTC bounds meet the range, read without their bodies unless
     the answer or the filter needs them (L{CollectionService.event_entries}).
  2. When the filter is nothing but a time-range on VEVENT (what clients
     and the web UI ask almost always), most candidates are decided
     without parsing: a non-recurring event's stored bounds are exact, or
     off by at most L{caldata.FLOATING_SLACK} each way for floating times,
     so an event that lies inside the range, or overlaps it by more than
     that slack, matches; one that starts at or after its end does not.
     A recurring event is decided from the instances of its recurrence
     set, expanded once per calendar month and time zone and cached by
     entity tag (L{series_cache}), so that repeated and sliding queries
     parse nothing.  Only the bodies of the rest are read.
  3. A text-match's text must occur in the body of every match: a plain
     byte search (L{Needle}) rules out most objects before any parsing.
  4. Everything else is parsed and tested with L{calquery.matches} in
     worker threads, L{report_common.BATCH} objects at a time.

Calendar data is rendered as L{report_common.MemberProps} describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol
from xml.etree.ElementTree import Element

from icalendar import Calendar
from twisted.logger import Logger

from gk.dav import calquery
from gk.dav.caldata import FLOATING_SLACK
from gk.dav.calquery import CompFilter, TimeRange
from gk.dav.calseries import (
    MAX_CACHED_MONTHS,
    cached_series_match,
    missing_months,
    query_months,
    remember,
    series_cache,
    series_match,
)
from gk.dav.multistatus import Multistatus
from gk.dav.report_common import (
    CollectionTarget,
    Member,
    MemberProps,
    ReportError,
    Zone,
    floating_zone,
    in_batches,
    parse_calendar,
    precondition,
)
from gk.dav.xmlbody import CALDAV, CalendarQuery

log = Logger()

#: How far a floating time's instant can lie from its stored bound: the
#: stored bounds are widened by the slack each way, and the zone of the
#: query moves the real instant by up to the slack again.
FLOATING_REACH = 2 * FLOATING_SLACK

#: Bodies searched for needles per trip to a worker thread.
NEEDLE_BATCH = 2000

_SERIES_TYPES = ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY")


@dataclass(frozen=True)
class QueryPlan:
    """
    How to answer one filter.

    @ivar component: the component type every match has (for the index),
        or L{None} when the filter does not say.
    @ivar time_range: the range that component must meet (for the index).
    @ivar vevent_range: set when the whole filter is one time-range test on
        VEVENT: the range, which the stored bounds can often decide alone.
    @ivar needles: texts that must occur in the body of every match (see
        L{Needle}).
    """

    filter: CompFilter
    component: str | None
    time_range: TimeRange
    vevent_range: TimeRange | None
    needles: tuple[Needle, ...] = ()


def plan_query(filter: CompFilter) -> QueryPlan:
    """The L{QueryPlan} of a parsed VCALENDAR comp-filter."""
    component: str | None = None
    time_range = TimeRange()
    for child in filter.comp_filters:
        # An object holds VTIMEZONEs (and maybe X- components) besides the
        # one type the index records, so only a test of that type narrows.
        if child.is_not_defined or child.name == "VTIMEZONE" or child.name.startswith("X-"):
            continue
        component = child.name
        if child.name in _SERIES_TYPES and child.time_range is not None:
            time_range = child.time_range
        break
    vevent_range = None
    if (
        not filter.is_not_defined
        and filter.time_range is None
        and not filter.prop_filters
        and len(filter.comp_filters) == 1
    ):
        child = filter.comp_filters[0]
        if (
            child.name == "VEVENT"
            and not child.is_not_defined
            and child.time_range is not None
            and not child.prop_filters
            and not child.comp_filters
        ):
            vevent_range = child.time_range
    return QueryPlan(filter, component, time_range, vevent_range, tuple(_needles(filter)))


@dataclass(frozen=True)
class Needle:
    """
    The text of a text-match that every matching object has, as it occurs
    in the stored body once unfolded: C{text} as UTF-8, ASCII-lower-cased
    when C{folded} (the i;ascii-casemap collation) to be sought in the
    body lower-cased likewise.

    A text-match qualifies when it is not negated and no is-not-defined
    test encloses it (then every comp-filter, prop-filter and param-filter
    on its way must pass, and so must it), and when its text holds none of
    the characters that iCalendar escapes or encodes (C{\\ ; , :}, line
    breaks, and C{" ^ '} of parameter values): the text of a value then
    occurs as such in the stored line.
    """

    text: bytes
    folded: bool


_ESCAPED = frozenset("\\;,:\"^'\r\n")


def _needle(match: calquery.TextMatch | None) -> Needle | None:
    if match is None or match.negate or not match.text or _ESCAPED & set(match.text):
        return None
    folded = match.collation == "i;ascii-casemap"
    text = match.text.encode("utf-8")
    return Needle(text.lower() if folded else text, folded)


def _needles(filter: CompFilter) -> list[Needle]:
    """The L{Needle}s of a filter tree."""
    if filter.is_not_defined:
        return []
    found: list[Needle] = []
    for prop in filter.prop_filters:
        if prop.is_not_defined:
            continue
        matches = [prop.text_match]
        matches += [p.text_match for p in prop.param_filters if not p.is_not_defined]
        found += [n for n in map(_needle, matches) if n is not None]
    for child in filter.comp_filters:
        found += _needles(child)
    return found


def have_needles(needles: Sequence[Needle], members: Sequence[Member]) -> list[bool]:
    """Whether each body holds every needle (blocking; cheap byte searches)."""
    results = []
    for member in members:
        data = member.data or b""
        unfolded = data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
        lowered = unfolded.lower() if any(n.folded for n in needles) else unfolded
        results.append(all(n.text in (lowered if n.folded else unfolded) for n in needles))
    return results


def parse_filter(element: Element) -> CompFilter:
    """
    L{calquery.parse_filter}, its errors as the CalDAV preconditions.

    @raise ReportError: 403 C{CALDAV:valid-filter} or C{CALDAV:supported-collation}.
    """
    try:
        return calquery.parse_filter(element)
    except calquery.UnsupportedCollation:
        raise precondition("supported-collation", CALDAV) from None
    except calquery.QueryError:
        raise precondition("valid-filter", CALDAV) from None


async def calendar_query(target: CollectionTarget, report: CalendarQuery, depth: str) -> bytes:
    """
    The 207 body answering C{report} on C{target}, a calendar.

    @param depth: the Depth header; C{"0"} asks about the collection
        alone, which no filter matches (RFC 4791 7.8).
    @raise ReportError: see L{parse_filter}, L{floating_zone}, L{MemberProps}.
    """
    if target.is_addressbook:
        raise precondition("supported-report")
    plan = plan_query(parse_filter(report.filter))
    zone = floating_zone(target.collection, report.timezone, report.timezone_id)
    props = MemberProps(
        report.prop, addressbook=False, calendar_data=report.calendar_data, zone=zone
    )
    multistatus = Multistatus()
    if depth == "0":
        return multistatus.to_bytes()
    # Bodies are read with the index when the answer or the filter needs
    # most of them; a time-range query reads only the ones it cannot decide.
    time_range = plan.time_range
    with_data = props.wants_data or plan.vevent_range is None
    entries = await target.service.event_entries(
        target.account, target.collection.name, plan.component, time_range.start,
        time_range.end, with_data=with_data,
    )  # fmt: skip
    await _load_stored_months(target, entries, plan, zone)
    verdicts = [decide(entry, plan, zone) for entry in entries]
    members = [Member.entry(entry) for entry in entries]
    if plan.needles and with_data:
        undecided = [i for i, verdict in enumerate(verdicts) if verdict is None]
        found = await in_batches(
            partial(have_needles, plan.needles), [members[i] for i in undecided], NEEDLE_BATCH
        )
        for i, present in zip(undecided, found, strict=True):
            if not present:
                verdicts[i] = False
    unread = [m.name for m, verdict in zip(members, verdicts, strict=True) if verdict is None]
    if not with_data and unread:
        service, account = target.service, target.account
        read = await service.get_many(account, target.collection.name, unread)
        # a body read after the index may be newer: answer with its tag
        fresh = {obj.name: Member.stored(obj) for obj in read}
        for i, member in enumerate(members):
            if verdicts[i] is None:
                if member.name in fresh:
                    members[i] = fresh[member.name]
                else:
                    verdicts[i] = False  # removed since
    texts: list[str | None] = [None] * len(members)
    todo: list[int] = []
    for i, member in enumerate(members):
        if verdicts[i] is None:
            todo.append(i)
        elif verdicts[i] and props.wants_data:
            texts[i] = props.cached(member)
            if texts[i] is None:
                todo.append(i)
    work = [(members[i], verdicts[i]) for i in todo]
    done = await in_batches(partial(_evaluate, plan, zone, props), work)
    for i, (matched, text) in zip(todo, done, strict=True):
        verdicts[i], texts[i] = matched, text
    for i, member in enumerate(members):
        if verdicts[i]:
            props.add(multistatus, target.member_href(member.name), member, texts[i])
    return multistatus.to_bytes()


async def _load_stored_months(
    target: CollectionTarget, entries: Sequence[Indexed], plan: QueryPlan, zone: Zone
) -> None:
    """
    Fill L{series_cache} from the months stored with the recurring events
    (one query) when some of C{entries} are missing there, as after a
    restart: they are decided without parsing then.
    """
    time_range = plan.vevent_range
    if time_range is None:
        return
    months = query_months(time_range)
    if months is None or not any(
        entry.recurring
        and entry.component == "VEVENT"
        and missing_months(entry.etag, zone, time_range)
        for entry in entries
    ):
        return
    stored = await target.service.series_months(
        target.account, target.collection.name, zone.key, months[0], months[-1]
    )
    for etag, month, data in stored:
        remember(etag, zone.key, month, data)


# -- deciding without parsing ----------------------------------------------------


class Indexed(Protocol):
    """What L{decide} reads of a resource: its index entry."""

    @property
    def etag(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def start(self) -> datetime | None: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def recurring(self) -> bool: ...


def decide(obj: Indexed, plan: QueryPlan, zone: Zone) -> bool | None:
    """
    Whether C{obj} matches, when that is known without parsing it (cheap:
    on the reactor thread); L{None} when it must be parsed.
    """
    time_range = plan.vevent_range
    if time_range is None or obj.component != "VEVENT":
        return None
    if obj.recurring:
        return cached_series_match(obj.etag, zone, time_range)
    return bounds_match(obj.start, obj.end, time_range)


def bounds_match(
    start: datetime | None, end: datetime | None, time_range: TimeRange
) -> bool | None:
    """
    The RFC 4791 9.9 VEVENT test for a non-recurring event whose stored
    bounds are C{start} and C{end}, or L{None} when they cannot tell.

    The event's real [s, e] lies within the bounds, and no further than
    L{FLOATING_REACH} inside them.  It matches when [s, e] is inside the
    range (an instant at the range's end excepted: hence C{end < high}),
    or surely overlaps it; it cannot match when it starts at or after the
    range's end.  An event ending exactly where the range starts is
    parsed: it matches if it is an instant there.
    """
    if start is None or end is None:
        return None
    low, high = time_range.start, time_range.end
    if high is not None and start >= high:
        return False
    if low is not None and end < low:
        return False
    if (low is None or start >= low) and (high is None or end < high):
        return True
    if (low is None or end - FLOATING_REACH > low) and (
        high is None or start + FLOATING_REACH < high
    ):
        return True
    return None


# -- in worker threads -----------------------------------------------------------


def _evaluate(
    plan: QueryPlan,
    zone: Zone,
    props: MemberProps,
    work: Sequence[tuple[Member, bool | None]],
) -> list[tuple[bool, str | None]]:
    """
    For each (object, verdict so far): whether it matches and, if it does,
    its calendar-data (blocking).
    """
    results: list[tuple[bool, str | None]] = []
    for obj, verdict in work:
        calendar: Calendar | None = None
        matched = verdict
        if matched is None:
            calendar, matched = _test(obj, plan, zone)
        text = None
        if matched:
            text = _render(props, obj, calendar)
        results.append((matched, text))
    return results


def _test(obj: Member, plan: QueryPlan, zone: Zone) -> tuple[Calendar | None, bool]:
    try:
        assert obj.data is not None
        calendar = parse_calendar(obj.data)
        if plan.vevent_range is not None and obj.recurring and obj.component == "VEVENT":
            answer = series_match(obj.etag, calendar, zone, plan.vevent_range)
            if answer is not None:
                return calendar, answer
        return calendar, calquery.matches(calendar, plan.filter, floating_tz=zone.tz)
    except Exception:
        # Stored data passed the checks of its PUT; if it still cannot be
        # evaluated, returning it lets the client decide (RFC 4791 leaves
        # the final filtering to it) rather than hiding the object.
        log.failure("calendar-query could not evaluate {name}", name=obj.name)
        return None, True


def _render(props: MemberProps, member: Member, calendar: Calendar | None) -> str | None:
    try:
        return props.prepare(member, calendar)
    except Exception:
        log.failure("calendar-data of {name} could not be rendered", name=member.name)
        return (member.data or b"").decode("utf-8", "replace")


__all__ = [
    "FLOATING_REACH",
    "MAX_CACHED_MONTHS",
    "QueryPlan",
    "ReportError",
    "bounds_match",
    "cached_series_match",
    "calendar_query",
    "decide",
    "have_needles",
    "parse_filter",
    "plan_query",
    "series_cache",
    "series_match",
]
