"""
Prometheus metrics, in a registry owned by the app (never the global one,
so that tests can build several apps in one process).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.process_collector import ProcessCollector

import gk
from gk.security.events import security_events_counter


class Metrics:
    """Every metric gk exports; services add to these as they do work."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        Info("gk_build", "gk version", registry=self.registry).info({"version": gk.__version__})
        self.listeners = Gauge(
            "gk_listeners", "Bound listening ports by role", ["role"], registry=self.registry
        )
        self.auth_attempts = Counter(
            "gk_auth_attempts",
            "Authentication attempts by protocol and outcome",
            ["protocol", "outcome"],
            registry=self.registry,
        )
        self.security_events = security_events_counter(self.registry)
        self.smtp_sessions = Counter(
            "gk_smtp_sessions", "SMTP connections by listener", ["listener"], registry=self.registry
        )
        self.smtp_messages = Counter(
            "gk_smtp_messages",
            "Messages at the end of DATA/BDAT by listener and outcome (accepted, refused)",
            ["listener", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "gk_mail_deliveries",
            "Messages stored in a local mailbox",
            registry=self.registry,
        )
        self.outbound = Counter(
            "gk_outbound_deliveries",
            "Outbound delivery attempts by recipient outcome (sent, deferred, bounced, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.queue_recipients = Gauge(
            "gk_queue_recipients",
            "Recipients in the outbound queue by state, after the last delivery round",
            ["state"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "gk_http_requests", "HTTP requests by status class", ["status"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
