"""
L{ContactService}: a user's address books (CardDAV collections) and the
vCards in them, and the search the assistant uses to resolve a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from gk.collections_service import CheckedObject, CollectionService, InvalidObject
from gk.dav.vcard import InvalidAddressData, VCardObject, parse_vcard
from gk.events import ContactsChanged, Event
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo, StoredObject

CARDDAV = "urn:ietf:params:xml:ns:carddav"


@dataclass(frozen=True)
class FoundCard:
    """A card that matched L{ContactService.find}, and where it is."""

    #: The address book's name.
    collection: str
    #: The resource's name in it.
    name: str
    card: VCardObject


def digits(text: str) -> str:
    """The digits of a telephone number, for comparing numbers however written."""
    return "".join(c for c in text if c.isdigit())


def card_matches(card: VCardObject, needle: str) -> bool:
    """
    Whether C{needle} (case-folded) is in the card's name, nickname,
    organization or an address, or, when it has three digits or more, in
    a telephone number compared by digits only.
    """
    fields = (card.fn, card.nickname, card.organization, *card.emails)
    if any(needle in value.casefold() for value in fields):
        return True
    wanted = digits(needle)
    return len(wanted) >= 3 and any(wanted in digits(tel) for tel in card.tels)


class ContactService(CollectionService):
    """Address books; see L{CollectionService}."""

    kind = dav_store.ADDRESSBOOK
    size_precondition = f"{{{CARDDAV}}}max-resource-size"

    def check(self, data: bytes, collection: CollectionInfo) -> CheckedObject:
        try:
            card = parse_vcard(data)
        except InvalidAddressData as e:
            raise InvalidObject(str(e), f"{{{CARDDAV}}}valid-address-data") from None
        return CheckedObject(
            data=card.data,
            uid=card.uid,
            component="VCARD",
            summary=card.fn,
            emails=tuple(e.lower() for e in card.emails),
        )

    def changed(self, account: Account, collection: str, name: str, action: str) -> Event:
        return ContactsChanged(account.id, collection, name, action)

    async def search(self, account: Account, text: str, limit: int = 20) -> list[StoredObject]:
        """Cards whose name or an address contains C{text} (any case), in any address book."""
        await self.ensure_defaults(account)
        return await self.db.read(lambda s: dav_store.search_cards(s, account.id, text, limit))

    async def find(self, account: Account, text: str, limit: int = 20) -> list[FoundCard]:
        """
        Up to C{limit} cards of all the account's address books that
        L{card_matches} C{text} (trimmed; empty matches every card), by
        name as folded.  Unlike L{search}, which reads the index, this
        reads the cards (telephone numbers and organizations are not
        indexed): parsing runs in the database thread, off the reactor.
        """
        needle = text.strip().casefold()
        await self.ensure_defaults(account)

        def read(session: Session) -> list[FoundCard]:
            found: list[FoundCard] = []
            for book in dav_store.list_collections(session, account.id, self.kind):
                for entry in dav_store.card_entries(session, book.id, with_data=True):
                    try:
                        card = parse_vcard(entry.data)
                    except InvalidAddressData:
                        continue  # checked when stored; one gone bad is skipped
                    if card_matches(card, needle):
                        found.append(FoundCard(book.name, entry.name, card))
            found.sort(key=lambda f: (f.card.fn.casefold(), f.collection, f.name))
            return found[: max(0, limit)]

        return await self.db.read(read)
