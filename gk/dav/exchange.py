"""
One DAV request and its answer as the method handlers see them
(L{DavRequest}, L{Answer}), the error they raise to answer early
(L{DavError}), and the mapping of storage and service exceptions to HTTP
answers (L{error_for}).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal
from xml.etree.ElementTree import Element

from gk.collections_service import InvalidObject, QuotaExceeded
from gk.dav import paths
from gk.dav.multistatus import error_body, href
from gk.dav.xmlbody import DAV, BadRequestBody, BodyTooLarge
from gk.storage import dav_store
from gk.storage.accounts import Account

XML = "application/xml; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

Depth = Literal["0", "1", "infinity"]


@dataclass
class Answer:
    """
    An HTTP answer.  C{stream}, when set, yields the body in pieces
    (sent chunked) and C{body} is ignored.
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None


def xml_answer(status: int, body: bytes, **headers: str) -> Answer:
    return Answer(status, body, XML, dict(headers))


def text_answer(status: int, text: str) -> Answer:
    return Answer(status, text.encode("utf-8") + b"\n", TEXT)


class DavError(Exception):
    """
    Answer C{status} now, with a C{DAV:error} body naming C{condition}
    (a Clark name) when given, or with C{body} as is.
    """

    def __init__(
        self,
        status: int,
        condition: str | None = None,
        *,
        message: str = "",
        children: Iterable[Element] = (),
        body: bytes | None = None,
        content_type: str = XML,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or condition or str(status))
        self.status = status
        self.condition = condition
        self.children = tuple(children)
        self.message = message
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}

    def answer(self) -> Answer:
        if self.body is not None:
            return Answer(self.status, self.body, self.content_type, dict(self.headers))
        if self.condition is not None:
            body = error_body(self.condition, children=self.children)
            return Answer(self.status, body, XML, dict(self.headers))
        return Answer(self.status, (self.message or "").encode("utf-8"), TEXT, dict(self.headers))


@dataclass
class DavRequest:
    """
    A signed-in request, its target checked to be the user's.

    @ivar raw_path: the path as sent (percent-encoded), the base for
        relative hrefs in the body.
    """

    method: str
    target: paths.Target
    account: Account
    raw_path: bytes
    headers: dict[str, str]
    body: bytes
    #: Whether the body went over the site's limit (and was cut).
    body_too_large: bool = False

    def header(self, name: str) -> str | None:
        """A request header's value (the last one if repeated), by lower-case name."""
        return self.headers.get(name)

    def depth(self, default: Depth) -> Depth:
        """
        The Depth header (RFC 4918 10.2).

        @raise DavError: 400 for a value other than 0, 1 or infinity.
        """
        value = (self.header("depth") or "").strip().lower()
        if not value:
            return default
        if value in ("0", "1", "infinity"):
            return value  # type: ignore[return-value]
        raise DavError(400, message="bad Depth header")

    def xml_body(self, limit: int) -> bytes:
        """
        The body of an XML method.

        @raise DavError: 413 when it is over C{limit} bytes.
        """
        if self.body_too_large or len(self.body) > limit:
            raise DavError(413, message="request body too large")
        return self.body

    @property
    def user(self) -> str:
        return self.account.email


def bad_body(error: BadRequestBody) -> DavError:
    """The answer to a body L{gk.dav.xmlbody} refused."""
    if isinstance(error, BodyTooLarge):
        return DavError(413, message="request body too large")
    return DavError(400, message=f"bad request body: {error}")


def error_for(error: Exception, target: paths.Target | None = None) -> DavError | None:
    """
    The answer to a storage or service exception (L{None}: not one of
    theirs, a bug).  C{target} gives the collection for the href of a
    no-uid-conflict.
    """
    if isinstance(error, DavError):
        return error
    if isinstance(error, dav_store.NoSuchCollection | dav_store.NoSuchObject):
        return DavError(404, message="not found")
    if isinstance(error, dav_store.CollectionExists):
        return DavError(405, f"{{{DAV}}}resource-must-be-null")
    if isinstance(error, dav_store.PreconditionFailed):
        return DavError(412, message="precondition failed")
    if isinstance(error, dav_store.UidConflict):
        return uid_conflict(error, target)
    if isinstance(error, dav_store.InvalidSyncToken):
        return DavError(403, f"{{{DAV}}}valid-sync-token")
    if isinstance(error, QuotaExceeded):
        return DavError(507, f"{{{DAV}}}quota-not-exceeded")
    if isinstance(error, InvalidObject):
        status = 413 if error.precondition.endswith("}max-resource-size") else 403
        return DavError(status, error.precondition, message=str(error))
    if isinstance(error, dav_store.InvalidValue):
        return DavError(403, message=str(error))
    return None


def uid_conflict(error: dav_store.UidConflict, target: paths.Target | None) -> DavError:
    """
    403 with C{no-uid-conflict} (RFC 4791 5.3.2.1, RFC 6352 6.3.2.1)
    holding the href of the resource that has the UID.
    """
    kind = "calendar"
    children: list[Element] = []
    if isinstance(target, paths.Resource):
        kind = target.kind
        children.append(href(target.parent.path + error.existing_name))
    namespace = (
        "urn:ietf:params:xml:ns:carddav"
        if kind == "addressbook"
        else "urn:ietf:params:xml:ns:caldav"
    )
    return DavError(403, f"{{{namespace}}}no-uid-conflict", children=children)
