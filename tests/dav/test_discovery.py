"""
How a client finds its way: the /.well-known redirects, the DAV header on
every answer, the root's current-user-principal, the principal's homes,
addresses and scheduling URLs, the homes' members, and the principal
REPORTs (expand-property, principal-property-search).
"""

from __future__ import annotations

import pytest_twisted

from tests.dav.conftest import (
    ALICE,
    BOB,
    CS,
    NAMESPACES,
    C,
    D,
    DavServer,
    R,
    prop,
    prop_status,
    prop_text,
    propfind_body,
)

DAV_CLASSES = "1, 3, access-control, calendar-access, addressbook, extended-mkcol"
PRINCIPAL = f"/dav/principals/{ALICE}/"


@pytest_twisted.ensureDeferred
async def test_well_known_urls_redirect_to_the_dav_root(dav_server: DavServer) -> None:
    """Both /.well-known names answer 301 to /dav/ for GET and PROPFIND, without credentials."""
    for path in ("/.well-known/caldav", "/.well-known/carddav"):
        for method in ("GET", "PROPFIND"):
            answer = await dav_server.call(method, path, user=None)
            assert answer.status == 301, (method, path)
            assert answer.header("location") == "/dav/"


@pytest_twisted.ensureDeferred
async def test_every_answer_carries_the_dav_header(dav_server: DavServer) -> None:
    """Success, 401, 400, 403, 404 and 405 answers all say which DAV classes gk speaks."""
    answers = [
        await dav_server.call("OPTIONS", "/dav/", user=None),
        await dav_server.call("PROPFIND", "/dav/", user=None),
        await dav_server.call("PROPFIND", "/dav/", password="wrong password"),
        await dav_server.call("PROPFIND", "/dav/calendars/alice@example.test/%2e%2e/"),
        await dav_server.call("PROPFIND", f"/dav/principals/{BOB}/"),
        await dav_server.call("GET", "/dav/nothing/here"),
        await dav_server.call("PUT", "/dav/", b"x"),
        await dav_server.call("PROPFIND", "/dav/", headers={"Depth": "0"}),
    ]
    assert [a.status for a in answers] == [200, 401, 401, 400, 403, 404, 405, 207]
    for answer in answers:
        assert (answer.header("dav") or "").startswith(DAV_CLASSES)
        assert "calendar-auto-schedule" in (answer.header("dav") or "")


@pytest_twisted.ensureDeferred
async def test_unauthenticated_requests_get_a_basic_challenge(dav_server: DavServer) -> None:
    """401 names the Basic scheme, the realm and UTF-8 as the credentials' charset."""
    answer = await dav_server.call("PROPFIND", "/dav/", user=None)
    assert answer.status == 401
    assert answer.header("www-authenticate") == 'Basic realm="gk", charset="UTF-8"'


@pytest_twisted.ensureDeferred
async def test_options_lists_the_methods_of_each_kind_of_resource(dav_server: DavServer) -> None:
    """A calendar allows MKCALENDAR, an object PUT/MOVE/COPY; LOCK is nowhere."""
    calendar = await dav_server.call("OPTIONS", f"/dav/calendars/{ALICE}/calendar/")
    resource = await dav_server.call("OPTIONS", f"/dav/calendars/{ALICE}/calendar/x.ics")
    allow_calendar = set((calendar.header("allow") or "").split(", "))
    allow_resource = set((resource.header("allow") or "").split(", "))
    assert {"PROPFIND", "REPORT", "MKCALENDAR", "DELETE"} <= allow_calendar
    assert {"GET", "PUT", "DELETE", "MOVE", "COPY"} <= allow_resource
    assert "LOCK" not in allow_calendar | allow_resource
    locked = await dav_server.call("LOCK", f"/dav/calendars/{ALICE}/calendar/x.ics")
    assert locked.status == 405
    unknown = await dav_server.call("FROBNICATE", f"/dav/calendars/{ALICE}/calendar/")
    assert unknown.status == 501


