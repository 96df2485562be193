"""
iTIP messages (L{gk.dav.itip}) and their iMIP mail (L{gk.dav.imip}):
pure building, reading and applying, without a server.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from gk.dav import imip, itip
from gk.dav.itip import ITipError

NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def event(
    *,
    uid: str = "lunch-1",
    start: str = "20240603T120000",
    end: str = "20240603T130000",
    summary: str = "Lunch",
    attendees: str = (
        "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.test\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.1:mailto:carol@example.org\n"
    ),
    extra: str = "",
    components: str = "",
) -> bytes:
    """An organizer's copy by alice@example.test, as a client PUTs it."""
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
        "BEGIN:VEVENT\n"
        f"UID:{uid}\nDTSTAMP:20240501T080000Z\n"
        f"DTSTART;TZID=Europe/Berlin:{start}\nDTEND;TZID=Europe/Berlin:{end}\n"
        f"SUMMARY:{summary}\n"
        "ORGANIZER;CN=Alice:mailto:alice@example.test\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.test\n"
        f"{attendees}{extra}"
        "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:soon\nTRIGGER:-PT10M\nEND:VALARM\n"
        "END:VEVENT\n"
        f"{components}"
        "END:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


def attendee_lines(calendar: Calendar) -> dict[str, dict[str, str]]:
    """Every ATTENDEE of the first component: address -> parameters."""
    component = itip.scheduled_components(calendar)[0]
    return {
        itip.address_of(p): {str(k): str(v) for k, v in p.params.items()}
        for p in itip.calendar_users(component, "ATTENDEE")
    }


# -- reading ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mailto:Bob@Example.TEST", "bob@example.test"),
        ("MAILTO: bob@example.test", "bob@example.test"),
        ("urn:uuid:1234", ""),
        ("mailto:nobody", ""),
        ("mailto:a b@example.test", ""),
    ],
)
def test_address_of(value: str, expected: str) -> None:
    assert itip.address_of(value) == expected


