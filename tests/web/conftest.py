"""
A running gk for the web UI's tests: HTTP on a loopback port chosen up
front (so C{[http] public_url} names it, as in a real deployment, and the
browser's Origin matches), MX and IMAP on loopback, the delivery worker
off, the assistant talking to the scripted Ollama; alice (an admin), bob
and carol.

L{WebClient} is a signed-in browser without a browser (httpx, cookies,
the CSRF token read off the page); the browser tests drive Debian's
Chromium through Playwright's async API on the reactor's own asyncio loop
(L{tests.web.browser}).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_twisted

from gk.app import GkApp
from gk.config import load_config
from gk.service import GkService
from gk.storage.accounts import Account
from gk.tls import write_self_signed
from tests.assistant.conftest import ollama
from tests.assistant.scripted_ollama import ScriptedOllama
from tests.conftest import ConfigWriter
from tests.dnsserver import DNSTestServer, dns_server
from tests.helpers import in_thread

__all__ = ["dns_server", "ollama"]

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_LOGIN_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebClient:
    """
    A browser-like HTTP client (blocking; call it through L{in_thread}):
    keeps cookies, signs in through the form, and sends the page's CSRF
    token with every form it posts.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def login_token(self) -> str:
        """Open the sign-in form: its token (its cookie twin is kept)."""
        form = self.http.get("/login")
        token = _LOGIN_TOKEN.search(form.text)
        assert token is not None, form.text
        return token.group(1)

    def login(
        self, email: str, password: str = PASSWORD, token: str | None = None
    ) -> httpx.Response:
        answer = self.http.post(
            "/login",
            data={
                "csrf": token or self.login_token(),
                "email": email,
                "password": password,
                "next": "/",
            },
            headers={"Origin": self.base_url},
        )
        if answer.status_code == 303:
            self.refresh_csrf()
        return answer

    def refresh_csrf(self, path: str = "/settings") -> None:
        page = self.http.get(path, follow_redirects=True)
        found = _CSRF.search(page.text)
        assert found is not None, page.text[:500]
        self.csrf = found.group(1)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        """A form post with the CSRF token (unless C{data} has its own)."""
        fields = {"csrf": self.csrf, **(data or {})}
        headers = {"Origin": self.base_url, **kwargs.pop("headers", {})}
        return self.http.post(path, data=fields, headers=headers, **kwargs)


@dataclass
class WebServer:
    app: GkApp
    tree: GkService
    base_url: str
    ollama: ScriptedOllama
    accounts: dict[str, Account] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[WebClient] = field(default_factory=list)

    def port_of(self, role: str) -> int:
        for listener in self.tree.listeners:
            if listener.role == role and listener.bound is not None:
                return int(listener.bound.address.rpartition(":")[2])
        raise LookupError(f"no {role} listener")

    async def client(self, email: str | None = ALICE) -> WebClient:
        """A new client, signed in as C{email} (None: not signed in)."""
        client = WebClient(self.base_url)
        self.clients.append(client)
        if email is not None:
            answer = await in_thread(lambda: client.login(email))
            assert answer.status_code == 303, answer.text
        return client


@pytest.fixture
def web_port() -> int:
    return free_port()


@pytest_twisted.async_yield_fixture
async def web(
    write_config: ConfigWriter,
    sqlite_url: str,
    dns_server: DNSTestServer,
    ollama: ScriptedOllama,
    web_port: int,
    tmp_path: Path,
) -> AsyncIterator[WebServer]:
    """gk serving the web UI at http://127.0.0.1:PORT/ (SQLite; storage is tested on both)."""
    from twisted.internet import reactor

    config_file = write_config(
        '[delivery]\nworker = false\n[assistant]\ntimezone = "Europe/Paris"\n',
        database_url=sqlite_url,
    )
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "mail.example.test")
    base_url = f"http://127.0.0.1:{web_port}"
    environ = {
        "GK_TLS__CERT": str(cert),
        "GK_TLS__KEY": str(key),
        "GK_HTTP__LISTEN": f'["tcp:{web_port}:interface=127.0.0.1"]',
        "GK_HTTP__PUBLIC_URL": base_url + "/",
        "GK_SMTP__LISTEN": '["tcp:0:interface=127.0.0.1"]',
        "GK_IMAP__LISTEN": '["tcp:0:interface=127.0.0.1"]',
        "GK_DNS__NAMESERVERS": f'["{dns_server.address}"]',
        "GK_DNS__TIMEOUT": "2.0",
        "GK_ASSISTANT__OLLAMA_URL": ollama.url,
        "GK_ASSISTANT__TIMEOUT": "10",
    }
    config = load_config(config_file, environ=environ)
    app = GkApp.build(config, reactor)
    app.prepare()
    tree = GkService(app)
    tree.startService()
    server = WebServer(app, tree, base_url, ollama)
    try:
        for email in (ALICE, BOB, CAROL):
            server.accounts[email] = await app.accounts.create_user(
                email, PASSWORD, is_admin=email == ALICE
            )
            server.tokens[email] = await app.accounts.create_token(email, "tests")
        yield server
    finally:
        for client in server.clients:
            client.close()
        await tree.stopService()
        app.db.dispose()
