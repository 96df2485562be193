"""
WebDAV and CalDAV protocol edge cases over raw HTTP: PROPFIND forms and
depths, PROPPATCH all-or-nothing, MKCALENDAR and extended MKCOL, PUT with
entity tags and conditions, bodies refused with their precondition, UID
conflicts, quota, MOVE/COPY, DELETE, GET of a whole calendar and REPORT
dispatch.  Access, limits and the scheduling seam: L{tests.dav.test_access}.
"""

from __future__ import annotations

import pytest_twisted

from tests.dav.conftest import (
    ALICE,
    BOB,
    CALENDAR,
    CS,
    HOME,
    ICAL,
    ICS,
    NAMESPACES,
    PASSWORD,
    C,
    D,
    DavServer,
    event,
    prop,
    prop_status,
    prop_text,
    propfind_body,
    proppatch,
)

# -- PROPFIND ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_propfind_allprop_propname_and_depths(dav_server: DavServer) -> None:
    """
    allprop gives the RFC 4918 properties (not the CalDAV ones); propname
    lists every name; Depth 1 adds the members with their ETags; Depth
    infinity on a collection is refused; no Depth means 0.
    """
    put = await dav_server.call("PUT", f"{CALENDAR}one.ics", event("one"), ICS)
    assert put.status == 201
    allprop = await dav_server.call("PROPFIND", CALENDAR, headers={"Depth": "0"})
    (response,) = allprop.responses().values()
    assert prop_text(response, f"{D}displayname") == "Calendar"
    assert prop(response, f"{D}resourcetype") is not None
    assert prop(response, f"{CS}getctag") is None
    names = await dav_server.call(
        "PROPFIND",
        CALENDAR,
        f"<d:propfind {NAMESPACES}><d:propname/></d:propfind>".encode(),
        {"Depth": "0"},
    )
    listed = {child.tag for child in names.xml().iter(f"{D}prop") for child in child}
    assert {f"{D}sync-token", f"{CS}getctag", f"{C}supported-calendar-component-set"} <= listed
    depth1 = await dav_server.call(
        "PROPFIND", CALENDAR, propfind_body("d:getetag", "d:getcontenttype"), {"Depth": "1"}
    )
    member = depth1.responses()[f"{CALENDAR}one.ics"]
    assert prop_text(member, f"{D}getetag") == put.header("etag")
    assert prop_text(member, f"{D}getcontenttype") == (
        "text/calendar; charset=utf-8; component=vevent"
    )
    infinite = await dav_server.call("PROPFIND", CALENDAR, headers={"Depth": "infinity"})
    assert infinite.status == 403
    assert infinite.xml().find(f"{D}propfind-finite-depth") is not None
    no_depth = await dav_server.call("PROPFIND", CALENDAR, propfind_body("d:getetag"))
    assert set(no_depth.responses()) == {CALENDAR}


# -- PROPPATCH -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_proppatch_sets_and_removes_collection_properties(dav_server: DavServer) -> None:
    """Display name, colour, order, description, time zone and a dead property round trip."""
    timezone = (
        "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nEND:VTIMEZONE\r\nEND:VCALENDAR"
    )
    answer = await dav_server.call(
        "PROPPATCH",
        CALENDAR,
        proppatch(
            "<d:set><d:prop><d:displayname>Home life</d:displayname>"
            "<ical:calendar-color>#FF8800FF</ical:calendar-color>"
            "<ical:calendar-order>3</ical:calendar-order>"
            "<c:calendar-description>Family things</c:calendar-description>"
            f"<c:calendar-timezone>{timezone}</c:calendar-timezone>"
            '<x:flavour kind="sweet">vanilla</x:flavour></d:prop></d:set>'
        ),
    )
    assert answer.status == 207
    (response,) = answer.responses().values()
    assert prop_status(response, f"{D}displayname") == 200
    assert prop_status(response, "{urn:example:dead}flavour") == 200
    after = await dav_server.call(
        "PROPFIND",
        CALENDAR,
        f'<d:propfind {NAMESPACES} xmlns:x="urn:example:dead"><d:prop><d:displayname/>'
        "<ical:calendar-color/><ical:calendar-order/><c:calendar-description/>"
        "<c:calendar-timezone/><x:flavour/></d:prop></d:propfind>".encode(),
        {"Depth": "0"},
    )
    (found,) = after.responses().values()
    assert prop_text(found, f"{D}displayname") == "Home life"
    assert prop_text(found, f"{ICAL}calendar-color") == "#FF8800FF"
    assert prop_text(found, f"{ICAL}calendar-order") == "3"
    assert prop_text(found, f"{C}calendar-description") == "Family things"
    assert "TZID:Europe/Paris" in (prop_text(found, f"{C}calendar-timezone") or "")
    dead = prop(found, "{urn:example:dead}flavour")
    assert dead is not None and dead.text == "vanilla" and dead.get("kind") == "sweet"
    removed = await dav_server.call(
        "PROPPATCH",
        CALENDAR,
        proppatch("<d:remove><d:prop><ical:calendar-color/><x:flavour/></d:prop></d:remove>"),
    )
    assert removed.status == 207
    again = await dav_server.call(
        "PROPFIND",
        CALENDAR,
        f'<d:propfind {NAMESPACES} xmlns:x="urn:example:dead"><d:prop>'
        "<ical:calendar-color/><x:flavour/></d:prop></d:propfind>".encode(),
        {"Depth": "0"},
    )
    (gone,) = again.responses().values()
    assert prop_status(gone, f"{ICAL}calendar-color") == 404
    assert prop_status(gone, "{urn:example:dead}flavour") == 404


