"""
The assistant's mail tools that act, called through the registry as the
conversation loop calls them: sending to a local user and to a remote
address, nothing happening without the user's confirmation, a threaded
reply, moving, flagging and deleting.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_twisted

from gk.assistant.tools import ToolError
from gk.storage import queue_store
from tests.assistant.conftest import ALICE, BOB, CAROL, AssistantServer
from tests.assistant.test_mail_tools import deliver, error, letter, ok, subjects


async def raw(server: AssistantServer, email_address: str, folder: str) -> list[EmailMessage]:
    """Every message of a folder, parsed, oldest first."""
    account = server.accounts[email_address]
    selection = await server.app.mailboxes.select(account, folder)
    found = []
    for uid in selection.uids:
        data = await server.app.mailboxes.read(account, folder, uid)
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


async def summary_of(server: AssistantServer, name: str, arguments: dict[str, Any]) -> str | None:
    """What the user would be asked to confirm for this call (None: nothing)."""
    prepared = await server.tools.prepare(server.context(ALICE), name, arguments)
    return prepared.summary


@pytest_twisted.ensureDeferred
async def test_send_to_a_local_user_who_finds_it_while_a_copy_stays_in_sent(
    gk_server: AssistantServer,
) -> None:
    arguments = {
        "to": [f"Bob <{BOB}>"],
        "bcc": [CAROL],
        "subject": "Friday lunch",
        "body": "Hi Bob,\n\nLunch at noon on Friday? Héloïse is coming too.\n\nAlice",
    }
    summary = await summary_of(gk_server, "send_email", arguments)
    assert summary == (
        f"Send an email to {BOB}; bcc {CAROL}; subject 'Friday lunch'; "
        "body 'Hi Bob, Lunch at noon on Friday? Héloïse is coming too. Alice'"
    )

    sent = await ok(gk_server, "send_email", arguments, approve=True)

    assert sent["delivered"] == [BOB, CAROL] and sent["queued"] == []
    assert sent["message_id"].endswith("@mail.example.test>")
    found = await ok(gk_server, "search_emails", {"sender": "alice"}, BOB)
    [item] = found["emails"]
    assert item["subject"] == "Friday lunch" and item["folder"] == "INBOX"
    read = await ok(gk_server, "read_email", {"id": item["id"]}, BOB)
    assert read["text"] == arguments["body"]
    assert read["message_id"] == sent["message_id"]
    [received] = await raw(gk_server, BOB, "INBOX")
    assert received["Date"].datetime.utcoffset().total_seconds() == 3600  # Paris, in November
    assert received["Bcc"] is None
    [hidden] = await raw(gk_server, CAROL, "INBOX")
    assert hidden["Subject"] == "Friday lunch" and hidden["Bcc"] is None

    [copy] = (await ok(gk_server, "list_emails", {"folder": "Sent"}))["emails"]
    assert copy["id"] == sent["sent_copy"]
    assert copy["unread"] is False
    [kept] = await raw(gk_server, ALICE, "Sent")
    assert kept["Bcc"] == CAROL  # the sender's own record keeps who got a hidden copy
    assert kept["Message-ID"] == sent["message_id"]


@pytest_twisted.ensureDeferred
async def test_send_to_a_remote_address_goes_to_the_queue(gk_server: AssistantServer) -> None:
    sent = await ok(
        gk_server,
        "send_email",
        {"to": ["dave@elsewhere.test"], "subject": "Devis été", "body": "Bonjour Dave"},
        approve=True,
    )

    assert sent["queued"] == ["dave@elsewhere.test"] and sent["delivered"] == []
    [entry] = await gk_server.app.db.read(queue_store.list_queue)
    assert entry.sender == ALICE
    assert [r[0] for r in entry.recipients] == ["dave@elsewhere.test"]
    spooled = gk_server.app.queue.path_of(entry.queue_id).read_bytes()
    parsed = email.message_from_bytes(spooled, policy=email.policy.default)
    assert parsed["Subject"] == "Devis été"
    assert spooled.isascii()  # RFC 2047 and quoted-printable: any server takes it
    assert parsed["Message-ID"] == sent["message_id"]


@pytest_twisted.ensureDeferred
async def test_nothing_is_sent_without_the_users_yes(gk_server: AssistantServer) -> None:
    arguments = {"to": [BOB, "dave@elsewhere.test"], "subject": "hi", "body": "hello"}

    outcome = await gk_server.call("send_email", arguments)  # not approved

    assert outcome.is_error
    assert "needs the user's confirmation" in outcome.text
    assert await raw(gk_server, BOB, "INBOX") == []
    assert await gk_server.app.db.read(queue_store.list_queue) == []
    assert await raw(gk_server, ALICE, "Sent") == []

    # What cannot go is refused before the user is asked at all.
    with pytest.raises(ToolError, match=re.escape("nobody@example.test: no such address here")):
        await summary_of(gk_server, "send_email", {**arguments, "to": ["nobody@example.test"]})
    with pytest.raises(ToolError, match=re.escape(f"may not send as {BOB}")):
        await summary_of(gk_server, "send_email", {**arguments, "from": BOB})
    with pytest.raises(ToolError, match="not an email address"):
        await summary_of(gk_server, "send_email", {**arguments, "to": ["Bob Smith"]})
    assert "invalid arguments for send_email: to:" in await error(
        gk_server, "send_email", {**arguments, "to": []}
    )


@pytest_twisted.ensureDeferred
async def test_reply_threads_under_the_original_and_marks_it_answered(
    gk_server: AssistantServer,
) -> None:
    await deliver(
        gk_server,
        ALICE,
        letter(
            f"Bob <{BOB}>",
            f"{ALICE}, Carol <{CAROL}>",
            "Plans",
            "Shall we go hiking on Sunday?",
            message_id="<plans-2@example.test>",
            extra={"References": "<plans-1@example.test>"},
        ),
    )
    [original] = (await ok(gk_server, "list_emails", {}))["emails"]
    arguments = {"id": original["id"], "body": "Yes, count me in!", "reply_all": True}

    summary = await summary_of(gk_server, "reply_email", arguments)
    assert summary == (
        f"Reply to the email 'Plans' from Bob <{BOB}>: to {BOB}; cc {CAROL}; "
        "subject 'Re: Plans'; body 'Yes, count me in!'"
    )
    replied = await ok(gk_server, "reply_email", arguments, approve=True)

    assert replied["to"] == [BOB] and replied["cc"] == [CAROL]  # never back to alice herself
    assert replied["in_reply_to"] == "<plans-2@example.test>"
    [reply] = await raw(gk_server, BOB, "INBOX")
    assert reply["Subject"] == "Re: Plans"
    assert reply["In-Reply-To"] == "<plans-2@example.test>"
    assert reply["References"] == "<plans-1@example.test> <plans-2@example.test>"
    body = reply.get_body()
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert text.startswith("Yes, count me in!\n\nOn 2026-11-19T15:00:00+01:00, Bob <")
    assert "> Shall we go hiking on Sunday?" in text
    assert [m["Subject"] for m in await raw(gk_server, CAROL, "INBOX")] == ["Re: Plans"]
    [marked] = (await ok(gk_server, "list_emails", {}))["emails"]
    assert marked["answered"] is True

    # Bob answers back: "Re: Plans" stays "Re: Plans", the thread grows.
    [in_bob] = (await ok(gk_server, "list_emails", {}, BOB))["emails"]
    await ok(gk_server, "reply_email", {"id": in_bob["id"], "body": "Great."}, BOB, approve=True)
    back = (await raw(gk_server, ALICE, "INBOX"))[-1]
    assert back["Subject"] == "Re: Plans"
    assert back["To"] == ALICE and back["Cc"] is None  # reply_all was not asked
    assert back["References"].split()[-1] == replied["message_id"]


@pytest_twisted.ensureDeferred
async def test_a_reply_to_mail_for_an_alias_comes_from_that_alias(
    gk_server: AssistantServer,
) -> None:
    await gk_server.app.accounts.add_alias("sales@example.test", ALICE)
    await deliver(gk_server, ALICE, letter(BOB, "sales@example.test", "Quote please"))
    [original] = (await ok(gk_server, "list_emails", {}))["emails"]

    replied = await ok(
        gk_server, "reply_email", {"id": original["id"], "body": "Here."}, approve=True
    )

    assert replied["from"] == "sales@example.test"
    [reply] = await raw(gk_server, BOB, "INBOX")
    assert reply["From"] == "sales@example.test"


@pytest_twisted.ensureDeferred
async def test_move_flag_and_delete(gk_server: AssistantServer) -> None:
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "keep"), hours_ago=2)
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "junk mail"), hours_ago=1)
    junk, keep = (await ok(gk_server, "list_emails", {}))["emails"]

    # A move to an ordinary folder needs no confirmation; the email gets a new id.
    assert (
        await summary_of(gk_server, "move_email", {"id": keep["id"], "folder": "Archive"}) is None
    )
    moved = await ok(gk_server, "move_email", {"id": keep["id"], "folder": "archive"})
    assert moved["folder"] == "Archive" and moved["moved"] is True and moved["id"] != keep["id"]
    assert subjects(await ok(gk_server, "list_emails", {"folder": "Archive"})) == ["keep"]
    assert "no message with id" in await error(gk_server, "read_email", {"id": keep["id"]})
    assert "the folders are: Archive, Drafts, INBOX, Junk, Sent, Trash" in await error(
        gk_server, "move_email", {"id": moved["id"], "folder": "Holidays"}
    )

    flagged = await ok(gk_server, "flag_email", {"id": moved["id"], "flagged": True, "seen": True})
    assert flagged == {"id": moved["id"], "unread": False, "flagged": True}
    again = await ok(gk_server, "flag_email", {"id": moved["id"], "flagged": True})
    assert again == flagged  # idempotent
    [item] = (await ok(gk_server, "list_emails", {"folder": "Archive"}))["emails"]
    assert item["flagged"] is True and item["unread"] is False
    await ok(gk_server, "flag_email", {"id": moved["id"], "seen": False})
    assert subjects(await ok(gk_server, "search_emails", {"unread": True, "flagged": True})) == [
        "keep"
    ]
    assert "seen" in await error(gk_server, "flag_email", {"id": moved["id"]})

    # Into Trash only with the user's yes.
    to_trash = {"id": junk["id"], "folder": "Trash"}
    summary = await summary_of(gk_server, "move_email", to_trash)
    assert summary == f"Move to Trash the email 'junk mail' from {BOB} (2026-11-19T15:00:00+01:00)"
    refused = await gk_server.call("move_email", to_trash)
    assert refused.is_error and "confirmation" in refused.text
    assert subjects(await ok(gk_server, "list_emails", {})) == ["junk mail"]

    # Deleting moves to Trash, deleting there removes for good; each confirmed.
    summary = await summary_of(gk_server, "delete_email", {"id": junk["id"]})
    assert summary is not None and summary.startswith(
        "Delete (move to Trash) the email 'junk mail'"
    )
    deleted = await ok(gk_server, "delete_email", {"id": junk["id"]}, approve=True)
    assert deleted["deleted"] is False and deleted["folder"] == "Trash"
    assert subjects(await ok(gk_server, "list_emails", {"folder": "Trash"})) == ["junk mail"]
    assert subjects(await ok(gk_server, "list_emails", {})) == []
    summary = await summary_of(gk_server, "delete_email", {"id": deleted["id"]})
    assert summary is not None and "for good" in summary
    gone = await ok(gk_server, "delete_email", {"id": deleted["id"]}, approve=True)
    assert gone == {"deleted": True, "folder": None, "id": None}
    assert (await ok(gk_server, "list_emails", {"folder": "Trash"}))["emails"] == []
    folders = {f["name"]: f for f in (await ok(gk_server, "list_folders", {}))["folders"]}
    assert folders["Trash"]["total"] == 0 and folders["Archive"]["total"] == 1


@pytest_twisted.ensureDeferred
async def test_the_mail_tools_are_annotated_for_what_they_do(gk_server: AssistantServer) -> None:
    mail = ("email", "emails", "folders")
    tools = {tool.name: tool for tool in gk_server.tools if tool.name.endswith(mail)}
    assert set(tools) == {
        "list_folders", "list_emails", "search_emails", "read_email", "send_email",
        "reply_email", "move_email", "flag_email", "delete_email",
    }  # fmt: skip
    looking = {n for n, t in tools.items() if t.annotations.read_only}
    assert looking == {"list_folders", "list_emails", "search_emails", "read_email"}
    assert {n for n, t in tools.items() if t.annotations.destructive} == {
        "move_email",
        "delete_email",
    }
    assert {n for n, t in tools.items() if t.annotations.open_world} == {
        "send_email",
        "reply_email",
    }
    assert all((t.consent is None) == (n in looking or n == "flag_email") for n, t in tools.items())
