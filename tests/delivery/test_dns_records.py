"""
The records C{gk dns} prints (L{gk.delivery.dns_records}), built from
configs made in memory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gk.config import (
    Config,
    DeliveryConfig,
    HTTPConfig,
    IMAPConfig,
    ServerConfig,
    SMTPConfig,
    SubmissionConfig,
)
from gk.delivery.dkim_sign import DKIMKey
from gk.delivery.dns_records import (
    Comment,
    Entry,
    Record,
    domain_records,
    endpoint_port,
    mta_sts_id,
    mta_sts_policy,
    quote,
    txt_strings,
    zone_line,
    zone_lines,
)

DOMAIN = "example.test"
HOST = "mail.example.test"
ZONE_LINE = re.compile(r"^(\S+)\. (\d+) IN (MX|TXT|CNAME|SRV) (.+)$")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def config(**sections: object) -> Config:
    return Config(server=ServerConfig(hostname=HOST, domains=[DOMAIN]), **sections)  # type: ignore[arg-type]


def key(algorithm: str = "rsa", selector: str = "gk", public: bytes = b"\x01" * 294) -> DKIMKey:
    path = Path("/data/dkim") / DOMAIN / f"{selector}.pem"
    return DKIMKey(DOMAIN, selector, algorithm, 2048, path, b"", public)  # type: ignore[arg-type]


def records(entries: list[Entry]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        if isinstance(entry, Record):
            found.setdefault((entry.name, entry.type), []).append(entry.value)
    return found


def comments(entries: list[Entry]) -> str:
    return "\n".join(e.text for e in entries if isinstance(e, Comment))


def test_every_record_with_the_standard_ports() -> None:
    rsa, ed = key(), key("ed25519", "gked", b"\x02" * 32)

    found = records(domain_records(DOMAIN, config(), [rsa, ed]))

    policy = mta_sts_policy(HOST)
    assert found == {
        (DOMAIN, "MX"): [f"10 {HOST}."],
        (DOMAIN, "TXT"): ["v=spf1 mx -all"],
        (f"gk._domainkey.{DOMAIN}", "TXT"): [rsa.dns_value],
        (f"gked._domainkey.{DOMAIN}", "TXT"): [ed.dns_value],
        (f"_dmarc.{DOMAIN}", "TXT"): [
            f"v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{DOMAIN}"
        ],
        (f"_mta-sts.{DOMAIN}", "TXT"): [f"v=STSv1; id={mta_sts_id(policy)}"],
        (f"mta-sts.{DOMAIN}", "CNAME"): [f"{HOST}."],
        (f"_smtp._tls.{DOMAIN}", "TXT"): [f"v=TLSRPTv1; rua=mailto:postmaster@{DOMAIN}"],
        (f"autoconfig.{DOMAIN}", "CNAME"): [f"{HOST}."],
        (f"_submissions._tcp.{DOMAIN}", "SRV"): [f"0 1 465 {HOST}."],
        (f"_submission._tcp.{DOMAIN}", "SRV"): [f"10 1 587 {HOST}."],
        (f"_imaps._tcp.{DOMAIN}", "SRV"): [f"0 1 993 {HOST}."],
        (f"_imap._tcp.{DOMAIN}", "SRV"): [f"10 1 143 {HOST}."],
        # The default config has no HTTPS: DAV is "not offered".
        (f"_caldavs._tcp.{DOMAIN}", "SRV"): ["0 0 0 ."],
        (f"_carddavs._tcp.{DOMAIN}", "SRV"): ["0 0 0 ."],
    }


def test_the_mta_sts_policy_is_in_the_comments_and_its_id_follows_it() -> None:
    text = comments(domain_records(DOMAIN, config()))

    assert f"https://mta-sts.{DOMAIN}/.well-known/mta-sts.txt" in text
    for line in ("version: STSv1", "mode: testing", f"mx: {HOST}", "max_age: 604800"):
        assert f"  {line}" in text
    assert mta_sts_policy(HOST) == (
        f"version: STSv1\r\nmode: testing\r\nmx: {HOST}\r\nmax_age: 604800\r\n"
    )
    ids = {mta_sts_id(mta_sts_policy(HOST)), mta_sts_id(mta_sts_policy(HOST, "enforce"))}
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{20}", i) for i in ids)
    assert mta_sts_id(mta_sts_policy(HOST)) == mta_sts_id(mta_sts_policy(HOST))


def test_without_a_key_a_comment_says_how_to_make_one() -> None:
    entries = domain_records(
        DOMAIN, config(), [], ["DKIM key /x/gk.pem is neither RSA nor Ed25519"]
    )

    assert not any("_domainkey" in n for n, _t in records(entries))
    assert f"no DKIM key yet: run gk dkim keygen {DOMAIN}" in comments(entries)
    assert "skipped: DKIM key /x/gk.pem is neither RSA nor Ed25519" in comments(entries)


def test_ports_follow_the_listeners() -> None:
    custom = config(
        submission=SubmissionConfig(
            listen=["tcp:2587:interface=127.0.0.1"], tls_listen=["tcp6:port=2465", "tcp:465"]
        ),
        imap=IMAPConfig(listen=[], tls_listen=["tcp:2993:interface=\\:\\:1"]),
        http=HTTPConfig(tls_listen=["tcp:8443"]),
    )

    found = records(domain_records(DOMAIN, custom))

    assert found[(f"_submissions._tcp.{DOMAIN}", "SRV")] == [f"0 1 2465 {HOST}."]
    assert found[(f"_submission._tcp.{DOMAIN}", "SRV")] == [f"10 1 2587 {HOST}."]
    assert found[(f"_imaps._tcp.{DOMAIN}", "SRV")] == [f"0 1 2993 {HOST}."]
    assert found[(f"_imap._tcp.{DOMAIN}", "SRV")] == ["0 0 0 ."]  # no listener: not offered
    for service in ("_caldavs._tcp", "_carddavs._tcp"):
        assert found[(f"{service}.{DOMAIN}", "SRV")] == [f"0 1 8443 {HOST}."]
        assert found[(f"{service}.{DOMAIN}", "TXT")] == ["path=/dav/"]


def test_dav_behind_a_tls_proxy_follows_the_public_url() -> None:
    proxied = config(http=HTTPConfig(public_url="https://Web.Example.test/gk/"))

    found = records(domain_records(DOMAIN, proxied))

    assert found[(f"_caldavs._tcp.{DOMAIN}", "SRV")] == ["0 1 443 web.example.test."]
    assert found[(f"_carddavs._tcp.{DOMAIN}", "TXT")] == ["path=/gk/dav/"]


def test_warnings_for_what_cannot_work_as_configured() -> None:
    odd = config(
        smtp=SMTPConfig(listen=["tcp:2525"]),
        delivery=DeliveryConfig(smarthost="smtp.provider.test:587"),
    )
    plain = comments(domain_records(DOMAIN, config()))
    warned = comments(domain_records(DOMAIN, odd))

    assert "port 25" not in plain and "smarthost" not in plain
    assert "[smtp] listen has no port 25" in warned
    assert "smarthost smtp.provider.test:587" in warned


@pytest.mark.parametrize(
    ("description", "port"),
    [
        ("tcp:465", 465),
        ("tcp:2465:interface=127.0.0.1", 2465),
        ("tcp:interface=127.0.0.1:port=993", 993),
        ("tcp6:143:interface=\\:\\:1", 143),
        ("ssl:993:privateKey=key.pem", 993),
        ("tcp:0:interface=127.0.0.1", None),
        ("unix:/run/gk.sock", None),
    ],
)
def test_endpoint_port(description: str, port: int | None) -> None:
    assert endpoint_port(description) == port


# -- zone-file lines -------------------------------------------------------------


def test_long_txt_values_are_split_into_255_byte_strings_that_rejoin() -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 700

    line = zone_line(Record(f"gk._domainkey.{DOMAIN}", "TXT", value))

    match = ZONE_LINE.match(line)
    assert match is not None
    assert match.group(1, 2, 3) == (f"gk._domainkey.{DOMAIN}", "3600", "TXT")
    strings = QUOTED.findall(match.group(4))
    assert [len(s) for s in strings] == [255, 255, 208]
    assert "".join(strings) == value
    assert txt_strings("") == [b""]


def test_quoting_escapes_what_zone_files_need() -> None:
    assert quote(b'say "hi" \\ \x07') == '"say \\"hi\\" \\\\ \\007"'


def test_every_output_line_is_a_record_or_a_comment() -> None:
    lines = zone_lines(domain_records(DOMAIN, config(), [key(), key("ed25519", "gked")]), ttl=300)

    for line in lines:
        assert line.startswith("; ") or ZONE_LINE.match(line), line
    assert f"{DOMAIN}. 300 IN MX 10 {HOST}." in lines
    assert f'{DOMAIN}. 300 IN TXT "v=spf1 mx -all"' in lines
    assert f"_imap._tcp.{DOMAIN}. 300 IN SRV 10 1 143 {HOST}." in lines
    for line in lines:
        if " IN TXT " in line:
            assert all(len(s.encode()) <= 255 for s in QUOTED.findall(line))
