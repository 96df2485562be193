"""
Chat over C{/ws} with the independent C{websockets} client: users
chatting in a room and a DM, history pages, edits, deletes, reactions,
threads, mentions, unread counts, typing, presence, and a client that
reconnects and catches up from its last position.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.ws.conftest import ALICE, BOB, CAROL, LiveServer, ServerError, WsClient, aio


async def presence_of(client: WsClient, email: str) -> str:
    """The status in the next presence event about C{email} (others are skipped)."""
    while True:
        event = await client.event("presence")
        if event["data"]["user"] == email:
            return str(event["data"]["status"])


@pytest_twisted.ensureDeferred
async def test_two_users_chat_in_a_room_and_a_dm(live_server: LiveServer) -> None:
    alice = await live_server.connect(ALICE)
    bob = await live_server.connect(BOB)
    carol = await live_server.connect(CAROL)
    hello = await aio(alice.call("hello"))
    assert hello["protocol"] == 1 and hello["user"] == ALICE

    room = await aio(alice.call("chat.create_room", name="general", kind="public", members=[BOB]))
    assert {m["email"] for m in room["members"]} == {ALICE, BOB}
    posted = await aio(alice.call("chat.post", room_id=room["id"], text="hello bob"))
    event = await aio(bob.event("chat.message.posted"))
    assert event["data"]["room_id"] == room["id"]
    assert event["position"] > hello["position"]
    # Alice's own socket hears it too (her other tabs); carol, not in the room, does not.
    assert (await aio(alice.event("chat.message.posted")))["data"]["message"]["id"] == posted["id"]
    await aio(carol.no_event("chat.message.posted"))
    [bobs_room] = (await aio(bob.call("chat.rooms")))["rooms"]
    assert bobs_room["unread"] == 1
    assert (await aio(bob.call("chat.read", room_id=room["id"], message_id=posted["id"]))) == {
        "unread": 0
    }

    dm = await aio(bob.call("chat.create_room", kind="direct", members=[CAROL]))
    assert dm["kind"] == "direct"
    await aio(bob.call("chat.post", room_id=dm["id"], text="psst"))
    await aio(carol.event("chat.message.posted"))
    await aio(alice.no_event("chat.message.posted"))
    again = await aio(carol.call("chat.create_room", kind="direct", members=[BOB]))
    assert again["id"] == dm["id"]
    # Alice cannot read the DM: it looks like no room at all.
    with pytest.raises(ServerError) as refused:
        await aio(alice.call("chat.history", room_id=dm["id"]))
    assert refused.value.code == "no_such_room"


@pytest_twisted.ensureDeferred
async def test_history_edit_delete_reactions_and_threads(live_server: LiveServer) -> None:
    alice = await live_server.connect(ALICE)
    bob = await live_server.connect(BOB)
    room = await aio(alice.call("chat.create_room", name="dev", kind="private", members=[BOB]))
    ids = []
    for n in range(7):
        ids.append((await aio(alice.call("chat.post", room_id=room["id"], text=f"m{n}")))["id"])

    seen, before = [], None
    while True:
        page = await aio(bob.call("chat.history", room_id=room["id"], limit=3, before=before))
        seen += [m["id"] for m in page["messages"]]
        before = page["next"]
        if before is None:
            break
    assert seen == ids[::-1]

    edited = await aio(alice.call("chat.edit", message_id=ids[0], text="m0 (fixed)"))
    assert edited["text"] == "m0 (fixed)" and edited["edited"]
    await aio(bob.event("chat.message.edited"))
    with pytest.raises(ServerError) as refused:
        await aio(bob.call("chat.edit", message_id=ids[0], text="not mine"))
    assert refused.value.code == "not_allowed"
    await aio(alice.call("chat.delete", message_id=ids[1]))
    await aio(bob.event("chat.message.deleted"))
    page = await aio(bob.call("chat.history", room_id=room["id"], limit=10))
    tombstone = next(m for m in page["messages"] if m["id"] == ids[1])
    assert tombstone["deleted"] and tombstone["text"] == ""

    for _ in range(2):  # twice is once
        reacted = await aio(bob.call("chat.react", message_id=ids[2], emoji="👍"))
    assert reacted["reactions"] == {"👍": [BOB]}
    unreacted = await aio(bob.call("chat.react", message_id=ids[2], emoji="👍", on=False))
    assert unreacted["reactions"] == {}

    reply = await aio(bob.call("chat.post", room_id=room["id"], text="re", reply_to=ids[3]))
    thread = await aio(alice.call("chat.thread", message_id=reply["id"]))
    assert thread["root"]["id"] == ids[3]
    assert [m["id"] for m in thread["replies"]] == [reply["id"]]


@pytest_twisted.ensureDeferred
async def test_mentions_typing_and_presence(live_server: LiveServer) -> None:
    alice = await live_server.connect(ALICE)
    bob = await live_server.connect(BOB)
    room = await aio(
        alice.call("chat.create_room", name="team", kind="public", members=[BOB, CAROL])
    )
    # Carol connects after: her presence goes to the others of her rooms.
    carol = await live_server.connect(CAROL)
    assert await aio(presence_of(alice, CAROL)) == "online"

    await aio(alice.call("chat.post", room_id=room["id"], text="@bob have a look"))
    mention = await aio(bob.event("chat.mention"))
    assert mention["data"]["from"] == ALICE and mention["data"]["room_id"] == room["id"]
    await aio(carol.no_event("chat.mention"))

    await aio(bob.call("chat.typing", room_id=room["id"]))
    typing = await aio(alice.event("chat.typing"))
    assert typing["data"] == {"room_id": room["id"], "user": BOB}
    await aio(carol.event("chat.typing"))

    assert (await aio(carol.call("presence.set", status="away"))) == {"status": "away"}
    assert await aio(presence_of(alice, CAROL)) == "away"
    statuses = await aio(alice.call("presence.get", room_id=room["id"]))
    assert statuses == {ALICE: "online", BOB: "online", CAROL: "away"}
    await aio(carol.close())
    assert await aio(presence_of(alice, CAROL)) == "offline"


@pytest_twisted.ensureDeferred
async def test_a_client_that_reconnects_gets_what_it_missed(live_server: LiveServer) -> None:
    alice = await live_server.connect(ALICE)
    bob = await live_server.connect(BOB)
    room = await aio(alice.call("chat.create_room", name="ops", kind="private", members=[BOB]))
    await aio(alice.call("chat.post", room_id=room["id"], text="before"))
    last_seen = (await aio(bob.event("chat.message.posted")))["position"]
    await aio(bob.close())

    missed = []
    for n in range(5):
        missed.append(await aio(alice.call("chat.post", room_id=room["id"], text=f"missed {n}")))
    await aio(alice.call("chat.edit", message_id=missed[0]["id"], text="missed 0, edited"))

    bob = await live_server.connect(BOB)
    found, since, more = [], last_seen, True
    while more:
        batch = await aio(bob.call("sync", since=since, limit=2))
        found += batch["events"]
        since, more = batch["position"], batch["more"]
    assert [e["event"] for e in found] == ["chat.message.posted"] * 5 + ["chat.message.edited"]
    positions = [e["position"] for e in found]
    assert positions == sorted(positions) and positions[0] > last_seen
    # Nothing more, and a position from the future is refused.
    assert (await aio(bob.call("sync", since=since)))["events"] == []
    with pytest.raises(ServerError) as refused:
        await aio(bob.call("sync", since=since + 1000))
    assert refused.value.code == "invalid_input"
