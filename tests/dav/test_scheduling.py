"""
Implicit scheduling (L{gk.dav.scheduling.Scheduler}) through a real
GkApp and database, called as the DAV layer calls it: after each PUT or
DELETE stored through C{app.calendars}.  Nothing leaves the machine: the
delivery worker is off, and iMIP mail is read back from the queue's
spool.
"""

from __future__ import annotations

import email
import email.policy
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_twisted
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import provider

from gk.app import GkApp
from gk.config import Config, load_config
from gk.dav import itip
from gk.dav.scheduling import OutboxError, ScheduleInboxService, Scheduler
from gk.events import CalendarChanged, Event
from gk.storage import dav_store
from gk.storage.accounts import Account
from gk.storage.models import QueuedMessage, QueuedRecipient
from tests.conftest import ConfigWriter

PASSWORD = "correct horse battery"
NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
CALDAV = "urn:ietf:params:xml:ns:caldav"


@pytest.fixture
def config(write_config: ConfigWriter, database_url: str) -> Config:
    path = write_config("[delivery]\nworker = false\n", database_url=database_url)
    return load_config(path, environ={})


@dataclass
class World:
    app: GkApp
    scheduler: Scheduler
    inbox: ScheduleInboxService
    alice: Account
    bob: Account

    async def put(
        self, account: Account, name: str, data: bytes, collection: str = "calendar"
    ) -> None:
        """A PUT as the DAV layer makes it: store, then tell the scheduler."""
        old = await self.stored(account, name, collection)
        await self.app.calendars.put(account, collection, name, data)
        new = await self.stored(account, name, collection)
        assert new is not None
        await self.scheduler.after_put(account, collection, name, old, new)

    async def delete(self, account: Account, name: str) -> None:
        old = await self.stored(account, name)
        assert old is not None
        await self.app.calendars.delete(account, "calendar", name)
        await self.scheduler.after_delete(account, "calendar", name, old)

    async def stored(
        self, account: Account, name: str, collection: str = "calendar"
    ) -> bytes | None:
        try:
            return (await self.app.calendars.get(account, collection, name)).data
        except dav_store.NoSuchObject:
            return None

    async def copy_of(self, account: Account, uid: str = "lunch-1") -> tuple[str, Calendar]:
        """The account's calendar copy of event C{uid}: its name and content."""
        found = await self.app.db.read(lambda s: dav_store.find_by_uid_for_user(s, account.id, uid))
        assert len(found) == 1, found
        collection, name = found[0]
        stored = await self.app.calendars.get(account, collection, name)
        return name, itip.parse(stored.data)

    async def inbox_messages(self, account: Account) -> list[Calendar]:
        return [itip.parse(o.data) for o in await self.inbox.all_objects(account, "inbox")]

    async def queued(self) -> list[tuple[str, list[str], email.message.EmailMessage]]:
        """Every queued message: envelope sender, recipients, parsed mail."""

        def rows(session: Session) -> list[tuple[str, str, list[str]]]:
            result = []
            for message in session.scalars(select(QueuedMessage).order_by(QueuedMessage.id)):
                recipients = session.scalars(
                    select(QueuedRecipient.address).where(QueuedRecipient.message_id == message.id)
                )
                result.append((message.queue_id, message.sender, list(recipients)))
            return result

        found = []
        for queue_id, sender, recipients in await self.app.db.read(rows):
            data = self.app.queue.path_of(queue_id).read_bytes()
            parsed = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            found.append((sender, recipients, parsed))
        return found


@pytest_twisted.async_yield_fixture
async def world(app: GkApp) -> AsyncIterator[World]:
    """Alice and Bob, and a started scheduler; fails the test if it logged a failure."""
    failures: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", PASSWORD)
    inbox = ScheduleInboxService(app.db, app.events)
    scheduler = Scheduler(
        app.calendars,
        inbox,
        app.accounts,
        app.queue,
        app.events,
        app.config.server.hostname,
        app.mailstore,
        clock=lambda: NOW,
    )
    scheduler.start()
    try:
        yield World(app, scheduler, inbox, alice, bob)
    finally:
        scheduler.stop()
        await scheduler.idle()
        globalLogPublisher.removeObserver(observe)
    assert not failures, [formatEvent(e) + str(e["log_failure"].value) for e in failures]


