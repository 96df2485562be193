"""
The mail pages over real HTTP: folders with unread counts, pages and
search, reading (the sandboxed frame, downloads), flags, moves, the trash,
drafts, replies and their threading fields, another user's ids, and bad
input.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import re
from email.message import EmailMessage

import pytest_twisted

from gk.storage.mail_search import Criteria, MessageSummary
from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, CAROL, WebClient, WebServer

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


def message(
    subject: str,
    sender: str = CAROL,
    to: str = ALICE,
    body: str = "Hello.",
    **headers: str,
) -> EmailMessage:
    built = EmailMessage()
    built["From"] = sender
    built["To"] = to
    built["Subject"] = subject
    built["Message-ID"] = f"<{abs(hash((subject, sender)))}@example.test>"
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(body)
    return built


async def deliver(
    web: WebServer,
    mail: EmailMessage,
    owner: str = ALICE,
    folder: str = "INBOX",
    when: datetime.datetime | None = None,
) -> str:
    """Store C{mail} in C{owner}'s C{folder}: its id as the pages name it."""
    account = web.accounts[owner]
    stored = await web.app.mailstore.deliver(
        account, mail.as_bytes(policy=email.policy.SMTP), folder, internal_date=when
    )
    refs = await web.app.mailboxes.folder_refs(account)
    return f"{next(f.id for f in refs if f.name == stored.folder)}-{stored.uid}"


async def folder_id(web: WebServer, owner: str, name: str) -> int:
    refs = await web.app.mailboxes.folder_refs(web.accounts[owner])
    return next(f.id for f in refs if f.name == name)


async def messages_in(web: WebServer, owner: str, name: str) -> list[MessageSummary]:
    fid = await folder_id(web, owner, name)
    return await web.app.mailboxes.find_messages(web.accounts[owner], [fid], Criteria(), None, 500)


async def get(client: WebClient, path: str) -> tuple[int, str]:
    answer = await in_thread(lambda: client.get(path))
    return answer.status_code, answer.text


def list_subjects(page: str) -> list[str]:
    return re.findall(r'<span class="mail-subject">(?:<span[^>]*>Draft</span> )?([^<]*)', page)


@pytest_twisted.ensureDeferred
async def test_folders_count_unread_mail_and_a_big_folder_is_paged_and_searched(
    web: WebServer,
) -> None:
    for n in range(55):
        sender = BOB if n % 10 == 0 else CAROL
        mail = message(f"Report {n:02d}", sender=sender)
        await deliver(web, mail, when=START + datetime.timedelta(minutes=n))
    await deliver(web, message("Report in archive", sender=BOB), folder="Archive")
    await deliver(web, message("For bob only", to=BOB), owner=BOB)
    client = await web.client(ALICE)
    inbox = await folder_id(web, ALICE, "INBOX")
    _, newest = await get(client, f"/mail/f/{inbox}")
    first_id = re.search(r'href="/mail/m/([\d-]+)"', newest)
    assert first_id is not None
    await get(client, f"/mail/m/{first_id.group(1)}")  # reading marks it read

    status, first = await get(client, "/mail")
    assert status == 200
    counts = re.search(r'aria-current="page">Inbox <span class="badge">(\d+)', first)
    assert counts is not None and counts.group(1) == "54"
    for folder in ("Drafts", "Sent", "Archive", "Junk", "Trash"):
        assert re.search(f'<a href="/mail/f/\\d+">{folder}[< ]', first), folder
    assert "For bob only" not in first
    assert list_subjects(first)[:2] == ["Report 54", "Report 53"]
    assert len(list_subjects(first)) == 50 and "Newer" not in first
    assert first.count('class="mail-row unread"') == 49

    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older is not None
    _, second = await get(client, older.group(1).replace("&amp;", "&"))
    assert list_subjects(second) == [f"Report 0{n}" for n in (4, 3, 2, 1, 0)]
    assert 'rel="next"' not in second
    newer = re.search(r'href="([^"]+)" rel="prev"', second)
    assert newer is not None
    _, back = await get(client, newer.group(1).replace("&amp;", "&"))
    assert list_subjects(back) == list_subjects(first)

    _, found = await get(client, f"/mail/f/{inbox}?q=from:bob")
    assert list_subjects(found) == [f"Report {n:02d}" for n in (50, 40, 30, 20, 10, 0)]
    _, found = await get(client, f"/mail/f/{inbox}?q=%22report+4%22")
    assert list_subjects(found) == [f"Report {n}" for n in range(49, 39, -1)]
    _, everywhere = await get(client, f"/mail/f/{inbox}?q=bob+archive&scope=all")
    assert list_subjects(everywhere) == ["Report in archive "]
    _, nothing = await get(client, f"/mail/f/{inbox}?q=%22no+such+words%22")
    assert "No message matches this search." in nothing


