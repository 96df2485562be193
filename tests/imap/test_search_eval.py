"""
SEARCH evaluation: every key against real index rows (as the indexer
builds them with parse_envelope) and real message bytes, the index-only
prefilter, and a model check over arbitrary key trees.
"""

from __future__ import annotations

import base64
import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gk.imap.search import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SearchKey,
    SequenceKey,
    SizeKey,
    TextKey,
    search_program,
)
from gk.imap.search_eval import (
    ContentRequired,
    SearchTarget,
    compile_search,
    evaluate,
    needs_content,
    search,
)
from gk.imap.syntax import SequenceSet, Tokens
from gk.storage.envelope import parse_envelope
from gk.storage.mail_folders import IndexedMessage

UTC = datetime.UTC


def key(text: str) -> SearchKey:
    """The tree gk's parser makes of C{text}."""
    tokens = Tokens((text.encode("utf-8"),))
    parsed = search_program(tokens)
    tokens.end()
    return parsed


def at(*when: int, tz: datetime.tzinfo = UTC) -> datetime.datetime:
    year, month, day, hour, minute, second = when
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=tz)


def indexed(
    raw: bytes,
    uid: int,
    flags: tuple[str, ...] = (),
    internal: datetime.datetime | None = None,
    modseq: int = 1,
) -> IndexedMessage:
    """The index row gk stores for C{raw}."""
    env = parse_envelope(raw)
    return IndexedMessage(
        uid,
        modseq,
        len(raw),
        internal or at(2024, 3, 1, 12, 0, 0),
        f"cur/{uid}",
        flags,
        env.date,
        env.subject,
        env.from_,
        env.to,
        env.cc,
        env.bcc,
    )


def target(
    row: IndexedMessage, seq: int = 1, content: bytes | None = None, **kw: int
) -> SearchTarget:
    return SearchTarget(
        seq, row.uid, row, kw.get("max_seq", 10), kw.get("max_uid", 100), content=content
    )


def matches(text: str | SearchKey, raw: bytes, **row_kw: object) -> bool:
    k = key(text) if isinstance(text, str) else text
    row = indexed(raw, 7, **row_kw)  # type: ignore[arg-type]
    return evaluate(k, target(row, content=raw if needs_content(k) else None))


PLAIN_B64 = base64.encodebytes("Grüße aus Köln: the secret word is pineapple.\n".encode()).replace(
    b"\n", b"\r\n"
)
ATTACHMENT = base64.encodebytes(b"hiddenword in a binary part").replace(b"\n", b"\r\n")
MULTIPART = (
    b"Date: Fri, 01 Mar 2024 23:30:00 -0500\r\n"
    b"From: =?ISO-8859-1?Q?Andr=E9?= Martin <andre@example.com>\r\n"
    b"To: Bob <bob@example.org>, carol@example.net\r\n"
    b"Cc: dave@example.net\r\n"
    b"Subject: =?ISO-8859-1?Q?Caf=E9_menu?= for Friday\r\n"
    b"X-Project: =?UTF-8?B?w5xiZXJyYXNjaHVuZw==?=\r\n"
    b"X-Long: part one\r\n"
    b"  part two\r\n"
    b"Received: from alpha.example\r\n"
    b"Received: from beta.example\r\n"
    b"X-Empty:\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble is not searched\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + PLAIN_B64 + b"--b1\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"<p>Caf=E9 au lait, soft=\r\n"
    b"break here</p>\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + ATTACHMENT + b"--b1\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: Attached =?UTF-8?Q?r=C3=A9sum=C3=A9?=\r\n"
    b"From: eve@example.com\r\n"
    b"\r\n"
    b"inner body words\r\n"
    b"--b1--\r\n"
)
LATIN1 = (
    b"Date: Sat, 02 Mar 2024 00:15:00 +0000\r\n"
    b"From: frank@example.com\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= und Tsch\xc3\xbcss\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Sm\xf6rg\xe5sbord f\xfcr alle\r\n"
)
NO_DATE = b"From: gina@example.com\r\n\r\nno date here\r\n"
BROKEN = (
    b"Subject: broken\r\n"
    b"Content-Type: multipart/mixed\r\n"  # no boundary
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"plain words \xff\xfe despite the header\r\n"
)


