"""Start-up of the server process (what the twistd plugin calls)."""

from __future__ import annotations

import sys
from typing import NoReturn

from twisted.application.service import IService, IServiceCollection

from gk.app import GkApp
from gk.config import load_config
from gk.errors import GkError
from gk.listeners import ListenerService
from gk.service import make_service


def service_from_options(config_path: str | None) -> IService:
    """
    Load the config, prepare storage, and build the service tree.

    Any problem ends the process with one line on stderr and exit status 1,
    never a traceback: twistd would otherwise print one.
    """
    from twisted.internet import reactor

    if not config_path:
        fail("no config file: pass --config FILE or set GK_CONFIG")
    try:
        config = load_config(config_path)
        app = GkApp.build(config, reactor)
        app.prepare()
        if any(tls for _role, _desc, tls in config.listeners()):
            app.tls  # noqa: B018 - load now so a bad certificate stops the start
        service = make_service(app)
        bind_listeners(service)
        return service
    except GkError as e:
        fail(str(e))


def bind_listeners(service: IService) -> None:
    """
    Bind every listener of the tree now, while twistd has not yet taken
    over stderr: a port in use then stops the start with one line, like a
    bad config.  twistd's own C{privilegedStartService} finds them bound;
    this still runs with the privileges twistd was started with.

    @raise gk.listeners.ListenError: an endpoint cannot be bound.
    """
    if isinstance(service, ListenerService):
        service.privilegedStartService()
    collection = IServiceCollection(service, None)
    if collection is not None:
        for child in collection:
            bind_listeners(child)


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"gk: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)