@pytest_twisted.ensureDeferred
async def test_proppatch_is_all_or_nothing(dav_server: DavServer) -> None:
    """
    A protected property in the request fails with 403
    cannot-modify-protected-property, the rest with 424, and nothing changes.
    """
    before = await dav_server.call("PROPFIND", CALENDAR, propfind_body("d:sync-token"))
    answer = await dav_server.call(
        "PROPPATCH",
        CALENDAR,
        proppatch(
            "<d:set><d:prop><d:displayname>Renamed</d:displayname>"
            "<d:getetag>forged</d:getetag><x:note>kept?</x:note></d:prop></d:set>"
        ),
    )
    assert answer.status == 207
    (response,) = answer.responses().values()
    assert prop_status(response, f"{D}getetag") == 403
    assert prop_status(response, f"{D}displayname") == 424
    assert prop_status(response, "{urn:example:dead}note") == 424
    assert response.find(f".//{D}cannot-modify-protected-property") is not None
    after = await dav_server.call(
        "PROPFIND", CALENDAR, propfind_body("d:displayname", "d:sync-token")
    )
    (found,) = after.responses().values()
    assert prop_text(found, f"{D}displayname") == "Calendar"
    (unchanged,) = before.responses().values()
    assert prop_text(found, f"{D}sync-token") == prop_text(unchanged, f"{D}sync-token")


# -- MKCALENDAR and MKCOL ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_mkcalendar_creates_a_calendar_with_its_properties(dav_server: DavServer) -> None:
    """201 with the properties set; the same name again, or the inbox, is 405."""
    body = (
        f'<?xml version="1.0"?><c:mkcalendar {NAMESPACES}><d:set><d:prop>'
        "<d:displayname>Work</d:displayname><ical:calendar-color>#0000FF</ical:calendar-color>"
        '<c:supported-calendar-component-set><c:comp name="VTODO"/>'
        '<c:comp name="VEVENT"/></c:supported-calendar-component-set>'
        "</d:prop></d:set></c:mkcalendar>"
    ).encode()
    created = await dav_server.call("MKCALENDAR", f"{HOME}work/", body)
    assert created.status == 201
    found = await dav_server.call(
        "PROPFIND",
        f"{HOME}work/",
        propfind_body("d:displayname", "ical:calendar-color", "c:supported-calendar-component-set"),
    )
    (response,) = found.responses().values()
    assert prop_text(response, f"{D}displayname") == "Work"
    assert prop_text(response, f"{ICAL}calendar-color") == "#0000FF"
    components = prop(response, f"{C}supported-calendar-component-set")
    assert components is not None
    assert [c.get("name") for c in components] == ["VTODO", "VEVENT"]
    again = await dav_server.call("MKCALENDAR", f"{HOME}work/", body)
    assert again.status == 405
    assert again.xml().find(f"{D}resource-must-be-null") is not None
    inbox = await dav_server.call("MKCALENDAR", f"{HOME}inbox/")
    assert inbox.status == 405
    elsewhere = await dav_server.call("MKCALENDAR", f"/dav/addressbooks/{ALICE}/cal/")
    assert elsewhere.status == 403
    assert elsewhere.xml().find(f"{C}calendar-collection-location-ok") is not None


