"""
CalDAV/CardDAV storage through a real database (SQLite, and PostgreSQL
when configured): collections, resources with entity tags and
preconditions, UID uniqueness, MOVE/COPY, index queries, and
sync-collection tokens that lose no change, even page by page.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pytest
import pytest_twisted
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twisted.internet.defer import ensureDeferred, gatherResults

from gk.storage import accounts
from gk.storage import dav_store as dav
from gk.storage.database import Database
from gk.storage.models import DavCollection, DavObject, DavTombstone

E = TypeVar("E", bound=BaseException)
UTC = datetime.UTC


def at(day: int, hour: int = 0) -> datetime.datetime:
    return datetime.datetime(2027, 3, day, hour, tzinfo=UTC)


async def make_user(db: Database, email: str = "alice@example.test") -> int:
    def add(session: Session) -> int:
        accounts.add_domain(session, email.rpartition("@")[2])
        return accounts.add_user(session, email, "hash").id

    return await db.write(add)


async def user_with_defaults(db: Database, email: str = "alice@example.test") -> int:
    user_id = await make_user(db, email)
    await db.write(lambda s: dav.ensure_default_collections(s, user_id))
    return user_id


async def collection(db: Database, user_id: int, kind: str, name: str) -> dav.CollectionInfo:
    return await db.read(lambda s: dav.get_collection(s, user_id, kind, name))


def event(uid: str, summary: str = "meeting", extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def card(uid: str, fn: str, email: str = "") -> bytes:
    mail = f"EMAIL:{email}\r\n" if email else ""
    return f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{fn}\r\n{mail}END:VCARD\r\n".encode()


async def put(
    db: Database,
    collection_id: int,
    name: str,
    uid: str | None = None,
    *,
    data: bytes | None = None,
    component: str = "VEVENT",
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    recurring: bool = False,
    summary: str = "meeting",
    emails: tuple[str, ...] = (),
    if_match: str | None = None,
    if_none_match: bool = False,
) -> dav.PutResult:
    uid = uid or f"uid-{name}"
    body = data if data is not None else event(uid, summary)
    return await db.write(
        lambda s: dav.put_object(
            s,
            collection_id,
            name,
            body,
            uid=uid,
            component=component,
            start=start,
            end=end,
            recurring=recurring,
            summary=summary,
            emails=emails,
            if_match=if_match,
            if_none_match=if_none_match,
        )
    )


async def fails(db: Database, fn: Callable[[Session], Any], exception: type[E]) -> E:
    """Run C{fn} in the writer; the C{exception} it raised."""
    with pytest.raises(exception) as info:
        await db.write(fn)
    return info.value


# -- collections ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_default_collections_are_made_once(db: Database) -> None:
    user_id = await make_user(db)
    created = await db.write(lambda s: dav.ensure_default_collections(s, user_id))
    assert sorted((c.kind, c.name) for c in created) == [
        ("addressbook", "contacts"),
        ("calendar", "calendar"),
        ("calendar", "tasks"),
        ("schedule-inbox", "inbox"),
    ]
    assert await db.write(lambda s: dav.ensure_default_collections(s, user_id)) == []
    # With nothing missing it only reads.
    assert await db.read(lambda s: dav.ensure_default_collections(s, user_id)) == []

    calendars = await db.read(lambda s: dav.list_collections(s, user_id, dav.CALENDAR))
    assert [(c.name, c.displayname, c.components, c.revision) for c in calendars] == [
        ("calendar", "Calendar", ("VEVENT",), 0),
        ("tasks", "Tasks", ("VTODO",), 0),
    ]
    book = await collection(db, user_id, dav.ADDRESSBOOK, "contacts")
    assert (book.displayname, book.components) == ("Contacts", ())
    assert len(await db.read(lambda s: dav.list_collections(s, user_id))) == 4

    # A deleted default stays deleted while the user has another calendar;
    # the scheduling inbox always comes back.
    tasks = await collection(db, user_id, dav.CALENDAR, "tasks")
    inbox = await collection(db, user_id, dav.SCHEDULE_INBOX, "inbox")
    await db.write(lambda s: dav.delete_collection(s, tasks.id))
    await db.write(lambda s: dav.delete_collection(s, inbox.id))
    again = await db.write(lambda s: dav.ensure_default_collections(s, user_id))
    assert [(c.kind, c.name) for c in again] == [("schedule-inbox", "inbox")]
    await fails(db, lambda s: dav.ensure_default_collections(s, 999_999), dav.NoSuchCollection)


@pytest_twisted.ensureDeferred
async def test_default_collections_made_at_once_are_made_once(db: Database) -> None:
    """On PostgreSQL these run in parallel threads; the user's row lock orders them."""
    user_id = await make_user(db)
    made = await gatherResults(
        [
            ensureDeferred(db.write(lambda s: dav.ensure_default_collections(s, user_id)))
            for _ in range(4)
        ]
    )
    assert sorted(len(m) for m in made) == [0, 0, 0, 4]
    assert len(await db.read(lambda s: dav.list_collections(s, user_id))) == 4


