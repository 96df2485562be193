"""
The web UI put together: its sessions, templates, static files and the
pages of every part, as the two resources the site mounts (the pages at
every path no other part claims, the files at C{/static/}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.web.resource import IResource

from gk.web.page import Page, WebUI, WebUIResource
from gk.web.sessions import WebSessions
from gk.web.templating import StaticResource, Templates, load_static
from gk.web.views.admin import AdminPages
from gk.web.views.assistant import AssistantPages
from gk.web.views.calendar import CalendarPages
from gk.web.views.chat import ChatPages
from gk.web.views.contacts import ContactPages
from gk.web.views.login import LoginPages
from gk.web.views.mail import MailPages
from gk.web.views.settings import SettingsPages

if TYPE_CHECKING:
    from gk.service import GkService


@dataclass
class WebParts:
    pages: IResource
    static: IResource
    ui: WebUI


def build_web_ui(tree: GkService, sessions: WebSessions) -> WebParts:
    """The web UI of the service tree C{tree} (blocking: reads templates and files)."""
    app = tree.app
    files = load_static()
    ui = WebUI(Templates(files), sessions, app.config.http.public_url)
    pages: list[Page] = [
        *LoginPages(app.accounts, app.security.auth).pages(),
        *AssistantPages(tree.assistant).pages(),
        *MailPages(tree).pages(),
        *CalendarPages(tree).pages(),
        *ContactPages(tree).pages(),
        *ChatPages(tree).pages(),
        *SettingsPages(tree).pages(),
        *AdminPages(tree).pages(),
    ]
    return WebParts(WebUIResource(ui, pages), StaticResource(files), ui)
