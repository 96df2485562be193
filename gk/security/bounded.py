"""
L{BoundedMap}: the one place where anti-abuse state lives, so that no
flood of source addresses or account names can exhaust memory.

Every tracker in L{gk.security} keeps its per-key state in a
L{BoundedMap}: a dictionary in least-recently-written order with a hard cap
on its size.  Writing a new key beyond the cap evicts the least recently
written one.  Trackers also drop keys whose state has become idle
(equivalent to no state at all), either a few at a time from the old end
(L{BoundedMap.prune_front}) or all at once (L{BoundedMap.prune}).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """
    A mapping of at most C{max_keys} entries, oldest-written evicted first.

    Not thread-safe: like everything in L{gk.security} it is used on the
    reactor thread only.
    """

    def __init__(self, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        #: How many entries were evicted because the map was full.
        self.evictions = 0
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def get(self, key: K) -> V | None:
        """The value of C{key}, or L{None}; reading does not refresh its age."""
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        """
        Store C{value} and make C{key} the most recently written; evict the
        oldest entries while the map holds more than C{max_keys}.
        """
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_keys:
            self._data.popitem(last=False)
            self.evictions += 1

    def touch(self, key: K) -> None:
        """Make C{key}, if present, the most recently written (last to be evicted)."""
        if key in self._data:
            self._data.move_to_end(key)

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def prune_front(self, idle: Callable[[V], bool]) -> int:
        """
        Drop entries from the oldest end while C{idle(value)} holds; stop at
        the first entry that is not idle.  Cheap enough to call on every
        write (each entry is dropped at most once).  Returns how many went.
        """
        dropped = 0
        while self._data:
            key = next(iter(self._data))
            if not idle(self._data[key]):
                break
            del self._data[key]
            dropped += 1
        return dropped

    def prune(self, idle: Callable[[V], bool]) -> int:
        """Drop every entry whose value is idle; returns how many went."""
        gone = [key for key, value in self._data.items() if idle(value)]
        for key in gone:
            del self._data[key]
        return len(gone)