@pytest_twisted.ensureDeferred
async def test_collections_are_made_changed_and_deleted(db: Database) -> None:
    user_id = await make_user(db)
    made = await db.write(
        lambda s: dav.create_collection(
            s,
            user_id,
            dav.CALENDAR,
            "work",
            displayname="Work",
            components="vevent, VTODO",
            color="#FF0000FF",
        )
    )
    assert (made.components, made.color, made.revision, made.description) == (
        ("VEVENT", "VTODO"),
        "#FF0000FF",
        0,
        "",
    )
    await fails(
        db,
        lambda s: dav.create_collection(
            s, user_id, dav.CALENDAR, "work", displayname="", components="VEVENT"
        ),
        dav.CollectionExists,
    )
    # Same name, another kind: a separate namespace.
    await db.write(
        lambda s: dav.create_collection(
            s, user_id, dav.ADDRESSBOOK, "work", displayname="Work", components=""
        )
    )
    for bad in ("", "a/b", "x" * 256):

        def create(session: Session, name: str = bad) -> dav.CollectionInfo:
            return dav.create_collection(
                session, user_id, dav.CALENDAR, name, displayname="", components="VEVENT"
            )

        await fails(db, create, dav.InvalidValue)
    await fails(
        db,
        lambda s: dav.create_collection(s, user_id, "mailbox", "m", displayname="", components=""),
        dav.InvalidValue,
    )

    props = {"{urn:x}a": "<a xmlns='urn:x'>1</a>", "{urn:x}b": "<b xmlns='urn:x'/>"}
    changed = await db.write(
        lambda s: dav.update_collection(
            s,
            made.id,
            {"displayname": "Büro", "color": None, "sort_order": 3, "dead_properties": props},
        )
    )
    assert (changed.displayname, changed.color, changed.sort_order) == ("Büro", None, 3)
    assert changed.dead_properties == props
    # Anything that changes takes a revision (the CTag moves); nothing, none.
    assert changed.revision == 1
    same = await db.write(lambda s: dav.update_collection(s, made.id, {"displayname": "Büro"}))
    assert same.revision == 1
    removed = await db.write(
        lambda s: dav.update_collection(s, made.id, {"dead_properties": {"{urn:x}a": None}})
    )
    assert removed.dead_properties == {"{urn:x}b": props["{urn:x}b"]}
    assert removed.revision == 2
    assert dav.sync_token(removed) != dav.sync_token(changed)
    await fails(db, lambda s: dav.update_collection(s, made.id, {"name": "x"}), dav.InvalidValue)
    await fails(db, lambda s: dav.update_collection(s, made.id, {"color": "#" * 40}), ValueError)

    await put(db, made.id, "a.ics")
    await db.write(lambda s: dav.delete_object(s, made.id, "a.ics"))
    await db.write(lambda s: dav.delete_collection(s, made.id))
    with pytest.raises(dav.NoSuchCollection):
        await collection(db, user_id, dav.CALENDAR, "work")
    await fails(db, lambda s: dav.delete_collection(s, made.id), dav.NoSuchCollection)
    await fails(db, lambda s: dav.update_collection(s, made.id, {}), dav.NoSuchCollection)
    left = await db.read(
        lambda s: (
            s.scalar(select(func.count()).select_from(DavObject)),
            s.scalar(select(func.count()).select_from(DavTombstone)),
        )
    )
    assert left == (0, 0)


