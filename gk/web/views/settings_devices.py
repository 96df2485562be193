"""
A short name for the device behind a web session, from its User-Agent
header, for the settings page's list of sessions ("Firefox on Linux").

It is a hint for the user, never used to decide anything: the header is
whatever the client chose to send.  Unknown agents are shown as they
came (shortened); the page escapes them like any other text.
"""

from __future__ import annotations

#: Browsers, most specific first (Edge and Opera also say Chrome and Safari).
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
#: Systems, most specific first (Android also says Linux, iOS says Mac OS X).
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
#: The longest unknown agent shown.
MAX_SHOWN = 60


def device_name(user_agent: str) -> str:
    """C{"Browser on System"} when both are recognised, else the agent itself (shortened)."""
    agent = " ".join(user_agent.split())
    if not agent:
        return "Unknown device"
    browser = next((name for mark, name in _BROWSERS if mark in agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or ""
    return agent if len(agent) <= MAX_SHOWN else agent[: MAX_SHOWN - 1] + "…"
