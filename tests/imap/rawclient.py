"""
A minimal IMAP client for tests that need the exact responses: one
command at a time, untagged lines (literals inlined) and the tagged line.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass, field

from tests.helpers import client_tls

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


@dataclass
class Reply:
    untagged: list[bytes] = field(default_factory=list)
    tagged: bytes = b""

    @property
    def ok(self) -> bool:
        return self.tagged.split(b" ", 2)[1:2] == [b"OK"]

    def starting(self, prefix: bytes) -> list[bytes]:
        """The untagged responses (without "* ") that start with C{prefix}."""
        return [line for line in self.untagged if line.startswith(prefix)]


class RawIMAP:
    """Blocking, over implicit TLS; use from a thread (tests.helpers.in_thread)."""

    def __init__(self, port: int) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock: ssl.SSLSocket = client_tls().wrap_socket(
            raw, server_hostname="mail.example.test"
        )
        self.reader = self.sock.makefile("rb")
        self.greeting = self.reader.readline()
        self._tags = 0

    def command(self, text: str | bytes) -> Reply:
        """Send one command (the tag is added) and read its whole reply."""
        self._tags += 1
        tag = f"t{self._tags}".encode()
        data = text.encode() if isinstance(text, str) else text
        self.sock.sendall(tag + b" " + data + b"\r\n")
        return self.read_reply(tag)

    def read_reply(self, tag: bytes) -> Reply:
        reply = Reply()
        while True:
            line = self.read_response()
            if line.startswith(b"* "):
                reply.untagged.append(line[2:])
            elif line.startswith(tag + b" "):
                reply.tagged = line
                return reply
            else:
                raise AssertionError(f"unexpected line {line!r}")

    def read_response(self) -> bytes:
        """One response line with any literals it carries inlined, without CRLF."""
        out = b""
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("connection closed")
            match = _LITERAL.search(line)
            if match is None:
                return out + line.rstrip(b"\r\n")
            out += line[: match.start()] + b"{" + match.group(1) + b"}\r\n"
            out += self.reader.read(int(match.group(1)))

    def close(self) -> None:
        self.sock.close()
