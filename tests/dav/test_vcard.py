"""Tests for L{gk.dav.vcard}: checking, indexing, filtering and writing vCards."""

from __future__ import annotations

import contextlib
from xml.etree.ElementTree import Element, TreeBuilder, XMLParser, fromstring

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.dav.vcard import (
    CARDDAV_NS,
    Filter,
    InvalidAddressData,
    InvalidAddressDataRequest,
    InvalidFilter,
    ParamFilter,
    PropFilter,
    TextMatch,
    UnsupportedCollation,
    VCardObject,
    build_vcard,
    matches,
    parse_address_data_request,
    parse_filter,
    parse_vcard,
    select_address_data,
    update_vcard,
)

# --- cards in the style of real clients (written for these tests) ----------


def crlf(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


#: Apple Contacts: 3.0, repeated type=, item groups with X-ABLabel, folded photo.
APPLE = crlf(
    "BEGIN:VCARD",
    "VERSION:3.0",
    "PRODID:-//Apple Inc.//macOS 14.4//EN",
    "N:Lindqvist;Märta;Sofia;Prof.;",
    "FN:Prof. Märta Lindqvist",
    "ORG:Lindqvist\\, Berg & Partner AB;Forskning",
    "NICKNAME:Mära",
    "item1.EMAIL;type=INTERNET;type=pref:marta@home.example",
    "item1.X-ABLabel:_$!<Other>!$_",
    "EMAIL;type=INTERNET;type=WORK:m.lindqvist@lbp.example",
    "TEL;type=CELL;type=VOICE;type=pref:+46 70 123 45 67",
    "item2.TEL:+46 8 555 000 11",
    "item2.X-ABLabel:Lab",
    "item3.ADR;type=HOME;type=pref:;;Storgatan 4\\; 2 tr;Uppsala;;753 20;Sweden",
    "item3.X-ABADR:se",
    "NOTE:Met at the conference\\nBring the slides\\, both sets",
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMD",
    " BAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD/wAAL",
    " CAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/aAAgBAQAAPwBUf//Z",
    "UID:8D1A2B3C-4D5E-4F60-8172-93A4B5C6D7E8",
    "X-ABUID:8D1A2B3C-4D5E-4F60-8172-93A4B5C6D7E8:ABPerson",
    "END:VCARD",
)

#: Google export: 3.0, LF line ends, no final line end, a nickname list.
GOOGLE = (
    "BEGIN:VCARD\n"
    "VERSION:3.0\n"
    "FN:Tomás Ó Briain\n"
    "N:Ó Briain;Tomás;;;\n"
    "NICKNAME:Tom,Tomi\n"
    "EMAIL;TYPE=INTERNET;TYPE=HOME:tomas@mail.example\n"
    "EMAIL;TYPE=INTERNET:tob@corp.example\n"
    "TEL;TYPE=CELL:(353) 85 000 1234\n"
    "ADR;TYPE=WORK:;;12 Quay St;Galway;;H91;Ireland\n"
    "ORG:Corp Ltd.\n"
    "CATEGORIES:myContacts,Hurling\n"
    "UID:4b3c2d1e0f\n"
    "END:VCARD"
).encode()

#: Thunderbird: 4.0, quoted TYPE list, tel: URI, a long folded note.
THUNDERBIRD = crlf(
    "BEGIN:VCARD",
    "VERSION:4.0",
    "EMAIL;PREF=1:kwame@example.org",
    "FN:Kwame Mensah",
    "N:Mensah;Kwame;;;",
    'TEL;TYPE="work,voice";VALUE=TEXT:+233 30 000 0001',
    "TEL;VALUE=uri;TYPE=cell:tel:+233-24-000-0002",
    "NICKNAME:KM",
    "NOTE:A note long enough that Thunderbird folds it across two lines at se",
    " venty-five octets\\, as the RFC wants.",
    "UID:0c9f5e3a-7b21-4d8e-a6f0-3c2b1a0d9e8f",
    "END:VCARD",
)

#: DAVx5 (ez-vcard): 3.0, CJK name, grouped custom label.
DAVX5_3 = crlf(
    "BEGIN:VCARD",
    "VERSION:3.0",
    "PRODID:+//IDN bitfire.at//DAVx5/4.4 ez-vcard/0.12.1",
    "UID:2f7d3c1b-9a8e-4c5d-b6a7-1e2f3a4b5c6d",
    "FN:山田 花子",
    "N:山田;花子;;;",
    "X-PHONETIC-LAST-NAME:Yamada",
    "TEL;TYPE=cell:+81 90 0000 0000",
    "EMAIL;TYPE=home:hanako@example.jp",
    "item1.TEL:+81 3 0000 0000",
    "item1.X-ABLabel:Studio",
    "REV:20240301T101112Z",
    "END:VCARD",
)

#: DAVx5 writing 4.0, with a group-less KIND and a data: URI photo (commas!).
DAVX5_4 = crlf(
    "BEGIN:VCARD",
    "VERSION:4.0",
    "PRODID:+//IDN bitfire.at//DAVx5/4.4 ez-vcard/0.12.1",
    "UID:urn:uuid:6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
    "FN:Doe\\, Jane",
    "KIND:individual",
    "EMAIL;TYPE=work:jane.doe@example.com",
    "PHOTO:data:image/png;base64,iVBORw0KGgo=",
    "END:VCARD",
)

#: A 2.1 leftover inside a 3.0 card: quoted-printable with a soft line break.
QP_LEFTOVER = crlf(
    "BEGIN:VCARD",
    "VERSION:3.0",
    "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=96zt=C3=BCrk;Ay=C5=9Fe;;;",
    "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Ay=C5=9Fe =C3=96zt=C3=BCrk",
    "NOTE;ENCODING=QUOTED-PRINTABLE:first=0D=0A=",
    "second line",
    "TEL;CELL;VOICE:+90 555 111 22 33",
    "UID:qp-leftover-1",
    "END:VCARD",
)

LOWER_CASE = b"begin:vcard\nversion:4.0\nfn:lower case\nemail:lc@example.com\nuid:lc-1\nend:vcard"

NO_FN = crlf("BEGIN:VCARD", "VERSION:3.0", "N:Doe;John;Q.,R.;Mr.;Jr.", "UID:nofn", "END:VCARD")


def test_apple() -> None:
    card = parse_vcard(APPLE)
    assert card.uid == "8D1A2B3C-4D5E-4F60-8172-93A4B5C6D7E8"
    assert card.version == "3.0"
    assert card.fn == "Prof. Märta Lindqvist"
    assert card.emails == ("marta@home.example", "m.lindqvist@lbp.example")
    assert card.tels == ("+46 70 123 45 67", "+46 8 555 000 11")
    assert card.organization == "Lindqvist, Berg & Partner AB"
    assert card.nickname == "Mära"
    assert card.data == APPLE


def test_google_lf_no_final_newline() -> None:
    card = parse_vcard(GOOGLE)
    assert card.fn == "Tomás Ó Briain"
    assert card.nickname == "Tom, Tomi"
    assert card.emails == ("tomas@mail.example", "tob@corp.example")
    assert card.organization == "Corp Ltd."
    # Only the line ends change.
    assert card.data == GOOGLE.replace(b"\n", b"\r\n") + b"\r\n"


def test_thunderbird_4() -> None:
    card = parse_vcard(THUNDERBIRD)
    assert card.version == "4.0"
    assert card.tels == ("+233 30 000 0001", "+233-24-000-0002")
    assert card.nickname == "KM"
    note = next(p for p in card.properties if p.name == "NOTE")
    assert note.text.endswith("at seventy-five octets, as the RFC wants.")
    assert card.data == THUNDERBIRD


def test_davx5() -> None:
    card = parse_vcard(DAVX5_3)
    assert card.fn == "山田 花子"
    assert card.tels == ("+81 90 0000 0000", "+81 3 0000 0000")
    card = parse_vcard(DAVX5_4)
    assert card.uid == "urn:uuid:6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
    assert card.fn == "Doe, Jane"
    photo = next(p for p in card.properties if p.name == "PHOTO")
    assert photo.text == "data:image/png;base64,iVBORw0KGgo="


def test_quoted_printable_leftover() -> None:
    card = parse_vcard(QP_LEFTOVER)
    assert card.fn == "Ayşe Öztürk"
    note = next(p for p in card.properties if p.name == "NOTE")
    assert note.text == "first\r\nsecond line"
    tel = next(p for p in card.properties if p.name == "TEL")
    assert tel.param("type") == ("CELL", "VOICE")
    assert card.data == QP_LEFTOVER


def test_lower_case_and_cr_only() -> None:
    card = parse_vcard(LOWER_CASE)
    assert (card.uid, card.fn, card.emails) == ("lc-1", "lower case", ("lc@example.com",))
    assert card.data.startswith(b"begin:vcard\r\nversion:4.0\r\n")
    assert parse_vcard(LOWER_CASE.replace(b"\n", b"\r")).fn == "lower case"


def test_fn_from_n() -> None:
    assert parse_vcard(NO_FN).fn == "Mr. John Q. R. Doe Jr."


def test_escapes_in_n_and_adr() -> None:
    card = parse_vcard(
        crlf(
            "BEGIN:VCARD",
            "VERSION:3.0",
            "N:O\\;Neill,Smith;Mary\\, Ann;;;",
            "ADR:;;1 Main St\\, Apt 2\\;B;Town;;;",
            "UID:esc",
            "END:VCARD",
        )
    )
    assert card.fn == "Mary, Ann O;Neill Smith"
    adr = next(p for p in card.properties if p.name == "ADR")
    assert adr.components()[2] == "1 Main St, Apt 2;B"


def test_unescaped_commas_do_not_cut_values() -> None:
    # Sloppy writers leave commas unescaped; ORG's components are split at ";" only.
    card = parse_vcard(
        crlf(
            "BEGIN:VCARD",
            "VERSION:3.0",
            "FN:Doe, John",
            "ORG:Acme, Inc.;Sales",
            "NICKNAME:Jo\\, Jr.,Johnny",
            "UID:commas",
            "END:VCARD",
        )
    )
    assert (card.fn, card.organization, card.nickname) == (
        "Doe, John",
        "Acme, Inc.",
        "Jo, Jr., Johnny",
    )
    assert matches(card, text_filter("ORG", "acme, inc.", "equals"))
    assert not matches(card, text_filter("ORG", "acme", "equals"))
    assert matches(card, text_filter("NICKNAME", "johnny", "equals"))


def test_byte_order_mark_and_blank_lines_dropped() -> None:
    card = parse_vcard(b"\xef\xbb\xbf" + DAVX5_3.replace(b"\r\nUID", b"\r\n\r\nUID"))
    assert card.data == DAVX5_3


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"hello",
        crlf("BEGIN:VCALENDAR", "VERSION:2.0", "UID:x", "END:VCALENDAR"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "FN:a", "END:VCARD"),  # no UID
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:", "END:VCARD"),  # empty UID
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "UID:b", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:2.1", "UID:a", "END:VCARD"),
        crlf("BEGIN:VCARD", "UID:a", "END:VCARD"),  # no VERSION
        crlf("BEGIN:VCARD", "VERSION:3.0", "VERSION:4.0", "UID:a", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a"),  # no END
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "END:VCARD", "BEGIN:VCARD", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "END:VCARD", "junk:1"),
        crlf("junk:1", "BEGIN:VCARD", "VERSION:3.0", "UID:a", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "BEGIN:VCARD", "END:VCARD", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "no colon here", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "BAD_NAME:x", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", 'X-A;P="open:x', "END:VCARD"),
        crlf(" BEGIN:VCARD", "VERSION:3.0", "UID:a", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "FN:M\x00ller", "END:VCARD"),
        crlf("BEGIN:VCARD", "VERSION:3.0", "UID:a", "END:VCARD").replace(b"a", b"\xe9"),
    ],
)
def test_invalid(body: bytes) -> None:
    with pytest.raises(InvalidAddressData):
        parse_vcard(body)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    with contextlib.suppress(InvalidAddressData):
        parse_vcard(body)


