"""
Writing mail in the web UI: the compose form (new, reply, reply to all,
forward, a draft reopened), sending, and drafts.

Sending takes the path of every message a user sends
(L{gk.submission.MailSubmission}: the sender checked, local recipients
delivered, others queued and DKIM-signed, a copy in Sent), with the
message built as the assistant builds one (L{gk.assistant.mail_compose}),
plus attachments.  A reply's recipients come from the assistant's reply
logic (Reply-To or From; with "all", To and Cc in copy; never the user's
own addresses), and its In-Reply-To and References from the original as
the index has them, never from the form.

A draft is a message in the Drafts folder (flags C{\\Draft \\Seen}),
attachments included, so that any IMAP client sees it too; saving again
stores the new version first and then removes the old one, so a failure
between the two leaves two versions, never none.  The form names the
parts of earlier messages it carries along (a forwarded message's
attachments, a draft's) as C{"ID/N"}: message id and part number, read
again from the user's own mailbox when the message goes.

A message that cannot go comes back in the form with what was written
and one clear error (400; 404 when the form names a message that is not
the user's, or no longer there); files just uploaded are kept by saving
the message as a draft first, since a browser cannot refill a file
field.
"""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import re
from dataclasses import dataclass, field, replace
from email.headerregistry import Address
from email.message import EmailMessage

from twisted.internet.threads import deferToThread

from gk.app import GkApp
from gk.assistant.mail_compose import (
    Draft,
    build,
    one_line,
    parse_address,
    quoted,
    references_for,
)
from gk.assistant.mail_content import message_content
from gk.assistant.mail_lookup import when_shown
from gk.assistant.mail_tools import mail_submission
from gk.assistant.mail_write_tools import MailWriter
from gk.assistant.tools import ToolContext, ToolError
from gk.storage.accounts import Account
from gk.storage.envelope import header_block
from gk.storage.mail_search import MessageSummary
from gk.storage.mailstore import QuotaExceeded
from gk.submission import SubmissionError
from gk.web.mail_render import MailPart, part_data, render_message, safe_filename
from gk.web.page import Page, PageCall, PageError, Reply, Upload, page, redirect
from gk.web.views.mail_access import NOTICES, MailAccess, mail_id

#: Characters of a subject, at most.
MAX_SUBJECT = 998
#: Attachments of one message, at most.
MAX_ATTACHMENTS = 50
_KEEP = re.compile(r"(\d{1,18}-\d{1,18})/(\d{1,6})")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|tr|wg)\s*:", re.IGNORECASE)


