"""
One IMAP session's view of its selected mailbox: which UID each message
sequence number stands for, as this session was told (RFC 3501 2.3.1.2).

Other sessions, SMTP delivery and the web UI change the folder at any time;
this view changes only when the session reports the change to its client:

  - new messages are appended at once and reported as EXISTS (allowed in
    any response);
  - messages expunged elsewhere stay in the view, with their sequence
    numbers, until the session may send EXPUNGE responses: never while
    answering FETCH, STORE or SEARCH by sequence number (RFC 3501 7.4.1),
    since the client's numbers would shift under it.  Until then FETCH,
    STORE and SEARCH skip such a message (its data is gone; RFC 3501
    allows leaving it out).

The UIDs are kept in an C{array} (4 bytes each): a 100,000-message folder
costs 400 KB per session, not 100,000 objects.  Pure: no I/O.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator


class MailboxView:
    """
    The sequence-number-to-UID map of one session.

    @ivar uidvalidity: the folder's UIDVALIDITY when selected.
    """

    def __init__(self, uidvalidity: int, uids: Iterable[int]) -> None:
        self.uidvalidity = uidvalidity
        self._uids = array("I", sorted(uids))
        #: Expunged elsewhere, not yet reported (and still in L{_uids}).
        self._vanished: set[int] = set()

    def __len__(self) -> int:
        """EXISTS as the client knows it."""
        return len(self._uids)

    @property
    def max_uid(self) -> int:
        return self._uids[-1] if self._uids else 0

    def uid_of(self, seq: int) -> int:
        """The UID at sequence number C{seq} (1-based). @raise IndexError: no such."""
        if not 1 <= seq <= len(self._uids):
            raise IndexError(seq)
        return self._uids[seq - 1]

    def seq_of(self, uid: int) -> int | None:
        """The sequence number of C{uid}, or L{None} if the view does not hold it."""
        i = bisect_left(self._uids, uid)
        if i < len(self._uids) and self._uids[i] == uid:
            return i + 1
        return None

    def is_vanished(self, uid: int) -> bool:
        """Expunged elsewhere, not yet reported: read-only to this session."""
        return uid in self._vanished

    def uids_in(self, ranges: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
        """
        (seq, uid) for every message whose sequence number is in one of the
        inclusive C{ranges} (already resolved against L{__len__}), ascending,
        each once.
        """
        wanted = _merge(ranges)
        for low, high in wanted:
            for seq in range(max(low, 1), min(high, len(self._uids)) + 1):
                yield seq, self._uids[seq - 1]

    def uids_between(self, ranges: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
        """
        (seq, uid) for every message whose UID is in one of the inclusive
        UID C{ranges}, ascending, each once; done by bisection, so a range
        like 1:4294967295 costs what the folder holds, not what it spans.
        """
        for low, high in _merge(ranges):
            start = bisect_left(self._uids, low)
            for i in range(start, len(self._uids)):
                uid = self._uids[i]
                if uid > high:
                    break
                yield i + 1, uid

    # -- changes ---------------------------------------------------------------

    def add(self, uids: Iterable[int]) -> int:
        """
        Messages delivered or appended since: those not yet in the view
        (new UIDs are always larger than any seen).  Returns the new
        EXISTS count if it changed, else 0.
        """
        new = sorted(uid for uid in set(uids) if uid > self.max_uid)
        if not new:
            return 0
        self._uids.extend(new)
        return len(self._uids)

    def expunged_elsewhere(self, uids: Iterable[int]) -> None:
        """Note messages gone from the folder; reported by L{flush_expunges}."""
        for uid in uids:
            if self.seq_of(uid) is not None:
                self._vanished.add(uid)

    def flush_expunges(self) -> list[tuple[int, int]]:
        """
        Drop the vanished messages from the view; C{(seq, uid)} of each, in
        the order to report them: one EXPUNGE response per sequence number,
        each counting after the ones before it were removed (or one
        VANISHED response listing the UIDs, under QRESYNC).
        """
        if not self._vanished:
            return []
        removed: list[tuple[int, int]] = []
        for uid in sorted(self._vanished):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            del self._uids[seq - 1]
            removed.append((seq, uid))
        self._vanished.clear()
        return removed

    def remove_own(self, uids: Iterable[int]) -> list[tuple[int, int]]:
        """
        Messages this session expunged (EXPUNGE, MOVE): gone from the view
        now; what to report, as L{flush_expunges}.
        """
        self.expunged_elsewhere(uids)
        return self.flush_expunges()


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping inclusive ranges (each given low..high or high..low)."""
    ordered = sorted((min(a, b), max(a, b)) for a, b in ranges)
    merged: list[tuple[int, int]] = []
    for low, high in ordered:
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