@pytest_twisted.ensureDeferred
async def test_flags_moves_and_the_trash(web: WebServer) -> None:
    ident = await deliver(web, message("Keep me"))
    other = await deliver(web, message("Bulk one"))
    client = await web.client(ALICE)
    account = web.accounts[ALICE]

    status, page = await get(client, f"/mail/m/{ident}")
    assert status == 200 and "Keep me" in page
    [read] = [m for m in await messages_in(web, ALICE, "INBOX") if m.subject == "Keep me"]
    assert read.seen

    flagged = await in_thread(lambda: client.post(f"/mail/m/{ident}/flag", {"flagged": "1"}))
    assert flagged.status_code == 303 and flagged.headers["location"] == f"/mail/m/{ident}"
    unread = await in_thread(lambda: client.post(f"/mail/m/{ident}/flag", {"seen": "0"}))
    assert unread.headers["location"] == f"/mail/f/{ident.split('-')[0]}"
    [state] = [m for m in await messages_in(web, ALICE, "INBOX") if m.subject == "Keep me"]
    assert state.flagged and not state.seen

    archive = await folder_id(web, ALICE, "Archive")
    moved = await in_thread(lambda: client.post(f"/mail/m/{ident}/move", {"folder": archive}))
    assert moved.status_code == 303
    assert [m.subject for m in await messages_in(web, ALICE, "Archive")] == ["Keep me"]
    assert status == 200 and (await get(client, f"/mail/m/{ident}"))[0] == 404  # a new id now

    bulk = await in_thread(
        lambda: client.post("/mail/act", {"action": "read", "id": [other], "back": "/mail"})
    )
    assert bulk.headers["location"] == "/mail?notice=changed"
    deleted = await in_thread(lambda: client.post(f"/mail/m/{other}/delete", {"back": "/mail"}))
    assert deleted.headers["location"] == "/mail?notice=deleted"
    [trashed] = await messages_in(web, ALICE, "Trash")
    assert trashed.subject == "Bulk one" and trashed.seen
    assert await messages_in(web, ALICE, "INBOX") == []

    trash_id = f"{trashed.folder.id}-{trashed.uid}"
    _, trash_page = await get(client, f"/mail/f/{trashed.folder.id}")
    assert "Delete for good" in trash_page
    purged = await in_thread(lambda: client.post(f"/mail/m/{trash_id}/delete"))
    assert purged.headers["location"].endswith("notice=purged")
    assert await messages_in(web, ALICE, "Trash") == []
    assert (await web.app.mailboxes.status(account, "Trash")).messages == 0


