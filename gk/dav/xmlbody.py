"""
Request bodies of WebDAV, CalDAV and CardDAV methods, parsed safely into
typed values: PROPFIND and PROPPATCH (RFC 4918), extended MKCOL (RFC 5689),
MKCALENDAR (RFC 4791 5.3.1) and the REPORTs gk answers (RFC 4791, 6352,
6578, 3253 3.8 expand-property, 3744 principal searches).

Every body goes through L{parse_xml}: defusedxml's expat parser with DTDs,
entity declarations and external references forbidden (so no entity
expansion, no billion laughs, no network), a byte limit chosen by the
caller, and limits on nesting depth and element count.  Anything that is
not a well-formed, acceptable body raises L{BadRequestBody} (an HTTP 400,
or 413 for its subclass L{BodyTooLarge}); a well-formed REPORT this module
does not know raises L{UnsupportedReport}.  No other exception escapes the
C{parse_*} functions.

Element names are Clark-notation strings, C{"{DAV:}getetag"}; a name in no
namespace is just its local name.  Unknown elements are ignored where RFC
4918 17 asks for it.  Elements handed out (property values, filters) are
ordinary L{xml.etree.ElementTree.Element}s.  Pure: no I/O.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Literal, TypeAlias
from urllib.parse import unquote, urljoin, urlsplit
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CALENDARSERVER = "http://calendarserver.org/ns/"
APPLE_ICAL = "http://apple.com/ns/ical/"

#: Default limits of L{parse_xml} beyond the byte size.
MAX_DEPTH = 64
MAX_ELEMENTS = 100_000


def qname(namespace: str, local: str) -> str:
    """The Clark name C{{namespace}local} (just C{local} for no namespace)."""
    return f"{{{namespace}}}{local}" if namespace else local


def d(local: str) -> str:
    """A DAV: property or element name in Clark notation."""
    return f"{{{DAV}}}{local}"


def c(local: str) -> str:
    """A CalDAV name in Clark notation."""
    return f"{{{CALDAV}}}{local}"


def r(local: str) -> str:
    """A CardDAV name in Clark notation."""
    return f"{{{CARDDAV}}}{local}"


def cs(local: str) -> str:
    """A CalendarServer name (getctag) in Clark notation."""
    return f"{{{CALENDARSERVER}}}{local}"


def ical(local: str) -> str:
    """An Apple iCal name (calendar-color, calendar-order) in Clark notation."""
    return f"{{{APPLE_ICAL}}}{local}"


class BadRequestBody(ValueError):
    """The body is not acceptable XML for the method: answer 400."""


class BodyTooLarge(BadRequestBody):
    """The body exceeds the caller's byte limit: answer 413."""