def test_scheduling_info_of_an_organizers_copy() -> None:
    info = itip.scheduling_info(itip.parse(event(extra="LOCATION:Canteen\nSEQUENCE:2\n")))
    assert info is not None
    assert (info.uid, info.component, info.method) == ("lunch-1", "VEVENT", "")
    assert (info.organizer, info.organizer_name, info.organizer_agent) == (
        "alice@example.test",
        "Alice",
        "SERVER",
    )
    assert list(info.attendees) == ["alice@example.test", "bob@example.test", "carol@example.org"]
    assert info.attendees["bob@example.test"].name == "Bob"
    assert (info.sequence, info.summary, info.location) == (2, "Lunch", "Canteen")
    assert info.start == datetime(2024, 6, 3, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    assert not info.cancelled


def test_no_scheduling_info_without_an_event_or_task() -> None:
    journal = b"BEGIN:VCALENDAR\r\nBEGIN:VJOURNAL\r\nUID:j\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n"
    assert itip.scheduling_info(itip.parse(journal)) is None
    with pytest.raises(ITipError):
        itip.parse(b"\xff\xfe not iCalendar")
    with pytest.raises(ITipError):
        itip.parse(b"BEGIN:VCARD\r\nEND:VCARD\r\n")


def test_significant_changes_ignore_what_attendees_need_not_hear_about() -> None:
    base = itip.significant_signature(itip.parse(event()))
    # Replies applied, delivery statuses, time stamps, alarms, X- properties,
    # and the order properties come in do not matter ...
    same = event(
        attendees=(
            "ATTENDEE;PARTSTAT=ACCEPTED;CN=Bob;SCHEDULE-STATUS=1.2:mailto:bob@example.test\n"
            "ATTENDEE;PARTSTAT=DECLINED:mailto:carol@example.org\n"
        ),
        extra="X-MOZ-GENERATION:4\nLAST-MODIFIED:20240502T000000Z\n",
    ).replace(b"DTSTAMP:20240501T080000Z", b"DTSTAMP:20240509T080000Z")
    assert itip.significant_signature(itip.parse(same)) == base
    # ... what the event is does.
    assert itip.significant_signature(itip.parse(event(summary="Dinner"))) != base
    assert itip.significant_signature(itip.parse(event(start="20240603T121500"))) != base


def test_time_signature() -> None:
    base = itip.time_signature(itip.parse(event()))
    assert itip.time_signature(itip.parse(event(summary="Dinner"))) == base
    assert itip.time_signature(itip.parse(event(end="20240603T140000"))) != base
    assert itip.time_signature(itip.parse(event(extra="RRULE:FREQ=WEEKLY\n"))) != base


# -- building ------------------------------------------------------------------------


def test_request_is_a_clean_copy_with_method() -> None:
    organizer_copy = itip.parse(event())
    before = organizer_copy.to_ical()
    message = itip.request(organizer_copy, NOW)
    assert organizer_copy.to_ical() == before  # the argument is left alone
    assert message["METHOD"] == "REQUEST"
    component = itip.scheduled_components(message)[0]
    assert component.subcomponents == []  # the organizer's alarm stays home
    assert component.decoded("DTSTAMP") == NOW
    lines = attendee_lines(message)
    assert "SCHEDULE-STATUS" not in lines["carol@example.org"]
    assert lines["bob@example.test"]["RSVP"] == "TRUE"
    # Still valid iCalendar after a round trip.
    assert itip.scheduling_info(itip.parse(itip.serialize(message))) is not None


def test_cancel_for_everyone_or_for_some() -> None:
    organizer_copy = itip.parse(event(extra="SEQUENCE:3\n"))
    message = itip.cancel(organizer_copy, NOW)
    component = itip.scheduled_components(message)[0]
    assert message["METHOD"] == "CANCEL"
    assert (component["STATUS"], component["SEQUENCE"]) == ("CANCELLED", 4)
    assert len(attendee_lines(message)) == 3
    only_carol = itip.cancel(organizer_copy, NOW, ["carol@example.org"])
    assert list(attendee_lines(only_carol)) == ["carol@example.org"]


def test_reply_carries_only_the_attendees_own_line() -> None:
    copy = itip.parse(
        event(attendees="ATTENDEE;PARTSTAT=ACCEPTED;CN=Bob:mailto:bob@example.test\n")
    )
    message = itip.reply(copy, "bob@example.test", NOW)
    assert message["METHOD"] == "REPLY"
    component = itip.scheduled_components(message)[0]
    assert str(component["UID"]) == "lunch-1"
    assert itip.address_of(component["ORGANIZER"]) == "alice@example.test"
    assert attendee_lines(message) == {"bob@example.test": {"PARTSTAT": "ACCEPTED", "CN": "Bob"}}
    assert message.walk("VTIMEZONE") == copy.walk("VTIMEZONE")
    assert itip.reply(copy, "dave@example.test", NOW).subcomponents == []


def test_attendee_copy_needs_action_then_keeps_the_answer_unless_the_time_moves() -> None:
    message = itip.request(itip.parse(event()), NOW)
    first = itip.attendee_copy(message, "bob@example.test", None)
    assert "METHOD" not in first
    assert attendee_lines(first)["bob@example.test"]["PARTSTAT"] == "NEEDS-ACTION"
    # Bob accepts and adds an alarm of his own.
    accepted = itip.parse(itip.serialize(first))
    component = itip.scheduled_components(accepted)[0]
    for prop in itip.calendar_users(component, "ATTENDEE"):
        if itip.address_of(prop) == "bob@example.test":
            prop.params["PARTSTAT"] = "ACCEPTED"
    alarm = itip.parse(event()).walk("VALARM")[0]
    component.add_component(alarm)
    # A new title keeps his answer and his alarm ...
    renamed = itip.request(itip.parse(event(summary="Long lunch")), NOW)
    kept = itip.attendee_copy(renamed, "bob@example.test", accepted)
    assert attendee_lines(kept)["bob@example.test"]["PARTSTAT"] == "ACCEPTED"
    assert str(itip.scheduled_components(kept)[0]["SUMMARY"]) == "Long lunch"
    assert len(kept.walk("VALARM")) == 1
    # ... a new time asks him again.
    moved = itip.request(itip.parse(event(start="20240603T110000")), NOW)
    again = itip.attendee_copy(moved, "bob@example.test", accepted)
    assert attendee_lines(again)["bob@example.test"]["PARTSTAT"] == "NEEDS-ACTION"


def test_set_schedule_status() -> None:
    calendar = itip.parse(event(extra="ATTENDEE;SCHEDULE-FORCE-SEND=REQUEST:mailto:d@x.example\n"))
    statuses = {"bob@example.test": "1.2", "d@x.example": "1.1"}
    assert itip.set_schedule_status(calendar, statuses)
    lines = attendee_lines(calendar)
    assert lines["bob@example.test"]["SCHEDULE-STATUS"] == "1.2"
    assert lines["d@x.example"] == {"SCHEDULE-STATUS": "1.1"}
    assert lines["carol@example.org"]["SCHEDULE-STATUS"] == "1.1"  # untouched
    assert not itip.set_schedule_status(calendar, statuses)


# -- applying --------------------------------------------------------------------------


def reply_from(address: str, partstat: str, extra: str = "", sequence: int = 0) -> Calendar:
    return itip.parse(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nMETHOD:REPLY\nBEGIN:VEVENT\n"
        f"UID:lunch-1\nDTSTAMP:20240501T100000Z\nSEQUENCE:{sequence}\n{extra}"
        "ORGANIZER:mailto:alice@example.test\n"
        f"ATTENDEE;PARTSTAT={partstat}:mailto:{address}\n"
        "END:VEVENT\nEND:VCALENDAR\n"
    )


def test_apply_reply_updates_the_attendee_only() -> None:
    calendar = itip.parse(event())
    assert itip.apply_reply(
        calendar, reply_from("carol@example.org", "ACCEPTED"), "carol@example.org"
    )
    lines = attendee_lines(calendar)
    assert lines["carol@example.org"]["PARTSTAT"] == "ACCEPTED"
    assert lines["bob@example.test"]["PARTSTAT"] == "NEEDS-ACTION"
    # The same answer again changes nothing; an uninvited guest is not added.
    assert not itip.apply_reply(
        calendar, reply_from("carol@example.org", "ACCEPTED"), "carol@example.org"
    )
    assert not itip.apply_reply(
        calendar, reply_from("eve@evil.example", "ACCEPTED"), "eve@evil.example"
    )
    assert "eve@evil.example" not in attendee_lines(calendar)


def test_apply_reply_about_one_instance_makes_an_override() -> None:
    calendar = itip.parse(event(extra="RRULE:FREQ=WEEKLY;COUNT=4\n"))
    answer = reply_from(
        "bob@example.test", "DECLINED", "RECURRENCE-ID;TZID=Europe/Berlin:20240610T120000\n"
    )
    assert itip.apply_reply(calendar, answer, "bob@example.test")
    _master, override = itip.scheduled_components(calendar)
    assert "RRULE" not in override and override.subcomponents == []
    berlin = ZoneInfo("Europe/Berlin")
    assert override.decoded("RECURRENCE-ID") == datetime(2024, 6, 10, 12, tzinfo=berlin)
    assert override.decoded("DTSTART") == datetime(2024, 6, 10, 12, tzinfo=berlin)
    assert override.decoded("DTEND") == datetime(2024, 6, 10, 13, tzinfo=berlin)
    assert itip.partstats(calendar, "bob@example.test") == {
        itip.MASTER: "NEEDS-ACTION",
        "20240610T100000Z": "DECLINED",
    }


def test_apply_cancel() -> None:
    calendar = itip.parse(event(extra="RRULE:FREQ=DAILY;COUNT=3\n"))
    one = itip.parse(
        itip.serialize(itip.cancel(calendar, NOW)).replace(
            b"SEQUENCE:1", b"SEQUENCE:1\r\nRECURRENCE-ID;VALUE=DATE-TIME:20240604T100000Z"
        )
    )
    assert itip.apply_cancel(calendar, one)
    master, override = itip.scheduled_components(calendar)
    assert "STATUS" not in master
    assert (override["STATUS"], override["SEQUENCE"]) == ("CANCELLED", 1)
    assert itip.apply_cancel(calendar, itip.cancel(calendar, NOW))
    assert all(c["STATUS"] == "CANCELLED" for c in itip.scheduled_components(calendar))
    assert not itip.apply_cancel(calendar, itip.cancel(calendar, NOW))


# -- free-busy ----------------------------------------------------------------------------

FREEBUSY_REQUEST = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
    b"UID:fb-1\r\nDTSTAMP:20240501T000000Z\r\nDTSTART:20240603T000000Z\r\n"
    b"DTEND:20240604T000000Z\r\nORGANIZER:mailto:alice@example.test\r\n"
    b"ATTENDEE:mailto:bob@example.test\r\nATTENDEE:mailto:nobody@example.test\r\n"
    b"END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
)


