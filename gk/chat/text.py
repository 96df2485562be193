"""
Checking what users type (room names, messages, emoji, limits, cursors)
and cutting text into the normalised words of the search index.

Pure functions: no database, no reactor.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from gk.chat.errors import InvalidInput
from gk.storage.chat_store import KINDS

MAX_ROOM_NAME = 80
MAX_TEXT = 10_000
MAX_EMOJI = 32
#: Longest indexed word (the column's size); longer words are cut.
MAX_WORD = 64
#: Most words in one search: each is one more join.
MAX_QUERY_WORDS = 10


# Letters and digits; "_" and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")
_CURSOR = re.compile(r"before:([1-9][0-9]{0,17})")


def _has_control(text: str, allowed: str = "") -> bool:
    """Whether C{text} has a control, line or paragraph separator outside C{allowed}."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") and c not in allowed for c in text)


def room_name(name: object) -> str:
    """
    A room name, trimmed.

    @raise InvalidInput: not a string of 1 to 80 characters without
        control characters.
    """
    if not isinstance(name, str):
        raise InvalidInput("a room name must be text")
    name = name.strip()
    if not name:
        raise InvalidInput("a room needs a name")
    if len(name) > MAX_ROOM_NAME:
        raise InvalidInput(f"a room name has at most {MAX_ROOM_NAME} characters")
    if _has_control(name):
        raise InvalidInput("a room name cannot contain control characters or line breaks")
    return name


def room_kind(kind: object) -> str:
    """@raise InvalidInput: C{kind} is not public, private or direct."""
    if kind not in KINDS:
        raise InvalidInput(f"a room is {', '.join(KINDS[:-1])} or {KINDS[-1]}, not {kind!r}")
    return str(kind)


def message_text(text: object) -> str:
    """
    A message's text: line breaks made C{\\n}, trimmed.

    @raise InvalidInput: not a string of 1 to 10,000 characters once
        trimmed, or with control characters other than tab and line break.
    """
    if not isinstance(text, str):
        raise InvalidInput("a message must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InvalidInput("a message cannot be empty")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"a message has at most {MAX_TEXT:,} characters")
    if _has_control(text, allowed="\n\t"):
        raise InvalidInput("a message cannot contain control characters")
    return text


def emoji(value: object) -> str:
    """
    A reaction: any short text without spaces (an emoji, C{:+1:}).

    @raise InvalidInput: empty once trimmed, over 32 characters, or with
        spaces or control characters.
    """
    if not isinstance(value, str):
        raise InvalidInput("a reaction must be text")
    value = value.strip()
    if not value or len(value) > MAX_EMOJI:
        raise InvalidInput(f"a reaction has 1 to {MAX_EMOJI} characters")
    if _has_control(value) or any(c.isspace() for c in value):
        raise InvalidInput("a reaction cannot contain spaces or control characters")
    return value


def limit(value: object, *, default: int, largest: int) -> int:
    """
    A page size: C{default} for L{None}.

    @raise InvalidInput: not an integer from 1 to C{largest}.
    """
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
        raise InvalidInput(f"the limit is a number from 1 to {largest}")
    return value


def make_cursor(message_id: int) -> str:
    """The opaque history cursor for the page of messages older than C{message_id}."""
    return base64.urlsafe_b64encode(f"before:{message_id}".encode()).decode().rstrip("=")


def parse_cursor(cursor: object) -> int:
    """
    The message id in a cursor of L{make_cursor}.

    @raise InvalidInput: not such a cursor.
    """
    if isinstance(cursor, str) and len(cursor) <= 40:
        padded = cursor + "=" * (-len(cursor) % 4)
        try:
            decoded = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        except (binascii.Error, UnicodeError, ValueError):
            decoded = ""
        match = _CURSOR.fullmatch(decoded)
        if match:
            return int(match[1])
    raise InvalidInput("not a history cursor (use the one the previous page gave)")


def normalise(text: str) -> str:
    """Casefolded, compatibility-decomposed, without accents: how words are compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The distinct normalised words of C{text}, in order, each cut to L{MAX_WORD}."""
    return list(dict.fromkeys(w[:MAX_WORD] for w in _WORD.findall(normalise(text))))


def query_words(text: object) -> list[str]:
    """
    The words to search for.

    @raise InvalidInput: no word at all, or more than L{MAX_QUERY_WORDS}.
    """
    if not isinstance(text, str):
        raise InvalidInput("search for some text")
    found = words(text)
    if not found:
        raise InvalidInput("search for at least one word")
    if len(found) > MAX_QUERY_WORDS:
        raise InvalidInput(f"search for at most {MAX_QUERY_WORDS} words")
    return found
