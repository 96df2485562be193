"""
DKIM signing of outbound mail (L{gk.delivery.dkim_sign}): messages signed
here verify with dkimpy and with gk's own inbound checks; keys are made,
found, replaced and refused as promised.
"""

from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.logger import capturedLogs

from gk.delivery.dkim_sign import (
    DKIMKey,
    DKIMKeyError,
    DKIMSigner,
    fields_to_sign,
    generate_key,
    key_files,
    load_key,
    read_keys,
    signing_domain,
)
from gk.mailauth import MailAuthenticator
from tests.delivery.dkim_helpers import (
    authenticator,
    dkimpy_verifies,
    dkimpy_verifies_all,
    gk_checks,
    signature_count,
    signature_tags,
)
from tests.dnsserver import DNSTestServer, dns_server
from tests.mailauth.helpers import make_message

__all__ = ["authenticator", "dns_server"]

DOMAIN = "example.test"
SENDER = f"alice@{DOMAIN}"


def message(from_: str = f"Alice <{SENDER}>", **kwargs: str) -> bytes:
    return make_message(from_=from_, to="bob@example.org", **kwargs)


def records(*keys: DKIMKey) -> dict[str, str]:
    return {key.dns_name: key.dns_value for key in keys}


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "dkim"


@pytest.fixture
def rsa_key(key_dir: Path) -> DKIMKey:
    return generate_key(key_dir, DOMAIN)


@pytest.fixture
def ed_key(key_dir: Path) -> DKIMKey:
    return generate_key(key_dir, DOMAIN, "ed25519")


# -- signatures -------------------------------------------------------------------


def test_rsa_and_ed25519_signatures_verify_with_dkimpy(
    key_dir: Path, rsa_key: DKIMKey, ed_key: DKIMKey
) -> None:
    original = message()

    signed = DKIMSigner(key_dir).sign(original)

    assert signed.endswith(original)
    assert signature_count(signed) == 2
    assert dkimpy_verifies_all(signed, records(rsa_key, ed_key)) == [True, True]
    top, second = signature_tags(signed, 0), signature_tags(signed, 1)
    assert (top["a"], top["s"], second["a"], second["s"]) == (
        "rsa-sha256",
        "gk",
        "ed25519-sha256",
        "gked",
    )
    for tags in (top, second):
        assert (tags["d"], tags["c"]) == (DOMAIN, "relaxed/relaxed")
        assert tags["h"].split(":") == ["from", "to", "subject", "date", "message-id", "from"]


@pytest_twisted.ensureDeferred
async def test_gk_verifier_passes_both_signatures_and_dmarc_aligns(
    key_dir: Path,
    rsa_key: DKIMKey,
    ed_key: DKIMKey,
    dns_server: DNSTestServer,
    authenticator: MailAuthenticator,
) -> None:
    for key in (rsa_key, ed_key):
        dns_server.txt(key.dns_name, key.dns_value)
    dns_server.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject; adkim=s; aspf=s")

    results = await gk_checks(authenticator, DKIMSigner(key_dir).sign(message()), SENDER)

    assert [(r.result, r.domain, r.algorithm) for r in results.dkim] == [
        ("pass", DOMAIN, "rsa-sha256"),
        ("pass", DOMAIN, "ed25519-sha256"),
    ]
    assert (results.dmarc.result, results.dmarc.from_domain) == ("pass", DOMAIN)


@pytest_twisted.ensureDeferred
async def test_tampered_body_fails_everywhere(
    key_dir: Path,
    rsa_key: DKIMKey,
    ed_key: DKIMKey,
    dns_server: DNSTestServer,
    authenticator: MailAuthenticator,
) -> None:
    for key in (rsa_key, ed_key):
        dns_server.txt(key.dns_name, key.dns_value)
    tampered = DKIMSigner(key_dir).sign(message()).replace(b"at noon", b"at one")

    results = await gk_checks(authenticator, tampered, SENDER)

    assert dkimpy_verifies_all(tampered, records(rsa_key, ed_key)) == [False, False]
    assert [(r.result, r.reason) for r in results.dkim] == [
        ("fail", "body hash did not verify"),
        ("fail", "body hash did not verify"),
    ]


def test_relaxed_canonicalisation_survives_refolding(
    key_dir: Path, rsa_key: DKIMKey, ed_key: DKIMKey
) -> None:
    signed = DKIMSigner(key_dir).sign(message(subject="Lunch at noon on Friday"))
    refolded = signed.replace(b"Subject: Lunch at noon", b"Subject:  Lunch\r\n\tat   noon")

    assert refolded != signed
    assert dkimpy_verifies_all(refolded, records(rsa_key, ed_key)) == [True, True]


