"""
The lexical layer of the IMAP command grammar (RFC 3501 9): a cursor
over a L{RawCommand}'s text and literals that reads atoms, strings,
numbers, sequence sets, dates, flags and mailbox names, and the
L{ParseError} and L{SequenceSet} types the parser returns.

Reading methods raise L{Invalid}; L{gk.imap.parser.parse_command} turns
that into a L{ParseError}.  No other exception escapes for any input.
Pure: no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from gk.imap.encode import decode_mailbox_name
from gk.imap.framing import tag_of

#: RFC 3501 9: number is an unsigned 32-bit integer.
MAX_NUMBER = 2**32 - 1
#: RFC 7162 7: mod-sequence-value is an unsigned 63-bit integer.
MAX_MODSEQ = 2**63 - 1

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
_SYSTEM_FLAGS = {flag.upper(): flag for flag in (*SYSTEM_FLAGS, "\\Recent")}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _chars(excluded: bytes) -> bytes:
    return b"[" + re.escape(bytes(c for c in range(0x21, 0x7F) if c not in excluded)) + b"]+"


# ATOM-CHAR: CHAR except atom-specials: ( ) { SP CTL % * " \ ]
_ATOM = re.compile(_chars(b'(){%*"\\]'))
_ASTRING = re.compile(_chars(b'(){%*"\\'))  # ATOM-CHAR / resp-specials
_LIST_MAILBOX = re.compile(_chars(b'(){"\\'))  # ATOM-CHAR / list-wildcards / resp-specials
# QUOTED-CHAR: TEXT-CHAR except quoted-specials, or "\" quoted-specials;
# 8-bit octets are let through (they are UTF-8 text, RFC 6855).
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_NUMBER = re.compile(rb"[0-9]+")
_SEQUENCE = re.compile(rb"[0-9*$:,]+")
_SEQ_RANGE = re.compile(r"([0-9]+|\*)(?::([0-9]+|\*))?")
_DATE = re.compile(
    rb'([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})|"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})"'
)
_DATE_TIME = re.compile(
    rb'"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)


class Invalid(Exception):
    """A command does not follow the grammar (internal to the parser)."""

    def __init__(self, message: str, status: str = "BAD", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ParseError:
    """
    A command that cannot be carried out as sent.

    @ivar tag: the command's tag, L{None} when even that could not be read
        (answer with C{*}).
    @ivar status: C{"BAD"}, or C{"NO"} for a valid command asking for
        what is not supported (an unknown SEARCH charset).
    @ivar code: a response code to send in brackets, e.g.
        C{"BADCHARSET (US-ASCII UTF-8)"}.
    """

    tag: str | None
    message: str
    status: str = "BAD"
    code: str | None = None

    def response(self) -> bytes:
        """The tagged (or untagged) response line, CRLF included."""
        code = f"[{self.code}] " if self.code else ""
        return f"{self.tag or '*'} {self.status} {code}{self.message}\r\n".encode(
            "ascii", "replace"
        )


@dataclass(frozen=True)
class SequenceSet:
    """
    A sequence-set (RFC 3501 9) of message sequence numbers or UIDs.

    @ivar ranges: inclusive C{(low, high)} pairs as the client wrote them
        (C{low} may exceed C{high}); L{None} stands for C{*}, the largest
        number in use.
    """

    ranges: tuple[tuple[int | None, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """@raise ValueError: C{text} is not a sequence set (C{$} included)."""
        if "$" in text:
            raise ValueError("SEARCHRES ($) is not supported")
        ranges = []
        for item in text.split(","):
            match = _SEQ_RANGE.fullmatch(item)
            if match is None:
                raise ValueError("invalid sequence set")
            low = _seq_number(match.group(1))
            high = low if match.group(2) is None else _seq_number(match.group(2))
            ranges.append((low, high))
        return cls(tuple(ranges))

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The shortest set of the given numbers (for COPYUID, VANISHED, ...)."""
        ranges: list[tuple[int | None, int | None]] = []
        low = high = -2
        for number in sorted(set(numbers)):
            if number != high + 1:
                if high > 0:
                    ranges.append((low, high))
                low = number
            high = number
        if high > 0:
            ranges.append((low, high))
        return cls(tuple(ranges))

    def __str__(self) -> str:
        def number(n: int | None) -> str:
            return "*" if n is None else str(n)

        return ",".join(
            number(low) if low == high else f"{number(low)}:{number(high)}"
            for low, high in self.ranges
        )

    @property
    def uses_star(self) -> bool:
        return any(low is None or high is None for low, high in self.ranges)

    def resolve(self, largest: int) -> tuple[tuple[int, int], ...]:
        """
        The set as ascending, disjoint, non-adjacent inclusive ranges, C{*}
        being C{largest}, the largest number in use.  When nothing is in
        use (C{largest} is 0), C{*} and the ranges with it stand for nothing.
        """
        pairs: list[tuple[int, int]] = []
        for low, high in self.ranges:
            if low is None or high is None:
                if largest < 1:
                    continue
                low = largest if low is None else low
                high = largest if high is None else high
            pairs.append((min(low, high), max(low, high)))
        pairs.sort()
        merged: list[tuple[int, int]] = []
        for low, high in pairs:
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
            else:
                merged.append((low, high))
        return tuple(merged)

    def contains(self, number: int, largest: int) -> bool:
        """
        Whether C{number} is in the set, C{*} being C{largest}.  This resolves
        the set each time: for many numbers, L{resolve} once and use L{in_ranges}.
        """
        return in_ranges(self.resolve(largest), number)

    def numbers(self, largest: int) -> Iterator[int]:
        """The numbers in the set, ascending, each once, lazily."""
        for low, high in self.resolve(largest):
            yield from range(low, high + 1)


