"""Concurrent connections per key."""

from __future__ import annotations

import pytest

from gk.security.connections import ConnectionLimiter


def test_acquire_up_to_the_limit_then_refuse() -> None:
    limiter = ConnectionLimiter(max_per_key=3)
    leases = [limiter.acquire("a") for _ in range(3)]
    assert all(lease is not None for lease in leases)
    assert limiter.count("a") == 3
    assert limiter.acquire("a") is None
    assert limiter.count("a") == 3
    assert limiter.acquire("b") is not None  # other keys are independent


def test_release_frees_a_slot() -> None:
    limiter = ConnectionLimiter(max_per_key=1)
    lease = limiter.acquire("a")
    assert lease is not None
    assert limiter.acquire("a") is None
    lease.release()
    assert lease.released
    assert limiter.count("a") == 0
    assert limiter.acquire("a") is not None


def test_counts_never_go_negative() -> None:
    limiter = ConnectionLimiter(max_per_key=2)
    first = limiter.acquire("a")
    second = limiter.acquire("a")
    assert first is not None and second is not None
    for _ in range(5):
        first.release()  # a repeated release is ignored
    assert limiter.count("a") == 1
    assert limiter.total == 1
    second.release()
    second.release()
    assert limiter.count("a") == 0
    assert limiter.total == 0
    assert len(limiter) == 0  # keys without connections are not kept
    # The slots really are free: both can be taken again, and no more.
    assert limiter.acquire("a") is not None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("a") is None


def test_total_limit() -> None:
    limiter = ConnectionLimiter(max_per_key=10, max_total=2)
    a = limiter.acquire("a")
    assert limiter.acquire("b") is not None
    assert limiter.acquire("c") is None
    assert a is not None
    a.release()
    assert limiter.acquire("c") is not None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ConnectionLimiter(0)
    with pytest.raises(ValueError):
        ConnectionLimiter(1, max_total=-1)
