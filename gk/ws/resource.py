"""
C{/ws}: the WebSocket resource on the HTTP listener, and who an upgrade
is.

A socket authenticates with a bearer token from C{gk token create} in
the C{Authorization} header (what scripts, tests and the benchmark send)
or, from the web UI, with its session cookie (then the Origin header is
required).  Every attempt goes through
the brute-force guard every protocol shares (protocol name C{"ws"}).
"""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from autobahn.websocket.types import ConnectionDeny
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource

from gk.accounts import AccountService
from gk.security.authguard import AuthGuard
from gk.storage.accounts import Account
from gk.web.bearer import BearerAuthenticator, Blocked
from gk.web.sessions import WebSessions, cookie_value
from gk.ws.connection import Handler, LiveSocketFactory, Upgrade
from gk.ws.hub import LiveHub


class TokenAuthenticator:
    """
    Bearer tokens on the upgrade (L{gk.web.bearer}), under the guard's
    protocol C{"ws"}; without one, the web UI's session cookie.
    """

    def __init__(
        self, accounts: AccountService, guard: AuthGuard, sessions: WebSessions | None = None
    ) -> None:
        self.bearer = BearerAuthenticator(accounts, guard, "ws")
        self.sessions = sessions

    async def __call__(self, upgrade: Upgrade) -> tuple[Account, bool] | None:
        if "authorization" not in upgrade.headers and self.sessions is not None:
            session = await self.sessions.find(cookie_value(upgrade.headers.get("cookie")))
            if session is not None:
                return session.account, True
        try:
            account = await self.bearer.authenticate(
                upgrade.headers.get("authorization"), upgrade.peer_ip
            )
        except Blocked:
            raise ConnectionDeny(429, "Too many failed attempts") from None
        return None if account is None else (account, False)


class LiveService(Service):
    """Starts and stops the hub's bus subscriptions with the server."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    def startService(self) -> None:
        super().startService()
        self.hub.start()

    def stopService(self) -> None:
        self.hub.stop()
        super().stopService()


def build_live_resource(
    hub: LiveHub,
    handler: Handler,
    authenticate: TokenAuthenticator,
    public_url: str,
    clock: IReactorTime,
) -> IResource:
    """The C{/ws} resource."""
    factory = LiveSocketFactory(
        "ws://localhost/ws", public_url, authenticate, handler, clock, hub.connection_count
    )
    resource: IResource = WebSocketResource(factory)
    return resource
