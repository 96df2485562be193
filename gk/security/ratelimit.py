"""
Keyed rate limits: "at most N per period, per key", on an injected clock.

L{RateLimiter} implements GCRA (the generic cell rate algorithm), which
behaves exactly like a token bucket that holds C{burst} tokens and gains
C{limit} tokens per C{period}, but stores a single number per key and
rate: the I{theoretical arrival time} (TAT).  A key whose TAT is in the
past has a full bucket, which is the same as not being tracked at all, so
idle keys can be forgotten without changing any answer.  Memory is
bounded by a L{BoundedMap}: beyond C{max_keys} keys the least recently
used one is forgotten (which hands it a full bucket: the price of
bounded memory under a flood of sources).

Keys are opaque strings; limit per client with
L{gk.security.addresses.AddressKeyer.key}.  Everything runs on the
reactor thread; nothing blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from gk.security.bounded import BoundedMap

# Clock arithmetic is floating point; never refuse for a rounding error.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Rate:
    """
    C{limit} events per C{period} seconds, sustained, with bursts of up to
    C{burst} events at once (C{limit} when not given).
    """

    limit: int
    period: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a rate limit must allow at least 1 event")
        if self.period <= 0:
            raise ValueError("a rate period must be positive")
        if self.burst is not None and self.burst < 1:
            raise ValueError("a burst must allow at least 1 event")

    @property
    def capacity(self) -> int:
        """How many events fit in one burst."""
        return self.limit if self.burst is None else self.burst

    @property
    def interval(self) -> float:
        """Seconds for one event's worth of capacity to come back."""
        return self.period / self.limit


@dataclass(frozen=True)
class Decision:
    """
    The answer to one request.

    @ivar allowed: the request was admitted (and its cost consumed).
    @ivar retry_after: when refused, seconds until the same request would
        be admitted (0.0 when allowed).
    @ivar remaining: how many more unit requests would be admitted right now.
    """

    allowed: bool
    retry_after: float = 0.0
    remaining: int = 0


class RateLimiter:
    """
    One or more L{Rate}s applied to every key together: a request is
    admitted only if every rate admits it, and then consumes from all of
    them; a refused request consumes nothing.
    """

    def __init__(
        self, clock: IReactorTime, rates: Sequence[Rate], *, max_keys: int = 100_000
    ) -> None:
        if not rates:
            raise ValueError("a rate limiter needs at least one rate")
        self._clock = clock
        self.rates = tuple(rates)
        self._tats: BoundedMap[str, list[float]] = BoundedMap(max_keys)

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._tats)

    @property
    def evictions(self) -> int:
        """How many keys were forgotten early because C{max_keys} was reached."""
        return self._tats.evictions

    def try_acquire(self, key: str, cost: int = 1) -> Decision:
        """
        Admit a request of C{cost} units for C{key} if every rate allows it.

        @raise ValueError: C{cost} is below 1 or above a rate's burst (such
            a request could never be admitted).
        """
        if cost < 1:
            raise ValueError("the cost of a request must be at least 1")
        for rate in self.rates:
            if cost > rate.capacity:
                raise ValueError(f"a cost of {cost} exceeds the burst of {rate}")
        now = self._clock.seconds()
        self._tats.prune_front(lambda tats: self._idle(tats, now))
        stored = self._tats.get(key)
        new_tats: list[float] = []
        retry_after = 0.0
        for i, rate in enumerate(self.rates):
            tat = now if stored is None else max(stored[i], now)
            new_tat = tat + cost * rate.interval
            allowed_at = new_tat - rate.capacity * rate.interval
            if allowed_at > now + _EPSILON:
                retry_after = max(retry_after, allowed_at - now)
            new_tats.append(new_tat)
        if retry_after > 0:
            # A key being refused is active: keep it from early eviction.
            self._tats.touch(key)
            return Decision(False, retry_after, self._remaining(stored, now))
        self._tats.put(key, new_tats)
        return Decision(True, 0.0, self._remaining(new_tats, now))

    def remaining(self, key: str) -> int:
        """How many unit requests C{key} could make right now (consumes nothing)."""
        return self._remaining(self._tats.get(key), self._clock.seconds())

    def reset(self, key: str) -> None:
        """Forget C{key}: its next request sees a full bucket."""
        self._tats.pop(key)

    def expire(self) -> int:
        """Forget every idle key (a full bucket); returns how many went."""
        now = self._clock.seconds()
        return self._tats.prune(lambda tats: self._idle(tats, now))

    def _remaining(self, tats: list[float] | None, now: float) -> int:
        if tats is None:
            return min(rate.capacity for rate in self.rates)
        return min(
            max(0, math.floor(rate.capacity - (max(tat, now) - now) / rate.interval + _EPSILON))
            for rate, tat in zip(self.rates, tats, strict=True)
        )

    @staticmethod
    def _idle(tats: list[float], now: float) -> bool:
        return all(tat <= now for tat in tats)
