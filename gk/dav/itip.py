"""
iTIP (RFC 5546) messages as CalDAV scheduling (RFC 6638) needs them: read
what a calendar object says about who organizes it and who attends, build
the REQUEST, CANCEL and REPLY messages a change calls for, and apply a
REPLY or CANCEL to the copy it concerns.  Free-busy requests of the
scheduling outbox are parsed and answered here too.

Calendar users are written C{mailto:} addresses; everything here names
them by the bare address, lower-case (L{address_of}); other kinds of
calendar user address (C{urn:uuid:}, C{http:}) are not scheduled.

A scheduling object is one VCALENDAR with the VEVENTs or VTODOs of one
UID (a master and overridden instances); its instances are told apart by
L{instance_key}.  Attendees are taken over the whole object (the union of
every component's ATTENDEEs): an attendee invited to one instance only
gets the whole object.

Functions that build messages never change their argument; the C{apply_*}
and L{set_schedule_status} functions change the calendar they are given
and say whether they did.  Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar, Component, Event, FreeBusy, Todo, vCalAddress, vDDDLists

from gk.dav.calexpand import to_utc, value_of
from gk.dav.calrules import Value

#: Component types that are scheduled.
SCHEDULED = ("VEVENT", "VTODO")
#: PRODID of the messages gk writes.
PRODID = "-//gk//CalDAV scheduling//EN"
#: Parameters that concern the server only, never sent in a message (RFC 6638 3.2.8).
SCHEDULING_PARAMS = ("SCHEDULE-STATUS", "SCHEDULE-AGENT", "SCHEDULE-FORCE-SEND")
#: Properties whose change is not worth a new REQUEST to the attendees.
_NOT_SIGNIFICANT = frozenset({"DTSTAMP", "LAST-MODIFIED", "CREATED", "TRANSP"})
#: ATTENDEE/ORGANIZER parameters left out when comparing versions.
_VOLATILE_PARAMS = frozenset({"PARTSTAT", "RSVP", *SCHEDULING_PARAMS})
#: Properties that place an instance in time.
_TIME_PROPERTIES = ("DTSTART", "DTEND", "DURATION", "DUE", "RRULE", "RDATE", "EXDATE")
#: Properties a REPLY carries besides ORGANIZER, ATTENDEE, UID and DTSTAMP.
_REPLY_PROPERTIES = ("RECURRENCE-ID", "SEQUENCE", "DTSTART", "DTEND", "DURATION", "DUE", "SUMMARY")
#: The instance key of the master (or of a component that does not recur).
MASTER = ""


class ITipError(ValueError):
    """A body that is not a usable iCalendar scheduling message or object."""


@dataclass(frozen=True)
class Attendee:
    """One ATTENDEE as far as scheduling cares (from its first appearance)."""

    address: str
    partstat: str = "NEEDS-ACTION"
    #: SCHEDULE-AGENT: SERVER (the default), CLIENT or NONE.
    agent: str = "SERVER"
    #: SCHEDULE-FORCE-SEND, upper-case, "" when absent.
    force_send: str = ""
    name: str = ""


@dataclass(frozen=True)
class SchedulingInfo:
    """What L{scheduling_info} found in a calendar object or iTIP message."""

    uid: str
    component: str
    method: str
    organizer: str
    organizer_name: str
    organizer_agent: str
    attendees: dict[str, Attendee]
    sequence: int
    summary: str
    location: str
    description: str
    start: Value | None
    #: Whether the master (or the only component) has STATUS:CANCELLED.
    cancelled: bool


@dataclass(frozen=True)
class FreeBusyRequest:
    """A VFREEBUSY REQUEST posted to a scheduling outbox (RFC 6638 5)."""

    uid: str
    organizer: str
    organizer_property: vCalAddress
    attendees: list[vCalAddress]
    start: datetime
    end: datetime


# -- reading -------------------------------------------------------------------


def address_of(value: object) -> str:
    """
    The bare, lower-case address of a C{mailto:} calendar user address;
    "" for anything else (other URI schemes, no C{@}).
    """
    text = str(value).strip()
    if text[:7].lower() != "mailto:":
        return ""
    address = text[7:].strip().lower()
    return address if "@" in address and not any(c in address for c in " <>\r\n") else ""


def parse(data: bytes | str) -> Calendar:
    """
    One VCALENDAR.

    @raise ITipError: not UTF-8 or not iCalendar.
    """
    try:
        text = data.decode("utf-8").removeprefix("\ufeff") if isinstance(data, bytes) else data
        calendar: Any = Calendar.from_ical(text)
    except Exception as e:  # icalendar raises many kinds on arbitrary input
        raise ITipError(f"not iCalendar: {e}") from None
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise ITipError("not a VCALENDAR")
    return calendar


def serialize(calendar: Calendar) -> bytes:
    return bytes(calendar.to_ical())


def scheduled_components(calendar: Calendar) -> list[Component]:
    """The VEVENTs or VTODOs of the object (of the first such type found)."""
    found = [c for c in calendar.subcomponents if c.name in SCHEDULED]
    return [c for c in found if c.name == found[0].name] if found else []


def instance_key(component: Component) -> str:
    """L{MASTER}, or the RECURRENCE-ID in UTC: the same instance has the same key in every copy."""
    rid = value_of(component, "RECURRENCE-ID")
    if rid is None:
        return MASTER
    return to_utc(rid).strftime("%Y%m%dT%H%M%SZ")


def calendar_users(component: Component, name: str) -> list[vCalAddress]:
    """The ORGANIZER or ATTENDEE properties of a component, as a list."""
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _param(prop: Any, name: str, default: str = "") -> str:
    params = getattr(prop, "params", {})
    return str(params.get(name, default)).strip()


def scheduling_info(calendar: Calendar) -> SchedulingInfo | None:
    """What the object says about scheduling; L{None} without a VEVENT or VTODO."""
    components = scheduled_components(calendar)
    if not components:
        return None
    master = next((c for c in components if instance_key(c) == MASTER), components[0])
    ordered = [master, *(c for c in components if c is not master)]
    organizer = next((p for c in ordered for p in calendar_users(c, "ORGANIZER")), None)
    attendees: dict[str, Attendee] = {}
    for component in ordered:
        for prop in calendar_users(component, "ATTENDEE"):
            address = address_of(prop)
            if address and address not in attendees:
                attendees[address] = Attendee(
                    address,
                    _param(prop, "PARTSTAT", "NEEDS-ACTION").upper(),
                    _param(prop, "SCHEDULE-AGENT", "SERVER").upper(),
                    _param(prop, "SCHEDULE-FORCE-SEND").upper(),
                    _param(prop, "CN"),
                )
    try:
        sequence = int(str(master.get("SEQUENCE", 0)))
    except ValueError:
        sequence = 0
    return SchedulingInfo(
        uid=str(master.get("UID", "")).strip(),
        component=str(master.name),
        method=str(calendar.get("METHOD", "")).strip().upper(),
        organizer=address_of(organizer) if organizer is not None else "",
        organizer_name=_param(organizer, "CN"),
        organizer_agent=_param(organizer, "SCHEDULE-AGENT", "SERVER").upper(),
        attendees=attendees,
        sequence=sequence,
        summary=str(master.get("SUMMARY", "")),
        location=str(master.get("LOCATION", "")),
        description=str(master.get("DESCRIPTION", "")),
        start=value_of(master, "DTSTART") or value_of(master, "DUE"),
        cancelled=str(master.get("STATUS", "")).upper() == "CANCELLED",
    )


def partstats(calendar: Calendar, address: str) -> dict[str, str]:
    """The PARTSTAT of C{address} in each instance that lists it, by L{instance_key}."""
    result: dict[str, str] = {}
    for component in scheduled_components(calendar):
        for prop in calendar_users(component, "ATTENDEE"):
            if address_of(prop) == address:
                result[instance_key(component)] = _param(prop, "PARTSTAT", "NEEDS-ACTION").upper()
    return result


def _ical(value: Any) -> bytes:
    to_ical = getattr(value, "to_ical", None)
    return bytes(to_ical()) if to_ical is not None else str(value).encode()


def _line(name: str, value: Any, skip_params: frozenset[str]) -> tuple[str, tuple[Any, ...], bytes]:
    params = getattr(value, "params", {})
    kept = tuple(
        sorted((str(k).upper(), str(v)) for k, v in params.items() if k not in skip_params)
    )
    return name, kept, _ical(value)


def _signature(calendar: Calendar, wanted: Collection[str] | None) -> tuple[Any, ...]:
    """The chosen properties of each instance, in a form that ignores order."""
    result = []
    for component in scheduled_components(calendar):
        lines = []
        for name, value in component.items():
            name = str(name).upper()
            if wanted is not None and name not in wanted:
                continue
            if wanted is None and (name in _NOT_SIGNIFICANT or name.startswith("X-")):
                continue
            for each in value if isinstance(value, list) else [value]:
                lines.append(_line(name, each, _VOLATILE_PARAMS))
        result.append((instance_key(component), tuple(sorted(lines))))
    return tuple(sorted(result))


def significant_signature(calendar: Calendar) -> tuple[Any, ...]:
    """
    What the attendees must be told about when it changes: every property
    of every instance except time stamps, TRANSP, X- properties, alarms
    and the attendees' PARTSTAT, RSVP and scheduling parameters (so that a
    client re-sending the organizer's copy after a REPLY was applied, or a
    change of the organizer's own alarms, sends nothing).
    """
    return _signature(calendar, None)


def time_signature(calendar: Calendar) -> tuple[Any, ...]:
    """When the instances are: their time properties and the set of instances."""
    return _signature(calendar, _TIME_PROPERTIES)


# -- building messages -----------------------------------------------------------


def _strip_scheduling_params(component: Component) -> None:
    for name in ("ORGANIZER", "ATTENDEE"):
        for prop in calendar_users(component, name):
            for param in SCHEDULING_PARAMS:
                prop.params.pop(param, None)


def _message(calendar: Calendar, method: str, now: datetime) -> Calendar:
    """A copy of C{calendar} as an iTIP message: METHOD, DTSTAMP, no alarms or server params."""
    message = copy.deepcopy(calendar)
    message.pop("METHOD", None)
    message.add("METHOD", method)
    for component in scheduled_components(message):
        _strip_scheduling_params(component)
        # The sender's own alarms are not the recipient's business.
        component.subcomponents = [c for c in component.subcomponents if c.name != "VALARM"]
        component.pop("DTSTAMP", None)
        component.add("DTSTAMP", now.astimezone(UTC).replace(microsecond=0))
    return message


def request(calendar: Calendar, now: datetime) -> Calendar:
    """The METHOD:REQUEST the organizer's copy C{calendar} sends to its attendees."""
    return _message(calendar, "REQUEST", now)


