"""
The URL space of gk's CalDAV/CardDAV server and the sanitising of request
paths into typed targets.

Layout (every collection's href ends with a slash)::

    /dav/                                     root
    /dav/principals/                          principal collection
    /dav/principals/<email>/                  a user's principal
    /dav/calendars/  /dav/addressbooks/       the home sets (list your home)
    /dav/calendars/<email>/                   calendar home
    /dav/calendars/<email>/inbox/             schedule inbox (RFC 6638)
    /dav/calendars/<email>/inbox/<resource>   a scheduling message
    /dav/calendars/<email>/outbox/            schedule outbox (no members)
    /dav/calendars/<email>/<name>/            a calendar
    /dav/calendars/<email>/<name>/<resource>  a calendar object resource
    /dav/addressbooks/<email>/                address book home
    /dav/addressbooks/<email>/<name>/         an address book
    /dav/addressbooks/<email>/<name>/<card>   a vCard

L{parse_path} takes the path exactly as the client sent it (still
percent-encoded) and refuses, with L{BadPath}, anything that could name
something else once decoded: C{.} and C{..} segments (also as C{%2e}),
empty segments (C{//}), an encoded slash (C{%2F}) or NUL, control
characters, invalid UTF-8, and segments longer than L{MAX_SEGMENT} bytes.
A path that is well-formed but names nothing in the layout raises
L{NotInLayout}.  A home's member named without its trailing slash is taken
as the collection (homes hold only collections).

Paths handed out here are I{decoded}; L{gk.dav.multistatus.encode_href}
encodes them for hrefs.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias
from urllib.parse import quote, unquote_to_bytes, urlsplit

#: The DAV root, with its trailing slash.
ROOT = "/dav/"

#: Longest path segment, in bytes once decoded (the store's name limit).
MAX_SEGMENT = 255

#: Longest request path accepted at all, in bytes as sent.
MAX_PATH = 4096

#: Names in the calendar home that are not calendars.
INBOX = "inbox"
OUTBOX = "outbox"
RESERVED_CALENDAR_NAMES = frozenset({INBOX, OUTBOX})

CollectionKind: TypeAlias = Literal["calendar", "addressbook"]

_HOMES: dict[str, CollectionKind] = {"calendars": "calendar", "addressbooks": "addressbook"}
_HOME_SEGMENT: dict[CollectionKind, str] = {"calendar": "calendars", "addressbook": "addressbooks"}


class BadPath(ValueError):
    """A path that is refused outright (answer 400): see the module docstring."""


class NotInLayout(LookupError):
    """A well-formed path that names nothing gk serves (answer 404)."""


# -- targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """C{/dav/}."""

    owner: None = None

    @property
    def path(self) -> str:
        return ROOT


@dataclass(frozen=True)
class PrincipalCollection:
    """C{/dav/principals/}."""

    owner: None = None

    @property
    def path(self) -> str:
        return principals_path()


@dataclass(frozen=True)
class HomeSet:
    """C{/dav/calendars/} or C{/dav/addressbooks/}."""

    kind: CollectionKind
    owner: None = None

    @property
    def path(self) -> str:
        return f"{ROOT}{_HOME_SEGMENT[self.kind]}/"


@dataclass(frozen=True)
class Principal:
    """C{/dav/principals/<email>/}."""

    owner: str

    @property
    def path(self) -> str:
        return principal_path(self.owner)


@dataclass(frozen=True)
class Home:
    """A user's calendar or address book home."""

    kind: CollectionKind
    owner: str

    @property
    def path(self) -> str:
        return home_path(self.kind, self.owner)


@dataclass(frozen=True)
class Collection:
    """A calendar or address book (which may not exist yet: MKCOL)."""

    kind: CollectionKind
    owner: str
    name: str

    @property
    def path(self) -> str:
        return collection_path(self.kind, self.owner, self.name)


@dataclass(frozen=True)
class Inbox:
    """The schedule inbox."""

    owner: str

    @property
    def path(self) -> str:
        return collection_path("calendar", self.owner, INBOX)


@dataclass(frozen=True)
class Outbox:
    """The schedule outbox (virtual: no members)."""

    owner: str

    @property
    def path(self) -> str:
        return collection_path("calendar", self.owner, OUTBOX)


@dataclass(frozen=True)
class Resource:
    """
    A member of a collection: a calendar object, a vCard, or (C{inbox})
    a scheduling message in the inbox.
    """

    kind: CollectionKind
    owner: str
    collection: str
    name: str
    inbox: bool = False

    @property
    def path(self) -> str:
        return collection_path(self.kind, self.owner, self.collection) + self.name

    @property
    def parent(self) -> Collection | Inbox:
        if self.inbox:
            return Inbox(self.owner)
        return Collection(self.kind, self.owner, self.collection)


Target: TypeAlias = (
    Root | PrincipalCollection | HomeSet | Principal | Home | Collection | Inbox | Outbox | Resource
)


# -- hrefs -------------------------------------------------------------------------


