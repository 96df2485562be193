"""The SMTP command parser: valid commands, exact refusals, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.smtp.parser import Address, Command, Reply, parse_command, quote_local


def command(line: bytes) -> Command:
    parsed = parse_command(line)
    assert isinstance(parsed, Command), parsed
    return parsed


def refusal(line: bytes) -> Reply:
    parsed = parse_command(line)
    assert isinstance(parsed, Reply), parsed
    return parsed


def test_hello_takes_a_domain_or_an_address_literal() -> None:
    assert command(b"EHLO mail.example.org").argument == "mail.example.org"
    assert command(b"ehlo [192.0.2.1]").argument == "[192.0.2.1]"
    assert command(b"HELO [IPv6:2001:DB8::1]").argument == "[IPv6:2001:DB8::1]"
    assert refusal(b"EHLO").code == 501
    assert refusal(b"EHLO bad_domain!").code == 501
    assert refusal(b"EHLO [999.1.1.1]").code == 501


def test_mail_from_with_parameters() -> None:
    parsed = command(b"MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8")
    assert parsed.address == Address("alice", "example.org")
    assert parsed.params == {"SIZE": "1000", "BODY": "8BITMIME", "SMTPUTF8": None}


def test_null_reverse_path_is_a_sender_but_not_a_recipient() -> None:
    assert command(b"MAIL FROM:<>").address is None
    assert refusal(b"RCPT TO:<>").code == 501


def test_verbs_and_keywords_are_case_insensitive() -> None:
    parsed = command(b"mail from:<a@example.org> size=10")
    assert parsed.verb == "MAIL"
    assert parsed.params == {"SIZE": "10"}


def test_quoted_local_parts_are_unquoted() -> None:
    parsed = command(b'RCPT TO:<"john \\"jd\\" doe"@example.org>')
    assert parsed.address == Address('john "jd" doe', "example.org")
    assert quote_local('john "jd" doe') == '"john \\"jd\\" doe"'


def test_source_routes_are_accepted_and_ignored() -> None:
    parsed = command(b"RCPT TO:<@relay.example,@other.example:bob@example.org>")
    assert parsed.address == Address("bob", "example.org")


def test_address_literals_are_normalised() -> None:
    assert command(b"RCPT TO:<a@[192.0.2.1]>").address == Address("a", "[192.0.2.1]")
    v6 = command(b"RCPT TO:<a@[IPv6:2001:0db8:0:0::1]>").address
    assert v6 == Address("a", "[IPv6:2001:db8::1]")
    assert refusal(b"RCPT TO:<a@[300.1.1.1]>").enhanced == "5.1.3"
    assert refusal(b"RCPT TO:<a@[example.org]>").enhanced == "5.1.3"


def test_utf8_addresses_are_marked() -> None:
    parsed = command("RCPT TO:<jörg@bücher.example>".encode())
    assert parsed.address == Address("jörg", "bücher.example", utf8=True)


def test_bare_postmaster_is_a_recipient() -> None:
    assert command(b"RCPT TO:<Postmaster>").address == Address("postmaster", "")


@pytest.mark.parametrize(
    ("line", "code", "enhanced"),
    [
        (b"RCPT TO:<" + b"a" * 65 + b"@example.org>", 501, "5.1.3"),
        (b"RCPT TO:<a@" + b"b" * 64 + b".example>", 501, "5.1.3"),
        (b"RCPT TO:<" + b"a" * 60 + b"@" + b"b." * 100 + b"org>", 501, "5.1.3"),
        (b"RCPT TO:<a..b@example.org>", 501, "5.1.3"),
        (b"RCPT TO:<.a@example.org>", 501, "5.1.3"),
        (b"RCPT TO:<a@-bad.example>", 501, "5.1.3"),
        (b"RCPT TO:<a@example.org", 501, "5.5.4"),
        (b"RCPT TO:a@example.org", 501, "5.5.4"),
        (b"RCPT <a@example.org>", 501, "5.5.4"),
        (b"MAIL FROM:<a@example.org>junk", 501, "5.5.4"),
        (b"MAIL FROM:<a@example.org> SIZE=1 SIZE=2", 555, "5.5.4"),
        (b"MAIL FROM:<a@example.org> =x", 555, "5.5.4"),
        (b"DATA now", 501, "5.5.4"),
        (b"BDAT", 501, "5.5.4"),
        (b"BDAT ten", 501, "5.5.4"),
        (b"BDAT 10 FIRST", 501, "5.5.4"),
        (b"AUTH", 501, "5.5.4"),
        (b"XYZZY", 500, "5.5.2"),
        (b"", 500, "5.5.2"),
        (b"MAIL\x00FROM:<a@b.example>", 500, "5.5.2"),
        (b"NOOP \x01", 500, "5.5.2"),
        (b"NOOP \xff\xfe", 500, "5.5.2"),
    ],
)
def test_refusals_have_exact_codes(line: bytes, code: int, enhanced: str) -> None:
    reply = refusal(line)
    assert (reply.code, reply.enhanced) == (code, enhanced)


def test_bdat_and_auth_arguments() -> None:
    assert command(b"BDAT 0 LAST").size == 0
    assert command(b"BDAT 100 LAST").last is True
    assert command(b"BDAT 100").last is False
    auth = command(b"AUTH plain dGVzdA==")
    assert (auth.mechanism, auth.initial_response) == ("PLAIN", "dGVzdA==")
    assert command(b"AUTH LOGIN").initial_response is None


def test_replies_render_multiline_with_enhanced_codes() -> None:
    reply = Reply(250, "", "mail.example\nPIPELINING\nSIZE 10")
    assert reply.lines() == [b"250-mail.example\r\n", b"250-PIPELINING\r\n", b"250 SIZE 10\r\n"]
    assert Reply(550, "5.1.1", "no").lines() == [b"550 5.1.1 no\r\n"]


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise_and_always_get_a_reply_code(line: bytes) -> None:
    parsed = parse_command(line)
    if isinstance(parsed, Reply):
        assert 500 <= parsed.code < 600
        assert parsed.lines()[-1].endswith(b"\r\n")
    else:
        assert parsed.verb.isupper()


_VERBS = st.sampled_from(
    ["MAIL FROM:", "RCPT TO:", "EHLO ", "HELO ", "BDAT ", "AUTH ", "VRFY ", "DATA", "RSET"]
)


@settings(max_examples=2000, deadline=None)
@given(_VERBS, st.text(max_size=300))
def test_command_shaped_text_never_raises(verb: str, rest: str) -> None:
    parsed = parse_command((verb + rest).encode("utf-8", "surrogatepass"))
    assert isinstance(parsed, Command | Reply)