class UnsupportedReport(Exception):
    """
    A well-formed REPORT body whose root element is no report gk answers:
    answer 403 with C{DAV:supported-report} (RFC 3253 3.6) or 501.

    @ivar name: the root element's Clark name.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _LimitedBuilder:
    """A TreeBuilder target that refuses too deep or too many elements."""

    def __init__(self, max_depth: int, max_elements: int) -> None:
        self._builder = ET.TreeBuilder()
        self._depth = 0
        self._left = max_elements
        self._max_depth = max_depth

    def start(self, tag: str, attrib: dict[str, str]) -> Element:
        self._depth += 1
        self._left -= 1
        if self._depth > self._max_depth:
            raise BadRequestBody("XML nested too deeply")
        if self._left < 0:
            raise BadRequestBody("too many XML elements")
        return self._builder.start(tag, attrib)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        self._builder.data(data)

    def close(self) -> Element:
        return self._builder.close()


def parse_xml(
    body: bytes,
    *,
    max_size: int,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
) -> Element | None:
    """
    Parse an untrusted request body.

    @param max_size: the largest acceptable body, in bytes.
    @return: the root element, or L{None} for an empty (or all-whitespace) body.
    @raise BodyTooLarge: C{body} is longer than C{max_size}.
    @raise BadRequestBody: not well-formed; has a DTD, an entity declaration
        or an external reference; nests deeper than C{max_depth} or holds
        more than C{max_elements} elements.
    """
    if len(body) > max_size:
        raise BodyTooLarge(f"body larger than {max_size} bytes")
    if not body.strip():
        return None
    parser = DefusedXMLParser(
        target=_LimitedBuilder(max_depth, max_elements),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(body)
        root = parser.close()
    except BadRequestBody:
        raise
    except (ET.ParseError, DefusedXmlException) as e:
        raise BadRequestBody(f"malformed or forbidden XML: {e}") from e
    except (ValueError, LookupError, UnicodeError) as e:
        # Odd encodings declared in the XML declaration end up here.
        raise BadRequestBody(f"unreadable XML: {e}") from e
    if not isinstance(root, Element):  # pragma: no cover - TreeBuilder guarantees it
        raise BadRequestBody("no root element")
    return root


def text_of(element: Element) -> str:
    """All character data inside C{element}, descendants included, unstripped."""
    return "".join(element.itertext())


def _expect_root(root: Element | None, *names: str) -> Element:
    if root is None:
        raise BadRequestBody(f"empty body, expected {names[0]}")
    if root.tag not in names:
        raise BadRequestBody(f"root element {root.tag!r}, expected {' or '.join(names)}")
    return root


def _children(element: Element) -> list[Element]:
    """Child elements (comments and processing instructions never get here)."""
    return [child for child in element if isinstance(child.tag, str)]


def _names(prop: Element) -> tuple[str, ...]:
    """The Clark names of C{prop}'s children, first occurrence of each, in order."""
    return tuple(dict.fromkeys(child.tag for child in _children(prop)))


# --- PROPFIND ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PropFind:
    """
    Which properties a PROPFIND (or a REPORT's prop request) asks for.

    @ivar kind: C{"allprop"} (every live property worth listing plus the
        dead ones, and those in C{include}), C{"propname"} (names only) or
        C{"prop"} (exactly C{names}; none means hrefs only).
    """

    kind: Literal["allprop", "propname", "prop"]
    names: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


ALLPROP = PropFind("allprop")


def _prop_request(parent: Element, *, required: bool = False) -> tuple[PropFind, Element | None]:
    """
    The C{allprop | propname | prop} request among C{parent}'s children
    (RFC 4918 14.20), and the C{DAV:prop} element if that was the kind.

    Absent: C{prop} with no names, unless C{required}.
    """
    found: list[Element] = [
        c for c in _children(parent) if c.tag in (d("allprop"), d("propname"), d("prop"))
    ]
    if len(found) > 1:
        raise BadRequestBody("more than one of allprop, propname and prop")
    if not found:
        if required:
            raise BadRequestBody("none of allprop, propname and prop")
        return PropFind("prop"), None
    element = found[0]
    if element.tag == d("prop"):
        return PropFind("prop", _names(element)), element
    if element.tag == d("propname"):
        return PropFind("propname"), None
    include = parent.find(d("include"))
    return PropFind("allprop", include=_names(include) if include is not None else ()), None


def parse_propfind(body: bytes, *, max_size: int) -> PropFind:
    """
    A PROPFIND body (RFC 4918 9.1, 14.20); an empty body means allprop.

    @raise BadRequestBody: see L{parse_xml}; not C{DAV:propfind}; none or
        several of allprop, propname and prop.
    """
    root = parse_xml(body, max_size=max_size)
    if root is None:
        return ALLPROP
    return _prop_request(_expect_root(root, d("propfind")), required=True)[0]


# --- PROPPATCH and MKCOL ----------------------------------------------------

Operation: TypeAlias = tuple[Literal["set", "remove"], str, Element | None]


@dataclass(frozen=True, slots=True)
class PropPatch:
    """
    A PROPPATCH body (RFC 4918 9.2, 14.19), instructions in document order
    (they must be applied in that order, all or none).

    @ivar operations: C{("set", name, element)}, the element being the
        property itself (its text or children are the value), or
        C{("remove", name, None)}.
    """

    operations: tuple[Operation, ...]