def cancel(calendar: Calendar, now: datetime, attendees: Collection[str] | None = None) -> Calendar:
    """
    The METHOD:CANCEL of the whole object: every instance STATUS:CANCELLED,
    SEQUENCE one higher.

    @param attendees: when given, the only ATTENDEEs kept (those being
        uninvited from an event that goes on).
    """
    message = _message(calendar, "CANCEL", now)
    for component in scheduled_components(message):
        component.pop("STATUS", None)
        component.add("STATUS", "CANCELLED")
        _bump_sequence(component)
        if attendees is not None:
            kept = [p for p in calendar_users(component, "ATTENDEE") if address_of(p) in attendees]
            component.pop("ATTENDEE", None)
            for prop in kept:
                component.add("ATTENDEE", prop)
    return message


def _bump_sequence(component: Component) -> None:
    try:
        sequence = int(str(component.get("SEQUENCE", 0)))
    except ValueError:
        sequence = 0
    component.pop("SEQUENCE", None)
    component.add("SEQUENCE", sequence + 1)


def reply(calendar: Calendar, address: str, now: datetime) -> Calendar:
    """
    The METHOD:REPLY of attendee C{address} from its copy C{calendar}: each
    instance that lists it, with only its own ATTENDEE line.
    """
    message = Calendar()
    message.add("PRODID", PRODID)
    message.add("VERSION", "2.0")
    message.add("METHOD", "REPLY")
    for zone in calendar.walk("VTIMEZONE"):
        message.add_component(copy.deepcopy(zone))
    for component in scheduled_components(calendar):
        own = [p for p in calendar_users(component, "ATTENDEE") if address_of(p) == address]
        if not own:
            continue
        answer: Component = Event() if component.name == "VEVENT" else Todo()
        answer.add("UID", component.get("UID"))
        answer.add("DTSTAMP", now.astimezone(UTC).replace(microsecond=0))
        for name in ("ORGANIZER", *_REPLY_PROPERTIES):
            if name in component:
                answer[name] = copy.deepcopy(component[name])
        answer["ATTENDEE"] = copy.deepcopy(own[0])
        _strip_scheduling_params(answer)
        message.add_component(answer)
    return message


