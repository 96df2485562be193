"""
Calendar events as the assistant's tools name and show them.

An event is named by an I{event id}, C{<calendar>/<resource name>}: the
calendar collection and the name of the calendar object resource in it,
the same for every occurrence of a recurring event and stable across
changes (a CalDAV client's PUT to the same URL keeps it).  An id is only
ever looked up among the calling user's own calendars, so another user's
id answers exactly as an id that names nothing.

L{expand_instances} turns stored calendar objects into the occurrences
that overlap a time range, with the recurrence expansion, its guards and
the time-range rule of CalDAV (L{gk.dav.calexpand}); L{describe_instance}
makes one occurrence the JSON the tools return.  Times are shown in the
user's zone; an all-day occurrence is shown as dates, its C{end} the
last day (inclusive), as people say it.  Text from the event (summary,
location, description, names) is data: it goes in fields, never into
sentences.  No I/O (L{expand_instances} parses, or finds what it
parsed before in L{gk.parsecache}: run it in a thread).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from icalendar import Calendar, Component

from gk import parsecache
from gk.assistant.arguments import rfc3339
from gk.assistant.tools import JSON, ToolError
from gk.dav import itip
from gk.dav.calexpand import (
    Instance,
    TimeRange,
    component_span,
    instance_in_range,
    is_recurring,
    rules_of,
    split_series,
    standard,
    to_utc,
)
from gk.dav.calrules import Value
from gk.dav.report_common import LRU

#: Longest description returned (the rest is cut, and said to be).
MAX_DESCRIPTION = 2000

_ID_FORM = "an event_id is '<calendar>/<name>' exactly as list_events or create_event gave it"


@dataclass(frozen=True)
class EventRef:
    """Where an event lives among the user's calendars."""

    calendar: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.calendar}/{self.name}"


def event_ref(text: str) -> EventRef:
    """
    The L{EventRef} an event id names (not looked up).

    @raise ToolError: not of the form C{<calendar>/<name>}.
    """
    calendar, slash, name = text.strip().partition("/")
    if not slash or not calendar or not name or "/" in name:
        raise ToolError(f"invalid event_id {text!r}: {_ID_FORM}")
    return EventRef(calendar, name)


