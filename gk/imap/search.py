"""
SEARCH criteria (RFC 3501 6.4.4, RFC 7162 3.1.5 MODSEQ) as a tree.

The grammar's many keys are reduced to a few node types: the flag keys
(ANSWERED, UNSEEN, KEYWORD, NEW, OLD, ...) become L{FlagKey} under
L{NotKey} and L{AndKey}; FROM, TO, CC, BCC and SUBJECT are L{HeaderKey}s
like HEADER; a list of keys (the whole program or a parenthesised list)
is an L{AndKey}, or the key itself when it is alone.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from gk.imap.syntax import MAX_MODSEQ, Invalid, SequenceSet, Tokens, utf8

#: Nesting (parentheses, NOT, OR) allowed, to keep recursion bounded.
MAX_DEPTH = 100


@dataclass(frozen=True)
class AllKey:
    """ALL: every message."""


@dataclass(frozen=True)
class FlagKey:
    """The message has C{flag} (a system flag, C{\\Recent}, or a keyword as given)."""

    flag: str


@dataclass(frozen=True)
class HeaderKey:
    """
    Header field C{name} (upper-case) contains C{value}, case-insensitively
    (RFC 3501: an empty value matches every message with the field).
    """

    name: str
    value: str


@dataclass(frozen=True)
class TextKey:
    """BODY (the body) or TEXT (header and body) contains C{value}."""

    where: Literal["BODY", "TEXT"]
    value: str


@dataclass(frozen=True)
class DateKey:
    """
    The internal date (or with C{sent}, the Date header) is before, on or
    since C{day}, disregarding time and time zone.
    """

    relation: Literal["BEFORE", "ON", "SINCE"]
    day: date
    sent: bool = False


@dataclass(frozen=True)
class SizeKey:
    """RFC822.SIZE is larger (or smaller) than C{size}."""

    larger: bool
    size: int


@dataclass(frozen=True)
class SequenceKey:
    """The message's sequence number (or with C{uid}, UID) is in C{sequence}."""

    sequence: SequenceSet
    uid: bool = False


@dataclass(frozen=True)
class ModSeqKey:
    """
    MODSEQ (RFC 7162): the message's mod-sequence is at least C{modseq}.
    C{entry} and C{entry_type} (C{"priv"}, C{"shared"}, C{"all"}) are
    given when the client named a metadata item.
    """

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True)
class NotKey:
    key: SearchKey


@dataclass(frozen=True)
class AndKey:
    keys: tuple[SearchKey, ...]


@dataclass(frozen=True)
class OrKey:
    left: SearchKey
    right: SearchKey


SearchKey = (
    AllKey
    | FlagKey
    | HeaderKey
    | TextKey
    | DateKey
    | SizeKey
    | SequenceKey
    | ModSeqKey
    | NotKey
    | AndKey
    | OrKey
)

_SEEN = FlagKey("\\Seen")
_RECENT = FlagKey("\\Recent")
_SIMPLE_KEYS: dict[str, SearchKey] = {
    "ALL": AllKey(),
    "ANSWERED": FlagKey("\\Answered"),
    "DELETED": FlagKey("\\Deleted"),
    "DRAFT": FlagKey("\\Draft"),
    "FLAGGED": FlagKey("\\Flagged"),
    "RECENT": _RECENT,
    "SEEN": _SEEN,
    "UNANSWERED": NotKey(FlagKey("\\Answered")),
    "UNDELETED": NotKey(FlagKey("\\Deleted")),
    "UNDRAFT": NotKey(FlagKey("\\Draft")),
    "UNFLAGGED": NotKey(FlagKey("\\Flagged")),
    "UNSEEN": NotKey(_SEEN),
    "NEW": AndKey((_RECENT, NotKey(_SEEN))),
    "OLD": NotKey(_RECENT),
}
_HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}
_DATE_KEYS: dict[str, tuple[Literal["BEFORE", "ON", "SINCE"], bool]] = {
    "BEFORE": ("BEFORE", False),
    "ON": ("ON", False),
    "SINCE": ("SINCE", False),
    "SENTBEFORE": ("BEFORE", True),
    "SENTON": ("ON", True),
    "SENTSINCE": ("SINCE", True),
}

_ARGUMENT_KEYS = {
    *_HEADER_KEYS,
    *_DATE_KEYS,
    *("BODY", "TEXT", "HEADER", "KEYWORD", "UNKEYWORD", "LARGER", "SMALLER", "UID", "MODSEQ"),
}


def search_program(t: Tokens) -> SearchKey:
    """C{search-key *(SP search-key)}, up to the end of the command."""
    return _key_list(t, 0)


def _key_list(t: Tokens, depth: int) -> SearchKey:
    keys = [_search_key(t, depth)]
    while t.skip(b" "):
        keys.append(_search_key(t, depth))
    return keys[0] if len(keys) == 1 else AndKey(tuple(keys))


def _search_key(t: Tokens, depth: int) -> SearchKey:
    if depth > MAX_DEPTH:
        raise Invalid("search criteria nested too deeply")
    if t.skip(b"("):
        key = _key_list(t, depth + 1)
        t.expect(b")")
        return key
    first = t.peek()
    if first is not None and first in b"0123456789*$":
        return SequenceKey(t.sequence_set())
    word = t.keyword("a search key")
    if word in _SIMPLE_KEYS:
        return _SIMPLE_KEYS[word]
    if word in ("NOT", "OR"):
        t.sp()
        left = _search_key(t, depth + 1)
        if word == "NOT":
            return NotKey(left)
        t.sp()
        return OrKey(left, _search_key(t, depth + 1))
    if word not in _ARGUMENT_KEYS:
        raise Invalid(f"unknown search key {word}")
    t.sp()
    if word in _HEADER_KEYS:
        return HeaderKey(word, t.text())
    if word in ("BODY", "TEXT"):
        return TextKey("BODY" if word == "BODY" else "TEXT", t.text())
    if word in _DATE_KEYS:
        relation, sent = _DATE_KEYS[word]
        return DateKey(relation, t.date(), sent)
    if word == "HEADER":
        name = t.text("a header field name").upper()
        t.sp()
        return HeaderKey(name, t.text())
    if word in ("KEYWORD", "UNKEYWORD"):
        flag = FlagKey(t.atom("a keyword"))
        return flag if word == "KEYWORD" else NotKey(flag)
    if word in ("LARGER", "SMALLER"):
        return SizeKey(word == "LARGER", t.number(what="a size"))
    if word == "UID":
        return SequenceKey(t.sequence_set(), uid=True)
    return _modseq(t)


def _modseq(t: Tokens) -> ModSeqKey:
    entry = entry_type = None
    if t.literal_next() or t.at(b'"'):
        entry = utf8(t.string("an entry name"), "an entry name")
        t.sp()
        entry_type = t.keyword("an entry type").lower()
        if entry_type not in ("priv", "shared", "all"):
            raise Invalid("entry type must be priv, shared or all")
        t.sp()
    return ModSeqKey(t.number(MAX_MODSEQ, "a mod-sequence"), entry, entry_type)