_FRAGMENTS = st.sampled_from(
    ["FN", "item1.", "EMAIL", ";", ":", "=", ",", '"', "\\", "\r\n", "\n", " ", "\t", "x",
     "ENCODING=QUOTED-PRINTABLE", "CHARSET=utf-16", "=C3", "=\r\n", "^", "é", "UID:1", "N"]
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(_FRAGMENTS, max_size=40))
def test_nearly_cards(fragments: list[str]) -> None:
    body = "BEGIN:VCARD\r\nVERSION:3.0\r\n" + "".join(fragments) + "\r\nEND:VCARD\r\n"
    try:
        card = parse_vcard(body.encode())
    except InvalidAddressData:
        return
    assert parse_vcard(card.data) == card
    for prop in card.properties:
        assert isinstance(prop.text, str)


# --- filters ------------------------------------------------------------------

NS = f'xmlns:C="{CARDDAV_NS}"'


def xml_filter(body: str, test: str = "") -> Filter:
    attr = f' test="{test}"' if test else ""
    return parse_filter(fromstring(f"<C:filter {NS}{attr}>{body}</C:filter>"))


def text_filter(prop: str, text: str, match_type: str = "contains", extra: str = "") -> Filter:
    return xml_filter(
        f'<C:prop-filter name="{prop}"><C:text-match match-type="{match_type}"{extra}>'
        f"{text}</C:text-match></C:prop-filter>"
    )


