"""
L{ContactService}: a user's address books (CardDAV collections) and the
vCards in them, and the search the assistant uses to resolve a name.
"""

from __future__ import annotations

from gk.collections_service import CheckedObject, CollectionService, InvalidObject
from gk.dav.vcard import InvalidAddressData, parse_vcard
from gk.events import ContactsChanged, Event
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo, StoredObject

CARDDAV = "urn:ietf:params:xml:ns:carddav"


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
