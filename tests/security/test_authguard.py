"""Brute-force protection: growing delays, blocks, spraying, distributed attacks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock

from gk.security.authguard import AuthGuard, AuthResult
from gk.security.events import AuthOutcome, SecurityEvents
from gk.security.policy import SecurityPolicy

from .conftest import fired, not_fired, sample

IP = "192.0.2.1"
ALICE = "alice@example.test"
#: The default delays after 5, 6, 7 ... failures.
DELAYS = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@pytest.fixture
def guard(clock: Clock, events: SecurityEvents) -> AuthGuard:
    return AuthGuard(clock, SecurityPolicy(), events)


class Checker:
    """A password check that counts its calls and answers what it is told."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> Deferred[str | None]:
        self.calls += 1
        return succeed(self.answer)


def attempt(guard: AuthGuard, ip: str, account: str, check: Checker) -> Deferred[AuthResult[str]]:
    return ensureDeferred(guard.authenticate(ip, account, "imap", check))


def fail(guard: AuthGuard, ip: str, account: str, times: int = 1) -> None:
    for _ in range(times):
        guard.record_failure(ip, account, "imap")


def test_growing_delays_after_five_failures(guard: AuthGuard) -> None:
    delays = []
    for _ in range(4):
        fail(guard, IP, ALICE)
        assert guard.delay_for(IP, ALICE) == 0.0
    for _ in range(len(DELAYS)):
        fail(guard, IP, ALICE)
        delays.append(guard.delay_for(IP, ALICE))
    assert delays == DELAYS


def test_per_source_delays_apply_to_every_account(guard: AuthGuard) -> None:
    for i in range(5):
        fail(guard, IP, f"user{i}@example.test")
    assert guard.delay_for(IP, "someone-else@example.test") == 1.0
    assert guard.delay_for("192.0.2.2", "someone-else@example.test") == 0.0


def test_the_delay_is_awaited_on_the_clock_before_the_check(guard: AuthGuard, clock: Clock) -> None:
    fail(guard, IP, ALICE, times=6)  # the next attempt waits 2 s
    check = Checker(ALICE)
    d = attempt(guard, IP, ALICE, check)
    clock.advance(1.999)
    assert not_fired(d)
    assert check.calls == 0  # nothing checked (nor answered) before the delay
    clock.advance(0.001)
    result = fired(d)
    assert check.calls == 1
    assert result == AuthResult(AuthOutcome.SUCCESS, ALICE, delay=2.0)


def test_failed_attempts_through_authenticate_grow_the_delay(
    guard: AuthGuard, clock: Clock
) -> None:
    waited = []
    for _ in range(5 + len(DELAYS)):
        d = attempt(guard, IP, ALICE, Checker(None))
        clock.advance(guard.delay_for(IP, ALICE))
        result = fired(d)
        assert result.outcome is AuthOutcome.FAILURE
        waited.append(result.delay)
    assert waited == [0.0] * 5 + DELAYS[:-1] + [30.0]


def test_failures_age_out_of_the_window(guard: AuthGuard, clock: Clock) -> None:
    fail(guard, IP, ALICE, times=5)
    assert guard.delay_for(IP, ALICE) == 1.0
    clock.advance(900)
    assert guard.failures(IP) == 0
    assert guard.account_failures(ALICE) == 0
    assert guard.delay_for(IP, ALICE) == 0.0


def test_the_ip_is_blocked_after_twenty_failures(
    guard: AuthGuard, clock: Clock, registry: CollectorRegistry, logged: list[dict[str, Any]]
) -> None:
    fail(guard, IP, ALICE, times=19)
    assert not guard.is_blocked(IP)
    fail(guard, IP, ALICE)
    assert guard.is_blocked(IP)
    assert guard.blocked_for(IP) == 900.0
    assert guard.blocked() == {IP: 900.0}
    blocks = [e for e in logged if e["security_event"] == "ip_blocked"]
    assert len(blocks) == 1
    assert blocks[0]["ip"] == IP
    assert blocks[0]["duration"] == 900.0
    assert blocks[0]["strikes"] == 1
    assert sample(registry, "gk_security_events_total", type="ip_blocked") == 1
    assert not guard.is_blocked("192.0.2.2")


def test_a_block_expires(guard: AuthGuard, clock: Clock) -> None:
    fail(guard, IP, ALICE, times=20)
    clock.advance(899)
    assert guard.is_blocked(IP)
    assert guard.blocked_for(IP) == 1.0
    clock.advance(1)
    assert not guard.is_blocked(IP)
    assert guard.blocked() == {}
    assert guard.delay_for(IP, "bob@example.test") == 0.0  # the block cleared its failures


