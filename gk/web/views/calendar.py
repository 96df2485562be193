"""
The web UI's calendar: the month and week views of the signed-in user's
calendars (all of them together, recurring events expanded into their
occurrences, in the user's time zone), with previous / next / today
navigation; the event form's pages are L{CalendarForms}.

  - C{GET /calendar}: this month;
  - C{GET /calendar/month/YYYY-MM}: a month, in whole weeks (Monday first);
  - C{GET /calendar/week/YYYY-MM-DD}: the week (Monday to Sunday) holding
    that day.

A URL naming no month or day answers 400.  With JavaScript
(C{static/calendar.js}) a view reloads its grid when the user's
calendars change (the live C{calendar.changed} event).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from gk.web.page import Page, PageCall, Reply, page
from gk.web.views.calendar_actions import CalendarActions
from gk.web.views.calendar_dates import (
    MONTHS,
    WEEKDAYS,
    EventChip,
    add_months,
    chip_of,
    lay_out,
    local_midnight,
    month_days,
    month_key,
    parse_day,
    parse_month,
    short_date,
    week_start,
    weeks,
)
from gk.web.views.calendar_forms import CalendarForms

if TYPE_CHECKING:
    from gk.service import GkService
    from gk.storage.accounts import Account

_DAY = datetime.timedelta(days=1)
_WEEK = datetime.timedelta(days=7)


class CalendarPages:
    """The calendar's pages (see the module docstring)."""

    def __init__(self, tree: GkService) -> None:
        self.tree = tree
        self.actions = CalendarActions(tree)
        self.forms = CalendarForms(self.actions)

    def pages(self) -> list[Page]:
        return [
            page("GET", "/calendar", self.this_month),
            page("GET", "/calendar/month/{month}", self.month),
            page("GET", "/calendar/week/{day}", self.week),
            *self.forms.pages(),
        ]

    async def this_month(self, call: PageCall) -> Reply:
        today = self.actions.today(call.account)
        return await self._month(call, today.replace(day=1))

    async def month(self, call: PageCall) -> Reply:
        return await self._month(call, parse_month(call.params["month"]))

    async def _month(self, call: PageCall, first: datetime.date) -> Reply:
        account = call.account
        low, high = month_days(first)
        today = self.actions.today(account)
        chips = await self._chips(account, low, high)
        cells = lay_out(chips, low, high, today, first.month)
        return call.render(
            "calendar_month.html",
            **self._common(call, today),
            view="month",
            title=f"{MONTHS[first.month - 1]} {first.year}",
            weekdays=WEEKDAYS,
            weeks=weeks(cells),
            previous=f"/calendar/month/{month_key(add_months(first, -1))}",
            following=f"/calendar/month/{month_key(add_months(first, 1))}",
            other=f"/calendar/week/{(first if first.month != today.month else today).isoformat()}",
            new_date=(today if (today.year, today.month) == (first.year, first.month) else first),
        )

    async def week(self, call: PageCall) -> Reply:
        account = call.account
        monday = week_start(parse_day(call.params["day"]))
        sunday = monday + 6 * _DAY
        today = self.actions.today(account)
        chips = await self._chips(account, monday, sunday)
        days = lay_out(chips, monday, sunday, today)
        title = f"Week of {short_date(monday)} {monday.year}"
        return call.render(
            "calendar_week.html",
            **self._common(call, today),
            view="week",
            title=title,
            days=days,
            previous=f"/calendar/week/{(monday - _WEEK).isoformat()}",
            following=f"/calendar/week/{(monday + _WEEK).isoformat()}",
            other=f"/calendar/month/{month_key(monday)}",
            new_date=today if monday <= today <= sunday else monday,
        )

    def _common(self, call: PageCall, today: datetime.date) -> dict[str, Any]:
        zone = self.actions.zone_of(call.account)
        return {
            "nav": "calendar",
            "today": today,
            "zone": getattr(zone, "key", str(zone)),
        }

    async def _chips(
        self, account: Account, first: datetime.date, last: datetime.date
    ) -> list[EventChip]:
        """The occurrences on the days C{first} to C{last} (inclusive), shown in the user's zone."""
        zone = self.actions.zone_of(account)
        calendars = await self.actions.calendars(account)
        shades = {c.name: index for index, c in enumerate(calendars)}
        start, end = local_midnight(first, zone), local_midnight(last + _DAY, zone)
        occurrences = await self.actions.occurrences(account, start, end)
        return [chip_of(o, zone, [account.email], shades) for o in occurrences]
