"""
The assistant's mail tools that look, called through the registry as the
conversation loop calls them: a user lists her folders and emails, pages
through them, searches by sender, subject, words in the body, dates and
unread state, and reads the latest one; HTML mail is read as text without
fetching anything; another user's message ids lead nowhere; bad dates and
bad arguments come back as errors the model can act on.
"""

from __future__ import annotations

import datetime
import smtplib
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
import pytest_twisted
from jsonschema import Draft202012Validator
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.threads import deferToThread

from gk.assistant import mail_read_tools
from gk.storage.mailstore import StoredMessage
from tests.assistant.conftest import ALICE, BOB, CAROL, NOW, AssistantServer

JSON = dict[str, Any]


def letter(
    sender: str,
    to: str,
    subject: str,
    body: str = "Hello.",
    *,
    html: str | None = None,
    message_id: str | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    """A message as a mail client writes it."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Thu, 19 Nov 2026 15:00:00 +0100"
    message["Message-ID"] = message_id or f"<{abs(hash((sender, subject)))}@example.test>"
    for name, value in (extra or {}).items():
        message[name] = value
    if html is None:
        message.set_content(body)
    else:
        message.set_content(html, subtype="html")
    return message.as_bytes()


async def deliver(
    server: AssistantServer,
    email: str,
    data: bytes,
    *,
    hours_ago: float = 1,
    folder: str = "INBOX",
) -> StoredMessage:
    """Store C{data} for C{email} as if it arrived C{hours_ago} before NOW."""
    when = NOW - datetime.timedelta(hours=hours_ago)
    return await server.app.mailstore.deliver(
        server.accounts[email], data, folder, internal_date=when
    )


async def ok(
    server: AssistantServer,
    name: str,
    arguments: JSON,
    email: str = ALICE,
    *,
    approve: bool = False,
) -> JSON:
    """Call a tool that must succeed; its structured content, checked against its schema."""
    outcome = await server.call(name, arguments, email, approve=approve)
    assert not outcome.is_error, outcome.text
    assert outcome.content is not None
    tool = server.tools.get(name)
    assert tool is not None and tool.output_schema is not None
    Draft202012Validator(tool.output_schema).validate(outcome.content)
    return outcome.content


async def error(
    server: AssistantServer, name: str, arguments: JSON, email: str = ALICE, *, approve: bool = True
) -> str:
    """Call a tool (approved, so that consent is not what stops it); its error text."""
    try:
        outcome = await server.call(name, arguments, email, approve=approve)
    except Exception as e:  # the registry's prepare refuses (schema, consent checks)
        return str(e)
    assert outcome.is_error, outcome.content
    return outcome.text


def subjects(content: JSON) -> list[str]:
    return [item["subject"] for item in content["emails"]]


def send_over_smtp(port: int, sender: str, recipient: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org") as client:
        client.sendmail(sender, [recipient], data)


@pytest_twisted.ensureDeferred
async def test_list_my_folders_and_emails_newest_first_page_by_page(
    gk_server: AssistantServer,
) -> None:
    for n in range(1, 5):
        await deliver(gk_server, ALICE, letter(BOB, ALICE, f"note {n}"), hours_ago=10 - n)
    # The newest one comes the way mail from outside does, over SMTP.
    await deferToThread(
        send_over_smtp,
        gk_server.mx_port(),
        "dave@elsewhere.test",
        ALICE,
        letter("Dave <dave@elsewhere.test>", ALICE, "over the wire"),
    )

    folders = await ok(gk_server, "list_folders", {})
    by_name = {f["name"]: f for f in folders["folders"]}
    assert by_name["INBOX"] == {"name": "INBOX", "special_use": None, "total": 5, "unread": 5}
    assert by_name["Trash"]["special_use"] == "trash"

    first = await ok(gk_server, "list_emails", {"limit": 2})
    assert first["folder"] == "INBOX"
    assert subjects(first) == ["over the wire", "note 4"]
    latest = first["emails"][0]
    assert latest["from"] == "Dave <dave@elsewhere.test>"
    assert latest["to"] == ALICE
    assert latest["unread"] is True and latest["flagged"] is False
    assert latest["date"] == "2026-11-19T15:00:00+01:00"  # its Date, in Paris time
    assert latest["size"] > 100
    second = await ok(gk_server, "list_emails", {"limit": 2, "page": first["next"]})
    assert subjects(second) == ["note 3", "note 2"]
    last = await ok(gk_server, "list_emails", {"limit": 2, "page": second["next"]})
    assert subjects(last) == ["note 1"]
    assert last["next"] is None

    await ok(gk_server, "flag_email", {"id": latest["id"], "seen": True})
    unread = await ok(gk_server, "list_emails", {"unread_only": True})
    assert subjects(unread) == ["note 4", "note 3", "note 2", "note 1"]
    sent = await ok(gk_server, "list_emails", {"folder": "sent"})  # a name in any case
    assert sent == {"folder": "Sent", "emails": [], "next": None}
    assert "the folders are: Archive, Drafts, INBOX, Junk, Sent, Trash" in await error(
        gk_server, "list_emails", {"folder": "Holidays"}
    )
    assert "invalid page" in await error(gk_server, "list_emails", {"page": "yesterday"})


@pytest_twisted.ensureDeferred
async def test_search_by_sender_subject_body_date_and_unread(gk_server: AssistantServer) -> None:
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "Budget 2027"), hours_ago=50)
    await deliver(
        gk_server,
        ALICE,
        letter(f"Carol <{CAROL}>", ALICE, "Dinner", "Shall we meet at the Café Lumière?"),
        hours_ago=30,
    )
    await deliver(
        gk_server, ALICE, letter(BOB, f"{ALICE}, {CAROL}", "Re: budget", "Fine by me."), hours_ago=3
    )
    encoded = EmailMessage(policy=SMTP)
    encoded["From"], encoded["To"], encoded["Subject"] = CAROL, ALICE, "Photos"
    encoded.set_content("The pictures from Zanzibar are attached.", cte="base64")
    await deliver(gk_server, ALICE, encoded.as_bytes(), hours_ago=40)
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "old spam"), hours_ago=2, folder="Junk")
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "deleted"), hours_ago=1, folder="Trash")

    from_bob = await ok(gk_server, "search_emails", {"sender": "bob"})
    assert subjects(from_bob) == ["Re: budget", "Budget 2027"]  # not from Junk or Trash
    assert "Trash" not in from_bob["folders"] and "Junk" not in from_bob["folders"]
    in_trash = await ok(gk_server, "search_emails", {"sender": "bob", "folder": "Trash"})
    assert subjects(in_trash) == ["deleted"]
    assert subjects(await ok(gk_server, "search_emails", {"subject": "BUDGET"})) == [
        "Re: budget",
        "Budget 2027",
    ]
    assert subjects(await ok(gk_server, "search_emails", {"recipient": "carol"})) == ["Re: budget"]

    # Words of a body (quoted-printable on the wire) are found, in any case.
    in_body = await ok(gk_server, "search_emails", {"text": "café lumière"})
    assert subjects(in_body) == ["Dinner"]
    assert in_body["body_search_complete"] is True
    assert subjects(await ok(gk_server, "search_emails", {"text": "no such words"})) == []
    assert subjects(await ok(gk_server, "search_emails", {"text": "zanzibar"})) == ["Photos"]

    # Dates are the user's days: NOW is Friday 10:00 in Paris.
    yesterday = await ok(
        gk_server, "search_emails", {"since": "2026-11-19", "before": "2026-11-20"}
    )
    assert subjects(yesterday) == ["Dinner"]
    today = await ok(gk_server, "search_emails", {"since": "2026-11-20T00:00:00"})
    assert subjects(today) == ["Re: budget"]
    older = await ok(gk_server, "search_emails", {"before": "2026-11-19T00:00:00+01:00"})
    assert subjects(older) == ["Photos", "Budget 2027"]

    [dinner] = in_body["emails"]
    await ok(gk_server, "read_email", {"id": dinner["id"]})
    unread = await ok(gk_server, "search_emails", {"unread": True})
    assert subjects(unread) == ["Re: budget", "Photos", "Budget 2027"]
    assert subjects(await ok(gk_server, "search_emails", {"unread": False})) == ["Dinner"]
    assert subjects(await ok(gk_server, "search_emails", {"sender": "bob", "unread": True})) == [
        "Re: budget",
        "Budget 2027",
    ]


@pytest_twisted.ensureDeferred
async def test_a_body_search_is_bounded_per_call_and_pages_on(
    gk_server: AssistantServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail_read_tools, "MAX_BODIES", 3)
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "the one", "the code is 7342"), hours_ago=20)
    for n in range(7):
        await deliver(gk_server, ALICE, letter(BOB, ALICE, f"chatter {n}"), hours_ago=10 - n)
    # A subject match is taken from the index, without reading a body.
    await deliver(gk_server, ALICE, letter(BOB, ALICE, "about 7342"), hours_ago=0.5)

    pages = []
    page: JSON = await ok(gk_server, "search_emails", {"text": "7342"})
    pages.append(page)
    while page["next"] is not None:
        page = await ok(gk_server, "search_emails", {"text": "7342", "page": page["next"]})
        pages.append(page)

    assert [subjects(p) for p in pages] == [["about 7342"], [], ["the one"]]
    assert [p["body_search_complete"] for p in pages] == [False, False, True]
    outcome = await gk_server.call("search_emails", {"text": "7342"})
    assert "call again with page=next" in outcome.text


class _CountingFactory(ServerFactory):
    """A web server that counts connections and answers none."""

    def __init__(self) -> None:
        self.connections = 0

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        self.connections += 1
        return _Hangup()


class _Hangup(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_read_the_latest_one_html_becomes_text_and_nothing_is_fetched(
    gk_server: AssistantServer,
) -> None:
    factory = _CountingFactory()
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = await endpoint.listen(factory)
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    remote = f"http://127.0.0.1:{address.port}"
    html = (
        "<html><head><title>News</title><style>p {color: red}</style>"
        f'<link rel="stylesheet" href="{remote}/style.css"></head><body>'
        "<h1>Big news</h1><p>Our <b>new</b>&nbsp;offer is here.</p>"
        f'<p><img src="{remote}/pixel.png" alt="logo"> '
        f'<a href="{remote}/offer">See the offer</a></p>'
        "<ul><li>first</li><li>second</li></ul>"
        "<script>fetch('/track')</script></body></html>"
    )
    try:
        await deliver(gk_server, ALICE, letter(BOB, ALICE, "plain"), hours_ago=5)
        await deliver(gk_server, ALICE, letter(BOB, ALICE, "News", html=html), hours_ago=1)

        [latest] = (await ok(gk_server, "list_emails", {"limit": 1}))["emails"]
        read = await ok(gk_server, "read_email", {"id": latest["id"]})
        await deferToThread(lambda: None)  # give any stray fetch a chance to show
    finally:
        await maybeDeferred(port.stopListening)

    assert read["subject"] == "News" and read["from"] == BOB and read["to"] == ALICE
    assert read["date"] == "2026-11-19T15:00:00+01:00"
    assert read["message_id"].endswith("@example.test>")
    assert read["text_from_html"] is True
    assert read["text"] == (
        "Big news\n\nOur new offer is here.\n\n[image: logo] See the offer "
        f"<{remote}/offer>\n\n- first\n- second"
    )
    assert factory.connections == 0
    assert read["marked_read"] is True  # reading it marks it read, as a mail client does
    again = await ok(gk_server, "read_email", {"id": latest["id"]})
    assert again["marked_read"] is False
    [now_read] = (await ok(gk_server, "list_emails", {"limit": 1}))["emails"]
    assert now_read["unread"] is False


@pytest_twisted.ensureDeferred
async def test_read_lists_attachments_and_cuts_long_text(gk_server: AssistantServer) -> None:
    message = EmailMessage(policy=SMTP)
    message["From"], message["To"], message["Subject"] = BOB, ALICE, "Report"
    message.set_content("Here it is.\n" + "word " * 5000)
    message.add_attachment(b"%PDF" + bytes(1000), maintype="application", subtype="pdf",
                           filename="report été.pdf")  # fmt: skip
    await deliver(gk_server, ALICE, message.as_bytes())
    [item] = (await ok(gk_server, "list_emails", {}))["emails"]

    read = await ok(gk_server, "read_email", {"id": item["id"]})

    assert read["attachments"] == [
        {"filename": "report été.pdf", "type": "application/pdf", "size": 1004}
    ]
    assert read["text"].startswith("Here it is.\nword word")
    assert len(read["text"]) == mail_read_tools.MAX_TEXT
    assert read["text_truncated"] is True


@pytest_twisted.ensureDeferred
async def test_another_users_message_ids_lead_nowhere(gk_server: AssistantServer) -> None:
    await deliver(gk_server, BOB, letter(CAROL, BOB, "for Bob only", "the secret"))
    [bobs] = (await ok(gk_server, "list_emails", {}, BOB))["emails"]
    folder_id, _, uid = bobs["id"].partition("-")
    missing = f"{folder_id}-{int(uid) + 1000}"

    for name, arguments in [
        ("read_email", {"id": bobs["id"]}),
        ("flag_email", {"id": bobs["id"], "flagged": True}),
        ("move_email", {"id": bobs["id"], "folder": "Archive"}),
        ("delete_email", {"id": bobs["id"]}),
        ("reply_email", {"id": bobs["id"], "body": "hi"}),
    ]:
        stolen = await error(gk_server, name, arguments, ALICE)
        nothing = await error(gk_server, name, {**arguments, "id": missing}, ALICE)
        assert stolen == nothing.replace(missing, bobs["id"])
        assert "use list_emails or search_emails to find ids" in stolen
    assert "no message with id 'INBOX'" in await error(gk_server, "read_email", {"id": "INBOX"})

    # Bob's message is untouched and his folders unchanged.
    [after] = (await ok(gk_server, "list_emails", {}, BOB))["emails"]
    assert after == bobs
    assert (await ok(gk_server, "search_emails", {"text": "secret"}, ALICE))["emails"] == []


@pytest_twisted.ensureDeferred
async def test_bad_dates_and_bad_arguments_are_explained(gk_server: AssistantServer) -> None:
    bad_date = await error(gk_server, "search_emails", {"since": "last tuesday"})
    assert "invalid since 'last tuesday'" in bad_date
    assert "RFC 3339" in bad_date
    assert "earlier than" in await error(
        gk_server, "search_emails", {"since": "2026-11-20", "before": "2026-11-01"}
    )
    assert "invalid arguments for list_emails" in await error(
        gk_server, "list_emails", {"limit": 500}
    )
    assert "Additional properties" in await error(
        gk_server, "search_emails", {"user": BOB, "sender": "carol"}
    )
    assert "'id' is a required property" in await error(gk_server, "read_email", {})
    assert "is not of type 'string'" in await error(gk_server, "read_email", {"id": 42})
