"""
The web UI's request handling: routing of its pages, who the browser is
(the session cookie, L{gk.web.sessions}), the CSRF check on every
state-changing request, the security headers every page carries, and
rendering with jinja2 (autoescaped).

A view module provides L{Page} routes whose handlers take a L{PageCall}
and return a L{Reply}; L{WebUIResource} does the rest.  Handlers raise
L{PageError} for an answer other than success: it is rendered as an
error page (or as a short fragment for an htmx request).

Content-Security-Policy: scripts only from gk's own C{/static/} (no
inline script, no eval: htmx runs with C{allowEval} off and Alpine.js is
its CSP build), so nothing that reaches a page from a mail, a chat or a
model's answer can run even if it slipped past escaping.
"""

from __future__ import annotations

import email.parser
import email.policy
import hmac
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gk.storage.accounts import Account
from gk.web.api import match_segments
from gk.web.sessions import COOKIE, SECURE_COOKIE, WebSession, WebSessions, cookie_value
from gk.web.templating import Templates

#: The policy of every page; C{{connect}} is the WebSocket origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' {connect}; frame-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)
#: The double-submit cookie of the sign-in form (there is no session yet).
LOGIN_CSRF_COOKIE = "gk_login_csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The largest form body read (attachments included; the site caps bodies too).
MAX_FORM = 11 * 1024 * 1024


class PageError(Exception):
    """An answer other than success, shown to the user as C{message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FormProblem(ValueError):
    """A form field the user must correct; C{field} is its input's name."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Upload:
    """A file sent with a form."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    """A request's form fields (urlencoded or multipart) and uploaded files."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1] if values else default

    def getall(self, name: str) -> list[str]:
        return list(self.fields.get(name, ()))

    def checked(self, name: str) -> bool:
        return self.get(name) in ("on", "1", "true", "yes")