def attendee_copy(message: Calendar, address: str, previous: Calendar | None) -> Calendar:
    """
    The attendee C{address}'s copy of the object a REQUEST C{message}
    describes.  Its PARTSTAT is kept from the C{previous} copy when the
    times did not change, else NEEDS-ACTION (the attendee must look at it
    again); the alarms of the previous copy are kept.
    """
    result = copy.deepcopy(message)
    result.pop("METHOD", None)
    keep = previous is not None and time_signature(previous) == time_signature(message)
    before = partstats(previous, address) if previous is not None else {}
    old_components = (
        {instance_key(c): c for c in scheduled_components(previous)} if previous else {}
    )
    for component in scheduled_components(result):
        key = instance_key(component)
        kept = before.get(key, before.get(MASTER)) if keep else None
        for prop in calendar_users(component, "ATTENDEE"):
            if address_of(prop) == address:
                prop.params["PARTSTAT"] = kept or "NEEDS-ACTION"
        old = old_components.get(key, old_components.get(MASTER))
        if old is not None:
            component.subcomponents.extend(
                copy.deepcopy(c) for c in old.subcomponents if c.name == "VALARM"
            )
    return result


def set_schedule_status(calendar: Calendar, statuses: Mapping[str, str]) -> bool:
    """
    Set SCHEDULE-STATUS on the ATTENDEEs named in C{statuses} (RFC 6638
    3.2.9) and drop SCHEDULE-FORCE-SEND from them (it asks for one send);
    whether anything changed.
    """
    changed = False
    for component in scheduled_components(calendar):
        for prop in calendar_users(component, "ATTENDEE"):
            status = statuses.get(address_of(prop))
            if status is None:
                continue
            if prop.params.get("SCHEDULE-STATUS") != status:
                prop.params["SCHEDULE-STATUS"] = status
                changed = True
            if prop.params.pop("SCHEDULE-FORCE-SEND", None) is not None:
                changed = True
    return changed


