"""Fixtures for the anti-abuse tests: a fake clock, a registry, captured log events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import provider

from gk.security.events import SecurityEvents


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def events(clock: Clock, registry: CollectorRegistry) -> SecurityEvents:
    return SecurityEvents.in_registry(registry, clock)


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every security event logged while the test runs, as Twisted log events."""
    captured: list[dict[str, Any]] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if "security_event" in event:
            captured.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield captured
    finally:
        globalLogPublisher.removeObserver(observe)


def fired(d: Deferred[Any]) -> Any:
    """The result of C{d}, which must have fired; re-raise its failure."""
    results: list[Any] = []
    failures: list[Failure] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, "the Deferred has not fired"
    return results[0]


def not_fired(d: Deferred[Any]) -> bool:
    """Whether C{d} has not fired yet (its result, if any, is left in place)."""
    results: list[Any] = []

    def keep(result: Any) -> Any:
        results.append(result)
        return result

    d.addBoth(keep)
    return not results


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0.0 when it does not exist yet."""
    return registry.get_sample_value(name, labels) or 0.0
