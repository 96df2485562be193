#!/usr/bin/env python3
"""
CalDAV/CardDAV benchmark: a calendar of many events and an address book
of many contacts, filled over HTTP with PUT, then the requests a calendar
or contacts client sends, timed over a real connection.  Prints one JSON
object.

It makes a throw-away instance (HTTP only, on an ephemeral loopback port,
one user), then:

  - PUTs C{--events} (10,000) events into the default calendar: a tenth
    weekly recurring (some with COUNT, UNTIL or an EXDATE, some without
    end), the rest single events (a few all-day) spread over two years
    around now; a tenth with a VTIMEZONE and local times; 1 to 3 KB each
    (organizer, attendees, alarm, a long description).  The first half
    from one client, the second from 8 clients at once, each its own
    process with its own keep-alive connection (so that no client shares
    a GIL with anything busy), all started together;
  - PUTs C{--contacts} (10,000) vCards 3.0 (1 or 2 e-mail addresses,
    phone, organisation) into the default address book, the same way;
  - times, each 5 times (the median is reported, every run is listed):
    a calendar-query over this month (time-range on VEVENT, getetag), the
    same with calendar-data expanded, a calendar-multiget of 500 hrefs,
    PROPFIND Depth 1 on the calendar (getetag, getcontenttype), an initial
    sync-collection (empty token), an incremental one after 5 events were
    changed, and an addressbook-query by e-mail (text-match contains on
    EMAIL).

Every answer is checked against what the script generated (the month's
hrefs and, expanded, its instances; the 500 bodies; every member in the
PROPFIND and in the initial sync; exactly the 5 changed hrefs in the
incremental sync; the contacts at the searched domain), so a server that
answers wrongly cannot look fast.  Each time covers the whole exchange:
request sent, answer read to its last byte.

    .venv/bin/python bench/dav.py
    .venv/bin/python bench/dav.py --events 500 --contacts 500
    .venv/bin/python bench/dav.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test

Issue targets (2-core machine): PUT at least 200/s, the one-month query
under 50 ms, the initial sync under 1 s, the incremental one under 30 ms;
the JSON says which were met.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import queue
import random
import statistics
import sys
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from smtp_ingest import (
    BenchError,
    gk_command,
    postgres_schema,
    process_cpu,
    running_server,
    temporary_directory,
    write_http_config,
)
from sqlalchemy.engine import make_url

DOMAIN = "bench.test"
USER = f"planner@{DOMAIN}"
PASSWORD = "bench password"
CALENDAR = f"/dav/calendars/{USER}/calendar/"
BOOK = f"/dav/addressbooks/{USER}/contacts/"
#: Parallel clients of the second half of the PUTs.
CLIENTS = 8
#: Runs of each timed query (the median is reported).
RUNS = 5
#: Hrefs in the calendar-multiget.
MULTIGET = 500
#: Events changed before the incremental sync.
CHANGED = 5
#: The domain searched for in the addressbook-query (about 1 contact in 30 has it).
SEARCHED_DOMAIN = "northwind.example"
#: Seconds to wait for clients to start, and for one request.
DEADLINE = 120.0

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
R = "{urn:ietf:params:xml:ns:carddav}"
XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'
NS = 'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"'
NS_CARD = 'xmlns:d="DAV:" xmlns:r="urn:ietf:params:xml:ns:carddav"'
XML_TYPE = {"Content-Type": "application/xml; charset=utf-8"}

Kind = Literal["event", "contact"]

# --- generated data ------------------------------------------------------------


def words(text: str) -> tuple[str, ...]:
    """The words of C{text}, for the lists below."""
    return tuple(text.split())


WORDS = words(
    "budget review planning sprint retro design launch customer support quarterly "
    "onboarding training hiring interview roadmap architecture security audit release "
    "marketing sales partner workshop offsite board lunch dentist gym yoga football"
)
FIRST = words(
    "Ada Ben Chloe David Emma Felix Grace Hugo Ines Jonas Klara Lars Mia Noah Olga Paul "
    "Quinn Rosa Sven Tara Umar Vera Walt Xena Yusuf Zoe"
)
LAST = words(
    "Adams Berg Costa Dubois Eriksen Fischer Garcia Hansen Ito Jansen Kowalski Lopez "
    "Meyer Nowak Olsen Petrov Rossi Schmidt Tanaka Ueda Varga Weber Yilmaz Zimmer"
)
DOMAINS = words(
    "acme.example contoso.example globex.example initech.example umbrella.example "
    "hooli.example stark.example wayne.example wonka.example cyberdyne.example "
    "tyrell.example soylent.example massive.example vandelay.example dunder.example "
    "pied.example prestige.example gringotts.example oscorp.example aperture.example "
    "monarch.example nakatomi.example virtucon.example sirius.example gekko.example "
    f"duff.example krusty.example buynlarge.example weyland.example {SEARCHED_DOMAIN}"
)
LOCATIONS = (
    "Room 101",
    "Main conference room",
    "Video call",
    "Cafe Central",
    "Head office, 3rd floor",
    "Client site",
)
SENTENCES = (
    "Please read the attached notes before the meeting.",
    "We will go through the open points from last time.",
    "Bring your laptop: the projector in this room is unreliable.",
    "The agenda is in the shared folder under this week's date.",
    "If you cannot make it, send a short written update instead.",
    "Dial-in details are at the end of this description.",
    "Coffee and something to eat will be there from ten minutes before.",
    "Decisions and action items go into the tracker afterwards.",
)

ZONES: dict[str, str] = {
    "Europe/Berlin": (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
        "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "America/New_York": (
        "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\n"
        "DTSTART:20070311T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\n"
        "DTSTART:20071104T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
}


@dataclass(frozen=True)
class Event:
    """
    A generated event: its resource, body, and what a query should find of
    it.  Instance C{k} starts at C{start + k * period} in local time of
    C{zone} (UTC when L{None}) and lasts C{duration}; C{count} instances
    (L{None}: no end), except those in C{excluded}.
    """

    name: str
    uid: str
    body: bytes
    start: datetime
    zone: str | None
    duration: timedelta
    period: timedelta | None
    count: int | None
    excluded: frozenset[int]

    def instances(self, begin: datetime, end: datetime) -> int:
        """How many instances overlap [begin, end) (RFC 4791 9.9), both in UTC."""
        zone = ZoneInfo(self.zone) if self.zone else UTC
        found = 0
        k = 0
        while self.count is None or k < self.count:
            offset = self.period * k if self.period is not None else timedelta(0)
            local = (self.start + offset).replace(tzinfo=zone)
            first = local.astimezone(UTC)
            last = (local + self.duration).astimezone(UTC)
            if first >= end:
                break
            if k not in self.excluded and first < end and last > begin:
                found += 1
            if self.period is None:
                break
            k += 1
        return found


@dataclass(frozen=True)
class Contact:
    """A generated vCard: its resource, body and e-mail addresses."""

    name: str
    uid: str
    body: bytes
    emails: tuple[str, ...]


def fold(line: str) -> str:
    """An ASCII content line folded at 75 octets (RFC 5545 3.1, RFC 6350 3.2), with CRLF."""
    parts = [line[:75]]
    rest = line[75:]
    while rest:
        parts.append(" " + rest[:74])
        rest = rest[74:]
    return "\r\n".join(parts) + "\r\n"


def stamp(moment: datetime) -> str:
    """A UTC date-time value (C{...Z})."""
    return moment.strftime("%Y%m%dT%H%M%SZ")


def local_stamp(moment: datetime) -> str:
    """A local (or floating) date-time value."""
    return moment.strftime("%Y%m%dT%H%M%S")


def make_uid(rng: random.Random) -> str:
    """A UUID4 from C{rng}: the same in every process for the same seed."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def person(rng: random.Random) -> tuple[str, str]:
    """A name and an address (not at the searched domain)."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(DOMAINS[:-1])
    return f"{first} {last}", f"{first}.{last}@{domain}".lower()


def make_event(n: int, anchor: datetime, revision: int = 0) -> Event:
    """
    Event C{n} (the same for the same C{n} and C{anchor}, in any process);
    C{revision} 1 is the same event with a new summary and SEQUENCE.
    """
    rng = random.Random(f"gk-bench-event-{n}")
    uid = make_uid(rng)
    recurring = n % 10 == 5
    zone_name = rng.choice(sorted(ZONES)) if n % 10 == (n // 10) % 10 else None
    all_day = not recurring and zone_name is None and rng.random() < 0.05
    if recurring:
        day = anchor + timedelta(days=rng.randrange(-400, 60))
    else:
        day = anchor + timedelta(days=rng.randrange(-365, 365))
    if all_day:
        start = day.replace(hour=0, minute=0, tzinfo=None)
        duration = timedelta(days=rng.choice((1, 1, 1, 2, 3)))
    else:
        start = day.replace(hour=rng.randrange(7, 19), minute=rng.choice((0, 15, 30, 45)))
        start = start.replace(tzinfo=None)
        duration = timedelta(minutes=rng.choice((30, 45, 60, 60, 90, 120, 180)))
    period: timedelta | None = None
    count: int | None = 1
    excluded: frozenset[int] = frozenset()
    rule: list[str] = []
    if recurring:
        interval = rng.choice((1, 1, 1, 2))
        period = timedelta(weeks=interval)
        rrule = "RRULE:FREQ=WEEKLY" + (f";INTERVAL={interval}" if interval > 1 else "")
        shape = rng.random()
        if shape < 0.4:
            count = rng.randrange(5, 80)
            rrule += f";COUNT={count}"
        elif shape < 0.7:
            last = rng.randrange(5, 80)
            count = last + 1
            until = (start + period * last).replace(tzinfo=ZoneInfo(zone_name or "UTC"))
            rrule += f";UNTIL={stamp(until.astimezone(UTC) + timedelta(hours=1))}"
        else:
            count = None
        rule.append(rrule)
        if rng.random() < 0.3:
            excluded = frozenset({2})
            skipped = start + period * 2
            rule.append(
                f"EXDATE;TZID={zone_name}:{local_stamp(skipped)}"
                if zone_name
                else f"EXDATE:{local_stamp(skipped)}Z"
            )
    if all_day:
        when = [
            f"DTSTART;VALUE=DATE:{start:%Y%m%d}",
            f"DTEND;VALUE=DATE:{start + duration:%Y%m%d}",
        ]
    elif zone_name:
        when = [
            f"DTSTART;TZID={zone_name}:{local_stamp(start)}",
            f"DTEND;TZID={zone_name}:{local_stamp(start + duration)}",
        ]
    else:
        end_line = (
            f"DURATION:PT{duration.seconds // 60}M"
            if rng.random() < 0.2
            else f"DTEND:{local_stamp(start + duration)}Z"
        )
        when = [f"DTSTART:{local_stamp(start)}Z", end_line]
    summary = " ".join(rng.choice(WORDS) for _ in range(3)).capitalize()
    if revision:
        summary += f" (changed, revision {revision})"
    lines = [
        f"UID:{uid}",
        f"DTSTAMP:{stamp(anchor)}",
        f"CREATED:{stamp(anchor - timedelta(days=400))}",
        f"LAST-MODIFIED:{stamp(anchor - timedelta(days=0 if revision else 30))}",
        f"SEQUENCE:{revision}",
        *when,
        *rule,
        f"SUMMARY:{summary}",
        "LOCATION:" + rng.choice(LOCATIONS).replace(",", "\\,"),
        f"CATEGORIES:{rng.choice(WORDS).upper()},{rng.choice(WORDS).upper()}",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE" if not all_day else "TRANSP:TRANSPARENT",
        "CLASS:PUBLIC",
    ]
    if rng.random() < 0.2:
        # Others' meeting (the user is neither organizer nor attendee): a
        # plain PUT for the scheduler, which still reads it.
        organizer_name, organizer = person(rng)
        lines.append(f"ORGANIZER;CN={organizer_name}:mailto:{organizer}")
        for _ in range(rng.randrange(2, 6)):
            attendee_name, attendee = person(rng)
            lines.append(
                f"ATTENDEE;CN={attendee_name};ROLE=REQ-PARTICIPANT;"
                f"PARTSTAT=ACCEPTED;CUTYPE=INDIVIDUAL:mailto:{attendee}"
            )
    alarm = (
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n"
        if rng.random() < 0.6
        else ""
    )
    head = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gk bench//dav.py//EN\r\nCALSCALE:GREGORIAN\r\n"
        + (ZONES[zone_name] if zone_name else "")
        + "BEGIN:VEVENT\r\n"
        + "".join(fold(line) for line in lines)
    )
    tail = alarm + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    target = rng.randrange(1000, 3000)
    sentences: list[str] = []
    description = "DESCRIPTION:"
    while len(head) + len(fold(description)) + len(tail) < target:
        sentences.append(rng.choice(SENTENCES))
        description = "DESCRIPTION:" + "\\n".join(sentences)
    body = head + fold(description) + tail
    return Event(
        f"{uid}.ics",
        uid,
        body.encode("ascii"),
        start,
        zone_name,
        duration,
        period,
        count,
        excluded,
    )


def make_contact(n: int) -> Contact:
    """Contact C{n} (the same for the same C{n}, in any process)."""
    rng = random.Random(f"gk-bench-contact-{n}")
    uid = make_uid(rng)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(DOMAINS)
    emails = [f"{first}.{last}{n}@{domain}".lower()]
    if rng.random() < 0.5:
        emails.append(f"{first[0]}{last}{rng.randrange(100)}@mail.example".lower())
    org = rng.choice(DOMAINS).split(".")[0].capitalize()
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        "PRODID:-//gk bench//dav.py//EN",
        f"UID:{uid}",
        f"FN:{first} {last}",
        f"N:{last};{first};;;",
        f"ORG:{org};{rng.choice(WORDS).capitalize()}",
        f"TITLE:{rng.choice(WORDS).capitalize()} lead",
        f"EMAIL;TYPE=INTERNET,WORK,PREF:{emails[0]}",
        *(f"EMAIL;TYPE=INTERNET,HOME:{email}" for email in emails[1:]),
        f"TEL;TYPE=WORK,VOICE:+49 30 {rng.randrange(1000000, 9999999)}",
        f"TEL;TYPE=CELL:+49 170 {rng.randrange(1000000, 9999999)}",
        f"ADR;TYPE=WORK:;;{rng.randrange(1, 200)} Main Street;Berlin;;10115;Germany",
        f"NOTE:Met at the {rng.choice(WORDS)} {rng.choice(WORDS)}.",
        "REV:20250101T000000Z",
        "END:VCARD",
    ]
    body = "".join(fold(line) for line in lines)
    return Contact(f"{uid}.vcf", uid, body.encode("ascii"), tuple(emails))


def make_item(kind: Kind, n: int, anchor: datetime) -> tuple[str, bytes]:
    """The path and body of event or contact C{n}."""
    if kind == "event":
        event = make_event(n, anchor)
        return CALENDAR + event.name, event.body
    contact = make_contact(n)
    return BOOK + contact.name, contact.body


# --- the client ----------------------------------------------------------------------


@dataclass
class Reply:
    """An HTTP answer, read to its end."""

    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One keep-alive HTTP connection, signed in as the bench user."""

    def __init__(self, port: int) -> None:
        """Prepare the connection (it opens at the first request)."""
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
        self.authorization = f"Basic {token}"

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        """Send a request and read the whole answer."""
        sent = {"Authorization": self.authorization, **(headers or {})}
        try:
            self.connection.request(method, path, body=body, headers=sent)
            answer = self.connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as e:
            raise BenchError(f"{method} {path} ({len(body)} bytes): {e}") from e
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def put_worker(
    port: int,
    kind: Kind,
    numbers: Sequence[int],
    anchor: datetime,
    barrier: Barrier,
    results: Queue[tuple[int, str | None]],
) -> None:
    """
    A client process: build its items, open a connection (one request to
    sign in), wait for the others at C{barrier}, then PUT them one after
    another; report how many were stored (201 with an ETag) and the first
    error.
    """
    items = [make_item(kind, n, anchor) for n in numbers]
    content_type = "text/calendar" if kind == "event" else "text/vcard"
    headers = {"Content-Type": f"{content_type}; charset=utf-8", "If-None-Match": "*"}
    client = Client(port)
    stored, error = 0, None
    try:
        client.request("PROPFIND", CALENDAR, b"", {"Depth": "0"})
        barrier.wait(timeout=DEADLINE)
        for path, body in items:
            reply = client.request("PUT", path, body, headers)
            if reply.status != 201 or not reply.headers.get("etag"):
                error = f"PUT {path}: {reply.status} {reply.body[:200]!r}"
                break
            stored += 1
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        barrier.abort()
    finally:
        client.close()
        results.put((stored, error))


