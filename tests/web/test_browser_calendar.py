"""
In Chromium: alice creates an event through the calendar's form, sees it
in the month view, and a CalDAV client (the python C{caldav} library)
finds it in her calendar with its title, start time and attendee; an
event the CalDAV client adds appears in the open view without a reload;
at phone width the month view fits the screen and leads to the event.
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

from caldav.davclient import DAVClient
from playwright.async_api import Browser, ViewportSize, expect

from tests.helpers import in_thread
from tests.web.browser import (
    PHONE,
    browser_test,
    chromium,
    new_context,
    sign_in,
    socket_ready,
    wait,
)
from tests.web.conftest import ALICE, BOB, PASSWORD, WebServer

__all__ = ["chromium"]

PARIS = ZoneInfo("Europe/Paris")


def over_caldav(base_url: str, day: datetime.date, add: str | None = None) -> list[Any]:
    """
    Alice's events on C{day} as a CalDAV client finds them, after saving
    the event C{add} (iCalendar) if given (blocking).
    """
    with DAVClient(
        url=base_url + "/dav/", username=ALICE, password=PASSWORD, require_tls=False
    ) as client:
        calendars = client.principal().calendars()
        calendar = next(c for c in calendars if str(c.url).rstrip("/").endswith("/calendar"))
        if add is not None:
            calendar.save_event(add)
        start = datetime.datetime.combine(day, datetime.time(), PARIS)
        found = calendar.search(event=True, start=start, end=start + datetime.timedelta(days=1))
        return [event.icalendar_component for event in found]


PHONE_CALL = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//gk tests//EN\r
BEGIN:VEVENT\r
UID:phone-call@tests\r
DTSTAMP:20261101T000000Z\r
DTSTART:20261124T080000Z\r
DTEND:20261124T083000Z\r
SUMMARY:Call the bank\r
END:VEVENT\r
END:VCALENDAR\r
"""


@browser_test
async def test_an_event_made_in_the_browser_is_in_the_month_view_and_over_caldav(
    web: WebServer, chromium: Browser
) -> None:
    context = await new_context(chromium)
    try:
        page = await sign_in(context, web, ALICE)
        await page.get_by_role("link", name="Calendar", exact=True).click()
        await page.get_by_role("link", name="New event", exact=True).click()
        await page.get_by_label("Title").fill("Team lunch")
        await page.get_by_label("Start date").fill("2026-11-23")
        await page.get_by_label("Start time").fill("12:30")
        await page.get_by_label("End date").fill("2026-11-23")
        await page.get_by_label("End time").fill("13:45")
        await page.get_by_label("Location").fill("Chez Paul")
        await page.get_by_label("Invite").fill(BOB)
        await page.get_by_role("button", name="Create event").click()

        await expect(page).to_have_url(web.base_url + "/calendar/month/2026-11")
        day = page.locator('li[data-date="2026-11-23"]')
        await expect(day.get_by_role("link", name="12:30 Team lunch")).to_be_visible()

        [event] = await wait(in_thread(over_caldav, web.base_url, datetime.date(2026, 11, 23)))
        assert str(event["SUMMARY"]) == "Team lunch"
        start = event["DTSTART"].dt
        assert start == datetime.datetime(2026, 11, 23, 12, 30, tzinfo=PARIS)
        assert start.tzinfo.key == "Europe/Paris"
        attendees = {str(a).lower() for a in event.get("ATTENDEE", [])}
        assert f"mailto:{BOB}" in attendees

        # An event a CalDAV client adds shows up in the open month view by itself.
        await socket_ready(page)
        await wait(in_thread(over_caldav, web.base_url, datetime.date(2026, 11, 24), PHONE_CALL))
        tuesday = page.locator('li[data-date="2026-11-24"]')
        await expect(tuesday.get_by_role("link", name="09:00 Call the bank")).to_be_visible()

        # At phone width the month fits the screen.
        await page.set_viewport_size(ViewportSize(width=PHONE["width"], height=PHONE["height"]))
        await page.reload()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        # A day is tapped for its week, listed; the event is tapped for its form.
        await page.get_by_role("link", name="Monday 23 November 2026, 1 event").click()
        await expect(page).to_have_url(web.base_url + "/calendar/week/2026-11-23")
        await page.get_by_role("link", name="12:30\u201313:45 Team lunch").click()
        await expect(page.get_by_label("Title")).to_have_value("Team lunch")
        await expect(page.get_by_label("Start time")).to_have_value("12:30")
    finally:
        await context.close()
