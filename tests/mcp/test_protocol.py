"""
The pure rules under C{/mcp}: reading one JSON-RPC message, telling the
two protocol eras apart, the 2026-07-28 envelope and header checks, and
what a client's C{Accept} and capabilities allow.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gk.mcp.consent import ConfirmationRefused, PendingConfirmations, canonical, read_answer
from gk.mcp.jsonrpc import (
    Notification,
    Request,
    Response,
    RpcError,
    encode,
    parse_message,
    sse_event,
)
from gk.mcp.protocol import (
    accepted_media,
    can_elicit_form,
    decode_header_value,
    era_of,
    negotiate,
    read_envelope,
)

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
}
HEADERS = {"mcp-protocol-version": ["2026-07-28"], "mcp-method": ["tools/call"]}


def test_each_kind_of_message_is_read_for_what_it_is() -> None:
    assert parse_message(b'{"jsonrpc":"2.0","id":"a","method":"ping"}') == Request("a", "ping")
    assert parse_message(b'{"jsonrpc":"2.0","method":"n","params":{"x":1}}') == Notification(
        "n", {"x": 1}
    )
    assert parse_message(b'{"jsonrpc":"2.0","id":3,"result":{}}') == Response(3, result={})
    assert parse_message(b'{"jsonrpc":"2.0","id":3,"error":{"code":1}}') == Response(
        3, error={"code": 1}
    )


@pytest.mark.parametrize(
    ("body", "code", "request_id"),
    [
        (b"\xff\xfe", -32700, None),
        (b"{", -32700, None),
        (b"[" * 100_000, -32700, None),
        (b"[]", -32600, None),
        (b"42", -32600, None),
        (b'{"id":1,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', -32600, 1),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}', -32602, 1),
        (b'{"jsonrpc":"2.0","method":"x","params":"p"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', -32600, 1),
        (b'{"jsonrpc":"2.0","id":1}', -32600, 1),
    ],
)
def test_what_is_not_one_message_is_refused(body: bytes, code: int, request_id: Any) -> None:
    with pytest.raises(RpcError) as refused:
        parse_message(body)
    assert (refused.value.code, refused.value.request_id) == (code, request_id)


def test_messages_are_written_compact_and_one_line_per_event() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"text": "deux\nlignes, été"}}
    assert (
        encode(message)
        == '{"jsonrpc":"2.0","id":1,"result":{"text":"deux\\nlignes, été"}}'.encode()
    )
    assert sse_event(message) == b"event: message\ndata: " + encode(message) + b"\n\n"


def test_the_era_is_told_by_header_session_and_envelope() -> None:
    call = Request(1, "tools/call", {"_meta": META})
    assert era_of(call, HEADERS) == "stateless"
    assert era_of(call, {"mcp-protocol-version": ["2099-01-01"]}) == "stateless"
    assert era_of(call, {}) == "stateless"  # it will be told its header is missing
    assert era_of(call, {"mcp-protocol-version": ["2025-11-25"]}) == "handshake"
    assert era_of(Request(1, "tools/list"), {"mcp-session-id": ["s"]}) == "handshake"
    assert era_of(Request(1, "initialize", {"_meta": META}), {}) == "handshake"
    assert era_of(Response(1, result={}), {}) == "handshake"
    assert [negotiate(v) for v in ("2025-06-18", "2024-11-05", 3)] == [
        "2025-06-18",
        "2025-11-25",
        "2025-11-25",
    ]


def test_the_envelope_ladder_reports_the_first_fault() -> None:
    call = Request(1, "tools/call", {"_meta": META, "name": "list_folders"})
    named = {**HEADERS, "mcp-name": ["list_folders"]}
    envelope = read_envelope(call, named)
    assert envelope.version == "2026-07-28" and envelope.capabilities == {"elicitation": {}}

    def fault(request: Request, headers: dict[str, list[str]]) -> int:
        with pytest.raises(RpcError) as refused:
            read_envelope(request, headers)
        return refused.value.code

    assert fault(Request(1, "tools/call", {}), named) == -32602
    assert fault(Request(1, "tools/call", {"_meta": {"x": 1}}), named) == -32602
    assert fault(call, {**named, "mcp-name": ["send_email"]}) == -32020
    assert fault(call, {**named, "mcp-method": ["tools/call", "tools/call"]}) == -32020
    assert fault(call, {"mcp-method": ["tools/call"], "mcp-name": ["list_folders"]}) == -32020
    future = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    later = Request(1, "tools/call", {"_meta": future, "name": "list_folders"})
    assert fault(later, {**named, "mcp-protocol-version": ["2099-01-01"]}) == -32022
    # Headers that contradict the body win over an unknown version: the client is confused.
    assert fault(later, named) == -32020


def test_header_values_may_travel_base64_wrapped() -> None:
    wrapped = "=?base64?" + base64.b64encode("réunion".encode()).decode() + "?="
    assert decode_header_value(wrapped) == "réunion"
    assert decode_header_value("plain") == "plain"
    assert decode_header_value("=?base64?not*base64?=") == "=?base64?not*base64?="
    assert decode_header_value("=?base64?cg?=") is None  # unpadded: not canonical
    assert decode_header_value(None) is None


@pytest.mark.parametrize(
    ("accept", "json_ok", "sse_ok"),
    [
        (None, True, True),
        ("application/json, text/event-stream", True, True),
        ("text/event-stream", False, True),
        ("application/json;q=0.9", True, False),
        ("*/*", True, True),
        ("text/html, application/json;q=0", False, False),
    ],
)
def test_accept_says_which_answers_the_client_takes(
    accept: str | None, json_ok: bool, sse_ok: bool
) -> None:
    assert accepted_media(accept) == (json_ok, sse_ok)


def test_form_elicitation_is_declared_with_form_or_an_empty_object() -> None:
    assert can_elicit_form({"elicitation": {}})
    assert can_elicit_form({"elicitation": {"form": {}, "url": {}}})
    assert not can_elicit_form({"elicitation": {"url": {}}})
    assert not can_elicit_form({"sampling": {}})
    assert not can_elicit_form(None)


def test_only_an_explicit_yes_approves() -> None:
    assert read_answer({"action": "accept", "content": {"confirm": True}})
    for answer in (
        {"action": "accept", "content": {"confirm": "true"}},
        {"action": "accept"},
        {"action": "decline", "content": {"confirm": True}},
        "accept",
    ):
        assert not read_answer(answer)


def test_a_pending_confirmation_binds_account_tool_and_arguments() -> None:
    now = [0.0]
    pending = PendingConfirmations(lambda: now[0], ttl=10.0, per_account=2)
    issued = pending.issue(1, "send_email", {"to": ["b"], "subject": "s"}, "Send")
    same = pending.find(issued.id, 1, "send_email", {"subject": "s", "to": ["b"]})
    assert same == issued and canonical({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    with pytest.raises(ConfirmationRefused):
        pending.find(issued.id, 2, "send_email", {"subject": "s", "to": ["b"]})
    with pytest.raises(ConfirmationRefused):
        pending.find(issued.id, 1, "send_email", {"subject": "t", "to": ["b"]})
    with pytest.raises(ConfirmationRefused):  # the mismatch spent it
        pending.find(issued.id, 1, "send_email", {"subject": "s", "to": ["b"]})
    later = pending.issue(1, "delete_email", {"id": 1}, "Delete")
    now[0] = 10.0
    with pytest.raises(ConfirmationRefused):
        pending.find(later.id, 1, "delete_email", {"id": 1})
    assert len(pending) == 0
