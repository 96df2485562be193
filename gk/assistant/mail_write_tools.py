"""
The mail tools that act: send_email, reply_email, move_email, flag_email,
delete_email.

Sending goes through L{MailSubmission}, the path every message a user
sends takes (sender check, routing, queue and DKIM, Sent copy).  Every
check it makes is made again by the consent step (L{MailSubmission.check})
so the user is never asked to confirm a message that cannot go, and the
summary they confirm names the recipients, subject and the start of the
body exactly as they will be sent.

Consent: sending and replying always; deleting always (to Trash, or for
good from Trash); a move only when it goes to Trash; flags never (they
are undone by flagging again).
"""

from __future__ import annotations

from dataclasses import replace
from email.headerregistry import Address

from twisted.internet.threads import deferToThread

from gk.accounts import AccountService
from gk.assistant.mail_compose import (
    Draft,
    addresses_in,
    build,
    one_line,
    parse_address,
    parse_addresses,
    quoted,
    references_for,
    reply_subject,
)
from gk.assistant.mail_content import message_content
from gk.assistant.mail_lookup import (
    ID_DESCRIPTION,
    MailLookup,
    message_id,
    special_folder,
    when_shown,
)
from gk.assistant.tools import (
    JSON,
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolResult,
)
from gk.mailboxes import MailboxService, NoSuchFolder
from gk.storage.mail_search import FolderRef, MessageSummary
from gk.submission import MailSubmission, SubmissionError


def _addresses_schema(description: str) -> JSON:
    return {"type": "array", "items": {"type": "string"}, "description": description}


_SENT_OUTPUT: JSON = {
    "type": "object",
    "properties": {
        "message_id": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "array", "items": {"type": "string"}},
        "cc": {"type": "array", "items": {"type": "string"}},
        "bcc": {"type": "array", "items": {"type": "string"}},
        "subject": {"type": "string"},
        "delivered": {
            "type": "array",
            "items": {"type": "string"},
            "description": "local accounts whose INBOX has it",
        },
        "queued": {
            "type": "array",
            "items": {"type": "string"},
            "description": "addresses elsewhere, handed to the outgoing queue",
        },
        "sent_copy": {
            "type": ["string", "null"],
            "description": "id of the copy in the Sent folder",
        },
    },
    "required": ["message_id", "from", "to", "subject", "delivered", "queued", "sent_copy"],
}


