"""
The event bus: subscribers get the events of their type and, when they
ask, of their user only; a failing subscriber is logged and harms no one;
subscribing and cancelling while an event is being delivered is safe.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import provider

from gk.events import (
    CalendarChanged,
    ChatChanged,
    Event,
    EventBus,
    FlagsChanged,
    MailDelivered,
    Subscription,
)


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """Every log event emitted during the test."""
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observe)


def mail(user_id: int, uid: int = 1) -> MailDelivered:
    return MailDelivered(user_id=user_id, folder="INBOX", uid=uid, subject=f"#{uid}")


def test_subscribers_get_events_of_their_type_and_subclasses() -> None:
    bus = EventBus()
    mails: list[MailDelivered] = []
    flags: list[FlagsChanged] = []
    everything: list[Event] = []
    bus.subscribe(MailDelivered, mails.append)
    bus.subscribe(FlagsChanged, flags.append)
    bus.subscribe(Event, everything.append)

    delivered = mail(1)
    changed = FlagsChanged(user_id=1, folder="INBOX", uids=(1, 2), modseq=7)
    calendar = CalendarChanged(user_id=2, collection="personal", href="/e.ics")
    for event in (delivered, changed, calendar):
        bus.publish(event)

    assert mails == [delivered]
    assert flags == [changed]
    assert everything == [delivered, changed, calendar]


def test_a_subscriber_for_one_user_never_sees_another_users_events() -> None:
    bus = EventBus()
    user1: list[Event] = []
    user2: list[Event] = []
    all_users: list[Event] = []
    bus.subscribe(Event, user1.append, user_id=1)
    bus.subscribe(MailDelivered, user2.append, user_id=2)
    bus.subscribe(Event, all_users.append)

    published = [
        mail(1, 1),
        mail(2, 1),
        ChatChanged(user_id=2, room_id=3, position=4, kind="message.posted"),
        mail(1, 2),
        mail(3, 1),
    ]
    for event in published:
        bus.publish(event)

    assert user1 == [published[0], published[3]]
    assert user2 == [published[1]]
    assert all(e.user_id == 1 for e in user1)
    assert all_users == published


def test_delivery_is_in_subscription_order_and_cancel_stops_it() -> None:
    bus = EventBus()
    order: list[str] = []
    first = bus.subscribe(MailDelivered, lambda e: order.append("first"))
    bus.subscribe(MailDelivered, lambda e: order.append("second"))
    assert bus.subscriber_count() == 2

    bus.publish(mail(1))
    first.cancel()
    first.cancel()  # idempotent
    bus.publish(mail(1))

    assert order == ["first", "second", "second"]
    assert bus.subscriber_count() == 1


def test_a_raising_subscriber_is_logged_and_does_not_stop_the_others(
    logged: list[LogEvent],
) -> None:
    bus = EventBus()
    received: list[str] = []

    def broken(event: MailDelivered) -> None:
        raise ValueError("subscriber bug")

    bus.subscribe(MailDelivered, lambda e: received.append("before"))
    bus.subscribe(MailDelivered, broken)
    bus.subscribe(MailDelivered, lambda e: received.append("after"))

    event = mail(1)
    bus.publish(event)  # does not raise
    bus.publish(event)

    assert received == ["before", "after", "before", "after"]
    failures = [e for e in logged if "log_failure" in e]
    assert len(failures) == 2
    assert all(f["log_failure"].check(ValueError) for f in failures)
    assert failures[0]["event"] == event
    assert failures[0]["log_level"].name == "critical"


def test_subscribing_during_publish_takes_effect_for_the_next_event() -> None:
    bus = EventBus()
    late: list[MailDelivered] = []
    subscriptions: list[Subscription] = []

    def subscribe_another(event: MailDelivered) -> None:
        if not subscriptions:
            subscriptions.append(bus.subscribe(MailDelivered, late.append))

    bus.subscribe(MailDelivered, subscribe_another)
    bus.publish(mail(1, 1))
    assert late == []
    bus.publish(mail(1, 2))
    assert [e.uid for e in late] == [2]


def test_cancelling_during_publish_is_safe_and_immediate() -> None:
    bus = EventBus()
    calls: list[str] = []
    handles: dict[str, Subscription] = {}

    def cancel_self(event: MailDelivered) -> None:
        calls.append("self")
        handles["self"].cancel()

    def cancel_later_one(event: MailDelivered) -> None:
        calls.append("canceller")
        handles["later"].cancel()

    handles["self"] = bus.subscribe(MailDelivered, cancel_self)
    handles["canceller"] = bus.subscribe(MailDelivered, cancel_later_one)
    handles["later"] = bus.subscribe(MailDelivered, lambda e: calls.append("later"))
    bus.subscribe(MailDelivered, lambda e: calls.append("last"))

    bus.publish(mail(1))
    # Once cancel() returns the callback is never called again, not even
    # for the event being delivered right now.
    assert calls == ["self", "canceller", "last"]

    calls.clear()
    bus.publish(mail(1))
    assert calls == ["canceller", "last"]


def test_a_subscriber_may_publish_while_an_event_is_delivered() -> None:
    bus = EventBus()
    seen: list[str] = []

    def on_mail(event: MailDelivered) -> None:
        seen.append(f"mail {event.uid}")
        bus.publish(FlagsChanged(user_id=event.user_id, folder="INBOX", uids=(event.uid,)))

    bus.subscribe(MailDelivered, on_mail)
    bus.subscribe(FlagsChanged, lambda e: seen.append(f"flags {e.uids}"))
    bus.publish(mail(1, 5))
    assert seen == ["mail 5", "flags (5,)"]