def put_all(port: int, kind: Kind, numbers: Sequence[int], anchor: datetime, clients: int) -> float:
    """
    PUT items C{numbers} over C{clients} processes started together; the
    rate per second, from the moment all were ready to the last answer.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients + 1)
    results: Queue[tuple[int, str | None]] = context.Queue()
    shares = [numbers[i::clients] for i in range(clients)]
    processes = [
        context.Process(
            target=put_worker,
            args=(port, kind, share, anchor, barrier, results),
            name=f"bench-put-{i}",
        )
        for i, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=DEADLINE)
        start = time.perf_counter()
        outcomes = [results.get(timeout=DEADLINE * 10) for _ in processes]
        elapsed = time.perf_counter() - start
    except (queue.Empty, threading.BrokenBarrierError) as e:
        raise BenchError(f"the PUT clients did not finish: {type(e).__name__}") from None
    finally:
        for process in processes:
            process.join(timeout=DEADLINE)
            if process.is_alive():
                process.kill()
    errors = [error for _, error in outcomes if error]
    if errors:
        raise BenchError(f"PUT failed: {errors[0]}")
    stored = sum(count for count, _ in outcomes)
    if stored != len(numbers):
        raise BenchError(f"{stored} of {len(numbers)} {kind}s stored")
    return len(numbers) / elapsed


# --- the queries ---------------------------------------------------------------------


def multistatus(reply: Reply, what: str) -> ET.Element:
    """The parsed 207 body of C{reply}; an error for anything else."""
    if reply.status != 207:
        raise BenchError(f"{what}: {reply.status} {reply.body[:300]!r}")
    root = ET.fromstring(reply.body)
    if root.tag != f"{D}multistatus":
        raise BenchError(f"{what}: not a multistatus")
    return root


def members(root: ET.Element, collection: str) -> dict[str, ET.Element]:
    """The responses by resource name, without the collection's own (and 404s)."""
    found: dict[str, ET.Element] = {}
    for response in root.iter(f"{D}response"):
        href = unquote(response.findtext(f"{D}href") or "")
        status = response.findtext(f"{D}status") or ""
        if href.rstrip("/") == unquote(collection).rstrip("/") or " 404 " in status:
            continue
        found[href.rsplit("/", 1)[1]] = response
    return found


