"""
Evaluating a SEARCH key tree (L{gk.imap.search}; RFC 3501 6.4.4, RFC 7162
MODSEQ) against messages, in two phases so that a large folder is searched
from its index and a message file is read only when a key needs it:
L{needs_content} tells whether any key needs the message bytes, and
L{compile_search} turns the tree into a matcher (sequence sets resolved
once per search) whose L{CompiledSearch.prefilter} decides from the index
alone wherever it can.

Choices, where RFC 3501 leaves them open:

  - Strings match as case-insensitive substrings after Unicode casefolding
    (C{"STRASSE"} finds C{"Straße"}); an empty string matches every message
    that has the field.  In header values, runs of whitespace in the
    search string count as one space, as the values are stored unfolded
    with whitespace collapsed.
  - FROM, TO, CC, BCC and SUBJECT (and HEADER on those fields) match the
    decoded text the index holds (addresses rendered C{Name <addr>});
    there a field is present when its indexed value is not empty.  HEADER
    DATE with an empty string asks whether the index has a (parseable)
    date; HEADER on any other field (or DATE with a string) reads the
    message: every occurrence, unfolded, RFC 2047 decoded.
  - BODY searches the decoded text of the C{text/*} parts (transfer
    encoding and charset undone) and the headers of attached messages;
    other parts (images, archives) are not searched.  Broken MIME falls
    back to the raw body as UTF-8.  TEXT is the header fields then BODY.
  - BEFORE / ON / SINCE compare the date of INTERNALDATE in UTC, the
    server's time zone.  SENT* compare the date of the Date header in the
    offset the index gives it (the index stores UTC, so in practice UTC);
    without a usable Date header they use INTERNALDATE as Dovecot does.
  - Flags and keywords compare case-insensitively; \\Recent is
    L{SearchTarget.recent}.  MODSEQ ignores the entry name: a message has
    one mod-sequence.
"""

from __future__ import annotations

import datetime
import email
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from operator import attrgetter

from gk.imap.message import header_fields
from gk.imap.mime import split_header
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
)
from gk.imap.syntax import in_ranges
from gk.storage.envelope import decode_text
from gk.storage.mail_folders import IndexedMessage

__all__ = [
    "CompiledSearch",
    "ContentRequired",
    "SearchTarget",
    "compile_search",
    "evaluate",
    "needs_content",
    "search",
]