@pytest_twisted.ensureDeferred
async def test_mkcalendar_with_a_bad_property_creates_nothing(dav_server: DavServer) -> None:
    """A component gk does not hold fails the request (403 mkcalendar-response), no calendar."""
    body = (
        f'<?xml version="1.0"?><c:mkcalendar {NAMESPACES}><d:set><d:prop>'
        "<d:displayname>Odd</d:displayname>"
        '<c:supported-calendar-component-set><c:comp name="VPOLL"/>'
        "</c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>"
    ).encode()
    answer = await dav_server.call("MKCALENDAR", f"{HOME}odd/", body)
    assert answer.status == 403
    assert answer.xml().tag == f"{C}mkcalendar-response"
    missing = await dav_server.call("PROPFIND", f"{HOME}odd/")
    assert missing.status == 404


@pytest_twisted.ensureDeferred
async def test_extended_and_plain_mkcol_create_collections(dav_server: DavServer) -> None:
    """
    Extended MKCOL makes an address book or a calendar in its own home;
    a plain MKCOL makes the home's kind; the wrong resourcetype is refused.
    """
    books = f"/dav/addressbooks/{ALICE}/"
    extended = (
        f'<?xml version="1.0"?><d:mkcol {NAMESPACES}><d:set><d:prop>'
        "<d:resourcetype><d:collection/><r:addressbook/></d:resourcetype>"
        "<d:displayname>Friends</d:displayname>"
        "<r:addressbook-description>People I like</r:addressbook-description>"
        "</d:prop></d:set></d:mkcol>"
    ).encode()
    assert (await dav_server.call("MKCOL", f"{books}friends/", extended)).status == 201
    assert (await dav_server.call("MKCOL", f"{books}plain/")).status == 201
    calendar = (
        f'<?xml version="1.0"?><d:mkcol {NAMESPACES}><d:set><d:prop>'
        "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>"
        "</d:prop></d:set></d:mkcol>"
    ).encode()
    assert (await dav_server.call("MKCOL", f"{HOME}viamkcol/", calendar)).status == 201
    wrong = await dav_server.call("MKCOL", f"{books}wrong/", calendar)
    assert wrong.status == 403
    assert wrong.xml().find(f"{D}valid-resourcetype") is not None
    listing = await dav_server.call(
        "PROPFIND", books, propfind_body("d:displayname", "r:addressbook-description"),
        {"Depth": "1"},
    )  # fmt: skip
    responses = listing.responses()
    assert set(responses) == {books, *(f"{books}{n}/" for n in ("contacts", "friends", "plain"))}
    friends = responses[f"{books}friends/"]
    assert prop_text(friends, f"{D}displayname") == "Friends"
    assert prop_text(friends, "{urn:ietf:params:xml:ns:carddav}addressbook-description") == (
        "People I like"
    )
    kinds = await dav_server.call("PROPFIND", f"{HOME}viamkcol/", propfind_body("d:resourcetype"))
    (response,) = kinds.responses().values()
    types = prop(response, f"{D}resourcetype")
    assert types is not None and types.find(f"{C}calendar") is not None


# -- PUT, GET, DELETE ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_put_get_delete_with_entity_tags_and_conditions(dav_server: DavServer) -> None:
    """
    PUT answers 201 then 204, each with the new strong ETag that GET and
    HEAD repeat; If-None-Match: * and a stale If-Match get 412; DELETE
    honours If-Match.
    """
    path = f"{CALENDAR}meeting.ics"
    created = await dav_server.call("PUT", path, event("m1"), {**ICS, "If-None-Match": "*"})
    assert created.status == 201
    first = created.header("etag")
    assert first and first.startswith('"') and not first.startswith("W/")
    got = await dav_server.call("GET", path)
    assert got.status == 200 and got.header("etag") == first
    assert got.header("content-type") == "text/calendar; charset=utf-8; component=vevent"
    assert b"SUMMARY:Meeting" in got.body and got.header("last-modified")
    head = await dav_server.call("HEAD", path)
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == str(len(got.body))
    exists = await dav_server.call("PUT", path, event("m1", "Again"), {**ICS, "If-None-Match": "*"})
    assert exists.status == 412
    replaced = await dav_server.call("PUT", path, event("m1", "Moved"), {**ICS, "If-Match": first})
    assert replaced.status == 204
    second = replaced.header("etag")
    assert second and second != first
    stale = await dav_server.call("PUT", path, event("m1", "Lost"), {**ICS, "If-Match": first})
    assert stale.status == 412
    not_modified = await dav_server.call("GET", path, headers={"If-None-Match": second})
    assert not_modified.status == 304
    assert (await dav_server.call("DELETE", path, headers={"If-Match": first})).status == 412
    assert (await dav_server.call("DELETE", path, headers={"If-Match": second})).status == 204
    assert (await dav_server.call("GET", path)).status == 404
    assert (await dav_server.call("DELETE", path)).status == 404


