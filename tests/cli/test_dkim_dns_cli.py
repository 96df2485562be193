"""
C{gk dkim keygen DOMAIN} and C{gk dns DOMAIN}, run as an operator runs them;
and the issue's done-when: a DKIM signature made by gk verifies with dkimpy
(and with gk's own checks) against the key that C{gk dns} says to publish.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest_twisted
from twisted.names import dns

from gk.config import load_config
from gk.delivery.dkim_sign import DKIMSigner, key_directory
from gk.mailauth import MailAuthenticator
from tests.cli.conftest import Gk, together
from tests.delivery.dkim_helpers import (
    authenticator,
    dkimpy_verifies_all,
    gk_checks,
    signature_count,
)
from tests.dnsserver import DNSTestServer, dns_server
from tests.mailauth.helpers import make_message

__all__ = ["authenticator", "dns_server"]

DOMAIN = "example.test"
ZONE_LINE = re.compile(r"^(\S+)\. (\d+) IN (MX|TXT|CNAME|SRV) (.+)$")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_zone(lines: list[str]) -> list[tuple[str, str, str | list[str]]]:
    """
    The records of C{gk dns} output as C{(name, type, value)}; a TXT value
    as its list of strings.  Every line must be a record or a comment.
    """
    parsed: list[tuple[str, str, str | list[str]]] = []
    for line in lines:
        if line.startswith("; "):
            continue
        match = ZONE_LINE.match(line)
        assert match is not None, line
        name, _ttl, rtype, value = match.groups()
        if rtype == "TXT":
            assert QUOTED.sub("", value).strip() == "", line
            parsed.append((name, rtype, QUOTED.findall(value)))
        else:
            parsed.append((name, rtype, value))
    return parsed


def txt_records(lines: list[str]) -> dict[str, list[list[str]]]:
    """name -> the TXT records there, each as its strings."""
    found: dict[str, list[list[str]]] = {}
    for name, rtype, value in parse_zone(lines):
        if rtype == "TXT":
            assert isinstance(value, list)
            found.setdefault(name, []).append(value)
    return found


def set_listeners(config_file: Path) -> None:
    """Give the test config submission and IMAP listeners on other ports."""
    text = config_file.read_text()
    text = text.replace(
        "[submission]\nlisten = []\ntls_listen = []",
        '[submission]\nlisten = ["tcp:2587"]\ntls_listen = ["tcp:2465:interface=127.0.0.1"]',
    ).replace(
        "[imap]\nlisten = []\ntls_listen = []", '[imap]\nlisten = []\ntls_listen = ["tcp:993"]'
    )
    assert text != config_file.read_text()
    config_file.write_text(text)


@pytest_twisted.ensureDeferred
async def test_gk_signature_verifies_against_the_key_gk_dns_publishes(
    gk: Gk,
    config_file: Path,
    dns_server: DNSTestServer,
    authenticator: MailAuthenticator,
) -> None:
    gk.ok("dkim", "keygen", DOMAIN)
    gk.ok("dkim", "keygen", DOMAIN, "--algorithm", "ed25519")
    published = txt_records(gk.ok("dns", DOMAIN))
    # Publish every TXT record exactly as printed, string by string.
    for name, texts in published.items():
        for strings in texts:
            dns_server.add(name, dns.Record_TXT(*(s.encode() for s in strings), ttl=0))
    keys = {
        name: "".join(strings) for name, (strings,) in published.items() if "_domainkey" in name
    }
    assert sorted(keys) == [f"gk._domainkey.{DOMAIN}", f"gked._domainkey.{DOMAIN}"]

    signer = DKIMSigner(key_directory(load_config(config_file, environ={}).server.data_dir))
    signed = signer.sign(make_message(from_=f"Alice <alice@{DOMAIN}>", to="bob@example.org"))
    results = await gk_checks(authenticator, signed, f"alice@{DOMAIN}")

    assert signature_count(signed) == 2
    assert dkimpy_verifies_all(signed, keys) == [True, True]
    assert [(r.result, r.selector, r.algorithm) for r in results.dkim] == [
        ("pass", "gk", "rsa-sha256"),
        ("pass", "gked", "ed25519-sha256"),
    ]
    assert (results.dmarc.result, results.dmarc.policy) == ("pass", "quarantine")


def test_keygen_writes_a_private_key_and_prints_its_record(gk: Gk, config_file: Path) -> None:
    lines = gk.ok("dkim", "keygen", "Example.TEST", "--selector", "Mail2026", "--bits", "3072")

    path = config_file.parent / "data" / "dkim" / DOMAIN / "mail2026.pem"
    assert lines[0] == f"created DKIM key {path} (rsa, 3072 bits)"
    assert lines[1] == f"name: mail2026._domainkey.{DOMAIN}"
    assert lines[2].startswith("value: v=DKIM1; k=rsa; p=MII")
    assert lines[3].startswith(f"zone: mail2026._domainkey.{DOMAIN}. 3600 IN TXT ")
    ((_name, _type, strings),) = parse_zone([lines[3].removeprefix("zone: ")])
    assert "".join(strings) == lines[2].removeprefix("value: ")
    assert all(len(s) <= 255 for s in strings) and len(strings) == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_keygen_errors_are_one_line(gk: Gk) -> None:
    gk.ok("dkim", "keygen", DOMAIN, "--algorithm", "ed25519")

    unknown, not_domain, existing, weak, ed_bits, selector, bad_algorithm, no_domain = together(
        gk.start("dkim", "keygen", "nowhere.test"),
        gk.start("dkim", "keygen", "not a domain"),
        gk.start("dkim", "keygen", DOMAIN, "--algorithm", "ed25519"),
        gk.start("dkim", "keygen", DOMAIN, "--bits", "1024"),
        gk.start("dkim", "keygen", DOMAIN, "--algorithm", "ed25519", "--bits", "4096"),
        gk.start("dkim", "keygen", DOMAIN, "--selector", "a/b"),
        gk.start("dkim", "keygen", DOMAIN, "--algorithm", "dsa"),
        gk.start("dkim", "keygen"),
    )

    assert unknown.failed() == "nowhere.test is not a local domain (see: gk domain list)"
    assert "is not a valid domain" in not_domain.failed()
    assert existing.failed().startswith("a DKIM key exists already: ")
    assert weak.failed() == "1024-bit RSA keys are too weak; use 2048 or more"
    assert ed_bits.failed().startswith("--bits is for RSA keys only")
    assert selector.failed().startswith("'a/b' is not a valid selector")
    assert "argument --algorithm: invalid choice: 'dsa'" in bad_algorithm.failed(status=2)
    assert "the following arguments are required: domain" in no_domain.failed(status=2)


def test_dns_prints_every_record(gk: Gk, config_file: Path) -> None:
    set_listeners(config_file)
    before, unknown = together(gk.start("dns", DOMAIN), gk.start("dns", "nowhere.test"))
    gk.ok("dkim", "keygen", DOMAIN)
    after = gk.ok("dns", DOMAIN)

    assert unknown.failed() == "nowhere.test is not a local domain (see: gk domain list)"
    assert f"; no DKIM key yet: run gk dkim keygen {DOMAIN}, then publish its record" in (
        before.succeeded()
    )
    assert not any("no DKIM key" in line for line in after)
    records = {(name, rtype): value for name, rtype, value in parse_zone(after)}
    host = "mail.example.test."
    assert records[(DOMAIN, "MX")] == f"10 {host}"
    assert records[(DOMAIN, "TXT")] == ["v=spf1 mx -all"]
    dkim_strings = records[(f"gk._domainkey.{DOMAIN}", "TXT")]
    assert len(dkim_strings) == 2 and all(len(s) <= 255 for s in dkim_strings)
    assert "".join(dkim_strings).startswith("v=DKIM1; k=rsa; p=MII")
    assert records[(f"_dmarc.{DOMAIN}", "TXT")] == [
        f"v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{DOMAIN}"
    ]
    sts = records[(f"_mta-sts.{DOMAIN}", "TXT")]
    assert isinstance(sts, list) and len(sts) == 1
    assert re.fullmatch(r"v=STSv1; id=[0-9a-f]{20}", sts[0])
    assert records[(f"mta-sts.{DOMAIN}", "CNAME")] == host
    assert records[(f"_smtp._tls.{DOMAIN}", "TXT")] == [
        f"v=TLSRPTv1; rua=mailto:postmaster@{DOMAIN}"
    ]
    assert records[(f"autoconfig.{DOMAIN}", "CNAME")] == host
    # Ports from the config's listeners; a role without one is "not offered".
    assert records[(f"_submissions._tcp.{DOMAIN}", "SRV")] == f"0 1 2465 {host}"
    assert records[(f"_submission._tcp.{DOMAIN}", "SRV")] == f"10 1 2587 {host}"
    assert records[(f"_imaps._tcp.{DOMAIN}", "SRV")] == f"0 1 993 {host}"
    assert records[(f"_imap._tcp.{DOMAIN}", "SRV")] == "0 0 0 ."
    assert records[(f"_caldavs._tcp.{DOMAIN}", "SRV")] == "0 0 0 ."
    assert records[(f"_carddavs._tcp.{DOMAIN}", "SRV")] == "0 0 0 ."
    assert ";   mode: testing" in after


def test_help_lists_the_new_commands(gk: Gk) -> None:
    top, keygen = together(gk.start("--help"), gk.start("dkim", "keygen", "--help"))

    assert "DKIM keys" in top.stdout and "dns" in top.stdout
    assert "--algorithm" in keygen.stdout and keygen.status == 0
