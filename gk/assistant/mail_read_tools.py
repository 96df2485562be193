"""
The mail tools that only look: list_folders, list_emails, search_emails,
read_email.

Lists and searches read the index only (L{gk.storage.mail_search}): one
or two database trips per call, whatever the mailbox's size.  The one
exception is the C{text} criterion of search_emails, which must look
inside messages: it walks the candidates newest first, takes a message
whose subject or addresses match without opening it, and reads the
bodies of the others up to a budget per call (L{MAX_BODIES}, L{MAX_BODY_BYTES}).
When the budget runs out first the page ends there, says so, and its
C{next} token carries on from that point: a search of any mailbox stays
a bounded piece of work per call, and paging through covers everything.

Whatever comes out of a message (subject, addresses, body) is returned as
fields of the structured content, never woven into prose: it is data the
model reads, not instructions.
"""

from __future__ import annotations

import datetime
from collections import deque
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread

from gk.assistant.arguments import parse_when
from gk.assistant.mail_content import MessageContent, contains_text, message_content
from gk.assistant.mail_lookup import (
    EMAIL_ITEM_SCHEMA,
    ID_DESCRIPTION,
    LIMIT_SCHEMA,
    PAGE_DESCRIPTION,
    MailLookup,
    decode_page,
    email_item,
    encode_page,
    find_folder,
    message_id,
    when_shown,
)
from gk.assistant.tools import (
    JSON,
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolResult,
    render,
)
from gk.mailboxes import MailboxService
from gk.storage.mail_search import Criteria, FolderRef, MessageSummary, Position

#: Bodies read by one search_emails call with C{text}, at most ...
MAX_BODIES = 100
#: ... and bytes (the first body is read whatever its size).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Candidates fetched from the index at a time while searching bodies.
_BATCH = 50
#: Characters of text read_email returns at most.
MAX_TEXT = 20_000
#: Folders a search without C{folder} leaves out.
_NOT_SEARCHED = ("\\Trash", "\\Junk")

_READ_ONLY = ToolAnnotations(read_only=True, idempotent=True)

_PAGE_OUTPUT: JSON = {
    "emails": {"type": "array", "items": EMAIL_ITEM_SCHEMA},
    "next": {
        "type": ["string", "null"],
        "description": "pass as `page` for the next page; null when there is no more",
    },
}