def test_freebusy_request_and_reply() -> None:
    request = itip.parse_freebusy_request(FREEBUSY_REQUEST)
    assert (request.uid, request.organizer) == ("fb-1", "alice@example.test")
    assert [itip.address_of(a) for a in request.attendees] == [
        "bob@example.test",
        "nobody@example.test",
    ]
    assert (request.start, request.end) == (
        datetime(2024, 6, 3, tzinfo=UTC),
        datetime(2024, 6, 4, tzinfo=UTC),
    )
    busy = [(datetime(2024, 6, 3, 10, tzinfo=UTC), datetime(2024, 6, 3, 11, tzinfo=UTC), "BUSY")]
    reply = itip.parse(itip.freebusy_reply(request, request.attendees[0], busy, NOW))
    assert reply["METHOD"] == "REPLY"
    component = reply.walk("VFREEBUSY")[0]
    assert itip.address_of(component["ATTENDEE"]) == "bob@example.test"
    assert str(component["UID"]) == "fb-1"
    assert component["FREEBUSY"].to_ical() == b"20240603T100000Z/20240603T110000Z"
    assert component["FREEBUSY"].params["FBTYPE"] == "BUSY"


@pytest.mark.parametrize(
    ("change", "replacement"),
    [
        (b"METHOD:REQUEST", b"METHOD:PUBLISH"),
        (b"ORGANIZER:mailto:alice@example.test\r\n", b""),
        (b"ATTENDEE:mailto:bob@example.test\r\nATTENDEE:mailto:nobody@example.test\r\n", b""),
        (b"DTEND:20240604T000000Z", b"DTEND:20240602T000000Z"),
        (b"DTSTART:20240603T000000Z\r\n", b""),
        (b"VFREEBUSY", b"VEVENT"),
    ],
)
def test_bad_freebusy_requests(change: bytes, replacement: bytes) -> None:
    with pytest.raises(ITipError):
        itip.parse_freebusy_request(FREEBUSY_REQUEST.replace(change, replacement))