def test_a_second_from_field_breaks_the_signature(key_dir: Path, ed_key: DKIMKey) -> None:
    signed = DKIMSigner(key_dir).sign(message())
    header, _, body = signed.partition(b"\r\n\r\n")
    forged = header + b"\r\nFrom: Mallory <mallory@example.org>\r\n\r\n" + body

    assert dkimpy_verifies(signed, records(ed_key))
    assert not dkimpy_verifies(forged, records(ed_key))


def test_lf_line_ends_are_kept(key_dir: Path, rsa_key: DKIMKey) -> None:
    original = message().replace(b"\r\n", b"\n")

    signed = DKIMSigner(key_dir).sign(original)

    assert signed.endswith(original)
    assert b"\r" not in signed
    assert dkimpy_verifies(signed, records(rsa_key))


def test_idn_from_domain_signs_with_its_a_label(key_dir: Path) -> None:
    key = generate_key(key_dir, "xn--bcher-kva.test", "ed25519")

    signed = DKIMSigner(key_dir).sign(message(from_="Ana <ana@Bücher.test>"))

    assert signature_tags(signed, 0)["d"] == "xn--bcher-kva.test"
    assert dkimpy_verifies(signed, records(key))


# -- what is not signed ---------------------------------------------------------------


def test_another_from_domain_is_not_signed(key_dir: Path, rsa_key: DKIMKey) -> None:
    original = message(from_="Carol <carol@example.org>")

    assert DKIMSigner(key_dir).sign(original) is original


@pytest.mark.parametrize(
    "header",
    [
        b"To: bob@example.org\r\n",
        b"From: alice@example.test\r\nFrom: alice@example.test\r\n",
        b"From: alice@example.test, carol@example.test\r\n",
        b"From: undisclosed\r\n",
        b"From: alice@../../etc\r\n",
    ],
    ids=["no From", "two From fields", "two addresses", "no address", "not a domain"],
)
def test_no_single_from_address_is_not_signed(
    key_dir: Path, rsa_key: DKIMKey, header: bytes
) -> None:
    original = header + b"Subject: hi\r\n\r\nbody\r\n"

    assert signing_domain(original) is None
    assert DKIMSigner(key_dir).sign(original) is original


def test_no_key_at_all_is_not_signed(key_dir: Path) -> None:
    original = message()

    assert DKIMSigner(key_dir).sign(original) is original


def test_signing_domain_is_lower_case_a_label() -> None:
    assert signing_domain(message(from_='"Alice, A." <Alice@Example.TEST>')) == DOMAIN
    assert signing_domain(message(from_="ana@bücher.test")) == "xn--bcher-kva.test"


def test_fields_to_sign_keeps_present_ones_and_oversigns_from() -> None:
    names = [b"Received", b"From", b"To", b"X-Mailer", b"List-Unsubscribe", b"Bcc", b"Subject"]

    assert fields_to_sign(names) == [b"from", b"to", b"list-unsubscribe", b"subject", b"from"]


# -- keys while running -----------------------------------------------------------


def test_a_key_made_after_the_signer_is_used_and_a_deleted_one_no_longer(
    key_dir: Path,
) -> None:
    signer = DKIMSigner(key_dir)
    original = message()
    assert signer.sign(original) is original

    key = generate_key(key_dir, DOMAIN, "ed25519")
    signed = signer.sign(original)
    assert dkimpy_verifies(signed, records(key))

    key.path.unlink()
    assert signer.sign(original) is original


def test_a_replaced_key_file_is_read_again(key_dir: Path) -> None:
    signer = DKIMSigner(key_dir)
    first = generate_key(key_dir, DOMAIN, "ed25519", selector="sel")
    assert dkimpy_verifies(signer.sign(message()), records(first))

    first.path.unlink()
    second = generate_key(key_dir, DOMAIN, "ed25519", selector="sel")

    signed = signer.sign(message())
    assert dkimpy_verifies(signed, records(second))
    assert not dkimpy_verifies(signed, records(first))


def test_a_corrupt_key_is_logged_once_and_skipped(key_dir: Path, ed_key: DKIMKey) -> None:
    (key_dir / DOMAIN / "gk.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n")
    signer = DKIMSigner(key_dir)

    with capturedLogs() as events:
        first, second = signer.sign(message()), signer.sign(message())

    for signed in (first, second):
        assert signature_count(signed) == 1
        assert signature_tags(signed, 0)["s"] == "gked"
        assert dkimpy_verifies(signed, records(ed_key))
    errors = [e for e in events if "not signing with it" in e.get("log_format", "")]
    assert len(errors) == 1
    assert "gk.pem is not an unencrypted PEM private key" in errors[0]["error"]