def hits(f: Filter | None) -> set[str]:
    cards = {"apple": APPLE, "google": GOOGLE, "tb": THUNDERBIRD, "davx5": DAVX5_3}
    return {name for name, data in cards.items() if matches(parse_vcard(data), f)}


ALL = {"apple", "google", "tb", "davx5"}


def test_rfc_style_query_fn_or_email() -> None:
    f = xml_filter(
        '<C:prop-filter name="FN">'
        '<C:text-match collation="i;unicode-casemap" match-type="contains">mensah</C:text-match>'
        "</C:prop-filter>"
        '<C:prop-filter name="EMAIL">'
        '<C:text-match collation="i;unicode-casemap" match-type="contains">BRIAIN</C:text-match>'
        "</C:prop-filter>",
        test="anyof",
    )
    assert hits(f) == {"tb"}
    assert hits(text_filter("EMAIL", "tob@")) == {"google"}


def test_match_types() -> None:
    assert hits(text_filter("FN", "tomás ó briain", "equals")) == {"google"}
    assert hits(text_filter("FN", "tomás", "equals")) == set()
    assert hits(text_filter("FN", "PROF.", "starts-with")) == {"apple"}
    assert hits(text_filter("FN", "MENSAH", "ends-with")) == {"tb"}
    assert hits(text_filter("EMAIL", ".example", "ends-with")) == {"apple", "google"}
    assert hits(text_filter("EMAIL", "", "contains")) == ALL