# needs_content


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ALL", False),
        ("SEEN UNSEEN NEW OLD RECENT KEYWORD $Junk", False),
        ("FROM a TO b CC c BCC d SUBJECT e", False),
        ("HEADER From x HEADER subject y", False),
        ('HEADER Date ""', False),
        ("HEADER Date 2024", True),
        ("HEADER X-Project x", True),
        ('HEADER Received ""', True),
        ("BODY x", True),
        ("TEXT x", True),
        ("BEFORE 1-Jan-2024 SENTON 1-Jan-2024 LARGER 5 SMALLER 9", False),
        ("1:* UID 5:7 MODSEQ 3", False),
        ("NOT BODY x", True),
        ("OR SEEN TEXT x", True),
        ("OR SEEN (FLAGGED (NOT HEADER X-A b))", True),
        ("NOT (OR SEEN FROM x)", False),
    ],
)
def test_needs_content(text: str, expected: bool) -> None:
    assert needs_content(key(text)) is expected
    assert compile_search(key(text), 1, 1).needs_content is expected


def test_needs_content_is_iterative_for_deep_trees() -> None:
    deep: SearchKey = TextKey("BODY", "x")
    for _ in range(5000):
        deep = NotKey(AndKey((AllKey(), deep)))
    assert needs_content(deep)


# Flags, sizes, MODSEQ


def test_flags_keywords_recent_new_old() -> None:
    row = indexed(LATIN1, 1, flags=("\\Seen", "\\Flagged", "$Forwarded", "Work"))
    t = target(row)
    for text, expected in [
        ("SEEN", True),
        ("UNSEEN", False),
        ("FLAGGED", True),
        ("UNFLAGGED", False),
        ("ANSWERED", False),
        ("UNANSWERED", True),
        ("DELETED", False),
        ("UNDELETED", True),
        ("DRAFT", False),
        ("UNDRAFT", True),
        ("KEYWORD $forwarded", True),
        ("KEYWORD WORK", True),
        ("UNKEYWORD work", False),
        ("KEYWORD $Junk", False),
        ("RECENT", False),
        ("NEW", False),
        ("OLD", True),
    ]:
        assert evaluate(key(text), t) is expected, text
    assert evaluate(FlagKey("\\SEEN"), t)
    unseen = indexed(LATIN1, 2)
    recent = SearchTarget(2, 2, unseen, 2, 2, recent=True)
    assert evaluate(key("NEW"), recent)
    assert evaluate(key("RECENT"), recent)
    assert not evaluate(key("OLD"), recent)
    assert not evaluate(key("NEW"), target(unseen))


def test_sizes_are_strict_and_modseq_is_at_least() -> None:
    size = len(LATIN1)
    assert matches(f"LARGER {size - 1}", LATIN1)
    assert not matches(f"LARGER {size}", LATIN1)
    assert matches(f"SMALLER {size + 1}", LATIN1)
    assert not matches(f"SMALLER {size}", LATIN1)
    assert matches("MODSEQ 5", LATIN1, modseq=5)
    assert matches('MODSEQ "/flags/\\\\seen" all 4', LATIN1, modseq=5)
    assert not matches("MODSEQ 6", LATIN1, modseq=5)


# Headers from the index


def test_index_headers_decoded_case_insensitive_and_without_content() -> None:
    row = indexed(MULTIPART, 1)
    t = target(row)  # no content: all of these answer from the index
    for text in [
        'FROM "andré"',
        'FROM "ANDRÉ"',
        "FROM andre@EXAMPLE.com",
        'SUBJECT "CAFÉ MENU"',
        'SUBJECT "café  menu"',  # whitespace runs as one space
        "TO carol",
        "TO Bob",
        "CC dave",
        "HEADER FROM martin",
        "HEADER subject friday",
        'FROM ""',
        'HEADER Date ""',
    ]:
        assert evaluate(key(text), t), text
    for text in ["FROM bob", "SUBJECT cafe", 'BCC ""', "BCC dave", 'HEADER Cc "eve"']:
        assert not evaluate(key(text), t), text
    other = target(indexed(LATIN1, 2))
    assert evaluate(key('SUBJECT "GRÜSSE"'), other)  # ß casefolds to ss
    assert evaluate(key('SUBJECT "tschüss"'), other)  # raw UTF-8 header
    assert not evaluate(key('CC ""'), other)
    assert not evaluate(key('HEADER DATE ""'), target(indexed(NO_DATE, 3)))


