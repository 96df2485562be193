"""
The two protocol eras gk serves on C{/mcp}, and the rules that tell them
apart and check a request of each.

 - The I{handshake} era (revisions 2025-06-18 and 2025-11-25): the client
   opens with C{initialize}, gets an C{MCP-Session-Id} and sends it, and
   the negotiated version in C{MCP-Protocol-Version}, on every later POST.
 - The I{stateless} era (revision 2026-07-28): no handshake and no
   session; every request carries its version, the client's capabilities
   and identity in C{params._meta}, and mirrors its version, method and
   (for C{tools/call}) tool name in the C{MCP-Protocol-Version},
   C{Mcp-Method} and C{Mcp-Name} headers, which must agree with the body.

L{era_of} routes a POST to one of them; L{read_envelope} checks a
stateless request's envelope and headers, in the order the revision
prescribes (envelope present, headers agree, version served), raising the
L{RpcError} to answer.  Pure: headers come in as a mapping from lowercase
name to every value received, so a header sent twice is seen.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gk.mcp.jsonrpc import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    JSON,
    UNSUPPORTED_PROTOCOL_VERSION,
    Message,
    Request,
    RpcError,
)

#: Revisions reached through C{initialize}, oldest first.
HANDSHAKE_VERSIONS = ("2025-06-18", "2025-11-25")
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
#: Revisions of the per-request envelope, oldest first.
STATELESS_VERSIONS = ("2026-07-28",)
SUPPORTED_VERSIONS = HANDSHAKE_VERSIONS + STATELESS_VERSIONS
#: The first revision whose elicitation requests name their C{mode}.
ELICITATION_MODES_SINCE = "2025-11-25"

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
SESSION_HEADER = "mcp-session-id"
#: The request headers L{read_envelope} looks at, for the resource to collect.
ROUTING_HEADERS = (VERSION_HEADER, METHOD_HEADER, NAME_HEADER)
#: Methods whose body names a target mirrored in C{Mcp-Name}, and the param that holds it.
NAMED_TARGETS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

Headers = Mapping[str, Sequence[str]]

_BASE64_VALUE = re.compile(r"=\?base64\?(?P<payload>[A-Za-z0-9+/=]*)\?=")


@dataclass(frozen=True)
class Envelope:
    """What a stateless request says about itself in C{params._meta}."""

    version: str
    capabilities: JSON
    client_info: JSON | None


def era_of(message: Message, headers: Headers) -> str:
    """
    C{"stateless"} or C{"handshake"}: which era serves this POST.

    A version header naming anything but a handshake revision goes to the
    stateless era, whose checks answer an unknown version with
    C{UnsupportedProtocolVersionError}; so does a request without version
    header and session that carries the stateless envelope (it will be
    told the header is missing).  Everything else — C{initialize}, a
    session's requests, answers to gk's own requests — is the handshake
    era's.
    """
    version = _single(headers, VERSION_HEADER)
    if version is not None:
        return "handshake" if version in HANDSHAKE_VERSIONS else "stateless"
    if _single(headers, SESSION_HEADER) is not None:
        return "handshake"
    if isinstance(message, Request) and message.method != "initialize":
        meta = message.params.get("_meta")
        if isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta:
            return "stateless"
    return "handshake"


def negotiate(requested: Any) -> str:
    """The handshake version to answer an C{initialize} asking for C{requested}."""
    return requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION


def unsupported_version(requested: str) -> RpcError:
    """
    The C{UnsupportedProtocolVersionError} for C{requested}: its data lists
    every version gk serves, the handshake ones included, so a client that
    speaks both eras knows it may fall back to C{initialize}.
    """
    return RpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        f"protocol version {requested!r} is not supported",
        {"supported": list(SUPPORTED_VERSIONS), "requested": requested},
    )


def read_envelope(request: Request, headers: Headers) -> Envelope:
    """
    Check a stateless request's envelope against its headers.

    In order, the first failure wins: C{params._meta} carries the protocol
    version and client capabilities (else invalid params); every routing
    header is sent at most once and agrees with the body (else
    C{HEADER_MISMATCH}); the version is one gk serves statelessly (else
    C{UNSUPPORTED_PROTOCOL_VERSION}).
    """
    meta = request.params.get("_meta")
    if not isinstance(meta, dict):
        raise RpcError(
            INVALID_PARAMS,
            f"params._meta must carry {PROTOCOL_VERSION_KEY!r} and {CLIENT_CAPABILITIES_KEY!r}",
        )
    missing = [k for k in (PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY) if k not in meta]
    if missing:
        raise RpcError(INVALID_PARAMS, f"params._meta lacks {', '.join(missing)}")
    version = meta[PROTOCOL_VERSION_KEY]
    for name in ROUTING_HEADERS:
        if len(headers.get(name, ())) > 1:
            raise RpcError(HEADER_MISMATCH, f"the {name} header is sent more than once")
    if _single(headers, VERSION_HEADER) != version:
        raise RpcError(
            HEADER_MISMATCH,
            "the MCP-Protocol-Version header must equal params._meta's protocol version",
        )
    if _single(headers, METHOD_HEADER) != request.method:
        raise RpcError(HEADER_MISMATCH, "the Mcp-Method header must equal the method")
    target = NAMED_TARGETS.get(request.method)
    if target is not None:
        named = request.params.get(target)
        if named is not None and decode_header_value(_single(headers, NAME_HEADER)) != named:
            raise RpcError(HEADER_MISMATCH, f"the Mcp-Name header must equal params.{target}")
    if not isinstance(version, str):
        raise RpcError(INVALID_PARAMS, "the protocol version must be a string")
    if version not in STATELESS_VERSIONS:
        raise unsupported_version(version)
    capabilities = meta[CLIENT_CAPABILITIES_KEY]
    if not isinstance(capabilities, dict):
        raise RpcError(INVALID_PARAMS, f"{CLIENT_CAPABILITIES_KEY} must be an object")
    info = meta.get(CLIENT_INFO_KEY)
    return Envelope(version, capabilities, info if isinstance(info, dict) else None)


def decode_header_value(value: str | None) -> str | None:
    """
    A header value as the client meant it: values that would not survive
    as an HTTP field (non-ASCII, edge spaces) travel as
    C{=?base64?PAYLOAD?=}; a malformed one decodes to None, matching nothing.
    """
    if value is None:
        return None
    wrapped = _BASE64_VALUE.fullmatch(value)
    if wrapped is None:
        return value
    payload = wrapped.group("payload")
    try:
        raw = base64.b64decode(payload, validate=True)
        if base64.b64encode(raw).decode("ascii") != payload:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def can_elicit_form(capabilities: Any) -> bool:
    """
    Whether client capabilities allow a form elicitation: C{elicitation}
    declared with C{form}, or empty (2025-06-18 clients, form only).
    """
    if not isinstance(capabilities, dict):
        return False
    elicitation = capabilities.get("elicitation")
    if not isinstance(elicitation, dict):
        return False
    return "form" in elicitation or "url" not in elicitation


def accepted_media(accept: str | None) -> tuple[bool, bool]:
    """
    Whether an C{Accept} header takes C{application/json} and
    C{text/event-stream} answers; no header takes anything.
    """
    if accept is None or not accept.strip():
        return True, True
    ranges = set()
    for item in accept.split(","):
        media, _, parameters = item.partition(";")
        if re.search(r"(^|;)\s*q\s*=\s*0(\.0*)?\s*($|;)", parameters):
            continue
        ranges.add(media.strip().lower())
    anything = "*/*" in ranges
    json_ok = anything or "application/*" in ranges or "application/json" in ranges
    sse_ok = anything or "text/*" in ranges or "text/event-stream" in ranges
    return json_ok, sse_ok


def _single(headers: Headers, name: str) -> str | None:
    values = headers.get(name, ())
    return values[0] if values else None