def prop(response: ET.Element, name: str) -> str | None:
    """The text of a property found (200) in a response."""
    for propstat in response.iter(f"{D}propstat"):
        if " 200 " in (propstat.findtext(f"{D}status") or ""):
            element = propstat.find(f"{D}prop/{name}")
            if element is not None:
                return element.text or ""
    return None


def expect_names(found: dict[str, ET.Element], expected: set[str], what: str) -> None:
    """An error unless the resources found are exactly those expected."""
    if set(found) != expected:
        missing, extra = len(expected - set(found)), len(set(found) - expected)
        raise BenchError(
            f"{what}: {len(found)} hrefs, expected {len(expected)} "
            f"({missing} missing, {extra} unexpected)"
        )


def timed(run: Callable[[], Reply], check: Callable[[Reply], object]) -> tuple[float, list[float]]:
    """C{RUNS} runs of a request, each checked; the median and every time, in ms."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        reply = run()
        times.append(round((time.perf_counter() - start) * 1000, 2))
        check(reply)
    return round(statistics.median(times), 2), times


def month_bounds(anchor: datetime) -> tuple[datetime, datetime]:
    """This month, in UTC: its first day and the next month's."""
    begin = anchor.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (begin + timedelta(days=32)).replace(day=1)
    return begin, end


