"""
Envelope parsing: what the index keeps of each message's header block,
decoded to text, and never an exception whatever the bytes.
"""

from __future__ import annotations

import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gk.storage.envelope import MAX_HEADER_BYTES, Envelope, header_block, parse_envelope

UTC = datetime.UTC


def at(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_rfc2047_subjects_utf8_and_latin1_base64_and_q() -> None:
    cases = {
        b"=?UTF-8?B?w6l0w6kgw6AgUGFyaXM=?=": "été à Paris",
        b"=?utf-8?q?=C3=A9t=C3=A9_=C3=A0_Paris?=": "été à Paris",
        b"=?ISO-8859-1?Q?Caf=E9_cr=E8me?=": "Café crème",
        b"=?iso-8859-1?b?Q2Fm6SBjcuhtZQ==?=": "Café crème",
        b"Re: =?ISO-8859-1?Q?Caf=E9?= and =?UTF-8?Q?d=C3=A9j=C3=A0?= vu": "Re: Café and déjà vu",
        # Adjacent encoded-words join without the space between them.
        b"=?UTF-8?Q?Gr=C3=BC?= =?UTF-8?Q?=C3=9Fe?=": "Grüße",
        # Folded over two lines.
        b"=?UTF-8?Q?premi=C3=A8re?=\r\n =?UTF-8?Q?_ligne?=": "première ligne",
        b"plain ASCII subject": "plain ASCII subject",
    }
    for raw, expected in cases.items():
        envelope = parse_envelope(b"Subject: " + raw + b"\r\n\r\nbody\r\n")
        assert envelope.subject == expected, raw


def test_broken_encoded_words_are_kept_rather_than_lost() -> None:
    assert parse_envelope(b"Subject: =?x-unknown?Q?abc?=\r\n\r\n").subject == "abc"
    bad_base64 = parse_envelope(b"Subject: =?UTF-8?B?not*base64?=\r\n\r\n").subject
    assert "not*base64" in bad_base64


def test_several_to_and_cc_addresses_with_encoded_names() -> None:
    data = (
        b'To: a@x.test, "Bee, Sea" <b@x.test>\r\n'
        b"To: d@x.test\r\n"
        b"Cc: =?ISO-8859-1?Q?Andr=E9?= <andre@x.test>,\r\n"
        b"  =?UTF-8?B?w4lsb2RpZQ==?= <elodie@x.test>, plain@x.test\r\n"
        b"From: Bob Smith <bob@x.test>\r\n"
        b"Reply-To: <replies@x.test>\r\n"
        b"Sender: =?UTF-8?Q?L=C3=A9a?= <lea@x.test>\r\n"
        b"Bcc: hidden@x.test\r\n"
        b"\r\n"
    )
    envelope = parse_envelope(data)
    assert envelope.to == 'a@x.test, "Bee, Sea" <b@x.test>, d@x.test'
    assert envelope.cc == "André <andre@x.test>, Élodie <elodie@x.test>, plain@x.test"
    assert envelope.from_ == "Bob Smith <bob@x.test>"
    assert envelope.reply_to == "replies@x.test"
    assert envelope.sender == "Léa <lea@x.test>"
    assert envelope.bcc == "hidden@x.test"


def test_dates_with_zones_are_stored_in_utc() -> None:
    cases = {
        b"Tue, 1 Jul 2003 10:52:37 +0200": at(2003, 7, 1, 8, 52, 37),
        b"Tue, 1 Jul 2003 10:52:37 -0730": at(2003, 7, 1, 18, 22, 37),
        b"1 Jul 2003 10:52:37 GMT": at(2003, 7, 1, 10, 52, 37),
        b"Tue, 1 Jul 2003 10:52:37 EST": at(2003, 7, 1, 15, 52, 37),
        # RFC 5322 3.3: "-0000" is UTC with no local zone known.
        b"Tue, 1 Jul 2003 10:52:37 -0000": at(2003, 7, 1, 10, 52, 37),
        b"Tue, 1 Jul 2003 10:52:37 +0000": at(2003, 7, 1, 10, 52, 37),
        # Obsolete two-digit year.
        b"Tue, 1 Jul 03 10:52:37 +0000": at(2003, 7, 1, 10, 52, 37),
    }
    for raw, expected in cases.items():
        date = parse_envelope(b"Date: " + raw + b"\r\n\r\n").date
        assert date == expected, raw
        assert date is not None and date.utcoffset() == datetime.timedelta(0)
    for garbage in (b"yesterday", b"Tue, 99 Foo 2003 99:99:99 +0200", b"", b"Mon, 1 Jan 99999"):
        assert parse_envelope(b"Date: " + garbage + b"\r\n\r\n").date is None


def test_missing_headers_give_empty_values() -> None:
    assert parse_envelope(b"\r\njust a body, no headers\r\n") == Envelope()
    assert parse_envelope(b"") == Envelope()
    only_subject = parse_envelope(b"Subject: hi\r\n\r\n")
    assert only_subject == Envelope(subject="hi")


def test_lf_only_messages_parse_like_crlf_ones() -> None:
    crlf = (
        b"From: a@x.test\r\nTo: b@x.test\r\nSubject: same\r\n"
        b"Message-ID: <id@x.test>\r\nIn-Reply-To: <p@x.test>\r\n"
        b"References: <r1@x.test>\r\n <p@x.test>\r\n\r\n"
        b"Subject: not a header, in the body\r\n"
    )
    lf = crlf.replace(b"\r\n", b"\n")
    assert parse_envelope(lf) == parse_envelope(crlf)
    envelope = parse_envelope(lf)
    assert envelope.subject == "same"
    assert envelope.message_id == "<id@x.test>"
    assert envelope.in_reply_to == "<p@x.test>"
    assert envelope.references == "<r1@x.test> <p@x.test>"


def test_body_headers_are_never_read() -> None:
    assert header_block(b"A: 1\r\n\r\nB: 2\r\n") == b"A: 1\r\n\r\n"
    assert header_block(b"A: 1\n\nB: 2\n") == b"A: 1\n\n"
    envelope = parse_envelope(b"Subject: real\n\nSubject: fake\nFrom: x@y.test\n")
    assert envelope == Envelope(subject="real")


def test_8bit_utf8_headers_are_decoded_as_utf8() -> None:
    data = (
        "From: René Dupré <rene@x.test>\r\n"
        "To: élève <eleve@x.test>, 山田 <yamada@x.test>\r\n"
        "Subject: café à Paris — 会議\r\n"
        "\r\n"
    ).encode()
    envelope = parse_envelope(data)
    assert envelope.subject == "café à Paris — 会議"
    assert envelope.from_ == "René Dupré <rene@x.test>"
    assert envelope.to == "élève <eleve@x.test>, 山田 <yamada@x.test>"


def test_internationalized_addresses_do_not_stop_parsing() -> None:
    # RFC 6532 (SMTPUTF8) mailbox; formataddr() would refuse the address.
    envelope = parse_envelope("From: José <josé@exemple.test>\r\nSubject: ok\r\n\r\n".encode())
    assert envelope.from_ == "José <josé@exemple.test>"
    assert envelope.subject == "ok"


def test_8bit_latin1_headers_are_not_lost() -> None:
    envelope = parse_envelope(b"Subject: caf\xe9 cr\xe8me\r\nFrom: Andr\xe9 <a@x.test>\r\n\r\n")
    assert envelope.subject == "café crème"
    assert envelope.from_ == "André <a@x.test>"


def test_an_endless_header_block_is_truncated() -> None:
    data = b"Subject: big\r\n" + b"X-Filler: " + b"a" * (MAX_HEADER_BYTES * 2) + b"\r\n\r\n"
    assert len(header_block(data)) == MAX_HEADER_BYTES
    assert parse_envelope(data).subject == "big"


header_names = st.sampled_from(
    [b"From", b"To", b"Cc", b"Bcc", b"Sender", b"Reply-To", b"Subject", b"Date",
     b"Message-ID", b"In-Reply-To", b"References", b"X-Other"]
)  # fmt: skip
header_values = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [b"=?UTF-8?B?", b"=?utf-8?q?=C3?=", b"=?x?b?===?=", b'"', b"<", b"@", b"(", b"\\",
         b":;", b",", b"-0000", b"Mon, 1 Jan 0000 00:00:00 +9999", b"\r\n ", b"\x00", b"\xff"]
    ),
)  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            st.tuples(header_names, st.lists(header_values, max_size=4).map(b"".join)),
            max_size=8,
        )
    )
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    head = sep.join(name + b": " + value for name, value in lines)
    return head + sep + sep + draw(st.binary(max_size=40))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), messages()))
def test_parse_envelope_never_raises(data: bytes) -> None:
    envelope = parse_envelope(data)
    for value in (envelope.subject, envelope.from_, envelope.to, envelope.cc, envelope.references):
        assert isinstance(value, str)
        # Stored in the index: must be encodable text.
        value.encode("utf-8")
    assert envelope.date is None or envelope.date.tzinfo is not None
