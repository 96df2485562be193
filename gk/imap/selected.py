"""
The selected state of an IMAP session: FETCH, STORE, SEARCH, COPY, MOVE,
EXPUNGE, CLOSE, UNSELECT and IDLE on one mailbox, through the session's
L{MailboxView}, and the reporting of what changed elsewhere.

What changed elsewhere is collected from the event bus as it happens and
reported before the next tagged response: new messages as EXISTS, flag
changes as FETCH (FLAGS), expunges as EXPUNGE, except while answering
FETCH, STORE or SEARCH by sequence number, where RFC 3501 7.4.1 forbids
EXPUNGE (the client's numbers would shift under it).  While the client
IDLEs, changes are pushed at once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.events import Event, FlagsChanged, MailDelivered, MessageExpunged
from gk.imap import encode
from gk.imap.fetch_attributes import FetchAttribute
from gk.imap.message import MessageStructure, partial
from gk.imap.parser import Command, Copy, Expunge, Fetch, Search, Store
from gk.imap.search_eval import CompiledSearch, SearchTarget, compile_search
from gk.imap.syntax import SequenceSet
from gk.imap.view import MailboxView
from gk.mailboxes import canonical_name
from gk.storage.mail_folders import IndexedMessage, Selection
from gk.storage.mailstore import NoSuchFolder

if TYPE_CHECKING:
    from gk.imap.session import IMAPSession

T = TypeVar("T")

#: Commands during which EXPUNGE responses must wait (by sequence number).
_NO_EXPUNGE = {"FETCH", "STORE", "SEARCH"}
#: Index rows loaded at a time by FETCH and SEARCH.
FETCH_BATCH = 1000
#: Messages changed per transaction by STORE.
STORE_BATCH = 5000
#: Message files read per trip to a thread by a SEARCH on their content.
SEARCH_READ_BATCH = 200
#: Messages larger than this are rendered for FETCH in a thread.
RENDER_IN_THREAD_BYTES = 256 * 1024
#: The largest UID there can be: what "*" stands for when asking what vanished.
_MAX_UID = 2**32 - 1
#: FETCH items answered from the index alone.
_INDEX_ITEMS = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"}


class SelectedMailbox:
    """The mailbox a session has selected; see the module docstring."""

    log = Logger()

    def __init__(self, session: IMAPSession, selection: Selection, read_only: bool) -> None:
        self.session = session
        self.name = selection.status.name
        self.read_only = read_only
        self.view = MailboxView(selection.status.uidvalidity, selection.uids)
        self._new: set[int] = set()
        self._flags: set[int] = set()
        account = session.account
        assert account is not None
        self._subscriptions = [
            session.backend.subscribe(kind, self._changed, account.id)
            for kind in (MailDelivered, FlagsChanged, MessageExpunged)
        ]

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.cancel()
        self._subscriptions = []

    def handler(self, name: str) -> Callable[[Command], Awaitable[None]] | None:
        return getattr(self, "_do_" + name.lower(), None)

    # -- changes from elsewhere --------------------------------------------------

    def _changed(self, event: Event) -> None:
        if canonical_name(getattr(event, "folder", "")) != self.name:
            return
        if isinstance(event, MailDelivered):
            self._new.add(event.uid)
        elif isinstance(event, FlagsChanged):
            self._flags.update(event.uids)
        elif isinstance(event, MessageExpunged):
            # Mail that came and went before it was reported is never reported.
            self._new.difference_update(event.uids)
            self.view.expunged_elsewhere(event.uids)
        if self.session.idling is not None:
            Deferred.fromCoroutine(self.report_changes(None)).addErrback(
                lambda f: self.log.failure("IDLE update failed", f)
            )

    async def report_changes(self, command: Command | None) -> None:
        """Send what changed since the last report (see the module docstring)."""
        may_expunge = command is None or command.uid or command.name not in _NO_EXPUNGE
        if may_expunge:
            self._report_expunged(self.view.flush_expunges())
        if self._new:
            new, self._new = self._new, set()
            exists = self.view.add(new)
            if exists:
                self.session.untagged(f"{exists} EXISTS")
        if self._flags:
            uids, self._flags = sorted(self._flags), set()
            await self._send_flags(uids)

    def _report_expunged(self, removed: list[tuple[int, int]]) -> None:
        """
        Tell the client that messages left the view: one EXPUNGE per
        sequence number, or under QRESYNC one VANISHED listing the UIDs
        (RFC 7162 3.2.10), which a client must get instead.
        """
        if self.session.qresync:
            if removed:
                uids = SequenceSet.from_numbers(uid for _seq, uid in removed)
                self.session.untagged(f"VANISHED {uids}")
            return
        for seq, _uid in removed:
            self.session.untagged(f"{seq} EXPUNGE")

    async def report_resync(self, modseq: int, known_uids: SequenceSet | None) -> None:
        """
        SELECT's QRESYNC answer (RFC 7162 3.2.5.1): the UIDs expunged since
        C{modseq} (only those in C{known_uids} when given) as VANISHED
        (EARLIER), then FLAGS and MODSEQ of every message changed since.
        """
        account = self.session.account
        assert account is not None
        mailboxes = self.session.backend.mailboxes
        vanished = await mailboxes.vanished_since(account, self.name, modseq)
        if known_uids is not None:
            vanished = _within(vanished, known_uids.resolve(_MAX_UID))
        if vanished:
            self.session.untagged(f"VANISHED (EARLIER) {SequenceSet.from_numbers(vanished)}")
        for row in await mailboxes.changed_since(account, self.name, modseq):
            seq = self.view.seq_of(row.uid)
            if seq is not None:
                self.session.untagged(self._flags_response(seq, row, include_uid=True))

    async def _send_flags(self, uids: list[int]) -> None:
        account = self.session.account
        assert account is not None
        for row in await self.session.backend.mailboxes.indexed(account, self.name, uids):
            seq = self.view.seq_of(row.uid)
            if seq is not None:
                self.session.untagged(self._flags_response(seq, row, include_uid=True))

    def _flags_response(self, seq: int, row: IndexedMessage, include_uid: bool) -> bytes:
        items = [b"FLAGS " + encode.flag_list(row.flags)]
        if include_uid:
            items.insert(0, f"UID {row.uid}".encode())
        if self.session.condstore:
            items.append(f"MODSEQ ({row.modseq})".encode())
        return f"{seq} FETCH (".encode() + b" ".join(items) + b")"

    # -- resolving sets ------------------------------------------------------------

    def _targets(self, sequence: SequenceSet, uid: bool) -> Iterator[tuple[int, int]]:
        """(seq, uid) of the messages a command names, ascending, lazily."""
        if uid:
            return self.view.uids_between(sequence.resolve(self.view.max_uid))
        return self.view.uids_in(sequence.resolve(len(self.view)))

    # -- FETCH ---------------------------------------------------------------------

    async def _do_fetch(self, command: Command) -> None:
        assert isinstance(command, Fetch)
        account = self.session.account
        assert account is not None
        if command.vanished and not self.session.qresync:
            self.session.tagged(command.tag, "BAD", "VANISHED needs ENABLE QRESYNC first")
            return
        if command.changed_since is not None:
            self.session.condstore = True
        if command.vanished:
            assert command.changed_since is not None
            await self._report_vanished_earlier(command.sequence, command.changed_since)
        attributes = list(command.attributes)
        # Under QRESYNC every FETCH response carries the UID (RFC 7162 3.2.4).
        if (command.uid or self.session.qresync) and not any(a.name == "UID" for a in attributes):
            attributes.insert(0, FetchAttribute("UID"))
        # A batch of index rows at a time: a FETCH 1:* of a 100,000-message
        # folder never holds the whole folder.
        for chunk in _batches(self._targets(command.sequence, command.uid), FETCH_BATCH):
            await self.session.writable()
            await self._fetch_batch(command, chunk, attributes)
        self.session.tagged(command.tag, "OK", f"{'UID ' if command.uid else ''}FETCH completed")

    async def _fetch_batch(
        self, command: Fetch, targets: list[tuple[int, int]], attributes: list[FetchAttribute]
    ) -> None:
        account = self.session.account
        assert account is not None
        mailboxes = self.session.backend.mailboxes
        rows = {
            row.uid: row
            for row in await mailboxes.indexed(account, self.name, [uid for _s, uid in targets])
        }
        if command.changed_since is not None:
            rows = {u: r for u, r in rows.items() if r.modseq > command.changed_since}
        seen_now: set[int] = set()
        if not self.read_only and any(a.sets_seen for a in attributes):
            unseen = [uid for uid, known in rows.items() if "\\Seen" not in known.flags]
            if unseen:
                result = await mailboxes.set_flags(account, self.name, unseen, "add", {"\\Seen"})
                seen_now = {state.uid for state in result.changed}
                self._flags.difference_update(seen_now)
                if seen_now:
                    fresh = await mailboxes.indexed(account, self.name, sorted(seen_now))
                    rows.update((changed.uid, changed) for changed in fresh)
        from_file = [a for a in attributes if a.name not in _INDEX_ITEMS]
        with_flags = [*attributes, FetchAttribute("FLAGS")]
        has_flags = any(a.name == "FLAGS" for a in attributes)
        for seq, uid in targets:
            row = rows.get(uid)
            if row is None:
                continue  # expunged meanwhile; reported when allowed
            # A message newly \\Seen gets its FLAGS too (RFC 3501 6.4.5).
            wanted = with_flags if uid in seen_now and not has_flags else attributes
            # ENVELOPE comes from the index when it was kept at delivery.
            needs_bytes = any(a.name != "ENVELOPE" or row.envelope is None for a in from_file)
            data = None
            if needs_bytes:
                await self.session.writable()  # message bodies: wait for the client per message
                data = await mailboxes.read(account, self.name, uid)
            if data is not None and len(data) > RENDER_IN_THREAD_BYTES:
                # Parsing a big message's MIME structure would hold up the reactor.
                response = await deferToThread(self._fetch_response, seq, row, wanted, data)
            else:
                response = self._fetch_response(seq, row, wanted, data)
            self.session.send(response)

    async def _report_vanished_earlier(self, sequence: SequenceSet, modseq: int) -> None:
        """UID FETCH's VANISHED modifier: the UIDs of C{sequence} expunged since C{modseq}."""
        account = self.session.account
        assert account is not None
        vanished = await self.session.backend.mailboxes.vanished_since(account, self.name, modseq)
        # "*" is the largest UID in use; expunged ones may lie above it.
        vanished = _within(vanished, sequence.resolve(_MAX_UID))
        if vanished:
            self.session.untagged(f"VANISHED (EARLIER) {SequenceSet.from_numbers(vanished)}")

    def _fetch_response(
        self, seq: int, row: IndexedMessage, attributes: list[FetchAttribute], data: bytes | None
    ) -> bytes:
        structure = MessageStructure(data) if data is not None else None
        items: list[bytes] = []
        for attribute in attributes:
            items.append(attribute.response_name.encode() + b" " + _item(attribute, row, structure))
        return f"* {seq} FETCH (".encode() + b" ".join(items) + b")\r\n"

    # -- STORE ---------------------------------------------------------------------

    async def _do_store(self, command: Command) -> None:
        assert isinstance(command, Store)
        account = self.session.account
        assert account is not None
        if self.read_only:
            self.session.tagged(command.tag, "NO", "the mailbox is read-only (EXAMINE)")
            return
        if command.unchanged_since is not None:
            self.session.condstore = True
        modified: list[int] = []
        # In batches, each its own transaction and modseq: a STORE on 1:* of
        # a 100,000-message folder never loads the whole folder at once.
        for batch in _batches(self._targets(command.sequence, command.uid), STORE_BATCH):
            modified.extend(await self._store_batch(command, batch))
        prefix = "UID " if command.uid else ""
        if modified:
            numbers = SequenceSet.from_numbers(
                modified if command.uid else [self.view.seq_of(u) or 0 for u in modified]
            )
            self.session.tagged(command.tag, "OK", f"[MODIFIED {numbers}] {prefix}STORE completed")
        else:
            self.session.tagged(command.tag, "OK", f"{prefix}STORE completed")

    async def _store_batch(self, command: Store, targets: list[tuple[int, int]]) -> list[int]:
        """Change the flags of C{targets} (seq, uid); the UIDs left alone (UNCHANGEDSINCE)."""
        account = self.session.account
        assert account is not None
        uids = [uid for _seq, uid in targets if not self.view.is_vanished(uid)]
        result = await self.session.backend.mailboxes.set_flags(
            account, self.name, uids, command.operation, set(command.flags),
            command.unchanged_since,
        )  # fmt: skip
        self._flags.difference_update(state.uid for state in result.changed)
        if command.silent and not self.session.condstore:
            return result.modified  # .SILENT: the client knows what it set
        states = result.changed if command.silent else result.changed + result.unchanged
        for state in sorted(states, key=lambda s: s.uid):
            seq = self.view.seq_of(state.uid)
            if seq is None:
                continue
            # Under CONDSTORE a silent STORE still owes the new MODSEQ (RFC 7162 3.1.3).
            items = [] if command.silent else [f"FLAGS {encode.flag_list(state.flags).decode()}"]
            if command.uid or self.session.qresync:
                items.insert(0, f"UID {state.uid}")
            if self.session.condstore:
                items.append(f"MODSEQ ({state.modseq})")
            self.session.untagged(f"{seq} FETCH ({' '.join(items)})")
        return result.modified

    # -- SEARCH --------------------------------------------------------------------

    async def _do_search(self, command: Command) -> None:
        """
        SEARCH from the index; message files are read only for the
        messages the index cannot decide (BODY, TEXT, other header fields).
        """
        assert isinstance(command, Search)
        account = self.session.account
        assert account is not None
        matcher = compile_search(command.key, len(self.view), self.view.max_uid)
        found: list[int] = []
        # A batch of index rows at a time: never the whole folder in memory.
        for positions in _batches(self.view.uids_in([(1, len(self.view))]), FETCH_BATCH):
            found.extend(await self._search_batch(matcher, positions))
        found.sort()
        if command.uid:
            found = [self.view.uid_of(seq) for seq in found]
        self.session.untagged("SEARCH" + "".join(f" {n}" for n in found))
        self.session.tagged(command.tag, "OK", f"{'UID ' if command.uid else ''}SEARCH completed")

    async def _search_batch(
        self, matcher: CompiledSearch, positions: list[tuple[int, int]]
    ) -> list[int]:
        """The sequence numbers among C{positions} (seq, uid) that match."""
        account = self.session.account
        assert account is not None
        mailboxes = self.session.backend.mailboxes
        rows = await mailboxes.indexed(account, self.name, [uid for _s, uid in positions])
        by_uid = {row.uid: row for row in rows}
        found: list[int] = []
        undecided: list[SearchTarget] = []
        for seq, uid in positions:
            row = by_uid.get(uid)
            if row is None:
                continue
            target = SearchTarget(seq, uid, row, len(self.view), self.view.max_uid)
            verdict = matcher.prefilter(target)
            if verdict is None:
                undecided.append(target)
            elif verdict:
                found.append(seq)
        # Only the messages the index cannot decide are read, many per thread trip.
        for start in range(0, len(undecided), SEARCH_READ_BATCH):
            batch = undecided[start : start + SEARCH_READ_BATCH]
            contents = await mailboxes.mailstore.read_paths(
                account, self.name, [t.row.path for t in batch]
            )
            present = []
            for target, content in zip(batch, contents, strict=True):
                if content is not None:  # else expunged meanwhile
                    target.content = content
                    present.append(target)
            # Decoding bodies is CPU work: off the reactor thread too.
            found.extend(await deferToThread(_matching, matcher, present))
        return found

    # -- COPY, MOVE, EXPUNGE ----------------------------------------------------------

    async def _do_copy(self, command: Command) -> None:
        await self._copy(command, move=False)

    async def _do_move(self, command: Command) -> None:
        await self._copy(command, move=True)

    async def _copy(self, command: Command, move: bool) -> None:
        assert isinstance(command, Copy)
        account = self.session.account
        assert account is not None
        mailboxes = self.session.backend.mailboxes
        operation = mailboxes.move if move else mailboxes.copy
        if move and self.read_only:
            self.session.tagged(command.tag, "NO", "the mailbox is read-only (EXAMINE)")
            return
        uids = [uid for _seq, uid in self._targets(command.sequence, command.uid)]
        try:
            pairs: list[tuple[int, int]] = await operation(
                account, self.name, uids, command.mailbox
            )
        except NoSuchFolder:
            self.session.tagged(command.tag, "NO", "[TRYCREATE] No such mailbox")
            return
        target = await self.session.backend.mailboxes.status(account, command.mailbox)
        code = ""
        if pairs:
            source = SequenceSet.from_numbers(p[0] for p in pairs)
            copied = SequenceSet.from_numbers(p[1] for p in pairs)
            code = f"[COPYUID {target.uidvalidity} {source} {copied}] "
        if move:
            if code:
                self.session.untagged(f"OK {code}moved")
            self._report_expunged(self.view.remove_own([p[0] for p in pairs]))
            self.session.tagged(command.tag, "OK", f"{'UID ' if command.uid else ''}MOVE completed")
        else:
            self.session.tagged(
                command.tag, "OK", f"{code}{'UID ' if command.uid else ''}COPY completed"
            )

    async def _do_expunge(self, command: Command) -> None:
        assert isinstance(command, Expunge)
        if self.read_only:
            self.session.tagged(command.tag, "NO", "the mailbox is read-only (EXAMINE)")
            return
        await self._expunge(command.sequence if command.uid else None)
        self.session.tagged(command.tag, "OK", f"{'UID ' if command.uid else ''}EXPUNGE completed")

    async def _expunge(self, sequence: SequenceSet | None, report: bool = True) -> None:
        account = self.session.account
        assert account is not None
        uids = None
        if sequence is not None:
            uids = [
                uid for _seq, uid in self.view.uids_between(sequence.resolve(self.view.max_uid))
            ]
        removed = await self.session.backend.mailboxes.expunge(account, self.name, uids)
        gone = self.view.remove_own(removed)
        if report:
            self._report_expunged(gone)

    async def _do_close(self, command: Command) -> None:
        if not self.read_only:
            await self._expunge(None, report=False)  # CLOSE expunges silently
        self._leave()
        self.session.tagged(command.tag, "OK", "CLOSE completed")

    async def _do_unselect(self, command: Command) -> None:
        self._leave()
        self.session.tagged(command.tag, "OK", "UNSELECT completed")

    def _leave(self) -> None:
        self.close()
        self.session.selected = None


