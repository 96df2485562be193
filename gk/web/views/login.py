"""
C{/login} and C{/logout}: signing in and out of the web UI.

Password checks go through the brute-force guard every protocol shares
(protocol name C{"web"}): growing delays per source and per account, a
block of the source after repeated failures (answered 429), never a
lock-out of the account itself (L{gk.security.authguard} says why).
The sign-in form is protected against login CSRF by a double-submit
cookie; a successful sign-in always issues a new session and ends the one
the browser brought (session fixation).
"""

from __future__ import annotations

import math

from gk.accounts import AccountService
from gk.security.authguard import AuthGuard
from gk.security.events import AuthOutcome
from gk.web.page import (
    LOGIN_CSRF_COOKIE,
    Page,
    PageCall,
    PageError,
    Reply,
    new_login_token,
    page,
    redirect,
    request_cookie,
    same_token,
)
from gk.web.sessions import MAX_LIFETIME, cookie_value

#: Longest address or password looked at.
MAX_FIELD = 1024


def safe_next(target: str) -> str:
    """A local path to go to after sign-in (never another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x21 for c in target) or target.startswith("/login"):
        return "/"
    return target


class LoginPages:
    def __init__(self, accounts: AccountService, guard: AuthGuard) -> None:
        self.accounts = accounts
        self.guard = guard

    def pages(self) -> list[Page]:
        return [
            page("GET", "/login", self.form, public=True),
            page("POST", "/login", self.sign_in, public=True),
            page("POST", "/logout", self.sign_out),
        ]

    def _form(self, call: PageCall, status: int, error: str = "", email: str = "") -> Reply:
        # Keep the token the browser has: another tab (or a favicon request
        # redirected here) must not invalidate a form already shown.
        token = request_cookie(call.request, LOGIN_CSRF_COOKIE) or ""
        if not (20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
            token = new_login_token()
        reply = call.render(
            "login.html",
            status,
            login_token=token,
            next=safe_next(call.form.get("next") or call.query.get("next", "/")),
            error=error,
            email=email,
        )
        reply.cookies.append(call.ui.login_csrf_cookie(call.request, token))
        return reply

    async def form(self, call: PageCall) -> Reply:
        if call.session is not None:
            return redirect(safe_next(call.query.get("next", "/")))
        return self._form(call, 200)

    async def sign_in(self, call: PageCall) -> Reply:
        expected = request_cookie(call.request, LOGIN_CSRF_COOKIE)
        if not same_token(expected, call.form.get("csrf")):
            return self._form(call, 403, "The sign-in form had expired; please try again.")
        email = call.form.get("email").strip()[:MAX_FIELD]
        password = call.form.get("password")[:MAX_FIELD]
        if not email or not password:
            return self._form(call, 400, "Enter your address and password.", email)
        result = await self.guard.authenticate(
            call.client_ip, email, "web", lambda: self.accounts.authenticate(email, password)
        )
        if result.outcome is AuthOutcome.BLOCKED:
            minutes = max(1, math.ceil(result.retry_after / 60))
            return self._form(
                call, 429, f"Too many failed attempts; try again in {minutes} minute(s).", email
            )
        account = result.account
        if account is None:
            return self._form(call, 401, "Wrong address or password.", email)
        sessions = call.ui.sessions
        # Whatever session id the browser brought (perhaps planted) ends here.
        await sessions.end(cookie_value(call.header("cookie")))
        value, _session = await sessions.create(account, call.header("user-agent"), call.client_ip)
        reply = redirect(safe_next(call.form.get("next", "/")))
        max_age = int(MAX_LIFETIME.total_seconds())
        reply.cookies.append(call.ui.session_cookie(call.request, value, max_age))
        reply.cookies.append(f"{LOGIN_CSRF_COOKIE}=; Path=/login; Max-Age=0")
        return reply

    async def sign_out(self, call: PageCall) -> Reply:
        if call.session is None:
            raise PageError(401, "You are not signed in.")
        await call.ui.sessions.end_by_digest(call.account, call.session.digest)
        reply = redirect("/login")
        reply.cookies.append(call.ui.session_cookie(call.request, "", 0))
        return reply
