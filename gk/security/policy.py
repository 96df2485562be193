"""
L{SecurityPolicy}: every anti-abuse threshold in one frozen value, with
the defaults gk ships, ready to be read from a C{[security]} config
section (L{SecurityPolicy.from_config}).

Durations are seconds.  For the limits documented "0 disables", 0 turns
that limit off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gk.security.addresses import AddressKeyer


@dataclass(frozen=True)
class SecurityPolicy:
    #: Networks never limited nor blocked (e.g. ``("127.0.0.0/8", "::1")``).
    #: Per-account authentication delays still apply to them.
    exempt_networks: tuple[str, ...] = ()
    #: IPv6 clients are counted per prefix of this length (they own a /64).
    ipv6_prefix: int = 64
    #: Most keys (sources, accounts) each tracker remembers; the least
    #: recently seen are forgotten first beyond it.
    max_tracked: int = 100_000

    #: Open connections per IP and protocol (0 disables).
    connections_per_ip: int = 50
    #: New connections per IP and protocol per minute (0 disables).
    connections_per_ip_per_minute: int = 120
    #: Messages accepted per IP and protocol per minute / per hour (0 disables).
    messages_per_ip_per_minute: int = 30
    messages_per_ip_per_hour: int = 300

    #: Failures are counted over this sliding window.
    auth_window: float = 900.0
    #: After this many failures in the window (per IP, and per account)
    #: every further attempt waits first: ``auth_delay_initial`` seconds,
    #: doubling with each further failure, at most ``auth_delay_max``.
    auth_delay_after: int = 5
    auth_delay_initial: float = 1.0
    auth_delay_max: float = 30.0
    #: After this many failures in the window an IP is blocked (0 disables).
    auth_block_after: int = 20
    #: The first block lasts ``block_duration``; a repeat offence within
    #: ``block_memory`` after the previous block doubles it, at most
    #: ``block_duration_max``.
    block_duration: float = 900.0
    block_duration_max: float = 86400.0
    block_memory: float = 86400.0
    #: After a successful login from an IP, that IP is trusted for the
    #: account for this long: per-account delays (caused by attacks from
    #: elsewhere) do not apply to it (0 disables).
    trusted_login_duration: float = 30 * 86400.0

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (1 <= self.ipv6_prefix <= 128, "ipv6_prefix must be between 1 and 128"),
            (self.max_tracked >= 100, "max_tracked must be at least 100"),
            (self.connections_per_ip >= 0, "connections_per_ip must not be negative"),
            (
                self.connections_per_ip_per_minute >= 0,
                "connections_per_ip_per_minute must not be negative",
            ),
            (
                self.messages_per_ip_per_minute >= 0,
                "messages_per_ip_per_minute must not be negative",
            ),
            (self.messages_per_ip_per_hour >= 0, "messages_per_ip_per_hour must not be negative"),
            (self.auth_window > 0, "auth_window must be positive"),
            (self.auth_delay_after >= 1, "auth_delay_after must be at least 1"),
            (self.auth_delay_initial >= 0, "auth_delay_initial must not be negative"),
            (
                self.auth_delay_max >= self.auth_delay_initial,
                "auth_delay_max must be at least auth_delay_initial",
            ),
            (self.auth_block_after >= 0, "auth_block_after must not be negative"),
            (self.block_duration > 0, "block_duration must be positive"),
            (
                self.block_duration_max >= self.block_duration,
                "block_duration_max must be at least block_duration",
            ),
            (self.block_memory >= 0, "block_memory must not be negative"),
            (self.trusted_login_duration >= 0, "trusted_login_duration must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.keyer()  # validates exempt_networks

    def keyer(self) -> AddressKeyer:
        """The L{AddressKeyer} this policy describes."""
        return AddressKeyer(ipv6_prefix=self.ipv6_prefix, exempt=self.exempt_networks)

    @classmethod
    def from_config(cls, section: Any) -> SecurityPolicy:
        """
        A policy from any object with attributes named like the fields
        (the C{[security]} config section); missing ones keep their
        defaults, lists become tuples.

        @raise ValueError: a value is out of range; the message names it.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if hasattr(section, f.name):
                value = getattr(section, f.name)
                values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)