class MailReader:
    """The handlers of the read tools, over one L{MailboxService}."""

    def __init__(self, mailboxes: MailboxService) -> None:
        self.mailboxes = mailboxes
        self.lookup = MailLookup(mailboxes)

    async def list_folders(self, context: ToolContext, arguments: JSON) -> ToolResult:
        counts = await self.mailboxes.folder_counts(context.account)
        folders = [
            {
                "name": c.folder.name,
                "special_use": _role(c.folder.special_use),
                "total": c.total,
                "unread": c.unread,
            }
            for c in counts
        ]
        content = {"folders": folders}
        return ToolResult(content, render(content))

    async def list_emails(self, context: ToolContext, arguments: JSON) -> ToolResult:
        folder = await self.lookup.folder(context, arguments.get("folder") or "INBOX")
        unread = True if arguments.get("unread_only") else None
        found, next_page = await self._page(context, [folder], Criteria(unread=unread), arguments)
        content = {"folder": folder.name, "emails": found, "next": next_page}
        return ToolResult(content, render(content))

    async def search_emails(self, context: ToolContext, arguments: JSON) -> ToolResult:
        folders = await self.lookup.folders(context)
        if arguments.get("folder"):
            searched = [find_folder(folders, arguments["folder"])]
        else:
            searched = [f for f in folders if f.special_use not in _NOT_SEARCHED]
        since = _when(arguments, "since", context)
        before = _when(arguments, "before", context)
        if since is not None and before is not None and since >= before:
            raise ToolError("`since` must be earlier than `before`")
        criteria = Criteria(
            sender=arguments.get("sender", "").strip(),
            recipient=arguments.get("recipient", "").strip(),
            subject=arguments.get("subject", "").strip(),
            since=since,
            before=before,
            unread=arguments.get("unread"),
            flagged=arguments.get("flagged"),
        )
        content: JSON = {"folders": [f.name for f in searched]}
        text = arguments.get("text", "").strip()
        if text:
            found, next_page, complete = await self._walk(
                context, searched, criteria, text, arguments
            )
            content["body_search_complete"] = complete
        else:
            found, next_page = await self._page(context, searched, criteria, arguments)
        content.update(emails=found, next=next_page)
        shown = render(content)
        if text and not content["body_search_complete"]:
            shown += (
                "\n(this call searched the bodies of a limited number of emails; "
                "older ones were not searched: call again with page=next to go on)"
            )
        return ToolResult(content, shown)

    async def read_email(self, context: ToolContext, arguments: JSON) -> ToolResult:
        message = await self.lookup.message(context, arguments["id"])
        [data] = await self.mailboxes.read_files(context.account, [message])
        if data is None:
            raise ToolError(
                f"the message {arguments['id']!r} is no longer there; "
                "use list_emails or search_emails to find ids"
            )
        parsed: MessageContent = await deferToThread(message_content, data)
        if not message.seen:
            await self.mailboxes.set_flags(
                context.account, message.folder.name, [message.uid], "add", {"\\Seen"}
            )
        text = parsed.text
        content: JSON = {
            "id": message_id(message.folder.id, message.uid),
            "folder": message.folder.name,
            "from": message.from_,
            "reply_to": message.reply_to,
            "to": message.to,
            "cc": message.cc,
            "date": when_shown(message, context),
            "subject": message.subject,
            "message_id": message.message_id,
            "flagged": message.flagged,
            "answered": message.answered,
            "marked_read": not message.seen,
            "text": text[:MAX_TEXT],
            "text_truncated": len(text) > MAX_TEXT,
            "text_from_html": parsed.from_html,
            "attachments": [
                {"filename": a.filename, "type": a.content_type, "size": a.size}
                for a in parsed.attachments
            ],
        }
        return ToolResult(content, render(content))

    async def _page(
        self,
        context: ToolContext,
        folders: list[FolderRef],
        criteria: Criteria,
        arguments: JSON,
    ) -> tuple[list[JSON], str | None]:
        """One page of the index query: the items and the next page's token."""
        limit = arguments.get("limit", 20)
        after = decode_page(arguments["page"]) if arguments.get("page") else None
        found = await self.mailboxes.find_messages(
            context.account, [f.id for f in folders], criteria, after, limit + 1
        )
        next_page = encode_page(found[limit - 1].position) if len(found) > limit else None
        return [email_item(m, context) for m in found[:limit]], next_page

    async def _walk(
        self,
        context: ToolContext,
        folders: list[FolderRef],
        criteria: Criteria,
        text: str,
        arguments: JSON,
    ) -> tuple[list[JSON], str | None, bool]:
        """
        One page of messages matching C{criteria} and containing C{text} in
        their subject, addresses or body; see the module docstring.

        @return: the items, the next page's token, and whether every
            candidate up to where the page ended had its body searched
            (False: the body budget ran out).
        """
        limit = arguments.get("limit", 20)
        position = decode_page(arguments["page"]) if arguments.get("page") else None
        needle = text.casefold()
        candidates = _Candidates(self.mailboxes, context, folders, criteria, position)
        hits: list[MessageSummary] = []
        bodies = size = 0
        while True:
            batch = await candidates.take(_BATCH)
            # The part of the batch this call judges: up to where the budget
            # runs out, or where enough subject/address matches make the page.
            judged: list[MessageSummary] = []
            to_read: list[MessageSummary] = []
            certain = len(hits)
            cut = False
            for message in batch:
                if certain > limit:
                    break
                if _header_match(message, needle):
                    certain += 1
                else:
                    if bodies >= MAX_BODIES or (bodies and size + message.size > MAX_BODY_BYTES):
                        cut = True
                        break
                    bodies += 1
                    size += message.size
                    to_read.append(message)
                judged.append(message)
            matched = await self._bodies_matching(context, to_read, needle)
            for message in judged:
                if message.row_id in matched or _header_match(message, needle):
                    hits.append(message)
                    if len(hits) > limit:
                        found = hits[:limit]
                        return _items(found, context), encode_page(found[-1].position), True
                position = message.position
            if cut:
                return _items(hits, context), _token(position), False
            if len(batch) < _BATCH:
                return _items(hits, context), None, True

    async def _bodies_matching(
        self, context: ToolContext, messages: list[MessageSummary], needle: str
    ) -> set[int]:
        """The row ids of C{messages} whose text contains C{needle}."""
        if not messages:
            return set()
        files = await self.mailboxes.read_files(context.account, messages)

        def scan() -> set[int]:
            return {
                m.row_id
                for m, data in zip(messages, files, strict=True)
                if data is not None and contains_text(data, needle)
            }

        matched: set[int] = await deferToThread(scan)
        return matched