@pytest_twisted.ensureDeferred
async def test_root_names_the_current_user_principal(dav_server: DavServer) -> None:
    """PROPFIND on /dav/ (with and without the slash) points to the signed-in user's principal."""
    for path in ("/dav/", "/dav"):
        answer = await dav_server.call(
            "PROPFIND",
            path,
            propfind_body("d:current-user-principal", "d:principal-collection-set"),
            {"Depth": "0"},
        )
        assert answer.status == 207
        (response,) = answer.responses().values()
        found = prop(response, f"{D}current-user-principal")
        assert found is not None and found.findtext(f"{D}href") == PRINCIPAL
        collections = prop(response, f"{D}principal-collection-set")
        assert collections is not None and collections.findtext(f"{D}href") == "/dav/principals/"


@pytest_twisted.ensureDeferred
async def test_principal_has_homes_addresses_and_scheduling_urls(dav_server: DavServer) -> None:
    """The principal names both homes, its mail addresses (aliases too), inbox and outbox."""
    await dav_server.app.accounts.add_alias("a.liddell@example.test", ALICE)
    answer = await dav_server.call(
        "PROPFIND",
        PRINCIPAL,
        propfind_body(
            "d:resourcetype",
            "d:displayname",
            "d:principal-URL",
            "c:calendar-home-set",
            "r:addressbook-home-set",
            "c:calendar-user-address-set",
            "c:schedule-inbox-URL",
            "c:schedule-outbox-URL",
            "c:calendar-user-type",
            "d:current-user-privilege-set",
            "d:supported-report-set",
            "cs:email-address-set",
            "d:no-such-property",
        ),
        {"Depth": "0"},
    )
    response = answer.responses()[PRINCIPAL]

    def href(name: str) -> str | None:
        found = prop(response, name)
        return None if found is None else found.findtext(f"{D}href")

    assert href(f"{D}principal-URL") == PRINCIPAL
    assert href(f"{C}calendar-home-set") == f"/dav/calendars/{ALICE}/"
    assert href(f"{R}addressbook-home-set") == f"/dav/addressbooks/{ALICE}/"
    assert href(f"{C}schedule-inbox-URL") == f"/dav/calendars/{ALICE}/inbox/"
    assert href(f"{C}schedule-outbox-URL") == f"/dav/calendars/{ALICE}/outbox/"
    addresses = prop(response, f"{C}calendar-user-address-set")
    assert addresses is not None
    assert [h.text for h in addresses.iter(f"{D}href")] == [
        f"mailto:{ALICE}",
        "mailto:a.liddell@example.test",
        PRINCIPAL,
    ]
    emails = prop(response, f"{CS}email-address-set")
    assert emails is not None and emails.findtext(f"{CS}email-address") == ALICE
    assert prop_text(response, f"{C}calendar-user-type") == "INDIVIDUAL"
    resourcetype = prop(response, f"{D}resourcetype")
    assert resourcetype is not None and resourcetype.find(f"{D}principal") is not None
    reports = prop(response, f"{D}supported-report-set")
    assert reports is not None and reports.find(f".//{D}principal-property-search") is not None
    privileges = prop(response, f"{D}current-user-privilege-set")
    assert privileges is not None and privileges.find(f".//{D}read") is not None
    assert prop_status(response, f"{D}no-such-property") == 404


@pytest_twisted.ensureDeferred
async def test_calendar_home_lists_calendars_inbox_and_outbox(dav_server: DavServer) -> None:
    """Depth 1 on the calendar home: the default calendar and task list, inbox, outbox."""
    answer = await dav_server.call(
        "PROPFIND",
        f"/dav/calendars/{ALICE}/",
        propfind_body(
            "d:resourcetype",
            "d:displayname",
            "cs:getctag",
            "d:sync-token",
            "c:supported-calendar-component-set",
            "c:schedule-default-calendar-URL",
            "d:quota-used-bytes",
            "d:owner",
        ),
        {"Depth": "1"},
    )
    responses = answer.responses()
    home = f"/dav/calendars/{ALICE}/"
    assert set(responses) == {
        home,
        *(f"{home}{n}/" for n in ("calendar", "tasks", "inbox", "outbox")),
    }
    calendar = responses[f"{home}calendar/"]
    types = prop(calendar, f"{D}resourcetype")
    assert types is not None and types.find(f"{C}calendar") is not None
    ctag = prop(calendar, f"{CS}getctag")
    token = prop(calendar, f"{D}sync-token")
    assert ctag is not None and token is not None and ctag.text == token.text
    components = prop(responses[f"{home}tasks/"], f"{C}supported-calendar-component-set")
    assert components is not None
    assert [c.get("name") for c in components] == ["VTODO"]
    inbox = responses[f"{home}inbox/"]
    inbox_type = prop(inbox, f"{D}resourcetype")
    assert inbox_type is not None and inbox_type.find(f"{C}schedule-inbox") is not None
    default = prop(inbox, f"{C}schedule-default-calendar-URL")
    assert default is not None and default.findtext(f"{D}href") == f"{home}calendar/"
    outbox_type = prop(responses[f"{home}outbox/"], f"{D}resourcetype")
    assert outbox_type is not None and outbox_type.find(f"{C}schedule-outbox") is not None
    assert prop_text(responses[home], f"{D}quota-used-bytes") == "0"


