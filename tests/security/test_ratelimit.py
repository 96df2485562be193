"""Keyed GCRA rate limits on a fake clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from gk.security.addresses import AddressKeyer
from gk.security.ratelimit import Decision, Rate, RateLimiter


def test_a_burst_above_the_rate_is_refused(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(3, 60.0)])
    assert [limiter.try_acquire("a") for _ in range(3)] == [
        Decision(True, 0.0, 2),
        Decision(True, 0.0, 1),
        Decision(True, 0.0, 0),
    ]
    refused = limiter.try_acquire("a")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(20.0)
    assert refused.remaining == 0


def test_tokens_refill_over_time(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(3, 60.0)])
    for _ in range(3):
        assert limiter.try_acquire("a").allowed
    clock.advance(19.9)
    assert not limiter.try_acquire("a").allowed
    clock.advance(0.1)
    assert limiter.try_acquire("a").allowed  # one token back after 20 s
    assert not limiter.try_acquire("a").allowed
    clock.advance(60)
    assert limiter.remaining("a") == 3  # full again, never more than the burst
    assert all(limiter.try_acquire("a").allowed for _ in range(3))
    assert not limiter.try_acquire("a").allowed


def test_refused_requests_consume_nothing(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(1, 10.0)])
    assert limiter.try_acquire("a").allowed
    for _ in range(100):
        assert not limiter.try_acquire("a").allowed
    clock.advance(10)
    assert limiter.try_acquire("a").allowed


def test_different_keys_are_independent(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(2, 60.0)])
    assert limiter.try_acquire("a").allowed
    assert limiter.try_acquire("a").allowed
    assert not limiter.try_acquire("a").allowed
    assert limiter.try_acquire("b").allowed
    assert limiter.try_acquire("b").allowed


def test_ipv6_addresses_in_one_64_share_a_bucket(clock: Clock) -> None:
    keyer = AddressKeyer()
    limiter = RateLimiter(clock, [Rate(2, 60.0)])
    assert limiter.try_acquire(keyer.key("2001:db8::1")).allowed
    assert limiter.try_acquire(keyer.key("2001:db8::dead:beef")).allowed
    assert not limiter.try_acquire(keyer.key("2001:db8::1234:5678:9abc:def0")).allowed
    # Another /64, and IPv4 addresses, count on their own.
    assert limiter.try_acquire(keyer.key("2001:db8:0:1::1")).allowed
    assert limiter.try_acquire(keyer.key("192.0.2.1")).allowed
    assert limiter.try_acquire(keyer.key("192.0.2.1")).allowed
    assert limiter.try_acquire(keyer.key("192.0.2.2")).allowed


def test_every_rate_must_admit_and_all_are_consumed(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(2, 60.0), Rate(3, 3600.0)])
    assert limiter.try_acquire("a").allowed
    assert limiter.try_acquire("a").allowed
    minute = limiter.try_acquire("a")
    assert not minute.allowed
    assert minute.retry_after == pytest.approx(30.0)
    clock.advance(30)
    assert limiter.try_acquire("a").allowed  # third of the hour
    clock.advance(30)
    hour = limiter.try_acquire("a")
    assert not hour.allowed  # the minute rate would allow it, the hour does not
    # Hour rate: one back every 1200 s; the bucket was emptied at t=0, 0, 30.
    assert hour.retry_after == pytest.approx(1140.0)
    clock.advance(1140)
    assert limiter.try_acquire("a").allowed


def test_cost_counts_several_units(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(10, 60.0)])
    assert limiter.try_acquire("a", cost=7) == Decision(True, 0.0, 3)
    refused = limiter.try_acquire("a", cost=4)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(6.0)
    assert limiter.try_acquire("a", cost=3).allowed
    with pytest.raises(ValueError):
        limiter.try_acquire("a", cost=11)
    with pytest.raises(ValueError):
        limiter.try_acquire("a", cost=0)


def test_explicit_burst(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(60, 60.0, burst=2)])
    assert limiter.try_acquire("a").allowed
    assert limiter.try_acquire("a").allowed
    assert not limiter.try_acquire("a").allowed
    clock.advance(1)
    assert limiter.try_acquire("a").allowed


def test_the_key_cap_evicts_the_oldest_keys(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(1, 3600.0)], max_keys=100)
    for i in range(10_000):
        limiter.try_acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    assert limiter.evictions == 9_900
    # The most recent keys are still limited; the oldest were forgotten.
    assert not limiter.try_acquire("10.0.39.15").allowed  # i = 9999
    assert limiter.remaining("10.0.0.0") == 1


def test_a_refused_key_is_kept_from_eviction(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(1, 3600.0)], max_keys=3)
    for key in "abc":
        assert limiter.try_acquire(key).allowed
    clock.advance(1)
    assert not limiter.try_acquire("a").allowed  # still hammering: now the newest
    limiter.try_acquire("d")  # evicts "b", the least recently used
    assert len(limiter) == 3
    assert not limiter.try_acquire("a").allowed
    assert limiter.remaining("b") == 1
    assert limiter.remaining("c") == 0


def test_idle_keys_expire(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(5, 60.0)])
    for i in range(50):
        limiter.try_acquire(f"key{i}")
    assert len(limiter) == 50
    clock.advance(11)  # one token (12 s) not yet back: nothing is idle
    assert limiter.expire() == 0
    clock.advance(1)
    assert limiter.expire() == 50
    assert len(limiter) == 0


def test_idle_keys_go_as_new_ones_arrive(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(5, 60.0)])
    for i in range(50):
        limiter.try_acquire(f"key{i}")
    clock.advance(60)
    limiter.try_acquire("new")
    assert len(limiter) == 1


def test_reset_forgets_a_key(clock: Clock) -> None:
    limiter = RateLimiter(clock, [Rate(1, 60.0)])
    limiter.try_acquire("a")
    assert not limiter.try_acquire("a").allowed
    limiter.reset("a")
    assert limiter.try_acquire("a").allowed


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rate(0, 60.0),
        lambda: Rate(1, 0.0),
        lambda: Rate(1, 60.0, burst=0),
        lambda: RateLimiter(Clock(), []),
        lambda: RateLimiter(Clock(), [Rate(1, 1.0)], max_keys=0),
    ],
)
def test_bad_settings_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
