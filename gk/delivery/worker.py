"""
The delivery worker: takes due recipients from the outbound queue, makes
one attempt per destination domain, records each outcome, and tells the
sender about failures and long delays.

Rules:
  - a recipient is C{pending} until its first attempt, C{sending} during
    one, then C{sent}, C{deferred} (a temporary failure: the next attempt
    after C{first_retry} seconds, doubling up to C{max_retry_interval}),
    C{bounced} (a permanent failure) or C{failed} (still undelivered after
    C{max_lifetime});
  - an outcome is committed as soon as its domain's attempt ends, so a
    restart never sends again to a recipient that was accepted; what was
    C{sending} when the process died is retried at start (the remote may
    have taken it just before: a duplicate is better than a loss);
  - a bounced or failed recipient gets its sender a report (RFC 3464)
    in the sender's INBOX, and a recipient still deferred after
    C{delay_warning} seconds a "delayed" report, once; only mail from a
    local account gets reports (never one to the null sender or outside);
  - a message whose recipients are all done is removed, with its spool file.

The worker runs a quarter second after mail is queued in this process
(L{notify}: a burst is claimed at once), when the
earliest deferred recipient is due, and at least every L{SWEEP_SECONDS}
(to see mail queued, or retried with C{gk queue retry}, by another process).
One process per database runs it.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from gk.accounts import AccountService
from gk.config import DeliveryConfig
from gk.delivery.attempt import DomainDelivery, Job, Verdict
from gk.delivery.dsn import RecipientReport, build_report
from gk.metrics import Metrics
from gk.queue import DeliveryQueue
from gk.storage import queue_store
from gk.storage.database import Database
from gk.storage.mailstore import MailStore
from gk.storage.queue_store import Claimed, Outcome

#: Recipients taken per round.
BATCH = 1000
#: The longest the worker sleeps while something may be waiting.
SWEEP_SECONDS = 60.0
#: Spool files up to this size are read ahead, all of one attempt in one go.
PRELOAD_MAX_BYTES = 1024 * 1024
#: How long newly queued mail waits to be claimed with what comes next:
#: one claim (and one connection per domain) for a burst, rather than one
#: per message, which kept the database writer busy (see README, Performance).
COALESCE_SECONDS = 0.25
#: The queue gauges are counted at most this often.
GAUGE_SECONDS = 5.0
#: How long a stop waits for the attempts under way.
STOP_GRACE_SECONDS = 10.0


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class DeliveryWorker(Service):
    """See the module docstring."""

    name = "delivery"
    log = Logger()

    def __init__(
        self,
        reactor: Any,
        db: Database,
        queue: DeliveryQueue,
        mailstore: MailStore,
        accounts: AccountService,
        delivery: DomainDelivery,
        config: DeliveryConfig,
        hostname: str,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self._reactor = reactor
        self.db = db
        self.queue = queue
        self.mailstore = mailstore
        self.accounts = accounts
        self.delivery = delivery
        self.config = config
        self.hostname = hostname
        self.metrics = metrics
        self.clock = clock
        self._timer: IDelayedCall | None = None
        #: The claiming loop, while it runs.
        self._dispatching: Deferred[None] | None = None
        self._again = False
        self._recovered = False
        #: One per domain attempt under way (each holds its recipients "sending").
        self._attempts: set[Deferred[bool]] = set()
        self._semaphore = DeferredSemaphore(config.concurrency)
        self._slot_waiters: list[Deferred[None]] = []
        self._gauges_at = float("-inf")

    # -- service -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.wake()

    def stopService(self) -> Deferred[None] | None:
        """
        Stop taking work; wait for the attempts under way, at most
        L{STOP_GRACE_SECONDS}.  What is still "sending" after that (or when
        the process is killed) is retried at the next start.
        """
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.delivery.close()
        busy = [d for d in (self._dispatching, *self._attempts) if d is not None]
        if not busy:
            return None
        done: Deferred[None] = Deferred()

        def finished(_: object) -> None:
            if not done.called:
                done.callback(None)

        def gave_up(failure: Failure) -> None:
            failure.trap(defer.TimeoutError)
            self.log.warn("stopping with deliveries under way; they are retried at the next start")

        waiting = DeferredList([_observe(d) for d in busy], consumeErrors=True)
        waiting.addBoth(finished)
        done.addTimeout(STOP_GRACE_SECONDS, self._reactor)
        done.addErrback(gave_up)
        return done

    def notify(self) -> None:
        """
        Mail was queued: claim soon, after L{COALESCE_SECONDS}, so that
        messages queued together are claimed, and sent, together.
        """
        if not self.running:
            return
        if self._dispatching is not None:
            self._again = True
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._reactor.seconds() + COALESCE_SECONDS:
                return
            self._timer.cancel()
        self._timer = self._reactor.callLater(COALESCE_SECONDS, self.wake)

    def wake(self) -> None:
        """Claim what is due now (or right after the claiming under way)."""
        if not self.running:
            return
        if self._dispatching is not None:
            self._again = True
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._dispatching = Deferred.fromCoroutine(self._dispatch())
        self._dispatching.addErrback(self._failed, "claiming deliveries")
        self._dispatching.addBoth(self._dispatched)

    def _failed(self, failure: Failure, what: str) -> None:
        if not self.running:
            # Stopped under it (the database closed): retried at the next start.
            self.log.info("{what} ended by the stop: {error}", what=what, error=failure.value)
            return
        self.log.failure("{what} failed", failure, what=what)

    def _dispatched(self, _: object) -> None:
        self._dispatching = None
        if self.running:
            Deferred.fromCoroutine(self._schedule()).addErrback(
                self._failed, "scheduling deliveries"
            )

    async def _schedule(self) -> None:
        """Wake again when the next recipient is due, or after L{SWEEP_SECONDS}."""
        if self._again:
            self._again = False
            self.wake()
            return
        due = await self.db.read(queue_store.next_due)
        delay = SWEEP_SECONDS
        if due is not None:
            delay = min(delay, max(0.0, (due - self.clock()).total_seconds()))
        if not self.running or self._dispatching is not None:
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._reactor.seconds() + delay:
                return
            self._timer.cancel()
        self._timer = self._reactor.callLater(delay, self.wake)

    # -- claiming --------------------------------------------------------------

    async def _dispatch(self) -> None:
        """
        Claim due recipients and start one attempt per domain for them,
        without waiting for the attempts: a slow domain never holds up the
        others.  While L{DeliveryConfig.concurrency} attempts run, claiming
        waits for one to end.
        """
        if not self._recovered:
            self._recovered = True
            moved = await self.db.write(lambda s: queue_store.recover_sending(s, self.clock()))
            if moved:
                self.log.info("{n} recipient(s) interrupted by a stop will be retried", n=moved)
        while self.running:
            while len(self._attempts) >= self.config.concurrency:
                slot: Deferred[None] = Deferred()
                self._slot_waiters.append(slot)
                await slot
            claimed = await self.db.write(self._claim)
            by_domain: dict[str, list[Claimed]] = defaultdict(list)
            for item in claimed:
                by_domain[item.domain].append(item)
            for domain, items in by_domain.items():
                self._start_attempt(domain, items)
            if len(claimed) < BATCH:
                break
        if self.running:
            await self._update_gauges()

    def _start_attempt(self, domain: str, items: list[Claimed]) -> None:
        attempt: Deferred[bool] = self._semaphore.run(self._domain, domain, items)
        self._attempts.add(attempt)

        def ended(result: object) -> None:
            self._attempts.discard(attempt)
            waiters, self._slot_waiters = self._slot_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            if isinstance(result, Failure):
                # Its recipients stay "sending" until the next start.
                self._failed(result, f"delivery to {domain}")
            elif result and self.running and self._dispatching is None:
                # Retries it deferred may be due before the timer.
                Deferred.fromCoroutine(self._schedule()).addErrback(
                    self._failed, "scheduling deliveries"
                )

        attempt.addBoth(ended)

    def _claim(self, session: Session) -> list[Claimed]:
        return queue_store.claim_due(session, self.clock(), BATCH)

    async def _domain(self, domain: str, claimed: list[Claimed]) -> bool:
        """One attempt for C{claimed} (all in C{domain}); whether any was deferred."""
        jobs: dict[int, Job] = {}
        for item in claimed:
            job = jobs.get(item.message_id)
            if job is None:
                job = jobs[item.message_id] = Job(
                    item.queue_id, item.sender, {}, item.smtputf8, self._loader(item.queue_id)
                )
            job.recipients[item.recipient_id] = item.address
        # The small messages' files in one trip to a thread, not one each.
        small = [item.queue_id for item in claimed if item.size <= PRELOAD_MAX_BYTES]
        preloaded = await deferToThread(self._read_spool_files, list(dict.fromkeys(small)))
        for job in jobs.values():
            if job.queue_id in preloaded:
                job.load = _ready(preloaded[job.queue_id])
        try:
            await self.delivery.deliver(domain, list(jobs.values()))
        except Exception as e:  # a bug: never leave recipients "sending"
            self.log.failure("delivery to {domain} failed", domain=domain)
            for job in jobs.values():
                for recipient_id in job.recipients:
                    job.verdicts.setdefault(recipient_id, Verdict("transient", str(e), "4.3.0"))
        verdicts = {rid: v for job in jobs.values() for rid, v in job.verdicts.items()}
        return await self._record(claimed, verdicts)

    def _read_spool_files(self, queue_ids: list[str]) -> dict[str, bytes]:
        """The spool files that are there (blocking)."""
        found: dict[str, bytes] = {}
        for queue_id in queue_ids:
            try:
                found[queue_id] = self.queue.path_of(queue_id).read_bytes()
            except OSError:
                continue  # the attempt reports it when it loads the file itself
        return found

    def _loader(self, queue_id: str) -> Callable[[], Deferred[bytes]]:
        path = self.queue.path_of(queue_id)
        return lambda: deferToThread(path.read_bytes)

    async def _record(self, claimed: list[Claimed], verdicts: dict[int, Verdict]) -> bool:
        """Commit the outcomes, report failures; whether any recipient was deferred."""
        now = self.clock()
        outcomes: list[Outcome] = []
        failed: list[tuple[Claimed, Verdict]] = []
        delayed: list[tuple[Claimed, Verdict]] = []
        for item in claimed:
            verdict = verdicts[item.recipient_id]
            state, next_attempt = self._next_state(item, verdict, now)
            outcomes.append(Outcome(item.recipient_id, state, verdict.text, next_attempt))
            if state in ("bounced", "failed"):
                failed.append((item, verdict))
            elif state == "deferred" and self._warn_now(item, now):
                delayed.append((item, verdict))
        message_ids = [item.message_id for item in claimed]
        reports_due = bool(failed or delayed)

        def record(session: Session) -> list[str]:
            queue_store.record(session, outcomes, now)
            if reports_due:
                return []  # removed after the reports, which need the spool file
            return queue_store.delete_messages(session, queue_store.finished(session, message_ids))

        # Attempts ending together (one per domain) share one commit.
        removed = await self.db.write_together(record)
        for item, outcome in zip(claimed, outcomes, strict=True):
            # Logged once committed: a log line never claims more than the queue.
            self.log.info(
                "{queue_id}: to=<{to}> status={state} ({text})",
                queue_id=item.queue_id,
                to=item.address,
                state=outcome.state,
                text=outcome.error,
            )
            if self.metrics is not None:
                self.metrics.outbound.labels(outcome.state).inc()
        if reports_due:
            await self._report(failed, "failed")
            if delayed:
                await self._report(delayed, "delayed")
                ids = [item.recipient_id for item, _ in delayed]
                await self.db.write(lambda s: queue_store.mark_delay_warned(s, ids))
            await self._remove_finished(message_ids)
        else:
            self._unlink(removed)
        return any(outcome.state == "deferred" for outcome in outcomes)

    def _next_state(
        self, item: Claimed, verdict: Verdict, now: datetime.datetime
    ) -> tuple[str, datetime.datetime | None]:
        if verdict.kind == "sent":
            return "sent", None
        if verdict.kind == "permanent":
            return "bounced", None
        age = (now - item.created).total_seconds()
        if age >= self.config.max_lifetime:
            return "failed", None
        interval = min(
            self.config.first_retry * 2 ** min(item.attempts, 30), self.config.max_retry_interval
        )
        return "deferred", now + datetime.timedelta(seconds=interval)

    def _warn_now(self, item: Claimed, now: datetime.datetime) -> bool:
        warning = self.config.delay_warning
        if not warning or item.delay_warned:
            return False
        return (now - item.created).total_seconds() >= warning

    # -- reports -------------------------------------------------------------

    async def _report(self, items: list[tuple[Claimed, Verdict]], action: str) -> None:
        by_message: dict[int, list[tuple[Claimed, Verdict]]] = defaultdict(list)
        for item, verdict in items:
            by_message[item.message_id].append((item, verdict))
        for entries in by_message.values():
            first = entries[0][0]
            if not first.sender or first.user_id is None:
                continue  # no bounce for mail without a local sender
            account = await self.accounts.get_user_by_id(first.user_id)
            if account is None:
                continue
            try:
                original = await self._loader(first.queue_id)()
            except OSError:
                original = b""
            expired = action == "failed" and any(v.kind == "transient" for _, v in entries)
            reports = [
                RecipientReport(
                    item.address,
                    action,
                    "4.4.7" if expired and verdict.kind == "transient" else verdict.status,
                    verdict.text
                    if not (expired and verdict.kind == "transient")
                    else f"delivery time expired; last error: {verdict.text}",
                    verdict.remote_mta,
                )
                for item, verdict in entries
            ]
            retry_until = first.created + datetime.timedelta(seconds=self.config.max_lifetime)
            report = build_report(
                hostname=self.hostname,
                recipient_of_report=first.sender,
                queue_id=first.queue_id,
                arrival=first.created,
                reports=reports,
                original=original,
                now=self.clock(),
                retry_until=retry_until if action == "delayed" else None,
            )
            try:
                await self.mailstore.deliver(account, report, "INBOX", check_quota=False)
            except Exception:
                self.log.failure(
                    "{queue_id}: the delivery report could not be stored", queue_id=first.queue_id
                )

    async def _remove_finished(self, message_ids: list[int]) -> None:
        def remove(session: Any) -> list[str]:
            done = queue_store.finished(session, message_ids)
            return queue_store.delete_messages(session, done)

        self._unlink(await self.db.write(remove))

    def _unlink(self, queue_ids: list[str]) -> None:
        """Remove finished messages' spool files (in a thread; a leftover is harmless)."""
        if not queue_ids:
            return
        paths = [self.queue.path_of(queue_id) for queue_id in queue_ids]

        def unlink_all() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        deferToThread(unlink_all).addErrback(self._failed, "removing spool files")
        for queue_id in queue_ids:
            self.log.debug("{queue_id}: removed (delivery complete)", queue_id=queue_id)

    async def _update_gauges(self) -> None:
        now = self._reactor.seconds()
        if self.metrics is None or now - self._gauges_at < GAUGE_SECONDS:
            return
        self._gauges_at = now
        counts = await self.queue.counts()
        for state, count in counts.items():
            self.metrics.queue_recipients.labels(state).set(count)


def _observe(deferred: Deferred[Any]) -> Deferred[None]:
    """A Deferred that fires when C{deferred} does, leaving its result alone."""
    observer: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        observer.callback(None)
        return result

    deferred.addBoth(fire)
    return observer


async def _ready_bytes(data: bytes) -> bytes:
    return data


def _ready(data: bytes) -> Callable[[], Awaitable[bytes]]:
    """A Job loader for content already read."""
    return lambda: _ready_bytes(data)