class MailWriter:
    """The handlers and consent checks of the tools that change mail."""

    def __init__(
        self, mailboxes: MailboxService, accounts: AccountService, submission: MailSubmission
    ) -> None:
        self.mailboxes = mailboxes
        self.accounts = accounts
        self.submission = submission
        self.lookup = MailLookup(mailboxes)

    # -- send ----------------------------------------------------------------

    @staticmethod
    def _new_draft(context: ToolContext, arguments: JSON) -> Draft:
        """The message send_email's arguments describe (addresses read, not yet checked)."""
        account = context.account
        sender = parse_address(arguments.get("from") or account.email, "from")
        return Draft(
            sender=sender,
            to=parse_addresses(arguments["to"], "to"),
            cc=parse_addresses(arguments.get("cc", []), "cc"),
            bcc=parse_addresses(arguments.get("bcc", []), "bcc"),
            subject=one_line(arguments["subject"]),
            body=arguments["body"],
        )

    async def _check(self, context: ToolContext, draft: Draft) -> None:
        try:
            await self.submission.check(context.account, draft.sender.addr_spec, draft.recipients)
        except SubmissionError as e:
            raise ToolError(f"cannot send: {e}") from None

    async def send_consent(self, context: ToolContext, arguments: JSON) -> str:
        draft = self._new_draft(context, arguments)
        await self._check(context, draft)
        own = draft.sender.addr_spec.lower() == context.account.email
        return "Send an email " + draft.summary(show_sender=not own)

    async def send_email(self, context: ToolContext, arguments: JSON) -> ToolResult:
        # The submission checks again what the consent step checked.
        return await self._send(context, self._new_draft(context, arguments))

    async def _send(self, context: ToolContext, draft: Draft) -> ToolResult:
        data = build(draft, self.submission.hostname, context.now())
        try:
            result = await self.submission.submit(
                context.account, data, draft.sender.addr_spec, draft.recipients
            )
        except SubmissionError as e:
            raise ToolError(f"cannot send: {e}") from None
        copy = None
        if result.sent_copy is not None:
            folders = await self.lookup.folders(context)
            sent = next((f for f in folders if f.name == result.sent_copy.folder), None)
            if sent is not None:
                copy = message_id(sent.id, result.sent_copy.uid)
        content: JSON = {
            "message_id": result.message_id,
            "from": draft.sender.addr_spec,
            "to": [a.addr_spec for a in draft.to],
            "cc": [a.addr_spec for a in draft.cc],
            "bcc": [a.addr_spec for a in draft.bcc],
            "subject": draft.subject,
            "delivered": list(result.delivered),
            "queued": list(result.queued),
            "sent_copy": copy,
        }
        text = f"Sent to {', '.join(draft.recipients)}."
        if copy is None:
            text += " No copy was saved in Sent: the mailbox is full."
        return ToolResult(content, text)

    # -- reply ---------------------------------------------------------------

    async def _reply_draft(
        self, context: ToolContext, arguments: JSON
    ) -> tuple[MessageSummary, Draft]:
        """
        The reply to the message C{arguments["id"]}: to its Reply-To or From
        (with C{reply_all}, its To and Cc in copy), never to the user's own
        addresses; from the address it was sent to when that is the user's.
        """
        original = await self.lookup.message(context, arguments["id"])
        account = context.account
        author = addresses_in(original.reply_to or original.from_)
        others = addresses_in(", ".join(v for v in (original.to, original.cc) if v))
        everyone = [a.addr_spec for a in (*author, *others)]
        owned = await self.accounts.owned_addresses(account, everyone)
        own = {a.lower() for a in owned}

        def is_own(address: Address) -> bool:
            return address.addr_spec.lower() in own

        sender = next((a for a in (*others, *author) if is_own(a)), None)
        if all(is_own(a) for a in author):
            # A reply to one's own message goes to its recipients.
            author, others = others, ()
        to = [a for a in author if not is_own(a)]
        cc: list[Address] = []
        if arguments.get("reply_all"):
            taken = {a.addr_spec.lower() for a in to}
            cc = [a for a in others if not is_own(a) and a.addr_spec.lower() not in taken]
        if not to:
            to, cc = cc, []
        if not to:
            raise ToolError("this email has no one to reply to but you")
        draft = Draft(
            sender=sender or parse_address(account.email, "from"),
            to=tuple(to),
            cc=tuple(cc),
            bcc=(),
            subject=one_line(reply_subject(original.subject)),
            body=arguments["body"],
            in_reply_to=original.message_id,
            references=references_for(original),
        )
        return original, draft

    async def reply_consent(self, context: ToolContext, arguments: JSON) -> str:
        original, draft = await self._reply_draft(context, arguments)
        await self._check(context, draft)
        own = draft.sender.addr_spec.lower() == context.account.email
        return f"Reply to the email {original.subject!r} from {original.from_}: " + draft.summary(
            show_sender=not own
        )

    async def reply_email(self, context: ToolContext, arguments: JSON) -> ToolResult:
        original, draft = await self._reply_draft(context, arguments)
        [data] = await self.mailboxes.read_files(context.account, [original])
        if data is not None:
            parsed = await deferToThread(message_content, data)
            if parsed.text.strip():
                quote = quoted(parsed.text, original, when_shown(original, context))
                draft = replace(draft, body=draft.body.rstrip() + "\n\n" + quote)
        result = await self._send(context, draft)
        await self.mailboxes.set_flags(
            context.account, original.folder.name, [original.uid], "add", {"\\Answered"}
        )
        result.content["in_reply_to"] = original.message_id
        return result

    # -- move, flag, delete ------------------------------------------------------

    async def move_consent(self, context: ToolContext, arguments: JSON) -> str | None:
        message = await self.lookup.message(context, arguments["id"])
        target = await self.lookup.folder(context, arguments["folder"])
        if target.special_use != "\\Trash" or target.id == message.folder.id:
            return None
        return f"Move to {target.name} the email " + _described(message, context)

    async def move_email(self, context: ToolContext, arguments: JSON) -> ToolResult:
        message = await self.lookup.message(context, arguments["id"])
        target = await self.lookup.folder(context, arguments["folder"])
        if target.id == message.folder.id:
            content = {"id": arguments["id"].strip(), "folder": target.name, "moved": False}
            return ToolResult(content, f"The email is already in {target.name}.")
        new_id = await self._move(context, message, target)
        content = {"id": new_id, "folder": target.name, "moved": True}
        return ToolResult(content, f"Moved to {target.name}; its id is now {new_id}.")

    async def _move(self, context: ToolContext, message: MessageSummary, target: FolderRef) -> str:
        try:
            pairs = await self.mailboxes.move(
                context.account, message.folder.name, [message.uid], target.name
            )
        except NoSuchFolder:
            raise ToolError("that folder is gone; use list_folders to see the folders") from None
        if not pairs:
            raise ToolError("the email is no longer there; use list_emails to find ids")
        return message_id(target.id, pairs[0][1])

    async def flag_email(self, context: ToolContext, arguments: JSON) -> ToolResult:
        if "seen" not in arguments and "flagged" not in arguments:
            raise ToolError("say what to change: seen (read/unread) and/or flagged")
        message = await self.lookup.message(context, arguments["id"])
        add: set[str] = set()
        remove: set[str] = set()
        for name, flag in (("seen", "\\Seen"), ("flagged", "\\Flagged")):
            if name in arguments:
                (add if arguments[name] else remove).add(flag)
        for mode, flags in (("add", add), ("remove", remove)):
            if flags:
                await self.mailboxes.set_flags(
                    context.account, message.folder.name, [message.uid], mode, flags
                )
        seen = arguments.get("seen", message.seen)
        flagged = arguments.get("flagged", message.flagged)
        content = {
            "id": message_id(message.folder.id, message.uid),
            "unread": not seen,
            "flagged": flagged,
        }
        state = ("read" if seen else "unread") + (", flagged" if flagged else ", not flagged")
        return ToolResult(content, f"The email is now {state}.")

    async def delete_consent(self, context: ToolContext, arguments: JSON) -> str:
        message = await self.lookup.message(context, arguments["id"])
        if message.folder.special_use == "\\Trash":
            return (
                "Delete for good (it is in Trash; this cannot be undone) the email "
                + _described(message, context)
            )
        trash = await self._trash(context)
        return f"Delete (move to {trash.name}) the email " + _described(message, context)

    async def delete_email(self, context: ToolContext, arguments: JSON) -> ToolResult:
        message = await self.lookup.message(context, arguments["id"])
        account = context.account
        if message.folder.special_use == "\\Trash":
            name, uid = message.folder.name, message.uid
            try:
                await self.mailboxes.set_flags(account, name, [uid], "add", {"\\Deleted"})
                await self.mailboxes.expunge(account, name, [uid])
            except NoSuchFolder:
                raise ToolError("the email is no longer there") from None
            content: JSON = {"deleted": True, "folder": None, "id": None}
            return ToolResult(content, "Deleted for good.")
        trash = await self._trash(context)
        new_id = await self._move(context, message, trash)
        content = {"deleted": False, "folder": trash.name, "id": new_id}
        return ToolResult(content, f"Moved to {trash.name}; its id is now {new_id}.")

    async def _trash(self, context: ToolContext) -> FolderRef:
        trash = special_folder(await self.lookup.folders(context), "\\Trash")
        if trash is None:
            raise ToolError("there is no Trash folder to delete to")
        return trash


