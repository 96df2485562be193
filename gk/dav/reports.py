"""
The REPORTs on calendar and address book collections: calendar-query
and calendar-multiget (RFC 4791 7.8, 7.9), addressbook-query and
addressbook-multiget (RFC 6352 8.6, 8.7), sync-collection (RFC 6578) and
free-busy-query (RFC 4791 7.10), answered from a user's stored data
through its L{CollectionService}.

The HTTP layer parses the body (L{gk.dav.xmlbody.parse_report}), resolves
and access-checks the collection into a L{CollectionTarget}, then:

  - for L{FreeBusyQuery}, calls L{free_busy_report} and answers 200 with
    C{Content-Type: text/calendar; charset=utf-8} and the body returned;
  - for the others, calls L{run_report} and answers 207 with
    C{Content-Type: application/xml; charset=utf-8};
  - for L{ReportError}, answers its C{status} with its C{body} (a
    C{DAV:error} document, C{application/xml}, when not empty).

L{gk.storage.dav_store.NoSuchCollection} may still escape when the
collection is deleted while the report runs: answer 404.

Every member is named by its collection's href plus its name.  The
properties answered for members are DAV:getetag, getcontenttype,
getcontentlength, getlastmodified, resourcetype and the calendar-data or
address-data asked for; any other name is reported 404 in its propstat.
The CPU work (parsing, matching, rendering) runs in worker threads, a
batch at a time; see L{gk.dav.report_calendar} for how calendar-query
avoids most of it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from xml.etree.ElementTree import Element

from icalendar import Calendar, FreeBusy, vDDDLists
from twisted.internet.threads import deferToThread

from gk.dav import calquery, vcard
from gk.dav.multistatus import Multistatus
from gk.dav.report_calendar import calendar_query
from gk.dav.report_common import (
    BATCH,
    UTC_ZONE,
    CollectionTarget,
    Member,
    MemberProps,
    ReportError,
    floating_zone,
    in_batches,
    parse_calendar,
    precondition,
)
from gk.dav.report_sync import NUMBER_OF_MATCHES, sync_collection
from gk.dav.xmlbody import (
    CARDDAV,
    AddressbookMultiget,
    AddressbookQuery,
    CalendarMultiget,
    CalendarQuery,
    FreeBusyQuery,
    Report,
    SyncCollection,
)

#: Cards tested against a prefilter per trip to a worker thread (the test
#: is a few string operations).
PREFILTER_BATCH = 2000


async def run_report(target: CollectionTarget, report: Report, depth: str) -> bytes:
    """
    The 207 multistatus body answering C{report} on the collection C{target}.

    @param depth: the Depth header as sent, C{""} when absent.  Queries
        treat C{"0"} as asking about the collection alone (no member
        matches) and anything else as its members; multigets ignore it
        (RFC 4791 7.9); sync-collection wants C{0} (see
        L{gk.dav.report_sync.sync_collection}).
    @raise ReportError: the report cannot be answered: 400 (a malformed
        request the XML parser let through), 403 with a precondition
        (C{DAV:supported-report} for a calendar report on an address book
        or the reverse, or for a report that is not about a collection's
        members; C{valid-filter}, C{supported-collation},
        C{supported-calendar-data}, C{supported-address-data},
        C{valid-timezone}, C{valid-calendar-data} of the request's
        timezone, C{DAV:valid-sync-token}), 507 (sync-collection limit).
    @raise TypeError: C{report} is a L{FreeBusyQuery}: that one is not a
        multistatus, call L{free_busy_report}.
    """
    if isinstance(report, FreeBusyQuery):
        raise TypeError("free-busy-query is answered by free_busy_report")
    if isinstance(report, CalendarQuery):
        return await calendar_query(target, report, depth)
    if isinstance(report, SyncCollection):
        return await sync_collection(target, report, depth)
    if isinstance(report, AddressbookQuery):
        return await addressbook_query(target, report, depth)
    if isinstance(report, CalendarMultiget):
        if target.is_addressbook:
            raise precondition("supported-report")
        zone = floating_zone(target.collection)
        props = MemberProps(
            report.prop, addressbook=False, calendar_data=report.calendar_data, zone=zone
        )
        return await multiget(target, report.hrefs, props)
    if isinstance(report, AddressbookMultiget):
        if not target.is_addressbook:
            raise precondition("supported-report")
        props = MemberProps(report.prop, addressbook=True, address_data=report.address_data)
        return await multiget(target, report.hrefs, props)
    # expand-property and the principal searches are not about members
    raise precondition("supported-report")


# -- multiget --------------------------------------------------------------------


async def multiget(target: CollectionTarget, hrefs: Sequence[str], props: MemberProps) -> bytes:
    """
    A response per href, in the order given: the member's properties; 404
    for a name the collection does not hold (or the collection itself, or a
    deeper path); 403 for a path outside the collection, which this request
    cannot reach whatever it names.  The bodies are read in one query.
    """
    names = {path: target.member_name(path) for path in hrefs}
    wanted = list(dict.fromkeys(name for name in names.values() if name is not None))
    service, account = target.service, target.account
    found = (
        {obj.name: obj for obj in await service.get_many(account, target.collection.name, wanted)}
        if wanted
        else {}
    )
    members = [Member.stored(found[name]) for name in wanted if name in found]
    texts = dict(zip((m.name for m in members), await props.prepare_all(members), strict=True))
    by_name = {member.name: member for member in members}
    multistatus = Multistatus()
    for path in hrefs:
        name = names[path]
        if name is None:
            multistatus.add_status(path, 404 if path.startswith(target.href) else 403)
        elif name not in by_name:
            multistatus.add_status(path, 404)
        else:
            props.add(multistatus, path, by_name[name], texts[name])
    return multistatus.to_bytes()


# -- addressbook-query -------------------------------------------------------------


def parse_card_filter(element: Element) -> vcard.Filter:
    """
    L{vcard.parse_filter}, its errors as the CardDAV preconditions.

    @raise ReportError: 403 C{CARDDAV:valid-filter} or C{CARDDAV:supported-collation}.
    """
    try:
        return vcard.parse_filter(element)
    except vcard.UnsupportedCollation:
        raise precondition("supported-collation", CARDDAV) from None
    except vcard.InvalidFilter:
        raise precondition("valid-filter", CARDDAV) from None


async def addressbook_query(
    target: CollectionTarget, report: AddressbookQuery, depth: str
) -> bytes:
    """
    The 207 body answering C{report} on C{target}, an address book: the
    matching cards by name; with C{CARDDAV:limit}, the first C{nresults}
    and, when more match, a 507 response for the collection with
    C{DAV:number-of-matches-within-limits} (RFC 6352 8.6.1).

    Cards are parsed and tested with L{vcard.matches} in worker threads,
    but most never are: a filter that some EMAIL or FN text-match must
    pass is first tried on the indexed addresses and name of an
    index-only read (L{card_prefilter}); one with another necessary
    text-match, by a byte search of the bodies (L{card_needles}).
    """
    if not target.is_addressbook:
        raise precondition("supported-report")
    card_filter = parse_card_filter(report.filter)
    props = MemberProps(report.prop, addressbook=True, address_data=report.address_data)
    multistatus = Multistatus()
    if depth == "0":
        return multistatus.to_bytes()
    service, account, name = target.service, target.account, target.collection.name
    limit = report.limit
    quick = card_prefilter(card_filter) if card_filter.prop_filters else None
    needles = card_needles(card_filter) if card_filter.prop_filters else ()
    if quick is not None or needles:
        # FN needs the bodies to see cards with several FNs; EMAIL does not
        with_data = quick is None or quick.property == "FN"
        entries = await target.service.card_entries(
            target.account, target.collection.name, with_data=with_data
        )
        test = _prefilter_batch(quick) if quick is not None else partial(have_card_needles, needles)
        kept = await in_batches(test, entries, PREFILTER_BATCH)
        survivors = [entry.name for entry, keep in zip(entries, kept, strict=True) if keep]
        # get_many returns them by name, as the index; one removed since is left out
        cards = await service.get_many(account, name, survivors) if survivors else []
    else:
        cards = await service.all_objects(account, name)
    if card_filter.prop_filters:
        cards = await _confirm(card_filter, cards, limit)
    more = limit is not None and len(cards) > limit
    if limit is not None:
        cards = cards[:limit]
    members = [Member.stored(card) for card in cards]
    texts = await props.prepare_all(members)
    for member, text in zip(members, texts, strict=True):
        props.add(multistatus, target.member_href(member.name), member, text)
    if more:
        multistatus.add_status(target.href, 507, error=NUMBER_OF_MATCHES)
    return multistatus.to_bytes()


class Card(Protocol):
    """A card as the prefilter and the matching read it: index entry or stored object."""

    @property
    def summary(self) -> str: ...
    @property
    def emails(self) -> tuple[str, ...]: ...
    @property
    def data(self) -> bytes: ...


C = TypeVar("C", bound=Card)


async def _confirm(card_filter: vcard.Filter, cards: Sequence[C], limit: int | None) -> list[C]:
    """The cards that pass, parsed in batches; with a limit, stop past C{limit} matches."""
    matched: list[C] = []
    for start in range(0, len(cards), BATCH):
        batch = cards[start : start + BATCH]
        keep: list[bool] = await deferToThread(_match_cards, card_filter, batch)
        matched.extend(card for card, ok in zip(batch, keep, strict=True) if ok)
        if limit is not None and len(matched) > limit:
            break
    return matched


def _match_cards(card_filter: vcard.Filter, cards: Sequence[Card]) -> list[bool]:
    results = []
    for card in cards:
        try:
            results.append(vcard.matches(vcard.parse_vcard(card.data), card_filter))
        except vcard.InvalidAddressData:
            results.append(False)  # checked at PUT: not expected
    return results


@dataclass(frozen=True)
class CardPrefilter:
    """
    A necessary condition of a filter that the index can test: one
    text-match on EMAIL or FN.  L{__call__} never rejects a card that
    passes the filter (it may keep ones that do not).

    @ivar needle: the text-match's text, folded by C{fold}.
    """

    property: str
    needle: str
    fold: Callable[[str], str]
    compare: Callable[[str, str], bool]

    def __call__(self, card: Card) -> bool:
        fold, compare, needle = self.fold, self.compare, self.needle
        if self.property == "EMAIL":
            return any(compare(fold(email), needle) for email in card.emails)
        if compare(fold(card.summary), needle):
            return True
        # The index holds the first FN only (or, without FN, a name made
        # from N or ORG, and then no FN test can pass): a card with more
        # than one FN is left to the parser.
        return _several_fn(card.data)


def _unicode_fold(text: str) -> str:
    # ASCII folds to its lower case: skip the normalization for it
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKD", text.casefold())


# The index keeps addresses lower-cased (and stripped).  Lower-casing
# both sides keeps every match of the exact (octet) and ASCII collations;
# the Unicode one folds cases anyway, and folds a lower-cased text as it
# folds the original.
_FOLDS: dict[str, Callable[[str], str]] = {
    "i;octet": str.lower,
    "i;ascii-casemap": str.lower,
    "i;unicode-casemap": _unicode_fold,
}
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "equals": str.__eq__,
    "contains": str.__contains__,
    "starts-with": str.startswith,
    "ends-with": str.endswith,
}
_FN_LINE = re.compile(rb"^(?:[A-Za-z0-9-]+\.)?[Ff][Nn][;:]", re.M)


def _several_fn(data: bytes) -> bool:
    """
    Whether a card may have more than one FN line (a quoted-printable
    continuation that looks like one counts: erring that way only costs
    a parse).
    """
    return data.upper().count(b"FN") >= 2 and len(_FN_LINE.findall(data)) >= 2


def _necessary_matches(
    card_filter: vcard.Filter,
) -> Iterator[tuple[vcard.PropFilter, vcard.TextMatch]]:
    """
    The non-negated text-matches that every matching card passes, with
    their prop-filter: its prop-filter must pass (the only one, or the
    filter is allof), and it must pass within it (the only test, or the
    prop-filter is allof).  A param-filter's text-match is one too.
    """
    filters = card_filter.prop_filters
    if not (card_filter.test == "allof" or len(filters) == 1):
        return
    for prop_filter in filters:
        if prop_filter.is_not_defined:
            continue
        tests = len(prop_filter.text_matches) + len(prop_filter.param_filters)
        if not (prop_filter.test == "allof" or tests == 1):
            continue
        for match in prop_filter.text_matches:
            if not match.negate:
                yield prop_filter, match
        for param in prop_filter.param_filters:
            if param.text_match is not None and not param.text_match.negate:
                yield prop_filter, param.text_match


def card_prefilter(card_filter: vcard.Filter) -> CardPrefilter | None:
    """
    A L{CardPrefilter} for C{card_filter}, or L{None} when no EMAIL or FN
    text-match (see L{_necessary_matches}) can be tested on the index: one
    whose text is not empty and has no whitespace at either end or line
    break, since the index stores addresses stripped and one per line.
    """
    for prop_filter, match in _necessary_matches(card_filter):
        if prop_filter.name not in ("EMAIL", "FN") or match not in prop_filter.text_matches:
            continue
        fold = _FOLDS[match.collation]
        folded = fold(match.text)
        if not folded or folded != folded.strip() or "\n" in folded:
            continue
        return CardPrefilter(prop_filter.name, folded, fold, _COMPARE[match.match_type])
    return None


@dataclass(frozen=True)
class CardNeedle:
    """
    Bytes that occur in the unfolded body of every matching card: a
    necessary text-match's text, folded as its collation folds (then
    sought in the body with ASCII letters lower-cased).  The Unicode
    collation folds more than ASCII case (C{ß} to C{ss}, ligatures, wide
    letters), so its needles only decide for bodies that are all ASCII.
    A quoted-printable body may hide any text: those are never decided.
    """

    text: bytes
    folded: bool
    unicode: bool


#: What vCard escapes or encodes in values and parameters (RFC 6350 3.4,
#: RFC 6868): a text-match holding one may not occur as such in the body.
_CARD_ESCAPED = frozenset("\\;,:\"^'\r\n")


def card_needles(card_filter: vcard.Filter) -> tuple[CardNeedle, ...]:
    """The L{CardNeedle}s of C{card_filter} (see L{_necessary_matches})."""
    needles = []
    for _, match in _necessary_matches(card_filter):
        if not match.text or _CARD_ESCAPED & set(match.text):
            continue
        if match.collation == "i;octet":
            needles.append(CardNeedle(match.text.encode("utf-8"), False, False))
        elif match.collation == "i;ascii-casemap":
            needles.append(CardNeedle(match.text.encode("utf-8").lower(), True, False))
        else:
            folded = _unicode_fold(match.text).encode("utf-8")
            needles.append(CardNeedle(folded, True, True))
    return tuple(needles)


def have_card_needles(needles: Sequence[CardNeedle], cards: Sequence[Card]) -> list[bool]:
    """Whether each card's body may pass: it holds every needle (blocking)."""
    results = []
    for card in cards:
        data = card.data
        if b"UOTED-PRINTABLE" in data.upper():
            results.append(True)
            continue
        unfolded = data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
        lowered = unfolded.lower()
        plain = unfolded.isascii()
        results.append(
            all(
                (n.text in (lowered if n.folded else unfolded)) or (n.unicode and not plain)
                for n in needles
            )
        )
    return results


