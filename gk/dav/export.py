"""
A whole calendar or address book as one file, for GET on the collection:
an iCalendar stream with every component of every resource (time zones
once each), or the vCards one after the other.

Works on the stored text line by line: stored bodies are already checked,
CRLF-terminated and folded, so nothing needs parsing again.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

PRODID = b"PRODID:-//gk//calendar export//EN"


def _escape(text: str) -> bytes:
    value = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return value.encode("utf-8")


def calendar_export(bodies: Iterable[bytes], name: str) -> bytes:
    """
    One VCALENDAR holding the components of every body in C{bodies} (each
    one a stored VCALENDAR), VTIMEZONEs deduplicated by TZID; C{name} is
    given as X-WR-CALNAME.
    """
    out = [b"BEGIN:VCALENDAR", b"VERSION:2.0", PRODID, b"X-WR-CALNAME:" + _escape(name)]
    zones: set[bytes] = set()
    for body in bodies:
        for component, tzid in _components(body):
            if tzid is not None:
                if tzid in zones:
                    continue
                zones.add(tzid)
            out.extend(component)
    out.append(b"END:VCALENDAR")
    return b"\r\n".join(out) + b"\r\n"


def _components(body: bytes) -> list[tuple[list[bytes], bytes | None]]:
    """The top-level components of a VCALENDAR, as lines, and a VTIMEZONE's TZID."""
    found: list[tuple[list[bytes], bytes | None]] = []
    current: list[bytes] | None = None
    tzid: bytes | None = None
    depth = 0
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        upper = line[:16].upper()
        if upper.startswith(b"BEGIN:"):
            depth += 1
            if depth == 2:
                current, tzid = [], None
        if current is not None:
            current.append(line)
            if (
                depth == 2
                and upper.startswith(b"TZID:")
                and current[0].upper() == b"BEGIN:VTIMEZONE"
            ):
                tzid = line[5:].strip()
        if upper.startswith(b"END:"):
            if depth == 2 and current is not None:
                is_zone = current[0].upper() == b"BEGIN:VTIMEZONE"
                found.append((current, (tzid or b"") if is_zone else None))
                current = None
            depth -= 1
    return found


def vcard_export(bodies: Iterable[bytes]) -> bytes:
    """The vCards one after the other, each ending with CRLF."""
    return b"".join(body if body.endswith(b"\r\n") else body + b"\r\n" for body in bodies)