def in_ranges(ranges: tuple[tuple[int, int], ...], number: int) -> bool:
    """Whether C{number} is in C{ranges} as L{SequenceSet.resolve} gives them (bisection)."""
    i = bisect_right(ranges, (number, MAX_NUMBER + 1)) - 1
    return i >= 0 and ranges[i][0] <= number <= ranges[i][1]


def _seq_number(text: str) -> int | None:
    if text == "*":
        return None
    if len(text) > 10 or not 1 <= int(text) <= MAX_NUMBER:
        raise ValueError("sequence numbers and UIDs run from 1 to 4294967295")
    return int(text)


class Tokens:
    """
    A cursor over a command's parts (see L{RawCommand.parts}): the text,
    read token by token, and at the end of each text part but the last a
    literal, read as a string.
    """

    def __init__(self, parts: tuple[bytes, ...]) -> None:
        self._parts = parts
        self._index = 0
        self._text = parts[0]
        self._pos = 0

    def peek(self) -> int | None:
        """The next octet of text, L{None} at the end of a text part."""
        return self._text[self._pos] if self._pos < len(self._text) else None

    def at(self, prefix: bytes) -> bool:
        return self._text.startswith(prefix, self._pos)

    def literal_next(self) -> bool:
        return self._pos == len(self._text) and self._index + 1 < len(self._parts)

    def at_end(self) -> bool:
        return self._pos == len(self._text) and self._index + 1 == len(self._parts)

    def end(self) -> None:
        if not self.at_end():
            raise Invalid("unexpected data after the command")

    def skip(self, prefix: bytes) -> bool:
        """Consume C{prefix} if it comes next."""
        if self.at(prefix):
            self._pos += len(prefix)
            return True
        return False

    def expect(self, prefix: bytes, what: str | None = None) -> None:
        if not self.skip(prefix):
            raise Invalid(f"expected {what or prefix.decode()}")

    def sp(self) -> None:
        self.expect(b" ", "a space")

    def _match(self, pattern: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        match = pattern.match(self._text, self._pos)
        if match is None:
            raise Invalid(f"expected {what}")
        self._pos = match.end()
        return match

    def token(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        """The text C{pattern} matches next (it may match nothing)."""
        return self._match(pattern, what).group()

    def skip_word(self, word: bytes) -> bool:
        """Consume C{word} (upper-case; matched in any case) if it is the next whole token."""
        end = self._pos + len(word)
        if self._text[self._pos : end].upper() != word:
            return False
        if end < len(self._text) and self._text[end] not in b" )":
            return False
        self._pos = end
        return True

    def tag(self) -> str:
        tag = tag_of(self._text)
        if tag is None:
            raise Invalid("missing or invalid tag")
        self._pos = len(tag)
        return tag

    def atom(self, what: str = "an atom") -> str:
        return self._match(_ATOM, what).group().decode("ascii")

    def keyword(self, what: str = "a keyword") -> str:
        """An atom, upper-cased."""
        return self.atom(what).upper()

    def number(self, limit: int = MAX_NUMBER, what: str = "a number") -> int:
        digits = self._match(_NUMBER, what).group()
        if len(digits) > 20 or int(digits) > limit:
            raise Invalid(f"{what} out of range")
        return int(digits)

    def nz_number(self, what: str = "a number") -> int:
        number = self.number(what=what)
        if number == 0:
            raise Invalid(f"{what} must not be 0")
        return number

    def literal(self) -> bytes:
        if not self.literal_next():
            raise Invalid("expected a literal")
        data = self._parts[self._index + 1]
        self._index += 2
        self._text = self._parts[self._index]
        self._pos = 0
        return data

    def string(self, what: str = "a string") -> bytes:
        """A quoted string (unescaped) or a literal."""
        if self.literal_next():
            return self.literal()
        match = self._match(_QUOTED, what)
        return re.sub(rb'\\(["\\])', rb"\1", match.group(1))

    def astring(self, what: str = "a string") -> bytes:
        if self.literal_next() or self.at(b'"'):
            return self.string(what)
        return self._match(_ASTRING, what).group()

    def nstring(self, what: str = "a string") -> bytes | None:
        return None if self.skip_word(b"NIL") else self.string(what)

    def text(self, what: str = "a string") -> str:
        """An astring as text (UTF-8, no NUL)."""
        return utf8(self.astring(what), what)

    def list_mailbox(self) -> bytes:
        """list-mailbox: an astring that may hold the wildcards C{%} and C{*}."""
        if self.literal_next() or self.at(b'"'):
            return self.string("a mailbox pattern")
        return self._match(_LIST_MAILBOX, "a mailbox pattern").group()

    def mailbox(self) -> str:
        """A mailbox name, decoded from modified UTF-7, C{INBOX} in any case as C{INBOX}."""
        return mailbox_name(self.astring("a mailbox name"))

    def sequence_set(self) -> SequenceSet:
        text = self._match(_SEQUENCE, "a sequence set").group().decode("ascii")
        try:
            return SequenceSet.parse(text)
        except ValueError as e:
            raise Invalid(str(e)) from None

    def flag(self) -> str:
        """
        A flag a client may set: a system flag (any case, returned in its
        usual spelling; not C{\\Recent}) or a keyword atom.
        """
        if self.skip(b"\\"):
            name = "\\" + self.atom("a flag")
            flag = _SYSTEM_FLAGS.get(name.upper())
            if flag is None:
                raise Invalid(f"unknown system flag {name}")
            if flag == "\\Recent":
                raise Invalid("\\Recent cannot be set by clients")
            return flag
        return self.atom("a flag")

    def flag_list(self) -> tuple[str, ...]:
        """C{(flag *(SP flag))}, possibly empty; duplicates dropped."""
        self.expect(b"(")
        flags: list[str] = []
        while not self.skip(b")"):
            if flags:
                self.sp()
            flags.append(self.flag())
        return tuple(dict.fromkeys(flags))

    def date(self) -> date:
        """date (RFC 3501 9): C{1-Feb-1994}, quoted or not."""
        groups = self._match(_DATE, "a date (d-Mon-yyyy)").groups()
        day, month, year = (g.decode() for g in (groups[:3] if groups[0] else groups[3:]))
        try:
            return date(int(year), _month(month), int(day))
        except ValueError:
            raise Invalid("invalid date") from None

    def date_time(self) -> datetime:
        """date-time (RFC 3501 9): C{"17-Jul-1996 02:44:25 -0700"}, as an aware datetime."""
        groups = self._match(_DATE_TIME, "a date-time").groups()
        day, month, year, hour, minute, second, sign, zh, zm = (g.decode() for g in groups)
        try:
            offset = timedelta(hours=int(zh), minutes=int(zm))
            zone = timezone(-offset if sign == "-" else offset)
            when = (int(year), _month(month), int(day), int(hour), int(minute), int(second))
            return datetime(*when, tzinfo=zone)
        except ValueError:
            raise Invalid("invalid date-time") from None


def _month(name: str) -> int:
    try:
        return MONTHS.index(name.upper()) + 1
    except ValueError:
        raise Invalid("invalid month") from None


def utf8(data: bytes, what: str = "a string") -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{what} is not UTF-8") from None
    if "\x00" in text:
        raise Invalid(f"{what} holds a NUL")
    return text


def mailbox_name(data: bytes) -> str:
    """A mailbox name as sent (modified UTF-7) to the name it stands for."""
    try:
        name = decode_mailbox_name(data.decode("ascii"))
    except UnicodeDecodeError:
        raise Invalid("mailbox names are 7-bit (modified UTF-7)") from None
    except ValueError as e:
        raise Invalid(str(e)) from None
    return "INBOX" if name.upper() == "INBOX" else name