@dataclass(frozen=True)
class Source:
    """One stored calendar object to expand, and the zone of its floating times."""

    ref: EventRef
    data: bytes
    zone: datetime.tzinfo


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event in a range: what L{describe_instance} needs."""

    ref: EventRef
    instance: Instance
    #: The master of its recurrence set (None for an orphan override).
    master: Component | None
    recurring: bool
    zone: datetime.tzinfo
    #: What it shows whatever the occurrence, when already worked out.
    shown: Shown | None = None


def parse_calendar(data: bytes) -> Calendar | None:
    """A stored object parsed, in RFC 5545 time zones; None if it no longer parses."""
    try:
        return standard(itip.parse(data))
    except itip.ITipError:
        return None


def event_components(calendar: Calendar) -> list[Component]:
    """The VEVENTs of a calendar object (one recurrence set for a stored one)."""
    return [c for c in calendar.subcomponents if c.name == "VEVENT"]


def expand_instances(
    sources: Iterable[Source], start: datetime.datetime, end: datetime.datetime
) -> list[Occurrence]:
    """
    Every occurrence of the VEVENTs of C{sources} that overlaps [C{start},
    C{end}) by RFC 4791 9.9, sorted by start then event id.  Blocking.

    The parsed objects and the months of recurring ones already expanded
    come from L{gk.parsecache} (keyed by the bytes, never stale): their
    components are shared, and only read here and by L{describe_instance}.
    """
    time_range = TimeRange(start, end)
    found: list[Occurrence] = []
    for source in sources:
        parsed = parsecache.parsed_events(source.data)
        if parsed is None:
            continue
        key, events = parsed
        expanded = parsecache.instances_between(key, events, start, end, source.zone)
        shown: tuple[tuple[Shown, ...], ...] | None = None
        for index, (series, instances) in enumerate(expanded):
            for instance in instances:
                if not instance_in_range(instance, time_range):
                    continue
                if shown is None:
                    shown = _shown_of_object(key, events)
                of_series = shown[index]
                # by identity: the instance's component is one of the series'
                position = next(
                    (i for i, c in enumerate(series.components) if c is instance.component), None
                )
                found.append(
                    Occurrence(
                        source.ref, instance, series.master, series.recurring, source.zone,
                        of_series[position] if position is not None else None,
                    )
                )  # fmt: skip
    found.sort(key=lambda o: (o.instance.start, o.ref.id))
    return found


#: L{Shown} of each component of each series of a parsed object, by the
#: object's key in L{gk.parsecache} (a hash of its bytes: never stale).
_shown_cache: LRU[str, tuple[tuple[Shown, ...], ...]] = LRU(
    20_000, 8 * 1024 * 1024, lambda shown: sum(s.weight for series in shown for s in series)
)


def _shown_of_object(key: str, events: parsecache.ParsedEvents) -> tuple[tuple[Shown, ...], ...]:
    found = _shown_cache.get(key)
    if found is None:
        found = tuple(
            tuple(shown_of(component, series.master) for component in series.components)
            for series in events.series
        )
        _shown_cache.put(key, found)
    return found


# -- showing ------------------------------------------------------------------------


def show_value(value: Value, zone: datetime.tzinfo, floating: datetime.tzinfo) -> str:
    """A DATE as YYYY-MM-DD; a DATE-TIME as RFC 3339 in C{zone} (floating read in C{floating})."""
    if not isinstance(value, datetime.datetime):
        return value.isoformat()
    aware = value if value.tzinfo is not None else value.replace(tzinfo=floating)
    return rfc3339(aware.astimezone(zone))


def last_day(start: datetime.date, end: datetime.date) -> datetime.date:
    """The last day of an all-day span whose DTEND (exclusive) is C{end}."""
    return max(start, end - datetime.timedelta(days=1))


def text_of(component: Component, name: str) -> str:
    """The first value of a text property, "" when absent."""
    value: Any = component.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else ""


def _response(prop: Any) -> str:
    return str(getattr(prop, "params", {}).get("PARTSTAT", "NEEDS-ACTION")).strip().lower()


@dataclass(frozen=True)
class Shown:
    """
    What L{describe_instance} shows of one component whatever the
    occurrence and the reader (see L{shown_of}).
    """

    summary: str
    location: str
    #: Cut at L{MAX_DESCRIPTION}.
    description: str
    description_truncated: bool
    status: str | None
    #: The master's first RRULE as written.
    recurrence: str | None
    #: (address, CN) of the organizer.
    organizer: tuple[str, str] | None
    #: (address, CN, response) of each attendee with an address.
    attendees: tuple[tuple[str, str, str], ...]

    @property
    def weight(self) -> int:
        """Approximate bytes held."""
        texts = (self.summary, self.location, self.description, self.recurrence or "")
        return 400 + sum(len(t) for t in texts) + 200 * len(self.attendees)


def shown_of(component: Component, master: Component | None) -> Shown:
    """What L{describe_instance} shows of C{component} of the set whose master is C{master}."""
    description = text_of(component, "DESCRIPTION")
    rules = rules_of(master) if master is not None else []
    organizer = itip.calendar_users(component, "ORGANIZER")
    organizer_address = itip.address_of(organizer[0]) if organizer else ""
    attendees = []
    for prop in itip.calendar_users(component, "ATTENDEE"):
        address = itip.address_of(prop)
        if address:
            attendees.append((address, str(prop.params.get("CN", "")), _response(prop)))
    return Shown(
        summary=text_of(component, "SUMMARY"),
        location=text_of(component, "LOCATION"),
        description=description[:MAX_DESCRIPTION],
        description_truncated=len(description) > MAX_DESCRIPTION,
        status=text_of(component, "STATUS").lower() or None,
        recurrence=rules[0].to_ical().decode() if rules else None,
        organizer=(
            (organizer_address, str(organizer[0].params.get("CN", "")))
            if organizer_address
            else None
        ),
        attendees=tuple(attendees),
    )


def people_of(shown: Shown, me: Sequence[str]) -> JSON:
    """
    The organizer, the attendees with their responses, and the user's own
    response (C{me}: the user's addresses) of one component as L{shown_of}
    found them.
    """
    organizer = shown.organizer
    return {
        "organizer": {"email": organizer[0], "name": organizer[1]} if organizer else None,
        "attendees": [
            {"email": address, "name": name, "response": response}
            for address, name, response in shown.attendees
        ],
        "my_response": next(
            (response for address, _, response in shown.attendees if address in me), None
        ),
    }


def describe_instance(occurrence: Occurrence, zone: datetime.tzinfo, me: Sequence[str]) -> JSON:
    """One occurrence as the calendar tools return it (see L{EVENT_SCHEMA})."""
    instance = occurrence.instance
    shown = occurrence.shown or shown_of(instance.component, occurrence.master)
    all_day = not isinstance(instance.dtstart, datetime.datetime)
    if all_day:
        first = instance.dtstart
        after = instance.dtend
        start = first.isoformat()
        end_day = after.date() if isinstance(after, datetime.datetime) else after
        end = last_day(first, end_day).isoformat()
    else:
        start = rfc3339(instance.start.astimezone(zone))
        end = rfc3339(instance.end.astimezone(zone))
    occurrence_id = None
    if occurrence.recurring and instance.recurrence_id is not None:
        occurrence_id = show_value(instance.recurrence_id, zone, occurrence.zone)
    return {
        "event_id": occurrence.ref.id,
        "calendar": occurrence.ref.calendar,
        "summary": shown.summary,
        "start": start,
        "end": end,
        "all_day": all_day,
        "location": shown.location,
        "description": shown.description,
        "description_truncated": shown.description_truncated,
        "status": shown.status,
        "recurring": occurrence.recurring,
        "recurrence": shown.recurrence,
        "occurrence": occurrence_id,
        **people_of(shown, me),
    }


def describe_object(
    ref: EventRef, calendar: Calendar, zone: datetime.tzinfo, floating: datetime.tzinfo,
    me: Sequence[str],
) -> JSON:  # fmt: skip
    """
    A whole event as L{describe_instance} shows an occurrence: the times
    its master (or first component) is written with, C{occurrence} None.

    @raise ToolError: the object holds no event with a time.
    """
    components = event_components(calendar)
    master, _ = split_series(components)
    first = master if master is not None else (components[0] if components else None)
    span = component_span(first) if first is not None else None
    if first is None or span is None:
        raise ToolError(f"{ref.id} is not an event")
    instance = Instance(
        to_utc(span[0], floating), to_utc(span[1], floating), span[0], span[1], first, None
    )
    occurrence = Occurrence(ref, instance, master, is_recurring(components), floating)
    return describe_instance(occurrence, zone, me)


#: The JSON Schema of one event as L{describe_instance} shows it.
EVENT_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "event_id": {"type": "string"},
        "calendar": {"type": "string"},
        "summary": {"type": "string"},
        "start": {"type": "string"},
        "end": {"type": "string"},
        "all_day": {"type": "boolean"},
        "location": {"type": "string"},
        "description": {"type": "string"},
        "description_truncated": {"type": "boolean"},
        "status": {"type": ["string", "null"]},
        "recurring": {"type": "boolean"},
        "recurrence": {"type": ["string", "null"]},
        "occurrence": {"type": ["string", "null"]},
        "organizer": {
            "type": ["object", "null"],
            "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
        },
        "attendees": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "email": {"type": "string"},
                    "name": {"type": "string"},
                    "response": {"type": "string"},
                },
            },
        },
        "my_response": {"type": ["string", "null"]},
    },
    "required": ["event_id", "calendar", "summary", "start", "end", "all_day"],
}