def calendar_query(begin: datetime, end: datetime, expand: bool) -> bytes:
    """A calendar-query for VEVENTs overlapping [begin, end): getetag, and the data expanded."""
    data = (
        f'<c:calendar-data><c:expand start="{stamp(begin)}" end="{stamp(end)}"/></c:calendar-data>'
        if expand
        else ""
    )
    return (
        f"{XML_HEAD}<c:calendar-query {NS}><d:prop><d:getetag/>{data}</d:prop>"
        '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
        f'<c:time-range start="{stamp(begin)}" end="{stamp(end)}"/>'
        "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
    ).encode()


def sync_body(token: str) -> bytes:
    """A sync-collection (level 1, getetag) from C{token} (C{""}: initial)."""
    return (
        f"{XML_HEAD}<d:sync-collection {NS}><d:sync-token>{token}</d:sync-token>"
        "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
    ).encode()


def measure_queries(
    client: Client, events: list[Event], contacts: list[Contact], anchor: datetime
) -> dict[str, Any]:
    """
    Time each query L{RUNS} times and check every answer against the
    generated C{events} and C{contacts}; changes 5 events on the way (for
    the incremental sync).
    """
    figures: dict[str, Any] = {}
    runs: dict[str, list[float]] = {}
    by_name = {event.name: event for event in events}
    depth1 = {"Depth": "1", **XML_TYPE}
    begin, end = month_bounds(anchor)
    in_month = {e.name: e.instances(begin, end) for e in events}
    month = {name for name, count in in_month.items() if count}
    instances = sum(in_month.values())
    figures["month"] = f"{begin:%Y-%m}"
    figures["month_query_hrefs"] = len(month)
    figures["month_expanded_instances"] = instances

    def check_month(reply: Reply) -> None:
        found = members(multistatus(reply, "calendar-query"), CALENDAR)
        expect_names(found, month, "calendar-query")
        if any(not prop(r, f"{D}getetag") for r in found.values()):
            raise BenchError("calendar-query: a response without getetag")

    query = calendar_query(begin, end, expand=False)
    figures["calendar_query_month_ms"], runs["calendar_query_month"] = timed(
        lambda: client.request("REPORT", CALENDAR, query, depth1), check_month
    )

    def check_expanded(reply: Reply) -> None:
        found = members(multistatus(reply, "calendar-query (expand)"), CALENDAR)
        expect_names(found, month, "calendar-query (expand)")
        for name, response in found.items():
            data = prop(response, f"{C}calendar-data") or ""
            if data.count("BEGIN:VEVENT") != in_month[name] or "RRULE" in data:
                raise BenchError(
                    f"calendar-query (expand): {name} has {data.count('BEGIN:VEVENT')} "
                    f"instances, expected {in_month[name]}"
                )

    expanded = calendar_query(begin, end, expand=True)
    figures["calendar_query_month_expand_ms"], runs["calendar_query_month_expand"] = timed(
        lambda: client.request("REPORT", CALENDAR, expanded, depth1), check_expanded
    )

    picked = random.Random(1).sample(sorted(by_name), min(MULTIGET, len(events)))
    hrefs = "".join(f"<d:href>{CALENDAR}{name}</d:href>" for name in picked)
    multiget = (
        f"{XML_HEAD}<c:calendar-multiget {NS}><d:prop><d:getetag/><c:calendar-data/></d:prop>"
        f"{hrefs}</c:calendar-multiget>"
    ).encode()

    def check_multiget(reply: Reply) -> None:
        found = members(multistatus(reply, "calendar-multiget"), CALENDAR)
        expect_names(found, set(picked), "calendar-multiget")
        for name, response in found.items():
            if f"UID:{by_name[name].uid}" not in (prop(response, f"{C}calendar-data") or ""):
                raise BenchError(f"calendar-multiget: wrong calendar-data for {name}")

    figures["multiget_hrefs"] = len(picked)
    figures["calendar_multiget_ms"], runs["calendar_multiget"] = timed(
        lambda: client.request("REPORT", CALENDAR, multiget, depth1), check_multiget
    )

    propfind = (
        f"{XML_HEAD}<d:propfind {NS}><d:prop><d:getetag/><d:getcontenttype/></d:prop></d:propfind>"
    ).encode()

    def check_propfind(reply: Reply) -> None:
        found = members(multistatus(reply, "PROPFIND"), CALENDAR)
        expect_names(found, set(by_name), "PROPFIND Depth 1")
        for response in found.values():
            if not (prop(response, f"{D}getcontenttype") or "").startswith("text/calendar"):
                raise BenchError("PROPFIND: a member without getcontenttype text/calendar")

    figures["propfind_depth1_ms"], runs["propfind_depth1"] = timed(
        lambda: client.request("PROPFIND", CALENDAR, propfind, depth1), check_propfind
    )

    tokens: list[str] = []

    def check_sync(expected: set[str], what: str) -> Callable[[Reply], None]:
        def check(reply: Reply) -> None:
            root = multistatus(reply, what)
            if " 507 " in "".join(s.text or "" for s in root.iter(f"{D}status")):
                raise BenchError(f"{what}: truncated (507)")
            found = members(root, CALENDAR)
            expect_names(found, expected, what)
            if any(not prop(r, f"{D}getetag") for r in found.values()):
                raise BenchError(f"{what}: a response without getetag")
            token = root.findtext(f"{D}sync-token")
            if not token:
                raise BenchError(f"{what}: no sync-token")
            tokens.append(token)

        return check

    initial = sync_body("")
    sync = {"Depth": "0", **XML_TYPE}
    figures["sync_initial_ms"], runs["sync_initial"] = timed(
        lambda: client.request("REPORT", CALENDAR, initial, sync),
        check_sync(set(by_name), "initial sync-collection"),
    )

    # Change 5 single events (same times, new summary): the next sync lists them only.
    singles = sorted(n for n in range(len(events)) if events[n].period is None)
    changed = random.Random(2).sample(singles, min(CHANGED, len(singles)))
    for n in changed:
        event = make_event(n, anchor, revision=1)
        reply = client.request(
            "PUT", CALENDAR + event.name, event.body, {"Content-Type": "text/calendar"}
        )
        if reply.status != 204:
            raise BenchError(f"changing {event.name}: {reply.status} {reply.body[:200]!r}")
    incremental = sync_body(tokens[-1])
    figures["sync_incremental_ms"], runs["sync_incremental"] = timed(
        lambda: client.request("REPORT", CALENDAR, incremental, sync),
        check_sync({events[n].name for n in changed}, "incremental sync-collection"),
    )
    figures["sync_incremental_hrefs"] = len(changed)

    searched = {c.name for c in contacts if any(SEARCHED_DOMAIN in e for e in c.emails)}
    card_query = (
        f"{XML_HEAD}<r:addressbook-query {NS_CARD}><d:prop><d:getetag/><r:address-data/>"
        '</d:prop><r:filter><r:prop-filter name="EMAIL">'
        f'<r:text-match collation="i;unicode-casemap" match-type="contains">{SEARCHED_DOMAIN}'
        "</r:text-match></r:prop-filter></r:filter></r:addressbook-query>"
    ).encode()

    def check_cards(reply: Reply) -> None:
        found = members(multistatus(reply, "addressbook-query"), BOOK)
        expect_names(found, searched, "addressbook-query")
        for response in found.values():
            if SEARCHED_DOMAIN not in (prop(response, f"{R}address-data") or ""):
                raise BenchError("addressbook-query: address-data without the searched address")

    figures["addressbook_query_hrefs"] = len(searched)
    figures["addressbook_query_email_ms"], runs["addressbook_query_email"] = timed(
        lambda: client.request("REPORT", BOOK, card_query, depth1), check_cards
    )
    figures["runs_ms"] = runs
    return figures


