"""
What the admin pages share: the admin-only guard, the routes built with
it, rendering with the admin layout's defaults, and turning a refused
operation into one sentence for the page.

Contract of every admin route (L{admin_pages}):

  - an account that is not an administrator gets the same 404 as for a
    page that does not exist, whatever the method: the admin part is not
    revealed (the framework still answers 403 first to a state-changing
    request without the session's CSRF token, as it does for any route);
  - GET never changes anything; every change is a POST carrying the CSRF
    field, which L{gk.web.page.WebUIResource} checks before the handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gk.errors import GkError
from gk.storage.accounts import Account, AlreadyExists, NotFound
from gk.web.page import Handler, Page, PageCall, PageError, Reply, page
from gk.web.sessions import WebSession

#: What a non-admin is told, word for word what an unknown page says.
NOT_FOUND = "There is no such page."
#: Methods answered on every admin path, so none answers 405 to a non-admin.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def require_admin(call: PageCall) -> Account:
    """
    The signed-in administrator.

    @raise PageError: 404, the account is not an administrator.
    """
    account = call.account
    if not account.is_admin:
        raise PageError(404, NOT_FOUND)
    return account


def guarded(handler: Handler) -> Handler:
    """C{handler}, run only for administrators (L{require_admin})."""

    async def run(call: PageCall) -> Reply:
        require_admin(call)
        return await handler(call)

    return run


async def _method_not_allowed(call: PageCall) -> Reply:
    raise PageError(405, "This page does not take that kind of request.")


def _is_admin(session: WebSession) -> bool:
    # Checked before the CSRF token: a non-admin learns nothing, not even 403.
    return session.account.is_admin


def admin_pages(routes: Sequence[tuple[str, str, Handler]]) -> list[Page]:
    """
    The L{Page}s of C{routes} (method, path, handler), each behind
    L{guarded}; every path also answers the methods of L{METHODS} it has
    no handler for: 404 to a non-admin, 405 to an administrator.
    """
    pages = [
        page(method, path, guarded(handler), visible=_is_admin) for method, path, handler in routes
    ]
    taken = {(method, path) for method, path, _handler in routes}
    for path in dict.fromkeys(path for _method, path, _handler in routes):
        for method in METHODS:
            if (method, path) not in taken:
                pages.append(page(method, path, guarded(_method_not_allowed), visible=_is_admin))
    return pages


def render(call: PageCall, template: str, status: int = 200, **context: Any) -> Reply:
    """
    C{template} with the admin layout's defaults (C{nav}, no C{error}, no
    C{notice}, no C{secret}) under C{context}.
    """
    defaults: dict[str, Any] = {"nav": "admin", "error": "", "notice": "", "secret": ""}
    return call.render(template, status, **{**defaults, **context})


def message_of(error: Exception) -> str:
    """A refusal's message as a sentence: capital first letter, final stop."""
    text = " ".join(str(error).split()) or "That could not be done"
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?)" else text + "."


def status_of(error: GkError) -> int:
    """The HTTP status for a refused operation: 409 exists, 404 not found, else 400."""
    if isinstance(error, AlreadyExists):
        return 409
    if isinstance(error, NotFound):
        return 404
    return 400
