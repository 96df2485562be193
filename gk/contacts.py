"""
L{ContactService}: a user's address books (CardDAV collections) and the
vCards in them, and the search the assistant uses to resolve a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gk.collections_service import CheckedObject, CollectionService, InvalidObject
from gk.dav.report_common import LRU
from gk.dav.vcard import InvalidAddressData, VCardObject, parse_vcard
from gk.events import ContactsChanged, Event
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.dav_store import CollectionInfo, StoredObject
from gk.storage.models import DavObject

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


@dataclass(frozen=True)
class Searchable:
    """What L{card_matches} reads of a card, folded once (kept by entity tag)."""

    #: The formatted name, case-folded: what results are sorted by.
    folded_name: str
    #: Name, nickname, organization and addresses, case-folded.
    texts: tuple[str, ...]
    #: The digits of each telephone number.
    phones: tuple[str, ...]

    @classmethod
    def of(cls, card: VCardObject) -> Searchable:
        texts = (card.fn, card.nickname, card.organization, *card.emails)
        return cls(
            card.fn.casefold(),
            tuple(t.casefold() for t in texts),
            tuple(digits(tel) for tel in card.tels),
        )

    def matches(self, needle: str) -> bool:
        """L{card_matches} for a C{needle} already case-folded."""
        if any(needle in value for value in self.texts):
            return True
        wanted = digits(needle)
        return len(wanted) >= 3 and any(wanted in phone for phone in self.phones)

    @property
    def weight(self) -> int:
        """Approximate bytes held."""
        return 200 + sum(len(t) + 50 for t in (*self.texts, *self.phones))


def card_matches(card: VCardObject, needle: str) -> bool:
    """
    Whether C{needle} (case-folded) is in the card's name, nickname,
    organization or an address, or, when it has three digits or more, in
    a telephone number compared by digits only.
    """
    return Searchable.of(card).matches(needle)


class _Unparsable:
    """Remembered for a card that does not parse (checked when stored; gone bad since)."""

    weight = 64


_UNPARSABLE = _Unparsable()

#: Searchable fields by entity tag.  The store sets an object's tag from
#: its bytes on every write (L{gk.storage.dav_common.make_etag}), so an
#: entry never answers for a changed card, and a deleted one is no longer
#: listed; entries age out.  A few hundred bytes each.
searchables: LRU[str, Searchable | _Unparsable] = LRU(
    100_000, 8 * 1024 * 1024, lambda value: value.weight
)
#: Whole cards by entity tag, for those L{ContactService.find} returns.
parsed_cards: LRU[str, VCardObject] = LRU(
    2_000, 4 * 1024 * 1024, lambda card: 1_000 + 4 * len(card.data)
)


@dataclass(frozen=True)
class _Listed:
    """A card of an address book as L{ContactService.find} matches it."""

    book: CollectionInfo
    name: str
    etag: str
    fields: Searchable


def _parse(data: bytes) -> VCardObject | None:
    try:
        return parse_vcard(data)
    except InvalidAddressData:
        return None


def _tags(session: Session, collection_id: int) -> list[tuple[str, str]]:
    """
    (name, entity tag) of every resource of a collection: the two columns
    only (L{dav_store.list_objects} reads and converts five more, which
    costs more than the whole search otherwise does).
    """
    query = select(DavObject.name, DavObject.etag).where(DavObject.collection_id == collection_id)
    return [(str(name), str(etag)) for name, etag in session.execute(query)]


def _listed(
    session: Session, book: CollectionInfo, parsed: dict[str, VCardObject]
) -> list[_Listed]:
    """
    Every card of C{book} that parses, with its searchable fields: from
    L{searchables}, else read and parsed (then remembered, and the card
    put in C{parsed} for this call).  Blocking.
    """
    found: list[_Listed] = []
    missing: list[str] = []
    for name, etag in _tags(session, book.id):
        fields = searchables.get(etag)
        if fields is None:
            missing.append(name)
        elif isinstance(fields, Searchable):
            found.append(_Listed(book, name, etag, fields))
    for stored in dav_store.get_objects(session, book.id, missing) if missing else []:
        card = _parse(stored.data)
        if card is None:
            searchables.put(stored.etag, _UNPARSABLE)
            continue
        fields = Searchable.of(card)
        searchables.put(stored.etag, fields)
        parsed[stored.etag] = card
        found.append(_Listed(book, stored.name, stored.etag, fields))
    return found


def _cards(
    session: Session, chosen: list[_Listed], parsed: dict[str, VCardObject], needle: str
) -> list[FoundCard]:
    """
    The whole cards of C{chosen}, in order: parsed in this call, kept in
    L{parsed_cards}, else read and parsed again (one changed since it was
    listed is left out unless it still matches).  Blocking.
    """
    cards: dict[tuple[int, str], tuple[str, VCardObject]] = {}
    unread: dict[int, list[str]] = {}
    for m in chosen:
        card = parsed.get(m.etag) or parsed_cards.get(m.etag)
        if card is not None:
            cards[(m.book.id, m.name)] = (m.etag, card)
        else:
            unread.setdefault(m.book.id, []).append(m.name)
    for book_id, names in unread.items():
        for stored in dav_store.get_objects(session, book_id, names):
            card = _parse(stored.data)
            if card is not None and Searchable.of(card).matches(needle):
                cards[(book_id, stored.name)] = (stored.etag, card)
    found = []
    for m in chosen:
        if (kept := cards.get((m.book.id, m.name))) is not None:
            etag, card = kept
            parsed_cards.put(etag, card)
            found.append(FoundCard(m.book.name, m.name, card))
    return found


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
        indexed): each card's searchable fields are kept by entity tag
        (L{Searchable}), so only cards not seen before are read and
        parsed, and only the matches returned are kept whole; all of it
        in the database thread, off the reactor.
        """
        needle = text.strip().casefold()
        await self.ensure_defaults(account)

        def read(session: Session) -> list[FoundCard]:
            parsed: dict[str, VCardObject] = {}
            matched = [
                listed
                for book in dav_store.list_collections(session, account.id, self.kind)
                for listed in _listed(session, book, parsed)
                if listed.fields.matches(needle)
            ]
            matched.sort(key=lambda m: (m.fields.folded_name, m.book.name, m.name))
            return _cards(session, matched[: max(0, limit)], parsed, needle)

        return await self.db.read(read)