def _prefilter_batch(quick: CardPrefilter) -> Callable[[Sequence[Card]], list[bool]]:
    def run(cards: Sequence[Card]) -> list[bool]:
        return [quick(card) for card in cards]

    return run


# -- free-busy-query ---------------------------------------------------------------


async def free_busy_report(
    target: CollectionTarget | Sequence[CollectionTarget], report: FreeBusyQuery
) -> bytes:
    """
    The iCalendar body answering a free-busy-query (RFC 4791 7.10) on one
    calendar, or on several (a request on the calendar home covers all of
    the user's calendars): one VFREEBUSY with the busy time of their
    events (transparent and cancelled ones skipped, tentative ones
    BUSY-TENTATIVE) and of stored VFREEBUSY components.  Each calendar's
    floating times are read in its calendar-timezone.

    Not a multistatus: the HTTP layer answers 200 with C{Content-Type:
    text/calendar; charset=utf-8}.

    @raise ReportError: 400 when the time-range lacks start or end; 403
        C{DAV:supported-report} when a target is an address book.
    """
    targets = [target] if isinstance(target, CollectionTarget) else list(target)
    start, end = report.time_range.start, report.time_range.end
    if start is None or end is None:
        raise ReportError(400)
    groups: dict[str, tuple[Any, list[bytes]]] = {}
    for one in targets:
        if one.is_addressbook:
            raise precondition("supported-report")
        zone = floating_zone(one.collection)
        service, account, name = one.service, one.account, one.collection.name
        found = await service.candidates(account, name, "VEVENT", start, end)
        if "VFREEBUSY" in one.collection.components:
            found += await service.candidates(account, name, "VFREEBUSY", start, end)
        groups.setdefault(zone.key, (zone.tz, []))[1].extend(obj.data for obj in found)
    body: bytes = await deferToThread(_free_busy, list(groups.values()), start, end)
    return body


def _free_busy(groups: list[tuple[Any, list[bytes]]], start: datetime, end: datetime) -> bytes:
    """
    The VFREEBUSY of all groups (blocking).  Each group (a zone and its
    calendars) is reduced to its busy periods in UTC; the periods of all
    groups are then merged by L{calquery.free_busy_calendar}, given to it
    as VFREEBUSY components (whose periods it counts as stored busy time).
    """
    if len(groups) == 1:
        tz, datas = groups[0]
        return calquery.free_busy_calendar([parse_calendar(d) for d in datas], start, end, tz)
    summaries = []
    for tz, datas in groups:
        periods = calquery.free_busy([parse_calendar(d) for d in datas], start, end, tz)
        summary = Calendar()
        component = FreeBusy()
        for low, high, kind in periods:
            value = vDDDLists([(low, high)])
            value.params["FBTYPE"] = kind
            component.add("FREEBUSY", value)
        summary.add_component(component)
        summaries.append(summary)
    return calquery.free_busy_calendar(summaries, start, end, UTC_ZONE.tz)


__all__ = [
    "CardPrefilter",
    "CollectionTarget",
    "ReportError",
    "addressbook_query",
    "card_prefilter",
    "free_busy_report",
    "multiget",
    "run_report",
]
