"""
How the mail tools name things to the model, and read the names back:
message ids, folder names, page tokens, and the one shape of a message in
a list.

A message id is C{"<folder row id>-<UID>"}, e.g. C{"3-42"}: short, and
never reused, since folder row ids are never reused (AUTOINCREMENT) and
UIDs within a folder only grow.  It is scoped to the caller's mailbox:
an id whose folder is another user's answers exactly as one that does
not exist.  Moving a message gives it a new id (the tools return it);
renaming a folder through IMAP does too (the rename gives the folder a
new row), which the model recovers from by listing again.

A page token is the L{Position} where a page ended, so the next page is
"strictly older than that", whatever arrived meanwhile.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from gk.assistant.arguments import rfc3339
from gk.assistant.tools import JSON, ToolContext, ToolError
from gk.mailboxes import MailboxService
from gk.storage.mail_search import FolderRef, MessageSummary, Position

_ID = re.compile(r"\s*(\d{1,18})-(\d{1,18})\s*")
_PAGE = re.compile(r"\s*([0-9a-z]{1,14})\.([0-9a-z]{1,14})\s*")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)

#: Names a model may use for a folder with a special use (English and French).
_SPECIAL_NAMES = {
    "\\Sent": ("sent", "sent mail", "sent items", "envoyés", "envoyes", "messages envoyés"),
    "\\Trash": ("trash", "bin", "deleted", "deleted items", "corbeille"),
    "\\Junk": ("junk", "spam", "indésirables", "indesirables", "courrier indésirable"),
    "\\Drafts": ("drafts", "draft", "brouillons", "brouillon"),
    "\\Archive": ("archive", "archives"),
}
_INBOX_NAMES = ("inbox", "boîte de réception", "boite de reception", "réception", "reception")

ID_DESCRIPTION = 'A message id exactly as list_emails or search_emails returned it, e.g. "3-42".'
PAGE_DESCRIPTION = (
    "To get the next page: the `next` value of the previous result of this same query; "
    "omit for the first page."
)
LIMIT_SCHEMA: JSON = {
    "type": "integer",
    "minimum": 1,
    "maximum": 100,
    "description": "How many emails per page (default 20, at most 100).",
}

#: One message in a list (list_emails, search_emails).
EMAIL_ITEM_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "folder": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "subject": {"type": "string"},
        "date": {"type": "string", "description": "RFC 3339, in the user's time zone"},
        "unread": {"type": "boolean"},
        "flagged": {"type": "boolean"},
        "answered": {"type": "boolean"},
        "size": {"type": "integer", "description": "bytes"},
    },
    "required": ["id", "folder", "from", "to", "subject", "date", "unread", "flagged", "size"],
}


def message_id(folder_id: int, uid: int) -> str:
    """The id the model sees for message C{uid} of the folder with row id C{folder_id}."""
    return f"{folder_id}-{uid}"


def _no_message(text: object) -> ToolError:
    return ToolError(f"no message with id {text!r}; use list_emails or search_emails to find ids")


def encode_page(position: Position) -> str:
    micros = (position.internal_date - _EPOCH) // _MICROSECOND
    return f"{_base36(micros)}.{_base36(position.row_id)}"


def decode_page(token: str) -> Position:
    """@raise ToolError: not a token this tool gave."""
    match = _PAGE.fullmatch(token.lower())
    if match is None:
        raise ToolError(
            f"invalid page {token!r}: pass the `next` value of the previous result unchanged, "
            "or leave page out for the first page"
        )
    when = _EPOCH + int(match[1], 36) * _MICROSECOND
    return Position(when, int(match[2], 36))


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def when_shown(message: MessageSummary, context: ToolContext) -> str:
    """The message's date (its Date field, else arrival) in the user's zone."""
    return rfc3339((message.date or message.internal_date).astimezone(context.timezone))


def email_item(message: MessageSummary, context: ToolContext) -> JSON:
    """A message as list_emails and search_emails show it (L{EMAIL_ITEM_SCHEMA})."""
    return {
        "id": message_id(message.folder.id, message.uid),
        "folder": message.folder.name,
        "from": message.from_,
        "to": message.to,
        "subject": message.subject,
        "date": when_shown(message, context),
        "unread": not message.seen,
        "flagged": message.flagged,
        "answered": message.answered,
        "size": message.size,
    }


class MailLookup:
    """Reads the model's names for folders and messages, for one caller at a time."""

    def __init__(self, mailboxes: MailboxService) -> None:
        self.mailboxes = mailboxes

    async def folders(self, context: ToolContext) -> list[FolderRef]:
        return await self.mailboxes.folder_refs(context.account)

    async def folder(self, context: ToolContext, name: str) -> FolderRef:
        """@raise ToolError: the caller has no such folder (the message lists them)."""
        return find_folder(await self.folders(context), name)

    async def message(self, context: ToolContext, text: Any) -> MessageSummary:
        """
        The caller's message the id C{text} names.

        @raise ToolError: no such message, or not the caller's (the same answer).
        """
        match = _ID.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise _no_message(text)
        found = await self.mailboxes.locate(context.account, int(match[1]), int(match[2]))
        if found is None:
            raise _no_message(text)
        return found


def find_folder(folders: list[FolderRef], name: str) -> FolderRef:
    """
    The folder C{name} names: its exact name (INBOX in any case), else the
    one name that differs only in case, else the folder with the special
    use that English or French word stands for ("trash", "corbeille").

    @raise ToolError: none (the message lists the folders).
    """
    wanted = name.strip().strip("/")
    for folder in folders:
        if folder.name == wanted or (folder.name == "INBOX" and wanted.upper() == "INBOX"):
            return folder
    folded = wanted.casefold()
    same = [f for f in folders if f.name.casefold() == folded]
    if len(same) == 1:
        return same[0]
    if folded in _INBOX_NAMES:
        for folder in folders:
            if folder.name == "INBOX":
                return folder
    for special, names in _SPECIAL_NAMES.items():
        if folded in names or folded == special.casefold():
            for folder in folders:
                if folder.special_use == special:
                    return folder
    known = ", ".join(f.name for f in folders)
    raise ToolError(f"there is no folder {name!r}; the folders are: {known}")


def special_folder(folders: list[FolderRef], special_use: str) -> FolderRef | None:
    """The folder with RFC 6154 C{special_use} (e.g. C{\\Trash}), if any."""
    return next((f for f in folders if f.special_use == special_use), None)
