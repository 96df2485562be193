"""
Anti-abuse, shared by SMTP, IMAP and the web sign-in: per-IP connection
and message rate limits, brute-force protection on authentication with
growing delays (per source and per account) and temporary blocks (per
source), each decision logged as a structured security event and counted
in C{/metrics}.

  - L{gk.security.addresses}: client addresses as keys (IPv6 per /64),
    exempt networks;
  - L{gk.security.ratelimit}: keyed GCRA rate limits on an injected clock;
  - L{gk.security.connections}: concurrent connections per key;
  - L{gk.security.authguard}: brute-force delays and blocks;
  - L{gk.security.events}: structured log lines and Prometheus counters;
  - L{gk.security.policy}: every threshold, with defaults;
  - L{gk.security.service}: L{Security}, all of it for the listeners.

Greylisting is not implemented.
"""

from gk.security.addresses import AddressKeyer, peer_ip
from gk.security.authguard import AuthGuard, AuthResult
from gk.security.connections import ConnectionLease, ConnectionLimiter
from gk.security.events import AuthOutcome, SecurityEvent, SecurityEvents
from gk.security.policy import SecurityPolicy
from gk.security.ratelimit import Decision, Rate, RateLimiter
from gk.security.service import Admission, Security

__all__ = [
    "AddressKeyer",
    "Admission",
    "AuthGuard",
    "AuthOutcome",
    "AuthResult",
    "ConnectionLease",
    "ConnectionLimiter",
    "Decision",
    "Rate",
    "RateLimiter",
    "Security",
    "SecurityEvent",
    "SecurityEvents",
    "SecurityPolicy",
    "peer_ip",
]
