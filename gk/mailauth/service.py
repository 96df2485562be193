"""
L{MailAuthenticator}: the SPF, DKIM and DMARC checks on inbound mail, as a
service the SMTP server awaits from the reactor thread.

The checks themselves block (DNS, hashing); they run in the service's own
thread pool, and each check's lookups share one deadline of C{[dns]
timeout} seconds counted from the moment the check was asked for, so an
SMTP session waits at most about that long whatever the DNS does, and the
reactor never waits at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from gk.config import DNSConfig
from gk.mailauth import dmarc
from gk.mailauth.dkim import Signatures
from gk.mailauth.resolver import DNSClient, Lookups
from gk.mailauth.results import AuthResults, DKIMResult, DMARCResult, SPFResult
from gk.mailauth.spf import check_spf

P = ParamSpec("P")
T = TypeVar("T")

#: Relative shares of the budget: a DMARC discovery may take two lookups,
#: SPF up to ten, a DKIM signature one.
_DISCOVERY_WEIGHT, _SPF_WEIGHT, _DKIM_WEIGHT = 2.0, 3.0, 1.0


class MailAuthenticator(Service):
    """
    Checks the sender (SPF, at MAIL FROM) and the message (DKIM and DMARC,
    after DATA) of inbound mail.

    Start it (L{startService}, or as the child of a running service) before
    use; stopping it waits for checks in flight, which their deadline keeps
    short.
    """

    name = "mailauth"
    _log = Logger()

    def __init__(
        self,
        dns: DNSConfig,
        hostname: str,
        reactor: IReactorFromThreads,
        threadpool_size: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        """
        @param dns: the C{[dns]} section: nameservers and the time budget of
            one check.  A nameserver given by name is resolved here (blocks).
        @param hostname: this server's name: the authserv-id of the
            Authentication-Results field and SPF's C{%{r}}.
        @param threadpool_size: checks that may run at once; more wait.
        @param rng: draws the DMARC C{pct=} samples (tests pass a seeded one).
        """
        self.hostname = hostname
        self.timeout = dns.timeout
        self._dns = DNSClient(dns)
        self._reactor = reactor
        self._pool = ThreadPool(1, threadpool_size, name="gk-mailauth")
        self._rng = rng or random.Random()
        dmarc.organizational_domain("example.org")  # load the Public Suffix List now

    def startService(self) -> None:
        super().startService()
        self._pool.start()

    def stopService(self) -> None:
        super().stopService()
        self._pool.stop()

    async def check_sender(self, client_ip: str, helo: str, mail_from: str) -> SPFResult:
        """
        SPF for the MAIL FROM identity (the HELO identity when C{mail_from}
        is C{""}, the null reverse-path), within one budget.

        @param client_ip: the client's IP address as text.
        @param mail_from: the address without angle brackets.
        @raise RuntimeError: the service is not running.
        """
        self._check_running()
        try:
            return await self._run(
                check_spf, self._dns.lookups(), client_ip, helo, mail_from, self.hostname
            )
        except Exception:
            self._log.failure("SPF check failed")
            return _failed_spf(mail_from)

    async def check_message(
        self,
        client_ip: str,
        helo: str,
        mail_from: str,
        message: bytes,
        spf: SPFResult | None = None,
    ) -> AuthResults:
        """
        DKIM and DMARC for a received message (and SPF unless C{spf}, the
        result of L{check_sender}, is given), all within one budget.

        @param message: the message as received, before gk adds any field.
        @raise RuntimeError: the service is not running.
        @return: the results (an internal failure is logged and reported as
            C{temperror}, never raised); C{.disposition} says whether to deliver,
            file into Junk or refuse, C{.header()} gives the field to add.
        """
        self._check_running()
        try:
            spf_result, dkim_results, dmarc_results = await self._run(
                authenticate_message,
                self._dns.lookups(),
                message,
                client_ip,
                helo,
                mail_from,
                self.hostname,
                spf,
                self._rng,
            )
        except Exception:
            self._log.failure("message checks failed")
            failed = DMARCResult("temperror", reason="checks failed")
            return AuthResults(self.hostname, spf or _failed_spf(mail_from), (), (failed,))
        return AuthResults(self.hostname, spf_result, dkim_results, dmarc_results)

    def _check_running(self) -> None:
        if not self.running:
            raise RuntimeError("MailAuthenticator is not running")

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)
        return result


def _failed_spf(mail_from: str) -> SPFResult:
    """The result reported when the check itself broke (a bug): temperror."""
    return SPFResult("temperror", "", "mailfrom" if mail_from else "helo", "check failed")


class _Shares:
    """Hands each step of a check its fair share of the time left."""

    def __init__(self, lookups: Lookups, total_weight: float) -> None:
        self._lookups = lookups
        self._left = total_weight

    def next(self, weight: float) -> Lookups:
        fraction = weight / self._left if self._left > 0 else 1.0
        self._left -= weight
        return self._lookups.share(fraction)


def authenticate_message(
    lookups: Lookups,
    message: bytes,
    client_ip: str,
    helo: str,
    mail_from: str,
    receiver: str,
    spf: SPFResult | None,
    rng: random.Random,
) -> tuple[SPFResult, tuple[DKIMResult, ...], tuple[DMARCResult, ...]]:
    """
    The checks of L{MailAuthenticator.check_message} (blocking).

    The steps run in the order that matters to DMARC: the From domains'
    records, the DKIM signatures aligned with a From domain, SPF, then the
    other signatures, each with a fair share of the time left, so that a
    sender whose DNS stalls (its own signature, its own From domain next to
    another's) cannot spend the budget the decisive lookups need.
    """
    domains = dmarc.from_domains(message)
    fixed: tuple[DMARCResult, ...] = ()
    if domains is None:
        fixed = (DMARCResult("permerror", reason="no From field"),)
    elif not domains:
        fixed = (DMARCResult("permerror", reason="no usable From domain"),)
    elif len(domains) > dmarc.MAX_FROM_DOMAINS:
        fixed = (
            DMARCResult("permerror", reason="too many From domains", disposition="quarantine"),
        )
    targets = [] if fixed or domains is None else domains
    signatures = Signatures(message)
    is_aligned = [
        any(dmarc.aligned(signatures.domain(i), d, strict=False) for d in targets)
        for i in range(len(signatures))
    ]
    first = [i for i in range(len(signatures)) if is_aligned[i]]
    rest = [i for i in range(len(signatures)) if not is_aligned[i]]
    shares = _Shares(
        lookups,
        _DISCOVERY_WEIGHT * len(targets)
        + _DKIM_WEIGHT * len(signatures)
        + (_SPF_WEIGHT if spf is None else 0.0),
    )
    discoveries = [dmarc.discover(shares.next(_DISCOVERY_WEIGHT), d) for d in targets]
    dkim_results = {i: signatures.verify(shares.next(_DKIM_WEIGHT), i) for i in first}
    if spf is None:
        spf = check_spf(shares.next(_SPF_WEIGHT), client_ip, helo, mail_from, receiver)
    dkim_results.update({i: signatures.verify(shares.next(_DKIM_WEIGHT), i) for i in rest})
    dkim = tuple(dkim_results[i] for i in range(len(signatures)))
    results = fixed or tuple(dmarc.evaluate(d, spf, dkim, rng) for d in discoveries)
    return spf, dkim, results
