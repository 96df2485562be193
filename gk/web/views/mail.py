"""
The web UI's mail pages: the folder list with unread counts, a folder's
messages a page at a time, search, the reading view (HTML mail in a
sandboxed frame, L{gk.web.mail_render}), attachment downloads, and the
actions on messages: read/unread, flag, move, delete.  Writing mail is
in L{gk.web.views.mail_compose}.

Everything goes through L{gk.mailboxes.MailboxService}, as IMAP and the
assistant do, and every id from a URL or a form is resolved within the
signed-in user's mailbox (L{MailAccess}).

Pages are cut by keyset (L{gk.storage.mail_search}): C{?older=TOKEN} is
the page after the message the token names, C{?newer=TOKEN} the page
before it, so mail arriving while someone pages never shifts a page.

Opening a message (GET C{/mail/m/ID}) marks it read, as opening it in
any mail client does (IMAP FETCH BODY[], the assistant's read_email);
"Mark unread" goes back to the folder so that it stays unread.  The
frame's document and the downloads change nothing.

A conversation is found by the message's References, In-Reply-To and
Message-ID (L{MailboxService.thread}): what the clients of a discussion
write, whatever its subject became.
"""

from __future__ import annotations

import datetime
import shlex
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup
from twisted.internet.threads import deferToThread

from gk.mailboxes import NoSuchFolder
from gk.storage.accounts import Account
from gk.storage.mail_search import Criteria, FolderRef, MessageSummary
from gk.web.mail_render import (
    DOWNLOAD_CSP,
    RenderedMessage,
    download_headers,
    frame_document,
    frame_policy,
    part_data,
    render_message,
    text_to_html,
)
from gk.web.page import Page, PageCall, PageError, Reply, page, redirect
from gk.web.views.mail_access import (
    NOT_SEARCHED,
    NOTICES,
    MailAccess,
    back_target,
    folder_label,
    mail_id,
    page_token,
    person,
    read_page_token,
)
from gk.web.views.mail_compose import MailComposePages

if TYPE_CHECKING:
    from gk.service import GkService

#: Messages on a page of a folder.
PAGE_SIZE = 50
#: The longest search accepted.
MAX_QUERY = 200
#: Messages a bulk action takes at most (a page's worth, and some).
MAX_SELECTED = 200
#: Words of a search, at most (each is a condition of the query).
MAX_WORDS = 8
#: Messages of a conversation listed at most.
MAX_THREAD = 100

_ACTIONS = ("read", "unread", "flag", "unflag", "delete", "move")


@dataclass(frozen=True)
class ListRow:
    """A message as a folder's list shows it."""

    id: str
    href: str
    who: str
    subject: str
    when: datetime.datetime
    unread: bool
    flagged: bool
    answered: bool
    draft: bool
    folder: str


def parse_query(text: str) -> Criteria:
    """
    A search box's words as criteria: C{from:}, C{to:}, C{subject:} and
    C{is:unread}, C{is:read}, C{is:flagged}; each other word (quotes keep
    words together) must appear in the sender, recipients or subject.

    @raise PageError: 400, more than L{MAX_WORDS} words.
    """
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        words = text.split()
    fields = {"from": "", "to": "", "subject": ""}
    unread: bool | None = None
    flagged: bool | None = None
    rest: list[str] = []
    if len(words) > MAX_WORDS:
        raise PageError(400, f"A search may have at most {MAX_WORDS} words.")
    for word in words:
        key, colon, value = word.partition(":")
        key = key.lower()
        if colon and key in fields and value:
            fields[key] = value
        elif colon and key == "is" and value.lower() in ("unread", "read", "flagged"):
            if value.lower() == "flagged":
                flagged = True
            else:
                unread = value.lower() == "unread"
        else:
            rest.append(word)
    return Criteria(
        sender=fields["from"],
        recipient=fields["to"],
        subject=fields["subject"],
        unread=unread,
        flagged=flagged,
        words=tuple(rest),
    )


def _row(message: MessageSummary, outgoing: bool) -> ListRow:
    ident = mail_id(message)
    href = f"/mail/compose?draft={ident}" if message.draft else f"/mail/m/{ident}"
    who = person(message.to) if outgoing else person(message.from_)
    return ListRow(
        id=ident,
        href=href,
        who=("To: " + who) if outgoing and who else (who or "(unknown sender)"),
        subject=message.subject or "(no subject)",
        when=message.date or message.internal_date,
        unread=not message.seen,
        flagged=message.flagged,
        answered=message.answered,
        draft=message.draft,
        folder=folder_label(message.folder),
    )


