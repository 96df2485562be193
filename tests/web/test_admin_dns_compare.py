"""
How the web admin's live DNS check judges one record against what DNS
returned (L{gk.delivery.dns_records.compare}): no network here, the
round trip through a DNS server is in test_admin_pages.
"""

from __future__ import annotations

import pytest

from gk.delivery.dns_records import Record, compare

SPF = Record("example.test", "TXT", "v=spf1 mx -all")
DKIM = Record("gk._domainkey.example.test", "TXT", "v=DKIM1; k=rsa; p=MIIBIjAN")
MX = Record("example.test", "MX", "10 mail.example.test.")


@pytest.mark.parametrize(
    ("record", "found", "status"),
    [
        # Spacing and the case of host names do not matter.
        (SPF, ["v=spf1  mx -all "], "match"),
        (DKIM, ["v=DKIM1;k=rsa;  p=MIIBIjAN;"], "match"),
        (MX, ["10 MAIL.Example.TEST."], "match"),
        # Other records of the type at the name: a backup MX, a site verification.
        (MX, ["20 backup.example.net.", "10 mail.example.test."], "match"),
        (SPF, ["google-site-verification=abc"], "missing"),
        (SPF, ["google-site-verification=abc", "v=spf1 a -all"], "differs"),
        # A key record without its optional v= tag still stands for DKIM.
        (DKIM, ["k=rsa; p=OTHERKEY"], "differs"),
        (DKIM, ["v=DKIM1; k=rsa; p=mIIBIjAN"], "differs"),  # base64 is case-sensitive
        (MX, ["10 mx.elsewhere.test."], "differs"),
        (MX, [], "missing"),
    ],
)
def test_a_record_matches_differs_or_is_missing(
    record: Record, found: list[str], status: str
) -> None:
    check = compare(record, found)
    assert check.status == status
    if status == "differs":
        assert check.found and all("google" not in value for value in check.found)
    else:
        assert check.found == ()