@pytest_twisted.ensureDeferred
async def test_address_book_home_lists_the_default_address_book(dav_server: DavServer) -> None:
    """Depth 1 on the address book home: "contacts", with vCard 3.0 and 4.0 support."""
    home = f"/dav/addressbooks/{ALICE}/"
    answer = await dav_server.call(
        "PROPFIND",
        home,
        propfind_body("d:resourcetype", "r:supported-address-data", "r:max-resource-size"),
        {"Depth": "1"},
    )
    responses = answer.responses()
    assert set(responses) == {home, f"{home}contacts/"}
    book = responses[f"{home}contacts/"]
    types = prop(book, f"{D}resourcetype")
    assert types is not None and types.find(f"{R}addressbook") is not None
    data = prop(book, f"{R}supported-address-data")
    assert data is not None
    assert sorted(t.get("version") or "" for t in data) == ["3.0", "4.0"]
    size = prop_text(book, f"{R}max-resource-size")
    assert size == str(dav_server.app.contacts.max_resource_size)


@pytest_twisted.ensureDeferred
async def test_expand_property_follows_hrefs_to_own_resources(dav_server: DavServer) -> None:
    """expand-property on the principal answers the home's display name inline."""
    body = (
        f'<?xml version="1.0"?><d:expand-property {NAMESPACES}>'
        '<d:property name="calendar-home-set" namespace="urn:ietf:params:xml:ns:caldav">'
        '<d:property name="displayname"/></d:property>'
        '<d:property name="displayname"/>'
        "</d:expand-property>"
    ).encode()
    answer = await dav_server.call("REPORT", PRINCIPAL, body, {"Depth": "0"})
    assert answer.status == 207
    response = answer.responses()[PRINCIPAL]
    home_set = prop(response, f"{C}calendar-home-set")
    assert home_set is not None
    inner = home_set.find(f"{D}response")
    assert inner is not None and inner.findtext(f"{D}href") == f"/dav/calendars/{ALICE}/"
    assert inner.findtext(f".//{D}displayname") == "Calendars"


@pytest_twisted.ensureDeferred
async def test_principal_search_finds_self_and_exact_addresses_only(dav_server: DavServer) -> None:
    """
    Searching "example" finds only the user's own principal; bob's is found
    by his exact address, and shows only public properties.
    """

    def search(text: str, match_type: str = "contains") -> bytes:
        return (
            f'<?xml version="1.0"?><d:principal-property-search {NAMESPACES} test="anyof">'
            f"<d:property-search><d:prop><c:calendar-user-address-set/><d:displayname/>"
            f'</d:prop><d:match match-type="{match_type}">{text}</d:match></d:property-search>'
            "<d:prop><d:displayname/><c:calendar-home-set/><c:calendar-user-address-set/></d:prop>"
            "</d:principal-property-search>"
        ).encode()

    partial = await dav_server.call("REPORT", "/dav/principals/", search("example"))
    assert set(partial.responses()) == {PRINCIPAL}
    exact = await dav_server.call("REPORT", "/dav/principals/", search(f"mailto:{BOB}", "equals"))
    responses = exact.responses()
    assert set(responses) == {f"/dav/principals/{BOB}/"}
    bob = responses[f"/dav/principals/{BOB}/"]
    assert prop_status(bob, f"{D}displayname") == 200
    assert prop_status(bob, f"{C}calendar-home-set") == 404
    properties = await dav_server.call(
        "REPORT",
        "/dav/principals/",
        f'<?xml version="1.0"?><d:principal-search-property-set {NAMESPACES}/>'.encode(),
    )
    assert properties.status == 200
    assert properties.xml().find(f".//{C}calendar-user-address-set") is not None