# Headers from the message


def test_other_headers_unfolded_decoded_every_occurrence() -> None:
    assert matches('HEADER X-Project "überraschung"', MULTIPART)
    assert matches('HEADER x-project "ÜBERRASCHUNG"', MULTIPART)
    assert matches('HEADER X-Long "one part two"', MULTIPART)
    assert matches("HEADER Received beta", MULTIPART)
    assert matches("HEADER Received alpha", MULTIPART)
    assert matches('HEADER X-Empty ""', MULTIPART)
    assert matches('HEADER X-Long ""', MULTIPART)
    assert not matches('HEADER X-Missing ""', MULTIPART)
    assert not matches("HEADER X-Project alpha", MULTIPART)
    assert not matches('HEADER "" ""', MULTIPART)
    assert matches('HEADER Date "23:30:00 -0500"', MULTIPART)
    # Headers of the attached message are body, not header.
    assert not matches("HEADER Subject attached", MULTIPART)


def test_content_key_without_content_is_an_error_and_prefilter_says_unknown() -> None:
    row = indexed(MULTIPART, 1, flags=("\\Seen",))
    for text in ["BODY pineapple", "TEXT pineapple", "HEADER X-Project x", "UNSEEN BODY x"]:
        with pytest.raises(ContentRequired):
            evaluate(key(text), target(row))
    compiled = compile_search(key("UNSEEN BODY pineapple"), 10, 100)
    assert compiled.prefilter(target(row)) is False  # decided: no file to read
    compiled = compile_search(key("SEEN BODY pineapple"), 10, 100)
    assert compiled.prefilter(target(row)) is None
    assert compiled(target(row, content=MULTIPART))
    compiled = compile_search(key("OR SEEN NOT BODY pineapple"), 10, 100)
    assert compiled.prefilter(target(row)) is True
    compiled = compile_search(key("NOT (SEEN HEADER X-Project x)"), 10, 100)
    assert compiled.prefilter(target(row)) is None


# Body and text


def test_body_decodes_base64_quoted_printable_and_charsets() -> None:
    for text in [
        "BODY pineapple",
        'BODY "grüsse"',
        'BODY "KÖLN"',
        'BODY "café au lait"',
        'BODY "softbreak here"',
        "BODY inner",
        'BODY "résumé"',  # the attached message's header, decoded
        "BODY eve@example",
    ]:
        assert matches(text, MULTIPART), text
    for text in [
        "BODY hiddenword",  # a non-text part
        "BODY preamble",
        f'BODY "{PLAIN_B64[:12].decode()}"',  # base64 text is not searched as stored
        "BODY Caf=E9",
        "BODY andre@example.com",  # the header is not the body
    ]:
        assert not matches(text, MULTIPART), text
    assert matches('BODY "smörgåsbord"', LATIN1)
    assert matches('BODY "FÜR"', LATIN1)


def test_text_searches_header_and_body() -> None:
    assert matches("TEXT pineapple", MULTIPART)
    assert matches("TEXT alpha.example", MULTIPART)
    assert matches('TEXT "überraschung"', MULTIPART)
    assert matches("TEXT x-long", MULTIPART)
    assert not matches("TEXT hiddenword", MULTIPART)
    assert matches('TEXT ""', NO_DATE)
    assert matches('BODY ""', b"Subject: no body\r\n")


def test_broken_mime_never_raises() -> None:
    assert matches('BODY "plain words"', BROKEN)
    assert matches("SUBJECT broken", BROKEN)
    for raw in [
        b"",
        b"\r\n",
        b"\xff\xfe\x00",
        b"Content-Type: text/plain; charset=x-nope\r\n\r\n\xe9t\xe9",
    ]:
        assert not matches("BODY zzz", raw)
        assert matches('TEXT ""', raw)
    assert matches(
        'BODY "été"', b"Content-Type: text/plain; charset=x-nope\r\n\r\n\xc3\xa9t\xc3\xa9"
    )


# Dates


