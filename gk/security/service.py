"""
L{Security}: the anti-abuse front desk every listener shares.

It bundles, from one L{SecurityPolicy}: the address keyer, the
concurrent-connection and connection-rate limits, the message-rate
limits, the L{AuthGuard} and the L{SecurityEvents}; and as a Twisted
service it forgets idle state once a minute (memory is bounded by caps
anyway; this keeps it small).

Connection and message limits are counted per protocol (C{"smtp"},
C{"submission"}, C{"imap"}, C{"http"} ...) and source, so that, say, a
browser's many HTTP connections never use up a household's IMAP
connections.  Brute-force state is shared by all protocols.

A listener uses it like this::

    admission = security.admit_connection(peer_ip(transport.getPeer()), "imap")
    if not admission.allowed:
        ...  # "* BYE too many connections", then close
    ...
    admission.release()   # in connectionLost

    if not security.allow_message(ip, "smtp").allowed:
        ...  # "450 4.7.1 too many messages, try later"
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from gk.security.authguard import AuthGuard
from gk.security.connections import ConnectionLease, ConnectionLimiter
from gk.security.events import SecurityEvent, SecurityEvents
from gk.security.policy import SecurityPolicy
from gk.security.ratelimit import Decision, Rate, RateLimiter

#: Seconds between two sweeps of idle state.
SWEEP_INTERVAL = 60.0

_UNLIMITED = 1 << 30


@dataclass(frozen=True)
class Admission:
    """
    Whether a new connection may proceed.

    @ivar reason: C{""} when allowed, else C{"blocked"},
        C{"too_many_connections"} or C{"connection_rate"}.
    @ivar retry_after: seconds after which trying again may succeed (0.0:
        when a connection from the same source closes).
    @ivar lease: the connection's slot; L{release} it when the connection ends.
    """

    allowed: bool
    reason: str = ""
    retry_after: float = 0.0
    lease: ConnectionLease | None = None

    def release(self) -> None:
        """End the connection's slot (idempotent; nothing when refused)."""
        if self.lease is not None:
            self.lease.release()


class Security(Service):
    """Connection, message and authentication limits for every listener."""

    name = "security"

    def __init__(self, policy: SecurityPolicy, clock: IReactorTime, events: SecurityEvents) -> None:
        self.policy = policy
        self.clock = clock
        self.events = events
        self.keyer = policy.keyer()
        self.auth = AuthGuard(clock, policy, events, self.keyer)
        self.connections = ConnectionLimiter(policy.connections_per_ip or _UNLIMITED)
        self.connection_rate: RateLimiter | None = None
        if policy.connections_per_ip_per_minute:
            self.connection_rate = RateLimiter(
                clock,
                [Rate(policy.connections_per_ip_per_minute, 60.0)],
                max_keys=policy.max_tracked,
            )
        message_rates = [
            Rate(limit, period)
            for limit, period in (
                (policy.messages_per_ip_per_minute, 60.0),
                (policy.messages_per_ip_per_hour, 3600.0),
            )
            if limit
        ]
        self.message_rate: RateLimiter | None = None
        if message_rates:
            self.message_rate = RateLimiter(clock, message_rates, max_keys=policy.max_tracked)
        self._sweeper: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._sweeper = LoopingCall(self.expire)
        self._sweeper.clock = self.clock
        self._sweeper.start(SWEEP_INTERVAL, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None

    def admit_connection(self, ip: str, protocol: str) -> Admission:
        """
        Decide on a new connection from C{ip}: refused if the source is
        blocked, has too many open connections for C{protocol}, or opened
        too many lately.  Refusals are logged and counted.  An admitted
        connection holds a slot until L{Admission.release}.
        """
        if self.keyer.is_exempt(ip):
            return Admission(True)
        source = self.keyer.key(ip)
        blocked_for = self.auth.blocked_for(ip)
        if blocked_for > 0:
            self.events.emit(
                SecurityEvent.BLOCKED_CONNECTION,
                ip=ip,
                protocol=protocol,
                source=source,
                retry_after=round(blocked_for, 3),
            )
            return Admission(False, "blocked", blocked_for)
        key = f"{protocol}|{source}"
        if self.connections.count(key) >= self.connections.max_per_key:
            self.events.emit(
                SecurityEvent.CONNECTION_LIMITED,
                ip=ip,
                protocol=protocol,
                source=source,
                open=self.connections.count(key),
            )
            return Admission(False, "too_many_connections")
        if self.connection_rate is not None:
            decision = self.connection_rate.try_acquire(key)
            if not decision.allowed:
                self.events.emit(
                    SecurityEvent.CONNECTION_RATE_LIMITED,
                    ip=ip,
                    protocol=protocol,
                    source=source,
                    retry_after=round(decision.retry_after, 3),
                )
                return Admission(False, "connection_rate", decision.retry_after)
        lease = self.connections.acquire(key)
        if lease is None:  # pragma: no cover - checked above, on the same thread
            return Admission(False, "too_many_connections")
        return Admission(True, lease=lease)

    def allow_message(self, ip: str, protocol: str, count: int = 1) -> Decision:
        """
        Admit C{count} messages (one per accepted DATA) from C{ip}, or refuse
        them all (logged and counted) with the seconds to wait.

        @raise ValueError: C{count} exceeds a burst: it could never pass.
        """
        if self.message_rate is None or self.keyer.is_exempt(ip):
            return Decision(True, 0.0, _UNLIMITED)
        source = self.keyer.key(ip)
        decision = self.message_rate.try_acquire(f"{protocol}|{source}", count)
        if not decision.allowed:
            self.events.emit(
                SecurityEvent.MESSAGE_RATE_LIMITED,
                ip=ip,
                protocol=protocol,
                source=source,
                retry_after=round(decision.retry_after, 3),
            )
        return decision

    def expire(self) -> None:
        """Forget idle state in every tracker."""
        for limiter in (self.connection_rate, self.message_rate):
            if limiter is not None:
                limiter.expire()
        self.auth.expire()