@dataclass
class _Stream:
    """One folder's candidates: those fetched and not yet taken, and where to go on."""

    folder: FolderRef
    after: Position | None
    fetched: deque[MessageSummary] = field(default_factory=deque)
    exhausted: bool = False


class _Candidates:
    """
    The messages of several folders that match the criteria, newest first,
    each folder read a batch at a time as its messages are taken: a merge
    of one stream per folder, so that a walk fetches each row once.
    """

    def __init__(
        self,
        mailboxes: MailboxService,
        context: ToolContext,
        folders: list[FolderRef],
        criteria: Criteria,
        after: Position | None,
    ) -> None:
        self._mailboxes = mailboxes
        self._account = context.account
        self._criteria = criteria
        self._streams = [_Stream(folder, after) for folder in folders]

    async def take(self, count: int) -> list[MessageSummary]:
        """The next C{count} candidates (fewer only when there are no more)."""
        taken: list[MessageSummary] = []
        while len(taken) < count:
            # The folders run dry fetch together, each in a reader thread.
            await gatherResults(
                [
                    Deferred.fromCoroutine(self._fetch(stream))
                    for stream in self._streams
                    if not stream.fetched and not stream.exhausted
                ]
            )
            newest = max(
                (stream for stream in self._streams if stream.fetched),
                key=lambda stream: stream.fetched[0].position,
                default=None,
            )
            if newest is None:
                break
            taken.append(newest.fetched.popleft())
        return taken

    async def _fetch(self, stream: _Stream) -> None:
        found = await self._mailboxes.find_messages(
            self._account, [stream.folder.id], self._criteria, stream.after, _BATCH
        )
        stream.fetched.extend(found)
        stream.exhausted = len(found) < _BATCH
        if found:
            stream.after = found[-1].position


def _role(special_use: str | None) -> str | None:
    """RFC 6154 C{\\Sent} as the model reads it: C{sent}."""
    return special_use.lstrip("\\").lower() if special_use else None


def _header_match(message: MessageSummary, needle: str) -> bool:
    return any(
        needle in value.casefold()
        for value in (message.subject, message.from_, message.to, message.cc)
    )


def _items(messages: list[MessageSummary], context: ToolContext) -> list[JSON]:
    return [email_item(m, context) for m in messages]


def _token(position: Position | None) -> str | None:
    return None if position is None else encode_page(position)


def _when(arguments: JSON, name: str, context: ToolContext) -> datetime.datetime | None:
    value = arguments.get(name)
    return None if not value else parse_when(value, context, name)


