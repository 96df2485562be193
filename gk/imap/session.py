"""
The IMAP session state machine (RFC 3501 3): not authenticated,
authenticated, selected, logout; the commands valid in every state and in
the authenticated state.  The selected state's commands are in
L{gk.imap.selected}.

A session gets parsed commands one at a time (L{IMAPSession.run}) and
writes every response through C{send}; it never touches the transport.
STARTTLS and the TLS state belong to the protocol, which tells the session
(L{IMAPSession.tls}).  Changes made elsewhere (other sessions, SMTP, the
web UI) arrive as events and are reported before the next tagged
response, or at once while the client IDLEs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable

from twisted.logger import Logger

from gk.imap import encode
from gk.imap.backend import IIMAPBackend
from gk.imap.parser import (
    Append,
    Authenticate,
    Command,
    Enable,
    GetQuota,
    Id,
    ListMailboxes,
    Login,
    MailboxCommand,
    Rename,
    Select,
    Status,
)
from gk.imap.selected import SelectedMailbox
from gk.storage.accounts import Account
from gk.storage.folder_ops import FolderExists, FolderRefused
from gk.storage.mail_folders import FolderStatus
from gk.storage.mailstore import MailStoreError, NoSuchFolder, QuotaExceeded

BASE_CAPABILITIES = (
    "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN "
    "SPECIAL-USE CONDSTORE QRESYNC QUOTA"
)

_NOT_AUTHENTICATED = {"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ID"}
_SELECTED_ONLY = {
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
}  # fmt: skip


class IMAPSession:
    """One client's session; see the module docstring."""

    log = Logger()

    def __init__(
        self,
        backend: IIMAPBackend,
        send: Callable[[bytes], None],
        client_ip: str,
        tls: bool,
        hostname: str,
        writable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """
        @param writable: waits until the connection can take more output;
            long answers (FETCH, SEARCH over a big folder) await it between
            batches.
        """
        self.backend = backend
        self.send = send
        self.writable = writable or _always_writable
        self.client_ip = client_ip
        self.tls = tls
        self.hostname = hostname
        self.account: Account | None = None
        self.selected: SelectedMailbox | None = None
        self.logged_out = False
        self.condstore = False
        #: ENABLE QRESYNC was given: VANISHED instead of EXPUNGE, UIDs in FETCH.
        self.qresync = False
        #: While the client IDLEs: the tag of its IDLE command.
        self.idling: str | None = None
        #: While AUTHENTICATE PLAIN waits for its response line: its tag.
        self.authenticating: str | None = None

    # -- responses -------------------------------------------------------------

    def untagged(self, text: str | bytes) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.send(b"* " + data + b"\r\n")

    def tagged(self, tag: str, status: str, text: str) -> None:
        self.send(f"{tag} {status} {text}\r\n".encode("utf-8", "replace"))

    def capabilities(self) -> str:
        if self.account is not None:
            return BASE_CAPABILITIES
        if not self.tls:
            return f"{BASE_CAPABILITIES} STARTTLS LOGINDISABLED"
        return f"{BASE_CAPABILITIES} AUTH=PLAIN"

    def greeting(self) -> bytes:
        return f"* OK [CAPABILITY {self.capabilities()}] {self.hostname} gk IMAP ready\r\n".encode()

    # -- dispatch --------------------------------------------------------------

    async def run(self, command: Command) -> None:
        """Carry out one command; every response, the tagged one last, is sent."""
        name = command.name
        if self.account is None and name not in _NOT_AUTHENTICATED:
            self.tagged(command.tag, "BAD", f"{name} needs authentication first")
            return
        if name in _SELECTED_ONLY and self.selected is None:
            self.tagged(command.tag, "BAD", f"{name} needs a selected mailbox")
            return
        if self.selected is not None:
            await self.selected.report_changes(command)
        handler = getattr(self, "_do_" + name.lower().replace(".", "_"), None)
        if handler is None and self.selected is not None:
            handler = self.selected.handler(name)
        if handler is None:
            self.tagged(command.tag, "BAD", f"{name} is not supported")
            return
        try:
            await handler(command)
        except NoSuchFolder:
            self.tagged(command.tag, "NO", "[NONEXISTENT] No such mailbox")
        except FolderExists:
            self.tagged(command.tag, "NO", "[ALREADYEXISTS] Mailbox already exists")
        except FolderRefused as e:
            self.tagged(command.tag, "NO", f"[CANNOT] {e}")
        except QuotaExceeded:
            self.tagged(command.tag, "NO", "[OVERQUOTA] Quota exceeded")
        except MailStoreError as e:
            self.tagged(command.tag, "NO", str(e))

    # -- any state -------------------------------------------------------------

    async def _do_capability(self, command: Command) -> None:
        self.untagged(f"CAPABILITY {self.capabilities()}")
        self.tagged(command.tag, "OK", "CAPABILITY completed")

    async def _do_noop(self, command: Command) -> None:
        self.tagged(command.tag, "OK", "NOOP completed")

    async def _do_check(self, command: Command) -> None:
        self.tagged(command.tag, "OK", "CHECK completed")

    async def _do_logout(self, command: Command) -> None:
        self.untagged("BYE logging out")
        self.tagged(command.tag, "OK", "LOGOUT completed")
        self.logged_out = True
        self.close()

    async def _do_id(self, command: Command) -> None:
        assert isinstance(command, Id)
        self.untagged('ID ("name" "gk")')
        self.tagged(command.tag, "OK", "ID completed")

    async def _do_starttls(self, command: Command) -> None:
        # The protocol answers STARTTLS itself (it owns the transport).
        self.tagged(command.tag, "BAD", "TLS is already active")

    # -- signing in ------------------------------------------------------------

    async def _do_login(self, command: Command) -> None:
        assert isinstance(command, Login)
        if self.account is not None:
            self.tagged(command.tag, "BAD", "already authenticated")
        elif not self.tls:
            self.tagged(command.tag, "NO", "[PRIVACYREQUIRED] LOGIN only after STARTTLS")
        else:
            await self._sign_in(command.tag, command.username, command.password)

    async def _do_authenticate(self, command: Command) -> None:
        assert isinstance(command, Authenticate)
        if self.account is not None:
            self.tagged(command.tag, "BAD", "already authenticated")
        elif not self.tls:
            self.tagged(command.tag, "NO", "[PRIVACYREQUIRED] AUTHENTICATE only after STARTTLS")
        elif command.mechanism.upper() != "PLAIN":
            self.tagged(command.tag, "NO", "only AUTHENTICATE PLAIN is supported")
        elif command.initial_response is not None:
            await self.plain_response(command.tag, command.initial_response)
        else:
            self.authenticating = command.tag
            self.send(b"+ \r\n")

    async def plain_response(self, tag: str, line: str) -> None:
        """The base64 answer to AUTHENTICATE PLAIN (RFC 4616); "*" cancels."""
        self.authenticating = None
        if line.strip() == "*":
            self.tagged(tag, "BAD", "AUTHENTICATE cancelled")
            return
        try:
            decoded = base64.b64decode(line.strip(), validate=True).decode("utf-8")
            _authzid, username, password = decoded.split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.tagged(tag, "BAD", "invalid AUTHENTICATE PLAIN response")
            return
        await self._sign_in(tag, username, password)

    async def _sign_in(self, tag: str, username: str, password: str) -> None:
        result = await self.backend.login(self.client_ip, username, password)
        if result == "blocked":
            self.tagged(tag, "NO", "[UNAVAILABLE] Too many failed attempts, try again later")
        elif isinstance(result, Account):
            self.account = result
            self.tagged(tag, "OK", f"[CAPABILITY {self.capabilities()}] signed in")
        else:
            self.tagged(tag, "NO", "[AUTHENTICATIONFAILED] Invalid credentials")

    # -- authenticated state ---------------------------------------------------

    async def _do_enable(self, command: Command) -> None:
        assert isinstance(command, Enable)
        asked = {c.upper() for c in command.capabilities}
        enabled = [c for c in ("CONDSTORE", "QRESYNC") if c in asked]
        if enabled:
            self.condstore = True  # QRESYNC implies CONDSTORE (RFC 7162 3.2.3)
        if "QRESYNC" in asked:
            self.qresync = True
        self.untagged("ENABLED" + "".join(f" {c}" for c in enabled))
        self.tagged(command.tag, "OK", "ENABLE completed")

    async def _do_namespace(self, command: Command) -> None:
        self.untagged('NAMESPACE (("" "/")) NIL NIL')
        self.tagged(command.tag, "OK", "NAMESPACE completed")

    async def _do_list(self, command: Command) -> None:
        await self._list(command, "LIST")

    async def _do_lsub(self, command: Command) -> None:
        await self._list(command, "LSUB")

    async def _list(self, command: Command, verb: str) -> None:
        assert isinstance(command, ListMailboxes) and self.account is not None
        if command.patterns == ("",):
            self.untagged(f'{verb} (\\Noselect) "/" ""')
            self.tagged(command.tag, "OK", f"{verb} completed")
            return
        folders = await self.backend.mailboxes.folders(self.account)
        names = {f.name for f in folders}
        subscribed_only = verb == "LSUB" or "SUBSCRIBED" in command.select_options
        special_only = "SPECIAL-USE" in command.select_options
        matchers = [_pattern(command.reference + p) for p in command.patterns]
        for folder in folders:
            if not any(m(folder.name) for m in matchers):
                continue
            if subscribed_only and not folder.subscribed:
                continue
            if special_only and not folder.special_use:
                continue
            has_children = any(n.startswith(folder.name + "/") for n in names)
            attributes = ["\\HasChildren" if has_children else "\\HasNoChildren"]
            if folder.special_use and verb == "LIST":
                attributes.append(folder.special_use)
            if folder.subscribed and (verb == "LSUB" or "SUBSCRIBED" in command.return_options):
                attributes.append("\\Subscribed")
            self.untagged(
                f'{verb} ({" ".join(attributes)}) "/" '.encode() + encode.mailbox(folder.name)
            )
        self.tagged(command.tag, "OK", f"{verb} completed")

    async def _do_status(self, command: Command) -> None:
        assert isinstance(command, Status) and self.account is not None
        status = await self.backend.mailboxes.status(self.account, command.mailbox)
        items = " ".join(f"{item.upper()} {_status_item(status, item)}" for item in command.items)
        self.untagged(b"STATUS " + encode.mailbox(status.name) + f" ({items})".encode())
        self.tagged(command.tag, "OK", "STATUS completed")

    async def _do_select(self, command: Command) -> None:
        await self._open(command, read_only=False)

    async def _do_examine(self, command: Command) -> None:
        await self._open(command, read_only=True)

    async def _open(self, command: Command, read_only: bool) -> None:
        assert isinstance(command, Select) and self.account is not None
        if command.qresync is not None and not self.qresync:
            self.tagged(command.tag, "BAD", "QRESYNC needs ENABLE QRESYNC first")
            return
        if self.selected is not None:
            self.selected.close()
            self.selected = None
            self.untagged("OK [CLOSED] previous mailbox closed")
        if command.condstore:
            self.condstore = True
        selection = await self.backend.mailboxes.select(self.account, command.mailbox)
        self.selected = SelectedMailbox(self, selection, read_only)
        status = selection.status
        flags = encode.flag_list(
            ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", *selection.keywords]
        ).decode()
        self.untagged(f"FLAGS {flags}")
        permanent = "()" if read_only else flags[:-1] + (" " if len(flags) > 2 else "") + "\\*)"
        self.untagged(f"OK [PERMANENTFLAGS {permanent}] flags that stay")
        self.untagged(f"{len(selection.uids)} EXISTS")
        self.untagged("0 RECENT")
        if selection.first_unseen is not None:
            seq = self.selected.view.seq_of(selection.first_unseen)
            self.untagged(f"OK [UNSEEN {seq}] first unseen")
        self.untagged(f"OK [UIDVALIDITY {status.uidvalidity}] UIDs valid")
        self.untagged(f"OK [UIDNEXT {status.uidnext}] next UID")
        self.untagged(f"OK [HIGHESTMODSEQ {status.highest_modseq}] modseq")
        resync = command.qresync
        if resync is not None and resync.uidvalidity == status.uidvalidity:
            await self.selected.report_resync(resync.modseq, resync.known_uids)
        mode = "READ-ONLY" if read_only else "READ-WRITE"
        self.tagged(command.tag, "OK", f"[{mode}] {command.name} completed")

    async def _do_append(self, command: Command) -> None:
        assert isinstance(command, Append) and self.account is not None
        try:
            stored = await self.backend.mailboxes.append(
                self.account, command.mailbox, command.message, set(command.flags),
                command.date_time,
            )  # fmt: skip
        except NoSuchFolder:
            self.tagged(command.tag, "NO", "[TRYCREATE] No such mailbox")
            return
        if self.selected is not None:
            await self.selected.report_changes(command)
        self.tagged(
            command.tag, "OK", f"[APPENDUID {stored.uidvalidity} {stored.uid}] APPEND completed"
        )

    async def _do_create(self, command: Command) -> None:
        assert isinstance(command, MailboxCommand) and self.account is not None
        await self.backend.mailboxes.create_folder(self.account, command.mailbox)
        self.tagged(command.tag, "OK", "CREATE completed")

    async def _do_delete(self, command: Command) -> None:
        assert isinstance(command, MailboxCommand) and self.account is not None
        await self.backend.mailboxes.delete_folder(self.account, command.mailbox)
        self.tagged(command.tag, "OK", "DELETE completed")

    async def _do_subscribe(self, command: Command) -> None:
        await self._subscribe(command, True)

    async def _do_unsubscribe(self, command: Command) -> None:
        await self._subscribe(command, False)

    async def _subscribe(self, command: Command, subscribed: bool) -> None:
        assert isinstance(command, MailboxCommand) and self.account is not None
        await self.backend.mailboxes.subscribe(self.account, command.mailbox, subscribed)
        self.tagged(command.tag, "OK", f"{command.name} completed")

    async def _do_rename(self, command: Command) -> None:
        assert isinstance(command, Rename) and self.account is not None
        await self.backend.mailboxes.rename_folder(self.account, command.mailbox, command.new_name)
        self.tagged(command.tag, "OK", "RENAME completed")

    async def _do_getquotaroot(self, command: Command) -> None:
        assert isinstance(command, MailboxCommand) and self.account is not None
        await self.backend.mailboxes.status(self.account, command.mailbox)
        self.untagged(b"QUOTAROOT " + encode.mailbox(command.mailbox) + b' ""')
        await self._quota()
        self.tagged(command.tag, "OK", "GETQUOTAROOT completed")

    async def _do_getquota(self, command: Command) -> None:
        assert isinstance(command, GetQuota)
        if command.root != "":
            self.tagged(command.tag, "NO", "no such quota root")
            return
        await self._quota()
        self.tagged(command.tag, "OK", "GETQUOTA completed")

    async def _quota(self) -> None:
        assert self.account is not None
        if self.account.quota_bytes is None:
            self.untagged('QUOTA "" ()')
            return
        used = sum(f.size for f in await self.backend.mailboxes.folders(self.account))
        self.untagged(f'QUOTA "" (STORAGE {used // 1024} {self.account.quota_bytes // 1024})')

    # -- life ------------------------------------------------------------------

    def close(self) -> None:
        """The connection ends: stop listening for changes."""
        if self.selected is not None:
            self.selected.close()
            self.selected = None


async def _always_writable() -> None:
    return None


def _status_item(status: FolderStatus, item: str) -> int:
    return {
        "MESSAGES": status.messages,
        "RECENT": 0,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highest_modseq,
        "SIZE": status.size,
    }[item.upper()]


def _pattern(pattern: str) -> Callable[[str], bool]:
    """
    A LIST pattern: "*" matches anything, "%" anything but the delimiter.
    INBOX matches in any case (RFC 3501 5.1), other names exactly.
    """
    regex = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    exact = re.compile(regex + r"\Z")
    any_case = re.compile(regex + r"\Z", re.IGNORECASE)
    return lambda name: bool((any_case if name == "INBOX" else exact).match(name))