def _described(message: MessageSummary, context: ToolContext) -> str:
    return f"{message.subject!r} from {message.from_} ({when_shown(message, context)})"


_ID_ONLY: JSON = {"type": "string", "description": ID_DESCRIPTION}


def write_tools(
    mailboxes: MailboxService, accounts: AccountService, submission: MailSubmission
) -> list[Tool]:
    """send_email, reply_email, move_email, flag_email and delete_email."""
    writer = MailWriter(mailboxes, accounts, submission)
    outgoing = ToolAnnotations(read_only=False, destructive=False, open_world=True)
    return [
        Tool(
            name="send_email",
            title="Send an email",
            description=(
                "Send a new plain-text email. The user is asked to confirm the exact "
                "recipients, subject and text before it goes. Addresses are like "
                'bob@example.com or "Bob Smith <bob@example.com>"; use search_contacts '
                "first to find the address of a person named by the user. A copy is kept "
                "in the Sent folder."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "to": {**_addresses_schema("Recipients' email addresses."), "minItems": 1},
                    "cc": _addresses_schema("Copy recipients (optional)."),
                    "bcc": _addresses_schema(
                        "Hidden copy recipients (optional): the others do not see them."
                    ),
                    "subject": {"type": "string", "description": "The subject line."},
                    "body": {
                        "type": "string",
                        "description": "The text of the email, plain text, with its greeting "
                        "and signature.",
                    },
                    "from": {
                        "type": "string",
                        "description": "One of the user's own addresses or aliases to send "
                        "from (default: the user's main address).",
                    },
                },
                "required": ["to", "subject", "body"],
                "additionalProperties": False,
            },
            output_schema=_SENT_OUTPUT,
            handler=writer.send_email,
            annotations=outgoing,
            consent=writer.send_consent,
        ),
        Tool(
            name="reply_email",
            title="Reply to an email",
            description=(
                "Reply to an email: to its sender (reply_all: also to everyone it was sent "
                'to, except the user), with the subject "Re: ...", the threading headers '
                "and the original quoted below the text. The user is asked to confirm "
                "before it goes. The original is marked answered."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "id": _ID_ONLY,
                    "body": {
                        "type": "string",
                        "description": "The text of the reply, plain text (the original is "
                        "quoted after it automatically).",
                    },
                    "reply_all": {
                        "type": "boolean",
                        "description": "true: also reply to the other recipients (default "
                        "false: the sender only).",
                    },
                },
                "required": ["id", "body"],
                "additionalProperties": False,
            },
            output_schema={
                **_SENT_OUTPUT,
                "properties": {
                    **_SENT_OUTPUT["properties"],
                    "in_reply_to": {"type": "string"},
                },
            },
            handler=writer.reply_email,
            annotations=outgoing,
            consent=writer.reply_consent,
        ),
        Tool(
            name="move_email",
            title="Move an email",
            description=(
                "Move an email to another folder (list_folders gives their names). Moving "
                "to Trash asks the user to confirm. The email gets a new id, returned."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "id": _ID_ONLY,
                    "folder": {
                        "type": "string",
                        "description": "The folder to move it to, e.g. Archive.",
                    },
                },
                "required": ["id", "folder"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "the email's id from now on"},
                    "folder": {"type": "string"},
                    "moved": {"type": "boolean"},
                },
                "required": ["id", "folder", "moved"],
            },
            handler=writer.move_email,
            annotations=ToolAnnotations(read_only=False, destructive=True),
            consent=writer.move_consent,
        ),
        Tool(
            name="flag_email",
            title="Mark an email",
            description=(
                "Mark an email read or unread (seen) and/or flagged (starred) or not. "
                "Give at least one of seen and flagged."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "id": _ID_ONLY,
                    "seen": {
                        "type": "boolean",
                        "description": "true: mark read; false: mark unread.",
                    },
                    "flagged": {
                        "type": "boolean",
                        "description": "true: flag (star) it; false: remove the flag.",
                    },
                },
                "required": ["id"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "unread": {"type": "boolean"},
                    "flagged": {"type": "boolean"},
                },
                "required": ["id", "unread", "flagged"],
            },
            handler=writer.flag_email,
            annotations=ToolAnnotations(read_only=False, idempotent=True),
        ),
        Tool(
            name="delete_email",
            title="Delete an email",
            description=(
                "Delete an email: it goes to Trash (from where move_email can bring it "
                "back); an email already in Trash is deleted for good. The user is asked "
                "to confirm."
            ),
            input_schema={
                "type": "object",
                "properties": {"id": _ID_ONLY},
                "required": ["id"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    "deleted": {
                        "type": "boolean",
                        "description": "true: deleted for good; false: moved to Trash",
                    },
                    "folder": {"type": ["string", "null"]},
                    "id": {"type": ["string", "null"], "description": "its id in Trash"},
                },
                "required": ["deleted", "folder", "id"],
            },
            handler=writer.delete_email,
            annotations=ToolAnnotations(read_only=False, destructive=True),
            consent=writer.delete_consent,
        ),
    ]
