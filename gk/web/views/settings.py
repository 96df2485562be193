"""
The web UI's settings: the user's password, their signed-in browsers,
app passwords (for IMAP, SMTP and DAV clients), API tokens (for the MCP
endpoint and scripts, as C{gk token create} makes) and how to set up
mail, calendar and contacts clients.

Routes::

    GET  /settings                              the page (?done=WHAT: what just happened)
    POST /settings/password                     current, new, again
    POST /settings/sessions/{digest}/end        sign one browser out
    POST /settings/app-passwords                name -> the secret, shown once
    POST /settings/app-passwords/{name}/revoke
    POST /settings/tokens                       name -> the token, shown once
    POST /settings/tokens/{name}/revoke
    GET  /settings/apple.mobileconfig           an Apple configuration profile

Checking the current password goes through the brute-force guard every
sign-in shares (protocol C{"web"}), and only the account's own password
counts (not an app password).  A new password ends every other web
session of the user.  Secrets are shown in the answer to the POST that
made them and never again (the store keeps only their digests).  The
user only ever sees and changes their own credentials and sessions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gk.accounts import check_password_strength
from gk.security.events import AuthOutcome
from gk.storage.accounts import Account, AccountError, AlreadyExists, NotFound
from gk.web.client_setup import MOBILECONFIG_TYPE, autoconfig_xml, client_setup, mobileconfig
from gk.web.page import Page, PageCall, PageError, Reply, page, redirect
from gk.web.sessions import WebSession
from gk.web.views.settings_devices import device_name

if TYPE_CHECKING:
    from gk.service import GkService

#: Longest password or name looked at.
MAX_FIELD = 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")

#: What C{?done=} says; nothing the user typed is reflected.
NOTICES = {
    "password": "Your password was changed, and your other sessions were signed out.",
    "session": "That session was signed out.",
    "app-password": "The app password was revoked: clients using it can no longer sign in.",
    "token": "The token was revoked: programs using it can no longer connect.",
}


@dataclass(frozen=True)
class Secret:
    """A secret just made, to show once."""

    kind: str
    name: str
    value: str


@dataclass(frozen=True)
class SessionRow:
    """A web session as the page lists it."""

    session: WebSession
    device: str
    current: bool


class SettingsPages:
    """The settings pages, acting through the service tree's accounts and sessions."""

    def __init__(self, tree: GkService) -> None:
        self.tree = tree
        self.app = tree.app

    def pages(self) -> list[Page]:
        return [
            page("GET", "/settings", self.show),
            page("POST", "/settings/password", self.change_password),
            page("POST", "/settings/sessions/{digest}/end", self.end_session),
            page("POST", "/settings/app-passwords", self.create_app_password),
            page("POST", "/settings/app-passwords/{name}/revoke", self.revoke_app_password),
            page("POST", "/settings/tokens", self.create_token),
            page("POST", "/settings/tokens/{name}/revoke", self.revoke_token),
            page("GET", "/settings/apple.mobileconfig", self.apple_profile),
            # Thunderbird's other address for the same document, on the
            # autoconfig.DOMAIN host that `gk dns` publishes (no sign-in).
            page("GET", "/mail/config-v1.1.xml", self.autoconfig, public=True),
        ]

    async def autoconfig(self, call: PageCall) -> Reply:
        """The autoconfig document, as at C{/.well-known/autoconfig/mail/config-v1.1.xml}."""
        config = self.app.config
        domains = [*config.server.domains, *await self.app.accounts.list_domains()]
        body = autoconfig_xml(client_setup(config), domains)
        reply = Reply(200, body, "application/xml; charset=utf-8")
        reply.headers["Cache-Control"] = "public, max-age=300"
        reply.headers["Access-Control-Allow-Origin"] = "*"
        return reply

    # -- the page ----------------------------------------------------------------------

    async def show(self, call: PageCall) -> Reply:
        return await self._page(call, notice=NOTICES.get(call.query.get("done", ""), ""))

    async def _page(
        self,
        call: PageCall,
        status: int = 200,
        *,
        notice: str = "",
        errors: dict[str, str] | None = None,
        secret: Secret | None = None,
    ) -> Reply:
        account = call.account
        sessions = await call.ui.sessions.list(account)
        current = call.session.digest if call.session is not None else ""
        rows = [SessionRow(s, device_name(s.user_agent), s.digest == current) for s in sessions]
        rows.sort(key=lambda r: (not r.current, -r.session.last_seen.timestamp()))
        context: dict[str, Any] = {
            "nav": "settings",
            "notice": notice,
            "errors": errors or {},
            "secret": secret,
            "sessions": rows,
            "app_passwords": await self.app.accounts.list_app_passwords(account.email),
            "tokens": await self.app.accounts.list_tokens(account.email),
            "routable": routable,
            "setup": client_setup(self.app.config),
        }
        return call.render("settings.html", status, **context)

    # -- password -----------------------------------------------------------------------

    async def change_password(self, call: PageCall) -> Reply:
        account = call.account
        current = call.form.get("current")[:MAX_FIELD]
        new = call.form.get("new")[:MAX_FIELD]
        again = call.form.get("again")[:MAX_FIELD]

        def refuse(status: int, message: str) -> Awaitable[Reply]:
            return self._page(call, status, errors={"password": message})

        if not current or not new or not again:
            return await refuse(400, "Enter your current password and the new one twice.")
        if new != again:
            return await refuse(400, "The two new passwords are not the same.")
        if new == current:
            return await refuse(400, "The new password is the same as the current one.")
        try:
            check_password_strength(new)
        except AccountError as e:
            return await refuse(400, _sentence(str(e)))
        result = await self.app.security.auth.authenticate(
            call.client_ip, account.email, "web", lambda: self._own_password(account, current)
        )
        if result.outcome is AuthOutcome.BLOCKED:
            minutes = max(1, math.ceil(result.retry_after / 60))
            return await refuse(429, f"Too many failed attempts; try again in {minutes} minute(s).")
        if result.account is None:
            return await refuse(403, "Your current password is not right.")
        try:
            await self.app.accounts.set_password(account.email, new)
        except AccountError as e:
            return await refuse(400, _sentence(str(e)))
        await call.ui.sessions.end_all(account, keep=call.session)
        return redirect("/settings?done=password#password")

    async def _own_password(self, account: Account, password: str) -> Account | None:
        """The account if C{password} is its own password (an app password does not count)."""
        checked = await self.app.accounts.authenticate_with_proof(account.email, password)
        if checked is None or checked.password_hash is None or checked.account.id != account.id:
            return None
        return checked.account

    # -- sessions --------------------------------------------------------------------------

    async def end_session(self, call: PageCall) -> Reply:
        digest = call.params["digest"]
        if not _DIGEST.fullmatch(digest):
            raise PageError(404, "There is no such session.")
        if not await call.ui.sessions.end_by_digest(call.account, digest):
            raise PageError(404, "There is no such session.")
        if call.session is not None and digest == call.session.digest:
            reply = redirect("/login")
            reply.cookies.append(call.ui.session_cookie(call.request, "", 0))
            return reply
        return redirect("/settings?done=session#sessions")

    # -- app passwords and tokens -----------------------------------------------------------

    def _name(self, call: PageCall) -> str:
        name = call.form.get("name").strip()[:MAX_FIELD]
        if not name:
            raise ValueError("Give it a name, such as the device or program it is for.")
        if not routable(name):
            raise ValueError("A name cannot contain “/” or be “.” or “..”.")
        return name

    async def create_app_password(self, call: PageCall) -> Reply:
        try:
            name = self._name(call)
            value = await self.app.accounts.create_app_password(call.account.email, name)
        except AlreadyExists:
            message = "You already have an app password with that name."
            return await self._page(call, 400, errors={"app-password": message})
        except (ValueError, AccountError) as e:
            return await self._page(call, 400, errors={"app-password": _sentence(str(e))})
        return await self._page(call, 201, secret=Secret("app-password", name, value))

    async def revoke_app_password(self, call: PageCall) -> Reply:
        try:
            await self.app.accounts.revoke_app_password(call.account.email, call.params["name"])
        except NotFound:
            raise PageError(404, "There is no such app password.") from None
        return redirect("/settings?done=app-password#app-passwords")

    async def create_token(self, call: PageCall) -> Reply:
        try:
            name = self._name(call)
            value = await self.app.accounts.create_token(call.account.email, name)
        except AlreadyExists:
            message = "You already have a token with that name."
            return await self._page(call, 400, errors={"token": message})
        except (ValueError, AccountError) as e:
            return await self._page(call, 400, errors={"token": _sentence(str(e))})
        return await self._page(call, 201, secret=Secret("token", name, value))

    async def revoke_token(self, call: PageCall) -> Reply:
        try:
            await self.app.accounts.revoke_token(call.account.email, call.params["name"])
        except NotFound:
            raise PageError(404, "There is no such token.") from None
        return redirect("/settings?done=token#tokens")

    # -- client set-up ------------------------------------------------------------------------

    async def apple_profile(self, call: PageCall) -> Reply:
        body = mobileconfig(client_setup(self.app.config), call.account.email)
        return Reply(
            200,
            body,
            MOBILECONFIG_TYPE,
            headers={"Content-Disposition": 'attachment; filename="gk.mobileconfig"'},
        )


def routable(name: str) -> bool:
    """
    Whether a credential's name can stand in a URL path segment (its
    revoke form's): no slash, and not a dot segment browsers resolve.
    """
    return "/" not in name and name not in (".", "..")


def _sentence(message: str) -> str:
    """A service's message as a sentence: capital first, full stop last."""
    message = message.strip()
    if not message:
        return "That did not work."
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