def test_nickname_list_items_and_structured_components() -> None:
    assert hits(text_filter("NICKNAME", "tomi", "equals")) == {"google"}
    assert hits(text_filter("NICKNAME", "Tom, Tomi", "equals")) == set()
    assert hits(text_filter("N", "lindqvist", "equals")) == {"apple"}
    assert hits(text_filter("ORG", "Lindqvist, Berg", "starts-with")) == {"apple"}


def test_negate_and_is_not_defined() -> None:
    negated = text_filter("FN", "mensah", extra=' negate-condition="yes"')
    assert hits(negated) == ALL - {"tb"}
    assert hits(
        xml_filter('<C:prop-filter name="NICKNAME"><C:is-not-defined/></C:prop-filter>')
    ) == {"davx5"}
    assert hits(xml_filter('<C:prop-filter name="PHOTO"/>')) == {"apple"}


def test_filter_anyof_allof() -> None:
    both = (
        '<C:prop-filter name="NICKNAME"/>'
        '<C:prop-filter name="EMAIL"><C:text-match>.example</C:text-match></C:prop-filter>'
    )
    assert hits(xml_filter(both, "allof")) == {"apple", "google"}
    assert hits(xml_filter(both, "anyof")) == {"apple", "google", "tb"}
    assert hits(xml_filter("", "allof")) == ALL
    assert hits(xml_filter("")) == ALL
    assert hits(None) == ALL


