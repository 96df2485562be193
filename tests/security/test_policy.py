"""The policy: defaults, validation, reading a config section."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gk.security.policy import SecurityPolicy


def test_defaults() -> None:
    policy = SecurityPolicy()
    assert policy.auth_delay_after == 5
    assert policy.auth_window == 900.0
    assert (policy.auth_delay_initial, policy.auth_delay_max) == (1.0, 30.0)
    assert policy.auth_block_after == 20
    assert policy.block_duration == 900.0
    assert policy.ipv6_prefix == 64
    assert policy.exempt_networks == ()


def test_from_config_section() -> None:
    section = SimpleNamespace(
        exempt_networks=["127.0.0.0/8", "::1"], auth_block_after=10, unrelated="ignored"
    )
    policy = SecurityPolicy.from_config(section)
    assert policy.exempt_networks == ("127.0.0.0/8", "::1")
    assert policy.auth_block_after == 10
    assert policy.auth_delay_after == 5
    assert policy.keyer().is_exempt("::1")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"exempt_networks": ("nope",)}, "not an IP network"),
        ({"ipv6_prefix": 0}, "ipv6_prefix"),
        ({"connections_per_ip": -1}, "connections_per_ip"),
        ({"auth_window": 0.0}, "auth_window"),
        ({"auth_delay_after": 0}, "auth_delay_after"),
        ({"auth_delay_max": 0.5}, "auth_delay_max"),
        ({"block_duration": 0.0}, "block_duration"),
        ({"block_duration_max": 60.0}, "block_duration_max"),
        ({"max_tracked": 10}, "max_tracked"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SecurityPolicy(**settings)  # type: ignore[arg-type]