@pytest_twisted.ensureDeferred
async def test_bad_bodies_are_refused_and_nothing_is_stored(dav_server: DavServer) -> None:
    """
    Not iCalendar: 403 valid-calendar-data; a to-do in the event calendar:
    403 supported-calendar-component; a wrong content type: 403
    supported-calendar-data; nothing is stored by any of them.
    """
    broken = await dav_server.call("PUT", f"{CALENDAR}bad.ics", b"this is not a calendar", ICS)
    assert broken.status == 403
    assert broken.xml().find(f"{C}valid-calendar-data") is not None
    todo = await dav_server.call("PUT", f"{CALENDAR}todo.ics", event("t1", component="VTODO"), ICS)
    assert todo.status == 403
    assert todo.xml().find(f"{C}supported-calendar-component") is not None
    typed = await dav_server.call(
        "PUT", f"{CALENDAR}typed.ics", event("x1"), {"Content-Type": "image/png"}
    )
    assert typed.status == 403
    assert typed.xml().find(f"{C}supported-calendar-data") is not None
    listing = await dav_server.call("PROPFIND", CALENDAR, headers={"Depth": "1"})
    assert set(listing.responses()) == {CALENDAR}
    missing_type = await dav_server.call(
        "PUT", f"{CALENDAR}untyped.ics", event("u1"), {"Content-Type": ""}
    )
    assert missing_type.status == 201


@pytest_twisted.ensureDeferred
async def test_uid_conflict_names_the_resource_that_has_the_uid(dav_server: DavServer) -> None:
    """A second resource with the same UID: 403 no-uid-conflict with the first one's href."""
    assert (await dav_server.call("PUT", f"{CALENDAR}first.ics", event("same"), ICS)).status == 201
    second = await dav_server.call("PUT", f"{CALENDAR}second.ics", event("same"), ICS)
    assert second.status == 403
    conflict = second.xml().find(f"{C}no-uid-conflict")
    assert conflict is not None
    assert conflict.findtext(f"{D}href") == f"{CALENDAR}first.ics"
    assert (await dav_server.call("GET", f"{CALENDAR}second.ics")).status == 404


@pytest_twisted.ensureDeferred
async def test_quota_exceeded_is_507(dav_server: DavServer) -> None:
    """An account whose quota the object would pass gets 507 quota-not-exceeded."""
    await dav_server.app.accounts.create_user("small@example.test", PASSWORD, quota_bytes=100)
    answer = await dav_server.call(
        "PUT",
        "/dav/calendars/small@example.test/calendar/x.ics",
        event("q1"),
        ICS,
        user="small@example.test",
    )
    assert answer.status == 507
    assert answer.xml().find(f"{D}quota-not-exceeded") is not None


@pytest_twisted.ensureDeferred
async def test_get_on_a_calendar_exports_it_whole(dav_server: DavServer) -> None:
    """GET on the calendar: one VCALENDAR with every event and the shared time zone once."""
    for uid in ("a", "b"):
        put = await dav_server.call("PUT", f"{CALENDAR}{uid}.ics", event(uid, tz=True), ICS)
        assert put.status == 201
    export = await dav_server.call("GET", CALENDAR)
    assert export.status == 200
    assert export.header("content-type") == "text/calendar; charset=utf-8"
    text = export.body.decode()
    assert text.count("BEGIN:VCALENDAR") == 1 and text.count("BEGIN:VEVENT") == 2
    assert text.count("BEGIN:VTIMEZONE") == 1


@pytest_twisted.ensureDeferred
async def test_delete_removes_calendars_but_never_inbox_or_outbox(dav_server: DavServer) -> None:
    """DELETE of a calendar takes its events with it; the inbox and outbox stay."""
    assert (await dav_server.call("PUT", f"{HOME}tasks/t.ics", event("t", component="VTODO"),
                                  ICS)).status == 201  # fmt: skip
    assert (await dav_server.call("DELETE", f"{HOME}tasks/")).status == 204
    assert (await dav_server.call("PROPFIND", f"{HOME}tasks/")).status == 404
    assert (await dav_server.call("GET", f"{HOME}tasks/t.ics")).status == 404
    assert (await dav_server.call("DELETE", f"{HOME}inbox/")).status == 403
    assert (await dav_server.call("DELETE", f"{HOME}outbox/")).status == 403
    assert (await dav_server.call("DELETE", HOME)).status == 405


