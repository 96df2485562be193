"""
``/health``, ``/ready`` and ``/metrics`` served in-process by the real
service tree (L{GkService}) on an ephemeral loopback port, asked over real
HTTP connections.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.protocols.portforward import ProxyFactory, ProxyServer
from twisted.python.failure import Failure

from gk import __version__ as gk_version
from gk.app import GkApp
from gk.config import Config, load_config
from gk.service import GkService
from tests.conftest import ConfigWriter
from tests.helpers import http_get


@dataclass
class Running:
    app: GkApp
    service: GkService
    url: str

    @property
    def http_address(self) -> str:
        (listener,) = self.service.listeners
        assert listener.bound is not None
        return listener.bound.address


async def start(config: Config, prepare: bool = True) -> Running:
    from twisted.internet import reactor

    app = GkApp.build(config, reactor)
    if prepare:
        app.prepare()
    service = GkService(app)
    service.startService()
    (listener,) = service.listeners
    assert listener.bound is not None
    return Running(app, service, f"http://{listener.bound.address}")


async def stop(running: Running) -> None:
    await running.service.stopService()
    running.app.db.dispose()


@pytest_twisted.async_yield_fixture
async def gk(config: Config) -> AsyncIterator[Running]:
    """gk's service tree running on the test database (SQLite, and PostgreSQL when set up)."""
    running = await start(config)
    try:
        yield running
    finally:
        await stop(running)


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


# --- a healthy gk --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_health_answers_ok(gk: Running) -> None:
    answer = await http_get(f"{gk.url}/health")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {"status": "ok"}


@pytest_twisted.ensureDeferred
async def test_ready_lists_the_database_and_every_listener(gk: Running) -> None:
    answer = await http_get(f"{gk.url}/ready")

    assert answer.status == 200, answer.text
    body = answer.json()
    # No model server runs here (normally): the assistant alone is degraded,
    # which leaves gk ready.
    assistant = body.pop("assistant")
    assert body.pop("degraded") == ([] if assistant["ok"] else ["assistant"])
    assert assistant["ok"] or "model server" in assistant["problem"]
    assert body == {
        "ready": True,
        "database": {"ok": True, "dialect": gk.app.db.dialect},
        "listeners": [
            {
                "role": "http",
                "endpoint": "tcp:0:interface=127.0.0.1",
                "tls": False,
                "bound": True,
                "address": gk.http_address,
            }
        ],
    }


@pytest_twisted.ensureDeferred
async def test_metrics_are_prometheus_text_that_counts_requests(gk: Running) -> None:
    for _ in range(3):
        assert (await http_get(f"{gk.url}/health")).status == 200
    assert (await http_get(f"{gk.url}/nowhere")).status == 404

    answer = await http_get(f"{gk.url}/metrics")

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    values = samples(answer.text)
    assert values[("gk_build_info", (("version", gk_version),))] == 1.0
    assert values[("gk_listeners", (("role", "http"),))] == 1.0
    assert values[("gk_http_requests_total", (("status", "2xx"),))] == 3.0
    assert values[("gk_http_requests_total", (("status", "4xx"),))] == 1.0


@pytest_twisted.ensureDeferred
async def test_metrics_use_the_apps_own_registry(gk: Running, config: Config) -> None:
    """Two apps in one process keep separate counts (no global registry)."""
    other = await start(config)
    try:
        assert (await http_get(f"{other.url}/health")).status == 200
        mine = samples((await http_get(f"{gk.url}/metrics")).text)
        assert ("gk_http_requests_total", (("status", "2xx"),)) not in mine
    finally:
        await stop(other)


# --- an unreachable database ---------------------------------------------------


@pytest.mark.parametrize(
    "broken_url",
    [
        pytest.param("postgresql+psycopg://nobody@127.0.0.1:1/gk", id="postgresql refused"),
        pytest.param("sqlite:///no/such/folder/gk.sqlite3", id="sqlite unopenable"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_ready_is_503_when_the_database_is_unreachable(
    write_config: ConfigWriter, broken_url: str
) -> None:
    """
    twistd refuses to start on such a database (see test_twistd); here the
    service tree runs anyway, as it would if the database vanished after
    the start, and /ready must say so while /health stays up.
    """
    config = load_config(write_config(database_url=broken_url), environ={})
    running = await start(config, prepare=False)
    try:
        ready = await http_get(f"{running.url}/ready")
        health = await http_get(f"{running.url}/health")
    finally:
        await stop(running)

    assert ready.status == 503, ready.text
    body = ready.json()
    assert body["ready"] is False
    assert body["database"]["ok"] is False
    assert body["listeners"][0]["bound"] is True
    assert health.status == 200


class _TrackedProxy(ProxyServer):
    factory: CuttableProxy

    def connectionMade(self) -> None:
        self.factory.open.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.open.discard(self)
        super().connectionLost(reason)


class CuttableProxy(ProxyFactory):
    """A TCP forwarder to the database whose cable a test can pull and plug back."""

    protocol = _TrackedProxy
    noisy = False

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.open: set[_TrackedProxy] = set()
        self.listening: IListeningPort | None = None  # (self.port is the target's)
        self.listen_port = 0

    def plug(self) -> None:
        from twisted.internet import reactor

        self.listening = reactor.listenTCP(
            self.listen_port,
            self,  # type: ignore[arg-type]
            interface="127.0.0.1",
        )
        address = self.listening.getHost()
        assert isinstance(address, IPv4Address)
        self.listen_port = address.port

    async def pull(self) -> None:
        assert self.listening is not None
        stopped = self.listening.stopListening()
        if stopped is not None:
            await stopped
        self.listening = None
        for connection in list(self.open):
            cast(ITCPTransport, connection.transport).abortConnection()


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_ready_follows_postgresql_going_away_and_coming_back(
    write_config: ConfigWriter, database_url: str
) -> None:
    # The schema is created directly: prepare() blocks the reactor thread,
    # which the proxy needs in order to forward anything.
    direct = GkApp.build(load_config(write_config(database_url=database_url), environ={}))
    direct.prepare()
    direct.db.dispose()

    target = make_url(database_url)
    proxy = CuttableProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.plug()
    url = target.set(host="127.0.0.1", port=proxy.listen_port)
    config = load_config(
        write_config(database_url=url.render_as_string(hide_password=False), name="proxied.toml"),
        environ={},
    )
    running = await start(config, prepare=False)
    try:
        assert (await http_get(f"{running.url}/ready")).status == 200

        await proxy.pull()
        down = await http_get(f"{running.url}/ready")
        assert down.status == 503, down.text
        assert json.loads(down.body)["database"] == {"ok": False, "dialect": "postgresql"}
        assert (await http_get(f"{running.url}/health")).status == 200

        proxy.plug()
        assert (await http_get(f"{running.url}/ready")).status == 200
    finally:
        await stop(running)
        if proxy.listening is not None:
            await proxy.pull()
