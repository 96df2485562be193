"""
The web UI's contacts: the signed-in user's address books as one list,
searched by name, address, organisation or number, and a form to create,
change and delete a contact.

  - C{GET /contacts[?q=...]}: the list (the cards matching C{q});
  - C{GET /contacts/new}, C{POST /contacts}: a new contact (vCard 3.0, in
    the default address book, as the assistant's create_contact writes it);
  - C{GET /contacts/<book>/<name>}, C{POST /contacts/<book>/<name>}: a
    contact's form, and its change (only the fields changed are written;
    every other line of the card stays as it was);
  - C{POST /contacts/<book>/<name>/delete}: delete it.

Reading goes through L{ContactService} (L{ContactService.find} for the
list: cached, off the reactor); writing through the assistant's
create_contact and update_contact tools (the registry checks the
arguments, the tools check the values and write the card), so what the
web UI and the assistant write is the same; deleting is
L{ContactService.delete}.  CardDAV clients see every change and the
live C{contacts.changed} event fires.  A contact is only looked up in the
user's own address books: another user's answers 404.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gk.assistant.tools import JSON, ToolContext, ToolError
from gk.contacts import FoundCard
from gk.dav.vcard import InvalidAddressData, VCardObject, parse_vcard
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.web.page import FormProblem, Page, PageCall, PageError, Reply, page, redirect
from gk.web.views.contact_fields import (
    ContactForm,
    ContactValues,
    create_arguments,
    read_contact,
    tool_problem,
    update_arguments,
)

if TYPE_CHECKING:
    from gk.service import GkService

#: Most contacts the list shows (a search narrows it).
MAX_LISTED = 500
_MISSING = "There is no such contact in your address books."


def contact_path(book: str, name: str) -> str:
    """The page of a contact: C{/contacts/<book>/<name>}."""
    return f"/contacts/{urllib.parse.quote(book, safe='')}/{urllib.parse.quote(name, safe='')}"


class ContactPages:
    """The contacts pages (see the module docstring)."""

    def __init__(self, tree: GkService) -> None:
        self.contacts = tree.app.contacts
        self.tools = tree.tools
        self.zone = ZoneInfo(tree.app.config.assistant.timezone)

    def pages(self) -> list[Page]:
        return [
            page("GET", "/contacts", self.index),
            page("GET", "/contacts/new", self.new),
            page("POST", "/contacts", self.create),
            page("GET", "/contacts/{book}/{name}", self.show),
            page("POST", "/contacts/{book}/{name}", self.update),
            page("POST", "/contacts/{book}/{name}/delete", self.delete),
        ]

    # -- pages ----------------------------------------------------------------------------

    async def index(self, call: PageCall) -> Reply:
        return await self._page(call, deleted=call.query.get("deleted") == "1")

    async def new(self, call: PageCall) -> Reply:
        return await self._page(call, form=ContactForm(), creating=True)

    async def show(self, call: PageCall) -> Reply:
        book, name, card, _ = await self._card(call)
        return await self._page(
            call, form=ContactForm.from_card(card), current=(book, name),
            saved=call.query.get("saved") == "1",
        )  # fmt: skip

    # -- writing ----------------------------------------------------------------------------

    async def create(self, call: PageCall) -> Reply:
        form = ContactForm.from_form(call.form)
        try:
            values = read_contact(form)
            content = await self._run(call.account, "create_contact", create_arguments(values))
        except FormProblem as e:
            return await self._page(call, form=form, creating=True, problem=e)
        book, _, name = str(content["contact"]["contact_id"]).partition("/")
        return redirect(contact_path(book, name) + "?saved=1")

    async def update(self, call: PageCall) -> Reply:
        book, name, card, _ = await self._card(call)
        form = ContactForm.from_form(call.form)
        before: ContactValues | None
        try:
            before = read_contact(ContactForm.from_card(card))
        except FormProblem:
            before = None  # not something the form can show: every field is sent
        try:
            after = read_contact(form)
            arguments = update_arguments(f"{book}/{name}", before, after)
            if len(arguments) > 1:
                await self._run(call.account, "update_contact", arguments)
        except FormProblem as e:
            return await self._page(call, form=form, current=(book, name), problem=e)
        return redirect(contact_path(book, name) + "?saved=1")

    async def delete(self, call: PageCall) -> Reply:
        book, name, _, etag = await self._card(call)
        try:
            await self.contacts.delete(call.account, book, name, if_match=etag)
        except dav_store.PreconditionFailed:
            raise PageError(
                409, "The contact changed meanwhile: reload it and try again."
            ) from None
        except (dav_store.NoSuchCollection, dav_store.NoSuchObject):
            raise PageError(404, _MISSING) from None
        return redirect("/contacts?deleted=1")

    # -- helpers ----------------------------------------------------------------------------

    async def _card(self, call: PageCall) -> tuple[str, str, VCardObject, str]:
        """
        The user's card the URL names: its book, name, card and entity tag.

        @raise PageError: 404, the user has none such (or it no longer parses).
        """
        book, name = call.params["book"], call.params["name"]
        try:
            stored = await self.contacts.get(call.account, book, name)
            return book, name, parse_vcard(stored.data), stored.etag
        except (dav_store.NoSuchCollection, dav_store.NoSuchObject, dav_store.InvalidValue):
            raise PageError(404, _MISSING) from None
        except InvalidAddressData:
            raise PageError(404, "This contact's card cannot be read.") from None

    async def _run(self, account: Account, tool: str, arguments: JSON) -> JSON:
        """
        Run a contact tool for the user; its structured answer.

        @raise FormProblem: the tool refused (said for people).
        """
        context = ToolContext(account, self.zone)
        try:
            prepared = await self.tools.prepare(context, tool, arguments)
        except ToolError as e:
            raise tool_problem(str(e)) from None
        outcome = await self.tools.run(prepared)
        if outcome.is_error or outcome.content is None:
            raise tool_problem(outcome.text)
        return outcome.content

    async def _page(
        self,
        call: PageCall,
        *,
        form: ContactForm | None = None,
        current: tuple[str, str] | None = None,
        creating: bool = False,
        problem: FormProblem | None = None,
        saved: bool = False,
        deleted: bool = False,
    ) -> Reply:
        query = call.query.get("q", "").strip()[:200]
        found = await self.contacts.find(call.account, query, MAX_LISTED + 1)
        context: dict[str, Any] = {
            "nav": "contacts",
            "query": query,
            "listed": [_listed(f, current) for f in found[:MAX_LISTED]],
            "more": len(found) > MAX_LISTED,
            "form": form,
            "creating": creating,
            "action": contact_path(*current) if current else "/contacts",
            "error": problem.message if problem else "",
            "error_field": problem.field if problem else "",
            "saved": saved,
            "deleted": deleted,
        }
        return call.render("contacts.html", status=400 if problem else 200, **context)


def _listed(found: FoundCard, current: tuple[str, str] | None) -> dict[str, Any]:
    """One line of the list."""
    card = found.card
    return {
        "href": contact_path(found.collection, found.name),
        "name": card.fn or (card.emails[0] if card.emails else "(no name)"),
        "detail": card.organization or (card.emails[0] if card.emails else ""),
        "current": current == (found.collection, found.name),
    }