@pytest_twisted.ensureDeferred
async def test_the_inbox_refuses_put_and_the_outbox_a_bad_request(dav_server: DavServer) -> None:
    """
    The inbox is not writable by PUT (405); a POST to the outbox that is no
    scheduling message gets 400 (the scheduler answers it).
    """
    put = await dav_server.call("PUT", f"{HOME}inbox/x.ics", event("i1"), ICS)
    assert put.status == 405
    post = await dav_server.call("POST", f"{HOME}outbox/", b"BEGIN:VCALENDAR", ICS)
    assert post.status == 400
    assert b"valid-scheduling-message" in post.body


# -- MOVE and COPY --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_move_and_copy_within_own_collections(dav_server: DavServer) -> None:
    """
    COPY to another calendar (201), again with Overwrite F (412); MOVE
    renames (source gone); a destination of another user or of another
    kind is refused (403), and so is a component the target does not hold.
    """
    mk = await dav_server.call("MKCALENDAR", f"{HOME}work/")
    assert mk.status == 201
    assert (await dav_server.call("PUT", f"{CALENDAR}e.ics", event("e1"), ICS)).status == 201
    url = f"{dav_server.url}{HOME}work/e.ics"
    copied = await dav_server.call("COPY", f"{CALENDAR}e.ics", headers={"Destination": url})
    assert copied.status == 201 and copied.header("etag")
    refused = await dav_server.call(
        "COPY", f"{CALENDAR}e.ics", headers={"Destination": url, "Overwrite": "F"}
    )
    assert refused.status == 412
    overwritten = await dav_server.call("COPY", f"{CALENDAR}e.ics", headers={"Destination": url})
    assert overwritten.status == 204
    moved = await dav_server.call(
        "MOVE", f"{CALENDAR}e.ics", headers={"Destination": f"{CALENDAR}renamed.ics"}
    )
    assert moved.status == 201
    assert (await dav_server.call("GET", f"{CALENDAR}e.ics")).status == 404
    assert (await dav_server.call("GET", f"{CALENDAR}renamed.ics")).status == 200
    for destination in (
        f"/dav/calendars/{BOB}/calendar/stolen.ics",
        f"/dav/addressbooks/{ALICE}/contacts/e.vcf",
        f"{HOME}tasks/e.ics",
    ):
        answer = await dav_server.call(
            "MOVE", f"{CALENDAR}renamed.ics", headers={"Destination": destination}
        )
        assert answer.status == 403, destination
    assert (await dav_server.call("GET", f"{CALENDAR}renamed.ics")).status == 200
    bob = await dav_server.call("GET", f"/dav/calendars/{BOB}/calendar/stolen.ics", user=BOB)
    assert bob.status == 404


# -- REPORT dispatch -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_report_dispatch_to_collection_reports(dav_server: DavServer) -> None:
    """
    calendar-multiget on a calendar answers the data of the hrefs named;
    a card report on a calendar, or an unknown report, is 403 supported-report.
    """
    assert (await dav_server.call("PUT", f"{CALENDAR}r.ics", event("r1"), ICS)).status == 201
    multiget = (
        f'<?xml version="1.0"?><c:calendar-multiget {NAMESPACES}><d:prop><d:getetag/>'
        f"<c:calendar-data/></d:prop><d:href>{CALENDAR}r.ics</d:href>"
        f"<d:href>{CALENDAR}missing.ics</d:href></c:calendar-multiget>"
    ).encode()
    answer = await dav_server.call("REPORT", CALENDAR, multiget, {"Depth": "1"})
    assert answer.status == 207
    responses = answer.responses()
    found = responses[f"{CALENDAR}r.ics"]
    assert "UID:r1" in (prop_text(found, f"{C}calendar-data") or "")
    assert "404" in (responses[f"{CALENDAR}missing.ics"].findtext(f"{D}status") or "")
    cards = (
        f'<?xml version="1.0"?><r:addressbook-multiget {NAMESPACES}><d:prop><d:getetag/>'
        f"</d:prop><d:href>{CALENDAR}r.ics</d:href></r:addressbook-multiget>"
    ).encode()
    wrong = await dav_server.call("REPORT", CALENDAR, cards)
    assert wrong.status == 403
    assert wrong.xml().find(f"{D}supported-report") is not None
    unknown = await dav_server.call("REPORT", CALENDAR, b'<x:whatever xmlns:x="urn:x"/>')
    assert unknown.status == 403