def principals_path() -> str:
    return f"{ROOT}principals/"


def principal_path(email: str) -> str:
    return f"{ROOT}principals/{email}/"


def home_path(kind: CollectionKind, email: str) -> str:
    return f"{ROOT}{_HOME_SEGMENT[kind]}/{email}/"


def collection_path(kind: CollectionKind, email: str, name: str) -> str:
    return f"{home_path(kind, email)}{name}/"


def inbox_path(email: str) -> str:
    return collection_path("calendar", email, INBOX)


def outbox_path(email: str) -> str:
    return collection_path("calendar", email, OUTBOX)


# -- parsing ---------------------------------------------------------------------


def _segment(raw: bytes) -> str:
    """
    One percent-encoded segment, decoded.

    @raise BadPath: see the module docstring.
    """
    decoded = unquote_to_bytes(raw)
    if len(decoded) > MAX_SEGMENT:
        raise BadPath("path segment too long")
    if b"/" in decoded or b"\\" in decoded:
        raise BadPath("encoded slash in a path segment")
    if any(byte < 0x20 or byte == 0x7F for byte in decoded):
        raise BadPath("control character in the path")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("path not UTF-8") from None
    if text in (".", ".."):
        raise BadPath("dot segment in the path")
    return text


def split_path(raw: bytes) -> tuple[list[str], bool]:
    """
    The decoded segments of an absolute request path and whether it ends
    with a slash.

    @raise BadPath: not absolute, too long, or a refused segment.
    """
    if len(raw) > MAX_PATH:
        raise BadPath("path too long")
    if not raw.startswith(b"/"):
        raise BadPath("not an absolute path")
    parts = raw[1:].split(b"/")
    trailing = len(parts) > 1 and parts[-1] == b""
    if trailing:
        parts.pop()
    if parts == [b""]:
        return [], True
    segments = []
    for part in parts:
        if not part:
            raise BadPath("empty path segment")
        segments.append(_segment(part))
    return segments, trailing


def _is_email(segment: str) -> bool:
    local, at, domain = segment.rpartition("@")
    return bool(at and local and domain)


def parse_path(raw: bytes) -> Target:
    """
    The target of a request path as sent (percent-encoded, no query).

    @raise BadPath: refused (see the module docstring).
    @raise NotInLayout: well-formed, but outside the layout.
    """
    segments, trailing = split_path(raw)
    if not segments or segments[0] != "dav":
        raise NotInLayout("not under /dav/")
    rest = segments[1:]
    if not rest:
        return Root()
    top, rest = rest[0], rest[1:]
    if top == "principals":
        if not rest:
            return PrincipalCollection()
        if len(rest) == 1 and _is_email(rest[0]):
            return Principal(rest[0].lower())
        raise NotInLayout("no such principal path")
    kind = _HOMES.get(top)
    if kind is None:
        raise NotInLayout(f"no {top!r} under /dav/")
    if not rest:
        return HomeSet(kind)
    if not _is_email(rest[0]):
        raise NotInLayout("not a user's home")
    owner = rest[0].lower()
    if len(rest) == 1:
        return Home(kind, owner)
    name = rest[1]
    if len(rest) == 2:
        if kind == "calendar" and name == INBOX:
            return Inbox(owner)
        if kind == "calendar" and name == OUTBOX:
            return Outbox(owner)
        return Collection(kind, owner, name)
    if len(rest) == 3 and not trailing:
        if kind == "calendar" and name == OUTBOX:
            raise NotInLayout("the outbox has no members")
        return Resource(kind, owner, name, rest[2], inbox=kind == "calendar" and name == INBOX)
    raise NotInLayout("too deep")


def parse_destination(header: str) -> Target:
    """
    The target of a MOVE/COPY C{Destination} header: an absolute URL
    (its host is not checked: the request's credentials decide) or an
    absolute path, percent-encoded.

    @raise BadPath: unreadable, not http(s), or a refused path.
    @raise NotInLayout: outside the layout.
    """
    try:
        parts = urlsplit(header.strip())
    except ValueError:
        raise BadPath("unreadable Destination") from None
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise BadPath("Destination is not http(s)")
    try:
        raw = parts.path.encode("ascii")
    except UnicodeEncodeError:
        # Some clients send UTF-8 unencoded; take its bytes as they are.
        raw = parts.path.encode("utf-8")
    return parse_path(raw)


def parse_decoded(path: str) -> Target:
    """
    The target of a decoded path such as those this module hands out
    (an href to expand, a decoded C{DAV:href} from a request body).

    @raise BadPath: a refused path.
    @raise NotInLayout: outside the layout.
    """
    segments = path.split("/")
    if any(s in (".", "..") for s in segments) or "\x00" in path:
        raise BadPath("dot segment or NUL in the path")
    encoded = "/".join(_quote_segment(s) for s in segments)
    return parse_path(encoded.encode("ascii"))


def _quote_segment(segment: str) -> str:
    return quote(segment, safe="@!$&'()*+,;=:~")