@pytest_twisted.ensureDeferred
async def test_one_user_never_sees_anothers_collections(db: Database) -> None:
    alice = await user_with_defaults(db, "alice@example.test")
    bob = await user_with_defaults(db, "bob@example.test")
    alices = await collection(db, alice, dav.CALENDAR, "calendar")
    bobs = await collection(db, bob, dav.CALENDAR, "calendar")
    assert alices.id != bobs.id
    assert {c.user_id for c in await db.read(lambda s: dav.list_collections(s, bob))} == {bob}

    await put(db, alices.id, "secret.ics", "secret", start=at(1), end=at(2))
    await put(db, alices.id, "shared-uid.ics", "same", start=at(1), end=at(2))
    # Bob may hold the same UID in his own calendar.
    await put(db, bobs.id, "mine.ics", "same", start=at(1), end=at(2))
    assert await db.read(lambda s: dav.list_objects(s, bobs.id)) != []
    assert [o.name for o in await db.read(lambda s: dav.list_objects(s, bobs.id))] == ["mine.ics"]
    assert await db.read(lambda s: dav.find_by_uid_for_user(s, bob, "secret")) == []
    assert await db.read(lambda s: dav.find_by_uid_for_user(s, bob, "same")) == [
        ("calendar", "mine.ics")
    ]
    bobs_events = await db.read(lambda s: dav.events_between(s, bob, at(1), at(3)))
    assert [e.name for e in bobs_events] == ["mine.ics"]
    assert await db.read(lambda s: dav.collection_usage(s, bob)) == len(event("same"))

    # MOVE and COPY stay within one user's collections.
    for transfer in (dav.move_object, dav.copy_object):

        def steal(session: Session, t: Callable[..., dav.PutResult] = transfer) -> dav.PutResult:
            return t(session, alices.id, "secret.ics", bobs.id, "stolen.ics", False)

        await fails(db, steal, dav.NoSuchCollection)