@dataclass
class Reply:
    """What a handler answers: status, body, headers and cookies."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    #: A policy replacing L{PAGE_CSP} (the sandboxed mail frame's).
    csp: str | None = None
    #: Whether another page of gk may frame this one.
    frameable: bool = False


def redirect(location: str, status: int = 303) -> Reply:
    return Reply(status, headers={"Location": location})


@dataclass
class PageCall:
    """One request as a page handler sees it."""

    request: Request
    session: WebSession | None
    params: dict[str, Any]
    query: dict[str, str]
    form: Form
    ui: WebUI

    @property
    def account(self) -> Account:
        if self.session is None:  # routes that are not public always have one
            raise PageError(401, "sign in first")
        return self.session.account

    @property
    def htmx(self) -> bool:
        return self.request.getHeader(b"hx-request") == b"true"

    @property
    def client_ip(self) -> str:
        return str(getattr(self.request.getClientAddress(), "host", ""))

    def header(self, name: str) -> str:
        value = self.request.getHeader(name.encode("ascii"))
        return value.decode("latin-1") if value else ""

    def render(self, template: str, status: int = 200, **context: Any) -> Reply:
        return self.ui.render(self, template, status, **context)

    def query_int(self, name: str, default: int, minimum: int = 0, maximum: int = 10**9) -> int:
        value = self.query.get(name, "")
        if not value.isdigit():
            return default
        return max(minimum, min(maximum, int(value)))


Handler = Callable[[PageCall], Awaitable[Reply]]


@dataclass(frozen=True)
class Page:
    """A method and path pattern (segments of the whole path) and its handler."""

    method: str
    pattern: tuple[str, ...]
    handler: Handler
    #: Served without a session (the sign-in page).
    public: bool = False
    #: Whether the signed-in user may know the page exists at all; if not,
    #: every request to it answers 404, before any other check.
    visible: Callable[[WebSession], bool] | None = None


def page(
    method: str,
    path: str,
    handler: Handler,
    public: bool = False,
    visible: Callable[[WebSession], bool] | None = None,
) -> Page:
    return Page(method, tuple(path.strip("/").split("/")), handler, public, visible)


class WebUI:
    """
    What every page shares: the templates, the sessions and the public
    URL (for the CSP's WebSocket origin and the cookie's Secure flag).
    """

    def __init__(self, templates: Templates, sessions: WebSessions, public_url: str) -> None:
        self.templates = templates
        self.sessions = sessions
        self.public_url = public_url
        parsed = urllib.parse.urlsplit(public_url)
        self.public_origin = f"{parsed.scheme}://{parsed.netloc}".lower()
        self.https = parsed.scheme == "https"
        ws_scheme = "wss" if self.https else "ws"
        self.csp = PAGE_CSP.format(connect=f"{ws_scheme}://{parsed.netloc}")

    def secure(self, request: Request) -> bool:
        return self.https or bool(request.isSecure())

    def render(self, call: PageCall, template: str, status: int = 200, **context: Any) -> Reply:
        session = call.session
        body = self.templates.render(
            template,
            account=None if session is None else session.account,
            csrf_token="" if session is None else session.csrf_token,
            htmx=call.htmx,
            **context,
        )
        return Reply(status, body.encode("utf-8"))

    def session_cookie(self, request: Request, value: str, max_age: int) -> str:
        secure = self.secure(request)
        name = SECURE_COOKIE if secure else COOKIE
        flags = "; Secure" if secure else ""
        return f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{flags}"

    def login_csrf_cookie(self, request: Request, value: str) -> str:
        flags = "; Secure" if self.secure(request) else ""
        return f"{LOGIN_CSRF_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Strict{flags}"


def request_cookie(request: Request, name: str) -> str | None:
    header = request.getHeader(b"cookie")
    if not header:
        return None
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(expected: str | None, given: str) -> bool:
    return (
        bool(expected)
        and bool(given)
        and hmac.compare_digest(
            (expected or "").encode("utf-8", "replace"), given.encode("utf-8", "replace")
        )
    )


class WebUIResource(Resource):
    """The pages of the web UI, under the site's root."""

    isLeaf = True
    log = Logger()

    def __init__(self, ui: WebUI, pages: Iterable[Page]) -> None:
        super().__init__()
        self.ui = ui
        self.pages = list(pages)

    def render(self, request: Request) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _f: gone.append(True))
        d = Deferred.fromCoroutine(self._answer(request))
        d.addErrback(self._failed, request)
        d.addCallback(lambda reply: None if gone else self._write(request, reply))
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: Request) -> Reply:
        self.log.failure("page {method} {path} failed", failure, method=request.method,
                         path=request.path)  # fmt: skip
        return Reply(500, b"Something went wrong on the server.\n", "text/plain; charset=utf-8")

    async def _answer(self, request: Request) -> Reply:
        session: WebSession | None = None
        try:
            session = await self.ui.sessions.find(cookie_value(_header(request, b"cookie")))
            return await self._dispatch(request, session)
        except PageError as e:
            return self._error(request, session, e.status, e.message)

    async def _dispatch(self, request: Request, session: WebSession | None) -> Reply:
        path = request.path.decode("ascii", "replace")
        # Split first, then decode: an escaped "/" stays inside its segment.
        segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
        method = request.method.decode("ascii", "replace").upper()
        if method == "HEAD":
            method = "GET"
        matches = [
            (p, m) for p in self.pages if (m := match_segments(p.pattern, segments)) is not None
        ]
        if not matches:
            raise PageError(404, "There is no such page.")
        if session is None and not any(p.public for p, _ in matches):
            return self._sign_in_first(request)
        if session is not None and any(p.visible and not p.visible(session) for p, _ in matches):
            raise PageError(404, "There is no such page.")
        chosen = next(((p, m) for p, m in matches if p.method == method), None)
        if chosen is None:
            raise PageError(405, "This page does not take that kind of request.")
        route, params = chosen
        if not route.public and session is None:
            return self._sign_in_first(request)
        form = Form()
        if method in UNSAFE_METHODS:
            self._check_origin(request)
            form = _read_form(request)
            if not route.public:
                assert session is not None
                token = form.get("csrf") or _header(request, b"x-csrf-token") or ""
                if not session.csrf_ok(token):
                    raise PageError(403, "This form has expired; reload the page and try again.")
        call = PageCall(request, session, params, _query(request), form, self.ui)
        return await route.handler(call)

    def _check_origin(self, request: Request) -> None:
        """Refuse a cross-site state-changing request before reading anything."""
        if _header(request, b"sec-fetch-site") == "cross-site":
            raise PageError(403, "Cross-site requests are refused.")
        origin = _header(request, b"origin")
        if origin is None:
            return  # an old browser or a script: the CSRF token decides
        host = _header(request, b"host") or ""
        scheme = "https" if request.isSecure() else "http"
        allowed = {self.ui.public_origin, f"{scheme}://{host}".lower()}
        if (origin or "").lower() not in allowed:
            raise PageError(403, "Cross-site requests are refused.")

    def _sign_in_first(self, request: Request) -> Reply:
        target = request.uri.decode("ascii", "replace")
        location = (
            "/login?" + urllib.parse.urlencode({"next": target}) if target != "/" else "/login"
        )
        if request.getHeader(b"hx-request") == b"true":
            return Reply(401, b"", headers={"HX-Redirect": location})
        if request.method not in (b"GET", b"HEAD"):
            raise PageError(401, "Your session has ended; sign in again.")
        return redirect(location)

    def _error(
        self, request: Request, session: WebSession | None, status: int, message: str
    ) -> Reply:
        call = PageCall(request, session, {}, {}, Form(), self.ui)
        template = "error_fragment.html" if call.htmx else "error.html"
        return self.ui.render(call, template, status, code=status, message=message)

    def _write(self, request: Request, reply: Reply) -> None:
        status = reply.status
        headers = dict(reply.headers)
        if status in (302, 303) and request.getHeader(b"hx-request") == b"true":
            # htmx would follow the redirect inside the XHR; make it navigate.
            headers["HX-Redirect"] = headers.pop("Location")
            status = 200
        request.setResponseCode(status)
        request.setHeader(b"content-type", reply.content_type.encode("ascii"))
        security = {
            "Content-Security-Policy": reply.csp or self.ui.csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "SAMEORIGIN" if reply.frameable else "DENY",
            "Cache-Control": "no-store",
        }
        for name, value in {**security, **headers}.items():
            request.setHeader(name.encode("ascii"), value.encode("utf-8"))
        for cookie in reply.cookies:
            request.responseHeaders.addRawHeader(b"set-cookie", cookie.encode("ascii"))
        request.setHeader(b"content-length", str(len(reply.body)).encode("ascii"))
        if request.method != b"HEAD":
            request.write(reply.body)
        request.finish()


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def _query(request: Request) -> dict[str, str]:
    parsed = urllib.parse.urlsplit(request.uri.decode("ascii", "replace"))
    return {k: v for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)}


def _read_form(request: Request) -> Form:
    if getattr(request, "body_too_large", False):
        raise PageError(413, "That is too large to send.")
    raw = request.content.read(MAX_FORM + 1) if request.content is not None else b""
    if len(raw) > MAX_FORM:
        raise PageError(413, "That is too large to send.")
    content_type = _header(request, b"content-type") or ""
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        return _multipart(content_type, raw)
    if media in ("application/x-www-form-urlencoded", ""):
        fields: dict[str, list[str]] = {}
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                           max_num_fields=2000)  # fmt: skip
        except (UnicodeDecodeError, ValueError):
            raise PageError(400, "The form could not be read.") from None
        for key, value in pairs:
            fields.setdefault(key, []).append(value)
        return Form(fields)
    raise PageError(415, "The form could not be read.")


def _multipart(content_type: str, raw: bytes) -> Form:
    """A multipart/form-data body, parsed with the standard MIME parser."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise PageError(400, "The form could not be read.")
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            if data or filename:
                form.files.append(Upload(name, filename, part.get_content_type(), data))
            continue
        charset = part.get_content_charset() or "utf-8"
        form.fields.setdefault(name, []).append(data.decode(charset, "replace"))
    return form
