"""Security events: structured log fields and Prometheus counters."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock
from twisted.logger import LogLevel, eventAsJSON, formatEvent

from gk.metrics import Metrics
from gk.security.authguard import AuthGuard
from gk.security.events import (
    AuthOutcome,
    SecurityEvent,
    SecurityEvents,
    clean_text,
)
from gk.security.policy import SecurityPolicy

from .conftest import sample


def test_an_event_is_logged_with_structured_fields(
    events: SecurityEvents, logged: list[dict[str, Any]]
) -> None:
    events.emit(
        SecurityEvent.AUTH_FAILURE,
        ip="192.0.2.1",
        protocol="smtp",
        account="alice@example.test",
        failures_ip=3,
    )
    (event,) = logged
    assert event["security_event"] == "auth_failure"
    assert event["ip"] == "192.0.2.1"
    assert event["protocol"] == "smtp"
    assert event["account"] == "alice@example.test"
    assert event["failures_ip"] == 3
    assert event["log_level"] is LogLevel.warn
    assert event["log_namespace"] == "gk.security"
    text = formatEvent(event)
    assert "auth_failure" in text
    assert "ip=192.0.2.1" in text
    assert "account=alice@example.test" in text
    # The JSON log format carries every field as a JSON field.
    as_json = json.loads(eventAsJSON(event))
    assert as_json["security_event"] == "auth_failure"
    assert as_json["ip"] == "192.0.2.1"
    assert as_json["failures_ip"] == 3


def test_each_event_increments_its_counter(
    events: SecurityEvents, registry: CollectorRegistry
) -> None:
    for event in SecurityEvent:
        assert sample(registry, "gk_security_events_total", type=event.value) == 0
        # Exported from the start, at 0:
        assert registry.get_sample_value("gk_security_events_total", {"type": event.value}) == 0
    events.emit(SecurityEvent.IP_BLOCKED, ip="192.0.2.1")
    events.emit(SecurityEvent.IP_BLOCKED, ip="192.0.2.2")
    events.emit(SecurityEvent.AUTH_FAILURE, ip="192.0.2.1")
    assert sample(registry, "gk_security_events_total", type="ip_blocked") == 2
    assert sample(registry, "gk_security_events_total", type="auth_failure") == 1


def test_auth_attempts_are_counted_by_protocol_and_outcome(
    events: SecurityEvents, registry: CollectorRegistry
) -> None:
    events.auth_attempt("imap", AuthOutcome.SUCCESS)
    events.auth_attempt("imap", AuthOutcome.FAILURE)
    events.auth_attempt("smtp", AuthOutcome.FAILURE)
    assert sample(registry, "gk_auth_attempts_total", protocol="imap", outcome="success") == 1
    assert sample(registry, "gk_auth_attempts_total", protocol="imap", outcome="failure") == 1
    assert sample(registry, "gk_auth_attempts_total", protocol="smtp", outcome="failure") == 1


def test_client_text_cannot_forge_log_lines(
    events: SecurityEvents, logged: list[dict[str, Any]]
) -> None:
    events.emit(
        SecurityEvent.AUTH_FAILURE,
        ip="192.0.2.1",
        account="x\r\n2024 [gk.security] security event ip_unblocked\x1b[31m\u2028\x85",
    )
    (event,) = logged
    assert "\n" not in formatEvent(event)
    assert event["account"] == "x??2024 [gk.security] security event ip_unblocked?[31m??"
    long = clean_text("a" * 1000)
    assert len(long) == 259 and long.endswith("...")


def test_floods_are_counted_in_full_but_logged_sparingly(
    events: SecurityEvents,
    clock: Clock,
    registry: CollectorRegistry,
    logged: list[dict[str, Any]],
) -> None:
    for _ in range(10):
        events.emit(SecurityEvent.CONNECTION_LIMITED, ip="192.0.2.1", protocol="imap")
    events.emit(SecurityEvent.CONNECTION_LIMITED, ip="192.0.2.2", protocol="imap")
    assert sample(registry, "gk_security_events_total", type="connection_limited") == 11
    assert [e["ip"] for e in logged] == ["192.0.2.1"] * 3 + ["192.0.2.2"]
    clock.advance(20)
    events.emit(SecurityEvent.CONNECTION_LIMITED, ip="192.0.2.1", protocol="imap")
    assert logged[-1]["ip"] == "192.0.2.1"
    assert logged[-1]["suppressed"] == 7
    assert "suppressed=7" in formatEvent(logged[-1])


def test_auth_failures_are_all_logged(events: SecurityEvents, logged: list[dict[str, Any]]) -> None:
    for _ in range(10):
        events.emit(SecurityEvent.AUTH_FAILURE, ip="192.0.2.1")
    assert len(logged) == 10


def test_the_guard_logs_and_counts_a_failure(
    clock: Clock,
    events: SecurityEvents,
    registry: CollectorRegistry,
    logged: list[dict[str, Any]],
) -> None:
    guard = AuthGuard(clock, SecurityPolicy(), events)
    guard.record_failure("2001:db8::1", "bob@example.test", "submission")
    (event,) = logged
    assert {k: event[k] for k in ("security_event", "ip", "account", "protocol")} == {
        "security_event": "auth_failure",
        "ip": "2001:db8::1",
        "account": "bob@example.test",
        "protocol": "submission",
    }
    assert event["failures_ip"] == 1
    assert event["failures_account"] == 1
    assert sample(registry, "gk_security_events_total", type="auth_failure") == 1
    assert sample(registry, "gk_auth_attempts_total", protocol="submission", outcome="failure") == 1


def test_works_with_the_apps_metrics(clock: Clock) -> None:
    """The existing C{gk_auth_attempts} of L{Metrics} is the one counted."""
    metrics = Metrics()
    events = SecurityEvents(clock, metrics.security_events, metrics.auth_attempts)
    events.auth_attempt("imap", AuthOutcome.FAILURE)
    events.emit(SecurityEvent.AUTH_FAILURE, ip="192.0.2.1")
    rendered = metrics.render().decode()
    assert 'gk_auth_attempts_total{outcome="failure",protocol="imap"} 1.0' in rendered
    assert 'gk_security_events_total{type="auth_failure"} 1.0' in rendered
    assert 'gk_security_events_total{type="ip_blocked"} 0.0' in rendered
