"""
The service tree that C{twistd -n gk} runs.

Children start in order and stop in reverse: the database first (so it
stops last, after every listener has drained), then the account, security
and mail-authentication services, then one L{ListenerService} per
configured endpoint, then the SIGHUP handler.  A role whose protocol this
version does not serve yet is logged and skipped rather than bound to
nothing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.web.resource import IResource, Resource

from gk.app import GkApp
from gk.assistant.catalog import build_registry
from gk.assistant.conversations import AssistantService
from gk.assistant.model import OllamaModel
from gk.dav.auth import DavAuthenticator
from gk.dav.context import DavContext
from gk.dav.resource import build_dav
from gk.dav.schedule_delivery import ScheduleInboxService
from gk.dav.scheduling import Scheduler
from gk.delivery.service import build_delivery_worker
from gk.events import MailDelivered
from gk.imap.backend import IMAPBackend
from gk.imap.protocol import IMAPFactory
from gk.listeners import BoundListener, ListenerService
from gk.logging import make_observer
from gk.mcp.metadata import ProtectedResourceMetadata
from gk.mcp.resource import build_mcp_resource
from gk.smtp.backend import ISMTPPolicy
from gk.smtp.policies import MXPolicy, SubmissionPolicy
from gk.smtp.protocol import SMTPFactory
from gk.smtp.session import Limits
from gk.web.api import ApiResource
from gk.web.api_assistant import assistant_routes
from gk.web.api_chat import chat_routes
from gk.web.bearer import BearerAuthenticator
from gk.web.sessions import WebSessions
from gk.web.site import build_site
from gk.web.ui import WebParts, build_web_ui
from gk.web.views.settings_autoconfig import AutoconfigResource
from gk.ws.assistant_commands import AssistantCommands
from gk.ws.commands import LiveCommands
from gk.ws.hub import LiveHub
from gk.ws.resource import LiveService, TokenAuthenticator, build_live_resource

#: Role -> builder of the protocol factory for one of that role's
#: listeners (the flag: implicit TLS).
ProtocolBuilder = Callable[[GkApp, "GkService", bool], IProtocolFactory]


def _http_factory(app: GkApp, tree: GkService, implicit_tls: bool) -> IProtocolFactory:
    return build_site(
        app.db,
        app.metrics,
        tree.listener_status,
        dav=tree.dav_resource(),
        live=tree.live_resource(),
        api=tree.api_resource(),
        mcp=tree.mcp_resource(),
        mcp_metadata=ProtectedResourceMetadata(app.config.http.public_url),
        assistant_problem=tree.assistant.problem,
        ui=tree.web_ui().pages,
        static=tree.web_ui().static,
        autoconfig=AutoconfigResource(lambda: app.config, app.accounts.list_domains),
    )


def _smtp_factory(app: GkApp, policy: ISMTPPolicy, implicit_tls: bool) -> IProtocolFactory:
    limits = Limits(app.config.smtp.max_message_size, app.config.smtp.max_recipients)
    return SMTPFactory(
        app.config.server.hostname,
        policy,
        limits,
        app.tls,
        app.security,
        app.metrics,
        implicit_tls,
    )


def _mx_factory(app: GkApp, tree: GkService, implicit_tls: bool) -> IProtocolFactory:
    domains = app.config.server.domains
    policy = MXPolicy(
        app.config.server.hostname,
        app.accounts,
        app.mailstore,
        app.queue,
        app.security,
        postmaster_domain=domains[0] if domains else app.config.server.hostname,
        authenticator=app.mailauth,
    )
    return _smtp_factory(app, policy, implicit_tls)


def _submission_factory(app: GkApp, tree: GkService, implicit_tls: bool) -> IProtocolFactory:
    policy = SubmissionPolicy(
        app.config.server.hostname, app.accounts, app.mailstore, app.queue, app.security
    )
    return _smtp_factory(app, policy, implicit_tls)


def _imap_factory(app: GkApp, tree: GkService, implicit_tls: bool) -> IProtocolFactory:
    backend = IMAPBackend(app.accounts, app.mailboxes, app.security, app.events)
    return IMAPFactory(
        app.config.server.hostname,
        backend,
        app.tls,
        app.config.smtp.max_message_size,
        implicit_tls,
    )


PROTOCOLS: dict[str, ProtocolBuilder] = {
    "http": _http_factory,
    "smtp": _mx_factory,
    "submission": _submission_factory,
    "imap": _imap_factory,
}


class ReloadOnSIGHUP(Service):
    """Reloads what can change live (the TLS certificate) on SIGHUP."""

    name = "sighup"
    log = Logger()

    def __init__(self, app: GkApp) -> None:
        self.app = app
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._on_signal)

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # Signal handlers run between bytecodes: hand the work to the reactor.
        self.app.reactor.callFromThread(self.reload)

    def reload(self) -> None:
        self.log.info("SIGHUP: reloading")
        if self.app.tls_loaded:
            self.app.tls.reload()


class SchedulerService(Service):
    """Runs the CalDAV scheduler's mail watch (incoming iMIP) while gk runs."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def startService(self) -> None:
        super().startService()
        self.scheduler.start()

    def stopService(self) -> None:
        self.scheduler.stop()
        super().stopService()


