"""
The contact tools called through the registry against a running gk: the
assistant resolving "Alice" to an address from the address book and from
the users of the server, creating and changing cards that CardDAV (the
ContactService) then holds, and no way to reach another user's cards.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted

from gk.dav.vcard import build_vcard, parse_vcard
from gk.events import ContactsChanged
from tests.assistant import toolcalls
from tests.assistant.conftest import ALICE, BOB, CAROL, AssistantServer


async def ok(
    server: AssistantServer, name: str, arguments: dict[str, Any], email: str = BOB
) -> Any:
    """As Bob by default, whose address book these tests use."""
    return await toolcalls.ok(server, name, arguments, email)


async def refused(
    server: AssistantServer, name: str, arguments: dict[str, Any], email: str = BOB
) -> str:
    return await toolcalls.refused(server, name, arguments, email)


@pytest_twisted.ensureDeferred
async def test_search_resolves_names_to_addresses(gk_server: AssistantServer) -> None:
    app, bob = gk_server.app, gk_server.accounts[BOB]
    cards = {
        "alice.vcf": build_vcard(
            "c-alice", "Alice Martin", ["alice.martin@partner.example"], ["+33 6 12 34 56 78"],
            "Acme", "Met at the fair",
        ),
        "alain.vcf": build_vcard("c-alain", "Alain Dupont", ["alain@dupont.example"], [], "Acme"),
        "zoe.vcf": build_vcard("c-zoe", "Zoé Lambert", ["zoe@lambert.example"], ["0145678901"]),
    }  # fmt: skip
    for name, data in cards.items():
        await app.contacts.put(bob, "contacts", name, data)

    # "Alice": her card, and alice of this server, marked as a user.
    found = await ok(gk_server, "search_contacts", {"query": "Alice"})
    [card] = found["contacts"]
    assert card["name"] == "Alice Martin"
    assert card["emails"] == ["alice.martin@partner.example"]
    assert card["phones"] == ["+33 6 12 34 56 78"]
    assert card["organization"] == "Acme" and card["note"] == "Met at the fair"
    assert card["contact_id"] == "contacts/alice.vcf"
    assert found["users"] == [{"email": ALICE, "kind": "user of this server"}]

    # Any case, part of a name, an organization, a number written otherwise, an accent.
    assert [
        c["name"] for c in (await ok(gk_server, "search_contacts", {"query": "alice"}))["contacts"]
    ] == ["Alice Martin"]
    partial = await ok(gk_server, "search_contacts", {"query": "al"})
    assert [c["name"] for c in partial["contacts"]] == ["Alain Dupont", "Alice Martin"]
    acme = await ok(gk_server, "search_contacts", {"query": "acme"})
    assert len(acme["contacts"]) == 2 and acme["users"] == []
    by_number = await ok(gk_server, "search_contacts", {"query": "01 45 67"})
    assert [c["name"] for c in by_number["contacts"]] == ["Zoé Lambert"]
    assert [
        c["name"] for c in (await ok(gk_server, "search_contacts", {"query": "ZOÉ"}))["contacts"]
    ] == ["Zoé Lambert"]
    # A colleague who is in no address book.
    carol = await ok(gk_server, "search_contacts", {"query": "carol"})
    assert carol == {"contacts": [], "users": [{"email": CAROL, "kind": "user of this server"}]}
    nobody = await ok(gk_server, "search_contacts", {"query": "nobody-by-that-name"})
    assert nobody == {"contacts": [], "users": []}


@pytest_twisted.ensureDeferred
async def test_create_and_update_a_contact(gk_server: AssistantServer) -> None:
    app, bob = gk_server.app, gk_server.accounts[BOB]
    changes: list[ContactsChanged] = []
    app.events.subscribe(ContactsChanged, changes.append, bob.id)

    made = await ok(gk_server, "create_contact", {
        "name": "Jeanne Moreau", "emails": ["jeanne@films.example"],
        "phones": ["+33 1 23 45 67 89"], "organization": "Films SA", "note": "Agent: Paul",
    })  # fmt: skip
    contact = made["contact"]
    assert made["action"] == "created" and made["possible_duplicates"] == []
    assert changes[-1].action == "created"
    book, name = contact["contact_id"].split("/")
    assert book == "contacts"
    # CardDAV holds it: a checked card with every field.
    card = parse_vcard((await app.contacts.get(bob, book, name)).data)
    assert card.fn == "Jeanne Moreau" and card.emails == ("jeanne@films.example",)
    assert card.tels == ("+33 1 23 45 67 89",) and card.organization == "Films SA"
    assert [
        c["contact_id"]
        for c in (await ok(gk_server, "search_contacts", {"query": "jeanne"}))["contacts"]
    ] == [contact["contact_id"]]

    # Adding keeps what is there; removing compares numbers by their digits.
    updated = await ok(gk_server, "update_contact", {
        "contact_id": contact["contact_id"], "add_emails": ["j.moreau@home.example"],
        "add_phones": ["06 00 00 00 01"], "remove_phones": ["+33123456789"],
        "organization": "", "note": "Agent: Marie",
    })  # fmt: skip
    assert updated["contact"]["emails"] == ["jeanne@films.example", "j.moreau@home.example"]
    assert updated["contact"]["phones"] == ["06 00 00 00 01"]
    assert updated["contact"]["organization"] == "" and updated["contact"]["note"] == "Agent: Marie"
    assert changes[-1].action == "changed"

    # Replacing a list, and the name.
    replaced = await ok(gk_server, "update_contact", {
        "contact_id": contact["contact_id"], "emails": ["jeanne@new.example"],
        "name": "Jeanne M. Moreau",
    })  # fmt: skip
    card = parse_vcard((await app.contacts.get(bob, book, name)).data)
    assert card.fn == "Jeanne M. Moreau" and card.emails == ("jeanne@new.example",)
    assert replaced["contact"]["phones"] == ["06 00 00 00 01"]

    # A second card with the same address is flagged as a possible duplicate.
    twin = await ok(gk_server, "create_contact", {
        "name": "J. Moreau", "emails": ["JEANNE@new.example"],
    })  # fmt: skip
    assert twin["possible_duplicates"] == [contact["contact_id"]]

    # What a model gets wrong comes back as something to fix.
    cid = contact["contact_id"]
    for arguments, expected in (
        ({"contact_id": cid}, "nothing to change"),
        ({"contact_id": cid, "emails": ["a@b.example"], "add_emails": ["c@d.example"]}, "not both"),
        ({"contact_id": cid, "remove_emails": ["never@there.example"]}, "not in this contact"),
        ({"contact_id": cid, "add_phones": ["call me"]}, "not a telephone number"),
        ({"contact_id": cid, "add_emails": ["jeanne at home"]}, "add_emails"),
        ({"contact_id": "jeanne"}, "invalid contact_id"),
    ):
        assert expected in await refused(gk_server, "update_contact", arguments), arguments
    assert "not a telephone number" in await refused(
        gk_server, "create_contact", {"name": "X", "phones": ["12"]}
    )


@pytest_twisted.ensureDeferred
async def test_alice_cannot_reach_bobs_contacts(gk_server: AssistantServer) -> None:
    bobs = await ok(gk_server, "create_contact", {
        "name": "Secret Source", "emails": ["source@leaks.example"],
    })  # fmt: skip
    contact_id = bobs["contact"]["contact_id"]
    nothing = "contacts/00000000-0000-0000-0000-000000000000.vcf"
    theirs = await refused(
        gk_server, "update_contact", {"contact_id": contact_id, "note": "x"}, ALICE
    )
    missing = await refused(
        gk_server, "update_contact", {"contact_id": nothing, "note": "x"}, ALICE
    )
    assert theirs == missing.replace(nothing, contact_id)
    assert "there is no contact" in theirs
    found = await ok(gk_server, "search_contacts", {"query": "source"}, ALICE)
    assert found == {"contacts": [], "users": []}
    # Bob's card is untouched.
    [card] = (await ok(gk_server, "search_contacts", {"query": "source"}))["contacts"]
    assert card["note"] == ""


@pytest_twisted.ensureDeferred
async def test_changed_and_deleted_cards_are_found_as_they_are_now(
    gk_server: AssistantServer,
) -> None:
    """
    The search keeps what it parsed of each card (by entity tag): a card
    changed or deleted since is found, or not, as it is now.
    """
    app, bob = gk_server.app, gk_server.accounts[BOB]
    before = build_vcard("c-dan", "Dan Brown", ["dan@brown.example"], ["0611223344"], "Acme")
    after = build_vcard("c-dan", "Daniel Green", ["dan@green.example"], ["0799887766"], "Globex")
    await app.contacts.put(bob, "contacts", "dan.vcf", before)

    async def names(query: str) -> list[str]:
        found = await ok(gk_server, "search_contacts", {"query": query})
        return [c["name"] for c in found["contacts"]]

    for _ in range(2):  # parsed, then from what was kept
        assert await names("brown") == await names("acme") == await names("11 22") == ["Dan Brown"]

    await app.contacts.put(bob, "contacts", "dan.vcf", after)
    assert await names("brown") == await names("acme") == await names("1122") == []
    assert (
        await names("green") == await names("globex") == await names("998877") == ["Daniel Green"]
    )
    [card] = (await ok(gk_server, "search_contacts", {"query": "dan"}))["contacts"]
    assert card["emails"] == ["dan@green.example"] and card["organization"] == "Globex"

    await app.contacts.delete(bob, "contacts", "dan.vcf")
    assert await names("dan") == await names("green") == []
    await app.contacts.put(bob, "contacts", "dan.vcf", before)
    assert await names("dan") == ["Dan Brown"]