def lunch(
    attendees: tuple[str, ...] = ("bob@example.test", "carol@example.org"),
    *,
    start: str = "20240603T120000",
    organizer: str = "alice@example.test",
    uid: str = "lunch-1",
    extra: str = "",
) -> bytes:
    lines = "".join(f"ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:{a}\n" for a in attendees)
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\n"
        f"UID:{uid}\nDTSTAMP:20240501T080000Z\nDTSTART:{start}Z\nDURATION:PT1H\n"
        f"SUMMARY:Lunch\nORGANIZER;CN=Alice:mailto:{organizer}\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{organizer}\n{lines}{extra}"
        "END:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


def with_partstat(calendar: Calendar, address: str, partstat: str) -> bytes:
    for component in itip.scheduled_components(calendar):
        for prop in itip.calendar_users(component, "ATTENDEE"):
            if itip.address_of(prop) == address:
                prop.params["PARTSTAT"] = partstat
    return itip.serialize(calendar)


def params_of(calendar: Calendar, address: str) -> dict[str, str]:
    component = itip.scheduled_components(calendar)[0]
    for prop in itip.calendar_users(component, "ATTENDEE"):
        if itip.address_of(prop) == address:
            return {str(k): str(v) for k, v in prop.params.items()}
    raise AssertionError(f"{address} is no attendee")


def calendar_part(mail: email.message.EmailMessage) -> tuple[str, Calendar]:
    """The method parameter and content of the text/calendar part."""
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    assert isinstance(part, email.message.EmailMessage)
    return str(part.get_param("method")), itip.parse(part.get_content())


def imip_mail(sender: str, calendar: bytes, method: str, extra_headers: bytes = b"") -> bytes:
    return (
        extra_headers
        + f"From: <{sender}>\r\nTo: x@example.test\r\nSubject: about lunch\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: text/calendar; method={method}; charset="utf-8"\r\n'
        "\r\n".encode()
        + calendar
    )


def carols_reply(partstat: str = "ACCEPTED", sender: str = "carol@example.org") -> bytes:
    return imip_mail(
        sender,
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other//EN\r\nMETHOD:REPLY\r\n"
            "BEGIN:VEVENT\r\nUID:lunch-1\r\nDTSTAMP:20240501T100000Z\r\n"
            "ORGANIZER:mailto:alice@example.test\r\n"
            f"ATTENDEE;PARTSTAT={partstat}:mailto:carol@example.org\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode(),
        "REPLY",
    )


