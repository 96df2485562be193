"""
Framing of the IMAP client stream into commands (RFC 3501 2.2, 4.3 and
7.5; RFC 7888 LITERAL+).

L{CommandReader} is fed bytes as they arrive and returns events; it never
writes.  A command is one line, unless a line ends in a literal marker:
C{{n}} (synchronizing: the server must answer C{+ ...} before the client
sends the n octets) or C{{n+}} (non-synchronizing: the octets follow at
once).  After the literal the command goes on with another line, which
may end in another literal, and so on.  The reader gives each complete
command as one L{RawCommand} whose parts are the text and the literal
octets in order, so the grammar never scans literal data.

How the protocol drives it:

  - For each L{RawCommand}, hand it to the session (which parses it with
    L{gk.imap.parser.parse_command}).
  - A L{NeedContinuation} is always the last event of a batch: the reader
    stops there (bytes received meanwhile are only buffered) until the
    protocol calls L{CommandReader.accept_literal} (after sending
    C{+ Ready for literal data}) or L{CommandReader.refuse_literal}
    (after sending the tagged C{BAD}/C{NO} that ends the command: RFC 3501
    7.5).  Both return the next batch of events.  So the session can see
    every command before the literal in question and may refuse, say, an
    APPEND before login without accepting its octets.  If commands are
    carried out asynchronously, the answer may wait until the earlier
    ones are done (pausing the transport meanwhile).
  - A L{TooLong} means the command was dropped: answer C{tag BAD} (or
    C{NO [TOOBIG]} for a literal), or C{* BAD} without a tag.  The reader
    discards what remains of that command by itself: the rest of the
    line, the octets of any non-synchronizing literal in it, and the rest
    of the command after those; a synchronizing literal ends it (the
    client waits for a continuation that never comes).

After STARTTLS the protocol drops the rest of the batch and calls
L{CommandReader.clear}.

There are no modes.  IDLE's C{DONE} and AUTHENTICATE's base64 lines are
lines like any other and come out as a L{RawCommand} without literals
(L{RawCommand.line}); the session knows it is idling or authenticating
and reads them as such.  This is sound because the framing of a plain
line is the same in every mode, and a line that ends in a literal marker
while the session expects C{DONE} or base64 pauses the reader, so the
session can refuse the literal and end the IDLE or AUTHENTICATE with
C{BAD}.

Lines end in CRLF; a bare LF is accepted too.  Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: Octets of text one command may have: its lines without their line ends,
#: literal markers included, literal data not.
DEFAULT_MAX_LINE = 64 * 1024
#: Literal octets one command may carry (all its literals together).
DEFAULT_MAX_LITERAL = 64 * 1024 * 1024

# RFC 3501 9: literal = "{" number "}" CRLF; RFC 7888: "{" number "+}".
_MARKER = re.compile(rb"\{([0-9]{1,20})(\+?)\}$")
# The end of a skipped line kept to find its marker (longer than any marker).
_TAIL = 32
# tag = 1*<any ASTRING-CHAR except "+">
_TAG_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in b'(){%*"\\+')
_TAG = re.compile(b"[" + re.escape(_TAG_CHARS) + b"]{1,128}")
_TAG_SCAN = 130


def tag_of(text: bytes) -> str | None:
    """The tag at the start of a command's text, or L{None} when it has none."""
    match = _TAG.match(text)
    if match is None or (match.end() < len(text) and text[match.end()] != 0x20):
        return None
    return match.group().decode("ascii")


@dataclass(frozen=True)
class RawCommand:
    """
    One complete command as the client sent it.

    @ivar parts: text and literal data alternately, starting and ending
        with text: C{parts[0]} is the text up to the first literal
        (without its C{{n}} marker), C{parts[1]} that literal's octets,
        C{parts[2]} the text after it, and so on.  Line ends are removed.
        C{A LOGIN {5}CRLF alice {3+}CRLF pwdCRLF} gives
        C{(b"A LOGIN ", b"alice", b" ", b"pwd", b"")}.
    """

    parts: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.parts) % 2 != 1:
            raise ValueError("a command has text, then literal and text pairs")

    @property
    def line(self) -> bytes | None:
        """The whole command when it is a single line without literals."""
        return self.parts[0] if len(self.parts) == 1 else None

    @property
    def tag(self) -> str | None:
        return tag_of(self.parts[0])


@dataclass(frozen=True)
class NeedContinuation:
    """
    The command so far ends in a synchronizing literal of C{size} octets:
    send C{+ ...} and call L{CommandReader.accept_literal}, or refuse.

    @ivar parts: the command up to the literal, as in L{RawCommand.parts}.
    """

    tag: str | None
    size: int
    parts: tuple[bytes, ...]


@dataclass(frozen=True)
class TooLong:
    """
    A command went over a limit and is being dropped.

    @ivar what: C{"line"} (too much command text) or C{"literal"} (too
        many literal octets).
    @ivar limit: the limit that was exceeded, in octets.
    """

    tag: str | None
    what: Literal["line", "literal"]
    limit: int


Event = RawCommand | NeedContinuation | TooLong

_LINE, _LITERAL, _PAUSED, _SKIP_LINE, _SKIP_LITERAL = range(5)