def read_tools(mailboxes: MailboxService) -> list[Tool]:
    """list_folders, list_emails, search_emails and read_email."""
    reader = MailReader(mailboxes)
    return [
        Tool(
            name="list_folders",
            title="List mail folders",
            description=(
                "List the user's mail folders with how many emails each holds and how many "
                "are unread. special_use tells the role of a folder: sent, trash, junk, "
                "drafts, archive (null for INBOX and the user's own folders)."
            ),
            input_schema={"type": "object", "properties": {}, "additionalProperties": False},
            output_schema={
                "type": "object",
                "properties": {
                    "folders": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "special_use": {"type": ["string", "null"]},
                                "total": {"type": "integer"},
                                "unread": {"type": "integer"},
                            },
                            "required": ["name", "special_use", "total", "unread"],
                        },
                    }
                },
                "required": ["folders"],
            },
            handler=reader.list_folders,
            annotations=_READ_ONLY,
        ),
        Tool(
            name="list_emails",
            title="List emails",
            description=(
                "List the emails of one folder (INBOX unless told), newest first, a page at a "
                "time. Each email has an id to use with read_email, reply_email, move_email, "
                "flag_email and delete_email. To find emails by sender, subject, words or "
                "date, use search_emails instead."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "folder": {
                        "type": "string",
                        "description": "Folder name as list_folders gives it (default INBOX).",
                    },
                    "unread_only": {
                        "type": "boolean",
                        "description": "true: only unread emails (default false).",
                    },
                    "limit": LIMIT_SCHEMA,
                    "page": {"type": "string", "description": PAGE_DESCRIPTION},
                },
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {"folder": {"type": "string"}, **_PAGE_OUTPUT},
                "required": ["folder", "emails", "next"],
            },
            handler=reader.list_emails,
            annotations=_READ_ONLY,
        ),
        Tool(
            name="search_emails",
            title="Search emails",
            description=(
                "Find emails by sender, recipient, subject, words, date or unread state; "
                "every criterion given must match; text criteria are parts of words, any "
                "case. Searches every folder except Trash and Junk unless `folder` is given. "
                "Newest first, a page at a time. `text` also looks inside the bodies, of a "
                "bounded number of emails per call: when body_search_complete is false, "
                "call again with page=next to search older emails."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "sender": {
                        "type": "string",
                        "description": 'Part of the sender\'s name or address, e.g. "bob".',
                    },
                    "recipient": {
                        "type": "string",
                        "description": "Part of a To, Cc or Bcc name or address.",
                    },
                    "subject": {"type": "string", "description": "Part of the subject."},
                    "text": {
                        "type": "string",
                        "description": "Words to find anywhere: subject, addresses or body.",
                    },
                    "since": {
                        "type": "string",
                        "description": (
                            "Received at or after this: a date YYYY-MM-DD (the start of that "
                            "day) or an RFC 3339 date-time; without an offset, the user's "
                            "time zone."
                        ),
                    },
                    "before": {
                        "type": "string",
                        "description": (
                            "Received before this (exclusive): YYYY-MM-DD (before that day "
                            "starts) or an RFC 3339 date-time."
                        ),
                    },
                    "folder": {
                        "type": "string",
                        "description": "Search only this folder (e.g. Trash); default all.",
                    },
                    "unread": {
                        "type": "boolean",
                        "description": "true: only unread emails; false: only read ones.",
                    },
                    "flagged": {
                        "type": "boolean",
                        "description": "true: only flagged (starred) emails.",
                    },
                    "limit": LIMIT_SCHEMA,
                    "page": {"type": "string", "description": PAGE_DESCRIPTION},
                },
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    "folders": {"type": "array", "items": {"type": "string"}},
                    "body_search_complete": {
                        "type": "boolean",
                        "description": "with text: false when older bodies remain unsearched",
                    },
                    **_PAGE_OUTPUT,
                },
                "required": ["folders", "emails", "next"],
            },
            handler=reader.search_emails,
            annotations=_READ_ONLY,
        ),
        Tool(
            name="read_email",
            title="Read an email",
            description=(
                "Read one email: its headers, its text (HTML emails converted to plain text; "
                f"at most {MAX_TEXT} characters, text_truncated says when cut) and the list "
                "of its attachments. Reading marks the email as read, as opening it in a "
                "mail client does (marked_read says it was unread); flag_email with "
                "seen=false marks it unread again."
            ),
            input_schema={
                "type": "object",
                "properties": {"id": {"type": "string", "description": ID_DESCRIPTION}},
                "required": ["id"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    **{
                        name: {"type": "string"}
                        for name in (
                            "id",
                            "folder",
                            "from",
                            "reply_to",
                            "to",
                            "cc",
                            "date",
                            "subject",
                            "message_id",
                            "text",
                        )
                    },
                    **{
                        name: {"type": "boolean"}
                        for name in (
                            "flagged",
                            "answered",
                            "marked_read",
                            "text_truncated",
                            "text_from_html",
                        )
                    },
                    "attachments": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "filename": {"type": "string"},
                                "type": {"type": "string"},
                                "size": {"type": "integer"},
                            },
                            "required": ["filename", "type", "size"],
                        },
                    },
                },
                "required": ["id", "folder", "from", "to", "date", "subject", "text"],
            },
            handler=reader.read_email,
            annotations=_READ_ONLY,
        ),
    ]