# --- the run -------------------------------------------------------------------------


def write_config(directory: Path, database_url: str | None) -> Path:
    """The throw-away instance's config: HTTP on a free loopback port, nothing else."""
    return write_http_config(directory, database_url, hostname="dav.bench.test", domain=DOMAIN)


def fill(port: int, pid: int, kind: Kind, count: int, anchor: datetime) -> dict[str, float]:
    """PUT C{count} items: the first half from one client, the rest from L{CLIENTS}."""
    half = count // 2
    figures: dict[str, float] = {}
    for label, numbers, clients in (
        ("sequential", range(half), 1),
        ("parallel", range(half, count), CLIENTS),
    ):
        before = process_cpu(pid)
        rate = put_all(port, kind, numbers, anchor, clients)
        after = process_cpu(pid)
        cpu = after[0] + after[1] - before[0] - before[1]
        figures[f"put_{kind}s_{label}_per_second"] = round(rate, 1)
        figures[f"server_cpu_ms_per_{kind}_put_{label}"] = round(1000 * cpu / len(numbers), 2)
    return figures


def measure(port: int, pid: int, events: int, contacts: int) -> dict[str, Any]:
    """Fill the calendar and the address book, time the queries; the figures."""
    anchor = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    generated = [make_event(n, anchor) for n in range(events)]
    cards = [make_contact(n) for n in range(contacts)]
    sizes = [len(e.body) for e in generated]
    figures: dict[str, Any] = {
        "events": events,
        "recurring_events": sum(1 for e in generated if e.period is not None),
        "events_with_timezone": sum(1 for e in generated if e.zone is not None),
        "event_bytes": {"min": min(sizes), "mean": round(statistics.mean(sizes))},
        "contacts": contacts,
        "parallel_clients": CLIENTS,
    }
    figures["event_bytes"]["max"] = max(sizes)
    figures.update(fill(port, pid, "event", events, anchor))
    figures.update(fill(port, pid, "contact", contacts, anchor))
    # Connected after the fill: the server closes connections idle for a
    # minute.  One request first, so that no timed one pays the sign-in.
    client = Client(port)
    client.request("PROPFIND", CALENDAR, b"", {"Depth": "0"})
    figures.update(measure_queries(client, generated, cards, anchor))
    client.close()
    figures["server_rss_mb"] = rss_mb(pid)
    put_rates = [
        figures["put_events_sequential_per_second"],
        figures["put_events_parallel_per_second"],
    ]
    figures["targets_met"] = {
        "put_events_per_second >= 200 (both)": min(put_rates) >= 200,
        "calendar_query_month_ms < 50": figures["calendar_query_month_ms"] < 50,
        "sync_initial_ms < 1000": figures["sync_initial_ms"] < 1000,
        "sync_incremental_ms < 30": figures["sync_incremental_ms"] < 30,
    }
    return figures


