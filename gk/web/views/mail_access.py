"""
What the mail pages share: reading the ids in URLs and forms within the
signed-in user's mailbox, the folder list of the sidebar, and the small
shapes the templates show.

Ids are the assistant's (L{gk.assistant.mail_lookup}): a message is
C{"<folder row id>-<UID>"}, a folder its row id.  Both are resolved within
the caller's mailbox only: another user's id answers 404 exactly as one
that never existed.  Moving a message gives it a new id, as it does for
the assistant.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gk.app import GkApp
from gk.assistant.mail_lookup import decode_page, encode_page, message_id
from gk.assistant.tools import ToolError
from gk.mailboxes import MailboxService
from gk.storage.accounts import Account
from gk.storage.mail_search import FolderCount, FolderRef, MessageSummary, Position
from gk.web.page import PageError
from gk.web.views.login import safe_next

_ID = re.compile(r"(\d{1,18})-(\d{1,18})")

#: Where the special folders come in the sidebar, after INBOX.
_SPECIAL_ORDER = {"\\Drafts": 1, "\\Sent": 2, "\\Archive": 3, "\\Junk": 4, "\\Trash": 5}
#: Folders a search of "all folders" and a conversation leave out.
NOT_SEARCHED = ("\\Trash", "\\Junk")
#: Short messages shown after an action (a fixed set: nothing from the URL is shown).
NOTICES = {
    "sent": "Message sent.",
    "saved": "Draft saved.",
    "moved": "Moved.",
    "deleted": "Moved to the trash.",
    "purged": "Deleted for good.",
    "changed": "Done.",
}


@dataclass(frozen=True)
class FolderItem:
    """A folder of the sidebar."""

    id: int
    name: str
    label: str
    special_use: str | None
    total: int
    unread: int


def parse_message_id(text: str) -> tuple[int, int] | None:
    """C{"3-42"} as C{(3, 42)}; None when it is not an id of that form."""
    match = _ID.fullmatch(text.strip())
    return None if match is None else (int(match[1]), int(match[2]))


def folder_label(folder: FolderRef) -> str:
    return "Inbox" if folder.name == "INBOX" else folder.name


def mail_id(message: MessageSummary) -> str:
    return message_id(message.folder.id, message.uid)


def page_token(position: Position) -> str:
    return encode_page(position)


def read_page_token(token: str) -> Position:
    """@raise PageError: 400, not a token a page of gk gave."""
    try:
        return decode_page(token)
    except ToolError:
        raise PageError(400, "That page link is not valid; go back to the first page.") from None


def back_target(value: str, default: str) -> str:
    """Where to go after an action: a mail page of gk's own, else C{default}."""
    target = safe_next(value) if value else default
    return target if target.startswith("/mail") else default


def person(value: str) -> str:
    """The first name (else address) of an address field, for a list."""
    pairs = email.utils.getaddresses([value]) if value else []
    for display, address in pairs:
        if display.strip() or address.strip():
            return display.strip() or address.strip()
    return value.strip()


class MailAccess:
    """The caller's folders and messages, by the ids the pages use."""

    def __init__(self, app: GkApp) -> None:
        self.app = app
        self.mailboxes: MailboxService = app.mailboxes
        self.zone = ZoneInfo(app.config.assistant.timezone)

    async def folders(self, account: Account) -> list[FolderItem]:
        """The sidebar: INBOX, the special folders, then the others by name."""
        counts: list[FolderCount] = await self.mailboxes.folder_counts(account)
        items = [
            FolderItem(
                c.folder.id,
                c.folder.name,
                folder_label(c.folder),
                c.folder.special_use,
                c.total,
                c.unread,
            )
            for c in counts
        ]

        def order(item: FolderItem) -> tuple[int, str]:
            if item.name == "INBOX":
                return (0, "")
            return (_SPECIAL_ORDER.get(item.special_use or "", 9), item.name.casefold())

        return sorted(items, key=order)

    async def refs(self, account: Account) -> list[FolderRef]:
        return await self.mailboxes.folder_refs(account)

    async def folder(self, account: Account, folder_id: int) -> FolderRef:
        """@raise PageError: 404, the caller has no such folder."""
        for folder in await self.refs(account):
            if folder.id == folder_id:
                return folder
        raise PageError(404, "There is no such folder.")

    async def inbox(self, account: Account) -> FolderRef:
        for folder in await self.refs(account):
            if folder.name == "INBOX":
                return folder
        raise PageError(404, "There is no inbox.")

    async def special(self, account: Account, special_use: str, name: str) -> FolderRef | None:
        """The folder with RFC 6154 C{special_use}, else the one called C{name}."""
        folders = await self.refs(account)
        found = next((f for f in folders if f.special_use == special_use), None)
        return found or next((f for f in folders if f.name == name), None)

    async def message(self, account: Account, text: str) -> MessageSummary:
        """
        The caller's message the id C{text} names.

        @raise PageError: 404, no such message or not the caller's (the same answer).
        """
        parsed = parse_message_id(text)
        found = None if parsed is None else await self.mailboxes.locate(account, *parsed)
        if found is None:
            raise PageError(404, "There is no such message; it may have been moved or deleted.")
        return found

    async def read(self, account: Account, message: MessageSummary) -> bytes:
        """The message's bytes. @raise PageError: 404, its file is gone."""
        [data] = await self.mailboxes.read_files(account, [message])
        if data is None:
            raise PageError(404, "That message is no longer there.")
        return data
