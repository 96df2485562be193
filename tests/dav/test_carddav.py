"""
A CardDAV round trip over raw HTTP: vCards 3.0 and 4.0 stored and read
back byte for byte, listed by PROPFIND, fetched by addressbook-multiget,
found by addressbook-query on an email address, refused when invalid or
when their UID is taken, exported whole, and deleted.
"""

from __future__ import annotations

import pytest_twisted

from tests.dav.conftest import ALICE, NAMESPACES, D, DavServer, R, prop_text, propfind_body

BOOK = f"/dav/addressbooks/{ALICE}/contacts/"
VCF = {"Content-Type": "text/vcard; charset=utf-8"}

CARD3 = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-3\r\nFN:Zo\xc3\xab Martin\r\n"
    b"N:Martin;Zo\xc3\xab;;;\r\nEMAIL;TYPE=INTERNET,WORK:zoe@example.org\r\n"
    b"item1.TEL:+33 1 23 45 67 89\r\nitem1.X-ABLabel:bureau\r\nEND:VCARD\r\n"
)
CARD4 = (
    b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:card-4\r\nFN:Bo Svensson\r\n"
    b"EMAIL;TYPE=home:bo@example.net\r\nEND:VCARD\r\n"
)


@pytest_twisted.ensureDeferred
async def test_vcards_round_trip(dav_server: DavServer) -> None:
    """PUT 3.0 and 4.0 cards (201 + ETag), GET them byte for byte, list them, delete one."""
    etags = {}
    for name, card in (("zoe.vcf", CARD3), ("bo.vcf", CARD4)):
        put = await dav_server.call("PUT", f"{BOOK}{name}", card, VCF)
        assert put.status == 201
        etags[name] = put.header("etag")
    got = await dav_server.call("GET", f"{BOOK}zoe.vcf")
    assert got.status == 200 and got.body == CARD3
    assert got.header("content-type") == "text/vcard; charset=utf-8"
    assert got.header("etag") == etags["zoe.vcf"]
    listing = await dav_server.call(
        "PROPFIND", BOOK, propfind_body("d:getetag", "d:getcontenttype"), {"Depth": "1"}
    )
    responses = listing.responses()
    assert set(responses) == {BOOK, f"{BOOK}zoe.vcf", f"{BOOK}bo.vcf"}
    assert prop_text(responses[f"{BOOK}bo.vcf"], f"{D}getetag") == etags["bo.vcf"]
    assert prop_text(responses[f"{BOOK}bo.vcf"], f"{D}getcontenttype") == (
        "text/vcard; charset=utf-8"
    )
    changed = await dav_server.call(
        "PUT", f"{BOOK}bo.vcf", CARD4.replace(b"Bo Svensson", b"Bo S."),
        {**VCF, "If-Match": etags["bo.vcf"] or ""},
    )  # fmt: skip
    assert changed.status == 204 and changed.header("etag") != etags["bo.vcf"]
    export = await dav_server.call("GET", BOOK)
    assert export.status == 200 and export.body.count(b"BEGIN:VCARD") == 2
    assert (await dav_server.call("DELETE", f"{BOOK}zoe.vcf")).status == 204
    assert (await dav_server.call("GET", f"{BOOK}zoe.vcf")).status == 404


@pytest_twisted.ensureDeferred
async def test_card_reports_multiget_and_query(dav_server: DavServer) -> None:
    """addressbook-multiget returns the data asked for; a query by email finds the card."""
    for name, card in (("zoe.vcf", CARD3), ("bo.vcf", CARD4)):
        assert (await dav_server.call("PUT", f"{BOOK}{name}", card, VCF)).status == 201
    multiget = (
        f'<?xml version="1.0"?><r:addressbook-multiget {NAMESPACES}><d:prop><d:getetag/>'
        f"<r:address-data/></d:prop><d:href>{BOOK}zoe.vcf</d:href></r:addressbook-multiget>"
    ).encode()
    answer = await dav_server.call("REPORT", BOOK, multiget, {"Depth": "1"})
    assert answer.status == 207
    data = prop_text(answer.responses()[f"{BOOK}zoe.vcf"], f"{R}address-data") or ""
    assert "FN:Zoë Martin" in data
    query = (
        f'<?xml version="1.0"?><r:addressbook-query {NAMESPACES}><d:prop><d:getetag/></d:prop>'
        '<r:filter><r:prop-filter name="EMAIL"><r:text-match match-type="contains">'
        "bo@example</r:text-match></r:prop-filter></r:filter></r:addressbook-query>"
    ).encode()
    found = await dav_server.call("REPORT", BOOK, query, {"Depth": "1"})
    assert found.status == 207
    assert set(found.responses()) == {f"{BOOK}bo.vcf"}


@pytest_twisted.ensureDeferred
async def test_invalid_and_conflicting_cards_are_refused(dav_server: DavServer) -> None:
    """
    Not a vCard: 403 valid-address-data; a second card with a UID in use:
    403 no-uid-conflict naming the first; neither is stored.
    """
    bad = await dav_server.call("PUT", f"{BOOK}bad.vcf", b"BEGIN:VCARD\r\nFN:x\r\n", VCF)
    assert bad.status == 403
    assert bad.xml().find(f"{R}valid-address-data") is not None
    assert (await dav_server.call("PUT", f"{BOOK}zoe.vcf", CARD3, VCF)).status == 201
    twin = await dav_server.call("PUT", f"{BOOK}twin.vcf", CARD3, VCF)
    assert twin.status == 403
    conflict = twin.xml().find(f"{R}no-uid-conflict")
    assert conflict is not None and conflict.findtext(f"{D}href") == f"{BOOK}zoe.vcf"
    listing = await dav_server.call("PROPFIND", BOOK, headers={"Depth": "1"})
    assert set(listing.responses()) == {BOOK, f"{BOOK}zoe.vcf"}