UTC = datetime.UTC
#: HEADER names answered from the index, and the L{IndexedMessage} field.
INDEX_FIELDS = {"FROM": "from_", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
#: Nesting of attached messages searched by BODY.
_MAX_PART_DEPTH = 32
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_SPACES = re.compile(r"\s+")


class ContentRequired(RuntimeError):
    """A key that needs the message bytes met a target without them (a caller bug)."""


@dataclass(slots=True)
class SearchTarget:
    """
    One message as SEARCH sees it.  C{max_seq} and C{max_uid} stand for
    C{*}; C{content} is the message bytes, given when L{needs_content}
    says so.  gk keeps no \\Recent state yet: C{recent} is always False.
    """

    seq: int
    uid: int
    row: IndexedMessage
    max_seq: int
    max_uid: int
    recent: bool = False
    content: bytes | None = None
    _parsed: _Parsed | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class _Parsed:
    """What content keys read from a message, casefolded, computed once."""

    #: (lower-case field name, decoded value) in order.
    fields: list[tuple[bytes, str]]
    header: str
    body: str | None = None


# Which keys need the message bytes.


def _index_header(key: HeaderKey) -> bool:
    name = key.name.upper()
    return name in INDEX_FIELDS or (name == "DATE" and key.value == "")


def needs_content(key: SearchKey) -> bool:
    """Whether evaluating C{key} needs the message bytes (BODY, TEXT, other headers)."""
    stack: list[SearchKey] = [key]
    while stack:
        k = stack.pop()
        if isinstance(k, TextKey) or (isinstance(k, HeaderKey) and not _index_header(k)):
            return True
        if isinstance(k, NotKey):
            stack.append(k.key)
        elif isinstance(k, AndKey):
            stack.extend(k.keys)
        elif isinstance(k, OrKey):
            stack.extend((k.left, k.right))
    return False


# Compiling a key tree into predicates.  A predicate answers True or False;
# in partial mode (index only) a content key answers None, "unknown", and
# NOT, AND and OR combine unknowns as three-valued logic does.

_Predicate = Callable[[SearchTarget], bool | None]


@dataclass(frozen=True, slots=True)
class CompiledSearch:
    """A key tree ready to test many messages of one mailbox state."""

    key: SearchKey
    needs_content: bool
    _full: _Predicate
    _partial: _Predicate

    def __call__(self, target: SearchTarget) -> bool:
        """
        Whether C{target} matches.
        @raise ContentRequired: the keys need C{target.content}, which is L{None}.
        """
        if self.needs_content and target.content is None:
            raise ContentRequired(f"message UID {target.uid}: search keys need its content")
        return self._full(target) is True

    def prefilter(self, target: SearchTarget) -> bool | None:
        """
        Whether C{target} matches as far as its index row tells (its
        C{content} is not read): L{None} when only the content can decide.
        """
        return self._partial(target)


def compile_search(key: SearchKey, max_seq: int, max_uid: int) -> CompiledSearch:
    """C{key} (as deep as the parser allows) as a matcher, C{*} being C{max_seq} / C{max_uid}."""
    return CompiledSearch(
        key,
        needs_content(key),
        _compile(key, max_seq, max_uid, False),
        _compile(key, max_seq, max_uid, True),
    )


def evaluate(key: SearchKey, target: SearchTarget) -> bool:
    """Whether C{target} matches C{key} (compile once to test many messages)."""
    return compile_search(key, target.max_seq, target.max_uid)(target)


def search(key: SearchKey, targets: Iterable[SearchTarget]) -> list[SearchTarget]:
    """The C{targets} that match C{key}, in the order given."""
    compiled: dict[tuple[int, int], CompiledSearch] = {}
    found = []
    for target in targets:
        bounds = (target.max_seq, target.max_uid)
        matcher = compiled.get(bounds)
        if matcher is None:
            matcher = compiled[bounds] = compile_search(key, *bounds)
        if matcher(target):
            found.append(target)
    return found


def _true(target: SearchTarget) -> bool:
    return True


def _unknown(target: SearchTarget) -> None:
    return None


def _compile(key: SearchKey, max_seq: int, max_uid: int, partial: bool) -> _Predicate:
    if isinstance(key, AllKey):
        return _true
    if isinstance(key, FlagKey):
        return _flag(key.flag)
    if isinstance(key, HeaderKey):
        if partial and not _index_header(key):
            return _unknown
        return _header(key)
    if isinstance(key, TextKey):
        return _unknown if partial else _text(key)
    if isinstance(key, DateKey):
        return _date(key)
    if isinstance(key, SizeKey):
        size = key.size
        if key.larger:
            return lambda t: t.row.size > size
        return lambda t: t.row.size < size
    if isinstance(key, SequenceKey):
        return _sequence(key, max_uid if key.uid else max_seq)
    if isinstance(key, ModSeqKey):
        modseq = key.modseq
        return lambda t: t.row.modseq >= modseq
    if isinstance(key, NotKey):
        inner = _compile(key.key, max_seq, max_uid, partial)
        if partial:
            return lambda t: None if (r := inner(t)) is None else not r
        return lambda t: not inner(t)
    if isinstance(key, AndKey | OrKey):
        keys = key.keys if isinstance(key, AndKey) else (key.left, key.right)
        preds = tuple(_compile(k, max_seq, max_uid, partial) for k in keys)
        conjunction = isinstance(key, AndKey)
        if partial:
            return _kleene(preds, conjunction)
        if len(preds) == 2:
            first, second = preds
            if conjunction:
                return lambda t: first(t) and second(t)
            return lambda t: first(t) or second(t)
        if conjunction:
            return lambda t: all(p(t) for p in preds)
        return lambda t: any(p(t) for p in preds)
    raise TypeError(f"not a search key: {key!r}")


def _kleene(preds: tuple[_Predicate, ...], conjunction: bool) -> _Predicate:
    """AND (or OR) in three-valued logic: a decisive answer wins over unknown."""
    decisive = not conjunction

    def combined(target: SearchTarget) -> bool | None:
        unknown = False
        for pred in preds:
            result = pred(target)
            if result is None:
                unknown = True
            elif result is decisive:
                return decisive
        return None if unknown else conjunction

    return combined


def _flag(flag: str) -> _Predicate:
    if flag.upper() == "\\RECENT":
        return lambda t: t.recent
    lowered = flag.lower()

    def has_flag(target: SearchTarget) -> bool:
        flags = target.row.flags
        if flag in flags:
            return True
        return any(f.lower() == lowered for f in flags)

    return has_flag


def _needle(value: str) -> str:
    return _SPACES.sub(" ", value).casefold()


def _header(key: HeaderKey) -> _Predicate:
    name = key.name.upper()
    needle = _needle(key.value)
    if name in INDEX_FIELDS:
        value_of = attrgetter(INDEX_FIELDS[name])
        if not needle:
            return lambda t: bool(value_of(t.row))
        return lambda t: needle in value_of(t.row).casefold()
    if name == "DATE" and not key.value:
        return lambda t: t.row.date is not None
    wanted = name.encode("utf-8", "surrogateescape").lower()

    def header(target: SearchTarget) -> bool:
        return any(n == wanted and needle in v for n, v in _parsed(target).fields)

    return header


def _text(key: TextKey) -> _Predicate:
    needle = key.value.casefold()
    whole = key.where == "TEXT"

    def text(target: SearchTarget) -> bool:
        parsed = _parsed(target)
        if whole and needle in parsed.header:
            return True
        if parsed.body is None:
            parsed.body = _body_text(target.content or b"").casefold()
        return needle in parsed.body

    return text


def _date(key: DateKey) -> _Predicate:
    day, relation = key.day, key.relation
    start = datetime.datetime.combine(day, datetime.time(), UTC)
    end = start + datetime.timedelta(days=1)

    def internal(target: SearchTarget) -> bool:
        when = target.row.internal_date
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if relation == "BEFORE":
            return when < start
        if relation == "ON":
            return start <= when < end
        return when >= start

    if not key.sent:
        return internal

    def sent(target: SearchTarget) -> bool:
        when = target.row.date
        if when is None:
            return internal(target)
        # The date in the header's own offset (naive: taken as UTC).
        sent_day = when.date()
        if relation == "BEFORE":
            return sent_day < day
        if relation == "ON":
            return sent_day == day
        return sent_day >= day

    return sent


def _sequence(key: SequenceKey, largest: int) -> _Predicate:
    ranges = key.sequence.resolve(largest)
    number = attrgetter("uid" if key.uid else "seq")
    if not ranges:
        return lambda t: False
    if len(ranges) == 1:
        low, high = ranges[0]
        return lambda t: low <= number(t) <= high
    return lambda t: in_ranges(ranges, number(t))


# Reading message content.


def _parsed(target: SearchTarget) -> _Parsed:
    if target._parsed is not None:
        return target._parsed
    raw = target.content
    if raw is None:
        raise ContentRequired(f"message UID {target.uid}: search key needs its content")
    fields = []
    for name, data in header_fields(raw):
        if not name:
            continue
        value = _FOLD.sub(b"", data[len(name) :]).strip()
        value = value[1:] if value.startswith(b":") else value
        fields.append((name.lower(), decode_text(_bytes_text(value)).casefold()))
    header = "\n".join(f"{n.decode('latin-1')}: {v}" for n, v in fields)
    target._parsed = _Parsed(fields, header)
    return target._parsed


def _bytes_text(data: bytes) -> str:
    """Header bytes as text: UTF-8 (RFC 6532), else Latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except LookupError:
        return data.decode("utf-8", "replace")
    except UnicodeDecodeError:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode(charset, "replace")


def _body_text(raw: bytes) -> str:
    """The searchable text of the body of C{raw} (never raises)."""
    try:
        message = email.message_from_bytes(raw, policy=compat32)
        out: list[str] = []
        _part_texts(message, out, 0)
        return "\n".join(out)
    except Exception:  # broken MIME of any kind: search the raw body
        _, body_start = split_header(raw, 0, len(raw))
        return raw[body_start:].decode("utf-8", "replace")


def _part_texts(part: Message, out: list[str], depth: int) -> None:
    payload = part.get_payload()
    maintype = part.get_content_maintype()
    if isinstance(payload, list):
        if depth >= _MAX_PART_DEPTH:
            return
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            if maintype == "message":
                out.extend(f"{k}: {decode_text(_unescape(v))}" for k, v in sub.raw_items())
            _part_texts(sub, out, depth + 1)
        return
    if maintype == "text":
        data = part.get_payload(decode=True)
    elif maintype in ("multipart", "message"):  # no parts found: search it as it is
        data = str(payload).encode("utf-8", "surrogateescape")
    else:
        return  # images, archives and other non-text parts are not searched
    if isinstance(data, bytes):
        out.append(_decode(data, part.get_content_charset() or "us-ascii"))


def _unescape(value: object) -> str:
    """A header value from the bytes parser (8-bit bytes as surrogates) as text."""
    return _bytes_text(str(value).encode("utf-8", "surrogateescape"))
