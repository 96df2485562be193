"""
The live properties of every kind of DAV resource gk serves, and how a
PROPFIND request (named properties, allprop, propname) selects among them
and a collection's dead properties.

Each C{*_props} function returns every live property of one resource as
a mapping from Clark name to value (see L{gk.dav.multistatus.PropValue}).
They are cheap, pure, and share the constant elements (privilege sets,
report sets) between calls: nothing mutates a value once built.  What
needs I/O (the collection, the objects, the quota) is loaded by the caller
and passed in.  C{calendar-data} and C{address-data} are not properties
here: clients get them through REPORT.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from xml.etree.ElementTree import Element, SubElement

from gk.dav import paths
from gk.dav.multistatus import (
    Multistatus,
    PropValue,
    href_element,
    hrefs_element,
    privilege_set,
    resourcetype,
    supported_calendar_component_set,
    supported_report_set,
)
from gk.dav.xmlbody import BadRequestBody, PropFind, parse_xml

# The Clark-name helpers, re-exported: the DAV modules use them as P.d(...).
from gk.dav.xmlbody import c as c
from gk.dav.xmlbody import cs as cs
from gk.dav.xmlbody import d as d
from gk.dav.xmlbody import ical as ical
from gk.dav.xmlbody import r as r
from gk.storage.dav_store import CollectionInfo, ObjectInfo, StoredObject, sync_token

Props = dict[str, PropValue]


#: What allprop returns besides dead properties (RFC 4918 14.2: the live
#: properties RFC 4918 defines; the expensive and the CalDAV ones only on
#: request), plus current-user-principal: HTTP libraries that follow the
#: /.well-known redirect drop the PROPFIND body, turning the client's
#: question into allprop, and this is the answer it needs.
ALLPROP_NAMES = frozenset(
    {
        d("current-user-principal"),
        d("resourcetype"),
        d("displayname"),
        d("getetag"),
        d("getcontenttype"),
        d("getcontentlength"),
        d("getlastmodified"),
        d("creationdate"),
    }
)

#: Live properties a dead value stored by PROPPATCH replaces (writable,
#: but with a computed default).
OVERRIDABLE = frozenset({c("schedule-calendar-transp"), c("schedule-default-calendar-URL")})

# -- shared values -------------------------------------------------------------------

_EXPAND = d("expand-property")
_PRINCIPAL_REPORTS = supported_report_set(
    [_EXPAND, d("principal-property-search"), d("principal-search-property-set")]
)
_CALENDAR_REPORTS = supported_report_set(
    [
        c("calendar-query"),
        c("calendar-multiget"),
        c("free-busy-query"),
        d("sync-collection"),
        _EXPAND,
    ]
)
_INBOX_REPORTS = supported_report_set(
    [c("calendar-query"), c("calendar-multiget"), d("sync-collection"), _EXPAND]
)
_ADDRESSBOOK_REPORTS = supported_report_set(
    [r("addressbook-query"), r("addressbook-multiget"), d("sync-collection"), _EXPAND]
)
_NO_REPORTS = supported_report_set([])

_READ = [d("read"), d("read-current-user-privilege-set")]
_READ_ONLY = privilege_set(_READ)
_HOME_PRIVILEGES = privilege_set([*_READ, d("bind"), d("unbind")])
_OWNER = [
    d("all"),
    d("read"),
    d("write"),
    d("write-properties"),
    d("write-content"),
    d("bind"),
    d("unbind"),
    d("read-current-user-privilege-set"),
]
_COLLECTION_PRIVILEGES = privilege_set(_OWNER)
_CALENDAR_PRIVILEGES = privilege_set([*_OWNER, c("read-free-busy")])
_OBJECT_PRIVILEGES = privilege_set(
    [d("read"), d("write"), d("write-content"), d("read-current-user-privilege-set")]
)
_INBOX_PRIVILEGES = privilege_set(
    [*_READ, d("unbind"), d("write-properties"), c("schedule-deliver")]
)
_OUTBOX_PRIVILEGES = privilege_set(
    [*_READ, c("schedule-send"), c("schedule-send-invite"), c("schedule-send-reply"),
     c("schedule-send-freebusy")]
)  # fmt: skip

_COLLECTION = resourcetype(d("collection"))
_PRINCIPAL = resourcetype(d("collection"), d("principal"))
_CALENDAR = resourcetype(d("collection"), c("calendar"))
_ADDRESSBOOK = resourcetype(d("collection"), r("addressbook"))
_INBOX = resourcetype(d("collection"), c("schedule-inbox"))
_OUTBOX = resourcetype(d("collection"), c("schedule-outbox"))
_PLAIN = resourcetype()


def _calendar_data_types() -> Element:
    element = Element(c("supported-calendar-data"))
    SubElement(element, c("calendar-data"), {"content-type": "text/calendar", "version": "2.0"})
    return element


def _address_data_types() -> Element:
    element = Element(r("supported-address-data"))
    for version in ("3.0", "4.0"):
        SubElement(
            element, r("address-data-type"), {"content-type": "text/vcard", "version": version}
        )
    return element


def _opaque() -> Element:
    element = Element(c("schedule-calendar-transp"))
    SubElement(element, c("opaque"))
    return element


_CALENDAR_DATA_TYPES = _calendar_data_types()
_ADDRESS_DATA_TYPES = _address_data_types()
_OPAQUE = _opaque()
_USER_TYPE = "INDIVIDUAL"


def http_date(moment: datetime) -> str:
    """An aware datetime as an HTTP date (RFC 9110 5.6.7)."""
    return email.utils.format_datetime(moment, usegmt=True)


def iso_date(moment: datetime) -> str:
    """An aware datetime as RFC 3339, for DAV:creationdate."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Quota:
    """Bytes used by the account (mail and DAV) and its limit (L{None}: none)."""

    used: int
    limit: int | None


