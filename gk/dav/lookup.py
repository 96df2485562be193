"""
Loading what a resource's properties need: the collection or object from
the services, the user's quota and mail addresses, and a home's members.

Every function takes the signed-in account and a target the caller has
already checked to be that account's (L{gk.dav.resource} does), and
raises L{DavError} 404 for something that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from gk.collections_service import CollectionService
from gk.dav import paths
from gk.dav import properties as P
from gk.dav.context import DavContext
from gk.dav.exchange import DavError
from gk.dav.xmlbody import PropFind
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo, ObjectInfo

QUOTA_NAMES = frozenset({P.d("quota-used-bytes"), P.d("quota-available-bytes")})
ADDRESS_NAMES = frozenset({P.c("calendar-user-address-set"), P.cs("email-address-set")})


@dataclass
class Described:
    """A resource's href (decoded), live properties and dead ones."""

    href: str
    live: P.Props
    dead: dict[str, Element] = field(default_factory=dict)


def wants(request: PropFind, names: Iterable[str]) -> bool:
    """Whether answering C{request} may need any of C{names} (propname lists them all)."""
    if request.kind == "propname":
        return True
    asked = request.names if request.kind == "prop" else request.include
    return any(name in asked for name in names)


async def quota(ctx: DavContext, account: Account) -> P.Quota:
    """The account's usage (mail and DAV together, as its quota counts) and limit."""

    return P.Quota(await ctx.calendars.quota_used(account), account.quota_bytes)


async def addresses(ctx: DavContext, email: str) -> list[str]:
    """C{email} and the aliases that deliver to it (catch-alls left out)."""
    aliases = await ctx.accounts.list_aliases()
    found = [source for source, target in aliases if target == email and "@" in source[1:]]
    return [email, *sorted(set(found) - {email})]


async def default_calendar(ctx: DavContext, account: Account) -> str | None:
    """
    The href of the calendar invitations go to (RFC 6638 9.2): the one
    named C{calendar} if it holds events, else the first that does.
    """
    calendars = await ctx.calendars.collections(account)
    events = [c for c in calendars if not c.components or "VEVENT" in c.components]
    events.sort(key=lambda c: (c.name != "calendar", c.name))
    return paths.collection_path("calendar", account.email, events[0].name) if events else None


async def _collection(ctx: DavContext, account: Account, target: paths.Target) -> CollectionInfo:
    try:
        if isinstance(target, paths.Inbox):
            return await ctx.inbox.collection(account, paths.INBOX)
        if isinstance(target, paths.Collection):
            return await ctx.service(target.kind).collection(account, target.name)
    except dav_store.NoSuchCollection:
        raise DavError(404, message="no such collection") from None
    raise AssertionError(f"not a collection: {target!r}")


async def collection_info(
    ctx: DavContext, account: Account, target: paths.Collection | paths.Inbox
) -> CollectionInfo:
    """@raise DavError: 404, no such collection."""
    return await _collection(ctx, account, target)


async def describe(
    ctx: DavContext, account: Account, target: paths.Target, request: PropFind
) -> Described:
    """The properties of C{target} that C{request} may ask for."""
    user = account.email
    need_quota = wants(request, QUOTA_NAMES)
    if isinstance(target, paths.Root | paths.PrincipalCollection | paths.HomeSet):
        return Described(target.path, P.root_props(user))
    if isinstance(target, paths.Principal):
        mail = await addresses(ctx, user) if wants(request, ADDRESS_NAMES) else [user]
        return Described(target.path, P.principal_props(user, user, mail))
    if isinstance(target, paths.Home):
        usage = await quota(ctx, account) if need_quota else None
        return Described(target.path, P.home_props(target.kind, user, usage))
    if isinstance(target, paths.Outbox):
        return Described(target.path, P.outbox_props(user))
    if isinstance(target, paths.Collection | paths.Inbox):
        info = await _collection(ctx, account, target)
        usage = await quota(ctx, account) if need_quota else None
        extra = await _inbox_extra(ctx, account, target, request)
        return describe_collection(ctx, info, user, usage, target.path, extra)
    service = ctx.inbox if target.inbox else ctx.service(target.kind)
    try:
        stored = await service.get(account, target.collection, target.name)
    except (dav_store.NoSuchCollection, dav_store.NoSuchObject):
        raise DavError(404, message="not found") from None
    return Described(target.path, P.object_props(target.kind, stored))


async def _inbox_extra(
    ctx: DavContext, account: Account, target: paths.Target, request: PropFind
) -> P.Props:
    name = P.c("schedule-default-calendar-URL")
    if not isinstance(target, paths.Inbox) or not wants(request, [name]):
        return {}
    return P.inbox_extra(await default_calendar(ctx, account))


def describe_collection(
    ctx: DavContext,
    info: CollectionInfo,
    user: str,
    usage: P.Quota | None,
    href: str,
    extra: P.Props | None = None,
) -> Described:
    """A loaded collection's properties, dead ones included."""
    service = ctx.inbox if info.kind == dav_store.SCHEDULE_INBOX else ctx.service(info.kind)
    live = P.collection_props(info, user, service.max_resource_size, usage)
    live.update(extra or {})
    live, dead = P.with_dead(live, info.dead_properties)
    return Described(href, live, dead)


def collection_target(info: CollectionInfo, user: str) -> paths.Collection | paths.Inbox:
    if info.kind == dav_store.SCHEDULE_INBOX:
        return paths.Inbox(user)
    kind: paths.CollectionKind = "addressbook" if info.kind == dav_store.ADDRESSBOOK else "calendar"
    return paths.Collection(kind, user, info.name)


async def members(
    ctx: DavContext, account: Account, target: paths.Target, request: PropFind
) -> list[Described]:
    """
    The members of a container other than a calendar or address book
    (those are listed by L{object_members}, which streams).
    """
    user = account.email
    if isinstance(target, paths.Root):
        return [
            Described(paths.principals_path(), P.root_props(user)),
            Described(paths.HomeSet("calendar").path, P.root_props(user)),
            Described(paths.HomeSet("addressbook").path, P.root_props(user)),
        ]
    if isinstance(target, paths.PrincipalCollection):
        return [await describe(ctx, account, paths.Principal(user), request)]
    if isinstance(target, paths.HomeSet):
        return [await describe(ctx, account, paths.Home(target.kind, user), request)]
    if not isinstance(target, paths.Home):
        return []
    usage = await quota(ctx, account) if wants(request, QUOTA_NAMES) else None
    found = []
    for info in await ctx.service(target.kind).collections(account):
        child = collection_target(info, user)
        found.append(describe_collection(ctx, info, user, usage, child.path))
    if target.kind == "calendar":
        inbox = paths.Inbox(user)
        info = await _collection(ctx, account, inbox)
        extra = await _inbox_extra(ctx, account, inbox, request)
        found.append(describe_collection(ctx, info, user, usage, inbox.path, extra))
        found.append(Described(paths.outbox_path(user), P.outbox_props(user)))
    return found


async def object_members(
    ctx: DavContext, account: Account, target: paths.Collection | paths.Inbox
) -> list[ObjectInfo]:
    """Every resource of a collection (its index entry, no body), in one query."""
    service: CollectionService = ctx.inbox
    name = paths.INBOX
    if isinstance(target, paths.Collection):
        service, name = ctx.service(target.kind), target.name
    try:
        return await service.objects(account, name)
    except dav_store.NoSuchCollection:
        raise DavError(404, message="no such collection") from None
