"""
Concurrent connections per client.

A protocol asks L{ConnectionLimiter.acquire} when a connection is made and
keeps the L{ConnectionLease} it gets; it calls L{ConnectionLease.release}
when the connection is lost.  Releasing is idempotent, so a count can
never go negative nor be released twice by one connection.  Only keys
with at least one open connection are tracked, so memory is bounded by
the number of open connections.
"""

from __future__ import annotations


class ConnectionLease:
    """One admitted connection; L{release} it exactly when it ends (again is harmless)."""

    def __init__(self, limiter: ConnectionLimiter, key: str) -> None:
        self._limiter = limiter
        self.key = key
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self.key)


class ConnectionLimiter:
    """
    At most C{max_per_key} open connections per key (and, when
    C{max_total} is positive, at most that many in all).
    """

    def __init__(self, max_per_key: int, max_total: int = 0) -> None:
        if max_per_key < 1:
            raise ValueError("at least one connection per client must be allowed")
        if max_total < 0:
            raise ValueError("max_total must be 0 (no limit) or positive")
        self.max_per_key = max_per_key
        self.max_total = max_total
        self._counts: dict[str, int] = {}
        self._total = 0

    @property
    def total(self) -> int:
        """Open connections in all."""
        return self._total

    def __len__(self) -> int:
        """How many keys have open connections."""
        return len(self._counts)

    def count(self, key: str) -> int:
        """Open connections for C{key}."""
        return self._counts.get(key, 0)

    def acquire(self, key: str) -> ConnectionLease | None:
        """A lease for one more connection of C{key}, or L{None} if over a limit."""
        current = self._counts.get(key, 0)
        if current >= self.max_per_key:
            return None
        if self.max_total and self._total >= self.max_total:
            return None
        self._counts[key] = current + 1
        self._total += 1
        return ConnectionLease(self, key)

    def _release(self, key: str) -> None:
        current = self._counts.get(key, 0)
        if current <= 1:
            self._counts.pop(key, None)
        else:
            self._counts[key] = current - 1
        if current > 0:
            self._total -= 1
