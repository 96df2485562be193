"""
The JSON messages of gk's WebSocket (C{/ws}), version 1: parsing what a
client sends and building what the server sends.  Pure functions, no I/O;
C{docs/websocket.md} is the description clients are written against.

A client message is one JSON object per text frame with a C{type} (a
short dotted name) and an C{id} (a string or integer the client chooses,
echoed in the answer); the other members are the command's arguments.
The server answers each with C{{"type": "reply", "id", "result"}} or
C{{"type": "error", "id", "error": {"code", "message"}}}, and pushes
C{{"type": "event", "event", "data"[, "position"]}} as things happen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

#: The version of this protocol; C{hello} answers with it.
PROTOCOL_VERSION = 1

#: The longest frame a client may send (bytes); longer ones close the socket.
MAX_FRAME = 64 * 1024

#: The longest C{type} and client C{id} accepted.
MAX_TYPE = 64
MAX_ID = 128


class ProtocolError(Exception):
    """
    A client message that cannot be acted on.

    @ivar code: a stable machine-readable code (see C{docs/websocket.md}).
    @ivar message: a sentence for a person.
    @ivar id: the message's id when it could be read, else L{None}.
    """

    def __init__(self, code: str, message: str, id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id


@dataclass(frozen=True)
class ClientMessage:
    """A well-formed client message: its type, id and arguments."""

    type: str
    id: str | int
    args: dict[str, Any]

    def text(self, name: str, *, max_length: int, required: bool = True) -> str | None:
        """A string argument (L{None} when absent and not C{required})."""
        value = self.args.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise self.invalid(f"{name} must be a string")
        if len(value) > max_length:
            raise self.invalid(f"{name} is longer than {max_length} characters")
        return value

    def integer(self, name: str, *, required: bool = True, minimum: int = 0) -> int | None:
        """An integer argument, at least C{minimum} (L{None} when absent and not C{required})."""
        value = self.args.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.invalid(f"{name} must be an integer")
        if value < minimum:
            raise self.invalid(f"{name} must be at least {minimum}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.args.get(name, default)
        if not isinstance(value, bool):
            raise self.invalid(f"{name} must be true or false")
        return value

    def strings(self, name: str, *, max_items: int, max_length: int) -> list[str]:
        """A list of strings (empty when absent)."""
        value = self.args.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.invalid(f"{name} must be a list of strings")
        if len(value) > max_items:
            raise self.invalid(f"{name} has more than {max_items} items")
        if any(len(v) > max_length for v in value):
            raise self.invalid(f"an item of {name} is longer than {max_length} characters")
        return list(value)

    def invalid(self, message: str) -> ProtocolError:
        return ProtocolError("invalid_argument", message, self.id)


def parse_client_message(payload: bytes, is_binary: bool) -> ClientMessage:
    """
    Read one client frame.

    @raise ProtocolError: C{bad_frame} (binary), C{bad_json}, C{bad_message}
        (not an object, or no usable type and id).
    """
    if is_binary:
        raise ProtocolError("bad_frame", "frames are JSON text, not binary")
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("bad_json", "the frame is not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("bad_message", "a message is a JSON object")
    message_id = value.get("id")
    valid_id = (isinstance(message_id, str) and 0 < len(message_id) <= MAX_ID) or (
        isinstance(message_id, int) and not isinstance(message_id, bool)
    )
    if not valid_id:
        raise ProtocolError(
            "bad_message", f"id must be a string of 1 to {MAX_ID} characters or an integer"
        )
    kind = value.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_TYPE:
        raise ProtocolError("bad_message", "type must be a non-empty string", message_id)
    args = {k: v for k, v in value.items() if k not in ("type", "id")}
    return ClientMessage(kind, cast("str | int", message_id), args)


def encode(message: dict[str, Any]) -> bytes:
    """One server frame (compact JSON, UTF-8)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def reply(message_id: str | int, result: Any) -> bytes:
    return encode({"type": "reply", "id": message_id, "result": result})


def error(message_id: str | int | None, code: str, message: str) -> bytes:
    return encode({"type": "error", "id": message_id, "error": {"code": code, "message": message}})


def event(name: str, data: Any, position: int | None = None) -> bytes:
    """A pushed event; C{position} for those of the chat change log (catch-up)."""
    frame: dict[str, Any] = {"type": "event", "event": name, "data": data}
    if position is not None:
        frame["position"] = position
    return encode(frame)
