"""The Security front desk: connections, messages, sweeping."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from gk.security.events import SecurityEvents
from gk.security.policy import SecurityPolicy
from gk.security.service import Security

from .conftest import sample


def make(clock: Clock, events: SecurityEvents, **settings: Any) -> Security:
    return Security(SecurityPolicy(**settings), clock, events)


def test_open_connections_are_limited_per_ip_and_protocol(
    clock: Clock, events: SecurityEvents, registry: CollectorRegistry
) -> None:
    security = make(clock, events, connections_per_ip=2)
    first = security.admit_connection("192.0.2.1", "imap")
    second = security.admit_connection("192.0.2.1", "imap")
    assert first.allowed and second.allowed
    refused = security.admit_connection("192.0.2.1", "imap")
    assert not refused.allowed
    assert refused.reason == "too_many_connections"
    refused.release()  # harmless
    assert security.admit_connection("192.0.2.1", "smtp").allowed
    assert security.admit_connection("192.0.2.2", "imap").allowed
    first.release()
    first.release()
    assert security.admit_connection("192.0.2.1", "imap").allowed
    assert sample(registry, "gk_security_events_total", type="connection_limited") == 1


def test_new_connections_per_minute_are_limited(clock: Clock, events: SecurityEvents) -> None:
    security = make(clock, events, connections_per_ip_per_minute=3)
    for _ in range(3):
        security.admit_connection("192.0.2.1", "smtp").release()
    refused = security.admit_connection("192.0.2.1", "smtp")
    assert not refused.allowed
    assert refused.reason == "connection_rate"
    assert refused.retry_after == 20.0
    clock.advance(20)
    assert security.admit_connection("192.0.2.1", "smtp").allowed


def test_a_blocked_ip_is_refused_at_connection(
    clock: Clock, events: SecurityEvents, logged: list[dict[str, Any]]
) -> None:
    security = make(clock, events)
    for _ in range(20):
        security.auth.record_failure("192.0.2.1", "alice@example.test", "imap")
    admission = security.admit_connection("192.0.2.1", "smtp")
    assert not admission.allowed
    assert admission.reason == "blocked"
    assert admission.retry_after == 900.0
    assert logged[-1]["security_event"] == "blocked_connection"


def test_messages_per_minute_and_hour(
    clock: Clock, events: SecurityEvents, registry: CollectorRegistry
) -> None:
    security = make(clock, events, messages_per_ip_per_minute=30, messages_per_ip_per_hour=40)
    assert all(security.allow_message("192.0.2.1", "smtp").allowed for _ in range(30))
    refused = security.allow_message("192.0.2.1", "smtp")
    assert not refused.allowed
    assert refused.retry_after == 2.0
    assert security.allow_message("192.0.2.2", "smtp").allowed
    clock.advance(60)
    assert all(security.allow_message("192.0.2.1", "smtp").allowed for _ in range(10))
    assert not security.allow_message("192.0.2.1", "smtp").allowed  # the hourly limit
    assert sample(registry, "gk_security_events_total", type="message_rate_limited") == 2


def test_messages_from_one_ipv6_64_share_a_limit(clock: Clock, events: SecurityEvents) -> None:
    security = make(clock, events, messages_per_ip_per_minute=2)
    assert security.allow_message("2001:db8::1", "smtp").allowed
    assert security.allow_message("2001:db8::2", "smtp").allowed
    assert not security.allow_message("2001:db8::3", "smtp").allowed
    assert security.allow_message("2001:db8:1::1", "smtp").allowed


def test_exempt_networks_skip_connection_and_message_limits(
    clock: Clock, events: SecurityEvents
) -> None:
    security = make(
        clock,
        events,
        exempt_networks=("127.0.0.0/8", "::1"),
        connections_per_ip=1,
        connections_per_ip_per_minute=1,
        messages_per_ip_per_minute=1,
    )
    assert all(security.admit_connection("127.0.0.1", "imap").allowed for _ in range(5))
    assert all(security.admit_connection("::1", "imap").allowed for _ in range(5))
    assert all(security.allow_message("127.0.0.1", "smtp").allowed for _ in range(5))
    assert security.admit_connection("192.0.2.1", "imap").allowed
    assert not security.admit_connection("192.0.2.1", "imap").allowed


def test_zero_disables_a_limit(clock: Clock, events: SecurityEvents) -> None:
    security = make(
        clock,
        events,
        connections_per_ip=0,
        connections_per_ip_per_minute=0,
        messages_per_ip_per_minute=0,
        messages_per_ip_per_hour=0,
    )
    assert all(security.admit_connection("192.0.2.1", "imap").allowed for _ in range(500))
    assert all(security.allow_message("192.0.2.1", "smtp").allowed for _ in range(500))


def test_the_service_sweeps_idle_state_on_the_clock(clock: Clock, events: SecurityEvents) -> None:
    security = make(clock, events)
    security.startService()
    try:
        for i in range(100):
            security.allow_message(f"10.0.0.{i}", "smtp")
            security.admit_connection(f"10.0.0.{i}", "smtp").release()
        security.auth.record_failure("10.0.1.1", "alice@example.test", "imap")
        assert security.message_rate is not None and security.connection_rate is not None
        assert len(security.message_rate) == 100
        clock.advance(3600)  # every bucket full again, the failure out of its window
        assert len(security.message_rate) == 0
        assert len(security.connection_rate) == 0
        assert security.auth.expire() == 0  # already swept
    finally:
        security.stopService()
    assert not clock.getDelayedCalls()