def parse_proppatch(body: bytes, *, max_size: int) -> PropPatch:
    """
    A PROPPATCH body.

    @raise BadRequestBody: see L{parse_xml}; not C{DAV:propertyupdate}; a
        set or remove without C{DAV:prop}; no instruction at all.
    """
    root = _expect_root(parse_xml(body, max_size=max_size), d("propertyupdate"))
    operations: list[Operation] = []
    for instruction in _children(root):
        if instruction.tag == d("set"):
            kind: Literal["set", "remove"] = "set"
        elif instruction.tag == d("remove"):
            kind = "remove"
        else:
            continue
        props = instruction.findall(d("prop"))
        if not props:
            raise BadRequestBody(f"{instruction.tag} without DAV:prop")
        for prop in props:
            for element in _children(prop):
                operations.append((kind, element.tag, element if kind == "set" else None))
    if not operations:
        raise BadRequestBody("propertyupdate without set or remove")
    return PropPatch(tuple(operations))


@dataclass(frozen=True, slots=True)
class MkCol:
    """
    An extended MKCOL (RFC 5689) or MKCALENDAR (RFC 4791 5.3.1) body.

    @ivar resourcetype: the requested resource types, C{DAV:collection}
        always first (and C{CALDAV:calendar} for MKCALENDAR).
    @ivar props: the other properties to set, as elements in document order.
    """

    resourcetype: tuple[str, ...]
    props: tuple[Element, ...]


def parse_mkcol(body: bytes, *, max_size: int, calendar: bool = False) -> MkCol:
    """
    The body of MKCOL (C{DAV:mkcol}) or, when C{calendar}, MKCALENDAR
    (C{CALDAV:mkcalendar}); an empty body asks for a plain collection (a
    calendar for MKCALENDAR) with no properties.

    @raise BadRequestBody: see L{parse_xml}; the wrong root element.
    """
    types = [d("collection")] + ([c("calendar")] if calendar else [])
    props: list[Element] = []
    root = parse_xml(body, max_size=max_size)
    if root is not None:
        _expect_root(root, c("mkcalendar") if calendar else d("mkcol"))
        for prop in root.iterfind(f"{d('set')}/{d('prop')}"):
            for element in _children(prop):
                if element.tag == d("resourcetype"):
                    types.extend(t for t in _names(element) if t not in types)
                else:
                    props.append(element)
    return MkCol(tuple(types), tuple(props))


# --- REPORT -----------------------------------------------------------------

_UTC = re.compile(r"\s*(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\s*", re.ASCII)


