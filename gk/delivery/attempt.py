"""
One delivery attempt to one destination domain: find its hosts, connect,
secure the connection as policy demands, and hand over every waiting
message for that domain over the one connection.

TLS policy, per host:
  - the domain is in C{[delivery] require_tls_domains}, or publishes an
    MTA-STS policy in "enforce" mode: only MX hosts the policy names, and
    only over STARTTLS with a certificate valid for the host's name;
    otherwise that host is skipped (a temporary failure if none is left);
  - otherwise opportunistic: STARTTLS whenever offered, the certificate
    not checked (RFC 7435); a failed handshake is retried once in
    plaintext on a new connection, as Postfix does at security level "may".
A smarthost is the one host, reached as C{[delivery] smarthost_tls} says
(verified TLS unless "none"), with AUTH when credentials are configured.

The outcome is a L{Verdict} per recipient; recording it, retries and
reports are the worker's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger

from gk.delivery.client import SMTPClient, SMTPClientError
from gk.delivery.connect import UnverifiedClientTLS, connect_smtp
from gk.delivery.mtasts import MTASTSResolver, tls_requirement
from gk.delivery.pool import ConnectionCache
from gk.delivery.replies import Reply
from gk.delivery.routing import MXHost, RouteError


@dataclass(frozen=True)
class Verdict:
    """What became of one recipient in this attempt."""

    #: "sent", "transient" (try again later) or "permanent" (bounce).
    kind: str
    #: The reply or the local reason, for logs, the queue and DSNs.
    text: str
    #: RFC 3463 status for a DSN.
    status: str
    remote_mta: str = ""


@dataclass
class Job:
    """One message's recipients in the destination domain."""

    queue_id: str
    sender: str
    #: recipient id -> address
    recipients: dict[int, str]
    smtputf8: bool
    load: Callable[[], Awaitable[bytes]]
    verdicts: dict[int, Verdict] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliverySettings:
    hostname: str
    mx_port: int
    connect_timeout: float
    require_tls_domains: frozenset[str]
    #: A trust root for verified TLS (None: the platform's).
    trust_root: Any = None
    smarthost: tuple[str, int] | None = None
    smarthost_tls: str = "starttls"
    smarthost_auth: tuple[str, str] | None = None
    #: Seconds to wait for each reply.
    command_timeout: float = 300.0


