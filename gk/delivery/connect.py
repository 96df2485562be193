"""
Opening an outbound SMTP connection: the TCP (or implicit TLS) connection,
the greeting, and the TLS client settings for opportunistic STARTTLS.

    client = await connect_smtp(reactor, "192.0.2.25", 25, timeout=30)
    await client.ehlo("mail.example.org")
    if "STARTTLS" in client.extensions:
        await client.starttls(UnverifiedClientTLS("mx.example.net"))
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory
from zope.interface import implementer

from gk.delivery.client import DATA_TIMEOUT, REPLY_TIMEOUT, SMTPClient
from gk.delivery.client_errors import SMTPClientError, SMTPConnectError, SMTPReplyError


@implementer(IOpenSSLClientConnectionCreator)
class UnverifiedClientTLS:
    """
    Opportunistic TLS (RFC 7435): encryption without checking the
    certificate, sending C{hostname} as SNI.  Use
    C{twisted.internet.ssl.optionsForClientTLS(hostname, trustRoot=...)}
    where the certificate must verify (DANE, MTA-STS, a smarthost).
    """

    def __init__(self, hostname: str | None = None) -> None:
        self._sni = _sni_name(hostname)
        self._context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self._context.set_options(SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_COMPRESSION)
        self._context.set_verify(SSL.VERIFY_NONE)

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        connection.set_connect_state()
        return connection


def _sni_name(hostname: str | None) -> bytes | None:
    """The SNI for a host name; none for an IP address (RFC 6066 3)."""
    if not hostname:
        return None
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        try:
            return hostname.rstrip(".").encode("idna")
        except UnicodeError:
            return None
    return None


class _ClientFactory(Factory):
    noisy = False

    def __init__(self, make: Callable[[], SMTPClient]) -> None:
        self._make = make

    def buildProtocol(self, addr: object) -> SMTPClient:
        client: SMTPClient = self._make()
        client.factory = self
        return client


async def connect_smtp(
    reactor: Any,
    host: str,
    port: int,
    *,
    timeout: float,  # noqa: ASYNC109 (the TCP connect timeout, not asyncio)
    bind_address: str | None = None,
    reply_timeout: float = REPLY_TIMEOUT,
    data_timeout: float = DATA_TIMEOUT,
    tls: IOpenSSLClientConnectionCreator | None = None,
) -> SMTPClient:
    """
    Connect and read the greeting.

    @param reactor: an C{IReactorTCP} and C{IReactorTime}.
    @param host: an IP address (used as it is) or a host name (resolved
        by the reactor, every address tried: HostnameEndpoint).
    @param timeout: seconds for the TCP connection; replies then have
        C{reply_timeout}, the reply after the message C{data_timeout}.
    @param bind_address: the local IP address to connect from.
    @param tls: implicit TLS (RFC 8314, a smarthost on port 465): the
        client context factory for a handshake before the greeting.
    @raise SMTPConnectError: no TCP connection.
    @raise SMTPTLSError: the implicit TLS handshake failed.
    @raise SMTPReplyError: the greeting was not 2xx (the client said QUIT).
    @raise SMTPTimeoutError, SMTPConnectionLost, SMTPProtocolError: no
        usable greeting.
    """
    bind = (bind_address, 0) if bind_address else None
    peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family: int
    try:
        family = ipaddress.ip_address(host).version
    except ValueError:
        family = 0
    endpoint: Any
    if family == 4:
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)
    elif family == 6:
        endpoint = TCP6ClientEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)
    else:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind)

    handshake: Deferred[None] = Deferred()
    if tls is not None:
        endpoint = wrapClientTLS(tls, endpoint)

    def make() -> SMTPClient:
        client = SMTPClient(reactor, peer, reply_timeout=reply_timeout, data_timeout=data_timeout)
        if tls is not None:
            client._handshake = handshake
        return client

    try:
        client: SMTPClient = await endpoint.connect(_ClientFactory(make))
    except (error.ConnectError, OSError) as e:
        raise SMTPConnectError(f"cannot connect to {peer}: {e}") from None
    try:
        if tls is not None:
            await client._tls_handshake(handshake)
        greeting = await client._read_reply()
    except SMTPClientError:
        client.abort()
        raise
    client.greeting = greeting
    if not greeting.positive:
        await client.quit()
        raise SMTPReplyError(greeting, "connect")
    return client