def parse_utc(text: str) -> datetime:
    """
    An iCalendar UTC date-time as in time-range attributes, C{20060104T000000Z}.

    @raise BadRequestBody: another form, or no such moment.
    """
    match = _UTC.fullmatch(text)
    if match is None:
        raise BadRequestBody(f"not a UTC date-time: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:
        raise BadRequestBody(f"not a UTC date-time: {text!r}") from e


@dataclass(frozen=True, slots=True)
class TimeRange:
    """C{start}/C{end} attributes (RFC 4791 9.9): UTC; L{None} is unbounded."""

    start: datetime | None
    end: datetime | None


def _time_range(element: Element, *, both: bool = False) -> TimeRange:
    start, end = element.get("start"), element.get("end")
    if (start is None and end is None) or (both and (start is None or end is None)):
        raise BadRequestBody(f"{element.tag} lacks start or end")
    result = TimeRange(
        parse_utc(start) if start is not None else None,
        parse_utc(end) if end is not None else None,
    )
    if result.start is not None and result.end is not None and result.end <= result.start:
        raise BadRequestBody(f"{element.tag} ends before it starts")
    return result


@dataclass(frozen=True, slots=True)
class CalendarData:
    """
    A C{CALDAV:calendar-data} property request (RFC 4791 9.6).

    @ivar element: the request itself: its C{comp}/C{prop} children select
        parts of the data, attributes give content-type and version.
    """

    element: Element
    expand: TimeRange | None = None
    limit_recurrence_set: TimeRange | None = None
    limit_freebusy_set: TimeRange | None = None


def _calendar_data(prop: Element | None) -> CalendarData | None:
    element = prop.find(c("calendar-data")) if prop is not None else None
    if element is None:
        return None
    ranges: dict[str, TimeRange] = {}
    for name in ("expand", "limit-recurrence-set", "limit-freebusy-set"):
        child = element.find(c(name))
        if child is not None:
            ranges[name] = _time_range(child, both=True)
    return CalendarData(
        element,
        ranges.get("expand"),
        ranges.get("limit-recurrence-set"),
        ranges.get("limit-freebusy-set"),
    )


def _address_data(prop: Element | None) -> Element | None:
    return prop.find(r("address-data")) if prop is not None else None


_DIGITS = re.compile(r"\s*([0-9]{1,9})\s*", re.ASCII)


def _limit(parent: Element, namespace: str) -> int | None:
    """C{limit/nresults} (RFC 5323 5.17) in C{namespace}, a positive count."""
    limit = parent.find(qname(namespace, "limit"))
    if limit is None:
        return None
    nresults = limit.find(qname(namespace, "nresults"))
    match = _DIGITS.fullmatch(nresults.text or "") if nresults is not None else None
    if match is None or int(match.group(1)) < 1:
        raise BadRequestBody("limit without a positive nresults")
    return int(match.group(1))


def href_to_path(href: str, base: str = "/") -> str:
    """
    The percent-decoded path a C{DAV:href} names: an absolute URL is
    reduced to its path (the host is not checked), a relative reference is
    resolved against C{base} (the request path as sent, percent-encoded),
    query and fragment dropped.  An encoded C{/} (C{%2F}) decodes to C{/}.

    @raise BadRequestBody: empty; not http(s); not UTF-8 once decoded; a
        NUL, or a C{.} or C{..} segment.
    """
    try:
        parts = urlsplit(href.strip())
    except ValueError as e:
        raise BadRequestBody(f"bad href {href[:80]!r}") from e
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise BadRequestBody(f"href not http(s): {href[:80]!r}")
    path = parts.path
    if not path:
        if not (parts.scheme or parts.netloc):
            raise BadRequestBody("empty href")
        path = "/"
    elif not path.startswith("/"):
        path = urljoin(base, path)
    try:
        path = unquote(path, errors="strict")
    except UnicodeDecodeError as e:
        raise BadRequestBody(f"href not UTF-8: {href[:80]!r}") from e
    if "\x00" in path or any(seg in (".", "..") for seg in path.split("/")):
        raise BadRequestBody(f"bad href path {href[:80]!r}")
    return path


def _hrefs(parent: Element, base: str) -> tuple[str, ...]:
    paths = [href_to_path(h.text or "", base) for h in parent.iterfind(d("href"))]
    if not paths:
        raise BadRequestBody(f"{parent.tag} without DAV:href")
    return tuple(dict.fromkeys(paths))


@dataclass(frozen=True, slots=True)
class CalendarQuery:
    """
    RFC 4791 7.8.  C{filter} is the raw C{CALDAV:filter} element; C{timezone}
    the text of C{CALDAV:timezone} (a VTIMEZONE), C{timezone_id} that of
    C{CALDAV:timezone-id} (RFC 7809).
    """

    name: ClassVar[str] = c("calendar-query")
    prop: PropFind
    filter: Element
    timezone: str | None = None
    timezone_id: str | None = None
    calendar_data: CalendarData | None = None


@dataclass(frozen=True, slots=True)
class CalendarMultiget:
    """RFC 4791 7.9: C{hrefs} are decoded paths, duplicates dropped."""

    name: ClassVar[str] = c("calendar-multiget")
    prop: PropFind
    hrefs: tuple[str, ...]
    calendar_data: CalendarData | None = None


@dataclass(frozen=True, slots=True)
class FreeBusyQuery:
    """RFC 4791 7.10: free-busy over C{time_range}."""

    name: ClassVar[str] = c("free-busy-query")
    time_range: TimeRange


@dataclass(frozen=True, slots=True)
class AddressbookQuery:
    """
    RFC 6352 8.6.  C{filter} is the raw C{CARDDAV:filter} element;
    C{address_data} the raw C{CARDDAV:address-data} request if asked for.
    """

    name: ClassVar[str] = r("addressbook-query")
    prop: PropFind
    filter: Element
    limit: int | None = None
    address_data: Element | None = None


@dataclass(frozen=True, slots=True)
class AddressbookMultiget:
    """RFC 6352 8.7: C{hrefs} are decoded paths, duplicates dropped."""

    name: ClassVar[str] = r("addressbook-multiget")
    prop: PropFind
    hrefs: tuple[str, ...]
    address_data: Element | None = None


@dataclass(frozen=True, slots=True)
class SyncCollection:
    """
    RFC 6578 3.2.  C{sync_token} is C{""} for an initial sync; a missing
    sync-level is taken as C{"1"} (as by clients written before RFC 6578).
    """

    name: ClassVar[str] = d("sync-collection")
    sync_token: str
    sync_level: Literal["1", "infinite"]
    prop: PropFind
    limit: int | None = None
    calendar_data: CalendarData | None = None
    address_data: Element | None = None


@dataclass(frozen=True, slots=True)
class PropertyRequest:
    """One C{DAV:property} of expand-property: a name, and what to expand inside."""

    name: str
    children: tuple[PropertyRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpandProperty:
    """
    RFC 3253 3.8: for each property (whose value holds hrefs), the listed
    properties of the resources named, recursively.
    """

    name: ClassVar[str] = d("expand-property")
    properties: tuple[PropertyRequest, ...]


MatchType: TypeAlias = Literal["contains", "starts-with", "ends-with", "equals"]


@dataclass(frozen=True, slots=True)
class PropertySearch:
    """One C{DAV:property-search}: C{match} against each property in C{names}."""

    names: tuple[str, ...]
    match: str
    match_type: MatchType = "contains"


@dataclass(frozen=True, slots=True)
class PrincipalPropertySearch:
    """RFC 3744 9.4 (C{match-type} as Apple's calendar server extends it)."""

    name: ClassVar[str] = d("principal-property-search")
    searches: tuple[PropertySearch, ...]
    test: Literal["allof", "anyof"]
    prop: PropFind
    apply_to_principal_collection_set: bool = False


@dataclass(frozen=True, slots=True)
class PrincipalSearchPropertySet:
    """RFC 3744 9.5: which properties principal-property-search can search."""

    name: ClassVar[str] = d("principal-search-property-set")


Report: TypeAlias = (
    CalendarQuery
    | CalendarMultiget
    | FreeBusyQuery
    | AddressbookQuery
    | AddressbookMultiget
    | SyncCollection
    | ExpandProperty
    | PrincipalPropertySearch
    | PrincipalSearchPropertySet
)


def _calendar_query(root: Element, base: str) -> CalendarQuery:
    prop, prop_element = _prop_request(root)
    filter_ = root.find(c("filter"))
    if filter_ is None:
        raise BadRequestBody("calendar-query without filter")
    timezone, timezone_id = root.find(c("timezone")), root.find(c("timezone-id"))
    return CalendarQuery(
        prop,
        filter_,
        text_of(timezone) if timezone is not None else None,
        text_of(timezone_id).strip() if timezone_id is not None else None,
        _calendar_data(prop_element),
    )


def _calendar_multiget(root: Element, base: str) -> CalendarMultiget:
    prop, prop_element = _prop_request(root)
    return CalendarMultiget(prop, _hrefs(root, base), _calendar_data(prop_element))


def _free_busy_query(root: Element, base: str) -> FreeBusyQuery:
    time_range = root.find(c("time-range"))
    if time_range is None:
        raise BadRequestBody("free-busy-query without time-range")
    return FreeBusyQuery(_time_range(time_range))


def _addressbook_query(root: Element, base: str) -> AddressbookQuery:
    prop, prop_element = _prop_request(root)
    filter_ = root.find(r("filter"))
    if filter_ is None:
        raise BadRequestBody("addressbook-query without filter")
    return AddressbookQuery(prop, filter_, _limit(root, CARDDAV), _address_data(prop_element))


def _addressbook_multiget(root: Element, base: str) -> AddressbookMultiget:
    prop, prop_element = _prop_request(root)
    return AddressbookMultiget(prop, _hrefs(root, base), _address_data(prop_element))


def _sync_collection(root: Element, base: str) -> SyncCollection:
    prop, prop_element = _prop_request(root)
    token = root.find(d("sync-token"))
    level_element = root.find(d("sync-level"))
    level = (level_element.text or "").strip() if level_element is not None else "1"
    if level not in ("1", "infinite"):
        raise BadRequestBody(f"sync-level {level[:20]!r}")
    return SyncCollection(
        (token.text or "").strip() if token is not None else "",
        "1" if level == "1" else "infinite",
        prop,
        _limit(root, DAV),
        _calendar_data(prop_element),
        _address_data(prop_element),
    )


def _property_requests(parent: Element) -> tuple[PropertyRequest, ...]:
    requests = []
    for element in parent.iterfind(d("property")):
        local = element.get("name")
        if not local:
            raise BadRequestBody("DAV:property without a name")
        name = qname(element.get("namespace", DAV), local)
        requests.append(PropertyRequest(name, _property_requests(element)))
    return tuple(requests)


def _expand_property(root: Element, base: str) -> ExpandProperty:
    return ExpandProperty(_property_requests(root))


_MATCH_TYPES: dict[str, MatchType] = {
    "contains": "contains",
    "starts-with": "starts-with",
    "ends-with": "ends-with",
    "equals": "equals",
}


def _principal_property_search(root: Element, base: str) -> PrincipalPropertySearch:
    searches = []
    for search in root.iterfind(d("property-search")):
        prop, match = search.find(d("prop")), search.find(d("match"))
        if prop is None or match is None:
            raise BadRequestBody("property-search needs prop and match")
        match_type = match.get("match-type", "contains")
        kind = _MATCH_TYPES.get(match_type)
        if kind is None:
            raise BadRequestBody(f"match-type {match_type[:20]!r}")
        searches.append(PropertySearch(_names(prop), text_of(match), kind))
    if not searches:
        raise BadRequestBody("principal-property-search without property-search")
    test = root.get("test", "allof")
    if test not in ("allof", "anyof"):
        raise BadRequestBody(f"test {test[:20]!r}")
    return PrincipalPropertySearch(
        tuple(searches),
        "anyof" if test == "anyof" else "allof",
        _prop_request(root)[0],
        root.find(d("apply-to-principal-collection-set")) is not None,
    )


def _principal_search_property_set(root: Element, base: str) -> PrincipalSearchPropertySet:
    return PrincipalSearchPropertySet()


_REPORTS: dict[str, Callable[[Element, str], Report]] = {
    CalendarQuery.name: _calendar_query,
    CalendarMultiget.name: _calendar_multiget,
    FreeBusyQuery.name: _free_busy_query,
    AddressbookQuery.name: _addressbook_query,
    AddressbookMultiget.name: _addressbook_multiget,
    SyncCollection.name: _sync_collection,
    ExpandProperty.name: _expand_property,
    PrincipalPropertySearch.name: _principal_property_search,
    PrincipalSearchPropertySet.name: _principal_search_property_set,
}

#: The Clark names of every report L{parse_report} understands.
REPORT_NAMES: tuple[str, ...] = tuple(_REPORTS)


def parse_report(body: bytes, *, max_size: int, base: str = "/") -> Report:
    """
    A REPORT body, by its root element.

    @param base: the request path as sent (percent-encoded), against which
        relative hrefs resolve.
    @raise BadRequestBody: see L{parse_xml}; an empty body; a known report
        missing what it requires (a filter, hrefs, a time-range) or with a
        bad value (sync-level, limit, date-time, href).
    @raise UnsupportedReport: a root element not in L{REPORT_NAMES}.
    """
    root = parse_xml(body, max_size=max_size)
    if root is None:
        raise BadRequestBody("empty REPORT body")
    parse = _REPORTS.get(root.tag)
    if parse is None:
        raise UnsupportedReport(root.tag)
    return parse(root, base)
