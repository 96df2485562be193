"""
Builds the delivery worker of an app: the MX resolver, MTA-STS, the TLS
trust, the DKIM signer on the queue, and the worker service itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.internet.threads import deferToThread

from gk.delivery.attempt import DeliverySettings, DomainDelivery
from gk.delivery.mtasts import MTASTSResolver
from gk.delivery.routing import MXHost, mx_hosts
from gk.delivery.worker import DeliveryWorker
from gk.errors import GkError
from gk.mailauth.resolver import DNSClient

if TYPE_CHECKING:
    from gk.app import GkApp

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def load_trust_root(ca_file: str) -> Any:
    """The CAs of a PEM bundle as a trust root; None (the platform's) for ""."""
    if not ca_file:
        return None
    try:
        data = Path(ca_file).read_bytes()
    except OSError as e:
        raise GkError(f"[delivery] ca_file {ca_file}: {e.strerror}") from None
    certificates = [Certificate.loadPEM(pem) for pem in _PEM_CERT.findall(data)]
    if not certificates:
        raise GkError(f"[delivery] ca_file {ca_file}: no certificate in it")
    return trustRootFromCertificates(certificates)


def build_delivery_worker(app: GkApp) -> DeliveryWorker:
    config = app.config
    delivery = config.delivery
    dns = DNSClient(config.dns)
    trust_root = load_trust_root(delivery.ca_file)

    async def find_hosts(domain: str) -> list[MXHost]:
        hosts: list[MXHost] = await deferToThread(mx_hosts, dns.lookups(), domain)
        return hosts

    async def txt_lookup(name: str) -> list[str]:
        records: list[bytes] = await deferToThread(lambda: dns.lookups().txt(name))
        return [record.decode("ascii", "replace") for record in records]

    mta_sts = (
        MTASTSResolver(app.reactor, txt_lookup, trust_root=trust_root) if delivery.mta_sts else None
    )
    smarthost = None
    if delivery.smarthost:
        host, _, port = delivery.smarthost.rpartition(":")
        smarthost = (host.strip("[]"), int(port))
    settings = DeliverySettings(
        hostname=config.server.hostname,
        mx_port=delivery.mx_port,
        connect_timeout=delivery.connect_timeout,
        require_tls_domains=frozenset(d.lower() for d in delivery.require_tls_domains),
        trust_root=trust_root,
        smarthost=smarthost,
        smarthost_tls=delivery.smarthost_tls,
        smarthost_auth=(
            (delivery.smarthost_username, delivery.smarthost_password)
            if delivery.smarthost_username
            else None
        ),
    )
    worker = DeliveryWorker(
        app.reactor,
        app.db,
        app.queue,
        app.mailstore,
        app.accounts,
        DomainDelivery(app.reactor, settings, find_hosts, mta_sts),
        delivery,
        config.server.hostname,
        app.metrics,
    )
    app.queue.on_enqueue = worker.notify
    return worker