def test_only_a_corrupt_key_leaves_the_message_as_it_is(key_dir: Path) -> None:
    (key_dir / DOMAIN).mkdir(parents=True)
    (key_dir / DOMAIN / "gk.pem").write_bytes(b"not a key")
    original = message()

    with capturedLogs():
        assert DKIMSigner(key_dir).sign(original) is original


def test_signing_from_many_threads_at_once(
    key_dir: Path, rsa_key: DKIMKey, ed_key: DKIMKey
) -> None:
    signer = DKIMSigner(key_dir)
    messages = [message(subject=f"message {i}") for i in range(24)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        signed = list(pool.map(signer.sign, messages))

    for one in signed:
        assert dkimpy_verifies_all(one, records(rsa_key, ed_key)) == [True, True]


# -- making keys -----------------------------------------------------------------


def test_generated_keys_are_private_and_publish_the_right_record(
    key_dir: Path, rsa_key: DKIMKey, ed_key: DKIMKey
) -> None:
    assert rsa_key.path == key_dir / DOMAIN / "gk.pem"
    assert ed_key.path == key_dir / DOMAIN / "gked.pem"
    for path, mode in ((key_dir, 0o700), (key_dir / DOMAIN, 0o700), (rsa_key.path, 0o600)):
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, path
    assert sorted(os.listdir(key_dir / DOMAIN)) == ["gk.pem", "gked.pem"]  # no temporary left
    assert rsa_key.path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")

    assert (rsa_key.dns_name, rsa_key.bits) == ("gk._domainkey.example.test", 2048)
    prefix, _, p = rsa_key.dns_value.partition("p=")
    assert prefix == "v=DKIM1; k=rsa; "
    public = serialization.load_der_public_key(base64.b64decode(p))
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048

    prefix, _, p = ed_key.dns_value.partition("p=")
    assert prefix == "v=DKIM1; k=ed25519; "
    assert len(base64.b64decode(p)) == 32


def test_rsa_key_size_can_be_chosen(key_dir: Path) -> None:
    key = generate_key(key_dir, DOMAIN, "rsa", selector="big", bits=3072)

    assert (key.selector, key.bits) == ("big", 3072)
    assert len(key.dns_value) > 255  # published as several strings


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"bits": 1024}, "1024-bit RSA keys are too weak; use 2048 or more"),
        ({"bits": 8192}, "8192-bit RSA keys are too long; use at most 4096"),
        ({"algorithm": "ed25519", "bits": 2048}, "--bits is for RSA keys only"),
        ({"algorithm": "dsa"}, "unknown DKIM algorithm 'dsa'"),
        ({"selector": "../x"}, "'../x' is not a valid selector"),
        ({"selector": "a_b"}, "'a_b' is not a valid selector"),
    ],
)
def test_bad_key_requests_are_refused(key_dir: Path, kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(DKIMKeyError) as raised:
        generate_key(key_dir, DOMAIN, **kwargs)  # type: ignore[arg-type]

    assert error in str(raised.value)
    assert key_files(key_dir, DOMAIN) == []


def test_an_existing_key_is_never_overwritten(key_dir: Path, ed_key: DKIMKey) -> None:
    before = ed_key.path.read_bytes()

    with pytest.raises(DKIMKeyError, match=r"a DKIM key exists already: .*gked\.pem"):
        generate_key(key_dir, DOMAIN, "ed25519")

    assert ed_key.path.read_bytes() == before


def test_domain_must_be_a_plain_a_label_name(key_dir: Path) -> None:
    for bad in ("../etc", "Example.test", "bücher.test", "localhost"):
        with pytest.raises(DKIMKeyError, match="not a lower-case domain name"):
            generate_key(key_dir, bad)
    assert not key_dir.exists()


def test_a_pkcs1_key_from_elsewhere_is_used(key_dir: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (key_dir / DOMAIN).mkdir(parents=True)
    (key_dir / DOMAIN / "mail2024.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )

    (key,), problems = read_keys(key_dir, DOMAIN)

    assert (key.selector, key.algorithm, problems) == ("mail2024", "rsa", [])
    assert dkimpy_verifies(DKIMSigner(key_dir).sign(message()), records(key))


def test_unusable_key_files_say_why(key_dir: Path) -> None:
    folder = key_dir / DOMAIN
    folder.mkdir(parents=True)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (folder / "ec.pem").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "Upper.pem").write_bytes(b"")
    (folder / ".gk.pem.1234.tmp").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"")

    keys, problems = read_keys(key_dir, DOMAIN)

    assert keys == []
    assert sorted(str(p) for p in problems) == [
        f"DKIM key {folder / 'Upper.pem'}: 'Upper': selector file names are lower case",
        f"DKIM key {folder / 'ec.pem'} is neither RSA nor Ed25519",
    ]
    with pytest.raises(DKIMKeyError, match="cannot be read"):
        load_key(folder / "missing.pem")
