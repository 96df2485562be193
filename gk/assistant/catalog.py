"""
Every tool gk offers, gathered into one L{ToolRegistry}: the families
over mail, calendars, contacts and chat, each built on the service
modules the protocols use.
"""

from __future__ import annotations

from gk.app import GkApp
from gk.assistant.calendar_tools import calendar_tools
from gk.assistant.chat_tools import chat_tools
from gk.assistant.contact_tools import contact_tools
from gk.assistant.mail_tools import mail_tools
from gk.assistant.tools import ToolRegistry
from gk.dav.scheduling import Scheduler


def build_registry(app: GkApp, scheduler: Scheduler) -> ToolRegistry:
    """The registry of all tools, in the order of the interface document."""
    registry = ToolRegistry()
    registry.extend(mail_tools(app))
    registry.extend(calendar_tools(app, scheduler))
    registry.extend(contact_tools(app))
    registry.extend(chat_tools(app))
    return registry
