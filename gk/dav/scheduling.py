"""
CalDAV scheduling (RFC 6638, calendar-auto-schedule): the server sends
the iTIP messages (RFC 5546) that a change to a calendar object calls
for, so that clients like Apple Calendar, which leave it to the server,
invite people at all.

L{Scheduler} is called by the DAV HTTP layer after a user's successful
PUT or DELETE of a calendar object (L{Scheduler.after_put},
L{Scheduler.after_delete}) and answers POSTs to the scheduling outbox
(free-busy, L{Scheduler.outbox_post}).  It also reads iMIP mail (RFC
6047) delivered to users' INBOX (L{Scheduler.start}).  Who is who:

  - The I{organizer} is the account one of whose own addresses
    (L{AccountService.may_send_as}: its address, C{+tag} forms, aliases
    leading to it) is the ORGANIZER.  Its change sends a REQUEST to every
    attendee (SCHEDULE-AGENT=SERVER, the default) when something that
    matters changed (L{itip.significant_signature}) or the attendee is new
    or has SCHEDULE-FORCE-SEND=REQUEST, a CANCEL to attendees removed, and
    a CANCEL to all when the event is cancelled or deleted.
  - An I{attendee} is an account one of whose own addresses is an
    ATTENDEE while the ORGANIZER is not its own.  A change of its PARTSTAT
    (or deleting its copy: DECLINED) sends a REPLY to the organizer.
  - Anybody else's PUT is a plain PUT: a user cannot schedule on behalf
    of another local user by writing that user's address as ORGANIZER.

Where messages go: an address that L{AccountService.resolve} routes to
exactly one local account is delivered by CalDAV: the message goes into
that account's scheduling inbox (one resource per UID: a later message
about the same event replaces the earlier one, as a collection holds each
UID once) and its calendar copy is made or updated at once; the organizer
gets REPLYs applied to its copy.  Any other address gets iMIP mail, sent
through the L{DeliveryQueue} (DKIM-signed like submitted mail) or, for an
alias of a local domain that spreads to several mailboxes, stored in them.
The organizer's copy is given the SCHEDULE-STATUS of each delivery (RFC
6638 3.2.9): 1.1 sent by mail, 1.2 delivered, 3.7 no such calendar user,
5.1 delivery failed; so its entity tag changes after the PUT (the PUT's
answer should then carry no ETag, RFC 4791 5.3.4; the client finds the
new version by its next sync).  An invitation never overwrites an
attendee's event of the same UID by another organizer (5.1): knowing a
UID must not let one user rewrite another's event.

iMIP mail is read when the MX files it into a user's INBOX (never Junk):
a REPLY is applied to the user's event when its From is the ATTENDEE who
answers; a REQUEST or CANCEL from an organizer outside gk's domains (From
must be the ORGANIZER) updates the user's copy as a CalDAV one would, and
goes into the scheduling inbox (a new invitation is in the calendar at
once, NEEDS-ACTION, as Google Calendar does; clients that read the inbox
see it there too).  From can be forged: mail for which gk's own
Authentication-Results says dmarc=fail is ignored, but a domain without
DMARC can still be impersonated, at worst to set one attendee's PARTSTAT
or to offer a NEEDS-ACTION invitation.

Limits: attendees are taken over the whole object (one invited to a
single instance gets all of it); COUNTER, REFRESH, ADD and PUBLISH are
not handled; at most L{Scheduler.MAX_RECIPIENTS} attendees are written
to per change, but there is no rate limit per user across changes yet.

Changes the scheduler makes go through the collection services directly,
never through L{Scheduler.after_put}, so they never schedule again.
Parsing happens on the reactor thread (scheduling objects are small; a
PUT without ORGANIZER is recognised without parsing) except for
free-busy and incoming mail, which run in threads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, SubElement

from icalendar import Calendar, vCalAddress
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from gk.accounts import AccountService
from gk.calendars import CalendarService, people
from gk.dav import imip, itip
from gk.dav.calquery import free_busy
from gk.dav.itip import ITipError, SchedulingInfo
from gk.dav.multistatus import serialize, text_element
from gk.dav.schedule_delivery import ScheduleDelivery, ScheduleInboxService, parse_or_none
from gk.dav.xmlbody import CALDAV, DAV
from gk.events import EventBus, MailDelivered, Subscription
from gk.queue import DeliveryQueue
from gk.storage.accounts import Account
from gk.storage.mailstore import MailStore

#: SCHEDULE-STATUS values (RFC 6638 3.2.9, RFC 5546 3.6).
SENT, DELIVERED, INVALID_USER, FAILED = "1.1", "1.2", "3.7", "5.1"


class OutboxError(Exception):
    """
    A POST to the outbox that cannot be answered.

    @ivar status: the HTTP status (400 or 403).
    @ivar precondition: the Clark name of the CalDAV precondition failed
        (RFC 6638 3.2.x), for an C{error_body}.
    """

    def __init__(self, status: int, precondition: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.precondition = f"{{{CALDAV}}}{precondition}"


class Scheduler:
    """See the module docstring."""

    log = Logger()

    #: Most recipients one change writes to (the rest get SCHEDULE-STATUS 5.1):
    #: invitations must not become a way to send bulk mail.
    MAX_RECIPIENTS = 100
    #: Most attendees of one free-busy request (CALDAV:max-recipients beyond).
    MAX_FREEBUSY_ATTENDEES = 50

    def __init__(
        self,
        calendars: CalendarService,
        inbox: ScheduleInboxService,
        accounts: AccountService,
        queue: DeliveryQueue,
        events: EventBus,
        hostname: str,
        mailstore: MailStore,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """
        @param hostname: the server's host name: for Message-IDs, and the
            authserv-id of the MX's Authentication-Results field.
        @param mailstore: reads iMIP mail delivered to users and stores
            invitations for local mailboxes that are not one calendar user.
        @param clock: the current time (DTSTAMP, Date), aware; tests set it.
        """
        self.calendars = calendars
        self.inbox = inbox
        self.accounts = accounts
        self.queue = queue
        self.events = events
        self.hostname = hostname
        self.mailstore = mailstore
        self._clock = clock or (lambda: datetime.now(UTC))
        self._delivery = ScheduleDelivery(calendars, inbox, accounts, queue, mailstore, hostname)
        self._subscription: Subscription | None = None
        self._pending: set[Deferred[None]] = set()

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Read iMIP mail delivered from now on (idempotent)."""
        if self._subscription is None:
            self._subscription = self.events.subscribe(MailDelivered, self._mail_delivered)

    def stop(self) -> None:
        """Stop reading mail; work already started goes on (see L{idle})."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None

    async def idle(self) -> None:
        """Wait until the iMIP mail being read now is done with."""
        while self._pending:
            await DeferredList(list(self._pending), consumeErrors=True)

    # -- after a user's change -------------------------------------------------------

    async def after_put(
        self,
        account: Account,
        collection: str,
        name: str,
        old_data: bytes | None,
        new_data: bytes,
    ) -> None:
        """
        Schedule what a PUT of C{account} to its calendar C{collection}
        changed (see the module docstring).  Call it for calendar
        collections only, after the PUT was stored; C{old_data} is the
        resource's previous body, L{None} when it was created.  Never
        raises: a failure is logged, and the PUT stands.
        """
        if not (_mentions_organizer(new_data) or _mentions_organizer(old_data)):
            return
        try:
            if not await self._involves(account, new_data, old_data):
                return  # someone else's meeting kept in this calendar: nothing to schedule
            await self._after_put(account, collection, name, old_data, new_data)
        except Exception:
            self.log.failure("scheduling after PUT of {name} failed", name=name)

    async def after_delete(
        self, account: Account, collection: str, name: str, old_data: bytes
    ) -> None:
        """
        Schedule the DELETE of a calendar object (not for a MOVE): the
        organizer cancels it for every attendee, an attendee declines it.
        Never raises, as L{after_put}.
        """
        if not _mentions_organizer(old_data):
            return
        try:
            old = await deferToThread(parse_or_none, old_data)
            info = itip.scheduling_info(old) if old is not None else None
            if old is None or info is None or info.cancelled:
                return
            if await self._own(account, info.organizer):
                await self._cancel(account, old, info, list(info.attendees))
            else:
                address = await self._own_attendee(account, info)
                if address is not None and _partstats_differ(old, address, "DECLINED"):
                    declined = itip.parse(old_data)
                    for component in itip.scheduled_components(declined):
                        for prop in itip.calendar_users(component, "ATTENDEE"):
                            if itip.address_of(prop) == address:
                                prop.params["PARTSTAT"] = "DECLINED"
                    await self._reply(account, address, declined, info)
        except Exception:
            self.log.failure("scheduling after DELETE of {name} failed", name=name)

    async def _after_put(
        self,
        account: Account,
        collection: str,
        name: str,
        old_data: bytes | None,
        new_data: bytes,
    ) -> None:
        # Parsing is CPU work: off the reactor thread, both in one trip.
        new, old = await deferToThread(lambda: (parse_or_none(new_data), parse_or_none(old_data)))
        new_info = itip.scheduling_info(new) if new is not None else None
        old_info = itip.scheduling_info(old) if old is not None else None
        if new is None or new_info is None:
            return
        if old_info is not None and old_info.uid != new_info.uid:
            # Another event now lives under this name: the old one is gone.
            assert old_data is not None
            await self.after_delete(account, collection, name, old_data)
            old, old_info = None, None
        if new_info.organizer and await self._own(account, new_info.organizer):
            await self._organize(account, collection, name, old, old_info, new, new_info)
        elif old_info is not None and not new_info.organizer and old is not None:
            # The organizer dropped ORGANIZER (and its attendees): cancel for them.
            if await self._own(account, old_info.organizer) and not old_info.cancelled:
                await self._cancel(account, old, old_info, list(old_info.attendees))
        elif new_info.organizer and new_info.organizer_agent == "SERVER":
            address = await self._own_attendee(account, new_info)
            if address is None or new_info.cancelled:
                return
            before = itip.partstats(old, address) if old is not None else {}
            after = itip.partstats(new, address)
            if old is None and set(after.values()) <= {"NEEDS-ACTION"}:
                return
            if old is not None and before == after:
                return
            await self._reply(account, address, new, new_info)

    # -- organizer -----------------------------------------------------------------------

    async def _organize(
        self,
        account: Account,
        collection: str,
        name: str,
        old: Calendar | None,
        old_info: SchedulingInfo | None,
        new: Calendar,
        new_info: SchedulingInfo,
    ) -> None:
        """The organizer's PUT: REQUESTs, CANCELs, SCHEDULE-STATUS written back."""
        current = _scheduled_attendees(new_info)
        if old_info is not None and old_info.organizer == new_info.organizer:
            before = _scheduled_attendees(old_info)
        else:
            before = []
        if new_info.cancelled:
            if old_info is None or not old_info.cancelled:
                await self._cancel(account, new, new_info, current)
            return
        before_signature = itip.significant_signature(old) if old is not None else None
        significant = before_signature != itip.significant_signature(new)
        requested = [
            address
            for address in current
            if significant
            or address not in before
            or new_info.attendees[address].force_send == "REQUEST"
        ]
        statuses: dict[str, str] = {}
        if requested:
            message = itip.request(new, self._clock())
            update = old is not None
            for count, address in enumerate(requested):
                if count >= self.MAX_RECIPIENTS:
                    statuses[address] = FAILED
                    continue
                status = await self._deliver(account, new_info, message, address, update)
                if status is not None:
                    statuses[address] = status
        removed = [address for address in before if address not in current]
        if removed and old is not None and old_info is not None:
            await self._cancel(account, old, old_info, removed, only_them=True)
        if statuses:
            await self._delivery.write_status(account, collection, name, new_info.uid, statuses)

    async def _cancel(
        self,
        account: Account,
        calendar: Calendar,
        info: SchedulingInfo,
        attendees: list[str],
        only_them: bool = False,
    ) -> None:
        """Send a CANCEL of the organizer's C{calendar} to C{attendees}."""
        wanted = [a for a in _scheduled_attendees(info) if a in attendees]
        if not wanted:
            return
        message = itip.cancel(calendar, self._clock(), wanted if only_them else None)
        for address in wanted[: self.MAX_RECIPIENTS]:
            await self._deliver(account, info, message, address, update=True)

    async def _deliver(
        self,
        account: Account,
        info: SchedulingInfo,
        message: Calendar,
        address: str,
        update: bool,
    ) -> str | None:
        """
        Deliver the organizer's REQUEST or CANCEL to one attendee; its
        SCHEDULE-STATUS, or L{None} when the attendee is the organizer.
        """
        route = await self._delivery.route(address)
        if route is None:
            return INVALID_USER
        if route.account is not None and route.account.id == account.id:
            return None
        method = str(message.get("METHOD"))
        try:
            if route.account is not None:
                if await self._deliver_locally(route.account, address, message, info):
                    return DELIVERED
                return FAILED
            assert route.mail is not None
            sender_name = info.organizer_name or account.email
            subject = imip.subject_for(method, info, update=update)
            text = imip.text_for(method, info, sender_name)
            await self._delivery.send_mail(
                account, info.organizer, sender_name, route.mail, address, message,
                subject, text, self._clock(),
            )  # fmt: skip
            return SENT
        except Exception:
            self.log.failure("{method} to {address} failed", method=method, address=address)
            return FAILED

    async def _deliver_locally(
        self, attendee: Account, address: str, message: Calendar, info: SchedulingInfo
    ) -> bool:
        """A REQUEST or CANCEL to a local attendee: its calendar copy, then its inbox."""
        if not await self._update_attendee_copy(attendee, address, message, info):
            return False
        await self._delivery.to_inbox(attendee, info.uid, itip.serialize(message))
        return True

    async def _update_attendee_copy(
        self, attendee: Account, address: str, message: Calendar, info: SchedulingInfo
    ) -> bool:
        """
        Apply the organizer's REQUEST or CANCEL C{message} to the attendee's
        calendar copy (made for a REQUEST when missing).  A copy of the same
        UID by another organizer is never touched (an organizer must not be
        able to overwrite an event it learnt the UID of): L{False} then.
        """
        method = str(message.get("METHOD"))
        sequence = itip.scheduling_info(message)
        refused = False

        def change(copy: Calendar | None) -> Calendar | None:
            nonlocal refused
            found = itip.scheduling_info(copy) if copy is not None else None
            if copy is not None and (found is None or found.organizer != info.organizer):
                refused = True
                return None
            if found is not None and sequence is not None and sequence.sequence < found.sequence:
                return None  # out of date
            if method == "CANCEL":
                return copy if copy is not None and itip.apply_cancel(copy, message) else None
            return itip.attendee_copy(message, address, copy)

        create = method == "REQUEST"
        await self._delivery.update_copy(attendee, info.uid, info.component, change, create)
        return not refused

    # -- attendee ------------------------------------------------------------------------

    async def _reply(
        self, account: Account, address: str, calendar: Calendar, info: SchedulingInfo
    ) -> None:
        """Send the attendee C{address}'s REPLY from its copy C{calendar} to the organizer."""
        message = itip.reply(calendar, address, self._clock())
        route = await self._delivery.route(info.organizer)
        if route is None:
            return
        if route.account is not None:
            await self._apply_reply(route.account, message, address, info.organizer)
            return
        assert route.mail is not None
        partstat = itip.partstats(calendar, address).get(itip.MASTER) or next(
            iter(itip.partstats(calendar, address).values()), ""
        )
        sender_name = info.attendees[address].name or address
        subject = imip.subject_for("REPLY", info, partstat)
        text = imip.text_for("REPLY", info, sender_name, partstat)
        await self._delivery.send_mail(
            account, address, sender_name, route.mail, info.organizer, message,
            subject, text, self._clock(),
        )  # fmt: skip

    async def _apply_reply(
        self, organizer: Account, message: Calendar, address: str, organizer_address: str
    ) -> bool:
        """
        Apply a REPLY of attendee C{address} to the copy of C{organizer}
        (which must name C{organizer_address} as ORGANIZER and list the
        attendee, and not be newer than the reply); file the REPLY in its
        inbox.  Whether the copy changed.
        """
        info = itip.scheduling_info(message)
        if info is None:
            return False

        def answered(copy: Calendar | None) -> Calendar | None:
            found = itip.scheduling_info(copy) if copy is not None else None
            if copy is None or found is None or found.organizer != organizer_address:
                return None
            if info.sequence < found.sequence:
                return None  # answers an older version
            return copy if itip.apply_reply(copy, message, address) else None

        changed = await self._delivery.update_copy(
            organizer, info.uid, info.component, answered, create=False
        )
        if changed:
            await self._delivery.to_inbox(organizer, info.uid, itip.serialize(message))
        return changed

    # -- iMIP mail coming in ----------------------------------------------------------------

    def _mail_delivered(self, event: MailDelivered) -> None:
        # Junk and folders other programs file into are never read: only
        # what the MX put in the INBOX is taken as an iTIP message.
        if event.folder != "INBOX":
            return
        work: Deferred[None] = Deferred.fromCoroutine(self._receive(event))
        self._pending.add(work)

        def done(result: object) -> None:
            self._pending.discard(work)

        work.addErrback(lambda f: self.log.failure("reading iMIP mail failed", f))
        work.addBoth(done)

    async def _receive(self, event: MailDelivered) -> None:
        account = await self.accounts.get_user_by_id(event.user_id)
        if account is None:
            return
        data = await self.mailstore.read(account, event.folder, event.uid)
        if not imip.might_carry_calendar(data):
            return
        mail = await deferToThread(imip.read_message, data, self.hostname)
        if not mail.sender or mail.dmarc_failed:
            return
        for text in mail.calendars:
            try:
                message = itip.parse(text)
            except ITipError:
                continue
            info = itip.scheduling_info(message)
            if info is None or not info.method:
                continue
            # The text/calendar part and the attachment carry one message: read one.
            await self._received(account, message, info, mail.sender)
            return

    async def _received(
        self, account: Account, message: Calendar, info: SchedulingInfo, sender: str
    ) -> None:
        """One iTIP message that came by mail to C{account} from C{sender} (its From)."""
        if info.method == "REPLY":
            # The one answering must be the one who sent the mail (as far as
            # From can be trusted: DMARC failures were dropped before).
            if sender not in info.attendees or not await self._own(account, info.organizer):
                return
            if await self._apply_reply(account, message, sender, info.organizer):
                self.log.info("iMIP REPLY from {sender} applied", sender=sender)
            return
        if info.method not in ("REQUEST", "CANCEL") or sender != info.organizer:
            return
        route = await self._delivery.route(info.organizer)
        if route is None or route.account is not None or route.mail is None:
            return  # local organizers schedule by CalDAV: a copy, or a forgery
        if route.mail.local_domain:
            return
        address = await self._own_attendee(account, info)
        if address is None:
            # e.g. a forwarded invitation: filed for the client to show
            await self._delivery.to_inbox(account, info.uid, itip.serialize(message))
        elif await self._deliver_locally(account, address, message, info):
            self.log.info("iMIP {method} from {sender} applied", method=info.method, sender=sender)

    # -- free-busy ---------------------------------------------------------------------------

    async def outbox_post(self, account: Account, body: bytes) -> bytes:
        """
        Answer a free-busy request POSTed to C{account}'s outbox (RFC 6638
        5): a C{CALDAV:schedule-response} with, per ATTENDEE, its
        request-status and, for a local user, the VFREEBUSY REPLY from all
        its calendars.  Any user may ask about any local user; outside
        addresses get 5.3, unknown local ones 3.7.

        @raise OutboxError: not a free-busy request (400
            valid-scheduling-message), an ORGANIZER that is not the
            account's (403 organizer-allowed), too many attendees (403
            max-recipients).
        """
        try:
            request = itip.parse_freebusy_request(body)
        except ITipError as e:
            raise OutboxError(400, "valid-scheduling-message", str(e)) from None
        if not await self._own(account, request.organizer):
            raise OutboxError(403, "organizer-allowed", "ORGANIZER is not the user's own address")
        if len(request.attendees) > self.MAX_FREEBUSY_ATTENDEES:
            raise OutboxError(403, "max-recipients", "too many attendees")
        root = Element(f"{{{CALDAV}}}schedule-response")
        for attendee in request.attendees:
            response = SubElement(root, f"{{{CALDAV}}}response")
            recipient = SubElement(response, f"{{{CALDAV}}}recipient")
            recipient.append(text_element(f"{{{DAV}}}href", str(attendee)))
            status, data = await self._free_busy(request, attendee)
            response.append(text_element(f"{{{CALDAV}}}request-status", status))
            if data is not None:
                response.append(text_element(f"{{{CALDAV}}}calendar-data", data.decode()))
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + serialize(root)

    async def _free_busy(
        self, request: itip.FreeBusyRequest, attendee: vCalAddress
    ) -> tuple[str, bytes | None]:
        address = itip.address_of(attendee)
        route = await self._delivery.route(address) if address else None
        if route is None:
            return "3.7;Invalid calendar user", None
        if route.account is None:
            return "5.3;No scheduling support for user", None
        found = await self.calendars.events_between(route.account, request.start, request.end)
        now = self._clock()

        def answer() -> bytes:
            calendars = [c for c in (parse_or_none(o.data) for o in found) if c is not None]
            periods = free_busy(calendars, request.start, request.end)
            return itip.freebusy_reply(request, attendee, periods, now)

        return "2.0;Success", await deferToThread(answer)

    # -- helpers ---------------------------------------------------------------------------

    async def _involves(self, account: Account, *bodies: bytes | None) -> bool:
        """
        Whether the account is the organizer or an attendee of the events
        in C{bodies}, read from their ORGANIZER and ATTENDEE lines without
        parsing them (most calendar objects with attendees are other
        people's meetings, or the account's own: parsing is the cost).
        """
        addresses = {a for body in bodies if body for a in people(body)}
        if account.email in addresses or len(addresses) > 1000:
            return True  # too many to check one by one: let the full path decide
        return bool(await self.accounts.owned_addresses(account, addresses))

    async def _own(self, account: Account, address: str) -> bool:
        """Whether C{address} is one of the account's own (see the module docstring)."""
        return bool(address) and await self.accounts.may_send_as(account, address)

    async def _own_attendee(self, account: Account, info: SchedulingInfo) -> str | None:
        """The account's own address among the attendees, if any (its own address first)."""
        if account.email in info.attendees:
            return account.email
        owned = await self.accounts.owned_addresses(account, info.attendees)
        return next((a for a in info.attendees if a in owned), None)


def _mentions_organizer(data: bytes | None) -> bool:
    """A cheap test before parsing: only objects with an ORGANIZER are scheduled."""
    return data is not None and b"ORGANIZER" in data.upper()


def _scheduled_attendees(info: SchedulingInfo) -> list[str]:
    """The attendees the server schedules for (SCHEDULE-AGENT=SERVER), not the organizer."""
    return [
        address
        for address, attendee in info.attendees.items()
        if address != info.organizer and attendee.agent == "SERVER"
    ]


def _partstats_differ(calendar: Calendar, address: str, partstat: str) -> bool:
    return any(p != partstat for p in itip.partstats(calendar, address).values())


__all__ = ["OutboxError", "ScheduleInboxService", "Scheduler"]
