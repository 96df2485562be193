"""
Team chat through L{ChatService}, as its users live it: rooms and direct
conversations, history page by page, edits and tombstones, reactions,
threads, mentions, unread counts, catching up from the change log, and
search that never leaks another room's words.  Every test runs on SQLite
and, when configured, PostgreSQL.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from gk.app import GkApp
from gk.chat import (
    Change,
    ChangeBatch,
    ChatError,
    ChatService,
    InvalidInput,
    MessageInfo,
    NoSuchMessage,
    NoSuchRoom,
    NotAllowed,
)
from gk.events import ChatChanged
from gk.storage.accounts import Account
from tests.chat.conftest import PASSWORD, People


def texts(messages: list[MessageInfo] | tuple[MessageInfo, ...]) -> list[str]:
    return [m.text for m in messages]


async def general(chat: ChatService, people: People) -> int:
    """A public room "general" made by alice, with bob in it."""
    room = await chat.create_room(people.alice, "general", "public", [people.bob.email])
    return room.id


@pytest_twisted.ensureDeferred
async def test_three_people_chat_in_a_public_room(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room = await chat.create_room(alice, "  General  ", "public", ["BOB@example.test"])
    assert (room.name, room.kind, room.role) == ("General", "public", "owner")
    assert [(m.email, m.role) for m in room.members] == [
        ("alice@example.test", "owner"),
        ("bob@example.test", "member"),
    ]

    # Carol finds it in the directory, is told to join before posting, and joins.
    [listed] = await chat.public_rooms(carol)
    assert (listed.id, listed.name, listed.member_count, listed.joined) == (
        room.id,
        "General",
        2,
        False,
    )
    with pytest.raises(NotAllowed, match="join it first"):
        await chat.post(carol, room.id, "hello?")
    with pytest.raises(NotAllowed, match="you are not in General"):
        await chat.leave(carol, room.id)
    joined = await chat.join(carol, room.id)
    assert joined.role == "member" and len(joined.members) == 3
    assert (await chat.join(carol, room.id)).members == joined.members  # joining again: no change

    await chat.post(alice, room.id, "good morning")
    await chat.post(bob, room.id, "morning!")
    last = await chat.post(carol, room.id, "  hi all \r\n ")
    assert (last.sender, last.text, last.room_id, last.edited, last.deleted) == (
        "carol@example.test",
        "hi all",
        room.id,
        None,
        False,
    )

    for person in (alice, bob, carol):
        page = await chat.history(person, room.id)
        assert texts(page.messages) == ["hi all", "morning!", "good morning"]
        assert page.next is None
    [summary] = await chat.rooms(bob)
    assert (summary.id, summary.name, summary.kind, summary.role) == (
        room.id,
        "General",
        "public",
        "member",
    )
    # Carol's: his own never counts, and posting marked alice's as read.
    assert summary.unread == 1
    assert summary.last_activity == last.created

    assert await chat.peers(carol) == sorted([alice.id, bob.id])
    # Everyone in the room was told about each message, as it happened.
    for person in (alice, bob, carol):
        posted = [e for e in people.heard.changes(person) if e.kind == "message.posted"]
        assert [e.payload["message"]["text"] for e in posted] == [
            "good morning",
            "morning!",
            "hi all",
        ]
    assert people.heard.kinds(carol) == ["member.joined"] + ["message.posted"] * 3
    assert "room.created" in people.heard.kinds(bob)


@pytest_twisted.ensureDeferred
async def test_a_private_room_looks_like_no_room_to_others(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room = await chat.create_room(alice, "secret plans", "private", [bob.email])
    message = await chat.post(bob, room.id, "the plan is ready")
    missing = room.id + 1000

    refusals: list[tuple[str, str]] = []
    for room_id in (room.id, missing):
        for attempt in (
            chat.room(carol, room_id),
            chat.history(carol, room_id),
            chat.post(carol, room_id, "let me in"),
            chat.join(carol, room_id),
            chat.leave(carol, room_id),
            chat.add_members(carol, room_id, [carol.email]),
            chat.mark_read(carol, room_id, message.id),
        ):
            with pytest.raises(ChatError) as raised:
                await attempt
            assert type(raised.value) is NoSuchRoom
            refusals.append(
                (type(raised.value).__name__, str(raised.value).replace(str(room_id), "N"))
            )
    # Word for word the same as for a room that does not exist.
    assert refusals[:7] == refusals[7:]

    with pytest.raises(NoSuchMessage):
        await chat.message(carol, message.id)
    with pytest.raises(NoSuchMessage):
        await chat.thread(carol, message.id)
    with pytest.raises(NoSuchMessage):
        await chat.react(carol, message.id, "👀", True)
    with pytest.raises(NoSuchRoom):
        await chat.post(carol, room.id, "x", reply_to=message.id)
    assert await chat.public_rooms(carol) == []
    assert await chat.rooms(carol) == []
    assert await chat.peers(carol) == []
    assert await chat.peers(alice) == [bob.id]
    assert await chat.search(carol, "plan") == []
    assert people.heard.changes(carol) == []
    # Admins are no exception.
    admin = await app.accounts.create_user("root@example.test", PASSWORD, is_admin=True)
    with pytest.raises(NoSuchRoom):
        await chat.history(admin, room.id)


@pytest_twisted.ensureDeferred
async def test_a_direct_conversation_created_twice_is_one_room(app: GkApp, people: People) -> None:
    chat, alice, bob = app.chat, people.alice, people.bob
    first = await chat.create_room(alice, "", "direct", [bob.email])
    people.heard.clear()
    again = await chat.create_room(bob, "whatever", "direct", ["Alice@Example.TEST", bob.email])
    assert again.id == first.id
    assert people.heard.events == []  # nothing new happened

    assert (first.name, again.name) == ("bob@example.test", "alice@example.test")
    await chat.post(bob, first.id, "lunch?")
    assert [(r.name, r.kind, r.unread) for r in await chat.rooms(alice)] == [
        ("bob@example.test", "direct", 1)
    ]
    assert await chat.public_rooms(alice) == []

    with pytest.raises(NotAllowed):
        await chat.leave(alice, first.id)
    with pytest.raises(NotAllowed):
        await chat.add_members(alice, first.id, [people.carol.email])
    with pytest.raises(NoSuchRoom):
        await chat.history(people.carol, first.id)
    with pytest.raises(InvalidInput, match="one other person"):
        await chat.create_room(alice, "", "direct", [alice.email])
    with pytest.raises(InvalidInput, match="one other person"):
        await chat.create_room(alice, "", "direct", [bob.email, people.carol.email])
    # Alice and carol have their own conversation.
    other = await chat.create_room(alice, "", "direct", [people.carol.email])
    assert other.id != first.id


@pytest_twisted.ensureDeferred
async def test_history_pages_back_without_duplicates_or_gaps(app: GkApp, people: People) -> None:
    chat, alice, bob = app.chat, people.alice, people.bob
    room_id = await general(chat, people)
    posted = [await chat.post(alice if i % 2 else bob, room_id, f"message {i}") for i in range(25)]

    pages, cursor = [], None
    while True:
        page = await chat.history(bob, room_id, before=cursor, limit=10)
        pages.append(page.messages)
        cursor = page.next
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = [m.id for p in pages for m in p]
    assert seen == [m.id for m in reversed(posted)]

    assert texts((await chat.history(bob, room_id, limit=1)).messages) == ["message 24"]
    for bad_cursor in ("nonsense", "", "YmVmb3JlOjA", "x" * 100):
        with pytest.raises(InvalidInput, match="cursor"):
            await chat.history(bob, room_id, before=bad_cursor)
    for bad_limit in (0, 201, -1):
        with pytest.raises(InvalidInput, match="limit"):
            await chat.history(bob, room_id, limit=bad_limit)


@pytest_twisted.ensureDeferred
async def test_only_the_sender_edits_or_deletes_and_deletion_leaves_a_tombstone(
    app: GkApp, people: People
) -> None:
    chat, alice, bob = app.chat, people.alice, people.bob
    room_id = await general(chat, people)
    typo = await chat.post(alice, room_id, "the deploi is done")
    await chat.react(bob, typo.id, "🎉", True)

    with pytest.raises(NotAllowed, match="your own"):
        await chat.edit(bob, typo.id, "hacked")
    with pytest.raises(NotAllowed, match="your own"):
        await chat.delete(bob, typo.id)

    fixed = await chat.edit(alice, typo.id, "the deploy is done")
    assert (fixed.id, fixed.text) == (typo.id, "the deploy is done")
    assert fixed.edited is not None and fixed.edited >= fixed.created
    assert (await chat.edit(alice, typo.id, "the deploy is done")).edited == fixed.edited
    assert [m.id for m in await chat.search(bob, "deploy")] == [typo.id]

    later = await chat.post(bob, room_id, "great")
    tombstone = await chat.delete(alice, typo.id)
    assert (tombstone.id, tombstone.text, tombstone.deleted) == (typo.id, "", True)
    assert tombstone.reactions == {} and tombstone.mentions == ()
    assert (await chat.delete(alice, typo.id)) == tombstone  # again: nothing changes

    history = (await chat.history(bob, room_id)).messages
    assert [(m.id, m.text, m.deleted) for m in history] == [
        (later.id, "great", False),
        (typo.id, "", True),
    ]
    assert await chat.search(bob, "deploy") == []
    with pytest.raises(NoSuchMessage, match="deleted"):
        await chat.edit(alice, typo.id, "back from the dead")
    with pytest.raises(NoSuchMessage, match="deleted"):
        await chat.react(bob, typo.id, "🎉", False)
    deleted = [e for e in people.heard.changes(bob) if e.kind == "message.deleted"]
    assert [e.payload["message"] for e in deleted] == [tombstone.to_json()]


@pytest_twisted.ensureDeferred
async def test_reactions_go_on_and_off_once_per_person_and_emoji(
    app: GkApp, people: People
) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room_id = await general(chat, people)
    await chat.join(carol, room_id)
    message = await chat.post(alice, room_id, "ship it?")
    people.heard.clear()

    await chat.react(bob, message.id, "👍", True)
    await chat.react(bob, message.id, "👍", True)  # idempotent
    await chat.react(carol, message.id, " 👍 ", True)
    after = await chat.react(alice, message.id, ":tada:", True)
    assert after.reactions == {
        "👍": ("bob@example.test", "carol@example.test"),
        ":tada:": ("alice@example.test",),
    }
    assert after.to_json()["reactions"] == {
        "👍": ["bob@example.test", "carol@example.test"],
        ":tada:": ["alice@example.test"],
    }

    await chat.react(bob, message.id, "👍", False)
    final = await chat.react(bob, message.id, "👍", False)  # idempotent
    assert final.reactions == {"👍": ("carol@example.test",), ":tada:": ("alice@example.test",)}
    assert (await chat.message(alice, message.id)).reactions == final.reactions

    # Only real changes were logged and announced: on, on, on, off.
    changes = [e for e in people.heard.changes(alice) if e.kind == "reaction.changed"]
    assert [(e.payload["email"], e.payload["emoji"], e.payload["on"]) for e in changes] == [
        ("bob@example.test", "👍", True),
        ("carol@example.test", "👍", True),
        ("alice@example.test", ":tada:", True),
        ("bob@example.test", "👍", False),
    ]
    for bad in ("", "   ", "x" * 33, "two words", "a\x00"):
        with pytest.raises(InvalidInput, match="reaction"):
            await chat.react(bob, message.id, bad, True)


@pytest_twisted.ensureDeferred
async def test_replies_make_a_thread(app: GkApp, people: People) -> None:
    chat, alice, bob = app.chat, people.alice, people.bob
    room_id = await general(chat, people)
    root = await chat.post(alice, room_id, "who reviews the release notes?")
    await chat.post(alice, room_id, "unrelated")
    first = await chat.post(bob, room_id, "I will", reply_to=root.id)
    # A reply to a reply joins the root's thread.
    second = await chat.post(alice, room_id, "thanks!", reply_to=first.id)
    assert (first.reply_to, second.reply_to) == (root.id, root.id)

    for member, any_of_it in ((alice, root.id), (bob, second.id)):
        thread = await chat.thread(member, any_of_it)
        assert thread.root.id == root.id and thread.root.reply_count == 2
        assert [m.id for m in thread.replies] == [first.id, second.id]
    assert thread.to_json()["root"]["reply_count"] == 2

    await chat.delete(alice, second.id)
    thread = await chat.thread(bob, root.id)
    assert thread.root.reply_count == 1
    assert [(m.id, m.deleted) for m in thread.replies] == [(first.id, False), (second.id, True)]

    other = await chat.create_room(alice, "other", "private", [bob.email])
    elsewhere = await chat.post(alice, other.id, "over here")
    with pytest.raises(NoSuchMessage):
        await chat.post(bob, room_id, "cross-room", reply_to=elsewhere.id)
    with pytest.raises(NoSuchMessage):
        await chat.post(bob, room_id, "nowhere", reply_to=10**9)
    with pytest.raises(InvalidInput, match="deleted"):
        await chat.post(bob, room_id, "to a ghost", reply_to=second.id)


@pytest_twisted.ensureDeferred
async def test_mentions_notify_the_mentioned_members_only(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room_id = await general(chat, people)
    await chat.join(carol, room_id)
    outsider = await app.accounts.create_user("dave@example.test", PASSWORD)

    message = await chat.post(
        alice,
        room_id,
        "@bob please check, and @dave@example.test is not here; mail bob@example.test",
    )
    assert message.mentions == ("bob@example.test",)
    [mention] = people.heard.mentions()
    assert (mention.user_id, mention.room_id, mention.message_id, mention.sender) == (
        bob.id,
        room_id,
        message.id,
        "alice@example.test",
    )
    assert mention.text == message.text
    assert mention.position == people.heard.changes(bob)[-1].position
    assert people.heard.mentions(outsider) == []

    # Editing tells only those newly mentioned; the sender never tells themselves.
    people.heard.clear()
    edited = await chat.edit(alice, message.id, "@bob and @Carol@Example.test, and me: @alice.")
    assert edited.mentions == ("alice@example.test", "bob@example.test", "carol@example.test")
    assert [m.user_id for m in people.heard.mentions()] == [carol.id]

    # A local part shared by two members is ambiguous: no one is mentioned.
    await app.accounts.add_domain("other.test")
    other_bob = await app.accounts.create_user("bob@other.test", PASSWORD)
    await chat.join(other_bob, room_id)
    people.heard.clear()
    ambiguous = await chat.post(carol, room_id, "hey @bob")
    assert ambiguous.mentions == ()
    assert people.heard.mentions() == []
    exact = await chat.post(carol, room_id, "hey @bob@other.test")
    assert exact.mentions == ("bob@other.test",)
    assert [m.user_id for m in people.heard.mentions()] == [other_bob.id]


@pytest_twisted.ensureDeferred
async def test_unread_counts_follow_read_markers(app: GkApp, people: People) -> None:
    chat, alice, bob = app.chat, people.alice, people.bob
    room_id = await general(chat, people)

    async def unread(who: Account) -> int:
        [summary] = await chat.rooms(who)
        return summary.unread

    first = await chat.post(alice, room_id, "one")
    second = await chat.post(alice, room_id, "two")
    third = await chat.post(alice, room_id, "three")
    assert (await unread(bob), await unread(alice)) == (3, 0)

    assert await chat.mark_read(bob, room_id, second.id) == 1
    assert await unread(bob) == 1
    # Never backwards.
    assert await chat.mark_read(bob, room_id, first.id) == 1
    assert (await chat.rooms(bob))[0].last_read == second.id

    # A deleted message is not unread; posting marks everything up to it read.
    await chat.delete(alice, third.id)
    assert await unread(bob) == 0
    await chat.post(alice, room_id, "four")
    assert await unread(bob) == 1
    mine = await chat.post(bob, room_id, "read it all")
    assert await unread(bob) == 0
    assert (await chat.rooms(bob))[0].last_read == mine.id

    # Markers are private: only bob heard of his.
    assert [e.payload for e in people.heard.changes(bob) if e.kind == "read.marked"] == [
        {"message_id": second.id}
    ]
    assert "read.marked" not in people.heard.kinds(alice)

    other = await chat.create_room(alice, "other", "public")
    elsewhere = await chat.post(alice, other.id, "elsewhere")
    with pytest.raises(NoSuchMessage):
        await chat.mark_read(bob, room_id, elsewhere.id)


@pytest_twisted.ensureDeferred
async def test_changes_since_catches_up_after_being_away(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    start = await chat.position(carol)
    assert (await chat.changes_since(carol, start)).changes == ()

    # While carol is away: a room with her in it, talk, an edit, a reaction,
    # and talk in a room she is not in.
    room = await chat.create_room(alice, "ops", "private", [bob.email, carol.email])
    hidden = await chat.create_room(alice, "hidden", "private", [bob.email])
    hello = await chat.post(alice, room.id, "deploy at 5")
    await chat.post(alice, hidden.id, "not for carol")
    await chat.edit(alice, hello.id, "deploy at 6")
    await chat.react(bob, hello.id, "👍", True)
    reply = await chat.post(bob, room.id, "ok", reply_to=hello.id)
    await chat.mark_read(bob, room.id, reply.id)  # bob's own business

    batch = await chat.changes_since(carol, start)
    assert not batch.has_more
    assert [c.kind for c in batch.changes] == [
        "room.created",
        "message.posted",
        "message.edited",
        "reaction.changed",
        "message.posted",
    ]
    positions = [c.position for c in batch.changes]
    assert positions == sorted(positions) and batch.position == await chat.position(carol)
    assert batch.changes[0].payload["by"] == alice.email
    created = batch.changes[0].payload["room"]
    assert (created["name"], created["role"]) == ("ops", "member")
    assert [m["email"] for m in created["members"]] == [alice.email, bob.email, carol.email]
    # Messages come as they are now: the first post already shows the edit.
    assert batch.changes[1].payload["message"]["text"] == "deploy at 6"
    assert batch.changes[3].payload["message"] == batch.changes[1].payload["message"]
    # The same payloads as the events that announced them.
    heard = {e.position: e for e in people.heard.changes(carol)}
    for change in batch.changes:
        assert heard[change.position].kind == change.kind
        assert heard[change.position].room_id == change.room_id
    assert heard[positions[-1]].payload == batch.changes[-1].payload
    assert batch.to_json()["changes"][0]["kind"] == "room.created"

    # Page by page, with a limit: the same changes, none twice, none lost.
    paged: list[Change] = []
    at = start
    while True:
        page = await chat.changes_since(carol, at, limit=2)
        paged.extend(page.changes)
        at = page.position
        if not page.has_more:
            break
    assert [c.position for c in paged] == positions
    assert (await chat.changes_since(carol, at)).changes == ()

    # Removed from the room, carol still hears of it, then nothing more.
    mark = await chat.position(carol)
    await chat.remove_member(alice, room.id, carol.email)
    await chat.post(alice, room.id, "after carol")
    after = await chat.changes_since(carol, mark)
    assert [(c.kind, c.payload["email"], c.payload["by"]) for c in after.changes] == [
        ("member.left", carol.email, alice.email)
    ]
    assert after.changes[0].payload["room"] == {"id": room.id, "name": "ops", "kind": "private"}
    with pytest.raises(InvalidInput, match="ahead"):
        await chat.changes_since(carol, after.position + 10)
    for bad_limit in (0, 1001):
        with pytest.raises(InvalidInput, match="limit"):
            await chat.changes_since(carol, 0, limit=bad_limit)
    with pytest.raises(InvalidInput):
        await chat.changes_since(carol, -1)


@pytest_twisted.ensureDeferred
async def test_search_finds_words_in_the_users_rooms_only(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    ops = await chat.create_room(alice, "ops", "public", [bob.email])
    team = await chat.create_room(bob, "team", "private", [alice.email, carol.email])
    secret = await chat.create_room(alice, "secret", "private", [bob.email])

    deployed = await chat.post(alice, ops.id, "The deployment of the Café server is done")
    again = await chat.post(bob, team.id, "another DEPLOYMENT tomorrow, café closed")
    await chat.post(alice, secret.id, "secret deployment of the café server")
    await chat.post(bob, ops.id, "unrelated chatter")

    assert [m.id for m in await chat.search(bob, "deployment")] == [
        # secret's message is bob's too; newest first
        (await chat.history(bob, secret.id)).messages[0].id,
        again.id,
        deployed.id,
    ]
    # Carol is in team only.
    assert [m.id for m in await chat.search(carol, "deployment")] == [again.id]
    assert [m.id for m in await chat.search(carol, "cafe")] == [again.id]
    assert await chat.search(carol, "server") == []
    # Every word must be there; the last may be the start of a word.
    assert [m.id for m in await chat.search(alice, "CAFÉ serv")] == [
        (await chat.history(alice, secret.id)).messages[0].id,
        deployed.id,
    ]
    assert [m.id for m in await chat.search(alice, "deploy")] == [
        m.id for m in await chat.search(alice, "deployment")
    ]
    assert await chat.search(alice, "deploy closed tomorrowish") == []
    assert [m.id for m in await chat.search(alice, "closed deployment", limit=1)] == [again.id]
    for bad in ("", "  ?! ", " ".join(f"w{i}" for i in range(11))):
        with pytest.raises(InvalidInput, match="search"):
            await chat.search(alice, bad)
    # Leaving a room takes its messages out of one's results.
    await chat.leave(carol, team.id)
    assert await chat.search(carol, "deployment") == []


@pytest_twisted.ensureDeferred
async def test_owners_manage_members_and_ownership_passes_on(app: GkApp, people: People) -> None:
    chat, alice, bob, carol = app.chat, people.alice, people.bob, people.carol
    room = await chat.create_room(alice, "project", "private", [bob.email])

    with pytest.raises(NotAllowed, match="only the owner"):
        await chat.add_members(bob, room.id, [carol.email])
    with pytest.raises(
        InvalidInput, match=r"no such user: nobody@example\.test, ghost@example\.test"
    ):
        await chat.add_members(
            alice, room.id, ["nobody@example.test", carol.email, "ghost@example.test"]
        )
    assert len((await chat.room(alice, room.id)).members) == 2  # nothing was added

    people.heard.clear()
    grown = await chat.add_members(alice, room.id, [carol.email, bob.email])
    assert [m.email for m in grown.members] == [alice.email, bob.email, carol.email]
    assert people.heard.kinds(carol) == ["member.joined"]
    assert people.heard.changes(carol)[0].payload == {
        "room": {"id": room.id, "name": "project", "kind": "private"},
        "email": carol.email,
        "role": "member",
        "by": alice.email,
    }
    with pytest.raises(InvalidInput, match="not in"):
        await chat.remove_member(alice, room.id, "nobody@example.test")
    with pytest.raises(InvalidInput, match="leave"):
        await chat.remove_member(alice, room.id, alice.email)
    with pytest.raises(NotAllowed):
        await chat.remove_member(bob, room.id, carol.email)

    people.heard.clear()
    await chat.remove_member(alice, room.id, carol.email)
    assert people.heard.kinds(carol) == ["member.left"]
    with pytest.raises(NoSuchRoom):
        await chat.room(carol, room.id)

    # The owner leaves: the longest-standing member takes over.
    await chat.leave(alice, room.id)
    assert people.heard.kinds(bob)[-2:] == ["member.left", "member.role"]
    [summary] = await chat.rooms(bob)
    assert summary.role == "owner"
    assert [m.email for m in (await chat.room(bob, room.id)).members] == [bob.email]
    with pytest.raises(NoSuchRoom):
        await chat.history(alice, room.id)


@pytest_twisted.ensureDeferred
async def test_input_is_checked_before_anything_is_stored(app: GkApp, people: People) -> None:
    chat, alice = app.chat, people.alice
    room_id = await general(chat, people)
    position = await chat.position(alice)

    for name in ("", "   ", "x" * 81, "line\nbreak", "bell\x07"):
        with pytest.raises(InvalidInput, match="name"):
            await chat.create_room(alice, name, "public")
    assert (await chat.create_room(alice, "é" * 80, "public")).name == "é" * 80
    position = await chat.position(alice)
    with pytest.raises(InvalidInput, match="public, private or direct"):
        await chat.create_room(alice, "room", "secret")
    with pytest.raises(InvalidInput, match=r"no such user: nobody@example\.test"):
        await chat.create_room(alice, "room", "private", ["nobody@example.test"])
    with pytest.raises(InvalidInput, match="not an address"):
        await chat.create_room(alice, "room", "private", ["not an address"])

    for text in ("", " \n\t ", "x" * 10_001, "null\x00byte"):
        with pytest.raises(InvalidInput, match="message"):
            await chat.post(alice, room_id, text)
    longest = await chat.post(alice, room_id, "  " + "y" * 10_000 + "\n")
    assert len(longest.text) == 10_000
    with pytest.raises(InvalidInput):
        await chat.edit(alice, longest.id, "")
    for room_id_wrong in (0, -5, 2**70):
        with pytest.raises(NoSuchRoom):
            await chat.post(alice, room_id_wrong, "hi")
    for message_id_wrong in (0, 2**70):
        with pytest.raises(NoSuchMessage):
            await chat.message(alice, message_id_wrong)
    # Only the one good post was logged.
    assert await chat.position(alice) == position + 1
    assert isinstance(InvalidInput("x"), ChatError) and InvalidInput.code == "invalid_input"


@pytest_twisted.ensureDeferred
async def test_events_are_published_after_the_commit_with_the_logs_payload(
    app: GkApp, people: People
) -> None:
    chat, alice, bob = app.chat, people.alice, people.bob
    start = await chat.position(bob)
    lookups: list[Deferred[ChangeBatch]] = []

    def look_it_up(event: ChatChanged) -> None:
        # Published after the commit: a reader finds the change at once.
        lookups.append(Deferred.fromCoroutine(chat.changes_since(bob, event.position - 1, limit=1)))

    app.events.subscribe(ChatChanged, look_it_up, user_id=bob.id)
    room_id = await general(chat, people)
    message = await chat.post(alice, room_id, "hello @bob")
    await chat.react(bob, message.id, "👋", True)

    heard = people.heard.changes(bob)
    assert [e.kind for e in heard] == ["room.created", "message.posted", "reaction.changed"]
    found = [(await lookup).changes[0] for lookup in lookups]
    assert [c.position for c in found] == [e.position for e in heard]

    batch = await chat.changes_since(bob, start)
    assert [(c.position, c.kind, c.room_id) for c in batch.changes] == [
        (e.position, e.kind, e.room_id) for e in heard
    ]
    # The newest change's payload is the same both ways (older ones show
    # their message as it is now, with the reaction).
    assert heard[-1].payload == batch.changes[-1].payload
    assert heard[-1].payload["message"]["reactions"] == {"👋": ["bob@example.test"]}
    assert batch.changes[1].payload == {"message": heard[-1].payload["message"]}
    assert [m.user_id for m in people.heard.mentions()] == [bob.id]
