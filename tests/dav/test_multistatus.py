"""
Multistatus and error bodies: read back with a plain XML parser, hrefs
encoded so they decode to the same path, values surviving any text, the
property-value helpers, and the time to build a 10,000-member PROPFIND.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.dav.multistatus import (
    Multistatus,
    PropValue,
    encode_href,
    error_body,
    error_element,
    href,
    href_element,
    hrefs_element,
    privilege_set,
    resourcetype,
    serialize,
    supported_calendar_component_set,
    supported_report_set,
    text_element,
)
from gk.dav.xmlbody import APPLE_ICAL, CALDAV, CALENDARSERVER, CARDDAV, DAV, c, d, parse_xml

DAV_ERROR = f"{{{DAV}}}error"
ET_XML = "http://www.w3.org/XML/1998/namespace"


def responses(data: bytes) -> list[ET.Element]:
    root = ET.fromstring(data)
    assert root.tag == d("multistatus")
    return root.findall(d("response"))


def propstats(response: ET.Element) -> dict[str, list[ET.Element]]:
    """Status line to the property elements reported under it."""
    result: dict[str, list[ET.Element]] = {}
    for propstat in response.iterfind(d("propstat")):
        status = propstat.findtext(d("status"))
        assert status is not None and status not in result
        prop = propstat.find(d("prop"))
        assert prop is not None
        result[status] = list(prop)
    return result


def test_a_propfind_depth_1_answer() -> None:
    ms = Multistatus()
    ms.add(
        "/dav/calendars/anna/home/",
        {
            d("resourcetype"): resourcetype(d("collection"), c("calendar")),
            d("displayname"): "Home & Work",
            f"{{{CALENDARSERVER}}}getctag": '"42"',
            f"{{{APPLE_ICAL}}}calendar-color": "#FF2968FF",
            c("supported-calendar-component-set"): supported_calendar_component_set(
                ["VEVENT", "VTODO"]
            ),
            d("sync-token"): None,
        },
        [c("calendar-description"), "{urn:example:ns}flavour"],
        other={403: [d("quota-used-bytes")], 404: [c("max-resource-size")]},
    )
    ms.add("/dav/calendars/anna/home/1.ics", {d("getetag"): '"abc"'})
    assert len(ms) == 2
    data = ms.to_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:"')
    for declaration in ['xmlns:cal="urn:ietf:params:xml:ns:caldav"', 'xmlns:card="', 'xmlns:cs="',
                        'xmlns:ical="']:  # fmt: skip
        assert declaration.encode() in data
    assert b"<d:displayname>Home &amp; Work</d:displayname>" in data
    first, second = responses(data)
    assert first.findtext(d("href")) == "/dav/calendars/anna/home/"
    stats = propstats(first)
    assert list(stats) == ["HTTP/1.1 200 OK", "HTTP/1.1 403 Forbidden", "HTTP/1.1 404 Not Found"]
    ok = {e.tag: e for e in stats["HTTP/1.1 200 OK"]}
    assert [t.tag for t in ok[d("resourcetype")]] == [d("collection"), c("calendar")]
    assert ok[f"{{{CALENDARSERVER}}}getctag"].text == '"42"'
    assert ok[d("sync-token")].text is None and len(ok[d("sync-token")]) == 0
    comps = ok[c("supported-calendar-component-set")]
    assert [(x.tag, x.get("name")) for x in comps] == [(c("comp"), "VEVENT"), (c("comp"), "VTODO")]
    assert [e.tag for e in stats["HTTP/1.1 404 Not Found"]] == [
        c("max-resource-size"),
        c("calendar-description"),
        "{urn:example:ns}flavour",
    ]
    assert [e.tag for e in stats["HTTP/1.1 403 Forbidden"]] == [d("quota-used-bytes")]
    assert list(propstats(second)) == ["HTTP/1.1 200 OK"]


def test_a_proppatch_answer_with_a_failed_dependency_and_an_error() -> None:
    ms = Multistatus()
    ms.add(
        "/dav/calendars/anna/home/",
        other={403: [d("getetag")], 424: (n for n in [d("displayname")])},
        errors={403: d("cannot-modify-protected-property")},
    )
    ms.add("/dav/calendars/anna/work/", {d("displayname"): None}, other={200: [d("owner")]})
    response, success = responses(ms.to_bytes())
    assert [e.tag for e in propstats(success)["HTTP/1.1 200 OK"]] == [d("owner"), d("displayname")]
    statuses = [p.findtext(d("status")) for p in response.iterfind(d("propstat"))]
    assert statuses == ["HTTP/1.1 403 Forbidden", "HTTP/1.1 424 Failed Dependency"]
    error = response.find(f"{d('propstat')}/{DAV_ERROR}")
    assert error is not None and error[0].tag == d("cannot-modify-protected-property")


def test_a_sync_collection_answer() -> None:
    ms = Multistatus(sync_token="http://gk.example.test/sync/7")
    ms.add("/dav/addressbooks/anna/contacts/new.vcf", {d("getetag"): '"1"'})
    ms.add_status("/dav/addressbooks/anna/contacts/gone.vcf", 404)
    ms.add_status(
        "/dav/addressbooks/anna/contacts/",
        507,
        error=d("number-of-matches-within-limits"),
        description="more to come",
    )
    data = ms.to_bytes()
    root = ET.fromstring(data)
    assert root[-1].tag == d("sync-token") and root[-1].text == "http://gk.example.test/sync/7"
    _, gone, truncated = responses(data)
    assert gone.findtext(d("status")) == "HTTP/1.1 404 Not Found"
    assert gone.find(d("propstat")) is None
    assert truncated.findtext(d("status")) == "HTTP/1.1 507 Insufficient Storage"
    assert truncated.findtext(d("responsedescription")) == "more to come"
    error = truncated.find(DAV_ERROR)
    assert error is not None and error[0].tag == d("number-of-matches-within-limits")


def test_a_response_without_properties_has_a_plain_status_and_odd_codes_work() -> None:
    ms = Multistatus()
    ms.add("/a", {}, [])
    ms.add_status("/b", 299)
    a, b = responses(ms.to_bytes())
    assert a.findtext(d("status")) == "HTTP/1.1 200 OK"
    assert b.findtext(d("status")) == "HTTP/1.1 299"


def test_an_empty_multistatus() -> None:
    root = ET.fromstring(Multistatus().to_bytes())
    assert root.tag == d("multistatus") and len(root) == 0


def test_drained_pieces_make_the_same_document() -> None:
    def fill(ms: Multistatus, start: int, stop: int) -> None:
        for i in range(start, stop):
            ms.add(f"/dav/c/{i}.ics", {d("getetag"): f'"{i}"'}, [d("owner")])

    whole = Multistatus(sync_token="t")
    fill(whole, 0, 10)
    streamed = Multistatus()
    pieces = [streamed.drain()]
    fill(streamed, 0, 4)
    pieces.append(streamed.drain())
    fill(streamed, 4, 10)
    streamed.sync_token = "t"
    pieces.append(streamed.finish())
    assert b"".join(pieces) == whole.to_bytes()
    with pytest.raises(RuntimeError):
        streamed.add("/x", {})
    with pytest.raises(RuntimeError):
        streamed.to_bytes()


def test_a_mismatched_value_is_refused_and_the_builder_stays_usable() -> None:
    ms = Multistatus()
    with pytest.raises(ValueError):
        ms.add("/a", {d("getetag"): text_element(d("displayname"), "x")})
    with pytest.raises(ValueError):
        ms.add("/a", {}, ["{DAV:bad"])
    with pytest.raises(ValueError):
        ms.add("/a", {"{DAV:}1bad": "x"})
    ms.add("/b", {d("getetag"): "x"})
    assert [r.findtext(d("href")) for r in responses(ms.to_bytes())] == ["/b"]


def test_foreign_namespaces_attributes_and_mixed_content() -> None:
    value = ET.Element("{urn:example:ns}note", {"{urn:other}kind": 'a"b\n', "plain": "<&>"})
    value.text = "one "
    bold = ET.SubElement(value, "{urn:example:ns}b", {f"{{{ET_XML}}}lang": "de"})
    bold.text = "two"
    bold.tail = " three"
    ET.SubElement(value, "{urn:third}c")
    ms = Multistatus()
    ms.add("/a", {"{urn:example:ns}note": value, "{urn:x}text": "t", "bare": "b"}, ["{urn:y}gone"])
    (response,) = responses(ms.to_bytes())
    ok = propstats(response)["HTTP/1.1 200 OK"]
    note = ok[0]
    assert note.tag == "{urn:example:ns}note" and note.attrib == value.attrib
    assert "".join(note.itertext()) == "one two three"
    assert note[0].get(f"{{{ET_XML}}}lang") == "de" and note[1].tag == "{urn:third}c"
    assert [(e.tag, e.text) for e in ok[1:]] == [("{urn:x}text", "t"), ("bare", "b")]
    assert propstats(response)["HTTP/1.1 404 Not Found"][0].tag == "{urn:y}gone"


def test_hrefs_are_encoded_per_segment() -> None:
    assert encode_href("/dav/calendars/anna/my calendar/") == "/dav/calendars/anna/my%20calendar/"
    assert encode_href("/a/é#1?x%y") == "/a/%C3%A9%231%3Fx%25y"
    assert encode_href("/a/b+c@d:e;f=g") == "/a/b+c@d:e;f=g"
    assert encode_href("mailto:anna@example.test") == "mailto:anna@example.test"
    ms = Multistatus()
    ms.add_status("/dav/Ünïcødé & co/日本 語.ics", 404)
    ms.add_status("/dav/folder with space/", 404)
    data = ms.to_bytes()
    assert b"<d:href>/dav/%C3%9Cn%C3%AFc%C3%B8d%C3%A9%20&amp;%20co/%E6%97%A5" in data
    hrefs = [r.findtext(d("href")) or "" for r in responses(data)]
    assert hrefs[1] == "/dav/folder%20with%20space/"
    assert [unquote(h) for h in hrefs] == [
        "/dav/Ünïcødé & co/日本 語.ics",
        "/dav/folder with space/",
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text())
def test_any_path_and_text_survive(path: str, value: str) -> None:
    ms = Multistatus(sync_token=value)
    ms.add("/" + path, {d("displayname"): value, "{urn:x}other": value})
    data = ms.to_bytes()
    root = ET.fromstring(data)
    (response,) = responses(data)
    assert unquote(response.findtext(d("href")) or "") == "/" + path
    allowed = [ch if ch in "\t\n\r" or ch >= " " else "\ufffd" for ch in value]
    expected = "".join(ch if ch not in "\ufffe\uffff" else "\ufffd" for ch in allowed)
    ok = propstats(response)["HTTP/1.1 200 OK"]
    assert [e.text or "" for e in ok] == [expected, expected]
    assert (root[-1].text or "") == expected


NAMESPACES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="}\ufffe\uffff"),
    max_size=20,
).filter(lambda ns: ns not in (ET_XML, "http://www.w3.org/2000/xmlns/"))
LOCAL_NAMES = st.from_regex(
    r"[A-Za-z_\u00c0-\u00d6\u4e00-\u4e20][A-Za-z_0-9.\-\u00b7\u00c0-\u00d6\u0300]{0,10}",
    fullmatch=True,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(NAMESPACES, LOCAL_NAMES), min_size=1, max_size=4, unique=True))
def test_any_property_name_survives(names: list[tuple[str, str]]) -> None:
    clark = [f"{{{ns}}}{local}" if ns else local for ns, local in names]
    ms = Multistatus()
    ms.add("/r", {clark[0]: "v"}, clark[1:])
    value = ET.Element(clark[0], {clark[-1]: "attribute"})
    ET.SubElement(value, clark[-1])
    ms.add("/s", {clark[0]: value})
    first, second = responses(ms.to_bytes())
    tags = [e.tag for elements in propstats(first).values() for e in elements]
    assert tags == clark
    (parsed,) = propstats(second)["HTTP/1.1 200 OK"]
    assert parsed.tag == clark[0] and parsed.attrib == {clark[-1]: "attribute"}
    assert parsed[0].tag == clark[-1]


def test_carriage_returns_survive_a_parser() -> None:
    calendar = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    ms = Multistatus()
    ms.add("/e.ics", {c("calendar-data"): calendar})
    data = ms.to_bytes()
    assert b"&#13;" in data
    (response,) = responses(data)
    assert propstats(response)["HTTP/1.1 200 OK"][0].text == calendar


def test_the_output_passes_our_own_safe_parser() -> None:
    ms = Multistatus(sync_token="s")
    ms.add("/x y", {d("current-user-principal"): href_element(d("current-user-principal"), "/p/")})
    root = parse_xml(ms.to_bytes(), max_size=1 << 20)
    assert root is not None and root.tag == d("multistatus")


# --- error bodies -----------------------------------------------------------


def error_condition(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == DAV_ERROR and len(root) == 1
    return root[0]


def test_error_bodies() -> None:
    data = error_body("valid-calendar-data", namespace=CALDAV)
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<d:error xmlns:d="DAV:"')
    assert b"<cal:valid-calendar-data/></d:error>" in data
    assert error_condition(data).tag == c("valid-calendar-data")
    assert error_condition(error_body("valid-sync-token")).tag == d("valid-sync-token")
    assert b"<d:number-of-matches-within-limits/>" in error_body(
        d("number-of-matches-within-limits")
    )
    conflict = error_condition(
        error_body(c("no-uid-conflict"), children=[href("/dav/calendars/anna/home/x y.ics")])
    )
    assert conflict.tag == c("no-uid-conflict")
    assert conflict.findtext(d("href")) == "/dav/calendars/anna/home/x%20y.ics"
    assert error_condition(error_body("{urn:z}custom", text="why")).text == "why"
    element = error_element("supported-address-data", namespace=CARDDAV)
    assert element.tag == DAV_ERROR and element[0].tag == f"{{{CARDDAV}}}supported-address-data"


# --- property helpers -------------------------------------------------------


def test_property_helpers() -> None:
    reports = supported_report_set([c("calendar-multiget"), d("sync-collection")])
    ms = Multistatus()
    found: dict[str, PropValue] = {
        d("supported-report-set"): reports,
        d("current-user-privilege-set"): privilege_set([d("read"), d("write")]),
        c("calendar-home-set"): hrefs_element(c("calendar-home-set"), ["/c/anna/", "/c/ü/"]),
        c("calendar-user-address-set"): hrefs_element(
            c("calendar-user-address-set"), ["mailto:anna@example.test", "/p/anna/"]
        ),
        d("resourcetype"): resourcetype(),
    }
    ms.add("/p/anna/", found)
    (response,) = responses(ms.to_bytes())
    ok = {e.tag: e for e in propstats(response)["HTTP/1.1 200 OK"]}
    names = [r[0][0].tag for r in ok[d("supported-report-set")]]
    assert names == [c("calendar-multiget"), d("sync-collection")]
    assert all(r.tag == d("supported-report") and r[0].tag == d("report")
               for r in ok[d("supported-report-set")])  # fmt: skip
    privileges = ok[d("current-user-privilege-set")]
    assert [(p.tag, p[0].tag) for p in privileges] == [
        (d("privilege"), d("read")),
        (d("privilege"), d("write")),
    ]
    assert [h.text for h in ok[c("calendar-home-set")]] == ["/c/anna/", "/c/%C3%BC/"]
    assert [h.text for h in ok[c("calendar-user-address-set")]] == [
        "mailto:anna@example.test",
        "/p/anna/",
    ]
    assert len(ok[d("resourcetype")]) == 0


def test_serialize_declares_namespaces_where_used() -> None:
    value = href_element(c("schedule-inbox-URL"), "/inbox/")
    data = serialize(value)
    assert data == (
        b'<cal:schedule-inbox-URL xmlns:cal="urn:ietf:params:xml:ns:caldav">'
        b'<d:href xmlns:d="DAV:">/inbox/</d:href></cal:schedule-inbox-URL>'
    )
    assert ET.fromstring(data)[0].tag == d("href")
    odd = ET.Element("{urn:a}x")
    ET.SubElement(odd, "{urn:b}y").append(ET.Element("{urn:a}z"))
    parsed = ET.fromstring(serialize(odd))
    assert [e.tag for e in parsed.iter()] == ["{urn:a}x", "{urn:b}y", "{urn:a}z"]


# --- speed ------------------------------------------------------------------


def test_ten_thousand_responses_build_quickly() -> None:
    started = time.perf_counter()
    ms = Multistatus()
    for i in range(10_000):
        ms.add(
            f"/dav/calendars/anna@example.test/home/event-{i:05d}.ics",
            {
                d("getetag"): f'"{i:08x}"',
                d("getcontenttype"): "text/calendar; charset=utf-8",
                d("resourcetype"): resourcetype(),
            },
        )
    data = ms.to_bytes()
    elapsed = time.perf_counter() - started
    assert len(responses(data)) == 10_000
    # Measured about 50 ms; the bound leaves room for slow CI machines.
    assert elapsed < 1.0
