"""The web UI's admin pages (being written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gk.web.page import Page

if TYPE_CHECKING:
    from gk.service import GkService


class AdminPages:
    def __init__(self, tree: GkService) -> None:
        self.tree = tree

    def pages(self) -> list[Page]:
        return []
