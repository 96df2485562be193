"""
A raw-socket SMTP client for protocol edge cases.

It sends exactly the bytes it is given, in the writes it is given (with
TCP_NODELAY, so small writes leave as small segments), and reads replies
one at a time as the server sends them; nothing is interpreted for the
test.  It blocks: run a conversation off the reactor thread with
L{tests.smtp.conftest.in_thread}, since the server runs on the reactor of
the same process.

Every read has a socket timeout, only as a safety net: a test waits for a
reply or for the server to close, never for time to pass.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType

#: Seconds a read may wait before the test fails (a safety net, not a wait).
TIMEOUT = 10.0

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class SMTPReply:
    """One complete reply: the code and the text of each line."""

    code: int
    lines: tuple[str, ...]

    @property
    def enhanced(self) -> str:
        """The RFC 3463 status code of the first line, or C{""}."""
        first = self.lines[0].split(" ", 1)[0] if self.lines else ""
        return first if _ENHANCED.match(first) else ""

    @property
    def text(self) -> str:
        """The lines, joined with newlines (enhanced codes included)."""
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return " | ".join(f"{self.code} {line}" for line in self.lines)


def expect(reply: SMTPReply, code: int, enhanced: str = "") -> SMTPReply:
    """Assert the exact reply code and enhanced status code."""
    assert (reply.code, reply.enhanced) == (code, enhanced), str(reply)
    return reply


class ServerClosed(Exception):
    """The server closed the connection while a reply was expected."""


class RawClient:
    """
    One connection to an SMTP server.  The greeting is read on connect
    (L{greeting}); a refused connection's greeting is a 421.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self.greeting = self.reply()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a TLS socket the server dropped
            self.sock.close()

    # -- writing ---------------------------------------------------------

    def send(self, data: bytes) -> None:
        """One write of exactly these bytes."""
        self.sock.sendall(data)

    def send_pieces(self, data: bytes, size: int) -> None:
        """The bytes in many writes of at most C{size} octets each."""
        for i in range(0, len(data), size):
            self.sock.sendall(data[i : i + size])

    def command(self, line: str | bytes) -> SMTPReply:
        """Send one command line (CRLF added) and read its reply."""
        data = line.encode() if isinstance(line, str) else line
        self.send(data + b"\r\n")
        return self.reply()

    # -- reading ---------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ServerClosed(bytes(self._buffer))
        self._buffer += chunk

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) == -1:
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def reply(self) -> SMTPReply:
        """The next complete reply (all lines of a multi-line one)."""
        lines: list[str] = []
        while True:
            line = self._line().decode("utf-8")
            assert len(line) >= 3 and line[:3].isdigit(), f"not a reply line: {line!r}"
            assert line[3:4] in (" ", "-", ""), f"not a reply line: {line!r}"
            lines.append(line[4:])
            if line[3:4] != "-":
                return SMTPReply(int(line[:3]), tuple(lines))

    def replies(self, count: int) -> list[SMTPReply]:
        return [self.reply() for _ in range(count)]

    @property
    def pending(self) -> bytes:
        """What was received and not read as a reply yet."""
        return bytes(self._buffer)

    def read_until_closed(self) -> bytes:
        """
        Everything the server sends until it closes the connection.

        @raise AssertionError: the connection stayed open past the timeout.
        """
        try:
            while True:
                self._fill()
        except ServerClosed:
            pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError("the server did not close the connection") from None
        data = bytes(self._buffer)
        del self._buffer[:]
        return data

    # -- TLS -------------------------------------------------------------

    def starttls(self) -> None:
        """
        The TLS handshake on this connection (no certificate checks), after
        the server's 220.  Any plaintext left unread would be a reply the
        server should not have sent.
        """
        assert not self._buffer, f"plaintext after the 220: {bytes(self._buffer)!r}"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock)


def ehlo(client: RawClient, name: str = "client.example.org") -> SMTPReply:
    """EHLO, checked to succeed."""
    return expect(client.command(f"EHLO {name}"), 250)


_TRACE = (b"Return-Path:", b"Authentication-Results:", b"Received:")


def client_part(stored: bytes) -> bytes:
    """
    A stored message without the fields gk prepends (Return-Path,
    Authentication-Results, Received and their continuation lines): the
    bytes the client sent.
    """
    rest = stored
    while True:
        end = rest.find(b"\r\n")
        if end == -1:
            return rest
        line = rest[:end]
        if line.startswith(_TRACE):
            rest = rest[end + 2 :]
            # The field's continuation lines.
            while rest[:1] in (b" ", b"\t"):
                rest = rest[rest.find(b"\r\n") + 2 :]
            continue
        return rest