class CommandReader:
    """
    Splits the client stream into commands; see the module docstring.

    @ivar max_line: see L{DEFAULT_MAX_LINE}.
    @ivar max_literal: see L{DEFAULT_MAX_LITERAL}.  Both may be changed at
        any time (say, raised after login); they apply to what is read
        afterwards.
    """

    def __init__(
        self, max_line: int = DEFAULT_MAX_LINE, max_literal: int = DEFAULT_MAX_LITERAL
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self._buffer = bytearray()
        self._scanned = 0  # octets of _buffer known to hold no LF
        self._state = _LINE
        self._parts: list[bytes] = []
        self._text = 0  # command text so far
        self._literals = 0  # literal octets so far
        self._literal = bytearray()
        self._remaining = 0  # literal octets still to read or skip
        self._tail = b""  # end of the line being skipped

    @property
    def awaiting_continuation(self) -> bool:
        """Whether a L{NeedContinuation} is waiting for an answer."""
        return self._state == _PAUSED

    @property
    def buffered(self) -> int:
        """Octets received and not yet framed (for flow control)."""
        return len(self._buffer) + len(self._literal)

    def clear(self) -> None:
        """
        Forget everything received and not yet framed, and any command in
        progress: after STARTTLS, whatever came in the clear before the
        handshake must be dropped, not read as commands (RFC 2595 3.1).
        """
        self._buffer.clear()
        self._scanned = 0
        self._literal = bytearray()
        self._remaining = 0
        self._tail = b""
        self._reset()

    def feed(self, data: bytes) -> list[Event]:
        """Take more octets from the client; return the events they complete."""
        self._buffer += data
        return self._run()

    def accept_literal(self) -> list[Event]:
        """The continuation was sent: read the literal, and go on."""
        if self._state != _PAUSED:
            raise RuntimeError("no literal is waiting for a continuation")
        self._state = _LITERAL
        return self._run()

    def refuse_literal(self) -> list[Event]:
        """The command was answered with BAD or NO instead: drop it and go on."""
        if self._state != _PAUSED:
            raise RuntimeError("no literal is waiting for a continuation")
        self._reset()
        return self._run()

    def _reset(self) -> None:
        self._state = _LINE
        self._parts = []
        self._text = 0
        self._literals = 0

    def _tag(self, line: bytes | bytearray) -> str | None:
        # A tag has at most 128 octets: the first _TAG_SCAN decide it.
        return tag_of(self._parts[0] if self._parts else bytes(line[:_TAG_SCAN]))

    def _run(self) -> list[Event]:
        events: list[Event] = []
        while self._state != _PAUSED:
            if self._state in (_LITERAL, _SKIP_LITERAL):
                if not self._step_literal():
                    break
            elif not self._step_line(events):
                break
        return events

    def _step_literal(self) -> bool:
        take = min(self._remaining, len(self._buffer))
        if self._state == _LITERAL:
            self._literal += self._buffer[:take]
        del self._buffer[:take]
        self._remaining -= take
        if self._remaining:
            return False
        if self._state == _LITERAL:
            self._parts.append(bytes(self._literal))
            self._literal = bytearray()
            self._state = _LINE
        else:
            self._state = _SKIP_LINE
        return True

    def _step_line(self, events: list[Event]) -> bool:
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            if self._state == _SKIP_LINE:
                self._tail = (self._tail + bytes(self._buffer))[-_TAIL:]
                self._buffer.clear()
                self._scanned = 0
            elif self._text + len(self._buffer) > self.max_line + 1 and (
                self._parts or len(self._buffer) >= _TAG_SCAN
            ):
                # Over the limit even if the last octet is a CR (and its tag
                # is known): drop it now, whatever the rest of the line.
                events.append(TooLong(self._tag(self._buffer), "line", self.max_line))
                self._skip_line()
                return True
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        if self._state == _SKIP_LINE:
            line, self._tail = (self._tail + line)[-_TAIL:], b""
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._state == _SKIP_LINE:
            self._end_skipped(_MARKER.search(line))
            return True
        marker = _MARKER.search(line)
        self._text += len(line)
        if self._text > self.max_line:
            events.append(TooLong(self._tag(line), "line", self.max_line))
            self._end_skipped(marker)
            return True
        self._parts.append(line[: marker.start()] if marker else line)
        if marker is None:
            events.append(RawCommand(tuple(self._parts)))
            self._reset()
            return True
        size = int(marker.group(1))
        if self._literals + size > self.max_literal:
            events.append(TooLong(self._tag(line), "literal", self.max_literal))
            self._end_skipped(marker)
            return True
        self._literals += size
        self._remaining = size
        if marker.group(2):
            self._state = _LITERAL
            return True
        self._state = _PAUSED
        events.append(NeedContinuation(self._tag(line), size, tuple(self._parts)))
        return False

    def _skip_line(self) -> None:
        """Drop the current command, starting with the rest of this line."""
        self._tail = bytes(self._buffer[-_TAIL:])
        self._buffer.clear()
        self._scanned = 0
        self._reset()
        self._state = _SKIP_LINE

    def _end_skipped(self, marker: re.Match[bytes] | None) -> None:
        """A dropped command's line ended with C{marker}: skip its literal, or stop."""
        self._reset()
        if marker is not None and marker.group(2):
            self._remaining = int(marker.group(1))
            self._state = _SKIP_LITERAL
