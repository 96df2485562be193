"""
Brute-force protection for every protocol that checks passwords (SMTP
AUTH, IMAP LOGIN/AUTHENTICATE, HTTP Basic on DAV, the web sign-in).

Failures are tracked in two dimensions over a sliding window
(C{auth_window}, 15 minutes by default):

  - per source (an IP, or an IPv6 /64; see L{AddressKeyer}): after
    C{auth_delay_after} failures every further attempt waits first
    (1 s, 2 s, 4 s ... at most 30 s by default), and after
    C{auth_block_after} failures the source is I{blocked}: refused before
    any password is checked, for C{block_duration} (15 minutes), doubled
    for each repeat offence remembered (C{block_memory}), at most
    C{block_duration_max};
  - per account: the same growing delay, but never a block.

Why delays, not blocks, for accounts: anyone can send failures for any
account name, so a per-account lock-out would let an attacker lock a
legitimate user out for as long as they like, from anywhere.  A delay
slows guessing without ever refusing the right password; the IP
dimension (and the per-IP connection limits) bound how fast each source
can guess, and blocks stop sources that keep trying.  In addition, a
successful login makes its source I{trusted} for that account
(C{trusted_login_duration}, 30 days): per-account delays earned by
attacks from elsewhere do not apply to it, so a user's usual devices log
in at once even while their account is under attack.

A success forgives only the failures of the same source on the same
account, in both dimensions: the user's own typos are forgotten, but a
source spraying many accounts keeps its failures on the others, and a
user's own logins do not wipe the delays an attacker elsewhere has
earned on their account.

Timing: the delay is applied I{before} the password is checked and so
before any answer, success or not; otherwise an attacker could tell a
success by its quick answer and drop the slow ones.

Protocols use L{AuthGuard.authenticate}, which does all of it:

    result = await guard.authenticate(ip, username, "imap",
                                      lambda: accounts.authenticate(username, password))
    if result.outcome is AuthOutcome.BLOCKED: ...   # "try again later"
    elif result.account is None: ...               # wrong credentials

or the parts: L{AuthGuard.refuse_if_blocked}, then
L{AuthGuard.delay_before_answer}, the check, then exactly one of
L{AuthGuard.record_success} or L{AuthGuard.record_failure}.

Everything runs on the reactor thread; the delay is a
L{twisted.internet.task.deferLater} on the injected clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from gk.security.addresses import AddressKeyer
from gk.security.bounded import BoundedMap
from gk.security.events import AuthOutcome, SecurityEvent, SecurityEvents
from gk.security.policy import SecurityPolicy

T = TypeVar("T")

#: Longest account name kept as a key (longer ones are cut).
MAX_ACCOUNT_KEY = 320

#: One failure: (when, hash of the other dimension's key).  Hashes, not
#: strings, keep the memory per failure small and fixed.
_Failure = tuple[float, int]


@dataclass
class _Block:
    until: float
    #: Blocks in a row (each within C{block_memory} of the previous one's end).
    strikes: int
    #: When the strikes are forgotten and the entry can go.
    forget_at: float


@dataclass(frozen=True)
class AuthResult(Generic[T]):
    """
    What L{AuthGuard.authenticate} decided.

    @ivar outcome: success, failure, or blocked (the check was not run).
    @ivar account: what the check returned, on success.
    @ivar delay: seconds waited before the check.
    @ivar retry_after: when blocked, seconds until the block ends.
    """

    outcome: AuthOutcome
    account: T | None = None
    delay: float = 0.0
    retry_after: float = 0.0


def account_key(account: str) -> str:
    """The key an account name is tracked under: stripped, lower-cased, cut."""
    return account.strip().lower()[:MAX_ACCOUNT_KEY]


class AuthGuard:
    """
    Per-source and per-account brute-force protection (see the module
    docstring).  One instance is shared by every protocol.
    """

    def __init__(
        self,
        clock: IReactorTime,
        policy: SecurityPolicy,
        events: SecurityEvents,
        keyer: AddressKeyer | None = None,
    ) -> None:
        self._clock = clock
        self.policy = policy
        self.events = events
        self.keyer = keyer if keyer is not None else policy.keyer()
        # Failures beyond these counts in the window change no answer: the
        # delay is at its cap (accounts), and the block threshold (sources).
        steps = 0
        if 0 < policy.auth_delay_initial < policy.auth_delay_max:
            steps = math.ceil(math.log2(policy.auth_delay_max / policy.auth_delay_initial))
        self._account_maxlen = policy.auth_delay_after + steps
        self._ip_maxlen = max(self._account_maxlen, policy.auth_block_after)
        # Entries here are larger than a rate limiter's; keep fewer.
        max_keys = max(100, policy.max_tracked // 10)
        self._ip_failures: BoundedMap[str, deque[_Failure]] = BoundedMap(max_keys)
        self._account_failures: BoundedMap[str, deque[_Failure]] = BoundedMap(max_keys)
        self._blocks: BoundedMap[str, _Block] = BoundedMap(max_keys)
        self._trusted: BoundedMap[tuple[str, str], float] = BoundedMap(max_keys)

    # -- queries -------------------------------------------------------------

    def is_blocked(self, ip: str) -> bool:
        """Whether attempts from C{ip} are refused (before checking any password)."""
        return self.blocked_for(ip) > 0

    def blocked_for(self, ip: str) -> float:
        """Seconds until C{ip}'s block ends; 0.0 when it is not blocked."""
        if self.keyer.is_exempt(ip):
            return 0.0
        block = self._blocks.get(self.keyer.key(ip))
        if block is None:
            return 0.0
        return max(0.0, block.until - self._clock.seconds())

    def blocked(self) -> dict[str, float]:
        """Every blocked source key and the seconds left on its block."""
        now = self._clock.seconds()
        result: dict[str, float] = {}
        for key in self._blocks:
            block = self._blocks.get(key)
            if block is not None and block.until > now:
                result[key] = block.until - now
        return result

    def failures(self, ip: str) -> int:
        """Failures from C{ip}'s source in the window (counting stops at what matters)."""
        return self._count(self._ip_failures.get(self.keyer.key(ip)))

    def account_failures(self, account: str) -> int:
        """Failures on C{account} in the window, from every source."""
        return self._count(self._account_failures.get(account_key(account)))

    def delay_for(self, ip: str, account: str) -> float:
        """
        Seconds the next attempt from C{ip} for C{account} must wait before
        its password is checked: the larger of the source's and the
        account's delay (the account's is skipped for a trusted source).
        """
        source = self.keyer.key(ip)
        delay = 0.0
        if not self.keyer.is_exempt(ip):
            delay = self._delay(self._count(self._ip_failures.get(source)))
        name = account_key(account)
        if name and not self._is_trusted(source, name):
            delay = max(delay, self._delay(self._count(self._account_failures.get(name))))
        return delay

    # -- the steps of an attempt ------------------------------------------------

    def refuse_if_blocked(self, ip: str, protocol: str, account: str = "") -> bool:
        """
        If C{ip} is blocked: count and log the refused attempt and return
        L{True} (the caller answers "try later" without checking anything).
        """
        remaining = self.blocked_for(ip)
        if remaining <= 0:
            return False
        self.events.auth_attempt(protocol, AuthOutcome.BLOCKED)
        self.events.emit(
            SecurityEvent.AUTH_BLOCKED,
            ip=ip,
            protocol=protocol,
            account=account,
            source=self.keyer.key(ip),
            retry_after=round(remaining, 3),
        )
        return True

    async def delay_before_answer(self, ip: str, account: str) -> float:
        """
        Wait L{delay_for}C{(ip, account)} seconds on the clock; return it.
        Call before checking the password, whatever the outcome will be.
        """
        delay = self.delay_for(ip, account)
        if delay > 0:
            await deferLater(self._clock, delay, lambda: None)
        return delay

    def record_failure(self, ip: str, account: str, protocol: str, delay: float = 0.0) -> None:
        """
        Count a failed attempt (wrong password or unknown account) from
        C{ip} for C{account}; block the source when it reaches the
        threshold.  Logs C{auth_failure}, and C{ip_blocked} when it blocks.
        """
        now = self._clock.seconds()
        source = self.keyer.key(ip)
        name = account_key(account)
        exempt = self.keyer.is_exempt(ip)
        ip_count = 0
        if not exempt:
            ip_count = self._append(
                self._ip_failures, self._ip_maxlen, source, (now, hash(name)), now
            )
        account_count = 0
        if name:
            account_count = self._append(
                self._account_failures, self._account_maxlen, name, (now, hash(source)), now
            )
        self.events.auth_attempt(protocol, AuthOutcome.FAILURE)
        self.events.emit(
            SecurityEvent.AUTH_FAILURE,
            ip=ip,
            protocol=protocol,
            account=account,
            failures_ip=ip_count,
            failures_account=account_count,
            delay=delay,
        )
        if (
            not exempt
            and self.policy.auth_block_after
            and ip_count >= self.policy.auth_block_after
            and not self.is_blocked(ip)
        ):
            self._block(ip, source, now, protocol)

    def record_success(self, ip: str, account: str, protocol: str) -> None:
        """
        Count a successful login: forget the failures of this source on
        this account (in both dimensions) and trust the source for the
        account.  Failures on other accounts, or from other sources, stay.
        """
        now = self._clock.seconds()
        source = self.keyer.key(ip)
        name = account_key(account)
        self._forgive(self._ip_failures, source, hash(name))
        if name:
            self._forgive(self._account_failures, name, hash(source))
            if self.policy.trusted_login_duration > 0:
                self._trusted.put((source, name), now + self.policy.trusted_login_duration)
        self.events.auth_attempt(protocol, AuthOutcome.SUCCESS)

    async def authenticate(
        self,
        ip: str,
        account: str,
        protocol: str,
        check: Callable[[], Awaitable[T | None]],
    ) -> AuthResult[T]:
        """
        One whole guarded attempt: refuse a blocked source without calling
        C{check}; otherwise wait the delay, call C{check} (the password
        check, returning the account or L{None}) and record its outcome.

        If C{check} raises, the attempt is counted with outcome C{error},
        recorded as neither success nor failure, and the exception goes on.
        """
        if self.refuse_if_blocked(ip, protocol, account):
            return AuthResult(AuthOutcome.BLOCKED, retry_after=self.blocked_for(ip))
        delay = await self.delay_before_answer(ip, account)
        # Parallel attempts from the same source may have blocked it meanwhile.
        if self.refuse_if_blocked(ip, protocol, account):
            return AuthResult(AuthOutcome.BLOCKED, delay=delay, retry_after=self.blocked_for(ip))
        try:
            result = await check()
        except Exception:
            self.events.auth_attempt(protocol, AuthOutcome.ERROR)
            raise
        if result is None:
            self.record_failure(ip, account, protocol, delay=delay)
            return AuthResult(AuthOutcome.FAILURE, delay=delay)
        self.record_success(ip, account, protocol)
        return AuthResult(AuthOutcome.SUCCESS, result, delay)

    # -- administration --------------------------------------------------------

    def unblock(self, ip: str) -> bool:
        """Lift C{ip}'s block and forget its failures; whether it was blocked."""
        source = self.keyer.key(ip)
        was_blocked = self.is_blocked(ip)
        self._blocks.pop(source)
        self._ip_failures.pop(source)
        if was_blocked:
            self.events.emit(SecurityEvent.IP_UNBLOCKED, ip=ip, source=source)
        return was_blocked

    def expire(self) -> int:
        """Forget everything that no longer changes an answer; returns how many keys went."""
        now = self._clock.seconds()
        return (
            self._ip_failures.prune(lambda log: self._stale(log, now))
            + self._account_failures.prune(lambda log: self._stale(log, now))
            + self._blocks.prune(lambda block: block.forget_at <= now)
            + self._trusted.prune(lambda until: until <= now)
        )

    # -- internals ---------------------------------------------------------------

    def _delay(self, failures: int) -> float:
        if failures < self.policy.auth_delay_after or self.policy.auth_delay_initial <= 0:
            return 0.0
        exponent = failures - self.policy.auth_delay_after
        return float(
            min(self.policy.auth_delay_initial * 2.0**exponent, self.policy.auth_delay_max)
        )

    def _count(self, log: deque[_Failure] | None) -> int:
        if log is None:
            return 0
        since = self._clock.seconds() - self.policy.auth_window
        return sum(1 for when, _ in log if when > since)

    def _stale(self, log: deque[_Failure], now: float) -> bool:
        return not log or log[-1][0] <= now - self.policy.auth_window

    def _append(
        self,
        table: BoundedMap[str, deque[_Failure]],
        maxlen: int,
        key: str,
        failure: _Failure,
        now: float,
    ) -> int:
        """Record C{failure} under C{key}; return the count in the window."""
        table.prune_front(lambda log: self._stale(log, now))
        log = table.get(key)
        if log is None:
            log = deque(maxlen=maxlen)
        since = now - self.policy.auth_window
        while log and log[0][0] <= since:
            log.popleft()
        log.append(failure)
        table.put(key, log)
        return len(log)

    @staticmethod
    def _forgive(table: BoundedMap[str, deque[_Failure]], key: str, other: int) -> None:
        log = table.get(key)
        if log is None:
            return
        kept = [failure for failure in log if failure[1] != other]
        if kept:
            table.put(key, deque(kept, maxlen=log.maxlen))
        else:
            table.pop(key)

    def _is_trusted(self, source: str, name: str) -> bool:
        until = self._trusted.get((source, name))
        return until is not None and until > self._clock.seconds()

    def _block(self, ip: str, source: str, now: float, protocol: str) -> None:
        previous = self._blocks.get(source)
        strikes = previous.strikes + 1 if previous and now < previous.forget_at else 1
        duration = min(
            self.policy.block_duration * 2.0 ** (strikes - 1), self.policy.block_duration_max
        )
        until = now + duration
        self._blocks.put(source, _Block(until, strikes, until + self.policy.block_memory))
        self._ip_failures.pop(source)
        self.events.emit(
            SecurityEvent.IP_BLOCKED,
            ip=ip,
            protocol=protocol,
            source=source,
            duration=duration,
            strikes=strikes,
        )
