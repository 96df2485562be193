"""
JSON-RPC 2.0 as MCP's Streamable HTTP transport carries it: one message
per POST body, read into what it is (a L{Request}, a L{Notification} or a
L{Response} to a request of ours), and the messages gk sends back, as
JSON or as one Server-Sent Events frame.

Pure: no I/O, no Twisted.  Anything that is not a message raises
L{RpcError} with the JSON-RPC code to answer (parse error, invalid
request) and, when it could be read, the id of the request it belongs
to.  MCP forbids batches (since revision 2025-06-18) and C{null} ids, and
its params are always an object; those rules are checked here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
#: A request id: MCP allows strings and integers, never null.
RequestId = str | int

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: Revision 2026-07-28: an HTTP header does not agree with the body.
HEADER_MISMATCH = -32020
#: Revision 2026-07-28: the request needs a capability the client did not declare.
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
#: Revision 2026-07-28: the request's protocol version is not served here.
UNSUPPORTED_PROTOCOL_VERSION = -32022

#: The longest method name looked at (longer is an invalid request).
MAX_METHOD = 256
#: The longest string id kept (longer is an invalid request).
MAX_ID = 256


class RpcError(Exception):
    """
    A JSON-RPC error to answer: its code, message and optional data, and
    the id of the request it answers when that id is known.
    """

    def __init__(
        self, code: int, message: str, data: Any = None, request_id: RequestId | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.request_id = request_id

    def to_message(self, request_id: RequestId | None = None) -> JSON:
        """The error response, for C{request_id} or else the id this error carries."""
        answered = request_id if request_id is not None else self.request_id
        return error(answered, self.code, self.message, self.data)


@dataclass(frozen=True)
class Request:
    """A call that wants an answer; C{params} is C{{}} when the body had none."""

    id: RequestId
    method: str
    params: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """A one-way message; nothing is ever answered to it."""

    method: str
    params: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    """
    The client's answer to a request gk sent it (an elicitation): exactly
    one of C{result} and C{error} is set.
    """

    id: RequestId
    result: JSON | None = None
    error: JSON | None = None


Message = Request | Notification | Response


def parse_message(body: bytes) -> Message:
    """
    The one message of a POST body.

    @raise RpcError: C{PARSE_ERROR} for a body that is not JSON (UTF-8),
        C{INVALID_REQUEST} for JSON that is not one well-formed message
        (a batch, a null or boolean id, no method), C{INVALID_PARAMS} for
        a request whose params are not an object.
    """
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RpcError(PARSE_ERROR, "the body is not JSON") from None
    if isinstance(decoded, list):
        raise RpcError(INVALID_REQUEST, "batches are not supported: send one message per POST")
    if not isinstance(decoded, dict):
        raise RpcError(INVALID_REQUEST, "the body must be one JSON-RPC message object")
    if decoded.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'the message must say "jsonrpc": "2.0"')
    has_id = "id" in decoded
    request_id = _read_id(decoded["id"]) if has_id else None
    if "method" in decoded:
        method = decoded["method"]
        if not isinstance(method, str) or not method or len(method) > MAX_METHOD:
            raise RpcError(INVALID_REQUEST, "method must be a non-empty string", None, request_id)
        params = decoded.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            code = INVALID_PARAMS if has_id else INVALID_REQUEST
            raise RpcError(code, "params must be an object", None, request_id)
        if request_id is None:
            return Notification(method, params)
        return Request(request_id, method, params)
    if request_id is not None and ("result" in decoded) != ("error" in decoded):
        result, failure = decoded.get("result"), decoded.get("error")
        if "result" in decoded and isinstance(result, dict):
            return Response(request_id, result=result)
        if "error" in decoded and isinstance(failure, dict):
            return Response(request_id, error=failure)
    raise RpcError(
        INVALID_REQUEST, "not a JSON-RPC request, notification or response", None, request_id
    )


def _read_id(value: Any) -> RequestId:
    # bool is an int in Python; JSON true is no id.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RpcError(INVALID_REQUEST, "id must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_ID:
        raise RpcError(INVALID_REQUEST, f"id must be at most {MAX_ID} characters")
    return value


def result(request_id: RequestId, value: JSON) -> JSON:
    """A success response."""
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> JSON:
    """An error response; C{request_id} None writes C{"id": null} (the id was unreadable)."""
    details: JSON = {"code": code, "message": message}
    if data is not None:
        details["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": details}


def request(request_id: RequestId, method: str, params: JSON) -> JSON:
    """A request from gk to the client (an elicitation)."""
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def encode(message: JSON) -> bytes:
    """Compact UTF-8 JSON; never a raw newline, so it fits one SSE data line."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse_event(message: JSON) -> bytes:
    """One Server-Sent Events frame carrying C{message}."""
    return b"event: message\ndata: " + encode(message) + b"\n\n"


#: An SSE comment: keeps an idle stream open through proxies; clients ignore it.
SSE_KEEPALIVE = b": keep-alive\n\n"
