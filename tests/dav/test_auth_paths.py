"""
The pure parts of the DAV front door: Basic credentials, the verified
credential cache (TTL, size bound, keyed by an HMAC), and the request
path parser's layout and refusals.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from twisted.internet.task import Clock

from gk.accounts import CheckedPassword
from gk.dav import paths
from gk.dav.auth import CredentialCache, Credentials, parse_basic
from gk.storage.accounts import Account

ALICE = Account(1, "alice@example.test", False, None, datetime(2025, 1, 1, tzinfo=UTC))


def header(text: str) -> bytes:
    return b"Basic " + base64.b64encode(text.encode())


def test_basic_credentials_are_decoded_as_utf8() -> None:
    """The user name ends at the first colon; passwords may hold colons and UTF-8."""
    assert parse_basic(header("alice@example.test:pa:ss wörd")) == Credentials(
        "alice@example.test", "pa:ss wörd"
    )
    for bad in (None, b"", b"Bearer abc", b"Basic !!!", header("no colon"), header(":pw")):
        assert parse_basic(bad) is None
    assert parse_basic(b"Basic " + base64.b64encode(b"a:\xff")) is None


def test_credential_cache_expires_and_stays_bounded() -> None:
    """Entries live for the TTL, the least recently used go first, a wrong password misses."""
    clock = Clock()
    cache = CredentialCache(clock, ttl=300, max_entries=2)
    right = Credentials("alice@example.test", "secret")
    checked = CheckedPassword(ALICE, password_hash="$argon2id$...")
    cache.put(right, checked)
    assert cache.get(right) == checked
    assert cache.get(Credentials("alice@example.test", "Secret")) is None
    clock.advance(301)
    assert cache.get(right) is None and len(cache) == 0
    for n in range(3):
        cache.put(Credentials(f"u{n}@example.test", "pw"), checked)
    assert len(cache) == 2
    assert cache.get(Credentials("u0@example.test", "pw")) is None
    assert cache.get(Credentials("u2@example.test", "pw")) == checked
    cache.forget(Credentials("u2@example.test", "pw"))
    assert cache.get(Credentials("u2@example.test", "pw")) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/dav", paths.Root()),
        (b"/dav/", paths.Root()),
        (b"/dav/principals/", paths.PrincipalCollection()),
        (b"/dav/principals/Alice@Example.test/", paths.Principal("alice@example.test")),
        (b"/dav/calendars/", paths.HomeSet("calendar")),
        (b"/dav/addressbooks/a%40b.c/", paths.Home("addressbook", "a@b.c")),
        (b"/dav/calendars/a@b.c/inbox/", paths.Inbox("a@b.c")),
        (b"/dav/calendars/a@b.c/outbox", paths.Outbox("a@b.c")),
        (b"/dav/calendars/a@b.c/work", paths.Collection("calendar", "a@b.c", "work")),
        (
            b"/dav/calendars/a@b.c/work/ev%20ent.ics",
            paths.Resource("calendar", "a@b.c", "work", "ev ent.ics"),
        ),
        (
            b"/dav/calendars/a@b.c/inbox/m.ics",
            paths.Resource("calendar", "a@b.c", "inbox", "m.ics", inbox=True),
        ),
    ],
)
def test_paths_map_to_targets(raw: bytes, expected: paths.Target) -> None:
    """Each place of the layout, decoded; collections found with or without the slash."""
    assert paths.parse_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"/dav/calendars/a@b.c/../x@y.z/",
        b"/dav/calendars/a@b.c/%2e%2E/",
        b"/dav/calendars/a@b.c/work/a%2Fb.ics",
        b"/dav/calendars/a@b.c/work/a%5Cb.ics",
        b"/dav/calendars//a@b.c/",
        b"/dav/calendars/a@b.c/work/%00.ics",
        b"/dav/calendars/a@b.c/work/%0d%0a.ics",
        b"/dav/calendars/a@b.c/work/%ff.ics",
        b"/dav/calendars/a@b.c/work/" + b"x" * 256,
        b"dav/calendars/",
    ],
)
def test_refused_paths(raw: bytes) -> None:
    """Anything that could name something else once decoded is refused outright."""
    with pytest.raises(paths.BadPath):
        paths.parse_path(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"/",
        b"/other/",
        b"/dav/contacts/",
        b"/dav/calendars/nobody/",
        b"/dav/calendars/a@b.c/outbox/x",
        b"/dav/calendars/a@b.c/work/x.ics/",
        b"/dav/principals/a@b.c/more/",
    ],
)
def test_paths_outside_the_layout(raw: bytes) -> None:
    """Well-formed paths that name nothing: 404, not 400."""
    with pytest.raises(paths.NotInLayout):
        paths.parse_path(raw)


def test_destination_header_forms() -> None:
    """Absolute URLs (any host) and paths; other schemes refused."""
    expected = paths.Resource("calendar", "a@b.c", "work", "x y.ics")
    assert paths.parse_destination("http://elsewhere:8080/dav/calendars/a@b.c/work/x%20y.ics") == (
        expected
    )
    assert paths.parse_destination("/dav/calendars/a@b.c/work/x%20y.ics") == expected
    with pytest.raises(paths.BadPath):
        paths.parse_destination("ftp://host/dav/calendars/a@b.c/work/x.ics")