# -- applying messages ------------------------------------------------------------


def _instance(calendar: Calendar, model: Component, create: bool) -> Component | None:
    """
    The component of C{calendar} for the instance C{model} (of a message)
    names; when it has none and C{create}, an override of a recurring
    master made for it.  L{None} when neither.
    """
    components = scheduled_components(calendar)
    key = instance_key(model)
    for component in components:
        if instance_key(component) == key:
            return component
    master = next((c for c in components if instance_key(c) == MASTER), None)
    if not create or key == MASTER or master is None:
        return None
    rid = value_of(model, "RECURRENCE-ID")
    start = value_of(master, "DTSTART")
    if rid is None or start is None or ("RRULE" not in master and "RDATE" not in master):
        return None
    override = copy.deepcopy(master)
    for name in ("RRULE", "RDATE", "EXDATE", "RECURRENCE-ID", "DTSTART", "DTEND"):
        override.pop(name, None)
    override.subcomponents = []
    when = _like(rid, start)
    override.add("RECURRENCE-ID", when)
    override.add("DTSTART", when)
    end = value_of(master, "DTEND")
    if end is not None and type(end) is type(start):
        override.add("DTEND", when + (end - start))
    calendar.add_component(override)
    return override


def _like(value: Value, model: Value) -> Value:
    """C{value} in the form of C{model}: a date, or a time in C{model}'s zone."""
    if not isinstance(model, datetime):
        return value.date() if isinstance(value, datetime) else value
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if model.tzinfo is None:
        return value.replace(tzinfo=None) if value.tzinfo is not None else value
    return to_utc(value).astimezone(model.tzinfo)


def apply_reply(calendar: Calendar, message: Calendar, address: str) -> bool:
    """
    Apply the REPLY C{message} of attendee C{address} to the organizer's
    copy C{calendar}: its PARTSTAT in each instance the reply names (an
    override is made for a reply about one instance of a recurring event
    whose master lists the attendee).  An attendee the organizer's copy
    does not list is ignored (RFC 5546 3.2.3 lets the organizer refuse
    "party crashers").  Whether anything changed.
    """
    changed = False
    components = scheduled_components(calendar)
    master = next((c for c in components if instance_key(c) == MASTER), None)
    invited = master is not None and _lists(master, address)
    for answer in scheduled_components(message):
        sent = [p for p in calendar_users(answer, "ATTENDEE") if address_of(p) == address]
        target = _instance(calendar, answer, create=invited) if sent else None
        if target is None:
            continue
        partstat = _param(sent[0], "PARTSTAT", "NEEDS-ACTION").upper()
        for prop in calendar_users(target, "ATTENDEE"):
            if address_of(prop) == address and _param(prop, "PARTSTAT").upper() != partstat:
                prop.params["PARTSTAT"] = partstat
                prop.params.pop("RSVP", None)
                changed = True
    return changed


