"""
Idle outbound SMTP connections, kept a few seconds for the next attempt to
the same host (as Postfix's connection cache does): mail to a busy domain
then costs one transaction, not a TCP connection, greeting, EHLO and TLS
handshake each.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from gk.delivery.client import SMTPClient, SMTPClientError

#: (host name, address, verified TLS): a connection made under one TLS
#: requirement never serves another.
Key = tuple[str, str, bool]


class ConnectionCache:
    """
    At most L{max_idle} idle connections, each closed (QUIT) after
    L{idle_seconds} unless taken again.  Reactor thread only.
    """

    def __init__(self, reactor: Any, idle_seconds: float = 2.0, max_idle: int = 100) -> None:
        self._reactor = reactor
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._idle: dict[Key, list[tuple[SMTPClient, IDelayedCall]]] = {}

    def __len__(self) -> int:
        return sum(len(clients) for clients in self._idle.values())

    async def take(self, key: Key) -> SMTPClient | None:
        """
        An idle connection to C{key} that still answers (RSET; the server
        may have closed it meanwhile), or L{None}.
        """
        while self._idle.get(key):
            client, timer = self._idle[key].pop()
            if timer.active():
                timer.cancel()
            try:
                await client.rset()
            except SMTPClientError:
                client.abort()
                continue
            return client
        return None

    def give(self, key: Key, client: SMTPClient) -> None:
        """Keep C{client} for a while (or close it now if the cache is full)."""
        if not client.is_open or len(self) >= self.max_idle:
            self._close(client)
            return
        entry: list[tuple[SMTPClient, IDelayedCall]] = self._idle.setdefault(key, [])

        def expire() -> None:
            for i, (idle, _timer) in enumerate(entry):
                if idle is client:
                    del entry[i]
                    break
            self._close(client)

        entry.append((client, self._reactor.callLater(self.idle_seconds, expire)))

    def close_all(self) -> None:
        """Close every idle connection (at stop)."""
        idle, self._idle = self._idle, {}
        for clients in idle.values():
            for client, timer in clients:
                if timer.active():
                    timer.cancel()
                self._close(client)

    @staticmethod
    def _close(client: SMTPClient) -> None:
        # QUIT politely in the background; quit() never raises.
        Deferred.fromCoroutine(client.quit())
