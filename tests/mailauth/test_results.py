"""
The Authentication-Results field (RFC 8601): its exact form, folding,
quoting of hostile values, and removal of forged fields.
"""

from __future__ import annotations

import email
import email.policy
import re

from gk.mailauth import AuthResults, DKIMResult, DMARCResult, SPFResult, remove_own_results

HOST = "mail.example.test"


def example_results() -> AuthResults:
    return AuthResults(
        HOST,
        SPFResult("pass", "example.org", "mailfrom"),
        (
            DKIMResult("pass", "example.org", "sel", "ed25519-sha256", "ab/d1234efgh+/5678=="),
            DKIMResult("fail", "example.net", "s2", "rsa-sha256", "zz", "body hash did not verify"),
        ),
        (DMARCResult("pass", "example.org", policy="reject", record_domain="example.org"),),
    )


def test_exact_form() -> None:
    assert example_results().header() == (
        "Authentication-Results: mail.example.test;\r\n"
        " spf=pass smtp.mailfrom=example.org;\r\n"
        " dkim=pass header.d=example.org header.s=sel header.a=ed25519-sha256\r\n"
        '  header.b="ab/d1234efgh";\r\n'
        ' dkim=fail reason="body hash did not verify" header.d=example.net header.s=s2\r\n'
        "  header.a=rsa-sha256 header.b=zz;\r\n"
        " dmarc=pass (p=reject dis=none) header.from=example.org\r\n"
    )


def test_helo_scope_policies_and_no_signature() -> None:
    results = AuthResults(
        HOST,
        SPFResult("softfail", "mx.example.net", "helo"),
        (),
        (
            DMARCResult(
                "fail",
                "news.example.net",
                policy="reject",
                subdomain_policy="quarantine",
                record_domain="example.net",
                pct=50,
                sampled_out=True,
                disposition="accept",
            ),
        ),
    )
    assert results.header() == (
        "Authentication-Results: mail.example.test;\r\n"
        " spf=softfail smtp.helo=mx.example.net;\r\n"
        " dkim=none;\r\n"
        " dmarc=fail (p=reject sp=quarantine pct=50 dis=none)\r\n"
        "  header.from=news.example.net\r\n"
    )


def test_the_email_package_reads_it_back() -> None:
    header = example_results().header().encode("ascii")
    message = email.message_from_bytes(
        header + b"Subject: x\r\n\r\nbody\r\n", policy=email.policy.SMTP
    )
    value = " ".join(str(message["Authentication-Results"]).split())
    assert value.startswith("mail.example.test; spf=pass smtp.mailfrom=example.org; dkim=pass")
    assert value.endswith("dmarc=pass (p=reject dis=none) header.from=example.org")
    assert message["Subject"] == "x"


def test_hostile_values_cannot_break_out() -> None:
    evil = 'x.example\r\nX-Spam: no; dkim=pass "(\\'
    results = AuthResults(
        HOST,
        SPFResult("none", evil, "helo"),
        (DKIMResult("permerror", evil, evil, evil, evil, "bad"),),
        (DMARCResult("none", evil),),
    )
    header = results.header()
    assert header.isascii()
    lines = header.split("\r\n")
    assert lines[-1] == ""
    assert all(line.startswith((" ", "Authentication-Results:")) for line in lines[:-1])
    assert "X-Spam: no" not in header.replace("\r\n ", " ").split(": ", 1)[0]
    message = email.message_from_string(header + "\r\nbody\r\n")
    assert list(message.keys()) == ["Authentication-Results"]
    # the quoted values keep their quotes and backslashes escaped
    assert 'smtp.helo="x.example??X-Spam: no; dkim=pass \\"(\\\\"' in header


def test_long_values_fold_and_no_line_passes_998() -> None:
    long_domain = ".".join(["label" * 12] * 4)
    results = AuthResults(
        HOST,
        SPFResult("pass", long_domain, "mailfrom"),
        tuple(DKIMResult("pass", long_domain, "s" * 60, "rsa-sha256", "b" * 400) for _ in range(3)),
        (DMARCResult("pass", long_domain, policy="none"),),
    )
    header = results.header()
    assert header.endswith("\r\n")
    assert all(len(line) <= 998 for line in header.split("\r\n"))
    assert not re.search(r"\r\n(?![ ])", header[:-2])


def test_disposition_is_the_strictest() -> None:
    spf = SPFResult("none", "", "mailfrom")
    results = AuthResults(
        HOST,
        spf,
        (),
        (
            DMARCResult("fail", "a.example", disposition="quarantine"),
            DMARCResult("fail", "b.example", disposition="reject"),
            DMARCResult("pass", "c.example"),
        ),
    )
    assert results.disposition == "reject"
    assert results.dmarc.from_domain == "b.example"
    assert AuthResults(HOST, spf).disposition == "accept"


def test_remove_own_results() -> None:
    message = (
        b"Authentication-Results: mail.example.test; spf=pass\r\n"
        b"Received: from x by y\r\n"
        b"Authentication-Results: (forged) MAIL.Example.Test;\r\n"
        b"  dkim=pass header.d=bank.example\r\n"
        b'authentication-results : "mail.example.test"; dmarc=pass\r\n'
        b"Authentication-Results: mx.elsewhere.example; spf=fail\r\n"
        b"Authentication-Results: mail.example.test.evil; spf=pass\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mail.example.test; body text stays\r\n"
    )
    assert remove_own_results(message, HOST) == (
        b"Received: from x by y\r\n"
        b"Authentication-Results: mx.elsewhere.example; spf=fail\r\n"
        b"Authentication-Results: mail.example.test.evil; spf=pass\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mail.example.test; body text stays\r\n"
    )
    lf = b"Authentication-Results: mail.example.test; x\nSubject: a\n\nbody\n"
    assert remove_own_results(lf, HOST) == b"Subject: a\n\nbody\n"
    untouched = b"Subject: a\r\n\r\nbody"
    assert remove_own_results(untouched, HOST) == untouched