@pytest_twisted.ensureDeferred
async def test_invite_reply_by_caldav_and_by_mail_then_cancel(world: World) -> None:
    app, alice, bob = world.app, world.alice, world.bob
    changes: list[Event] = []
    app.events.subscribe(CalendarChanged, changes.append, user_id=alice.id)

    # Alice invites Bob (a gk user) and Carol (outside).
    await world.put(alice, "lunch.ics", lunch())
    [request] = await world.inbox_messages(bob)
    assert request["METHOD"] == "REQUEST"
    _, copy = await world.copy_of(bob)
    assert "METHOD" not in copy
    assert params_of(copy, "bob@example.test")["PARTSTAT"] == "NEEDS-ACTION"
    [(sender, recipients, mail)] = await world.queued()
    assert (sender, recipients) == ("alice@example.test", ["carol@example.org"])
    assert mail["To"] == "carol@example.org"
    assert mail["From"].addresses[0].addr_spec == "alice@example.test"
    assert mail["Subject"] == "Invitation: Lunch @ Mon 3 Jun 2024 12:00 (UTC)"
    assert [p.get_content_type() for p in mail.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/calendar",
        "application/ics",
    ]
    method, invitation = calendar_part(mail)
    assert method == "REQUEST" and invitation["METHOD"] == "REQUEST"
    organizer_copy = itip.parse(await world.stored(alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "bob@example.test")["SCHEDULE-STATUS"] == "1.2"
    assert params_of(organizer_copy, "carol@example.org")["SCHEDULE-STATUS"] == "1.1"
    assert "SCHEDULE-STATUS" not in params_of(organizer_copy, "alice@example.test")
    assert "SCHEDULE-STATUS" not in params_of(invitation, "carol@example.org")

    # Bob accepts in his client.
    name, copy = await world.copy_of(bob)
    await world.put(bob, name, with_partstat(copy, "bob@example.test", "ACCEPTED"))
    organizer_copy = itip.parse(await world.stored(alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "bob@example.test")["PARTSTAT"] == "ACCEPTED"
    assert [m["METHOD"] for m in await world.inbox_messages(alice)] == ["REPLY"]
    assert len(await world.queued()) == 1  # a local answer sends no mail

    # Carol's answer arrives by mail.
    changes.clear()
    await app.mailstore.deliver(alice, carols_reply())
    await world.scheduler.idle()
    organizer_copy = itip.parse(await world.stored(alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "carol@example.org")["PARTSTAT"] == "ACCEPTED"
    assert any(
        isinstance(e, CalendarChanged) and e.href == "lunch.ics" and e.collection == "calendar"
        for e in changes
    )

    # Alice calls it off.
    await world.delete(alice, "lunch.ics")
    _, copy = await world.copy_of(bob)
    assert str(itip.scheduled_components(copy)[0]["STATUS"]) == "CANCELLED"
    assert params_of(copy, "bob@example.test")["PARTSTAT"] == "ACCEPTED"
    assert [m["METHOD"] for m in await world.inbox_messages(bob)] == ["CANCEL"]
    queued = await world.queued()
    assert len(queued) == 2
    sender, recipients, mail = queued[1]
    assert (sender, recipients) == ("alice@example.test", ["carol@example.org"])
    assert mail["Subject"].startswith("Cancelled: Lunch @ ")
    method, cancel = calendar_part(mail)
    assert method == "CANCEL"
    assert str(itip.scheduled_components(cancel)[0]["STATUS"]) == "CANCELLED"


@pytest_twisted.ensureDeferred
async def test_changes_that_matter_are_sent_again_and_reset_answers_when_moved(
    world: World,
) -> None:
    alice, bob = world.alice, world.bob
    await world.put(alice, "lunch.ics", lunch())
    name, copy = await world.copy_of(bob)
    await world.put(bob, name, with_partstat(copy, "bob@example.test", "ACCEPTED"))
    assert len(await world.queued()) == 1

    # The organizer's client re-sends what the server wrote back: nothing to tell.
    await world.put(alice, "lunch.ics", await world.stored(alice, "lunch.ics") or b"")
    assert len(await world.queued()) == 1

    # A new description keeps Bob's answer; a new time asks him again.
    await world.put(alice, "lunch.ics", lunch(extra="DESCRIPTION:bring cake\n"))
    assert len(await world.queued()) == 2
    _, copy = await world.copy_of(bob)
    assert params_of(copy, "bob@example.test")["PARTSTAT"] == "ACCEPTED"
    assert str(itip.scheduled_components(copy)[0]["DESCRIPTION"]) == "bring cake"
    await world.put(alice, "lunch.ics", lunch(start="20240603T130000"))
    _, copy = await world.copy_of(bob)
    assert params_of(copy, "bob@example.test")["PARTSTAT"] == "NEEDS-ACTION"
    assert itip.scheduled_components(copy)[0].decoded("DTSTART") == datetime(
        2024, 6, 3, 13, tzinfo=UTC
    )
    queued = await world.queued()
    assert queued[-1][2]["Subject"].startswith("Updated invitation: Lunch @ ")

    # Carol is dropped: she alone gets a CANCEL naming only her.
    await world.put(alice, "lunch.ics", lunch(("bob@example.test",), start="20240603T130000"))
    _, recipients, mail = (await world.queued())[-1]
    assert recipients == ["carol@example.org"]
    method, cancel = calendar_part(mail)
    assert method == "CANCEL"
    component = itip.scheduled_components(cancel)[0]
    assert [itip.address_of(p) for p in itip.calendar_users(component, "ATTENDEE")] == [
        "carol@example.org"
    ]


@pytest_twisted.ensureDeferred
async def test_unknown_local_attendee_and_schedule_agent_client(world: World) -> None:
    await world.put(
        world.alice,
        "lunch.ics",
        lunch(
            ("nobody@example.test",),
            extra="ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:dave@example.org\n",
        ),
    )
    organizer_copy = itip.parse(await world.stored(world.alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "nobody@example.test")["SCHEDULE-STATUS"] == "3.7"
    assert "SCHEDULE-STATUS" not in params_of(organizer_copy, "dave@example.org")
    assert await world.queued() == []


@pytest_twisted.ensureDeferred
async def test_an_alias_is_the_users_address_both_ways(world: World) -> None:
    app, alice, bob = world.app, world.alice, world.bob
    await app.accounts.add_alias("robert@example.test", "bob@example.test")
    await world.put(alice, "lunch.ics", lunch(("robert@example.test",)))
    name, copy = await world.copy_of(bob)
    assert params_of(copy, "robert@example.test")["PARTSTAT"] == "NEEDS-ACTION"
    await world.put(bob, name, with_partstat(copy, "robert@example.test", "TENTATIVE"))
    organizer_copy = itip.parse(await world.stored(alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "robert@example.test")["PARTSTAT"] == "TENTATIVE"


@pytest_twisted.ensureDeferred
async def test_an_attendee_deleting_its_copy_declines(world: World) -> None:
    await world.put(world.alice, "lunch.ics", lunch(("bob@example.test",)))
    name, _ = await world.copy_of(world.bob)
    await world.delete(world.bob, name)
    organizer_copy = itip.parse(await world.stored(world.alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "bob@example.test")["PARTSTAT"] == "DECLINED"


@pytest_twisted.ensureDeferred
async def test_nobody_schedules_for_another_local_user(world: World) -> None:
    alice, bob = world.alice, world.bob
    # Bob writes Alice in as the organizer of an event he is no attendee of:
    # a plain PUT, nobody is invited in her name.
    await world.put(bob, "forged.ics", lunch(("carol@example.org",), uid="forged"))
    assert await world.queued() == []
    assert await world.inbox_messages(alice) == []
    # Nor can he answer for an event he was not invited to.
    await world.put(alice, "lunch.ics", lunch(("carol@example.org",)))
    before = await world.stored(alice, "lunch.ics")
    crafted = lunch(("bob@example.test",)).replace(b"NEEDS-ACTION", b"ACCEPTED")
    await world.put(bob, "crafted.ics", crafted)
    assert await world.stored(alice, "lunch.ics") == before
    assert await world.inbox_messages(alice) == []


@pytest_twisted.ensureDeferred
async def test_an_invitation_never_overwrites_another_organizers_event(world: World) -> None:
    alice, bob = world.alice, world.bob
    # Bob organizes an event with Alice; she learns its UID from her copy ...
    await world.put(bob, "bobs.ics", lunch(("alice@example.test",), organizer="bob@example.test"))
    before = await world.stored(bob, "bobs.ics")
    # ... and invites Bob to an event of hers with that UID.
    await world.app.calendars.create_collection(alice, "work", displayname="Work")
    await world.put(alice, "mine.ics", lunch(("bob@example.test",)), "work")
    assert await world.stored(bob, "bobs.ics") == before
    mine = itip.parse(await world.stored(alice, "mine.ics", "work") or b"")
    assert params_of(mine, "bob@example.test")["SCHEDULE-STATUS"] == "5.1"
    assert [m["METHOD"] for m in await world.inbox_messages(bob)] == []


@pytest_twisted.ensureDeferred
async def test_mail_replies_must_come_from_the_attendee(world: World) -> None:
    app, alice = world.app, world.alice
    await world.put(alice, "lunch.ics", lunch())
    failed = b"Authentication-Results: mail.example.test; dmarc=fail header.from=example.org\r\n"
    await app.mailstore.deliver(alice, carols_reply(sender="eve@evil.example"))
    await app.mailstore.deliver(alice, imip_mail("carol@example.org", b"", "REPLY", failed))
    forged = failed + carols_reply()
    await app.mailstore.deliver(alice, forged)
    await app.mailstore.deliver(alice, carols_reply(), "Junk")
    await world.scheduler.idle()
    organizer_copy = itip.parse(await world.stored(alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "carol@example.org")["PARTSTAT"] == "NEEDS-ACTION"
    await app.mailstore.deliver(alice, carols_reply("DECLINED"))
    await world.scheduler.idle()
    organizer_copy = itip.parse(await world.stored(alice, "lunch.ics") or b"")
    assert params_of(organizer_copy, "carol@example.org")["PARTSTAT"] == "DECLINED"


@pytest_twisted.ensureDeferred
async def test_an_invitation_by_mail_lands_in_the_calendar_and_is_answered_by_mail(
    world: World,
) -> None:
    app, bob = world.app, world.bob
    outside = lunch(("bob@example.test",), organizer="dave@example.org", uid="outside-1")
    request = outside.replace(
        b"PRODID:-//test//EN\r\n", b"PRODID:-//test//EN\r\nMETHOD:REQUEST\r\n"
    )
    await app.mailstore.deliver(bob, imip_mail("dave@example.org", request, "REQUEST"))
    await world.scheduler.idle()
    assert [m["METHOD"] for m in await world.inbox_messages(bob)] == ["REQUEST"]
    name, copy = await world.copy_of(bob, "outside-1")
    assert params_of(copy, "bob@example.test")["PARTSTAT"] == "NEEDS-ACTION"

    await world.put(bob, name, with_partstat(copy, "bob@example.test", "ACCEPTED"))
    [(sender, recipients, mail)] = await world.queued()
    assert (sender, recipients) == ("bob@example.test", ["dave@example.org"])
    assert mail["Subject"] == "Accepted: Lunch @ Mon 3 Jun 2024 12:00 (UTC)"
    method, reply = calendar_part(mail)
    assert method == "REPLY"
    component = itip.scheduled_components(reply)[0]
    assert [str(p) for p in itip.calendar_users(component, "ATTENDEE")] == [
        "mailto:bob@example.test"
    ]
    assert params_of(reply, "bob@example.test")["PARTSTAT"] == "ACCEPTED"

    # Dave cancels by mail.
    cancel = request.replace(b"METHOD:REQUEST", b"METHOD:CANCEL").replace(
        b"SUMMARY:Lunch", b"SUMMARY:Lunch\r\nSTATUS:CANCELLED\r\nSEQUENCE:1"
    )
    await app.mailstore.deliver(bob, imip_mail("dave@example.org", cancel, "CANCEL"))
    await world.scheduler.idle()
    _, copy = await world.copy_of(bob, "outside-1")
    assert str(itip.scheduled_components(copy)[0]["STATUS"]) == "CANCELLED"


@pytest_twisted.ensureDeferred
async def test_outbox_free_busy(world: World) -> None:
    alice, bob = world.alice, world.bob
    busy = lunch((), organizer="bob@example.test", uid="bobs-meeting", start="20240603T100000")
    await world.app.calendars.put(bob, "calendar", "meeting.ics", busy)
    body = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
        b"UID:fb-1\r\nDTSTAMP:20240501T000000Z\r\nDTSTART:20240603T000000Z\r\n"
        b"DTEND:20240604T000000Z\r\nORGANIZER:mailto:alice@example.test\r\n"
        b"ATTENDEE:mailto:bob@example.test\r\nATTENDEE:mailto:nobody@example.test\r\n"
        b"ATTENDEE:mailto:carol@example.org\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    )
    answer = await world.scheduler.outbox_post(alice, body)
    root = ET.fromstring(answer)
    assert root.tag == f"{{{CALDAV}}}schedule-response"
    href = f"{{{CALDAV}}}recipient/{{DAV:}}href"
    responses = {r.findtext(href): r for r in root}
    assert list(responses) == [
        "mailto:bob@example.test",
        "mailto:nobody@example.test",
        "mailto:carol@example.org",
    ]
    statuses = [r.findtext(f"{{{CALDAV}}}request-status") for r in responses.values()]
    assert statuses == [
        "2.0;Success",
        "3.7;Invalid calendar user",
        "5.3;No scheduling support for user",
    ]
    data = responses["mailto:bob@example.test"].findtext(f"{{{CALDAV}}}calendar-data")
    assert data is not None
    reply = itip.parse(data.encode())
    assert reply["METHOD"] == "REPLY"
    freebusy = reply.walk("VFREEBUSY")[0]
    assert freebusy["FREEBUSY"].to_ical() == b"20240603T100000Z/20240603T110000Z"
    assert responses["mailto:nobody@example.test"].find(f"{{{CALDAV}}}calendar-data") is None

    with pytest.raises(OutboxError) as refused:
        await world.scheduler.outbox_post(bob, body)
    assert (refused.value.status, refused.value.precondition) == (
        403,
        f"{{{CALDAV}}}organizer-allowed",
    )
    with pytest.raises(OutboxError) as bad:
        await world.scheduler.outbox_post(alice, b"not a calendar")
    assert bad.value.status == 400