def test_prop_filter_test_applies_to_one_property() -> None:
    # Apple has a HOME and a WORK email; allof needs both tests on the same one.
    work_at_home = (
        '<C:prop-filter name="EMAIL" test="allof">'
        "<C:text-match>home.example</C:text-match>"
        '<C:param-filter name="TYPE"><C:text-match match-type="equals">work</C:text-match>'
        "</C:param-filter></C:prop-filter>"
    )
    assert hits(xml_filter(work_at_home)) == set()
    assert hits(xml_filter(work_at_home.replace("allof", "anyof"))) == {"apple"}
    several_text = (
        '<C:prop-filter name="FN" test="allof"><C:text-match>prof</C:text-match>'
        "<C:text-match>märta</C:text-match></C:prop-filter>"
    )
    assert hits(xml_filter(several_text)) == {"apple"}


def param_filter(prop: str, param: str, inner: str) -> Filter:
    return xml_filter(
        f'<C:prop-filter name="{prop}"><C:param-filter name="{param}">{inner}'
        "</C:param-filter></C:prop-filter>"
    )


def test_type_param_filter() -> None:
    cell = '<C:text-match match-type="equals">cell</C:text-match>'
    assert hits(param_filter("TEL", "TYPE", cell)) == {"apple", "google", "tb", "davx5"}
    work = '<C:text-match match-type="equals">work</C:text-match>'
    # Apple's repeated type=, Thunderbird's TYPE="work,voice".
    assert hits(param_filter("TEL", "TYPE", work)) == {"tb"}
    assert hits(param_filter("EMAIL", "type", work)) == {"apple"}
    assert hits(param_filter("TEL", "VALUE", "")) == {"tb"}
    assert hits(param_filter("TEL", "TYPE", "<C:is-not-defined/>")) == {"apple", "davx5"}


def test_negated_param_match_needs_the_parameter() -> None:
    card = parse_vcard(DAVX5_3)
    not_work = '<C:text-match negate-condition="yes">work</C:text-match>'
    assert matches(card, param_filter("TEL", "TYPE", not_work))
    grouped_only = param_filter("item1.TEL", "TYPE", not_work)
    assert not matches(card, grouped_only)


def test_groups() -> None:
    apple = parse_vcard(APPLE)
    assert matches(apple, text_filter("EMAIL", "marta@home"))
    assert matches(apple, text_filter("item1.EMAIL", "marta@home"))
    assert matches(apple, text_filter("ITEM1.email", "marta@home"))
    assert not matches(apple, text_filter("item2.EMAIL", "marta@home"))
    assert not matches(apple, text_filter("item1.EMAIL", "lbp"))
    assert matches(apple, text_filter("X-ABLABEL", "lab", "equals"))


def test_tel() -> None:
    assert hits(text_filter("TEL", "+233-24", "starts-with")) == {"tb"}
    assert hits(text_filter("TEL", "tel:+233", "starts-with")) == {"tb"}
    assert hits(text_filter("TEL", "555 000", "contains")) == {"apple"}


def test_collations() -> None:
    card = parse_vcard(crlf("BEGIN:VCARD", "VERSION:4.0", "FN:Große Straße", "UID:c", "END:VCARD"))

    def hit(text: str, collation: str) -> bool:
        return matches(
            card,
            Filter(prop_filters=(PropFilter("FN", text_matches=(TextMatch(text, collation),)),)),
        )

    assert hit("GROSSE STRASSE", "i;unicode-casemap")
    assert hit("große", "i;unicode-casemap")
    assert not hit("GROSSE", "i;ascii-casemap")
    assert hit("GROßE", "i;ascii-casemap")
    assert not hit("große", "i;octet")
    assert hit("Große", "i;octet")
    # Composed and decomposed accents are the same under unicode-casemap.
    e_acute = parse_vcard(crlf("BEGIN:VCARD", "VERSION:4.0", "FN:Rene\u0301", "UID:r", "END:VCARD"))
    assert matches(e_acute, text_filter("FN", "RENÉ", "equals"))