def test_internal_date_is_compared_in_utc_at_day_boundaries() -> None:
    last = at(2024, 3, 1, 23, 59, 59)
    first = at(2024, 3, 2, 0, 0, 0)
    zoned = datetime.datetime(
        2024, 3, 2, 1, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    for when, day in [(last, "1-Mar-2024"), (first, "2-Mar-2024"), (zoned, "1-Mar-2024")]:
        row = indexed(NO_DATE, 1, internal=when)
        assert evaluate(key(f"ON {day}"), target(row)), when
        assert evaluate(key(f"SINCE {day}"), target(row))
        assert not evaluate(key(f"BEFORE {day}"), target(row))
        assert evaluate(key("BEFORE 3-Mar-2024"), target(row))
        assert not evaluate(key("SINCE 3-Mar-2024"), target(row))
    naive = indexed(NO_DATE, 1, internal=datetime.datetime(2024, 3, 1, 23, 0))
    assert evaluate(key("ON 1-Mar-2024"), target(naive))


def test_sent_dates_use_the_header_date_or_else_internal_date() -> None:
    # The index keeps Date: in UTC: 23:30 -0500 on 1 March is 2 March.
    row = indexed(MULTIPART, 1, internal=at(2024, 1, 1, 0, 0, 0))
    assert evaluate(key("SENTON 2-Mar-2024"), target(row))
    assert evaluate(key("SENTSINCE 2-Mar-2024"), target(row))
    assert not evaluate(key("SENTBEFORE 2-Mar-2024"), target(row))
    assert evaluate(key("SENTBEFORE 3-Mar-2024"), target(row))
    assert not evaluate(key("SENTSINCE 3-Mar-2024"), target(row))
    # A Date in its own offset (were the index to keep it) is taken as is.
    minus5 = datetime.timezone(datetime.timedelta(hours=-5))
    own = IndexedMessage(
        2, 1, 10, at(2024, 1, 1, 0, 0, 0), "p", (), at(2024, 3, 1, 23, 30, 0, tz=minus5)
    )
    assert evaluate(key("SENTON 1-Mar-2024"), target(own))
    # Without a Date header: INTERNALDATE (Dovecot's choice).
    undated = indexed(NO_DATE, 3, internal=at(2024, 5, 4, 8, 0, 0))
    assert undated.date is None
    assert evaluate(key("SENTON 4-May-2024"), target(undated))
    assert not evaluate(key("SENTBEFORE 4-May-2024"), target(undated))


# Sequence sets and UIDs


def test_sequence_sets_star_and_ranges() -> None:
    row = indexed(NO_DATE, 50)

    def seqs(text: str, max_seq: int = 10) -> list[int]:
        targets = [
            SearchTarget(n, n * 10, row, max_seq, max_seq * 10) for n in range(1, max_seq + 1)
        ]
        return [t.seq for t in search(key(text), targets)]

    assert seqs("*") == [10]
    assert seqs("2,4:5,9:*") == [2, 4, 5, 9, 10]
    assert seqs("7:3") == [3, 4, 5, 6, 7]
    assert seqs("20:*") == [10]  # n:* includes the last message even past it
    assert seqs("11:20") == []
    assert seqs("UID 30:50,95:*") == [3, 4, 5, 10]
    assert seqs("UID 1000:*") == [10]
    assert seqs("UID 31:39") == []
    assert seqs("NOT 2:9") == [1, 10]
    assert seqs("OR 1 UID 20") == [1, 2]
    assert seqs("1:* UID *") == [10]
    empty = compile_search(key("*"), 0, 0)
    assert not empty(SearchTarget(1, 1, row, 0, 0))


def test_search_compiles_once_per_mailbox_state() -> None:
    row = indexed(NO_DATE, 1)
    old = SearchTarget(3, 3, row, 3, 3)
    new = SearchTarget(3, 3, row, 5, 5)
    assert search(key("*"), [old, new]) == [old]


# NOT / OR / AND nesting


def test_nested_not_or_and() -> None:
    row = indexed(MULTIPART, 4, flags=("\\Seen", "$Important"))
    t = target(row, seq=4, content=MULTIPART)
    cases = [
        ('OR UNSEEN SUBJECT "café"', True),
        ("OR UNSEEN SUBJECT tea", False),
        ("NOT NOT SEEN", True),
        ("NOT (SEEN KEYWORD $important)", False),
        ('(SEEN KEYWORD $important FROM "andré")', True),
        ("(SEEN KEYWORD $important FROM bob)", False),
        ("OR (UNSEEN BODY nothing) (4 NOT BODY nothing)", True),
        ('OR OR 1 2 OR 3 NOT HEADER X-Project "über"', False),
        ("NOT OR BODY pineapple TEXT nothing", False),
    ]
    for text, expected in cases:
        assert evaluate(key(text), t) is expected, text


# Arbitrary trees: never raises, and NOT / OR / AND mean not / or / and.

STRINGS = st.sampled_from(["", "a", "café", "PINEAPPLE", "part", "example", "ß"]) | st.text(
    max_size=6
)
DAYS = st.dates(datetime.date(2023, 12, 30), datetime.date(2024, 3, 3))
ZONES = st.builds(
    datetime.timezone, st.integers(-14 * 60, 14 * 60).map(lambda m: datetime.timedelta(minutes=m))
)
WHEN = st.datetimes(datetime.datetime(2023, 12, 30), datetime.datetime(2024, 3, 3), timezones=ZONES)
SEQ_NUMBERS = st.none() | st.integers(1, 12)
LEAVES: st.SearchStrategy[SearchKey] = st.one_of(
    st.just(AllKey()),
    st.builds(
        FlagKey, st.sampled_from(["\\Seen", "\\Recent", "\\Deleted", "$Junk", "$junk", "Work"])
    ),
    st.builds(
        HeaderKey,
        st.sampled_from(
            ["FROM", "TO", "CC", "BCC", "SUBJECT", "DATE", "X-PROJECT", "RECEIVED", ""]
        ),
        STRINGS,
    ),
    st.builds(TextKey, st.sampled_from(["BODY", "TEXT"]), STRINGS),
    st.builds(DateKey, st.sampled_from(["BEFORE", "ON", "SINCE"]), DAYS, st.booleans()),
    st.builds(SizeKey, st.booleans(), st.integers(0, 2000)),
    st.builds(
        SequenceKey,
        st.lists(st.tuples(SEQ_NUMBERS, SEQ_NUMBERS), min_size=1, max_size=3).map(
            lambda r: SequenceSet(tuple(r))
        ),
        st.booleans(),
    ),
    st.builds(ModSeqKey, st.integers(1, 10)),
)
KEYS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(NotKey, inner),
        st.builds(OrKey, inner, inner),
        st.lists(inner, min_size=1, max_size=4).map(lambda ks: AndKey(tuple(ks))),
    ),
    max_leaves=12,
)
CONTENT = st.sampled_from([MULTIPART, LATIN1, NO_DATE, BROKEN]) | st.binary(max_size=200)


