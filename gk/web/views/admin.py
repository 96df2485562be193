"""
The web admin (administrators only): the overview, accounts, aliases and
domains.  The DNS records of a domain are in L{gk.web.views.admin_dns},
the outbound queue in L{gk.web.views.admin_queue}; L{AdminPages} serves
them all.

Every action goes through the L{gk.accounts.AccountService} methods the
CLI (C{gk user|alias|domain}) uses, with the CLI's rules:

  - a password left empty is generated (L{gk.passwords.generate_password})
    and shown once, on the answer to the form, never stored in clear;
  - C{@domain} as an alias is the domain's catch-all;
  - a domain of C{[server] domains} cannot be deleted, nor one that still
    has users (L{gk.cli_commands.refuse_config_domain}, the store's rule).

Rules of the web admin on top of them:

  - deleting an account or a domain takes a confirmation page first; a
    POST without C{confirm=yes} only shows that page;
  - an administrator cannot delete their own account, which also keeps
    the last administrator (the one acting is always one);
  - a deleted account's web sessions end at once; so do the other web
    sessions of an account whose password is reset (the administrator's
    own current one is kept when it is theirs).

A refused action answers the page again with one message (C{role=alert})
and a 4xx status, with what was typed kept (passwords excepted).
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from gk.accounts import normalize_address, normalize_alias_source, normalize_domain
from gk.cli_commands import format_size, format_time, refuse_config_domain
from gk.errors import GkError
from gk.passwords import generate_password
from gk.storage.accounts import Account, AccountError, NotFound
from gk.web.page import Page, PageCall, PageError, Reply
from gk.web.views.admin_common import admin_pages, message_of, render, status_of
from gk.web.views.admin_dns import AdminDNSPages
from gk.web.views.admin_queue import AdminQueuePages

if TYPE_CHECKING:
    from gk.service import GkService

#: Longest address, domain or password read from a form.
MAX_FIELD = 1024


def _field(call: PageCall, name: str) -> str:
    return call.form.get(name).strip()[:MAX_FIELD]


class AdminPages:
    """Every C{/admin} page; built by L{gk.web.ui.build_web_ui}."""

    def __init__(self, tree: GkService) -> None:
        self.tree = tree
        self.app = tree.app
        self.accounts = tree.app.accounts
        self.dns = AdminDNSPages(tree)
        self.queue = AdminQueuePages(tree)

    def pages(self) -> list[Page]:
        return admin_pages(
            [
                ("GET", "/admin", self.overview),
                ("GET", "/admin/users", self.users),
                ("POST", "/admin/users", self.create_user),
                ("GET", "/admin/users/manage", self.manage_user),
                ("POST", "/admin/users/password", self.reset_password),
                ("POST", "/admin/users/role", self.set_role),
                ("GET", "/admin/users/delete", self.confirm_delete_user),
                ("POST", "/admin/users/delete", self.delete_user),
                ("GET", "/admin/aliases", self.aliases),
                ("POST", "/admin/aliases", self.add_alias),
                ("POST", "/admin/aliases/delete", self.delete_alias),
                ("GET", "/admin/domains", self.domains),
                ("POST", "/admin/domains", self.add_domain),
                ("GET", "/admin/domains/delete", self.confirm_delete_domain),
                ("POST", "/admin/domains/delete", self.delete_domain),
                *self.dns.routes(),
                *self.queue.routes(),
            ]
        )

    # -- overview ------------------------------------------------------------

    async def overview(self, call: PageCall) -> Reply:
        users = await self.accounts.list_users()
        aliases = await self.accounts.list_aliases()
        domains = await self.accounts.list_domains()
        counts = await self.app.queue.counts()
        return render(
            call,
            "admin_overview.html",
            section="overview",
            users=len(users),
            admins=sum(1 for u in users if u.is_admin),
            aliases=len(aliases),
            domains=domains,
            waiting=counts["pending"] + counts["sending"] + counts["deferred"],
            deferred=counts["deferred"],
        )

    # -- users ---------------------------------------------------------------

    async def _users_page(self, call: PageCall, status: int = 200, **context: object) -> Reply:
        users = await self.accounts.list_users()
        rows = [
            {
                "email": u.email,
                "admin": u.is_admin,
                "quota": format_size(u.quota_bytes),
                "created": format_time(u.created),
            }
            for u in users
        ]
        context.setdefault("email", "")
        context.setdefault("admin", False)
        return render(call, "admin_users.html", status, section="users", users=rows, **context)

    async def users(self, call: PageCall) -> Reply:
        return await self._users_page(call)

    async def create_user(self, call: PageCall) -> Reply:
        email = _field(call, "email")
        given = call.form.get("password")[:MAX_FIELD]
        is_admin = call.form.checked("admin")
        password = given or generate_password()
        try:
            account = await self.accounts.create_user(email, password, is_admin=is_admin)
        except GkError as e:
            return await self._users_page(
                call, status_of(e), error=message_of(e), email=email, admin=is_admin
            )
        role = "administrator" if account.is_admin else "user"
        return await self._users_page(
            call,
            notice=f"Created {role} {account.email}.",
            secret="" if given else password,
            secret_for=account.email,
        )

    async def _target(self, call: PageCall, email: str) -> Account:
        """The account C{email} names; a 404 page when there is none."""
        account = await self.accounts.get_user(email)
        if account is None:
            raise PageError(404, "There is no such user.")
        return account

    async def _manage_page(
        self, call: PageCall, account: Account, status: int = 200, **context: object
    ) -> Reply:
        return render(
            call,
            "admin_user.html",
            status,
            section="users",
            user=account,
            quota=format_size(account.quota_bytes),
            created=format_time(account.created),
            refusal=self._delete_refusal(call, account),
            **context,
        )

    async def manage_user(self, call: PageCall) -> Reply:
        account = await self._target(call, call.query.get("email", ""))
        return await self._manage_page(call, account)

    async def reset_password(self, call: PageCall) -> Reply:
        account = await self._target(call, _field(call, "email"))
        given = call.form.get("password")[:MAX_FIELD]
        password = given or generate_password()
        try:
            await self.accounts.set_password(account.email, password)
        except GkError as e:
            return await self._manage_page(call, account, status_of(e), error=message_of(e))
        own = account.id == call.account.id
        ended = await self.tree.web_sessions.end_all(account, keep=call.session if own else None)
        signed_out = f" {ended} web session(s) signed out." if ended else ""
        return await self._manage_page(
            call,
            account,
            notice=f"Changed the password of {account.email}.{signed_out}",
            secret="" if given else password,
            secret_for=account.email,
        )

    async def set_role(self, call: PageCall) -> Reply:
        """Make a user an administrator or not (never oneself: one admin always stays)."""
        account = await self._target(call, _field(call, "email"))
        wanted = call.form.get("admin") == "yes"
        if account.id == call.account.id:
            return await self._manage_page(
                call,
                account,
                409,
                error="You cannot change your own role; another administrator can.",
            )
        changed = await self.accounts.set_admin(account.email, wanted)
        role = "an administrator" if wanted else "a user"
        return await self._manage_page(call, changed, notice=f"{changed.email} is now {role}.")

    def _delete_refusal(self, call: PageCall, account: Account) -> str:
        """
        Why C{account} may not be deleted by this administrator; empty if
        it may.  The one acting is an administrator, so the last one is
        always themselves: refusing one's own account keeps one.
        """
        if account.id == call.account.id:
            return (
                "You cannot delete your own account: gk would be left without you "
                "(perhaps without any administrator). Another administrator can."
            )
        return ""

    async def confirm_delete_user(self, call: PageCall) -> Reply:
        account = await self._target(call, call.query.get("email", ""))
        refusal = self._delete_refusal(call, account)
        if refusal:
            return await self._users_page(call, 409, error=refusal)
        return self._confirm_user(call, account)

    def _confirm_user(self, call: PageCall, account: Account) -> Reply:
        return render(
            call,
            "admin_confirm.html",
            section="users",
            heading=f"Delete {account.email}?",
            explanation="The account, its app passwords and API tokens are removed and "
            "its sessions end. Its mail is not destroyed: it is moved aside under "
            f"{self.app.config.mail_dir}/.deleted for you to keep or remove.",
            action="/admin/users/delete",
            fields={"email": account.email},
            button="Delete the account",
            cancel="/admin/users/manage?" + urllib.parse.urlencode({"email": account.email}),
        )

    async def delete_user(self, call: PageCall) -> Reply:
        account = await self._target(call, _field(call, "email"))
        refusal = self._delete_refusal(call, account)
        if refusal:
            return await self._users_page(call, 409, error=refusal)
        if call.form.get("confirm") != "yes":
            return self._confirm_user(call, account)
        try:
            deleted = await self.accounts.delete_user(account.email)
        except GkError as e:
            return await self._users_page(call, status_of(e), error=message_of(e))
        await self.tree.web_sessions.end_all(deleted)
        return await self._users_page(
            call,
            notice=f"Deleted {deleted.email}; its mail is kept under "
            f"{self.app.config.mail_dir}/.deleted.",
        )

    # -- aliases -------------------------------------------------------------

    async def _aliases_page(self, call: PageCall, status: int = 200, **context: object) -> Reply:
        aliases = await self.accounts.list_aliases()
        context.setdefault("alias", "")
        context.setdefault("target", "")
        return render(
            call,
            "admin_aliases.html",
            status,
            section="aliases",
            aliases=aliases,
            domains=await self.accounts.list_domains(),
            **context,
        )

    async def aliases(self, call: PageCall) -> Reply:
        return await self._aliases_page(call)

    async def add_alias(self, call: PageCall) -> Reply:
        alias, target = _field(call, "alias"), _field(call, "target")
        try:
            added = await self.accounts.add_alias(alias, target)
        except GkError as e:
            return await self._aliases_page(
                call, status_of(e), error=message_of(e), alias=alias, target=target
            )
        pair = f"{_alias_source(alias)} → {normalize_address(target)}"
        notice = f"Added the alias {pair}." if added else f"The alias {pair} exists already."
        return await self._aliases_page(call, notice=notice)

    async def delete_alias(self, call: PageCall) -> Reply:
        alias, target = _field(call, "alias"), _field(call, "target")
        try:
            await self.accounts.delete_alias(alias, target or None)
        except GkError as e:
            return await self._aliases_page(call, status_of(e), error=message_of(e))
        shown = _alias_source(alias) + (f" → {normalize_address(target)}" if target else "")
        return await self._aliases_page(call, notice=f"Deleted the alias {shown}.")

    # -- domains -------------------------------------------------------------

    async def _domains_page(self, call: PageCall, status: int = 200, **context: object) -> Reply:
        domains = await self.accounts.list_domains()
        users = await self.accounts.list_users()
        configured = {normalize_domain(d) for d in self.app.config.server.domains}
        rows = [
            {
                "name": name,
                "users": sum(1 for u in users if u.domain == name),
                "configured": name in configured,
            }
            for name in domains
        ]
        context.setdefault("domain", "")
        return render(
            call, "admin_domains.html", status, section="domains", domains=rows, **context
        )

    async def domains(self, call: PageCall) -> Reply:
        return await self._domains_page(call)

    async def add_domain(self, call: PageCall) -> Reply:
        typed = _field(call, "domain")
        try:
            added = await self.accounts.add_domain(typed)
        except GkError as e:
            return await self._domains_page(call, status_of(e), error=message_of(e), domain=typed)
        name = normalize_domain(typed)
        notice = (
            f"Added the domain {name}; publish its DNS records next."
            if added
            else f"The domain {name} exists already."
        )
        return await self._domains_page(call, notice=notice, added=name if added else "")

    async def _local_domain(self, typed: str) -> str:
        """C{typed} normalised, when it is a local domain (else L{NotFound})."""
        name = normalize_domain(typed)
        if not await self.accounts.is_local_domain(name):
            raise NotFound(f"{name} is not a local domain")
        return name

    async def confirm_delete_domain(self, call: PageCall) -> Reply:
        try:
            name = await self._local_domain(call.query.get("domain", ""))
            refuse_config_domain(self.app.config, name)
        except GkError as e:
            return await self._domains_page(call, status_of(e), error=message_of(e))
        return self._confirm_domain(call, name)

    def _confirm_domain(self, call: PageCall, name: str) -> Reply:
        return render(
            call,
            "admin_confirm.html",
            section="domains",
            heading=f"Delete the domain {name}?",
            explanation=f"Mail to {name} is no longer accepted and its aliases are deleted "
            "with it. A domain that still has users cannot be deleted.",
            action="/admin/domains/delete",
            fields={"domain": name},
            button="Delete the domain",
            cancel="/admin/domains",
        )

    async def delete_domain(self, call: PageCall) -> Reply:
        try:
            name = await self._local_domain(_field(call, "domain"))
            refuse_config_domain(self.app.config, name)
            if call.form.get("confirm") != "yes":
                return self._confirm_domain(call, name)
            await self.accounts.delete_domain(name)
        except GkError as e:
            return await self._domains_page(call, status_of(e), error=message_of(e))
        return await self._domains_page(call, notice=f"Deleted the domain {name}.")


def _alias_source(alias: str) -> str:
    """An alias as stored (C{@domain} for a catch-all), for messages."""
    try:
        return normalize_alias_source(alias)
    except AccountError:
        return alias