def test_dataclass_construction() -> None:
    f = Filter(
        "allof",
        (
            PropFilter("FN", text_matches=(TextMatch("lindqvist"),)),
            PropFilter(
                "EMAIL",
                param_filters=(
                    ParamFilter("TYPE", text_match=TextMatch("PREF", match_type="equals")),
                ),
            ),
        ),
    )
    assert hits(f) == {"apple"}
    with pytest.raises(UnsupportedCollation):
        TextMatch("x", collation="i;basic")
    with pytest.raises(InvalidFilter):
        PropFilter("FN", test="some")  # type: ignore[arg-type]
    with pytest.raises(InvalidFilter):
        ParamFilter("TYPE", is_not_defined=True, text_match=TextMatch("x"))


def test_parse_filter_accepts_param_filter_before_text_match() -> None:
    f = xml_filter(
        '<C:prop-filter name="EMAIL" test="allof"><C:param-filter name="TYPE"/>'
        "<C:text-match>lbp</C:text-match></C:prop-filter>"
    )
    assert hits(f) == {"apple"}


def test_parse_filter_skips_comments() -> None:
    parser = XMLParser(target=TreeBuilder(insert_comments=True, insert_pis=True))
    xml = (
        f"<C:filter {NS}><!-- a comment --><C:prop-filter name='FN'><?pi x?>"
        "<C:text-match>mensah</C:text-match></C:prop-filter></C:filter>"
    )
    assert hits(parse_filter(fromstring(xml, parser))) == {"tb"}


def test_parse_filter_structure() -> None:
    f = xml_filter(
        '<C:prop-filter name="email" test="allof">'
        '<C:text-match collation="i;octet" negate-condition="yes" match-type="ends-with">x'
        "</C:text-match>"
        '<C:param-filter name="type"><C:is-not-defined/></C:param-filter>'
        "</C:prop-filter>",
        "allof",
    )
    assert f == Filter(
        "allof",
        (
            PropFilter(
                "EMAIL",
                "allof",
                False,
                (TextMatch("x", "i;octet", True, "ends-with"),),
                (ParamFilter("TYPE", is_not_defined=True),),
            ),
        ),
    )