@dataclass
class ComposeForm:
    """What the compose form shows: the fields, and the parts carried along."""

    sender: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    #: Id of the message replied to (its threading fields are read at sending).
    reply: str = ""
    #: Id of the message forwarded.
    forward: str = ""
    #: Id of the draft being edited (removed once sent or saved again).
    draft: str = ""
    #: Parts of earlier messages: (reference "ID/N", part), and whether kept.
    kept: list[tuple[str, MailPart, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def split_addresses(value: str) -> list[str]:
    """A field's addresses, split at commas and semicolons outside quotes and brackets."""
    items: list[str] = []
    current: list[str] = []
    quoted_text = angle = False
    for char in value:
        if char == '"':
            quoted_text = not quoted_text
        elif char == "<" and not quoted_text:
            angle = True
        elif char == ">" and not quoted_text:
            angle = False
        if char in ",;" and not quoted_text and not angle:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def read_addresses(value: str, label: str) -> tuple[Address, ...]:
    """@raise PageError: 400, an address of the field C{label} is not valid."""
    try:
        return tuple(parse_address(item, label) for item in split_addresses(value))
    except ToolError:
        raise PageError(
            400, f"{label}: “{value.strip()[:200]}” is not a list of email addresses."
        ) from None


def forward_subject(subject: str) -> str:
    subject = subject.strip()
    return subject if _FORWARD_PREFIX.match(subject) else f"Fwd: {subject}".rstrip()


def with_attachments(message: bytes, attachments: list[Attachment]) -> bytes:
    """C{message} (as L{build} makes it) with C{attachments} added, as multipart/mixed."""
    if not attachments:
        return message
    # build() wrote raw UTF-8 headers only when an address needs them.
    policy = email.policy.SMTP if header_block(message).isascii() else email.policy.SMTPUTF8
    parsed = email.parser.BytesParser(policy=policy).parsebytes(message)
    assert isinstance(parsed, EmailMessage)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        parsed.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return parsed.as_bytes()


def _upload(upload: Upload, number: int) -> Attachment:
    kind = upload.content_type.lower().strip()
    if not _CONTENT_TYPE.fullmatch(kind) or kind.startswith(("multipart/", "message/")):
        kind = "application/octet-stream"
    return Attachment(safe_filename(upload.filename, kind, number), kind, upload.data)


class MailComposePages:
    """The compose form, sending and drafts (routes given to L{MailPages})."""

    def __init__(self, app: GkApp, access: MailAccess) -> None:
        self.app = app
        self.access = access
        self.mailboxes = app.mailboxes
        self.submission = mail_submission(app)
        self.writer = MailWriter(app.mailboxes, app.accounts, self.submission)

    def pages(self) -> list[Page]:
        return [
            page("GET", "/mail/compose", self.form),
            page("POST", "/mail/send", self.send),
            page("POST", "/mail/draft", self.save_draft),
        ]

    def _context(self, account: Account) -> ToolContext:
        return ToolContext(account, self.access.zone)

    # -- the form ----------------------------------------------------------------

    async def form(self, call: PageCall) -> Reply:
        account = call.account
        query = call.query
        form = ComposeForm(sender=account.email, to=query.get("to", "")[:2000])
        if query.get("draft"):
            form = await self._from_draft(account, query["draft"])
            form.reply = query.get("reply", "") if _is_id(query.get("reply", "")) else ""
        elif query.get("reply"):
            form = await self._reply(account, query["reply"], query.get("all") == "1")
        elif query.get("forward"):
            form = await self._forward(account, query["forward"])
        return await self._render(call, form, 200)

    async def _render(
        self, call: PageCall, form: ComposeForm, status: int, error: str = ""
    ) -> Reply:
        return call.render(
            "mail_compose.html",
            status,
            nav="mail",
            folders=await self.access.folders(call.account),
            current=None,
            form=form,
            error=error,
            notice=NOTICES.get(call.query.get("notice", ""), ""),
        )

    async def _reply(self, account: Account, ident: str, everyone: bool) -> ComposeForm:
        context = self._context(account)
        original = await self.access.message(account, ident)
        try:
            _original, draft = await self.writer._reply_draft(
                context, {"id": ident, "body": "", "reply_all": everyone}
            )
        except ToolError as e:
            raise PageError(400, f"Cannot reply: {e}.") from None
        data = await self.access.read(account, original)
        text = (await deferToThread(message_content, data)).text
        quote = quoted(text, original, when_shown(original, context)) if text.strip() else ""
        return ComposeForm(
            sender=str(draft.sender),
            to=", ".join(str(a) for a in draft.to),
            cc=", ".join(str(a) for a in draft.cc),
            subject=draft.subject,
            body="\n\n" + quote if quote else "",
            reply=mail_id(original),
        )

    async def _forward(self, account: Account, ident: str) -> ComposeForm:
        original = await self.access.message(account, ident)
        data = await self.access.read(account, original)
        text = (await deferToThread(message_content, data)).text
        parts = (await deferToThread(render_message, data)).attachments
        when = when_shown(original, self._context(account))
        intro = (
            "---------- Forwarded message ----------\n"
            f"From: {original.from_}\nDate: {when}\nSubject: {original.subject}\n"
            f"To: {original.to}\n"
        )
        ident = mail_id(original)
        return ComposeForm(
            sender=account.email,
            subject=one_line(forward_subject(original.subject)),
            body=f"\n\n{intro}\n{text}",
            forward=ident,
            kept=[(f"{ident}/{p.number}", p, True) for p in parts],
        )

    async def _from_draft(self, account: Account, ident: str) -> ComposeForm:
        draft = await self.access.message(account, ident)
        data = await self.access.read(account, draft)
        text = (await deferToThread(message_content, data)).text
        parts = (await deferToThread(render_message, data)).attachments
        ident = mail_id(draft)
        return ComposeForm(
            sender=draft.from_ or account.email,
            to=draft.to,
            cc=draft.cc,
            bcc=draft.bcc,
            subject=draft.subject,
            body=text,
            draft=ident,
            kept=[(f"{ident}/{p.number}", p, True) for p in parts],
        )

    # -- sending and saving ------------------------------------------------------

    def _posted(self, call: PageCall) -> ComposeForm:
        """The form as posted, ids checked for shape (resolved later, in the mailbox)."""
        form = call.form
        posted = ComposeForm(
            sender=form.get("from").strip()[:1000] or call.account.email,
            to=form.get("to")[:20000],
            cc=form.get("cc")[:20000],
            bcc=form.get("bcc")[:20000],
            subject=form.get("subject")[:MAX_SUBJECT],
            body=form.get("body"),
        )
        for name in ("reply", "forward", "draft"):
            value = form.get(name).strip()
            if value and not _is_id(value):
                raise PageError(400, "The form refers to a message that does not exist.")
            setattr(posted, name, value)
        return posted

    async def _kept(self, call: PageCall) -> list[tuple[str, MailPart, bytes]]:
        """The parts of earlier messages the form keeps, read from the user's mailbox."""
        refs = list(dict.fromkeys(call.form.getall("keep")))
        if len(refs) > MAX_ATTACHMENTS:
            raise PageError(400, f"At most {MAX_ATTACHMENTS} attachments per message.")
        found: list[tuple[str, MailPart, bytes]] = []
        cache: dict[str, bytes] = {}
        for ref in refs:
            match = _KEEP.fullmatch(ref)
            if match is None:
                raise PageError(400, "The form refers to an attachment that does not exist.")
            ident, number = match[1], int(match[2])
            if ident not in cache:
                message = await self.access.message(call.account, ident)
                cache[ident] = await self.access.read(call.account, message)
            part = await deferToThread(part_data, cache[ident], number)
            if part is None:
                raise PageError(400, "An attachment of the form is no longer there.")
            found.append((ref, part[0], part[1]))
        return found

    async def _build(
        self, call: PageCall, posted: ComposeForm
    ) -> tuple[Draft, bytes, MessageSummary | None]:
        """
        The message the form describes (its addresses checked for form only)
        and the message it replies to, if any is still there.

        @raise PageError: 400, an address or an attachment is not valid.
        """
        account = call.account
        uploads = [u for u in call.form.files if u.field == "attachment" and (u.filename or u.data)]
        kept = await self._kept(call)
        if len(uploads) + len(kept) > MAX_ATTACHMENTS:
            raise PageError(400, f"At most {MAX_ATTACHMENTS} attachments per message.")
        draft = Draft(
            sender=read_addresses(posted.sender, "From")[0]
            if split_addresses(posted.sender)
            else parse_address(account.email, "From"),
            to=read_addresses(posted.to, "To"),
            cc=read_addresses(posted.cc, "Cc"),
            bcc=read_addresses(posted.bcc, "Bcc"),
            subject=one_line(posted.subject),
            body=posted.body,
        )
        original = await self._original(account, posted)
        if original is not None:
            draft = replace(
                draft, in_reply_to=original.message_id, references=references_for(original)
            )
        elif posted.draft:
            # A reopened draft keeps the threading fields it was saved with
            # (none when that version is gone: saved from another tab, say).
            previous = await self._original(account, replace(posted, reply=posted.draft))
            if previous is not None:
                draft = replace(
                    draft, in_reply_to=previous.in_reply_to, references=previous.references
                )
        attachments = [
            Attachment(
                part.filename or safe_filename("", part.content_type, part.number),
                part.content_type,
                data,
            )
            for _ref, part, data in kept
        ]
        attachments += [_upload(u, n) for n, u in enumerate(uploads, len(attachments) + 1)]
        now = datetime.datetime.now(self.access.zone)
        hostname = self.submission.hostname
        data = await deferToThread(
            lambda: with_attachments(build(draft, hostname, now), attachments)
        )
        return draft, data, original

    async def _original(self, account: Account, posted: ComposeForm) -> MessageSummary | None:
        if not posted.reply:
            return None
        try:
            return await self.access.message(account, posted.reply)
        except PageError:
            return None  # moved or deleted since: the reply goes all the same

    async def send(self, call: PageCall) -> Reply:
        account = call.account
        posted = self._posted(call)
        try:
            draft, data, original = await self._build(call, posted)
        except PageError as e:
            return await self._again(call, posted, e.message, e.status)
        if not draft.recipients:
            return await self._again(call, posted, "Add at least one recipient.")
        try:
            result = await self.submission.submit(
                account, data, draft.sender.addr_spec, draft.recipients
            )
        except SubmissionError as e:
            return await self._kept_as_draft(call, posted, data, f"The message was not sent: {e}.")
        if original is not None:
            await self.mailboxes.set_flags(
                account, original.folder.name, [original.uid], "add", {"\\Answered"}
            )
        if posted.forward:
            forwarded = await self._original(account, replace(posted, reply=posted.forward))
            if forwarded is not None:
                await self.mailboxes.set_flags(
                    account, forwarded.folder.name, [forwarded.uid], "add", {"$Forwarded"}
                )
        await self._remove_draft(account, posted.draft)
        sent = await self.access.special(account, "\\Sent", "Sent")
        if result.sent_copy is not None and sent is not None:
            return redirect(f"/mail/f/{sent.id}?notice=sent")
        return redirect("/mail?notice=sent")

    async def save_draft(self, call: PageCall) -> Reply:
        posted = self._posted(call)
        try:
            _draft, data, _original = await self._build(call, posted)
        except PageError as e:
            return await self._again(call, posted, e.message, e.status)
        ident = await self._store_draft(call, posted, data)
        if ident is None:
            return await self._again(call, posted, "There is no room left for the draft.")
        reply = f"&reply={posted.reply}" if posted.reply else ""
        return redirect(f"/mail/compose?draft={ident}{reply}&notice=saved")

    async def _store_draft(self, call: PageCall, posted: ComposeForm, data: bytes) -> str | None:
        """Store C{data} as the new version of the draft; its id (None: no room)."""
        account = call.account
        drafts = await self.access.special(account, "\\Drafts", "Drafts")
        if drafts is None:
            raise PageError(409, "There is no Drafts folder to save to.")
        try:
            stored = await self.mailboxes.append(account, drafts.name, data, {"\\Draft", "\\Seen"})
        except QuotaExceeded:
            return None
        await self._remove_draft(account, posted.draft)
        return f"{drafts.id}-{stored.uid}"

    async def _remove_draft(self, account: Account, ident: str) -> None:
        if not ident:
            return
        try:
            draft = await self.access.message(account, ident)
        except PageError:
            return  # already gone (another client removed it)
        if not draft.draft:
            return  # only ever a draft: the form cannot name another message to remove
        await self.mailboxes.set_flags(
            account, draft.folder.name, [draft.uid], "add", {"\\Deleted"}
        )
        await self.mailboxes.expunge(account, draft.folder.name, [draft.uid])

    async def _kept_as_draft(
        self, call: PageCall, posted: ComposeForm, data: bytes, error: str
    ) -> Reply:
        """The form again after a refused send; new uploads saved in a draft so they stay."""
        if any(u.field == "attachment" and u.data for u in call.form.files):
            ident = await self._store_draft(call, posted, data)
            if ident is not None:
                form = await self._from_draft(call.account, ident)
                form.reply = posted.reply
                form.forward = posted.forward
                form.sender = posted.sender
                return await self._render(
                    call, form, 400, error + " It was kept in Drafts with its attachments."
                )
        return await self._again(call, posted, error)

    async def _again(
        self, call: PageCall, posted: ComposeForm, error: str, status: int = 400
    ) -> Reply:
        """
        The form as posted, with C{error} (and C{status}: 404 when it named
        a message that is not the user's); the parts carried along that
        are still there stay listed.
        """
        kept_refs = set(call.form.getall("keep"))
        offered = call.form.getall("offered")
        kept: list[tuple[str, MailPart, bool]] = []
        for ref in dict.fromkeys(offered):
            match = _KEEP.fullmatch(ref)
            if match is None:
                continue
            try:
                message = await self.access.message(call.account, match[1])
                data = await self.access.read(call.account, message)
            except PageError:
                continue
            found = await deferToThread(part_data, data, int(match[2]))
            if found is not None:
                kept.append((ref, found[0], ref in kept_refs))
        posted.kept = kept
        if any(u.field == "attachment" and u.data for u in call.form.files):
            error += " Attach the files again: they were not kept."
        return await self._render(call, posted, status, error)


def _is_id(value: str) -> bool:
    return re.fullmatch(r"\d{1,18}-\d{1,18}", value) is not None