def rss_mb(pid: int) -> float:
    """The server's resident memory (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on a throw-away instance; print JSON; the exit status."""
    parser = argparse.ArgumentParser(description="Time gk's CalDAV/CardDAV server.")
    parser.add_argument("--events", type=int, default=10_000, help="events (10000)")
    parser.add_argument("--contacts", type=int, default=10_000, help="contacts (10000)")
    parser.add_argument("--database-url", help="as for smtp_ingest.py; default SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the instance's files")
    args = parser.parse_args(argv)
    if not 2 * CLIENTS <= args.events <= 1_000_000:
        parser.error(f"--events must be between {2 * CLIENTS} and 1000000")
    if not 2 * CLIENTS <= args.contacts <= 1_000_000:
        parser.error(f"--contacts must be between {2 * CLIENTS} and 1000000")
    try:
        with contextlib.ExitStack() as stack:
            url = args.database_url
            database = "sqlite"
            if url and make_url(url).get_backend_name() == "postgresql":
                url = stack.enter_context(postgres_schema(url))
                database = "postgresql"
            directory = stack.enter_context(temporary_directory("gk-dav-bench-", args.keep))
            config = write_config(directory, url)
            gk_command(config, "init", "--domain", DOMAIN, "--hostname", "dav.bench.test")
            gk_command(config, "user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
            port, process = stack.enter_context(running_server(config, "http"))
            figures = {
                "database": database,
                **measure(port, process.pid, args.events, args.contacts),
            }
            print(json.dumps(figures, indent=2))
        return 0
    except (BenchError, OSError, http.client.HTTPException, ET.ParseError) as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
        where = f" (at {frames[-1].name}, line {frames[-1].lineno})" if frames else ""
        print(f"bench: error: {e}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