class MailPages:
    """The mail part of the web UI (its compose pages included)."""

    def __init__(self, tree: GkService) -> None:
        self.tree = tree
        self.access = MailAccess(tree.app)
        self.mailboxes = tree.app.mailboxes
        self.compose = MailComposePages(tree.app, self.access)

    def pages(self) -> list[Page]:
        return [
            page("GET", "/mail", self.inbox),
            page("GET", "/mail/f/{folder:int}", self.folder),
            page("GET", "/mail/m/{id}", self.message),
            page("GET", "/mail/m/{id}/body", self.body),
            page("GET", "/mail/m/{id}/part/{n:int}", self.part),
            page("POST", "/mail/m/{id}/flag", self.flag),
            page("POST", "/mail/m/{id}/move", self.move),
            page("POST", "/mail/m/{id}/delete", self.delete),
            page("POST", "/mail/act", self.act),
            *self.compose.pages(),
        ]

    # -- lists ---------------------------------------------------------------

    async def inbox(self, call: PageCall) -> Reply:
        return await self._list(call, await self.access.inbox(call.account))

    async def folder(self, call: PageCall) -> Reply:
        return await self._list(call, await self.access.folder(call.account, call.params["folder"]))

    async def _list(self, call: PageCall, folder: FolderRef) -> Reply:
        account = call.account
        query = call.query.get("q", "").strip()
        if len(query) > MAX_QUERY:
            raise PageError(400, f"A search may be at most {MAX_QUERY} characters long.")
        everywhere = bool(query) and call.query.get("scope") == "all"
        criteria = parse_query(query) if query else Criteria()
        folders = await self.access.folders(account)
        searched = (
            [f.id for f in folders if f.special_use not in NOT_SEARCHED]
            if everywhere
            else [folder.id]
        )
        older, newer = call.query.get("older", ""), call.query.get("newer", "")
        if newer:
            found = await self.mailboxes.find_newer(
                account, searched, criteria, read_page_token(newer), PAGE_SIZE + 1
            )
            has_newer, has_older = len(found) > PAGE_SIZE, True
            found = found[-PAGE_SIZE:]
        else:
            after = read_page_token(older) if older else None
            found = await self.mailboxes.find_messages(
                account, searched, criteria, after, PAGE_SIZE + 1
            )
            has_newer, has_older = after is not None, len(found) > PAGE_SIZE
            found = found[:PAGE_SIZE]
        outgoing = folder.special_use in ("\\Sent", "\\Drafts") and not everywhere
        rows = [_row(m, outgoing) for m in found]
        here = f"/mail/f/{folder.id}"
        keep = {k: v for k, v in (("q", query), ("scope", "all" if everywhere else "")) if v}

        def link(**extra: str) -> str:
            params = urllib.parse.urlencode({**keep, **extra})
            return here + ("?" + params if params else "")

        current = next(f for f in folders if f.id == folder.id)
        return call.render(
            "mail_list.html",
            nav="mail",
            folders=folders,
            current=current,
            rows=rows,
            query=query,
            everywhere=everywhere,
            zone=self.access.zone,
            newer_link=link(newer=page_token(found[0].position)) if found and has_newer else "",
            older_link=link(older=page_token(found[-1].position)) if found and has_older else "",
            first_link=link() if has_newer else "",
            back=call.request.uri.decode("ascii", "replace"),
            notice=NOTICES.get(call.query.get("notice", ""), ""),
            is_trash=folder.special_use == "\\Trash",
        )

    # -- reading ---------------------------------------------------------------

    async def message(self, call: PageCall) -> Reply:
        account = call.account
        message = await self.access.message(account, call.params["id"])
        data = await self.access.read(account, message)
        images = call.query.get("images") == "1"
        rendered: RenderedMessage = await deferToThread(render_message, data, images)
        if not message.seen:
            await self.mailboxes.set_flags(
                account, message.folder.name, [message.uid], "add", {"\\Seen"}
            )
        folders = await self.access.folders(account)
        ident = mail_id(message)
        searched = [
            f.id for f in folders if f.special_use not in NOT_SEARCHED or f.id == message.folder.id
        ]
        thread = await self._thread(account, message, searched)
        return call.render(
            "mail_message.html",
            nav="mail",
            folders=folders,
            current=next((f for f in folders if f.id == message.folder.id), None),
            message=message,
            id=ident,
            zone=self.access.zone,
            rendered=rendered,
            text_html=Markup(text_to_html(rendered.text)),
            images=images,
            body_url=f"/mail/m/{ident}/body" + ("?images=1" if images else ""),
            thread=[(mail_id(m) == ident, _row(m, False)) for m in thread],
            folder_back=f"/mail/f/{message.folder.id}",
            is_trash=message.folder.special_use == "\\Trash",
            notice=NOTICES.get(call.query.get("notice", ""), ""),
        )

    async def _thread(
        self, account: Account, message: MessageSummary, folder_ids: list[int]
    ) -> list[MessageSummary]:
        """The other messages of its conversation too, oldest first ([] when alone)."""
        if not message.message_id:
            return []
        ids = [*message.references.split(), *message.in_reply_to.split(), message.message_id]
        found = await self.mailboxes.thread(account, folder_ids, ids, MAX_THREAD)
        return found if len(found) > 1 else []

    async def body(self, call: PageCall) -> Reply:
        """The frame's document: the sanitised body, under the frame's own policy."""
        account = call.account
        message = await self.access.message(account, call.params["id"])
        data = await self.access.read(account, message)
        images = call.query.get("images") == "1"
        rendered: RenderedMessage = await deferToThread(render_message, data, images)
        body = (
            rendered.html
            if rendered.html is not None
            else f"<pre>{text_to_html(rendered.text)}</pre>"
        )
        return Reply(body=frame_document(body), csp=frame_policy(images), frameable=True)

    async def part(self, call: PageCall) -> Reply:
        account = call.account
        message = await self.access.message(account, call.params["id"])
        data = await self.access.read(account, message)
        found = await deferToThread(part_data, data, call.params["n"])
        if found is None:
            raise PageError(404, "That message has no such attachment.")
        part, content = found
        content_type, headers = download_headers(part)
        return Reply(body=content, content_type=content_type, headers=headers, csp=DOWNLOAD_CSP)

    # -- actions ---------------------------------------------------------------

    async def flag(self, call: PageCall) -> Reply:
        message = await self.access.message(call.account, call.params["id"])
        form = call.form
        changes = {name: form.get(name) for name in ("seen", "flagged") if name in form.fields}
        if not changes or any(v not in ("0", "1") for v in changes.values()):
            raise PageError(400, "Say what to change: seen or flagged, 0 or 1.")
        for name, value in changes.items():
            flag = "\\Seen" if name == "seen" else "\\Flagged"
            mode = "add" if value == "1" else "remove"
            await self.mailboxes.set_flags(
                call.account, message.folder.name, [message.uid], mode, {flag}
            )
        # Back to the list after "mark unread": the reading view would mark it read.
        default = (
            f"/mail/f/{message.folder.id}"
            if changes.get("seen") == "0"
            else f"/mail/m/{mail_id(message)}"
        )
        return redirect(back_target(form.get("back"), default))

    async def move(self, call: PageCall) -> Reply:
        message = await self.access.message(call.account, call.params["id"])
        target = await self._target(call)
        await self._move(call.account, [message], target)
        back = back_target(call.form.get("back"), f"/mail/f/{message.folder.id}")
        return redirect(_with_notice(back, "moved"))

    async def delete(self, call: PageCall) -> Reply:
        message = await self.access.message(call.account, call.params["id"])
        notice = await self._delete(call.account, [message])
        back = back_target(call.form.get("back"), f"/mail/f/{message.folder.id}")
        return redirect(_with_notice(back, notice))

    async def act(self, call: PageCall) -> Reply:
        """The list's bulk actions on the checked messages."""
        action = call.form.get("action")
        if action not in _ACTIONS:
            raise PageError(400, "Choose what to do with the selected messages.")
        ids = call.form.getall("id")
        if not ids:
            raise PageError(400, "Select at least one message first.")
        if len(ids) > MAX_SELECTED:
            raise PageError(400, f"Select at most {MAX_SELECTED} messages at a time.")
        account = call.account
        messages = [await self.access.message(account, i) for i in dict.fromkeys(ids)]
        back = back_target(call.form.get("back"), "/mail")
        notice = "changed"
        if action == "move":
            await self._move(account, messages, await self._target(call))
            notice = "moved"
        elif action == "delete":
            notice = await self._delete(account, messages)
        else:
            flag = "\\Seen" if action in ("read", "unread") else "\\Flagged"
            mode = "add" if action in ("read", "flag") else "remove"
            for name, uids in _by_folder(messages).items():
                await self.mailboxes.set_flags(account, name, uids, mode, {flag})
        return redirect(_with_notice(back, notice))

    async def _target(self, call: PageCall) -> FolderRef:
        value = call.form.get("folder")
        if not value.isdigit() or len(value) > 18:
            raise PageError(400, "Choose the folder to move to.")
        return await self.access.folder(call.account, int(value))

    async def _move(
        self, account: Account, messages: list[MessageSummary], target: FolderRef
    ) -> None:
        for name, uids in _by_folder([m for m in messages if m.folder.id != target.id]).items():
            try:
                await self.mailboxes.move(account, name, uids, target.name)
            except NoSuchFolder:
                raise PageError(404, "That folder is gone.") from None

    async def _delete(self, account: Account, messages: list[MessageSummary]) -> str:
        """To the trash; for good from the trash.  The notice to show."""
        trash = await self.access.special(account, "\\Trash", "Trash")
        if trash is None:
            raise PageError(409, "There is no Trash folder to delete to.")
        in_trash = [m for m in messages if m.folder.id == trash.id]
        for name, uids in _by_folder(in_trash).items():
            await self.mailboxes.set_flags(account, name, uids, "add", {"\\Deleted"})
            await self.mailboxes.expunge(account, name, uids)
        await self._move(account, [m for m in messages if m.folder.id != trash.id], trash)
        return "purged" if in_trash and len(in_trash) == len(messages) else "deleted"


def _by_folder(messages: list[MessageSummary]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for message in messages:
        grouped.setdefault(message.folder.name, []).append(message.uid)
    return grouped


def _with_notice(target: str, notice: str) -> str:
    """C{target} with C{notice=...} in its query (one of L{NOTICES})."""
    parts = urllib.parse.urlsplit(target)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "notice"]
    query.append(("notice", notice))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