@pytest_twisted.ensureDeferred
async def test_deleting_a_user_deletes_their_dav_data(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    await put(db, cal.id, "a.ics")
    await put(db, cal.id, "b.ics")
    await db.write(lambda s: dav.delete_object(s, cal.id, "b.ics"))
    await db.write(lambda s: accounts.delete_user(s, "alice@example.test"))

    def count(session: Session) -> list[int]:
        tables = (DavCollection, DavObject, DavTombstone)
        return [session.scalar(select(func.count()).select_from(t)) or 0 for t in tables]

    assert await db.read(count) == [0, 0, 0]


# -- resources -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_put_get_and_entity_tags(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    body = event("one", "Lunch")
    first = await put(
        db,
        cal.id,
        "one.ics",
        "one",
        data=body,
        start=at(1, 12),
        end=at(1, 13),
        summary="Lunch",
        emails=("Bob@Example.TEST", "bob@example.test", " carol@example.test "),
        if_none_match=True,
    )
    assert first.created and first.revision == 1
    assert first.etag == dav.make_etag(body)
    assert first.etag.startswith('"') and first.etag.endswith('"') and len(first.etag) == 34

    stored = await db.read(lambda s: dav.get_object(s, cal.id, "one.ics"))
    assert (stored.data, stored.etag, stored.uid, stored.size) == (
        body,
        first.etag,
        "one",
        len(body),
    )
    assert (stored.start, stored.end, stored.summary) == (at(1, 12), at(1, 13), "Lunch")
    assert stored.emails == ("bob@example.test", "carol@example.test")
    assert stored.revision == 1 and stored.collection_id == cal.id
    assert stored.modified.tzinfo is not None

    # If-None-Match: * refuses to replace; If-Match must match.
    await fails(
        db,
        lambda s: dav.put_object(s, cal.id, "one.ics", body, **fields("one"), if_none_match=True),
        dav.PreconditionFailed,
    )
    for wrong in ('"0000"', "W/" + first.etag, "0000, 1111"):
        with pytest.raises(dav.PreconditionFailed):
            await put(db, cal.id, "one.ics", "one", if_match=wrong)
    # Nothing failed took a revision.
    assert (await collection(db, user_id, dav.CALENDAR, "calendar")).revision == 1

    # Quoted, bare, in a list, or *.
    newer = event("one", "Lunch moved")
    second = await put(db, cal.id, "one.ics", "one", data=newer, if_match=first.etag)
    assert not second.created and second.revision == 2 and second.etag != first.etag
    third = await put(db, cal.id, "one.ics", "one", data=body, if_match=second.etag.strip('"'))
    assert third.etag == first.etag  # same bytes, same tag
    await put(db, cal.id, "one.ics", "one", data=body, if_match=f'"nope", {third.etag}')
    await put(db, cal.id, "one.ics", "one", data=body, if_match="*")
    # If-Match on a resource that does not exist fails, * included.
    with pytest.raises(dav.PreconditionFailed):
        await put(db, cal.id, "new.ics", if_match="*")
    await fails(
        db, lambda s: dav.delete_object(s, cal.id, "one.ics", '"x"'), dav.PreconditionFailed
    )

    with pytest.raises(dav.NoSuchObject):
        await db.read(lambda s: dav.get_object(s, cal.id, "missing.ics"))
    await fails(db, lambda s: dav.delete_object(s, cal.id, "missing.ics"), dav.NoSuchObject)
    await fails(
        db, lambda s: dav.put_object(s, 999_999, "x.ics", b"", **fields("x")), dav.NoSuchCollection
    )
    invalid = [
        ("x.ics", fields("")),
        ("x.ics", {**fields("x"), "component": "V" * 17}),
        ("a/b.ics", fields("x")),
        ("x" * 256, fields("x")),
    ]
    for name, values in invalid:

        def bad_put(session: Session, name: str = name, values: Any = values) -> dav.PutResult:
            return dav.put_object(session, cal.id, name, b"", **values)

        await fails(db, bad_put, dav.InvalidValue)

    assert await db.read(lambda s: dav.collection_usage(s, user_id)) == len(body)


def fields(uid: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "component": "VEVENT",
        "start": None,
        "end": None,
        "recurring": False,
        "summary": "",
        "emails": (),
    }


@pytest_twisted.ensureDeferred
async def test_a_uid_is_used_once_per_collection(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    tasks = await collection(db, user_id, dav.CALENDAR, "tasks")
    await put(db, cal.id, "a.ics", "shared")
    error = await fails(
        db, lambda s: dav.put_object(s, cal.id, "b.ics", b"x", **fields("shared")), dav.UidConflict
    )
    assert error.existing_name == "a.ics"
    # The same resource may be rewritten, and another collection may hold the UID.
    await put(db, cal.id, "a.ics", "shared", summary="again")
    await put(db, tasks.id, "t.ics", "shared", component="VTODO")
    assert await db.read(lambda s: dav.find_by_uid(s, cal.id, "shared")) == "a.ics"
    assert await db.read(lambda s: dav.find_by_uid(s, cal.id, "other")) is None
    assert await db.read(lambda s: dav.find_by_uid_for_user(s, user_id, "shared")) == [
        ("calendar", "a.ics"),
        ("tasks", "t.ics"),
    ]
    # A resource may change its UID to a free one.
    await put(db, cal.id, "a.ics", "renamed-uid")
    await put(db, cal.id, "b.ics", "shared")


@pytest_twisted.ensureDeferred
async def test_list_and_multiget(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    etags = {}
    for n in range(5):
        etags[f"{n}.ics"] = (await put(db, cal.id, f"{n}.ics", start=at(1), end=at(2))).etag
    listed = await db.read(lambda s: dav.list_objects(s, cal.id))
    assert [(o.name, o.etag, o.uid, o.component) for o in listed] == [
        (name, etag, f"uid-{name}", "VEVENT") for name, etag in etags.items()
    ]
    got = await db.read(
        lambda s: dav.get_objects(s, cal.id, ["3.ics", "missing.ics", "0.ics", "3.ics"])
    )
    assert [(o.name, o.etag) for o in got] == [("3.ics", etags["3.ics"]), ("0.ics", etags["0.ics"])]
    assert got[0].data == event("uid-3.ics")
    assert await db.read(lambda s: dav.get_objects(s, cal.id, [])) == []


@pytest_twisted.ensureDeferred
async def test_move_and_copy(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    other = await db.write(
        lambda s: dav.create_collection(
            s, user_id, dav.CALENDAR, "other", displayname="Other", components="VEVENT"
        )
    )
    a = await put(db, cal.id, "a.ics", "A", start=at(1), end=at(2), summary="A")
    await put(db, cal.id, "b.ics", "B")
    await put(db, other.id, "x.ics", "X")

    # Rename within a collection: one revision, tombstone for the old name.
    moved = await db.write(lambda s: dav.move_object(s, cal.id, "a.ics", cal.id, "a2.ics", False))
    assert (moved.etag, moved.created, moved.revision) == (a.etag, True, 3)
    changes = await db.read(lambda s: dav.changes_since(s, cal.id, 2))
    assert ([c.name for c in changes.changed], changes.deleted) == (["a2.ics"], ["a.ics"])
    kept = await db.read(lambda s: dav.get_object(s, cal.id, "a2.ics"))
    assert (kept.uid, kept.summary, kept.start, kept.revision) == ("A", "A", at(1), 3)

    # No overwrite without Overwrite: T.
    await fails(
        db,
        lambda s: dav.move_object(s, cal.id, "a2.ics", cal.id, "b.ics", False),
        dav.PreconditionFailed,
    )
    await fails(
        db, lambda s: dav.move_object(s, cal.id, "a2.ics", cal.id, "a2.ics", True), dav.InvalidValue
    )
    await fails(
        db,
        lambda s: dav.move_object(s, cal.id, "nope.ics", other.id, "n.ics", True),
        dav.NoSuchObject,
    )

    # Copy to another calendar: the source is untouched, the target gets a revision.
    before = await collection(db, user_id, dav.CALENDAR, "calendar")
    copied = await db.write(
        lambda s: dav.copy_object(s, cal.id, "a2.ics", other.id, "a.ics", False)
    )
    assert copied.created and copied.etag == a.etag and copied.revision == 2
    assert (await collection(db, user_id, dav.CALENDAR, "calendar")).revision == before.revision
    assert (await db.read(lambda s: dav.get_object(s, other.id, "a.ics"))).data == kept.data
    # A second copy of a UID in one collection conflicts, whatever its name.
    error = await fails(
        db,
        lambda s: dav.copy_object(s, cal.id, "a2.ics", other.id, "a3.ics", False),
        dav.UidConflict,
    )
    assert error.existing_name == "a.ics"
    await fails(
        db, lambda s: dav.copy_object(s, cal.id, "b.ics", cal.id, "b2.ics", False), dav.UidConflict
    )

    # Move over an existing resource with overwrite: replaced, not created.
    replaced = await db.write(
        lambda s: dav.move_object(s, cal.id, "b.ics", other.id, "x.ics", True)
    )
    assert not replaced.created and replaced.revision == 3
    source = await db.read(lambda s: dav.changes_since(s, cal.id, before.revision))
    assert (source.changed, source.deleted) == ([], ["b.ics"])
    target = await db.read(lambda s: dav.changes_since(s, other.id, 2))
    assert ([c.name for c in target.changed], target.deleted) == (["x.ics"], [])
    assert (await db.read(lambda s: dav.get_object(s, other.id, "x.ics"))).uid == "B"
    assert await db.read(lambda s: dav.find_by_uid(s, other.id, "X")) is None

    # Moving back to a name once removed drops its tombstone.
    await db.write(lambda s: dav.move_object(s, other.id, "x.ics", cal.id, "b.ics", False))
    back = await db.read(lambda s: dav.changes_since(s, cal.id, before.revision))
    assert ([c.name for c in back.changed], back.deleted) == (["b.ics"], [])


# -- queries ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_time_range_candidates(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    tasks = await collection(db, user_id, dav.CALENDAR, "tasks")
    await put(db, cal.id, "early.ics", start=at(1, 9), end=at(1, 10))
    await put(db, cal.id, "mid.ics", start=at(5, 9), end=at(5, 10))
    await put(db, cal.id, "late.ics", start=at(20, 9), end=at(20, 10))
    await put(db, cal.id, "weekly.ics", start=at(3, 8), end=None, recurring=True)
    await put(db, cal.id, "instant.ics", start=at(10, 12), end=at(10, 12))
    await put(db, cal.id, "undated.ics", component="VTODO")
    await put(db, tasks.id, "t.ics", component="VTODO", start=at(5), end=at(6))

    async def names(start: Any, end: Any, component: str | None = "VEVENT") -> list[str]:
        found = await db.read(lambda s: dav.time_range_candidates(s, cal.id, component, start, end))
        return [o.name for o in found]

    assert await names(at(4), at(6)) == ["mid.ics", "weekly.ics"]
    assert await names(at(1, 10), at(1, 11)) == ["early.ics"]  # touching: a candidate
    assert await names(at(2), at(3)) == []  # before the recurrence starts
    assert await names(at(2), at(3, 8)) == ["weekly.ics"]
    assert await names(at(25), None) == ["weekly.ics"]
    assert await names(None, at(2)) == ["early.ics"]
    assert await names(at(10, 12), at(10, 13)) == ["instant.ics", "weekly.ics"]
    assert await names(at(4), at(6), None) == ["mid.ics", "undated.ics", "weekly.ics"]
    assert await names(at(4), at(6), "VTODO") == ["undated.ics"]
    assert len(await names(None, None, None)) == 6
    with_todo = await db.read(lambda s: dav.objects_with_component(s, cal.id, "VTODO"))
    assert [o.name for o in with_todo] == ["undated.ics"]

    # Across the user's calendars, not the scheduling inbox.
    inbox = await collection(db, user_id, dav.SCHEDULE_INBOX, "inbox")
    await put(db, inbox.id, "invite.ics", start=at(5), end=at(6))
    work = await db.write(
        lambda s: dav.create_collection(
            s, user_id, dav.CALENDAR, "work", displayname="Work", components="VEVENT"
        )
    )
    await put(db, work.id, "standup.ics", start=at(5, 8), end=at(5, 9))
    between = await db.read(lambda s: dav.events_between(s, user_id, at(4), at(6)))
    assert [(o.collection_id, o.name) for o in between] == [
        (cal.id, "weekly.ics"),
        (work.id, "standup.ics"),
        (cal.id, "mid.ics"),
    ]
    todos = await db.read(lambda s: dav.events_between(s, user_id, at(4), at(6), "VTODO"))
    assert [o.name for o in todos] == ["undated.ics", "t.ics"]


@pytest_twisted.ensureDeferred
async def test_search_cards(db: Database) -> None:
    user_id = await user_with_defaults(db)
    book = await collection(db, user_id, dav.ADDRESSBOOK, "contacts")
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    more = await db.write(
        lambda s: dav.create_collection(
            s, user_id, dav.ADDRESSBOOK, "work", displayname="Work", components=""
        )
    )
    people = [
        (book.id, "1.vcf", "Jürgen MÜLLER", "jm@example.org"),
        (book.id, "2.vcf", "Anna Schmidt", "anna@MUELLER.example"),
        (more.id, "3.vcf", "Bob 100%_done", "bob@example.org"),
        (more.id, "4.vcf", "Carol", ""),
    ]
    for collection_id, name, fn, email in people:
        await put(
            db,
            collection_id,
            name,
            data=card(name, fn, email),
            component="VCARD",
            summary=fn,
            emails=(email,) if email else (),
        )
    await put(db, cal.id, "e.ics", summary="Müller meeting", emails=("jm@example.org",))
    bob = await make_user(db, "bob@example.test")
    await db.write(lambda s: dav.ensure_default_collections(s, bob))

    async def search(text: str, limit: int = 10, user: int = user_id) -> list[str]:
        return [o.name for o in await db.read(lambda s: dav.search_cards(s, user, text, limit))]

    assert await search("müller") == ["1.vcf"]  # Unicode case-insensitive, cards only
    assert await search("MUELLER") == ["2.vcf"]  # in an address
    assert await search("example.org") == ["3.vcf", "1.vcf"]  # by FN: Bob, Jürgen
    assert await search("%_") == ["3.vcf"]  # no LIKE wildcards
    assert await search("") == ["2.vcf", "3.vcf", "4.vcf", "1.vcf"]
    assert await search("", limit=2) == ["2.vcf", "3.vcf"]
    assert await search("a", limit=0) == []
    assert await search("müller", user=bob) == []
    found = await db.read(lambda s: dav.search_cards(s, user_id, "carol", 1))
    assert found[0].data == card("4.vcf", "Carol") and found[0].collection_id == more.id


# -- sync ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sync_initial_and_incremental(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    empty = await db.read(lambda s: dav.changes_since(s, cal.id, None))
    assert (empty.changed, empty.deleted, empty.revision, empty.truncated) == ([], [], 0, False)
    assert empty.token == dav.sync_token(cal) == f"http://gk.invalid/sync/{cal.id}-0"

    await put(db, cal.id, "a.ics")
    await put(db, cal.id, "b.ics")
    await put(db, cal.id, "c.ics")
    await db.write(lambda s: dav.delete_object(s, cal.id, "b.ics"))
    initial = await db.read(lambda s: dav.changes_since(s, cal.id, None))
    assert [o.name for o in initial.changed] == ["a.ics", "c.ics"]
    assert initial.deleted == [] and initial.revision == 4
    token = initial.token

    await put(db, cal.id, "a.ics", summary="changed")
    assert await db.write(lambda s: dav.delete_object(s, cal.id, "c.ics")) == 6
    await put(db, cal.id, "d.ics")
    now = await collection(db, user_id, dav.CALENDAR, "calendar")
    revision = dav.parse_sync_token(token, now)
    assert revision == 4
    later = await db.read(lambda s: dav.changes_since(s, cal.id, revision))
    assert [o.name for o in later.changed] == ["a.ics", "d.ics"]
    assert later.deleted == ["c.ics"]
    assert (later.revision, later.token, later.truncated) == (7, dav.sync_token(now), False)
    a = next(o for o in later.changed if o.name == "a.ics")
    assert a.etag == (await db.read(lambda s: dav.get_object(s, cal.id, "a.ics"))).etag

    # Deleted, then written again: changed, not deleted.
    await db.write(lambda s: dav.delete_object(s, cal.id, "d.ics"))
    await put(db, cal.id, "d.ics", summary="back")
    again = await db.read(lambda s: dav.changes_since(s, cal.id, 7))
    assert ([o.name for o in again.changed], again.deleted) == (["d.ics"], [])
    # Up to date: nothing.
    none = await db.read(lambda s: dav.changes_since(s, cal.id, again.revision))
    assert (none.changed, none.deleted, none.revision) == ([], [], again.revision)


@pytest_twisted.ensureDeferred
async def test_bad_sync_tokens_are_refused(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    tasks = await collection(db, user_id, dav.CALENDAR, "tasks")
    await put(db, cal.id, "a.ics")
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    assert dav.parse_sync_token(dav.sync_token(cal), cal) == 1
    assert dav.parse_sync_token(f"http://gk.invalid/sync/{cal.id}-0", cal) == 0
    for bad in (
        dav.sync_token(tasks),  # another collection's
        f"http://gk.invalid/sync/{cal.id}-2",  # from the future
        f"http://gk.invalid/sync/{cal.id}--1",
        f"http://gk.invalid/sync/{cal.id}-1x",
        "http://example.com/sync/1-1",
        "",
        "data:,1",
        "http://gk.invalid/sync/" + "9" * 40 + "-1",
    ):
        with pytest.raises(dav.InvalidSyncToken):
            dav.parse_sync_token(bad, cal)
    with pytest.raises(dav.InvalidSyncToken):
        await db.read(lambda s: dav.changes_since(s, cal.id, 5))
    with pytest.raises(dav.NoSuchCollection):
        await db.read(lambda s: dav.changes_since(s, 999_999, 0))
    with pytest.raises(ValueError):
        await db.read(lambda s: dav.changes_since(s, cal.id, 0, 0))


@pytest_twisted.ensureDeferred
async def test_truncated_sync_in_pages_loses_nothing(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    # What a client that synced at each revision holds: name -> etag.
    replicas: dict[int, dict[str, str]] = {0: {}}
    state: dict[str, str] = {}

    async def write(name: str, summary: str) -> None:
        result = await put(db, cal.id, name, summary=summary)
        state[name] = result.etag
        replicas[result.revision] = dict(state)

    async def remove(name: str) -> None:
        revision = await db.write(lambda s: dav.delete_object(s, cal.id, name))
        del state[name]
        replicas[revision] = dict(state)

    for n in range(8):
        await write(f"{n}.ics", "first")
    await remove("2.ics")
    await write("3.ics", "second")
    await remove("5.ics")
    await write("2.ics", "back")
    await write("0.ics", "second")
    moved = await db.write(lambda s: dav.move_object(s, cal.id, "1.ics", cal.id, "9.ics", False))
    state["9.ics"] = state.pop("1.ics")
    replicas[moved.revision] = dict(state)
    await write("10.ics", "first")
    current = (await collection(db, user_id, dav.CALENDAR, "calendar")).revision
    assert current == max(replicas) == 15

    def changes_since(session: Session, after: int | None, limit: int) -> dav.SyncChanges:
        return dav.changes_since(session, cal.id, after, limit)

    starts: list[int | None] = [None, *sorted(replicas)]
    for limit in (1, 2, 3, 5, 100):
        for start in starts:
            replica = dict(replicas[start or 0])
            revision = start
            pages = 0
            while True:
                page = await db.read(partial(changes_since, after=revision, limit=limit))
                pages += 1
                # A page is over the limit only to keep one revision whole.
                assert len(page.changed) + len(page.deleted) <= max(limit, 2)
                assert revision is None or page.revision >= revision
                for name in page.deleted:
                    replica.pop(name, None)
                for info in page.changed:
                    replica[info.name] = info.etag
                if revision is not None:
                    # Every token handed out is complete up to its revision.
                    assert page.revision in replicas
                revision = page.revision
                if not page.truncated:
                    break
                assert pages < 50
            assert (replica, revision) == (state, current), (limit, start)
            if limit == 1 and start == 0:
                assert pages == 9  # 10 entries, the MOVE's two in one page

    # The MOVE's two entries share a revision: a page of limit 1 has both.
    page = await db.read(lambda s: dav.changes_since(s, cal.id, moved.revision - 1, 1))
    assert ([o.name for o in page.changed], page.deleted) == (["9.ics"], ["1.ics"])
    assert page.revision == moved.revision and page.truncated


@pytest_twisted.ensureDeferred
async def test_sync_tokens_survive_reopening_the_database(db: Database, database_url: str) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    await put(db, cal.id, "a.ics")
    token = (await db.read(lambda s: dav.changes_since(s, cal.id, None))).token
    await put(db, cal.id, "b.ics")

    reopened = Database(database_url)
    try:
        with reopened.transaction(write=False) as session:
            now = dav.get_collection(session, user_id, dav.CALENDAR, "calendar")
            changes = dav.changes_since(session, cal.id, dav.parse_sync_token(token, now))
    finally:
        reopened.dispose()
    assert [o.name for o in changes.changed] == ["b.ics"]
    assert changes.token == dav.sync_token(now)


@pytest_twisted.ensureDeferred
async def test_pruned_tombstones_make_old_tokens_invalid(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    for name in ("a.ics", "b.ics", "c.ics"):
        await put(db, cal.id, name)
    await db.write(lambda s: dav.delete_object(s, cal.id, "a.ics"))
    await db.write(lambda s: dav.delete_object(s, cal.id, "b.ics"))
    now = datetime.datetime.now(UTC)
    assert await db.write(lambda s: dav.prune_tombstones(s, now - datetime.timedelta(1))) == 0
    assert await db.write(lambda s: dav.prune_tombstones(s, now + datetime.timedelta(1))) == 2
    pruned = await collection(db, user_id, dav.CALENDAR, "calendar")
    assert pruned.pruned_revision == 5
    with pytest.raises(dav.InvalidSyncToken):
        dav.parse_sync_token(f"http://gk.invalid/sync/{cal.id}-4", pruned)
    with pytest.raises(dav.InvalidSyncToken):
        await db.read(lambda s: dav.changes_since(s, cal.id, 4))
    assert (await db.read(lambda s: dav.changes_since(s, cal.id, 5))).changed == []
    initial = await db.read(lambda s: dav.changes_since(s, cal.id, None))
    assert [o.name for o in initial.changed] == ["c.ics"]


@pytest_twisted.ensureDeferred
async def test_concurrent_writes_take_distinct_revisions(db: Database) -> None:
    """On PostgreSQL these run in parallel threads; the collection lock orders them."""
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")
    results = await gatherResults([ensureDeferred(put(db, cal.id, f"{n}.ics")) for n in range(20)])
    assert sorted(r.revision for r in results) == list(range(1, 21))
    # The same UID under two names at once: exactly one wins.
    outcomes = await gatherResults(
        [ensureDeferred(_outcome(put(db, cal.id, f"dup{n}.ics", "dup"))) for n in range(6)]
    )
    assert sorted(outcomes) == ["UidConflict"] * 5 + ["ok"]
    assert (await collection(db, user_id, dav.CALENDAR, "calendar")).revision == 21


async def _outcome(coroutine: Any) -> str:
    try:
        await coroutine
    except dav.UidConflict:
        return "UidConflict"
    return "ok"


@pytest_twisted.ensureDeferred
async def test_a_recurring_events_months_are_kept_with_it_and_go_with_it(db: Database) -> None:
    user_id = await user_with_defaults(db)
    cal = await collection(db, user_id, dav.CALENDAR, "calendar")

    def put_series(series: dict[tuple[str, int], bytes], recurring: bool = True) -> Any:
        values = fields("weekly") | {"recurring": recurring}
        return partial(dav.put_object, collection_id=cal.id, name="w.ics", data=b"x", **values,
                       series=series)  # fmt: skip

    def months(first: int = 0, last: int = 100) -> Any:
        return partial(dav.series_months, collection_id=cal.id, zone_key="UTC", first=first,
                       last=last)  # fmt: skip

    first = await db.write(put_series({("UTC", 1): b"a" * 24, ("UTC", 2): b"b" * 24}))
    await db.write(lambda s: dav.put_object(s, cal.id, "o.ics", b"y", **fields("other")))
    assert await db.read(months()) == [(first.etag, 1, b"a" * 24), (first.etag, 2, b"b" * 24)]
    assert await db.read(months(2, 2)) == [(first.etag, 2, b"b" * 24)]
    assert await db.read(partial(dav.series_months, collection_id=cal.id, zone_key="tzid:X",
                                 first=0, last=100)) == []  # fmt: skip

    # Rewritten: its new months replace the old ones, under its new tag.
    second = await db.write(put_series({("UTC", 3): b"c" * 24}))
    assert await db.read(months()) == [(second.etag, 3, b"c" * 24)]
    # No longer recurring: no months.
    await db.write(put_series({}, recurring=False))
    assert await db.read(months()) == []
    await db.write(put_series({("UTC", 4): b"d" * 24}))
    assert len(await db.read(months())) == 1
    await db.write(lambda s: dav.delete_object(s, cal.id, "w.ics"))
    assert await db.read(months()) == []