def _item(
    attribute: FetchAttribute, row: IndexedMessage, structure: MessageStructure | None
) -> bytes:
    """The value of one FETCH item for one message."""
    name = attribute.name
    if name == "UID":
        return str(row.uid).encode()
    if name == "FLAGS":
        return encode.flag_list(row.flags)
    if name == "INTERNALDATE":
        return encode.internaldate(row.internal_date)
    if name == "RFC822.SIZE":
        return str(row.size).encode()
    if name == "MODSEQ":
        return f"({row.modseq})".encode()
    if name == "ENVELOPE" and row.envelope is not None:
        return row.envelope
    assert structure is not None
    if name == "ENVELOPE":
        return structure.envelope()
    if name == "BODYSTRUCTURE":
        return structure.bodystructure(True)
    if name == "BODY" and attribute.section is None:
        return structure.bodystructure(False)
    if name == "RFC822":
        return encode.literal(structure.raw)
    if name == "RFC822.HEADER":
        return encode.literal(structure.section((), "HEADER"))
    if name == "RFC822.TEXT":
        return encode.literal(structure.section((), "TEXT"))
    section = attribute.section
    assert section is not None
    data = structure.section(section.part, section.text, section.fields)
    if attribute.partial is not None:
        origin, count = attribute.partial
        data = partial(data, origin, count)
    return encode.literal(data)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """C{items} in lists of at most C{size}, lazily."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _within(uids: list[int], ranges: tuple[tuple[int, int], ...]) -> list[int]:
    """The C{uids} inside one of the ascending, disjoint inclusive C{ranges}."""
    lows = [low for low, _high in ranges]
    inside = []
    for uid in uids:
        i = bisect_right(lows, uid) - 1
        if i >= 0 and uid <= ranges[i][1]:
            inside.append(uid)
    return inside


def _matching(matcher: CompiledSearch, targets: list[SearchTarget]) -> list[int]:
    """The sequence numbers of C{targets} that match (blocking: in a thread)."""
    return [target.seq for target in targets if matcher(target)]
