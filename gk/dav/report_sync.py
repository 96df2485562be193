"""
The sync-collection REPORT (RFC 6578): what changed in a collection
since a sync token, from the revisions and tombstones of
L{gk.storage.dav_sync}.

Tokens are durable (collection id and revision, both in the database), so
they survive restarts.  With C{DAV:limit}, the storage cuts the changes
at a revision boundary and the answer carries that revision's token with
a 507 response for the collection (RFC 6578 3.6): a client that follows
it, page by page, sees every change exactly once from where it stood.
"""

from __future__ import annotations

from gk.dav.multistatus import Multistatus
from gk.dav.report_common import (
    UTC_ZONE,
    CollectionTarget,
    Member,
    MemberProps,
    ReportError,
    floating_zone,
    precondition,
)
from gk.dav.xmlbody import DAV, SyncCollection
from gk.storage.dav_store import InvalidSyncToken

NUMBER_OF_MATCHES = f"{{{DAV}}}number-of-matches-within-limits"


async def sync_collection(target: CollectionTarget, report: SyncCollection, depth: str) -> bytes:
    """
    The 207 body answering C{report} on C{target}.

    Members changed since the token get a response with the properties
    asked for; members removed since, a plain 404 response.  An empty
    token asks for every current member.  Sync-level C{infinite} is
    answered like C{1}: gk's collections hold no collections (RFC 6578 3.3).

    @param depth: the Depth header as sent (C{""} when absent).  RFC 6578
        3.2 wants C{0}; absence (which means 0 for REPORT, RFC 3253 3.6)
        and C{1}, which some clients send, are accepted too.
    @raise ReportError: 400 for Depth infinity; 403 C{DAV:valid-sync-token}
        for a token that is not one of this collection's (made up, another
        collection's, from the future or older than the kept history); 507
        C{DAV:number-of-matches-within-limits} when a single change touches
        more members than the limit allows (a MOVE within the collection
        with a limit of 1), which no truncation can fit (RFC 6578 3.7); the
        errors of L{MemberProps}.
    """
    if depth not in ("", "0", "1"):
        raise ReportError(400)
    props = MemberProps(
        report.prop,
        addressbook=target.is_addressbook,
        calendar_data=report.calendar_data,
        address_data=report.address_data,
        zone=UTC_ZONE if target.is_addressbook else floating_zone(target.collection),
    )
    service, account, name = target.service, target.account, target.collection.name
    try:
        changes = await service.changes_since(
            account, name, report.sync_token or None, report.limit
        )
    except InvalidSyncToken:
        raise precondition("valid-sync-token") from None
    if report.limit is not None and len(changes.changed) + len(changes.deleted) > report.limit:
        raise precondition("number-of-matches-within-limits", status=507)
    members = [Member.info(info) for info in changes.changed]
    deleted = list(changes.deleted)
    if props.wants_data and members:
        stored = {
            obj.name: obj
            for obj in await service.get_many(account, name, [m.name for m in members])
        }
        # A member removed since changes_since read it is reported removed:
        # its tombstone is newer than the token, so the next sync says so too.
        deleted += [m.name for m in members if m.name not in stored]
        members = [Member.stored(stored[m.name]) for m in members if m.name in stored]
    texts = await props.prepare_all(members)
    multistatus = Multistatus(sync_token=changes.token)
    for member, text in zip(members, texts, strict=True):
        props.add(multistatus, target.member_href(member.name), member, text)
    for removed in deleted:
        multistatus.add_status(target.member_href(removed), 404)
    if changes.truncated:
        multistatus.add_status(target.href, 507, error=NUMBER_OF_MATCHES)
    return multistatus.to_bytes()


__all__ = ["NUMBER_OF_MATCHES", "sync_collection"]