def test_repeat_offences_are_blocked_longer(guard: AuthGuard, clock: Clock) -> None:
    durations = []
    for _ in range(8):
        fail(guard, IP, ALICE, times=20)
        durations.append(guard.blocked_for(IP))
        clock.advance(guard.blocked_for(IP))
    assert durations == [900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 57600.0, 86400.0]
    # A day after the last block ended, the slate is clean.
    clock.advance(86400)
    fail(guard, IP, ALICE, times=20)
    assert guard.blocked_for(IP) == 900.0


def test_a_blocked_ip_is_refused_before_any_password_check(
    guard: AuthGuard, registry: CollectorRegistry, logged: list[dict[str, Any]]
) -> None:
    fail(guard, IP, ALICE, times=20)
    check = Checker(ALICE)  # even the right password
    result = fired(attempt(guard, IP, ALICE, check))
    assert result.outcome is AuthOutcome.BLOCKED
    assert result.account is None
    assert result.retry_after == 900.0
    assert check.calls == 0
    assert sample(registry, "gk_auth_attempts_total", protocol="imap", outcome="blocked") == 1
    refused = [e for e in logged if e["security_event"] == "auth_blocked"]
    assert [(e["ip"], e["account"], e["protocol"]) for e in refused] == [(IP, ALICE, "imap")]


def test_an_ip_blocked_while_an_attempt_waits_is_refused_after_the_wait(
    guard: AuthGuard, clock: Clock
) -> None:
    fail(guard, IP, ALICE, times=18)
    check = Checker(None)
    waiting = attempt(guard, IP, ALICE, check)  # waits 30 s
    fail(guard, IP, ALICE, times=2)  # a parallel connection gets it blocked
    clock.advance(30)
    assert fired(waiting).outcome is AuthOutcome.BLOCKED
    assert check.calls == 0


def test_a_success_resets_the_account_counter(
    guard: AuthGuard, clock: Clock, registry: CollectorRegistry
) -> None:
    fail(guard, IP, ALICE, times=7)
    assert guard.delay_for(IP, ALICE) == 4.0
    d = attempt(guard, IP, ALICE, Checker(ALICE))
    clock.advance(4)
    assert fired(d).outcome is AuthOutcome.SUCCESS
    assert guard.account_failures(ALICE) == 0
    assert guard.failures(IP) == 0  # they were all on this account
    assert guard.delay_for(IP, ALICE) == 0.0
    fail(guard, IP, ALICE)
    assert guard.delay_for(IP, ALICE) == 0.0  # counting starts again from 1
    assert sample(registry, "gk_auth_attempts_total", protocol="imap", outcome="success") == 1
    assert sample(registry, "gk_auth_attempts_total", protocol="imap", outcome="failure") == 8


def test_password_spraying_from_one_ip_is_blocked(guard: AuthGuard) -> None:
    for i in range(19):
        fail(guard, IP, f"user{i}@example.test")
    assert not guard.is_blocked(IP)
    assert guard.account_failures("user0@example.test") == 1  # no account is slowed
    fail(guard, IP, "user19@example.test")
    assert guard.is_blocked(IP)


def test_successes_on_its_own_account_do_not_let_a_sprayer_off(guard: AuthGuard) -> None:
    mallory = "mallory@example.test"  # the attacker's own, valid account
    for i in range(19):
        fail(guard, IP, f"user{i}@example.test")
        guard.record_success(IP, mallory, "imap")
    assert guard.failures(IP) == 19
    assert not guard.is_blocked(IP)
    fail(guard, IP, "user19@example.test")
    assert guard.is_blocked(IP)