class GkService(MultiService):
    """The root service of a gk process."""

    log = Logger()

    def __init__(self, app: GkApp) -> None:
        super().__init__()
        self.app = app
        self.listeners: list[ListenerService] = []
        self._dav: Resource | None = None
        app.db.setServiceParent(self)
        app.accounts.setServiceParent(self)
        app.security.setServiceParent(self)
        app.mailauth.setServiceParent(self)
        self.inbox = ScheduleInboxService(app.db, app.events, app.calendars.max_resource_size)
        self.scheduler = Scheduler(
            app.calendars, self.inbox, app.accounts, app.queue, app.events,
            app.config.server.hostname, app.mailstore,
        )  # fmt: skip
        SchedulerService(self.scheduler).setServiceParent(self)
        #: The assistant's tools, shared by the conversation loop and /mcp.
        self.tools = build_registry(app, self.scheduler)
        assistant = app.config.assistant
        self.assistant = AssistantService(
            app.db,
            app.events,
            self.tools,
            OllamaModel(assistant.ollama_url, assistant.model, assistant.timeout),
            ZoneInfo(assistant.timezone),
            assistant.max_steps,
        )
        self.hub = LiveHub(app.events)
        assistant_commands = AssistantCommands(self.hub, self.assistant)
        self.live_commands = LiveCommands(self.hub, app.chat, assistant_commands.commands())
        LiveService(self.hub).setServiceParent(self)
        self._live: IResource | None = None
        self._api: IResource | None = None
        self._mcp: IResource | None = None
        self._web: WebParts | None = None
        #: The web UI's sign-ins, which the API and /ws accept too.
        self.web_sessions = WebSessions(app.db)
        app.events.subscribe(MailDelivered, lambda _e: app.metrics.deliveries.inc())
        for role, description, implicit_tls in app.config.listeners():
            builder = PROTOCOLS.get(role)
            if builder is None:
                self.log.warn(
                    "[{role}] {endpoint}: this version of gk does not serve {role} yet; skipped",
                    role=role,
                    endpoint=description,
                )
                continue
            listener = ListenerService(
                app.reactor,
                role,
                description,
                builder(app, self, implicit_tls),
                implicit_tls=implicit_tls,
                server_tls=app.tls if implicit_tls else None,
            )
            listener.setServiceParent(self)
            self.listeners.append(listener)
        if app.config.delivery.worker:
            build_delivery_worker(app).setServiceParent(self)
        ReloadOnSIGHUP(app).setServiceParent(self)

    def dav_resource(self) -> Resource:
        """The C{/dav} resource, one for every HTTP listener (they share its credential cache)."""
        if self._dav is None:
            accounts = self.app.accounts
            authenticator = DavAuthenticator(
                self.app.security.auth,
                accounts.authenticate_with_proof,
                accounts.recheck,
                self.app.reactor,
            )
            context = DavContext.from_app(self.app, self.scheduler, self.inbox)
            self._dav = build_dav(context, authenticator, self.app.reactor)
        return self._dav

    def live_resource(self) -> IResource:
        """The C{/ws} resource, shared by every HTTP listener."""
        if self._live is None:
            app = self.app
            self._live = build_live_resource(
                self.hub,
                self.live_commands,
                TokenAuthenticator(app.accounts, app.security.auth, self.web_sessions),
                app.config.http.public_url,
                app.reactor,
            )
        return self._live

    def api_resource(self) -> IResource:
        """The C{/api} resource (the JSON API), shared by every HTTP listener."""
        if self._api is None:
            app = self.app
            authenticator = BearerAuthenticator(app.accounts, app.security.auth, "api")
            routes = chat_routes(app.chat) + assistant_routes(self.assistant)
            self._api = ApiResource(authenticator, routes, self.web_sessions)
        return self._api

    def web_ui(self) -> WebParts:
        """The web UI's pages and static files, shared by every HTTP listener."""
        if self._web is None:
            self._web = build_web_ui(self, self.web_sessions)
        return self._web

    def mcp_resource(self) -> IResource:
        """The C{/mcp} resource (MCP's Streamable HTTP transport), shared by every HTTP listener."""
        if self._mcp is None:
            app = self.app
            self._mcp = build_mcp_resource(
                self.tools,
                BearerAuthenticator(app.accounts, app.security.auth, "mcp"),
                app.config.http.public_url,
                ZoneInfo(app.config.assistant.timezone),
                app.reactor,
            )
        return self._mcp

    def listener_status(self) -> list[tuple[str, str, bool, BoundListener | None]]:
        return [(s.role, s.description, s.implicit_tls, s.bound) for s in self.listeners]

    def setServiceParent(self, parent: Any) -> None:
        # twistd attaches the plugin's service to a Componentized
        # Application and then asks it for an ILogObserver: that is how the
        # plugin chooses the log format without a --logger option.
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, make_observer(self.app.config.log.format))
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        for listener in self.listeners:
            if listener.bound is not None:
                self.app.metrics.listeners.labels(role=listener.role).inc()
        # Once the reactor runs, signals are handled: the right moment to
        # tell operators and scripts that the process is up.
        self.app.reactor.callWhenRunning(
            self.log.info, "gk started: {count} listener(s)", count=len(self.listeners)
        )

    def stopService(self) -> Deferred[None]:
        """
        Stop the children one after the other, last started first, each
        after the one before has finished: listeners close, the delivery
        worker ends its round, and the database stops last.  (MultiService
        would stop them all at once, the database under running work.)
        """
        self.log.info("gk stopping: closing listeners, then storage")
        self.app.metrics.listeners.clear()
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                self.log.failure("stopping {name} failed", name=child.name)


def make_service(app: GkApp) -> IService:
    return GkService(app)