@st.composite
def targets(draw: st.DrawFn) -> SearchTarget:
    content = draw(CONTENT)
    env = parse_envelope(content)
    flags = tuple(
        draw(st.lists(st.sampled_from(["\\Seen", "\\Deleted", "$Junk", "work"]), unique=True))
    )
    max_seq = draw(st.integers(0, 12))
    row = IndexedMessage(
        draw(st.integers(1, 12)),
        draw(st.integers(1, 10)),
        draw(st.integers(0, 2000)),
        draw(WHEN | WHEN.map(lambda d: d.replace(tzinfo=None))),
        "p",
        flags,
        draw(st.none() | WHEN),
        draw(STRINGS | st.just(env.subject)),
        draw(STRINGS | st.just(env.from_)),
        draw(STRINGS),
        "",
        draw(STRINGS),
    )
    return SearchTarget(
        draw(st.integers(1, 12)),
        row.uid,
        row,
        max_seq,
        draw(st.integers(0, 12)),
        recent=draw(st.booleans()),
        content=content,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KEYS, KEYS, targets())
def test_model_check_never_raises(a: SearchKey, b: SearchKey, t: SearchTarget) -> None:
    ea, eb = evaluate(a, t), evaluate(b, t)
    assert isinstance(ea, bool)
    assert evaluate(NotKey(a), t) is (not ea)
    assert evaluate(OrKey(a, b), t) is (ea or eb)
    assert evaluate(AndKey((a, b)), t) is (ea and eb)
    assert evaluate(AndKey((a, b, NotKey(b))), t) is False
    fresh = SearchTarget(t.seq, t.uid, t.row, t.max_seq, t.max_uid, t.recent, None)
    decided = compile_search(a, t.max_seq, t.max_uid).prefilter(fresh)
    assert decided is None or decided is ea
    if not needs_content(a):
        assert decided is ea
        assert evaluate(a, fresh) is ea
