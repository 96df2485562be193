"""
The contacts pages over HTTP: a contact made through the form is a vCard
3.0 in the user's address book (what CardDAV clients read), found by
name, company or number, changed without losing the lines another
program wrote, and deleted; mistakes come back with one message and
nothing written; nobody reaches another user's contacts.
"""

from __future__ import annotations

import re

import pytest_twisted

from gk.dav.vcard import parse_vcard
from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, WebClient, WebServer

JEANNE = {
    "name": "Jeanne Moreau",
    "emails": "jeanne@films.example\nj.moreau@home.example",
    "phones": "+33 6 12 34 56 78",
    "organization": "Films du Carrosse",
    "note": "Met at Cannes.\nLikes jazz.",
}


async def post(client: WebClient, path: str, data: dict[str, str]) -> tuple[int, str, str]:
    answer = await in_thread(lambda: client.post(path, data))
    return answer.status_code, answer.headers.get("location", ""), answer.text


async def listed(client: WebClient, query: str) -> list[str]:
    """The names the contact list shows for a search."""
    page = await in_thread(lambda: client.get("/contacts", params={"q": query}))
    assert page.status_code == 200
    found = re.search(r'<div id="contact-list".*?</div>', page.text, re.S)
    assert found is not None
    return re.findall(r'<li><a href="[^"]+"[^>]*>([^<]+)</a>', found.group(0))


@pytest_twisted.ensureDeferred
async def test_a_contact_is_created_found_changed_and_deleted_by_its_owner_only(
    web: WebServer,
) -> None:
    alice, account = await web.client(ALICE), web.accounts[ALICE]
    # Mistakes are said, one message each, what was typed kept and nothing written.
    mistakes = {
        "Give the contact a name.": {"name": " "},
        "E-mail addresses: 'jeanne at films' is not an email address.": {
            "emails": "jeanne at films"
        },
        "Phone numbers: 'call me' is not a telephone number": {"phones": "call me"},
        "The note is too long (at most 5000 characters).": {"note": "x" * 5001},
    }
    for message, fields in mistakes.items():
        status, _, text = await post(alice, "/contacts", {**JEANNE, **fields})
        assert status == 400, message
        said = message.replace("'", "&#39;")
        assert f'role="alert" id="contact-error">{said}' in text, message
        assert 'value="Films du Carrosse"' in text
    assert await web.app.contacts.all_objects(account, "contacts") == []

    status, location, _ = await post(alice, "/contacts", JEANNE)
    assert status == 303 and location.startswith("/contacts/contacts/"), location
    page = location.partition("?")[0]

    # A vCard 3.0 in her address book, as CardDAV clients read it.
    [stored] = await web.app.contacts.all_objects(account, "contacts")
    card = parse_vcard(stored.data)
    assert card.version == "3.0" and card.fn == "Jeanne Moreau"
    assert card.emails == ("jeanne@films.example", "j.moreau@home.example")
    assert card.tels == ("+33 6 12 34 56 78",) and card.organization == "Films du Carrosse"
    assert b"NOTE:Met at Cannes.\\nLikes jazz." in stored.data
    shown = (await in_thread(lambda: alice.get(location))).text
    assert "Saved." in shown and 'value="Films du Carrosse"' in shown

    # Found by name, company, address or number; not by anything else.
    for query in ("moreau", "carrosse", "home.example", "6 12 34"):
        assert await listed(alice, query) == ["Jeanne Moreau"], query
    assert await listed(alice, "truffaut") == []

    # A phone added a line the form knows nothing of: a change keeps it.
    await web.app.contacts.put(
        account, "contacts", stored.name,
        stored.data.replace(b"END:VCARD", b"X-ANNIVERSARY:1928-01-23\r\nEND:VCARD"),
    )  # fmt: skip
    changed = {**JEANNE, "organization": "", "phones": "+33 6 12 34 56 78\n01 23 45 67 89"}
    status, location, _ = await post(alice, page, changed)
    assert status == 303 and location == page + "?saved=1"
    [stored] = await web.app.contacts.all_objects(account, "contacts")
    card = parse_vcard(stored.data)
    assert card.tels == ("+33 6 12 34 56 78", "01 23 45 67 89") and card.organization == ""
    assert b"X-ANNIVERSARY:1928-01-23" in stored.data

    # Bob's contacts are his: alice's pages know nothing of them.
    bob = await web.client(BOB)
    _, location, _ = await post(bob, "/contacts", {"name": "Bob's mother"})
    bobs = location.partition("?")[0]
    assert (await in_thread(lambda: alice.get(bobs))).status_code == 404
    for target in (bobs, bobs + "/delete"):
        status, _, _ = await post(alice, target, {"name": "Hacked"})
        assert status == 404, target
    assert await listed(alice, "mother") == []
    [kept] = await web.app.contacts.all_objects(web.accounts[BOB], "contacts")
    assert parse_vcard(kept.data).fn == "Bob's mother"

    # Deleted, it is gone from the list and from her address book.
    status, location, _ = await post(alice, page + "/delete", {})
    assert status == 303 and location == "/contacts?deleted=1"
    assert await web.app.contacts.all_objects(account, "contacts") == []
    assert await listed(alice, "") == []
    assert (await in_thread(lambda: alice.get(page))).status_code == 404
