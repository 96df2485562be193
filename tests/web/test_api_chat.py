"""
The chat JSON API (C{/api/chat/...}) over real HTTP: a script with a
bearer token lists rooms, makes one, posts, pages through history, and
gets one clear JSON error for each kind of bad request.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

import pytest_twisted

from tests.helpers import in_thread
from tests.ws.conftest import ALICE, BOB, CAROL, LiveServer, aio, dns_server, live_server

__all__ = ["dns_server", "live_server"]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    server: LiveServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        return Reply(
            answer.status,
            {k.lower(): v for k, v in answer.getheaders()},
            json.loads(payload) if payload else None,
        )
    finally:
        connection.close()


async def api(server: LiveServer, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
    return await in_thread(lambda: call(server, method, path, body, **kw))


@pytest_twisted.ensureDeferred
async def test_a_script_makes_a_room_posts_and_reads_history(live_server: LiveServer) -> None:
    alice, bob = live_server.tokens[ALICE], live_server.tokens[BOB]
    assert (await api(live_server, "GET", "/api/chat/rooms", token=alice)).body == {"rooms": []}
    made = await api(
        live_server, "POST", "/api/chat/rooms",
        {"name": "release", "kind": "private", "members": [BOB]}, token=alice,
    )  # fmt: skip
    assert made.status == 201 and made.body["kind"] == "private"
    room = made.body["id"]
    # Bob's socket hears the post made over HTTP.
    bob_socket = await live_server.connect(BOB)
    ids = []
    for n in range(5):
        posted = await api(
            live_server, "POST", f"/api/chat/rooms/{room}/messages", {"text": f"step {n}"},
            token=alice,
        )  # fmt: skip
        assert posted.status == 201 and posted.body["sender"] == ALICE
        ids.append(posted.body["id"])
    event = await aio(bob_socket.event("chat.message.posted"))
    assert event["data"]["message"]["text"] == "step 0"

    [listed] = (await api(live_server, "GET", "/api/chat/rooms", token=bob)).body["rooms"]
    assert listed["id"] == room and listed["unread"] == 5
    seen, cursor = [], ""
    while True:
        query = f"?limit=2&before={cursor}" if cursor else "?limit=2"
        page = await api(live_server, "GET", f"/api/chat/rooms/{room}/messages{query}", token=bob)
        assert page.status == 200
        seen += [m["id"] for m in page.body["messages"]]
        cursor = page.body["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    read = await api(
        live_server, "POST", f"/api/chat/rooms/{room}/read", {"message_id": ids[-1]}, token=bob
    )
    assert read.body == {"unread": 0}
    found = await api(live_server, "GET", "/api/chat/search?q=step", token=bob)
    assert len(found.body["messages"]) == 5


@pytest_twisted.ensureDeferred
async def test_public_rooms_are_joined_and_private_ones_stay_hidden(
    live_server: LiveServer,
) -> None:
    alice, carol = live_server.tokens[ALICE], live_server.tokens[CAROL]
    public = await api(
        live_server, "POST", "/api/chat/rooms", {"name": "lobby", "kind": "public"}, token=alice
    )
    private = await api(
        live_server, "POST", "/api/chat/rooms", {"name": "hr", "kind": "private"}, token=alice
    )
    # Not joined yet: posting is refused, joining works.
    refused = await api(
        live_server, "POST", f"/api/chat/rooms/{public.body['id']}/messages", {"text": "hi"},
        token=carol,
    )  # fmt: skip
    assert refused.status == 403 and refused.body["error"]["code"] == "not_allowed"
    joined = await api(
        live_server, "POST", f"/api/chat/rooms/{public.body['id']}/join", token=carol
    )
    assert joined.status == 200 and CAROL in {m["email"] for m in joined.body["members"]}
    # The private room looks exactly like one that does not exist.
    hidden = await api(live_server, "GET", f"/api/chat/rooms/{private.body['id']}", token=carol)
    missing = await api(live_server, "GET", "/api/chat/rooms/99999", token=carol)
    assert hidden.status == missing.status == 404
    assert hidden.body["error"]["code"] == missing.body["error"]["code"] == "no_such_room"
    hidden_message = hidden.body["error"]["message"].replace(str(private.body["id"]), "N")
    assert hidden_message == missing.body["error"]["message"].replace("99999", "N")


@pytest_twisted.ensureDeferred
async def test_bad_requests_get_one_json_error_each(live_server: LiveServer) -> None:
    alice = live_server.tokens[ALICE]
    cases = [
        (dict(method="GET", path="/api/chat/rooms"), 401, "unauthenticated"),
        (dict(method="GET", path="/api/chat/rooms", token="wrong"), 401, "unauthenticated"),
        (dict(method="GET", path="/api/nothing/here", token=alice), 404, "not_found"),
        (dict(method="DELETE", path="/api/chat/rooms", token=alice), 405, "method_not_allowed"),
        (dict(method="POST", path="/api/chat/rooms", raw=b"{nope", token=alice), 400, "bad_json"),
        (
            dict(method="POST", path="/api/chat/rooms", body={"kind": 3}, token=alice),
            400,
            "invalid_argument",
        ),
        (
            dict(method="POST", path="/api/chat/rooms", body={"kind": "party"}, token=alice),
            400,
            "invalid_input",
        ),
        (
            dict(
                method="POST",
                path="/api/chat/rooms",
                raw=b"kind=public",
                token=alice,
                content_type="application/x-www-form-urlencoded",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            dict(method="GET", path="/api/chat/rooms/1/messages?limit=x", token=alice),
            400,
            "invalid_argument",
        ),
    ]
    for kw, status, code in cases:
        reply = await in_thread(lambda kw=kw: call(live_server, **kw))
        assert (reply.status, reply.body["error"]["code"]) == (status, code), kw
        assert reply.headers["content-type"].startswith("application/json")
        if status == 401:
            assert reply.headers["www-authenticate"].startswith("Bearer")
        if status == 405:
            assert reply.headers["allow"] == "GET, POST"