def _lists(component: Component, address: str) -> bool:
    return any(address_of(p) == address for p in calendar_users(component, "ATTENDEE"))


def apply_cancel(calendar: Calendar, message: Calendar) -> bool:
    """
    Apply a CANCEL to an attendee's copy: the instances it names (every
    one for the master) get STATUS:CANCELLED and the message's SEQUENCE;
    one instance of a recurring event becomes a cancelled override.
    Whether anything changed.
    """
    changed = False
    for model in scheduled_components(message):
        if instance_key(model) == MASTER:
            targets = scheduled_components(calendar)
        else:
            target = _instance(calendar, model, create=True)
            targets = [target] if target is not None else []
        for component in targets:
            if str(component.get("STATUS", "")).upper() != "CANCELLED":
                component.pop("STATUS", None)
                component.add("STATUS", "CANCELLED")
                changed = True
            if "SEQUENCE" in model:
                component.pop("SEQUENCE", None)
                component["SEQUENCE"] = copy.deepcopy(model["SEQUENCE"])
    return changed


# -- free-busy ----------------------------------------------------------------------


def parse_freebusy_request(data: bytes) -> FreeBusyRequest:
    """
    A VFREEBUSY REQUEST as posted to the outbox: ORGANIZER, at least one
    ATTENDEE, DTSTART and DTEND.

    @raise ITipError: anything else.
    """
    calendar = parse(data)
    if str(calendar.get("METHOD", "")).upper() != "REQUEST":
        raise ITipError("not METHOD:REQUEST")
    found = [c for c in calendar.subcomponents if c.name == "VFREEBUSY"]
    if len(found) != 1:
        raise ITipError("not exactly one VFREEBUSY")
    component = found[0]
    organizers = calendar_users(component, "ORGANIZER")
    attendees = calendar_users(component, "ATTENDEE")
    start, end = value_of(component, "DTSTART"), value_of(component, "DTEND")
    if len(organizers) != 1 or not address_of(organizers[0]):
        raise ITipError("no ORGANIZER")
    if not attendees:
        raise ITipError("no ATTENDEE")
    if start is None or end is None:
        raise ITipError("DTSTART and DTEND are required")
    low, high = to_utc(start), to_utc(end)
    if high <= low:
        raise ITipError("DTEND is not after DTSTART")
    return FreeBusyRequest(
        uid=str(component.get("UID", "")),
        organizer=address_of(organizers[0]),
        organizer_property=organizers[0],
        attendees=attendees,
        start=low,
        end=high,
    )


def freebusy_reply(
    request: FreeBusyRequest,
    attendee: vCalAddress,
    periods: Iterable[tuple[datetime, datetime, str]],
    now: datetime,
) -> bytes:
    """
    The METHOD:REPLY VFREEBUSY of one attendee: its busy C{periods}
    (start, end, FBTYPE; from L{gk.dav.calquery.free_busy}), one FREEBUSY
    property per type.
    """
    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REPLY")
    component = FreeBusy()
    if request.uid:
        component.add("UID", request.uid)
    component.add("DTSTAMP", now.astimezone(UTC).replace(microsecond=0))
    component.add("DTSTART", request.start)
    component.add("DTEND", request.end)
    component["ORGANIZER"] = copy.deepcopy(request.organizer_property)
    component["ATTENDEE"] = copy.deepcopy(attendee)
    by_kind: dict[str, list[tuple[datetime, datetime]]] = {}
    for low, high, kind in periods:
        by_kind.setdefault(kind, []).append((low, high))
    for kind, spans in by_kind.items():
        value = vDDDLists(spans)
        value.params["FBTYPE"] = kind
        component.add("FREEBUSY", value)
    calendar.add_component(component)
    return serialize(calendar)


__all__ = [
    "MASTER",
    "SCHEDULED",
    "Attendee",
    "FreeBusyRequest",
    "ITipError",
    "SchedulingInfo",
    "address_of",
    "apply_cancel",
    "apply_reply",
    "attendee_copy",
    "calendar_users",
    "cancel",
    "freebusy_reply",
    "instance_key",
    "parse",
    "parse_freebusy_request",
    "partstats",
    "reply",
    "request",
    "scheduled_components",
    "scheduling_info",
    "serialize",
    "set_schedule_status",
    "significant_signature",
    "time_signature",
]
