"""
WebDAV response bodies: 207 multistatus (RFC 4918 13, 14.16), with a
sync-token for sync-collection (RFC 6578 3.2), and precondition or
postcondition error bodies (RFC 4918 16), plus builders for the property
values DAV servers return all the time.

Property values are given as L{xml.etree.ElementTree.Element}s (the
property element itself), as text, or as L{None} for an empty element.
They are serialized here, not by ElementTree: names are written with
fixed prefixes (C{d:} for DAV:, C{cal:} CalDAV, C{card:} CardDAV, C{cs:}
calendarserver.org, C{ical:} apple.com/ns/ical), declared once on the root
element; other namespaces get an C{xmlns:xN} declaration on the element
that needs it.  Characters XML 1.0 cannot carry become U+FFFD and carriage
returns are written as C{&#13;}, so iCalendar CRLFs survive a client's
parser and the output is always well-formed UTF-8.

Hrefs are given as decoded paths (or absolute URLs such as C{mailto:}
ones) and percent-encoded here, segment by segment: C{/} and the
characters a path segment may hold stay, a trailing slash is kept.

L{Multistatus} can be emptied as it grows (L{Multistatus.drain}), so a
large PROPFIND need not be held in memory twice.  Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import TypeAlias
from urllib.parse import quote
from xml.etree.ElementTree import Element, SubElement

from gk.dav.xmlbody import APPLE_ICAL, CALDAV, CALENDARSERVER, CARDDAV, DAV

PropValue: TypeAlias = Element | str | None

_XML_NS = "http://www.w3.org/XML/1998/namespace"

#: The fixed prefixes, declared on every document's root element.
PREFIXES: Mapping[str, str] = {
    DAV: "d",
    CALDAV: "cal",
    CARDDAV: "card",
    CALENDARSERVER: "cs",
    APPLE_ICAL: "ical",
}
_ROOT_SCOPE: dict[str, str] = {**PREFIXES, _XML_NS: "xml"}
_DECLARATIONS = "".join(f' xmlns:{p}="{ns}"' for ns, p in PREFIXES.items())
_PROLOG = '<?xml version="1.0" encoding="utf-8"?>\n'

# XML 1.0 (fifth edition) 2.3 names, without colons.
_NAME_START = (
    "A-Z_a-z\xc0-\xd6\xd8-\xf6\xf8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NCNAME = re.compile(f"[{_NAME_START}][{_NAME_START}\\-.0-9\xb7\u0300-\u036f\u203f\u2040]*")
_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    """C{text} escaped as XML character data (attribute-safe too)."""
    if _INVALID.search(text):
        text = _INVALID.sub("\ufffd", text)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _attribute(value: str) -> str:
    return _clean(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def _split(name: str) -> tuple[str, str]:
    """(namespace, local name) of a Clark name; checks the local name."""
    namespace, local = "", name
    if name[:1] == "{":
        namespace, brace, local = name[1:].partition("}")
        if not brace:
            raise ValueError(f"bad element name {name!r}")
    if not _NCNAME.fullmatch(local):
        raise ValueError(f"bad element name {name!r}")
    return namespace, local


@lru_cache(maxsize=4096)
def _root_qname(name: str) -> str | None:
    """C{prefix:local} for a name whose namespace is declared on the root."""
    namespace, local = _split(name)
    if not namespace:
        return local
    prefix = PREFIXES.get(namespace)
    return f"{prefix}:{local}" if prefix is not None else None


def _qname(name: str, scope: dict[str, str], declare: list[str]) -> tuple[str, dict[str, str]]:
    """
    C{prefix:local} for C{name} within C{scope} (namespace to prefix),
    adding to C{declare} the declarations needed and returning the scope
    for the element's children.
    """
    namespace, local = _split(name)
    if not namespace:
        return local, scope
    prefix = scope.get(namespace)
    if prefix is None:
        prefix = PREFIXES.get(namespace) or f"x{len(scope)}"
        scope = {**scope, namespace: prefix}
        declare.append(f' xmlns:{prefix}="{_attribute(namespace)}"')
    return f"{prefix}:{local}", scope


def _write(element: Element, out: list[str], scope: dict[str, str]) -> None:
    """
    Append C{element} (and its tail) to C{out}, namespaces as in C{scope};
    comments and processing instructions are left out (their tails kept).
    """
    tag = element.tag
    if isinstance(tag, str):
        name = _root_qname(tag) if scope is _ROOT_SCOPE and not element.attrib else None
        inner = scope
        if name is None:
            declare: list[str] = []
            name, inner = _qname(tag, scope, declare)
            for key, value in element.attrib.items():
                attribute, inner = _qname(key, inner, declare)
                declare.append(f' {attribute}="{_attribute(value)}"')
            out.append(f"<{name}{''.join(declare)}")
        else:
            out.append(f"<{name}")
        if element.text or len(element):
            out.append(">")
            if element.text:
                out.append(_clean(element.text))
            for child in element:
                _write(child, out, inner)
            out.append(f"</{name}>")
        else:
            out.append("/>")
    if element.tail:
        out.append(_clean(element.tail))


def _write_empty(name: str, out: list[str]) -> None:
    qualified = _root_qname(name)
    if qualified is None:
        _write(Element(name), out, _ROOT_SCOPE)
    else:
        out.append(f"<{qualified}/>")


@lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    try:
        line = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"
    except ValueError:
        line = f"HTTP/1.1 {status}"
    return f"<d:status>{line}</d:status>"


def encode_href(path: str) -> str:
    """
    Percent-encode a decoded path (or URL) for a C{DAV:href}: everything
    but C{/} and the characters RFC 3986 allows in a path segment, so
    spaces, C{%}, C{#}, C{?} and non-ASCII (as UTF-8) are encoded.

    @raise UnicodeEncodeError: a lone surrogate in C{path}.
    """
    return quote(path, safe="/:@!$&'()*+,;=~")


def _error(condition: str | Element) -> Element:
    if isinstance(condition, Element):
        return condition if condition.tag == f"{{{DAV}}}error" else _wrap_error(condition)
    return _wrap_error(Element(condition))


def _wrap_error(condition: Element) -> Element:
    error = Element(f"{{{DAV}}}error")
    error.append(condition)
    return error


def _propstat_error(
    status: int, errors: Mapping[int, str | Element] | None, out: list[str]
) -> None:
    if errors and status in errors:
        _write(_error(errors[status]), out, _ROOT_SCOPE)


class Multistatus:
    """
    A 207 body being built: one C{DAV:response} per L{add} or L{add_status},
    in call order, then the optional C{DAV:sync-token}.

    Either call L{to_bytes} once at the end, or hand out the document
    piecewise: L{drain} returns what was added since the last call (the
    first time starting with the XML declaration and root element), and
    L{finish} the rest with the closing tag.

    @ivar sync_token: written before the closing tag when not L{None}.
    """

    def __init__(self, sync_token: str | None = None) -> None:
        self.sync_token = sync_token
        self._out: list[str] = [f"{_PROLOG}<d:multistatus{_DECLARATIONS}>"]
        self._count = 0
        self._drained = False
        self._finished = False

    def __len__(self) -> int:
        """The number of responses added so far."""
        return self._count

    def add(
        self,
        href: str,
        found: Mapping[str, PropValue] | None = None,
        missing: Iterable[str] = (),
        *,
        other: Mapping[int, Iterable[str]] | None = None,
        errors: Mapping[int, str | Element] | None = None,
    ) -> None:
        """
        A response with propstats: C{found} (name to value) under 200,
        C{missing} names under 404, C{other} names under their status
        (403, 409, 424, 507 ...; empty elements, 200 ones written before
        C{found}), statuses in ascending order.  A response
        with no property at all gets a plain 200 status instead.

        @param href: the resource's decoded path; see L{encode_href}.
        @param found: an L{Element} value is the property element itself
            (its tag must be the key); a C{str} is the property's text;
            L{None} is an empty property element.
        @param errors: a precondition to report in the propstat of a
            status, as a Clark name or an element (RFC 4918 14.5).
        @raise ValueError: an element's tag differs from its key, or a
            name is no valid Clark name.
        """
        self._check_open()
        out = [f"<d:response><d:href>{_clean(encode_href(href))}</d:href>"]
        groups = {status: list(names) for status, names in (other or {}).items()}
        groups.setdefault(404, []).extend(missing)
        succeeded = groups.pop(200, [])
        if found or succeeded:
            out.append("<d:propstat><d:prop>")
            for name in succeeded:
                _write_empty(name, out)
            for name, value in (found or {}).items():
                if value is None:
                    _write_empty(name, out)
                elif isinstance(value, str):
                    qualified = _root_qname(name)
                    if qualified is None:
                        element = Element(name)
                        element.text = value
                        _write(element, out, _ROOT_SCOPE)
                    else:
                        out.append(f"<{qualified}>{_clean(value)}</{qualified}>")
                else:
                    if value.tag != name:
                        raise ValueError(f"value of {name!r} is a {value.tag!r} element")
                    _write(value, out, _ROOT_SCOPE)
            out.append(f"</d:prop>{_status_line(200)}")
            _propstat_error(200, errors, out)
            out.append("</d:propstat>")
        for status in sorted(groups):
            names = groups[status]
            if not names:
                continue
            out.append("<d:propstat><d:prop>")
            for name in names:
                _write_empty(name, out)
            out.append(f"</d:prop>{_status_line(status)}")
            _propstat_error(status, errors, out)
            out.append("</d:propstat>")
        if not (found or succeeded or any(groups.values())):
            out.append(_status_line(200))
        out.append("</d:response>")
        self._out.append("".join(out))
        self._count += 1

    def add_status(
        self,
        href: str,
        status: int,
        *,
        error: str | Element | None = None,
        description: str | None = None,
    ) -> None:
        """
        A response with a plain status: 404 for a multiget href that names
        nothing, or for a member deleted since a sync-token; 507 with error
        C{{DAV:}number-of-matches-within-limits} for a truncated result.

        @param error: a condition (Clark name or element), or a whole
            C{DAV:error} element.
        """
        self._check_open()
        out = [f"<d:response><d:href>{_clean(encode_href(href))}</d:href>", _status_line(status)]
        if error is not None:
            _write(_error(error), out, _ROOT_SCOPE)
        if description is not None:
            out.append(f"<d:responsedescription>{_clean(description)}</d:responsedescription>")
        out.append("</d:response>")
        self._out.append("".join(out))
        self._count += 1

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("multistatus already finished")

    def drain(self) -> bytes:
        """The document so far, not returned before; the builder stays open."""
        self._check_open()
        self._drained = True
        data = "".join(self._out).encode("utf-8")
        self._out = []
        return data

    def finish(self) -> bytes:
        """The rest of the document, closing tag included; nothing may follow."""
        self._check_open()
        out = self._out
        if self.sync_token is not None:
            out.append(f"<d:sync-token>{_clean(self.sync_token)}</d:sync-token>")
        out.append("</d:multistatus>\n")
        self._finished = True
        data = "".join(out).encode("utf-8")
        self._out = []
        return data

    def to_bytes(self) -> bytes:
        """
        The whole document.

        @raise RuntimeError: after L{drain} or L{finish}.
        """
        if self._drained or self._finished:
            raise RuntimeError("multistatus already handed out")
        return self.finish()


def serialize(element: Element) -> bytes:
    """
    C{element} as a standalone UTF-8 XML fragment (no declaration), each
    namespace declared where first used, with the fixed prefixes.
    """
    out: list[str] = []
    _write(element, out, {_XML_NS: "xml"})
    return "".join(out).encode("utf-8")


def error_element(
    condition: str,
    *,
    namespace: str = DAV,
    children: Iterable[Element] = (),
    text: str | None = None,
) -> Element:
    """
    A C{DAV:error} element holding one condition element, e.g.
    C{error_element("valid-calendar-data", namespace=CALDAV)}.

    @param condition: a local name in C{namespace}, or a Clark name.
    @param children: content of the condition (e.g. a C{DAV:href}).
    """
    name = condition if condition.startswith("{") else f"{{{namespace}}}{condition}"
    error = Element(f"{{{DAV}}}error")
    inner = SubElement(error, name)
    inner.text = text
    inner.extend(children)
    return error


def error_body(
    condition: str,
    *,
    namespace: str = DAV,
    children: Iterable[Element] = (),
    text: str | None = None,
) -> bytes:
    """
    A complete precondition/postcondition body (RFC 4918 16), as for
    L{error_element}: C{<d:error><cal:valid-calendar-data/></d:error>}.
    """
    out = [f"{_PROLOG}<d:error{_DECLARATIONS}>"]
    for inner in error_element(condition, namespace=namespace, children=children, text=text):
        _write(inner, out, _ROOT_SCOPE)
    out.append("</d:error>\n")
    return "".join(out).encode("utf-8")


# --- property values --------------------------------------------------------


def text_element(name: str, text: str) -> Element:
    """C{<name>text</name>}."""
    element = Element(name)
    element.text = text
    return element


def href(path: str) -> Element:
    """A C{DAV:href} of the decoded C{path}, percent-encoded."""
    return text_element(f"{{{DAV}}}href", encode_href(path))


def href_element(name: str, path: str) -> Element:
    """Property C{name} holding one href, e.g. C{DAV:current-user-principal}."""
    element = Element(name)
    element.append(href(path))
    return element


def hrefs_element(name: str, paths: Iterable[str]) -> Element:
    """Property C{name} holding an href per path, e.g. C{CALDAV:calendar-home-set}."""
    element = Element(name)
    element.extend(href(path) for path in paths)
    return element


def resourcetype(*types: str) -> Element:
    """C{DAV:resourcetype} with an empty element per type (none: a plain resource)."""
    element = Element(f"{{{DAV}}}resourcetype")
    element.extend(Element(t) for t in types)
    return element


def supported_report_set(reports: Iterable[str]) -> Element:
    """C{DAV:supported-report-set} (RFC 3253 3.1.5) listing C{reports} (Clark names)."""
    element = Element(f"{{{DAV}}}supported-report-set")
    for report in reports:
        wrapper = SubElement(SubElement(element, f"{{{DAV}}}supported-report"), f"{{{DAV}}}report")
        SubElement(wrapper, report)
    return element


def privilege_set(
    privileges: Iterable[str], name: str = f"{{{DAV}}}current-user-privilege-set"
) -> Element:
    """Property C{name} (RFC 3744 5.4) with a C{DAV:privilege} per Clark name."""
    element = Element(name)
    for privilege in privileges:
        SubElement(SubElement(element, f"{{{DAV}}}privilege"), privilege)
    return element


def supported_calendar_component_set(components: Iterable[str]) -> Element:
    """C{CALDAV:supported-calendar-component-set} (RFC 4791 5.2.3), e.g. C{["VEVENT"]}."""
    element = Element(f"{{{CALDAV}}}supported-calendar-component-set")
    for component in components:
        SubElement(element, f"{{{CALDAV}}}comp", name=component)
    return element
