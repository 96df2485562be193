"""
Setting collection properties: PROPPATCH (RFC 4918 9.2), MKCALENDAR (RFC
4791 5.3.1) and extended MKCOL (RFC 5689).

Every instruction is checked first (L{plan}); only when all of them can be
done is anything written, in one storage call, so a request either
changes everything it asks or nothing (failed properties get their
status, the others 424).  Writable live properties map to the
collection's columns; the live properties gk computes are protected (403
C{cannot-modify-protected-property}); anything else is kept as a dead
property, as XML, within L{MAX_DEAD_PROPERTIES} per collection of at most
L{MAX_DEAD_PROPERTY_SIZE} bytes each (507 beyond).

Decisions for MKCOL: a body-less MKCOL in a home creates a collection of
the home's kind (a calendar in the calendar home, an address book in the
address book home), as some clients expect; an extended MKCOL must ask for
the home's kind (403 C{valid-resourcetype} otherwise); MKCALENDAR only
works in the calendar home (403 C{calendar-collection-location-ok}).
C{inbox} and C{outbox} are never calendar names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from gk.dav import paths
from gk.dav import properties as P
from gk.dav.context import MAX_DEAD_PROPERTIES, MAX_DEAD_PROPERTY_SIZE, DavContext
from gk.dav.exchange import Answer, DavError, DavRequest, bad_body, error_for, xml_answer
from gk.dav.lookup import collection_info
from gk.dav.multistatus import Multistatus, serialize
from gk.dav.xmlbody import (
    BadRequestBody,
    Operation,
    href_to_path,
    parse_mkcol,
    parse_proppatch,
    text_of,
)
from gk.storage import dav_store

#: Live properties computed by gk: PROPPATCH cannot change them.
PROTECTED = frozenset(
    {
        *(P.d(n) for n in (
            "resourcetype", "getetag", "getcontenttype", "getcontentlength", "getlastmodified",
            "creationdate", "sync-token", "current-user-principal", "current-user-privilege-set",
            "owner", "supported-report-set", "quota-used-bytes", "quota-available-bytes",
            "principal-URL", "principal-collection-set", "group-membership", "alternate-URI-set",
            "lockdiscovery", "supportedlock", "acl", "acl-restrictions", "inherited-acl-set",
            "supported-privilege-set", "getcontentlanguage",
        )),
        *(P.c(n) for n in (
            "supported-calendar-data", "max-resource-size", "min-date-time", "max-date-time",
            "max-instances", "max-attendees-per-instance", "calendar-home-set",
            "calendar-user-address-set", "schedule-inbox-URL", "schedule-outbox-URL",
            "calendar-user-type", "calendar-data",
        )),
        *(P.r(n) for n in (
            "supported-address-data", "max-resource-size", "addressbook-home-set", "address-data",
        )),
        P.cs("getctag"),
        P.cs("email-address-set"),
    }
)  # fmt: skip

#: Components a calendar may be made to hold.
CALENDAR_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"})

_MAX_TEXT = 4096
_MAX_TIMEZONE = 64 * 1024
_MAX_COLOR = 32
_INT32 = 2**31

_PROTECTED_ERROR = P.d("cannot-modify-protected-property")


@dataclass
class Plan:
    """
    What a set of instructions will do: column C{changes}, C{dead}
    properties (XML, L{None} to remove), and every property's status.
    """

    changes: dict[str, Any] = field(default_factory=dict)
    dead: dict[str, str | None] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(status == 200 for status in self.statuses.values())

    def fail(self, name: str, status: int) -> None:
        self.statuses[name] = status


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _text(element: Element | None, limit: int = _MAX_TEXT) -> str:
    value = text_of(element) if element is not None else ""
    if len(value) > limit:
        raise _Refused(409)
    return value


def _color(element: Element | None) -> str | None:
    value = _text(element).strip()
    if len(value) > _MAX_COLOR:
        raise _Refused(409)
    return value or None


def _order(element: Element | None) -> int | None:
    value = _text(element).strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _Refused(409) from None
    if not -_INT32 <= number < _INT32:
        raise _Refused(409)
    return number


def _timezone(element: Element | None) -> str | None:
    value = _text(element, _MAX_TIMEZONE)
    if not value.strip():
        return None
    if "BEGIN:VCALENDAR" not in value.upper() or "BEGIN:VTIMEZONE" not in value.upper():
        raise _Refused(409)
    return value


def _components(element: Element | None) -> str:
    names = [
        (comp.get("name") or "").upper()
        for comp in (element if element is not None else [])
        if comp.tag == P.c("comp")
    ]
    if not names or any(n not in CALENDAR_COMPONENTS for n in names):
        raise _Refused(403)
    return ",".join(dict.fromkeys(names))


def _transp(element: Element | None) -> str:
    children = {child.tag for child in (element if element is not None else [])}
    if children not in ({P.c("opaque")}, {P.c("transparent")}):
        raise _Refused(409)
    assert element is not None
    return serialize(element).decode("utf-8")


def _default_calendar(owner: str) -> Any:
    def check(element: Element | None) -> str:
        hrefs = list(element.iterfind(P.d("href"))) if element is not None else []
        if len(hrefs) != 1:
            raise _Refused(409)
        try:
            target = paths.parse_decoded(paths_of(hrefs[0].text or ""))
        except (paths.BadPath, paths.NotInLayout):
            raise _Refused(409) from None
        if not isinstance(target, paths.Collection) or target.owner != owner:
            raise _Refused(409)
        assert element is not None
        return serialize(element).decode("utf-8")

    return check


def paths_of(href: str) -> str:
    """A C{DAV:href}'s decoded path (absolute URLs reduced to their path)."""
    try:
        return href_to_path(href)
    except BadRequestBody:
        raise _Refused(409) from None