def _common(user: str) -> Props:
    """What every resource says about the signed-in C{user}."""
    name = d("current-user-principal")
    return {name: href_element(name, paths.principal_path(user))}


def _quota(props: Props, quota: Quota | None) -> None:
    if quota is None:
        return
    props[d("quota-used-bytes")] = str(quota.used)
    if quota.limit is not None:
        props[d("quota-available-bytes")] = str(max(0, quota.limit - quota.used))


# -- resources --------------------------------------------------------------------


def root_props(user: str) -> Props:
    """C{/dav/} and the other plain containers (principals, home sets)."""
    return {
        **_common(user),
        d("resourcetype"): _COLLECTION,
        d("displayname"): "gk",
        d("principal-collection-set"): hrefs_element(
            d("principal-collection-set"), [paths.principals_path()]
        ),
        d("current-user-privilege-set"): _READ_ONLY,
        d("supported-report-set"): _PRINCIPAL_REPORTS,
    }


def principal_props(email: str, user: str, addresses: Iterable[str] = ()) -> Props:
    """
    A user's principal, as seen by C{user} (the signed-in user).

    @param addresses: the user's other mail addresses (aliases).
    """
    principal = paths.principal_path(email)
    mail = [email, *(a for a in addresses if a != email)]
    return {
        **_common(user),
        d("resourcetype"): _PRINCIPAL,
        d("displayname"): email,
        d("principal-URL"): href_element(d("principal-URL"), principal),
        d("principal-collection-set"): hrefs_element(
            d("principal-collection-set"), [paths.principals_path()]
        ),
        d("owner"): href_element(d("owner"), principal),
        d("group-membership"): None,
        d("alternate-URI-set"): None,
        c("calendar-home-set"): href_element(
            c("calendar-home-set"), paths.home_path("calendar", email)
        ),
        r("addressbook-home-set"): href_element(
            r("addressbook-home-set"), paths.home_path("addressbook", email)
        ),
        c("calendar-user-address-set"): hrefs_element(
            c("calendar-user-address-set"), [*(f"mailto:{a}" for a in mail), principal]
        ),
        cs("email-address-set"): _email_set(mail),
        c("schedule-inbox-URL"): href_element(c("schedule-inbox-URL"), paths.inbox_path(email)),
        c("schedule-outbox-URL"): href_element(c("schedule-outbox-URL"), paths.outbox_path(email)),
        c("calendar-user-type"): _USER_TYPE,
        d("current-user-privilege-set"): _READ_ONLY,
        d("supported-report-set"): _PRINCIPAL_REPORTS,
    }


#: What another user's principal shows (principal-property-search results).
PUBLIC_PRINCIPAL_PROPS = frozenset(
    {
        d("resourcetype"),
        d("displayname"),
        d("principal-URL"),
        c("calendar-user-address-set"),
        cs("email-address-set"),
        c("calendar-user-type"),
        c("schedule-inbox-URL"),
        d("current-user-principal"),
    }
)


def _email_set(addresses: Iterable[str]) -> Element:
    element = Element(cs("email-address-set"))
    for address in addresses:
        SubElement(element, cs("email-address")).text = address
    return element


def home_props(kind: paths.CollectionKind, user: str, quota: Quota | None) -> Props:
    """The signed-in user's calendar or address book home."""
    props = {
        **_common(user),
        d("resourcetype"): _COLLECTION,
        d("displayname"): "Calendars" if kind == "calendar" else "Address books",
        d("owner"): href_element(d("owner"), paths.principal_path(user)),
        d("current-user-privilege-set"): _HOME_PRIVILEGES,
        d("supported-report-set"): _PRINCIPAL_REPORTS,
    }
    _quota(props, quota)
    return props