@pytest_twisted.ensureDeferred
async def test_html_mail_is_sanitised_framed_and_its_attachments_download(
    web: WebServer,
) -> None:
    mail = message("Newsletter", body="plain version")
    mail.add_alternative(
        '<p onclick="steal()">Hi <img src="https://tracker.example/p.png" onerror="x()">'
        '<a href="https://example.org/">site</a></p><script>document.title="ran"</script>',
        subtype="html",
    )
    mail.add_attachment(b"%PDF-1.4 report", maintype="application", subtype="pdf",
                        filename="../report.pdf")  # fmt: skip
    mail.add_attachment(b"<script>alert(1)</script>", maintype="text", subtype="html",
                        filename="page.html")  # fmt: skip
    ident = await deliver(web, mail)
    client = await web.client(ALICE)

    _, page = await get(client, f"/mail/m/{ident}")
    frame = re.search(r"<iframe[^>]*>", page)
    assert frame is not None
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame.group(0)
    assert f'src="/mail/m/{ident}/body"' in frame.group(0)
    assert "Show images" in page and "steal()" not in page

    body = await in_thread(lambda: client.get(f"/mail/m/{ident}/body"))
    assert body.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "sandbox allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'"
    )
    assert body.headers["x-frame-options"] == "SAMEORIGIN"
    for gone in ("<script", "onclick", "onerror", "tracker.example", 'document.title="ran"'):
        assert gone not in body.text
    assert '<a href="https://example.org/" target="_blank" rel="noopener noreferrer">' in body.text
    shown = await in_thread(lambda: client.get(f"/mail/m/{ident}/body?images=1"))
    assert "img-src data: https: http:;" in shown.headers["content-security-policy"]
    assert 'src="https://tracker.example/p.png"' in shown.text and "onerror" not in shown.text

    pdf = await in_thread(lambda: client.get(f"/mail/m/{ident}/part/3"))
    assert pdf.content == b"%PDF-1.4 report"
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith('attachment; filename="report.pdf"')
    html = await in_thread(lambda: client.get(f"/mail/m/{ident}/part/4"))
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-disposition"].startswith('attachment; filename="page.html"')
    assert (await get(client, f"/mail/m/{ident}/part/9"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_a_reply_threads_and_a_draft_is_saved_reopened_and_sent(web: WebServer) -> None:
    original = message(
        "Plans", body="Shall we meet?", Cc=BOB, References="<root@example.test>",
        In_Reply_To="<root@example.test>",
    )  # fmt: skip
    ident = await deliver(web, original)
    client = await web.client(ALICE)

    _, form = await get(client, f"/mail/compose?reply={ident}&all=1")
    assert 'name="to" value="carol@example.test"' in form
    assert 'name="cc" value="bob@example.test"' in form
    assert 'value="Re: Plans"' in form and "&gt; Shall we meet?" in form
    sent = await in_thread(
        lambda: client.post(
            "/mail/send",
            {"reply": ident, "to": CAROL, "cc": BOB, "subject": "Re: Plans", "body": "Yes!"},
        )
    )
    assert sent.status_code == 303, sent.text
    [carols] = await messages_in(web, CAROL, "INBOX")
    assert carols.in_reply_to == original["Message-ID"]
    assert carols.references == f"<root@example.test> {original['Message-ID']}"
    [answered] = await messages_in(web, ALICE, "INBOX")
    assert answered.answered

    _, page = await get(client, f"/mail/m/{ident}")
    assert "This conversation" in page and "(2 messages)" in page
    assert "Re: Plans" in page
    _, forward = await get(client, f"/mail/compose?forward={ident}")
    assert 'value="Fwd: Plans"' in forward and "Forwarded message" in forward

    # A draft, with an attachment: saved, reopened, saved again, sent.
    files = {"attachment": ("notes.txt", b"draft bytes \x00\xff", "text/plain")}
    saved = await in_thread(
        lambda: client.post(
            "/mail/draft", {"to": BOB, "subject": "Unfinished", "body": "Half"}, files=files
        )
    )
    assert saved.status_code == 303
    location = saved.headers["location"]
    draft_id = re.search(r"draft=([\d-]+)", location)
    assert draft_id is not None
    [draft] = await messages_in(web, ALICE, "Drafts")
    assert draft.draft and draft.subject == "Unfinished"

    _, form = await get(client, location)
    assert "Draft saved." in form and 'value="Unfinished"' in form
    assert f'name="keep" value="{draft_id.group(1)}/2" checked' in form and "notes.txt" in form
    _, listing = await get(client, f"/mail/f/{draft.folder.id}")
    assert f'href="/mail/compose?draft={draft_id.group(1)}"' in listing

    again = await in_thread(
        lambda: client.post(
            "/mail/draft",
            {
                "draft": draft_id.group(1),
                "to": BOB,
                "subject": "Finished",
                "body": "Whole",
                "keep": f"{draft_id.group(1)}/2",
            },
        )
    )
    [second] = await messages_in(web, ALICE, "Drafts")
    assert second.subject == "Finished"
    second_id = f"{second.folder.id}-{second.uid}"
    assert second_id in again.headers["location"]

    sent = await in_thread(
        lambda: client.post(
            "/mail/send",
            {
                "draft": second_id,
                "to": BOB,
                "subject": "Finished",
                "body": "Whole",
                "keep": f"{second_id}/2",
            },
        )
    )
    assert sent.status_code == 303
    assert await messages_in(web, ALICE, "Drafts") == []
    [received] = [m for m in await messages_in(web, BOB, "INBOX") if m.subject == "Finished"]
    [data] = await web.app.mailboxes.read_files(web.accounts[BOB], [received])
    assert data is not None
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "notes.txt"
    assert attachment.get_payload(decode=True) == b"draft bytes \x00\xff"


@pytest_twisted.ensureDeferred
async def test_another_users_ids_answer_404_and_bad_input_400_losing_nothing(
    web: WebServer,
) -> None:
    bobs = await deliver(web, message("Private to bob", to=BOB), owner=BOB)
    bob_inbox = await folder_id(web, BOB, "INBOX")
    mine = await deliver(web, message("Mine"))
    inbox = await folder_id(web, ALICE, "INBOX")
    client = await web.client(ALICE)

    for path in (f"/mail/m/{bobs}", f"/mail/m/{bobs}/body", f"/mail/m/{bobs}/part/1",
                 f"/mail/f/{bob_inbox}", f"/mail/compose?reply={bobs}",
                 f"/mail/compose?forward={bobs}", f"/mail/compose?draft={bobs}",
                 "/mail/m/not-an-id"):  # fmt: skip
        status, page = await get(client, path)
        assert status == 404, path
        assert "Private to bob" not in page
    for path, data in (
        (f"/mail/m/{bobs}/flag", {"seen": "1"}),
        (f"/mail/m/{bobs}/delete", {}),
        (f"/mail/m/{mine}/move", {"folder": str(bob_inbox)}),
        ("/mail/act", {"action": "delete", "id": bobs}),
        ("/mail/send", {"to": BOB, "subject": "x", "keep": f"{bobs}/1"}),
    ):
        answer = await in_thread(lambda p=path, d=data: client.post(p, d))
        assert answer.status_code == 404, path
        assert "Private to bob" not in answer.text
    refused = await in_thread(
        lambda: client.post("/mail/draft", {"subject": "Still mine", "keep": f"{bobs}/1"})
    )
    assert refused.status_code == 404 and 'value="Still mine"' in refused.text
    [still] = await messages_in(web, BOB, "INBOX")
    assert not still.seen and still.subject == "Private to bob"

    bad_address = await in_thread(
        lambda: client.post("/mail/send", {"to": "bob@@nowhere", "subject": "Kept", "body": "Mine"})
    )
    assert bad_address.status_code == 400
    assert "is not a list of email addresses" in bad_address.text
    assert 'value="Kept"' in bad_address.text and ">\nMine</textarea>" in bad_address.text

    files = {"attachment": ("a.bin", b"\x01\x02", "application/octet-stream")}
    unknown = await in_thread(
        lambda: client.post(
            "/mail/send", {"to": "nobody@example.test", "subject": "Lost?"}, files=files
        )
    )
    assert unknown.status_code == 400 and "nobody@example.test" in unknown.text
    assert "kept in Drafts with its attachments" in unknown.text
    [kept] = await messages_in(web, ALICE, "Drafts")
    assert kept.subject == "Lost?"

    for path in (f"/mail/f/{inbox}?older=zz!", f"/mail/f/{inbox}?q=" + "x" * 201):
        assert (await get(client, path))[0] == 400, path
    for path, data in (
        ("/mail/act", {"action": "explode", "id": mine}),
        ("/mail/act", {"action": "read"}),
        (f"/mail/m/{mine}/flag", {"seen": "2"}),
        (f"/mail/m/{mine}/flag", {}),
        (f"/mail/m/{mine}/move", {"folder": "Archive"}),
        ("/mail/send", {"to": BOB, "keep": "../../etc/passwd"}),
        ("/mail/send", {"to": BOB, "reply": "1; drop"}),
    ):
        answer = await in_thread(lambda p=path, d=data: client.post(p, d))
        assert answer.status_code == 400, (path, data, answer.text[:300])
    assert [m.subject for m in await messages_in(web, ALICE, "INBOX")] == ["Mine"]
    assert [m.subject for m in await messages_in(web, BOB, "INBOX")] == ["Private to bob"]