# Writable live properties by collection kind: name -> (column, parser).
_COLUMNS: dict[str, dict[str, tuple[str, Any]]] = {
    dav_store.CALENDAR: {
        P.d("displayname"): ("displayname", _text),
        P.c("calendar-description"): ("description", _text),
        P.ical("calendar-color"): ("color", _color),
        P.ical("calendar-order"): ("sort_order", _order),
        P.c("calendar-timezone"): ("timezone", _timezone),
    },
    dav_store.ADDRESSBOOK: {
        P.d("displayname"): ("displayname", _text),
        P.r("addressbook-description"): ("description", _text),
    },
    dav_store.SCHEDULE_INBOX: {P.d("displayname"): ("displayname", _text)},
}
_REMOVED: dict[str, Any] = {"displayname": "", "description": ""}


def plan(
    kind: str,
    operations: Sequence[Operation],
    owner: str,
    existing_dead: Mapping[str, str],
    *,
    creating: bool = False,
) -> Plan:
    """
    Check C{operations} on a collection of C{kind} (C{creating}: by
    MKCALENDAR/MKCOL, where the component set may still be chosen).
    """
    result = Plan()
    columns = _COLUMNS.get(kind, {})
    dead_checks: dict[str, Any] = {}
    if kind == dav_store.CALENDAR:
        dead_checks[P.c("schedule-calendar-transp")] = _transp
    if kind == dav_store.SCHEDULE_INBOX:
        dead_checks[P.c("schedule-default-calendar-URL")] = _default_calendar(owner)
    for action, name, element in operations:
        result.statuses[name] = 200
        try:
            if name == P.c("supported-calendar-component-set") and creating:
                if kind != dav_store.CALENDAR or action == "remove":
                    raise _Refused(403)
                result.changes["components"] = _components(element)
            elif name in columns:
                column, parse = columns[name]
                result.changes[column] = (
                    _REMOVED.get(column) if action == "remove" else parse(element)
                )
            elif name in PROTECTED or name == P.c("supported-calendar-component-set"):
                raise _Refused(403)
            elif action == "remove":
                result.dead[name] = None
            else:
                assert element is not None
                check = dead_checks.get(name)
                xml = check(element) if check else serialize(element).decode("utf-8")
                if len(xml.encode("utf-8")) > MAX_DEAD_PROPERTY_SIZE:
                    raise _Refused(507)
                result.dead[name] = xml
        except _Refused as refused:
            result.fail(name, refused.status)
    kept = {k for k in existing_dead if result.dead.get(k, "") is not None}
    added = {k for k, v in result.dead.items() if v is not None}
    if len(kept | added) > MAX_DEAD_PROPERTIES:
        for name in added - set(existing_dead):
            result.fail(name, 507)
    return result


def _statuses(result: Plan) -> dict[int, list[str]]:
    """Failed properties under their status, the rest under 424 (or all under 200)."""
    groups: dict[int, list[str]] = {}
    failed = not result.ok
    for name, status in result.statuses.items():
        groups.setdefault(424 if failed and status == 200 else status, []).append(name)
    return groups


# -- PROPPATCH ---------------------------------------------------------------------------