@pytest.mark.parametrize(
    "xml",
    [
        f'<C:prop-filter {NS} name="FN"/>',  # not a filter element
        f'<C:filter {NS} test="some"/>',
        f"<C:filter {NS}><C:prop-filter/></C:filter>",
        f'<C:filter {NS}><C:prop-filter name="a b"/></C:filter>',
        f'<C:filter {NS}><C:prop-filter name="FN"><C:is-not-defined/>'
        "<C:text-match>x</C:text-match></C:prop-filter></C:filter>",
        f'<C:filter {NS}><C:prop-filter name="FN"><C:text-match match-type="fuzzy">x'
        "</C:text-match></C:prop-filter></C:filter>",
        f'<C:filter {NS}><C:prop-filter name="FN"><C:text-match negate-condition="maybe">x'
        "</C:text-match></C:prop-filter></C:filter>",
        f'<C:filter {NS}><C:prop-filter name="FN"><C:time-range/></C:prop-filter></C:filter>',
        f'<C:filter {NS}><C:prop-filter name="FN"><C:param-filter name="TYPE">'
        "<C:is-not-defined/><C:text-match>x</C:text-match></C:param-filter>"
        "</C:prop-filter></C:filter>",
        f'<C:filter {NS} xmlns:D="DAV:"><D:prop/></C:filter>',
    ],
)
def test_invalid_filter(xml: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(fromstring(xml))


def test_unsupported_collation() -> None:
    with pytest.raises(UnsupportedCollation) as e:
        text_filter("FN", "x", extra=' collation="i;basic"')
    assert e.value.collation == "i;basic"


# --- address-data -------------------------------------------------------------


def address_data(body: str) -> Element:
    return fromstring(f"<C:address-data {NS}>{body}</C:address-data>")


def test_parse_address_data_request() -> None:
    assert parse_address_data_request(address_data("")) is None
    assert parse_address_data_request(address_data("<C:allprop/>")) is None
    request = address_data('<C:prop name="email"/><C:prop name="item2.TEL" novalue="no"/>')
    assert parse_address_data_request(request) == ["EMAIL", "ITEM2.TEL"]
    for bad in ["<C:prop/>", '<C:allprop/><C:prop name="FN"/>', "<C:filter/>"]:
        with pytest.raises(InvalidAddressDataRequest):
            parse_address_data_request(address_data(bad))
    with pytest.raises(InvalidAddressDataRequest):
        parse_address_data_request(fromstring(f"<C:prop {NS}/>"))


def test_select_address_data() -> None:
    assert select_address_data(GOOGLE, None) == parse_vcard(GOOGLE).data
    assert select_address_data(APPLE, ["EMAIL"]) == crlf(
        "BEGIN:VCARD",
        "VERSION:3.0",
        "item1.EMAIL;type=INTERNET;type=pref:marta@home.example",
        "EMAIL;type=INTERNET;type=WORK:m.lindqvist@lbp.example",
        "UID:8D1A2B3C-4D5E-4F60-8172-93A4B5C6D7E8",
        "END:VCARD",
    )
    photo = select_address_data(APPLE, ["PHOTO", "ITEM2.TEL"]).split(b"\r\n")
    assert photo[2] == b"item2.TEL:+46 8 555 000 11"
    assert photo[3].startswith(b"PHOTO;ENCODING=b") and photo[4].startswith(b" BAYE")
    assert len(photo) == 9  # BEGIN VERSION TEL PHOTO(3 lines) UID END, then ""
    assert parse_vcard(select_address_data(APPLE, [])).emails == ()


# --- writing ----------------------------------------------------------------


def test_build_vcard() -> None:
    data = build_vcard(
        "gk-1", "Ana María Olsen", ["ana@example.org"], ["+47 400 00 000"], "Fjord AS", "VIP"
    )
    card = parse_vcard(data)
    assert card.version == "3.0"
    assert (card.uid, card.fn, card.emails, card.tels) == (
        "gk-1",
        "Ana María Olsen",
        ("ana@example.org",),
        ("+47 400 00 000",),
    )
    assert card.organization == "Fjord AS"
    assert b"N:Olsen;Ana Mar\xc3\xada;;;\r\n" in data
    assert b"EMAIL;TYPE=INTERNET:ana@example.org\r\n" in data
    assert card.data == data


def test_build_vcard_folds_at_75_octets_between_characters() -> None:
    data = build_vcard("u", "Ø" * 100, [], [])
    lines = data.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines)
    assert "".join(line.decode() for line in lines)  # no character cut in two
    assert parse_vcard(data).fn == "Ø" * 100


def test_build_vcard_is_read_by_vobject() -> None:
    """An independent reader (vobject, a test dependency) agrees with what gk builds."""
    import vobject  # type: ignore[import-untyped]

    data = build_vcard("v-1", "Doe, Jane; Jr.", ["a,b@example.org"], ["+1 555"], "A;B", "x\\y\nz")
    card = vobject.readOne(data.decode())
    assert card.fn.value == "Doe, Jane; Jr."
    assert card.email.value == "a,b@example.org"
    assert card.org.value == ["A;B"]
    assert card.note.value == "x\\y\nz"


@pytest.mark.parametrize(
    "args",
    [("", "fn", [], []), ("u", " ", [], []), ("u", "f", [""], []), ("u", "f\x00", [], [])],
)
def test_build_vcard_refuses(args: tuple[str, str, list[str], list[str]]) -> None:
    with pytest.raises(ValueError):
        build_vcard(*args)


#: Any text a card can carry, rich in vCard's special characters.
_TEXT = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"
    )
    | st.sampled_from(',;\\:\t\r\n"^=.'),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")


def lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=100)
@given(uid=_TEXT, fn=_TEXT, emails=st.lists(_TEXT, max_size=3), tels=st.lists(_TEXT, max_size=3))
def test_build_parse_round_trip(uid: str, fn: str, emails: list[str], tels: list[str]) -> None:
    card = parse_vcard(build_vcard(uid, fn, emails, tels, organization=fn, note=fn))
    assert card.uid == lf(uid)
    assert card.fn == lf(fn)
    assert card.emails == tuple(lf(e) for e in emails)
    assert card.tels == tuple(lf(t)[4:] if t[:4].lower() == "tel:" else lf(t) for t in tels)
    assert card.organization == lf(fn)