def collection_props(
    info: CollectionInfo, user: str, max_resource_size: int, quota: Quota | None
) -> Props:
    """A calendar, an address book or the schedule inbox (by C{info.kind})."""
    token = sync_token(info)
    props: Props = {
        **_common(user),
        d("displayname"): info.displayname,
        d("owner"): href_element(d("owner"), paths.principal_path(user)),
        d("sync-token"): token,
        cs("getctag"): token,
        d("creationdate"): iso_date(info.created),
    }
    _quota(props, quota)
    if info.kind == "addressbook":
        props.update(
            {
                d("resourcetype"): _ADDRESSBOOK,
                r("addressbook-description"): info.description,
                r("supported-address-data"): _ADDRESS_DATA_TYPES,
                r("max-resource-size"): str(max_resource_size),
                d("supported-report-set"): _ADDRESSBOOK_REPORTS,
                d("current-user-privilege-set"): _COLLECTION_PRIVILEGES,
            }
        )
        return props
    props.update(
        {
            c("supported-calendar-component-set"): supported_calendar_component_set(
                info.components or ("VEVENT", "VTODO", "VJOURNAL")
            ),
            c("supported-calendar-data"): _CALENDAR_DATA_TYPES,
            c("max-resource-size"): str(max_resource_size),
        }
    )
    if info.kind == "schedule-inbox":
        props.update(
            {
                d("resourcetype"): _INBOX,
                d("supported-report-set"): _INBOX_REPORTS,
                d("current-user-privilege-set"): _INBOX_PRIVILEGES,
            }
        )
        return props
    props.update(
        {
            d("resourcetype"): _CALENDAR,
            c("calendar-description"): info.description,
            d("supported-report-set"): _CALENDAR_REPORTS,
            d("current-user-privilege-set"): _CALENDAR_PRIVILEGES,
            c("schedule-calendar-transp"): _OPAQUE,
        }
    )
    if info.color is not None:
        props[ical("calendar-color")] = info.color
    if info.sort_order is not None:
        props[ical("calendar-order")] = str(info.sort_order)
    if info.timezone is not None:
        props[c("calendar-timezone")] = info.timezone
    return props


def inbox_extra(default_calendar: str | None) -> Props:
    """The inbox's C{schedule-default-calendar-URL} (RFC 6638 9.2), when there is one."""
    if default_calendar is None:
        return {}
    name = c("schedule-default-calendar-URL")
    return {name: href_element(name, default_calendar)}


def outbox_props(user: str) -> Props:
    return {
        **_common(user),
        d("resourcetype"): _OUTBOX,
        d("displayname"): "Outbox",
        d("owner"): href_element(d("owner"), paths.principal_path(user)),
        d("current-user-privilege-set"): _OUTBOX_PRIVILEGES,
        d("supported-report-set"): _NO_REPORTS,
    }


def content_type(kind: str, component: str) -> str:
    """The Content-Type of a stored resource (C{kind}: the collection's)."""
    if kind == "addressbook":
        return "text/vcard; charset=utf-8"
    return f"text/calendar; charset=utf-8; component={component.lower()}"


def object_props(kind: str, info: ObjectInfo | StoredObject) -> Props:
    """
    A calendar object resource or vCard, from its index entry (without
    current-user-principal: a Depth 1 allprop need not repeat it per member).
    """
    return {
        d("resourcetype"): _PLAIN,
        d("getetag"): info.etag,
        d("getcontenttype"): content_type(kind, info.component),
        d("getcontentlength"): str(info.size),
        d("getlastmodified"): http_date(info.modified),
        d("current-user-privilege-set"): _OBJECT_PRIVILEGES,
        d("supported-report-set"): _NO_REPORTS,
    }


# -- dead properties and selection -----------------------------------------------------


def dead_elements(dead: Mapping[str, str]) -> dict[str, Element]:
    """
    A collection's stored dead properties as elements, keyed by Clark name
    (one that no longer parses, or whose tag changed, is left out).
    """
    elements = {}
    for name, xml in dead.items():
        try:
            element = parse_xml(xml.encode("utf-8"), max_size=len(xml.encode("utf-8")) + 1)
        except BadRequestBody:
            continue
        if element is not None and element.tag == name:
            elements[name] = element
    return elements


def with_dead(live: Props, dead: Mapping[str, str]) -> tuple[Props, dict[str, Element]]:
    """
    Merge stored dead properties: the ones in L{OVERRIDABLE} replace the
    live default; the others are returned apart.
    """
    elements = dead_elements(dead) if dead else {}
    for name in OVERRIDABLE & elements.keys():
        live[name] = elements.pop(name)
    return live, elements


def add_response(
    multistatus: Multistatus,
    href: str,
    live: Mapping[str, PropValue],
    request: PropFind,
    dead: Mapping[str, Element] | None = None,
    hidden: Iterable[str] = (),
) -> None:
    """
    One PROPFIND response for the resource at C{href}.

    @param hidden: live property names to answer as if unknown (404).
    """
    dead = dead or {}
    hide = frozenset(hidden)
    if request.kind == "propname":
        names = [n for n in live if n not in hide] + list(dead)
        multistatus.add(href, dict.fromkeys(names))
        return
    if request.kind == "allprop":
        wanted = [n for n in live if n in ALLPROP_NAMES or n in request.include]
        found: dict[str, PropValue] = {n: live[n] for n in wanted if n not in hide}
        found.update(dead)
        missing = [n for n in request.include if n not in found]
        multistatus.add(href, found, missing)
        return
    found = {}
    missing = []
    for name in request.names:
        if name in live and name not in hide:
            found[name] = live[name]
        elif name in dead:
            found[name] = dead[name]
        else:
            missing.append(name)
    multistatus.add(href, found, missing)
