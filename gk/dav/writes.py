"""
Changing resources: PUT, DELETE, MOVE and COPY (RFC 4918 9.6-9.9, RFC 4791
5.3.2, RFC 6352 6.3.2).

PUT answers 201 (created) or 204 (replaced) with the stored resource's
strong ETag, always (as the issue asks of gk; note RFC 4791 5.3.4 would
leave it out when the body was rewritten: gk rewrites only to add a
missing VERSION/PRODID or to repair what clients are known to get wrong).
A body that cannot be stored gets 403 (413 when too large) with the
CalDAV/CardDAV precondition it fails, and nothing is stored.

After a calendar object is stored or deleted, the optional
L{gk.dav.context.Scheduler} is told (with the previous body when there was
one); its failures are logged and change nothing for the client.
"""

from __future__ import annotations

from twisted.logger import Logger

from gk.dav import paths
from gk.dav import properties as P
from gk.dav.context import DavContext
from gk.dav.exchange import Answer, DavError, DavRequest, error_for
from gk.storage import dav_store

log = Logger()

#: Content types a calendar or card body may come with (besides none).
_CALENDAR_TYPES = frozenset({"text/calendar", "application/octet-stream", "text/plain"})
_CARD_TYPES = frozenset(
    {"text/vcard", "text/x-vcard", "text/directory", "application/octet-stream", "text/plain"}
)


def _resource(req: DavRequest) -> paths.Resource:
    target = req.target
    if not isinstance(target, paths.Resource) or target.inbox:
        # The inbox is written by scheduling only (RFC 6638 2.2).
        raise DavError(405, message="not a resource you can write")
    return target


def _check_content_type(req: DavRequest, kind: str) -> None:
    value = req.header("content-type")
    if not value:
        return
    media = value.split(";", 1)[0].strip().lower()
    if kind == "addressbook" and media not in _CARD_TYPES:
        raise DavError(403, P.r("supported-address-data"))
    if kind == "calendar" and media not in _CALENDAR_TYPES:
        raise DavError(403, P.c("supported-calendar-data"))


async def put(ctx: DavContext, req: DavRequest) -> Answer:
    """PUT a calendar object or vCard (see the module docstring)."""
    target = _resource(req)
    service = ctx.service(target.kind)
    if req.body_too_large or len(req.body) > service.max_resource_size:
        raise DavError(413, service.size_precondition)
    _check_content_type(req, target.kind)
    if_match = req.header("if-match")
    if_none_match = (req.header("if-none-match") or "").strip()
    scheduling = ctx.scheduler is not None and target.kind == "calendar"
    # A list of tags: PUT only if the resource's is none of them.
    if if_none_match not in ("", "*"):
        old = await _current(ctx, req, target)
        if old is not None and dav_store.etag_matches(old.etag, if_none_match):
            raise DavError(412, message="If-None-Match failed")
    try:
        result = await service.put(
            req.account, target.collection, target.name, req.body,
            if_match=if_match, if_none_match=if_none_match == "*",
        )  # fmt: skip
    except dav_store.NoSuchCollection:
        raise DavError(409, message="no such collection") from None
    except Exception as e:
        raise error_for(e, target) or e from None
    if scheduling and ctx.scheduler is not None:
        try:
            await ctx.scheduler.after_put(
                req.account, target.collection, target.name, result.previous, result.data
            )
        except Exception:
            log.failure("scheduling after PUT {path} failed", path=target.path)
    return Answer(201 if result.created else 204, headers={"ETag": result.etag})


async def _current(
    ctx: DavContext, req: DavRequest, target: paths.Resource
) -> dav_store.StoredObject | None:
    service = ctx.inbox if target.inbox else ctx.service(target.kind)
    try:
        return await service.get(req.account, target.collection, target.name)
    except dav_store.NoSuchObject:
        return None
    except dav_store.NoSuchCollection:
        raise DavError(409, message="no such collection") from None


async def delete(ctx: DavContext, req: DavRequest) -> Answer:
    """
    DELETE a resource (If-Match honoured) or a calendar or address book
    with everything in it; the inbox, the outbox and the homes stay.
    """
    target = req.target
    if isinstance(target, paths.Collection):
        try:
            await ctx.service(target.kind).delete_collection(req.account, target.name)
        except Exception as e:
            raise error_for(e, target) or e from None
        return Answer(204)
    if not isinstance(target, paths.Resource):
        raise DavError(403, message="this collection cannot be deleted")
    service = ctx.inbox if target.inbox else ctx.service(target.kind)
    scheduling = ctx.scheduler is not None and target.kind == "calendar" and not target.inbox
    old = await _current(ctx, req, target) if scheduling else None
    try:
        await service.delete(req.account, target.collection, target.name, req.header("if-match"))
    except Exception as e:
        raise error_for(e, target) or e from None
    if scheduling and ctx.scheduler is not None and old is not None:
        try:
            await ctx.scheduler.after_delete(req.account, target.collection, target.name, old.data)
        except Exception:
            log.failure("scheduling after DELETE {path} failed", path=target.path)
    return Answer(204)


def _destination(req: DavRequest, source: paths.Resource) -> paths.Resource:
    header = req.header("destination")
    if not header:
        raise DavError(400, message="no Destination header")
    try:
        destination = paths.parse_destination(header)
    except paths.BadPath as e:
        raise DavError(400, message=f"bad Destination: {e}") from None
    except paths.NotInLayout:
        raise DavError(403, message="Destination outside your collections") from None
    if destination.owner != req.user:
        raise DavError(403, message="Destination outside your collections")
    if (
        not isinstance(destination, paths.Resource)
        or destination.inbox
        or destination.kind != source.kind
    ):
        raise DavError(403, message="Destination must be a resource in a collection of the kind")
    if destination == source:
        raise DavError(403, message="source and destination are the same")
    return destination


async def transfer(ctx: DavContext, req: DavRequest, *, move: bool) -> Answer:
    """
    MOVE or COPY a resource to another name in one of the user's
    collections of the same kind; 201 or 204 (replaced), 412 when the
    destination exists and Overwrite is F.
    """
    source = _resource(req)
    if source.inbox:
        raise DavError(403, message="scheduling messages cannot be moved or copied")
    destination = _destination(req, source)
    overwrite_header = (req.header("overwrite") or "T").strip().upper()
    if overwrite_header not in ("T", "F"):
        raise DavError(400, message="bad Overwrite header")
    service = ctx.service(source.kind)
    try:
        stored = await service.get(req.account, source.collection, source.name)
    except Exception as e:
        raise error_for(e, source) or e from None
    try:
        info = await service.collection(req.account, destination.collection)
    except dav_store.NoSuchCollection:
        raise DavError(409, message="no such destination collection") from None
    if source.kind == "calendar" and info.components and stored.component not in info.components:
        raise DavError(403, P.c("supported-calendar-component"))
    try:
        result = await service.transfer(
            req.account, source.collection, source.name, destination.collection,
            destination.name, move=move, overwrite=overwrite_header == "T",
        )  # fmt: skip
    except Exception as e:
        raise error_for(e, destination) or e from None
    return Answer(201 if result.created else 204, headers={"ETag": result.etag})
