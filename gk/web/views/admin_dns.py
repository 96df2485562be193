"""
The web admin's DNS pages: the records to publish for a local domain (the
very list C{gk dns DOMAIN} prints, L{gk.cli_commands.dns_entries}) as a
table and as zone-file lines, and a live check of what DNS says for each.

C{/admin/dns/{domain}} answers at once with the records; its table then
loads C{/admin/dns/{domain}/check} (an htmx fragment, C{hx-trigger=load}),
which asks DNS.  Without JavaScript, C{?check=1} checks before answering.

The check asks the resolver of C{[dns]} (its nameservers, its C{timeout}
as the budget of all the lookups of one check together) through dnspython
in the reactor's thread pool, never on the reactor thread, and without a
cache: an operator who just fixed a record sees what the resolver says
now.  Each record is reported C{match}, C{differs} (with what was
found), C{missing} or C{failed} (L{gk.delivery.dns_records.check_records}).

A domain without a DKIM key gets a button that makes one, as C{gk dkim
keygen} does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThreadPool

from gk.accounts import InvalidAddress, normalize_domain
from gk.cli_commands import dns_entries
from gk.config import DNSConfig
from gk.delivery.dkim_sign import DKIMKeyError, generate_key, key_directory
from gk.delivery.dns_records import Entry, Record, RecordCheck, check_records, zone_lines
from gk.mailauth.resolver import DNSClient
from gk.web.page import Handler, PageCall, PageError, Reply, redirect
from gk.web.views.admin_common import message_of, render

if TYPE_CHECKING:
    from gk.service import GkService

T = TypeVar("T")

#: Words shown for each check status.
STATUS_LABELS = {
    "match": "Matches",
    "differs": "Differs",
    "missing": "Missing",
    "failed": "Lookup failed",
}


class LiveDNS:
    """
    Lookups for the live check, through the resolver of C{[dns]}, built
    on first use in a worker thread (naming a nameserver by host name
    resolves it, which blocks) and kept.  At most L{CONCURRENT} checks run
    at once (more wait their turn), so that admins reloading a page while
    DNS is down cannot tie up the threads the rest of gk shares.
    """

    CONCURRENT = 2

    def __init__(self, config: DNSConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self._client: DNSClient | None = None
        self._lock = threading.Lock()
        self._turns = DeferredSemaphore(self.CONCURRENT)

    def _dns(self) -> DNSClient:
        with self._lock:
            if self._client is None:
                client = DNSClient(self.config)
                client.resolver.cache = None  # live: never an answer remembered
                self._client = client
            return self._client

    def _check(self, records: list[Record]) -> list[RecordCheck]:
        return check_records(self._dns().lookups(), records)

    async def check(self, records: list[Record]) -> list[RecordCheck]:
        """What DNS says about each of C{records}, in their order."""
        await self._turns.acquire()
        try:
            return await in_pool(self.reactor, self._check, records)
        finally:
            self._turns.release()


async def in_pool(reactor: Any, fn: Callable[..., T], *args: Any) -> T:
    """C{fn(*args)} in the reactor's thread pool (blocking work off the reactor)."""
    result: T = await deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)
    return result


class AdminDNSPages:
    """C{/admin/dns/...}: the records of a domain, the live check, DKIM keys."""

    def __init__(self, tree: GkService) -> None:
        self.app = tree.app
        self.live = LiveDNS(tree.app.config.dns, tree.app.reactor)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/admin/dns", self.index),
            ("GET", "/admin/dns/{domain}", self.records),
            ("GET", "/admin/dns/{domain}/check", self.check),
            ("POST", "/admin/dns/{domain}/dkim", self.make_dkim_key),
        ]

    async def index(self, call: PageCall) -> Reply:
        return redirect("/admin/domains")

    async def _domain(self, call: PageCall) -> str:
        """The local domain of the path, normalised; 404 for any other."""
        try:
            name = normalize_domain(str(call.params["domain"]))
        except InvalidAddress:
            raise PageError(404, "There is no such domain.") from None
        if not await self.app.accounts.is_local_domain(name):
            raise PageError(404, f"{name} is not a local domain.")
        return name

    async def _entries(self, domain: str) -> list[Entry]:
        return await in_pool(self.app.reactor, dns_entries, self.app.config, domain)

    async def _page(
        self, call: PageCall, domain: str, status: int = 200, **context: object
    ) -> Reply:
        entries = await self._entries(domain)
        records = [e for e in entries if isinstance(e, Record)]
        checks: list[RecordCheck] | None = None
        if call.query.get("check") == "1":
            checks = await self.live.check(records)
        return render(
            call,
            "admin_dns.html",
            status,
            section="domains",
            domain=domain,
            rows=_rows(records, checks),
            summary=_summary(checks),
            checked=checks is not None,
            zone="\n".join(zone_lines(entries)),
            has_dkim=any(r.name.endswith("._domainkey." + domain) for r in records),
            **context,
        )

    async def records(self, call: PageCall) -> Reply:
        return await self._page(call, await self._domain(call))

    async def check(self, call: PageCall) -> Reply:
        domain = await self._domain(call)
        entries = await self._entries(domain)
        records = [e for e in entries if isinstance(e, Record)]
        checks = await self.live.check(records)
        return render(
            call,
            "admin_dns_table.html",
            domain=domain,
            rows=_rows(records, checks),
            summary=_summary(checks),
            checked=True,
        )

    async def make_dkim_key(self, call: PageCall) -> Reply:
        domain = await self._domain(call)
        algorithm = call.form.get("algorithm", "rsa")
        if algorithm not in ("rsa", "ed25519"):
            return await self._page(call, domain, 400, error="Choose RSA or Ed25519.")
        key_dir = key_directory(self.app.config.server.data_dir)
        try:
            key = await in_pool(self.app.reactor, generate_key, key_dir, domain, algorithm)
        except (DKIMKeyError, OSError) as e:
            return await self._page(call, domain, 409, error=message_of(e))
        return await self._page(
            call,
            domain,
            notice=f"Made the DKIM key {key.selector} ({key.algorithm}) of {domain}; "
            f"mail is signed with it from now on: publish its record {key.dns_name} now.",
        )


def _rows(records: list[Record], checks: list[RecordCheck] | None) -> list[dict[str, Any]]:
    """Each record with its check (if made) as the table shows it."""
    rows = []
    for index, record in enumerate(records):
        check = None if checks is None else checks[index]
        rows.append(
            {
                "name": record.name,
                "type": record.type,
                "value": record.value,
                "status": "" if check is None else check.status,
                "label": "" if check is None else STATUS_LABELS[check.status],
                "found": () if check is None else check.found,
                "error": "" if check is None else check.error,
            }
        )
    return rows


def _summary(checks: list[RecordCheck] | None) -> str:
    """One sentence: how many records match, differ, are missing, failed."""
    if checks is None:
        return ""

    def count(status: str) -> int:
        return sum(1 for c in checks if c.status == status)

    parts = [f"{count('match')} of {len(checks)} records match"]
    parts += [f"{n} differ" for n in [count("differs")] if n]
    parts += [f"{n} missing" for n in [count("missing")] if n]
    parts += [f"{n} could not be looked up" for n in [count("failed")] if n]
    return "; ".join(parts) + "."
