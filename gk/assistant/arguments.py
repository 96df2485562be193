"""
Reading the values models write in tool arguments: dates and times (RFC
3339, or local to the user when they carry no offset) and e-mail
addresses.  Every refusal is a L{ToolError} whose message shows the form
expected, so the model can correct itself on the next step.
"""

from __future__ import annotations

import datetime

from gk.assistant.tools import ToolContext, ToolError

_WHEN_FORM = "use RFC 3339, e.g. 2026-11-22T14:30:00+01:00, or 2026-11-22 for a whole day"


def parse_when(value: str, context: ToolContext, name: str = "time") -> datetime.datetime:
    """
    An aware datetime from an RFC 3339 date-time; one without an offset is
    in the user's time zone; a bare date is that day's local midnight.
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            return datetime.datetime.combine(day, datetime.time(), context.timezone)
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ToolError(f"invalid {name} {value!r}: {_WHEN_FORM}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=context.timezone)
    return parsed


def parse_day(value: str, context: ToolContext, name: str = "date") -> datetime.date:
    """A calendar date (YYYY-MM-DD); a date-time gives its day in the user's zone."""
    text = value.strip()
    if len(text) == 10:
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise ToolError(f"invalid {name} {value!r}: use YYYY-MM-DD") from None
    return parse_when(text, context, name).astimezone(context.timezone).date()


def rfc3339(when: datetime.datetime) -> str:
    """An aware datetime as RFC 3339 with its offset, to the second."""
    return when.isoformat(timespec="seconds")