def test_one_account_attacked_from_many_ips_is_delayed_but_never_blocked(
    guard: AuthGuard, clock: Clock
) -> None:
    delays = []
    for i in range(200):
        ip = f"198.51.{i // 256}.{i % 256}"
        assert not guard.is_blocked(ip)
        d = attempt(guard, ip, ALICE, Checker(None))
        clock.advance(guard.delay_for(ip, ALICE))
        result = fired(d)
        assert result.outcome is AuthOutcome.FAILURE
        delays.append(result.delay)
    assert delays[:11] == [0.0] * 5 + [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(delays[10:]) == {30.0}  # capped, never refused
    assert guard.blocked() == {}
    # The owner, from a new network, with the right password: slow, but in.
    check = Checker(ALICE)
    d = attempt(guard, "203.0.113.5", ALICE, check)
    clock.advance(30)
    assert fired(d).outcome is AuthOutcome.SUCCESS
    assert check.calls == 1


def test_a_trusted_source_is_not_slowed_by_attacks_on_its_account(
    guard: AuthGuard, clock: Clock
) -> None:
    home = "203.0.113.5"
    guard.record_success(home, ALICE, "imap")
    for i in range(30):
        fail(guard, f"198.51.100.{i}", ALICE)
    assert guard.delay_for("198.51.100.200", ALICE) == 30.0
    assert guard.delay_for(home, ALICE) == 0.0
    # Its success forgives only its own failures: the attackers' stay.
    guard.record_success(home, ALICE, "imap")
    assert guard.account_failures(ALICE) == 10  # counting stops where the delay is capped
    assert guard.delay_for("198.51.100.200", ALICE) == 30.0
    # Trust lapses after 30 days without a login.
    clock.advance(30 * 86400)
    fail(guard, "198.51.100.1", ALICE, times=10)
    assert guard.delay_for(home, ALICE) == 30.0


def test_rotating_ipv6_addresses_in_one_64_are_one_source(guard: AuthGuard) -> None:
    for i in range(20):
        fail(guard, f"2001:db8::{i + 1:x}", f"user{i}@example.test")
    assert guard.is_blocked("2001:db8::ffff")
    assert not guard.is_blocked("2001:db8:0:1::1")
    assert guard.blocked() == {"2001:db8::/64": 900.0}


def test_exempt_networks_are_never_blocked_but_accounts_still_slow_down(
    clock: Clock, events: SecurityEvents
) -> None:
    guard = AuthGuard(clock, SecurityPolicy(exempt_networks=("127.0.0.0/8",)), events)
    for i in range(50):
        fail(guard, "127.0.0.1", f"user{i}@example.test")
    assert not guard.is_blocked("127.0.0.1")
    assert guard.delay_for("127.0.0.1", "new@example.test") == 0.0
    fail(guard, "127.0.0.1", ALICE, times=5)
    assert guard.delay_for("127.0.0.1", ALICE) == 1.0


def test_a_failing_check_is_counted_as_an_error_not_a_failure(
    guard: AuthGuard, registry: CollectorRegistry
) -> None:
    async def broken() -> str | None:
        raise RuntimeError("database unreachable")

    d = ensureDeferred(guard.authenticate(IP, ALICE, "smtp", broken))
    with pytest.raises(RuntimeError):
        fired(d)
    assert guard.failures(IP) == 0
    assert sample(registry, "gk_auth_attempts_total", protocol="smtp", outcome="error") == 1


def test_account_names_are_compared_case_insensitively(guard: AuthGuard) -> None:
    fail(guard, "192.0.2.1", "Alice@Example.TEST", times=3)
    fail(guard, "192.0.2.2", " alice@example.test ", times=2)
    assert guard.account_failures(ALICE) == 5
    assert guard.delay_for("192.0.2.3", ALICE) == 1.0


def test_unblock(guard: AuthGuard, logged: list[dict[str, Any]]) -> None:
    fail(guard, IP, ALICE, times=20)
    assert guard.unblock(IP)
    assert not guard.is_blocked(IP)
    assert not guard.unblock(IP)
    assert [e["security_event"] for e in logged][-1] == "ip_unblocked"


def test_expire_forgets_what_no_longer_matters(guard: AuthGuard, clock: Clock) -> None:
    fail(guard, IP, ALICE, times=20)  # a block
    fail(guard, "192.0.2.2", "bob@example.test")
    guard.record_success("192.0.2.3", "carol@example.test", "imap")
    assert guard.expire() == 0
    clock.advance(900)
    # Failures aged out: bob's source, and alice's and bob's accounts.
    assert guard.expire() == 3
    clock.advance(86400)  # the block's memory ends
    assert guard.expire() == 1
    clock.advance(30 * 86400)  # carol's trust lapses
    assert guard.expire() == 1


def test_memory_is_bounded_under_a_flood_of_sources(clock: Clock, events: SecurityEvents) -> None:
    guard = AuthGuard(clock, SecurityPolicy(max_tracked=1000), events)
    for i in range(5000):
        fail(guard, f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", f"u{i}@example.test")
    assert len(guard._ip_failures) == 100
    assert len(guard._account_failures) == 100


def test_policy_thresholds_are_honoured(clock: Clock, events: SecurityEvents) -> None:
    policy = dataclasses.replace(
        SecurityPolicy(),
        auth_delay_after=2,
        auth_delay_initial=0.5,
        auth_delay_max=3.0,
        auth_block_after=6,
        block_duration=60.0,
    )
    guard = AuthGuard(clock, policy, events)
    delays = []
    for _ in range(5):
        fail(guard, IP, ALICE)
        delays.append(guard.delay_for(IP, ALICE))
    assert delays == [0.0, 0.5, 1.0, 2.0, 3.0]
    fail(guard, IP, ALICE)
    assert guard.blocked_for(IP) == 60.0