class _HostFailed(Exception):
    """This host could not take the mail; the next one may."""

    def __init__(self, message: str, *, permanent: bool = False, status: str = "4.4.1") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class DomainDelivery:
    """
    Delivers jobs to one domain per call (see the module docstring).

    @param find_hosts: the domain's MX hosts (L{gk.delivery.routing.mx_hosts}
        run off the reactor thread); raises L{RouteError}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        settings: DeliverySettings,
        find_hosts: Callable[[str], Awaitable[list[MXHost]]],
        mta_sts: MTASTSResolver | None = None,
    ) -> None:
        self._reactor = reactor
        self.settings = settings
        self._find_hosts = find_hosts
        self._mta_sts = mta_sts
        self._connections = ConnectionCache(reactor)

    async def deliver(self, domain: str, jobs: list[Job]) -> None:
        """Attempt every job; afterwards each recipient of each job has a verdict."""
        try:
            hosts, requirement = await self._plan(domain)
        except RouteError as e:
            kind = "permanent" if e.permanent else "transient"
            _settle(jobs, Verdict(kind, str(e), e.status))
            return
        last = _HostFailed(f"no mail host for {domain} could be tried")
        for host, address in hosts:
            pending = [job for job in jobs if len(job.verdicts) < len(job.recipients)]
            if not pending:
                return
            need = requirement(host.name)
            if need is None:
                last = _HostFailed(f"{host.name} is not an MX host allowed by {domain}'s MTA-STS")
                continue
            try:
                await self._over_one_connection(host.name, address, need, pending)
            except _HostFailed as e:
                last = e
                self.log.info(
                    "delivery to {domain} via {host}[{address}] failed: {error}",
                    domain=domain,
                    host=host.name,
                    address=address,
                    error=str(e),
                )
                if e.permanent:
                    _settle(pending, Verdict("permanent", str(e), e.status, host.name))
                    return
        _settle(jobs, Verdict("transient", str(last), last.status))

    async def _plan(
        self, domain: str
    ) -> tuple[list[tuple[MXHost, str]], Callable[[str], bool | None]]:
        """
        The (host, address) pairs to try in order, and for a host name
        whether verified TLS is needed (True), opportunistic TLS will do
        (False), or the host may not be used (None).
        """
        settings = self.settings
        if settings.smarthost is not None:
            host, _port = settings.smarthost
            verify = settings.smarthost_tls != "none"
            return [(MXHost(host, 0, (host,)), host)], lambda _name: verify
        hosts = await self._find_hosts(domain)
        policy = None
        if self._mta_sts is not None:
            try:
                policy = await self._mta_sts.policy_for(domain)
            except Exception:
                self.log.failure("MTA-STS policy lookup for {domain} failed", domain=domain)
        forced = domain in settings.require_tls_domains

        def requirement(name: str) -> bool | None:
            if name.rstrip(".").lower() == settings.hostname.lower():
                return None  # never deliver to ourselves: a routing loop
            need = tls_requirement(policy, name)
            if not need.deliver:
                return None
            return forced or need.require_verified_tls

        pairs = [(host, address) for host in hosts for address in host.addresses]
        if hosts and all(h.name.rstrip(".").lower() == settings.hostname.lower() for h in hosts):
            raise RouteError(
                f"mail for {domain} loops back to myself", permanent=True, status="5.4.6"
            )
        return pairs, requirement

    async def _over_one_connection(
        self, host: str, address: str, verified: bool, jobs: list[Job]
    ) -> None:
        key = (host, address, verified)
        client = await self._connections.take(key)
        if client is None:
            client = await self._open(host, address, verified, starttls=True)
        try:
            await self._send_all(client, host, jobs)
        except BaseException:
            await client.quit()
            raise
        self._connections.give(key, client)

    def close(self) -> None:
        """Close the idle connections (when the worker stops)."""
        self._connections.close_all()

    async def _open(self, host: str, address: str, verified: bool, starttls: bool) -> SMTPClient:
        settings = self.settings
        port = settings.smarthost[1] if settings.smarthost else settings.mx_port
        implicit = settings.smarthost is not None and settings.smarthost_tls == "implicit"
        try:
            client = await connect_smtp(
                self._reactor,
                address,
                port,
                timeout=settings.connect_timeout,
                reply_timeout=settings.command_timeout,
                tls=self._tls_options(host, True) if implicit else None,
            )
        except SMTPClientError as e:
            raise _HostFailed(f"connect to {host}[{address}]:{port}: {e}") from None
        try:
            await client.ehlo(settings.hostname)
            if not implicit and starttls and "STARTTLS" in client.extensions:
                try:
                    await client.starttls(self._tls_options(host, verified))
                except SMTPClientError as e:
                    if verified:
                        raise _HostFailed(f"TLS with {host} failed: {e}") from None
                    # Opportunistic: a broken TLS stack gets the mail in plaintext.
                    client.abort()
                    return await self._open(host, address, verified, starttls=False)
            elif verified and not implicit:
                raise _HostFailed(f"TLS is required, but {host} does not offer STARTTLS")
            if settings.smarthost_auth is not None and settings.smarthost is not None:
                await client.auth(*settings.smarthost_auth)
        except _HostFailed:
            client.abort()
            raise
        except SMTPClientError as e:
            client.abort()
            reply = getattr(e, "reply", None)
            permanent = (
                isinstance(reply, Reply) and reply.permanent and settings.smarthost is not None
            )
            raise _HostFailed(
                f"{host} said: {e}", permanent=permanent, status=_status(reply)
            ) from None
        return client

    def _tls_options(self, host: str, verified: bool) -> Any:
        if verified:
            return optionsForClientTLS(host, trustRoot=self.settings.trust_root)
        return UnverifiedClientTLS(host)

    async def _send_all(self, client: SMTPClient, host: str, jobs: list[Job]) -> None:
        for index, job in enumerate(jobs):
            message = await job.load()
            try:
                result = await client.send(
                    job.sender, list(job.recipients.values()), message, smtputf8=job.smtputf8
                )
            except SMTPClientError as e:
                # Whether the server took this one is unknown: retry it later
                # (a duplicate is better than a loss); the rest go elsewhere.
                _settle(
                    [job], Verdict("transient", f"lost connection with {host}: {e}", "4.4.2", host)
                )
                if index + 1 < len(jobs):
                    raise _HostFailed(f"lost connection with {host}: {e}") from None
                return
            for recipient_id, address in job.recipients.items():
                reply = result.recipients[address]
                kind = "sent" if reply.positive else "permanent" if reply.permanent else "transient"
                job.verdicts[recipient_id] = Verdict(kind, str(reply), _status(reply), host)


def _status(reply: Reply | None) -> str:
    if reply is None:
        return "4.4.1"
    if reply.enhanced:
        return reply.enhanced
    return {2: "2.0.0", 4: "4.0.0", 5: "5.0.0"}.get(reply.code // 100, "4.0.0")


def _settle(jobs: list[Job], verdict: Verdict) -> None:
    """Give C{verdict} to every recipient of C{jobs} that has none yet."""
    for job in jobs:
        for recipient_id in job.recipients:
            job.verdicts.setdefault(recipient_id, verdict)