def test_describe_start() -> None:
    berlin = datetime(2024, 6, 3, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    assert imip.describe_start(berlin) == "Mon 3 Jun 2024 12:00 (Europe/Berlin)"
    assert imip.describe_start(date(2024, 6, 3)) == "Mon 3 Jun 2024"
    assert imip.describe_start(datetime(2024, 6, 3, 12)) == "Mon 3 Jun 2024 12:00"
    assert imip.describe_start(None) == ""


# -- iMIP ----------------------------------------------------------------------------------


def test_imip_mail_structure_and_reading_it_back() -> None:
    message = itip.request(itip.parse(event(summary="Lunch über\\, gut")), NOW)
    info = itip.scheduling_info(message)
    assert info is not None
    subject = imip.subject_for("REQUEST", info)
    assert subject == "Invitation: Lunch über, gut @ Mon 3 Jun 2024 12:00 (Europe/Berlin)"
    data = imip.build_message(
        method="REQUEST",
        calendar=itip.serialize(message),
        sender="alice@example.test",
        sender_name="Alice",
        recipients=["carol@example.org"],
        subject=subject,
        text=imip.text_for("REQUEST", info, "Alice"),
        hostname="mail.example.test",
        now=NOW,
    )
    assert max(data) < 128  # 7-bit all through
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == subject
    assert parsed["From"].addresses[0].addr_spec == "alice@example.test"
    assert parsed["Message-ID"].endswith("@mail.example.test>")
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/calendar",
        "application/ics",
    ]
    calendar_part = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    text_part = next(p for p in parsed.walk() if p.get_content_type() == "text/plain")
    assert "Alice has invited you to:" in text_part.get_content()

    received = imip.read_message(data, "mail.example.test")
    assert imip.might_carry_calendar(data)
    assert received.sender == "alice@example.test"
    assert not received.dmarc_failed
    assert len(received.calendars) == 2  # the alternative and the attachment
    again = itip.parse(received.calendars[0])
    assert again["METHOD"] == "REQUEST"
    assert str(itip.scheduled_components(again)[0]["SUMMARY"]) == "Lunch über, gut"


def test_a_header_summary_cannot_add_fields() -> None:
    info = itip.scheduling_info(itip.parse(event(summary="Hi\\nBcc: x@evil.example")))
    assert info is not None
    subject = imip.subject_for("CANCEL", info)
    assert "\n" not in subject and subject.startswith("Cancelled: Hi Bcc")


def test_reading_mail_with_our_dmarc_verdict() -> None:
    body = (
        b"From: Carol <Carol@Example.org>\r\nSubject: x\r\n"
        b'Content-Type: text/calendar; method=REPLY; charset="utf-8"\r\n\r\n'
        + bytes(itip.serialize(reply_from("carol@example.org", "ACCEPTED")))
    )
    ours = b"Authentication-Results: mail.example.test; spf=pass; dmarc=fail header.from=x\r\n"
    theirs = b"Authentication-Results: other.example; dmarc=fail\r\n"
    passed = b"Authentication-Results: mail.example.test;\r\n dkim=pass; dmarc=pass\r\n"
    assert imip.read_message(ours + body, "mail.example.test").dmarc_failed
    assert not imip.read_message(theirs + body, "mail.example.test").dmarc_failed
    assert not imip.read_message(passed + body, "mail.example.test").dmarc_failed
    received = imip.read_message(body, "mail.example.test")
    assert received.sender == "carol@example.org"
    assert itip.parse(received.calendars[0])["METHOD"] == "REPLY"
    two_senders = body.replace(b"Carol <Carol@Example.org>", b"a@x.example, b@y.example")
    assert imip.read_message(two_senders, "mail.example.test").sender == ""
    assert not imip.might_carry_calendar(b"Subject: hi\r\n\r\nno calendar here\r\n")