def changed(before: bytes, after: bytes) -> tuple[set[bytes], set[bytes]]:
    old, new = set(before.split(b"\r\n")), set(after.split(b"\r\n"))
    return old - new, new - old


def test_update_fn_keeps_everything_else() -> None:
    after = update_vcard(APPLE, fn="Märta Berg")
    assert parse_vcard(after).fn == "Märta Berg"
    assert changed(APPLE, after) == (
        {"N:Lindqvist;Märta;Sofia;Prof.;".encode(), "FN:Prof. Märta Lindqvist".encode()},
        {"N:Berg;Märta;;;".encode(), "FN:Märta Berg".encode()},
    )
    assert update_vcard(APPLE) == APPLE


def test_update_emails_keeps_groups_and_labels() -> None:
    after = update_vcard(APPLE, emails=["MARTA@home.example", "new@lbp.example"])
    card = parse_vcard(after)
    assert card.emails == ("marta@home.example", "new@lbp.example")
    gone, added = changed(APPLE, after)
    assert gone == {b"EMAIL;type=INTERNET;type=WORK:m.lindqvist@lbp.example"}
    assert added == {b"EMAIL;TYPE=INTERNET:new@lbp.example"}
    # Dropping item1.EMAIL drops its label too; other groups stay.
    after = update_vcard(APPLE, emails=[])
    assert b"item1." not in after and b"item2.X-ABLabel:Lab" in after


def test_update_tels_compared_by_digits() -> None:
    after = update_vcard(THUNDERBIRD, tels=["+233 24 000 0002", "+1 555 0100"])
    card = parse_vcard(after)
    assert card.tels == ("+233-24-000-0002", "+1 555 0100")
    assert b"TEL;VALUE=uri;TYPE=cell:tel:+233-24-000-0002" in after


def test_update_single_fields() -> None:
    after = update_vcard(APPLE, organization="Nya Bolaget; AB", note="", nickname="M")
    card = parse_vcard(after)
    assert card.organization == "Nya Bolaget; AB"
    assert card.nickname == "M"
    assert all(p.name != "NOTE" for p in card.properties)
    after = update_vcard(THUNDERBIRD, organization="Acme", emails=["x@example.org"])
    card = parse_vcard(after)
    assert (card.organization, card.emails) == ("Acme", ("x@example.org",))
    assert b"\r\nEMAIL:x@example.org\r\n" in after  # 4.0: no TYPE=INTERNET
    assert after.endswith(b"ORG:Acme\r\nEND:VCARD\r\n")


def test_update_quoted_printable_line() -> None:
    after = update_vcard(QP_LEFTOVER, fn="Ayşe Kaya")
    assert "FN:Ayşe Kaya\r\n".encode() in after
    assert "N:Kaya;Ayşe;;;\r\n".encode() in after
    assert parse_vcard(after).fn == "Ayşe Kaya"


def test_update_refuses_invalid() -> None:
    with pytest.raises(InvalidAddressData):
        update_vcard(b"nope", fn="x")
    with pytest.raises(ValueError):
        update_vcard(APPLE, fn="")


@settings(max_examples=60)
@given(fn=_TEXT, org=_TEXT, emails=st.lists(_TEXT, max_size=3, unique_by=str.casefold))
def test_update_round_trip(fn: str, org: str, emails: list[str]) -> None:
    card = parse_vcard(update_vcard(APPLE, fn=fn, organization=org, emails=emails))
    assert (card.fn, card.organization) == (lf(fn), lf(org))
    assert sorted(card.emails) == sorted(lf(e) for e in emails)
    assert card.tels == parse_vcard(APPLE).tels


def test_vcardobject_is_frozen() -> None:
    card = parse_vcard(APPLE)
    with pytest.raises(AttributeError):
        card.fn = "x"  # type: ignore[misc]
    assert isinstance(card, VCardObject)
