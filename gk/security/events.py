"""
Security events: one structured log line and one Prometheus sample each.

Every anti-abuse decision worth knowing about (an authentication failure,
an IP blocked, a connection or message refused by a limit) goes through
L{SecurityEvents.emit}, which

  - logs it with L{twisted.logger} at level C{warn}, in namespace
    C{gk.security}, with the fields C{security_event} (the type), C{ip},
    C{protocol}, C{account} and any event-specific ones as separate keys
    of the log event, so the JSON log format carries them as JSON fields;
  - increments C{gk_security_events_total{type=...}}.

Authentication attempts are also counted by protocol and outcome in
C{gk_auth_attempts_total{protocol, outcome}} (L{SecurityEvents.auth_attempt}).

Text from clients (account names) is cleaned of control characters and
truncated before it is logged, so it cannot forge log lines.  Events that
an attacker can trigger at line rate (refusals by a limit or a block) are
always counted but logged at most a few times a minute per type and
source; the next line logged for that source says how many were left out
(field C{suppressed}).
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gk.security.bounded import BoundedMap
from gk.security.ratelimit import Rate, RateLimiter

#: Longest client-supplied text kept in a log field.
MAX_FIELD_LENGTH = 256

FieldValue = str | int | float

#: Throttled event types: lines logged per type and source, per minute.
DEFAULT_LOG_RATE = Rate(limit=3, period=60.0)


class SecurityEvent(StrEnum):
    """The types of security event (the C{type} label and C{security_event} field)."""

    #: A wrong password (or unknown account).
    AUTH_FAILURE = "auth_failure"
    #: An authentication attempt refused, unchecked, because its IP is blocked.
    AUTH_BLOCKED = "auth_blocked"
    #: An IP (or IPv6 prefix) was blocked after too many failures.
    IP_BLOCKED = "ip_blocked"
    #: An IP was unblocked by an operator.
    IP_UNBLOCKED = "ip_unblocked"
    #: A connection refused because its IP is blocked.
    BLOCKED_CONNECTION = "blocked_connection"
    #: A connection refused: too many open connections from its IP.
    CONNECTION_LIMITED = "connection_limited"
    #: A connection refused: too many new connections per minute from its IP.
    CONNECTION_RATE_LIMITED = "connection_rate_limited"
    #: A message refused: too many messages per minute or hour from its IP.
    MESSAGE_RATE_LIMITED = "message_rate_limited"


class AuthOutcome(StrEnum):
    """The C{outcome} label of C{gk_auth_attempts_total}."""

    SUCCESS = "success"
    FAILURE = "failure"
    #: Refused before the password was checked (the IP is blocked).
    BLOCKED = "blocked"
    #: The check itself failed (for example the database was unreachable).
    ERROR = "error"


#: Events an attacker can cause at line rate; their log lines are throttled.
THROTTLED_LOGGING = frozenset(
    {
        SecurityEvent.AUTH_BLOCKED,
        SecurityEvent.BLOCKED_CONNECTION,
        SecurityEvent.CONNECTION_LIMITED,
        SecurityEvent.CONNECTION_RATE_LIMITED,
        SecurityEvent.MESSAGE_RATE_LIMITED,
    }
)


def clean_text(text: str, limit: int = MAX_FIELD_LENGTH) -> str:
    """
    C{text} with control characters (C0, DEL, C1, and the Unicode line and
    paragraph separators) replaced by C{?}, cut to C{limit} characters.
    """
    cleaned = "".join("?" if _is_control(c) else c for c in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


def _is_control(c: str) -> bool:
    code = ord(c)
    return code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029)


def security_events_counter(registry: CollectorRegistry) -> Counter:
    """Create C{gk_security_events_total{type}} in C{registry} (once per registry)."""
    return Counter(
        "gk_security_events",
        "Security events (auth failures, blocks, refusals by a limit) by type",
        ["type"],
        registry=registry,
    )


def auth_attempts_counter(registry: CollectorRegistry) -> Counter:
    """Create C{gk_auth_attempts_total{protocol, outcome}} as L{gk.metrics.Metrics} does."""
    return Counter(
        "gk_auth_attempts",
        "Authentication attempts by protocol and outcome",
        ["protocol", "outcome"],
        registry=registry,
    )


class SecurityEvents:
    """
    Logs and counts security events (see the module docstring).

    @param events_counter: a L{Counter} with the single label C{type}.
    @param auth_counter: a L{Counter} with labels C{protocol} and C{outcome}.
    @param log_rate: how many lines of one throttled type are logged per
        source before the rest are only counted.
    """

    def __init__(
        self,
        clock: IReactorTime,
        events_counter: Counter,
        auth_counter: Counter,
        *,
        log_rate: Rate = DEFAULT_LOG_RATE,
        max_keys: int = 10_000,
        log: Logger | None = None,
    ) -> None:
        self._events = events_counter
        self._auth = auth_counter
        self.log = log if log is not None else Logger(namespace="gk.security")
        self._log_limiter = RateLimiter(clock, [log_rate], max_keys=max_keys)
        self._suppressed: BoundedMap[str, int] = BoundedMap(max_keys)
        for event in SecurityEvent:
            # Export every type from the start, at 0, so that rates work.
            self._events.labels(type=event.value)

    @classmethod
    def in_registry(cls, registry: CollectorRegistry, clock: IReactorTime) -> SecurityEvents:
        """Events counted by new counters in C{registry} (tests, stand-alone use)."""
        return cls(clock, security_events_counter(registry), auth_attempts_counter(registry))

    def emit(
        self,
        event: SecurityEvent,
        *,
        ip: str = "",
        protocol: str = "",
        account: str = "",
        source: str = "",
        **fields: FieldValue,
    ) -> None:
        """
        Count C{event} and log it with C{ip}, C{protocol}, C{account} and
        C{fields} as structured fields.

        @param source: the key the IP is counted under (its /64 for
            IPv6), logged as field C{source} and used to throttle logging;
            C{ip} stands for it when empty.
        @param fields: event-specific values; names must not start with
            C{log_} (Twisted's own keys), nor be C{format} or C{level}.
        """
        self._events.labels(type=event.value).inc()
        if event in THROTTLED_LOGGING:
            key = f"{event.value}|{source or ip}"
            if not self._log_limiter.try_acquire(key).allowed:
                self._suppressed.put(key, (self._suppressed.get(key) or 0) + 1)
                return
            suppressed = self._suppressed.pop(key)
            if suppressed:
                fields["suppressed"] = suppressed
        values: dict[str, FieldValue] = {
            "ip": clean_text(ip),
            "protocol": clean_text(protocol),
            "account": clean_text(account),
            "source": clean_text(source),
            **{name: clean_text(v) if isinstance(v, str) else v for name, v in fields.items()},
        }
        shown = [name for name, value in values.items() if value != ""]
        text = " ".join(f"{name}={{{name}}}" for name in shown)
        self.log.warn(
            "security event {security_event}" + (": " + text if text else ""),
            security_event=event.value,
            **values,
        )

    def auth_attempt(self, protocol: str, outcome: AuthOutcome) -> None:
        """Count one authentication attempt."""
        self._auth.labels(protocol=protocol, outcome=outcome.value).inc()
