"""
The pure half of the SMTP client: server replies in, message bytes out.

No I/O and no state beyond L{ReplyReader}'s buffer:

  - L{parse_reply_line} parses one reply line (RFC 5321 4.2), and
    L{ReplyReader} turns received bytes into complete L{Reply} objects,
    enforcing the limits that keep a hostile server from exhausting memory;
  - L{Extensions} is what an EHLO reply advertises (RFC 5321 4.1.1.1);
  - L{dot_stuff} prepares a message for DATA (RFC 5321 4.5.2) and
    L{dot_unstuff} undoes it, for servers and tests.

Every malformed input raises L{ReplyLineError} and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

#: The longest reply line accepted, line ending excluded.  RFC 5321
#: 4.5.3.1.5 allows 512 octets; real servers are sometimes longer.
MAX_REPLY_LINE = 4096
#: The most lines one (multi-line) reply may have.
MAX_REPLY_LINES = 100
#: What ends the DATA content that L{dot_stuff} returns.
END_OF_DATA = b".\r\n"

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class ReplyLineError(ValueError):
    """The server sent something that is not a valid SMTP reply."""


def parse_reply_line(line: bytes) -> tuple[int, bool, str]:
    """
    Parse one reply line, given without its line ending.

    A last line is C{code SP text} or just C{code}; a continuation line is
    C{code "-" text}.  The text is decoded as UTF-8 (RFC 6531), invalid
    sequences replaced.

    @return: C{(code, is_last, text)}.
    @raise ReplyLineError: over L{MAX_REPLY_LINE} bytes, a code that is not
        three digits from 200 to 599, or no space or hyphen after it.
    """
    if len(line) > MAX_REPLY_LINE:
        raise ReplyLineError(f"reply line longer than {MAX_REPLY_LINE} bytes")
    digits = line[:3]
    if len(digits) != 3 or not all(0x30 <= b <= 0x39 for b in digits):
        raise ReplyLineError(f"reply line does not start with a 3-digit code: {line[:40]!r}")
    code = int(digits)
    if not 200 <= code <= 599:
        raise ReplyLineError(f"reply code {code} out of range 200-599")
    separator = line[3:4]
    if separator not in (b"", b" ", b"-"):
        raise ReplyLineError(f"no space or hyphen after the reply code: {line[:40]!r}")
    text = line[4:].decode("utf-8", errors="replace")
    return code, separator != b"-", text


@dataclass(frozen=True)
class Reply:
    """
    One complete reply.

    @ivar code: the 3-digit reply code.
    @ivar lines: the text of each line as received (enhanced codes included).
    @ivar enhanced: the RFC 3463 status of the first line, e.g. C{"5.1.1"},
        or C{""} when the server gave none (or one of another class than
        the code).
    @ivar local: made up by the client (say, "message too big" when the
        server's SIZE says so) rather than received from the server.
    """

    code: int
    lines: tuple[str, ...] = ("",)
    enhanced: str = ""
    local: bool = False

    @classmethod
    def from_lines(cls, code: int, lines: tuple[str, ...]) -> Reply:
        """A received reply, its enhanced status taken from the first line."""
        match = _ENHANCED.match(lines[0]) if lines else None
        enhanced = ""
        if match is not None and int(match.group(1)) == code // 100:
            enhanced = ".".join(match.group(1, 2, 3))
        return cls(code, lines, enhanced)

    @classmethod
    def make_local(cls, code: int, enhanced: str, text: str) -> Reply:
        """A reply the client makes up itself (L{local} is true)."""
        return cls(code, (f"{enhanced} {text}",), enhanced, local=True)

    @property
    def text(self) -> str:
        """The lines joined by newlines, each without the enhanced status."""
        return "\n".join(self._bare_lines())

    def _bare_lines(self) -> Iterator[str]:
        prefix = self.enhanced
        for line in self.lines:
            if (
                prefix
                and line.startswith(prefix)
                and line[len(prefix) : len(prefix) + 1] in (" ", "")
            ):
                yield line[len(prefix) + 1 :]
            else:
                yield line

    @property
    def positive(self) -> bool:
        """2xx: done."""
        return 200 <= self.code < 300

    @property
    def intermediate(self) -> bool:
        """3xx: go on (354 after DATA, 334 during AUTH)."""
        return 300 <= self.code < 400

    @property
    def transient(self) -> bool:
        """4xx: failed for now, worth retrying."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """5xx: failed for good."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        """One line, e.g. C{"550 5.1.1 user unknown"}; lines joined by spaces."""
        text = " ".join(part for part in self._bare_lines() if part)
        return " ".join(part for part in (str(self.code), self.enhanced, text) if part)


class ReplyReader:
    """
    Bytes from the server in, complete replies out.

    Lines end in CRLF; a bare LF is tolerated.  All lines of a reply must
    carry the same code (RFC 5321 4.2.1).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code = 0
        self._lines: list[str] = []

    def feed(self, data: bytes) -> None:
        """Append received bytes (nothing is parsed yet)."""
        self._buffer += data

    def next_reply(self) -> Reply | None:
        """
        The next complete reply, or L{None} until more bytes arrive.

        @raise ReplyLineError: a malformed line, a line too long, a reply
            of more than L{MAX_REPLY_LINES} lines, or a code that changes
            within one reply.  The reader is useless afterwards.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end == -1:
                if len(self._buffer) > MAX_REPLY_LINE + 1:
                    raise ReplyLineError(f"reply line longer than {MAX_REPLY_LINE} bytes")
                return None
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            code, last, text = parse_reply_line(line)
            if self._lines and code != self._code:
                raise ReplyLineError(f"reply code changed from {self._code} to {code}")
            self._code = code
            self._lines.append(text)
            if len(self._lines) > MAX_REPLY_LINES:
                raise ReplyLineError(f"reply of more than {MAX_REPLY_LINES} lines")
            if last:
                reply = Reply.from_lines(code, tuple(self._lines))
                self._lines = []
                return reply

    def discard(self) -> int:
        """Drop everything buffered, a partial reply too; return how many bytes."""
        dropped = len(self._buffer)
        del self._buffer[:]
        self._lines = []
        return dropped


class Extensions(Mapping[str, tuple[str, ...]]):
    """
    The service extensions of an EHLO reply: keyword (upper case) to its
    parameters, e.g. C{{"SIZE": ("10240000",), "AUTH": ("PLAIN", "LOGIN")}}.
    Lookups ignore case: C{"pipelining" in extensions}.
    """

    def __init__(self, items: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._items = {key.upper(): tuple(value) for key, value in (items or {}).items()}

    @classmethod
    def from_reply(cls, reply: Reply) -> Extensions:
        """
        Parse a positive EHLO reply.  The first line is the server's name;
        each further line is C{keyword *(SP param)}.  Lines that are not
        (or AUTH= of old servers, folded into AUTH) are ignored.
        """
        items: dict[str, tuple[str, ...]] = {}
        for line in reply.lines[1:]:
            words = line.split()
            if not words:
                continue
            keyword, params = words[0].upper(), tuple(words[1:])
            if keyword.startswith("AUTH="):
                keyword, params = "AUTH", (keyword[5:], *params)
            if not _KEYWORD.match(keyword):
                continue
            if keyword == "AUTH" and "AUTH" in items:
                params = items["AUTH"] + tuple(p for p in params if p not in items["AUTH"])
            items[keyword] = params
        return cls(items)

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return self._items[key.upper()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Extensions({self._items!r})"

    @property
    def size_limit(self) -> int | None:
        """
        The SIZE limit in octets (RFC 1870), or L{None} if there is none:
        SIZE not offered, offered without a number, or C{SIZE 0}.
        """
        params = self._items.get("SIZE", ())
        if not params or not params[0].isdigit() or not params[0].isascii():
            return None
        return int(params[0]) or None

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """The SASL mechanisms of AUTH, upper case (empty if AUTH is not offered)."""
        return frozenset(m.upper() for m in self._items.get("AUTH", ()))


def normalize_line_endings(message: bytes) -> bytes:
    """Every CRLF stays, every bare CR and bare LF becomes CRLF."""
    if b"\r" not in message:
        return message.replace(b"\n", b"\r\n")
    return message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def dot_stuff(message: bytes) -> bytes:
    """
    The DATA content for C{message}, without the terminating L{END_OF_DATA}.

    Line endings are normalised (L{normalize_line_endings}), a CRLF is
    added when the message does not end in one, and every line starting
    with "." gets another one in front.  An empty message stays empty.
    Everything runs in C{bytes.replace}, fast for messages of many MB.
    """
    data = normalize_line_endings(message)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data


def stuffed_size(data: bytes) -> int:
    """
    The size of the message that L{dot_stuff} made C{data} of, as RFC 1870
    counts it for SIZE=: CRLF line endings included, the added dots not.
    """
    return len(data) - data.count(b"\r\n..") - data.startswith(b"..")


def dot_unstuff(data: bytes) -> bytes:
    """
    Undo dot-stuffing of DATA content given without its terminating
    C{".\\r\\n"}: the first "." of every line that starts with one is
    removed (RFC 5321 4.5.2).
    """
    return (b"\r\n" + data).replace(b"\r\n.", b"\r\n")[2:]
