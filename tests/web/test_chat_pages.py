"""
The chat pages over real HTTP, without JavaScript: the room list with its
unread counts, posting through the plain form, older history, the public
directory, creating rooms and direct conversations, and rooms one may not
see answering 404.
"""

from __future__ import annotations

import re

import pytest_twisted

from gk.chat.text import make_cursor
from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, CAROL, WebServer


def badge(page: str, room_id: int) -> str:
    """The unread badge of a room in the sidebar: its number, or "" when hidden."""
    found = re.search(rf'data-badge="{room_id}"( hidden)?>(\d+)<', page)
    assert found is not None, f"no badge for room {room_id}"
    return "" if found.group(1) else found.group(2)


@pytest_twisted.ensureDeferred
async def test_unread_counts_plain_form_posts_and_older_history_page_by_page(
    web: WebServer,
) -> None:
    chat = web.app.chat
    alice, bob = web.accounts[ALICE], web.accounts[BOB]
    room = await chat.create_room(alice, "general", "public", [BOB])
    await chat.post(bob, room.id, "first")
    await chat.post(bob, room.id, "second")
    client = await web.client(ALICE)

    rooms = await in_thread(lambda: client.get("/chat"))
    assert rooms.status_code == 200
    assert "general" in rooms.text
    assert badge(rooms.text, room.id) == "2"

    posted = await in_thread(lambda: client.post(f"/chat/{room.id}", {"text": "hi <b>bob</b>"}))
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/chat/{room.id}"
    [newest] = (await chat.history(bob, room.id, limit=1)).messages
    assert (newest.sender, newest.text) == (ALICE, "hi <b>bob</b>")

    page = await in_thread(lambda: client.get(f"/chat/{room.id}"))
    assert page.status_code == 200
    assert "hi &lt;b&gt;bob&lt;/b&gt;" in page.text and "<b>bob</b>" not in page.text
    assert page.text.index("first") < page.text.index("second") < page.text.index("hi &lt;b")
    assert badge(page.text, room.id) == ""  # posting moved alice's read marker

    empty = await in_thread(lambda: client.post(f"/chat/{room.id}", {"text": "   "}))
    assert empty.status_code == 400
    assert "Write a message first." in empty.text

    busy = await chat.create_room(alice, "busy", "public")
    for n in range(45):
        await chat.post(alice, busy.id, f"message number {n:02d}")
    page = await in_thread(lambda: client.get(f"/chat/{busy.id}"))
    assert "message number 44" in page.text and "message number 05" in page.text
    assert "message number 04" not in page.text
    link = re.search(rf'href="/chat/{busy.id}\?before=([^"]+)"', page.text)
    assert link is not None

    older = await in_thread(lambda: client.get(f"/chat/{busy.id}/older?before={link.group(1)}"))
    assert older.status_code == 200
    assert "message number 00" in older.text and "message number 04" in older.text
    assert "message number 05" not in older.text
    assert "start of the conversation" in older.text

    without_js = await in_thread(lambda: client.get(f"/chat/{busy.id}?before={link.group(1)}"))
    assert "message number 00" in without_js.text
    assert "Back to the newest messages" in without_js.text

    bad = await in_thread(lambda: client.get(f"/chat/{busy.id}/older?before=nonsense"))
    assert bad.status_code == 400


@pytest_twisted.ensureDeferred
async def test_rooms_one_may_not_see_are_404_others_are_joined_or_made_from_forms(
    web: WebServer,
) -> None:
    chat = web.app.chat
    alice, bob, carol = web.accounts[ALICE], web.accounts[BOB], web.accounts[CAROL]
    secret = await chat.create_room(alice, "board-secrets", "private", [CAROL])
    lobby = await chat.create_room(alice, "lobby", "public")
    client = await web.client(BOB)

    cursor = make_cursor(10)
    for path in (f"/chat/{secret.id}", f"/chat/{secret.id}/older?before={cursor}", "/chat/99999"):
        answer = await in_thread(lambda path=path: client.get(path))
        assert answer.status_code == 404, path
        assert "board-secrets" not in answer.text
    for path in (f"/chat/{secret.id}", f"/chat/{secret.id}/join"):
        refused = await in_thread(lambda path=path: client.post(path, {"text": "let me in"}))
        assert refused.status_code == 404, path
    assert [r.id for r in await chat.rooms(bob)] == []

    directory = await in_thread(lambda: client.get("/chat"))
    assert "lobby" in directory.text and f'action="/chat/{lobby.id}/join"' in directory.text
    assert "board-secrets" not in directory.text
    preview = await in_thread(lambda: client.get(f"/chat/{lobby.id}"))
    assert preview.status_code == 200
    assert "Join lobby" in preview.text and 'id="chat-form"' not in preview.text

    joined = await in_thread(lambda: client.post(f"/chat/{lobby.id}/join"))
    assert joined.status_code == 303
    assert joined.headers["location"] == f"/chat/{lobby.id}"
    assert [r.id for r in await chat.rooms(bob)] == [lobby.id]
    inside = await in_thread(lambda: client.get(f"/chat/{lobby.id}"))
    assert 'id="chat-form"' in inside.text

    made = await in_thread(
        lambda: client.post("/chat/rooms", {"name": "ops", "kind": "private", "members": CAROL})
    )
    assert made.status_code == 303
    ops = next(r for r in await chat.rooms(carol) if r.name == "ops")
    assert ops.kind == "private"
    assert made.headers["location"] == f"/chat/{ops.id}"
    assert ops.id not in [r.id for r in await chat.rooms(alice)]

    direct = await in_thread(lambda: client.post("/chat/direct", {"email": CAROL}))
    assert direct.status_code == 303
    [dm] = [r for r in await chat.rooms(carol) if r.kind == "direct"]
    assert dm.name == BOB
    again = await in_thread(lambda: client.post("/chat/direct", {"email": CAROL}))
    assert again.headers["location"] == direct.headers["location"] == f"/chat/{dm.id}"

    nobody = await in_thread(lambda: client.post("/chat/direct", {"email": "nobody@example.test"}))
    assert nobody.status_code == 400
    assert "nobody@example.test" in nobody.text
    odd = await in_thread(lambda: client.post("/chat/rooms", {"name": "x", "kind": "secretive"}))
    assert odd.status_code == 400
    assert "Choose a public or a private room." in odd.text
    listing = await in_thread(lambda: client.get("/chat"))
    assert "ops" in listing.text and CAROL in listing.text
