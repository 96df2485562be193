"""
The DAV methods: which apply to which target (L{allowed}), the dispatch
(L{handle}), and the reading ones: OPTIONS, GET/HEAD, PROPFIND, REPORT
and POST (to the outbox).  Writing methods are in L{gk.dav.writes} and
L{gk.dav.proppatch}.

Decisions:

 - PROPFIND without a Depth header is answered as Depth 0 (RFC 4918 says
   infinity, which gk refuses on collections with 403
   C{propfind-finite-depth}; answering the resource itself is the useful
   reading of what such clients want).  On a non-collection, infinity is 0.
 - GET on a calendar answers the whole calendar as one iCalendar file, on
   an address book every vCard in one file; on the other containers a
   short text.
 - REPORTs on calendar data go to L{gk.dav.reports} (free-busy-query on
   the calendar home covers every calendar); the principal reports to
   L{gk.dav.principals}.  A report that does not apply to the target
   answers 403 C{supported-report}.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from twisted.internet.threads import deferToThread

from gk.dav import export, lookup, paths, principals, proppatch, writes
from gk.dav import properties as P
from gk.dav.context import DavContext
from gk.dav.exchange import (
    XML,
    Answer,
    DavError,
    DavRequest,
    bad_body,
    error_for,
    text_answer,
    xml_answer,
)
from gk.dav.multistatus import Multistatus
from gk.dav.report_common import CollectionTarget, ReportError
from gk.dav.reports import free_busy_report, run_report
from gk.dav.scheduling import OutboxError
from gk.dav.xmlbody import (
    AddressbookMultiget,
    AddressbookQuery,
    BadRequestBody,
    CalendarMultiget,
    CalendarQuery,
    ExpandProperty,
    FreeBusyQuery,
    PrincipalPropertySearch,
    PrincipalSearchPropertySet,
    PropFind,
    Report,
    SyncCollection,
    UnsupportedReport,
    parse_propfind,
    parse_report,
)
from gk.storage import dav_store

Handler = Callable[[DavContext, DavRequest], Awaitable[Answer]]

#: Responses added to a streamed multistatus between two writes.
STREAM_BATCH = 500

#: Methods some client may send that gk does not support anywhere (405).
UNSUPPORTED = frozenset({"LOCK", "UNLOCK", "ACL", "SEARCH", "PATCH", "BIND", "UNBIND", "REBIND"})

_READ = ("OPTIONS", "GET", "HEAD", "PROPFIND", "PROPPATCH", "REPORT")


def allowed(target: paths.Target) -> tuple[str, ...]:
    """The methods C{target} answers (the Allow header)."""
    if isinstance(target, paths.Resource):
        if target.inbox:
            return (*_READ, "DELETE")
        return (*_READ, "PUT", "DELETE", "MOVE", "COPY")
    if isinstance(target, paths.Collection):
        # MKCALENDAR in the address book home answers 403 calendar-collection-location-ok.
        return (*_READ, "DELETE", "MKCOL", "MKCALENDAR")
    if isinstance(target, paths.Inbox):
        return (*_READ, "DELETE")
    if isinstance(target, paths.Outbox):
        return ("OPTIONS", "PROPFIND", "PROPPATCH", "REPORT", "POST", "DELETE")
    return _READ


async def handle(ctx: DavContext, req: DavRequest) -> Answer:
    """
    Run C{req}'s method on its target.

    @raise DavError: the answer is an error (405 with Allow when the
        method does not apply to the target).
    """
    methods = allowed(req.target)
    handler = HANDLERS.get(req.method)
    if req.method not in methods or handler is None:
        if handler is None and req.method not in UNSUPPORTED:
            raise DavError(501, message=f"{req.method} is not implemented")
        raise DavError(405, message="method not allowed here", headers=allow_header(methods))
    try:
        return await handler(ctx, req)
    except DavError:
        raise
    except Exception as e:
        mapped = error_for(e, req.target)
        if mapped is None:
            raise
        raise mapped from None


def allow_header(methods: tuple[str, ...]) -> dict[str, str]:
    return {"Allow": ", ".join(methods)}


# -- OPTIONS and GET -----------------------------------------------------------------


async def options(ctx: DavContext, req: DavRequest) -> Answer:
    return Answer(200, headers=allow_header(allowed(req.target)))


async def get(ctx: DavContext, req: DavRequest) -> Answer:
    """GET and HEAD (the server leaves the body out of HEAD)."""
    target = req.target
    if isinstance(target, paths.Resource):
        service = ctx.inbox if target.inbox else ctx.service(target.kind)
        try:
            stored = await service.get(req.account, target.collection, target.name)
        except (dav_store.NoSuchCollection, dav_store.NoSuchObject):
            raise DavError(404, message="not found") from None
        headers = {
            "ETag": stored.etag,
            "Last-Modified": P.http_date(stored.modified),
            "Cache-Control": "private, no-cache",
        }
        if_none_match = req.header("if-none-match")
        if if_none_match and dav_store.etag_matches(stored.etag, if_none_match):
            return Answer(304, headers=headers)
        if_match = req.header("if-match")
        if if_match and not dav_store.etag_matches(stored.etag, if_match):
            raise DavError(412, message="If-Match failed")
        return Answer(200, stored.data, P.content_type(target.kind, stored.component), headers)
    if isinstance(target, paths.Collection | paths.Inbox):
        return await _export(ctx, req, target)
    return text_answer(200, "gk CalDAV/CardDAV server: point a calendar or contacts client here.")


async def _export(
    ctx: DavContext, req: DavRequest, target: paths.Collection | paths.Inbox
) -> Answer:
    info = await lookup.collection_info(ctx, req.account, target)
    service = ctx.inbox if isinstance(target, paths.Inbox) else ctx.service(target.kind)
    stored = await service.all_objects(req.account, info.name)
    bodies = [s.data for s in stored]
    headers = {"ETag": f'"{dav_store.sync_token(info).rpartition("/")[2]}"'}
    if info.kind == dav_store.ADDRESSBOOK:
        body = await deferToThread(export.vcard_export, bodies)
        return Answer(200, body, "text/vcard; charset=utf-8", headers)
    body = await deferToThread(export.calendar_export, bodies, info.displayname or info.name)
    return Answer(200, body, "text/calendar; charset=utf-8", headers)


# -- PROPFIND ------------------------------------------------------------------------


async def propfind(ctx: DavContext, req: DavRequest) -> Answer:
    """PROPFIND at Depth 0 or 1 (see the module docstring)."""
    try:
        request = parse_propfind(req.xml_body(ctx.max_xml_body), max_size=ctx.max_xml_body)
    except BadRequestBody as e:
        raise bad_body(e) from None
    target = req.target
    depth = req.depth("0")
    container = not isinstance(target, paths.Resource)
    if depth == "infinity" and container:
        raise DavError(403, P.d("propfind-finite-depth"))
    described = await lookup.describe(ctx, req.account, target, request)
    multistatus = Multistatus()
    P.add_response(multistatus, described.href, described.live, request, described.dead)
    if depth != "1" or not container:
        return xml_answer(207, multistatus.to_bytes())
    if isinstance(target, paths.Collection | paths.Inbox):
        objects = await lookup.object_members(ctx, req.account, target)
        stream = _stream_objects(multistatus, target, objects, request)
        return Answer(207, content_type="application/xml; charset=utf-8", stream=stream)
    for member in await lookup.members(ctx, req.account, target, request):
        P.add_response(multistatus, member.href, member.live, request, member.dead)
    return xml_answer(207, multistatus.to_bytes())


async def _stream_objects(
    multistatus: Multistatus,
    target: paths.Collection | paths.Inbox,
    objects: list[dav_store.ObjectInfo],
    request: PropFind,
) -> AsyncIterator[bytes]:
    """The multistatus in pieces of L{STREAM_BATCH} responses (the writer yields between)."""
    kind = target.kind if isinstance(target, paths.Collection) else "calendar"
    base = target.path
    for start in range(0, len(objects), STREAM_BATCH):
        for info in objects[start : start + STREAM_BATCH]:
            P.add_response(multistatus, base + info.name, P.object_props(kind, info), request)
        yield multistatus.drain()
    yield multistatus.finish()


# -- REPORT --------------------------------------------------------------------------

_CALENDAR_REPORTS = (CalendarQuery, CalendarMultiget, FreeBusyQuery, SyncCollection)
_INBOX_REPORTS = (CalendarQuery, CalendarMultiget, SyncCollection)
_ADDRESSBOOK_REPORTS = (AddressbookQuery, AddressbookMultiget, SyncCollection)


async def report(ctx: DavContext, req: DavRequest) -> Answer:
    """REPORT: dispatch by the body's root element and the target's kind."""
    base = req.raw_path.decode("ascii", "replace")
    try:
        parsed = parse_report(req.xml_body(ctx.max_xml_body), max_size=ctx.max_xml_body, base=base)
    except UnsupportedReport:
        raise DavError(403, P.d("supported-report")) from None
    except BadRequestBody as e:
        raise bad_body(e) from None
    if isinstance(parsed, ExpandProperty | PrincipalPropertySearch | PrincipalSearchPropertySet):
        return await principals.run(ctx, req, parsed)
    target = req.target
    if isinstance(parsed, FreeBusyQuery) and target == paths.Home("calendar", req.user):
        return await _home_free_busy(ctx, req, parsed)
    if not isinstance(target, paths.Collection | paths.Inbox) or not _applies(parsed, target):
        raise DavError(403, P.d("supported-report"))
    return await _collection_report(ctx, req, target, parsed)


def _applies(report: Report, target: paths.Collection | paths.Inbox) -> bool:
    if isinstance(target, paths.Inbox):
        return isinstance(report, _INBOX_REPORTS)
    if target.kind == "calendar":
        return isinstance(report, _CALENDAR_REPORTS)
    return isinstance(report, _ADDRESSBOOK_REPORTS)


async def _collection_report(
    ctx: DavContext, req: DavRequest, target: paths.Collection | paths.Inbox, report: Report
) -> Answer:
    info = await lookup.collection_info(ctx, req.account, target)
    service = ctx.inbox if isinstance(target, paths.Inbox) else ctx.service(target.kind)
    collection = CollectionTarget(req.account, service, info, target.path)
    try:
        if isinstance(report, FreeBusyQuery):
            data = await free_busy_report(collection, report)
            return Answer(200, data, "text/calendar; charset=utf-8")
        # The reports want the Depth header as sent ("" when there is none).
        body = await run_report(collection, report, req.header("depth") or "")
    except ReportError as e:
        return Answer(e.status, e.body, XML if e.body else None)
    return xml_answer(207, body)


async def _home_free_busy(ctx: DavContext, req: DavRequest, report: FreeBusyQuery) -> Answer:
    """free-busy-query on the calendar home: over every calendar of the user."""
    targets = [
        CollectionTarget(
            req.account, ctx.calendars, info, lookup.collection_target(info, req.user).path
        )
        for info in await ctx.calendars.collections(req.account)
    ]
    try:
        data = await free_busy_report(targets, report)
    except ReportError as e:
        return Answer(e.status, e.body, XML if e.body else None)
    return Answer(200, data, "text/calendar; charset=utf-8")


# -- POST ----------------------------------------------------------------------------


async def post(ctx: DavContext, req: DavRequest) -> Answer:
    """
    POST to the schedule outbox (RFC 6638 5): answered by the scheduler's
    C{outbox_post} (L{gk.dav.context.OutboxHandler}); 501 without one.
    """
    handler = ctx.outbox_handler()
    if handler is None:
        raise DavError(501, message="scheduling requests are not supported")
    if req.body_too_large or len(req.body) > ctx.calendars.max_resource_size:
        raise DavError(413, message="request body too large")
    try:
        body = await handler.outbox_post(req.account, req.body)
    except OutboxError as e:
        raise DavError(e.status, e.precondition, message=str(e)) from None
    return xml_answer(200, body)


async def _delete(ctx: DavContext, req: DavRequest) -> Answer:
    return await writes.delete(ctx, req)


async def _move(ctx: DavContext, req: DavRequest) -> Answer:
    return await writes.transfer(ctx, req, move=True)


async def _copy(ctx: DavContext, req: DavRequest) -> Answer:
    return await writes.transfer(ctx, req, move=False)


async def _mkcol(ctx: DavContext, req: DavRequest) -> Answer:
    return await proppatch.mkcol(ctx, req, calendar=False)


async def _mkcalendar(ctx: DavContext, req: DavRequest) -> Answer:
    return await proppatch.mkcol(ctx, req, calendar=True)


HANDLERS: dict[str, Handler] = {
    "OPTIONS": options,
    "GET": get,
    "HEAD": get,
    "PROPFIND": propfind,
    "PROPPATCH": proppatch.proppatch,
    "MKCOL": _mkcol,
    "MKCALENDAR": _mkcalendar,
    "PUT": writes.put,
    "DELETE": _delete,
    "MOVE": _move,
    "COPY": _copy,
    "REPORT": report,
    "POST": post,
}