async def proppatch(ctx: DavContext, req: DavRequest) -> Answer:
    """PROPPATCH: all or nothing, a 207 naming each property's outcome."""
    try:
        update = parse_proppatch(req.xml_body(ctx.max_xml_body), max_size=ctx.max_xml_body)
    except BadRequestBody as e:
        raise bad_body(e) from None
    target = req.target
    if isinstance(target, paths.Collection | paths.Inbox):
        info = await collection_info(ctx, req.account, target)
        result = plan(info.kind, update.operations, req.user, info.dead_properties)
    else:
        # Nothing else stores properties: every instruction is refused.
        result = Plan(statuses={name: 403 for _, name, _ in update.operations})
        if isinstance(target, paths.Resource):
            await _check_exists(ctx, req, target)
    if result.ok and isinstance(target, paths.Collection | paths.Inbox):
        changes = dict(result.changes)
        if result.dead:
            changes["dead_properties"] = result.dead
        service = ctx.inbox if isinstance(target, paths.Inbox) else ctx.service(target.kind)
        name = paths.INBOX if isinstance(target, paths.Inbox) else target.name
        if changes:
            try:
                await service.update_collection(req.account, name, changes)
            except Exception as e:
                raise error_for(e, target) or e from None
    multistatus = Multistatus()
    multistatus.add(target.path, other=_statuses(result), errors={403: _PROTECTED_ERROR})
    return xml_answer(207, multistatus.to_bytes())


async def _check_exists(ctx: DavContext, req: DavRequest, target: paths.Resource) -> None:
    service = ctx.inbox if target.inbox else ctx.service(target.kind)
    try:
        await service.get(req.account, target.collection, target.name)
    except (dav_store.NoSuchCollection, dav_store.NoSuchObject):
        raise DavError(404, message="not found") from None


# -- MKCOL and MKCALENDAR ----------------------------------------------------------------


async def mkcol(ctx: DavContext, req: DavRequest, *, calendar: bool) -> Answer:
    """MKCOL (extended or plain) or, when C{calendar}, MKCALENDAR: 201 or an error."""
    target = req.target
    if not isinstance(target, paths.Collection):
        # Existing containers (homes, inbox, outbox, root) or objects.
        raise DavError(405, P.d("resource-must-be-null"))
    try:
        body = parse_mkcol(req.xml_body(ctx.max_xml_body), max_size=ctx.max_xml_body,
                           calendar=calendar)  # fmt: skip
    except BadRequestBody as e:
        raise bad_body(e) from None
    if calendar and target.kind != "calendar":
        raise DavError(403, P.c("calendar-collection-location-ok"))
    wanted = {
        P.d("collection"),
        P.c("calendar") if target.kind == "calendar" else P.r("addressbook"),
    }
    if not set(body.resourcetype) <= wanted:
        raise DavError(403, P.d("valid-resourcetype"))
    if target.kind == "calendar" and target.name in paths.RESERVED_CALENDAR_NAMES:
        raise DavError(405, P.d("resource-must-be-null"))
    service = ctx.service(target.kind)
    try:
        await service.collection(req.account, target.name)
    except dav_store.NoSuchCollection:
        pass
    else:
        raise DavError(405, P.d("resource-must-be-null"))
    operations: list[Operation] = [("set", prop.tag, prop) for prop in body.props]
    result = plan(service.kind, operations, req.user, {}, creating=True)
    if not result.ok:
        return _mkcol_failure(result, calendar)
    changes = dict(result.changes)
    displayname = changes.pop("displayname", "") or target.name
    components = changes.pop(
        "components", "VEVENT,VTODO,VJOURNAL" if target.kind == "calendar" else ""
    )
    try:
        await service.create_collection(
            req.account, target.name, displayname=displayname,
            components=[c for c in components.split(",") if c], **changes,
        )  # fmt: skip
        if result.dead:
            await service.update_collection(
                req.account, target.name, {"dead_properties": result.dead}
            )
    except Exception as e:
        raise error_for(e, target) or e from None
    return Answer(201)


def _mkcol_failure(result: Plan, calendar: bool) -> Answer:
    """403 with the C{mkcol-response} / C{mkcalendar-response} listing each property."""
    root = Element(P.c("mkcalendar-response") if calendar else P.d("mkcol-response"))
    for status, names in sorted(_statuses(result).items()):
        propstat = SubElement(root, P.d("propstat"))
        prop = SubElement(propstat, P.d("prop"))
        for name in names:
            SubElement(prop, name)
        SubElement(propstat, P.d("status")).text = f"HTTP/1.1 {status} {_REASONS.get(status, '')}"
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + serialize(root)
    return xml_answer(403, body)


_REASONS = {
    200: "OK",
    403: "Forbidden",
    409: "Conflict",
    424: "Failed Dependency",
    507: "Insufficient Storage",
}
