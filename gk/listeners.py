"""
Listeners: Twisted endpoint strings from the config, bound as services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorCore
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from gk.errors import GkError
from gk.tls import ServerTLS


class ListenError(GkError):
    """A configured endpoint cannot be bound (port in use, no permission...)."""


def check_endpoint(description: str) -> None:
    """
    Parse a server endpoint description without binding anything.

    @raise ValueError: the description is not a valid endpoint string.
    """
    try:
        # Parsing constructs the endpoint object, which only stores the
        # reactor; nothing is bound, so no reactor is needed yet.
        serverFromString(None, description)
    except ValueError:
        raise
    except (TypeError, KeyError, IndexError) as e:
        raise ValueError(str(e) or type(e).__name__) from None


@dataclass
class BoundListener:
    """One bound port: which role, what the config said, where it listens."""

    role: str
    description: str
    implicit_tls: bool
    port: IListeningPort

    @property
    def address(self) -> str:
        host = self.port.getHost()
        if isinstance(host, IPv4Address | IPv6Address):
            return f"{host.host}:{host.port}"
        return str(getattr(host, "name", host))


class ListenerService(Service):
    """
    Binds one endpoint to a protocol factory while running.

    With C{implicit_tls} the factory is wrapped in TLS from C{server_tls}.
    Start-up fails loudly (the port cannot be bound: the error propagates
    to twistd) rather than running without a listener.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorCore,
        role: str,
        description: str,
        factory: IProtocolFactory,
        implicit_tls: bool = False,
        server_tls: ServerTLS | None = None,
    ) -> None:
        self.reactor = reactor
        self.role = role
        self.description = description
        self.implicit_tls = implicit_tls
        if implicit_tls:
            if server_tls is None:
                raise ValueError("an implicit-TLS listener needs the server TLS context")
            factory = TLSMemoryBIOFactory(server_tls, False, factory)
        self.factory = factory
        self.bound: BoundListener | None = None
        self.setName(f"{role}:{'tls:' if implicit_tls else ''}{description}")

    def privilegedStartService(self) -> None:
        # Bind in the privileged phase so that ports below 1024 work when
        # twistd drops privileges afterwards.  listen() on a TCP or UNIX
        # endpoint fires synchronously, so a bind failure is raised here
        # and stops the start instead of leaving a service without a port.
        super().privilegedStartService()
        if self.bound is not None:
            return
        failures: list[Any] = []
        d = serverFromString(self.reactor, self.description).listen(self.factory)
        d.addCallbacks(self._bound, failures.append)
        if failures:
            error = failures[0].value
            if isinstance(error, CannotListenError):
                reason = error.socketError
                detail = getattr(reason, "strerror", None) or str(reason)
                key = "tls_listen" if self.implicit_tls else "listen"
                raise ListenError(
                    f"[{self.role}] {key}: cannot listen on {self.description!r}: {detail}"
                ) from None
            failures[0].raiseException()

    def _bound(self, port: IListeningPort) -> None:
        self.bound = BoundListener(self.role, self.description, self.implicit_tls, port)
        self.log.info(
            "{role} listening on {address}{tls}",
            role=self.role,
            address=self.bound.address,
            tls=" (TLS)" if self.implicit_tls else "",
        )

    def startService(self) -> None:
        # Outside twistd nobody calls privilegedStartService: bind now.
        self.privilegedStartService()
        super().startService()

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        if self.bound is None:
            return None
        port, self.bound = self.bound.port, None
        result = port.stopListening()
        return result if isinstance(result, Deferred) else None
