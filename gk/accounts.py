"""
Accounts: who may log in, which addresses are local, where mail for an
address goes.

L{AccountService} is the one entry point for protocols, the web UI, the
assistant and the CLI.  Database work runs in the database's threads;
Argon2 runs in a small pool of its own so a burst of logins cannot starve
other work or the memory (each Argon2 hash takes 64 MiB).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import idna
from sqlalchemy.orm import Session
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from gk import passwords
from gk.storage import accounts as store
from gk.storage import dav_store, mail_index
from gk.storage.accounts import Account, AccountError, Credential
from gk.storage.database import Database
from gk.storage.mailstore import MailStore

T = TypeVar("T")

# RFC 5321 4.5.3.1: local part 64 octets, domain 255, path 256 with brackets.
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
# Used with fullmatch: "$" alone would accept a trailing newline.
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


class InvalidAddress(AccountError):
    pass


def normalize_domain(domain: str) -> str:
    """Lower-case A-label form of C{domain}; raise L{InvalidAddress}."""
    domain = domain.strip().rstrip(".")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as e:
        raise InvalidAddress(f"{domain!r} is not a valid domain: {e}") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        raise InvalidAddress(f"{domain!r} is not a valid domain: it needs a dot")
    return ascii_domain.lower()


def normalize_address(address: str) -> str:
    """
    C{Local@Domain} -> C{local@domain} (A-label).  Local parts are compared
    case-insensitively, as Postfix and Dovecot do by default.

    @raise InvalidAddress: not a dot-atom address within RFC 5321 lengths.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise InvalidAddress(f"{address!r} is not an email address")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise InvalidAddress(f"{address!r}: the local part is longer than 64 octets")
    if not _ATEXT.fullmatch(local):
        raise InvalidAddress(f"{address!r}: the local part has characters gk does not accept")
    result = f"{local.lower()}@{normalize_domain(domain)}"
    if len(result) > MAX_ADDRESS:
        raise InvalidAddress(f"{address!r} is longer than 254 octets")
    return result


@dataclass(frozen=True)
class Resolution:
    """Where mail to one address goes: local accounts and/or outside addresses."""

    local: tuple[Account, ...]
    remote: tuple[str, ...]
    #: Whether the address asked about is in a local domain.
    local_domain: bool = True

    @property
    def deliverable(self) -> bool:
        return bool(self.local or self.remote)


class RouteCache:
    """
    Recent answers of L{AccountService.resolve} that found somewhere to
    deliver, so that a stream of mail to the same recipients does not take
    a database trip per RCPT (as Dovecot's auth cache does for logins).

    Only positive answers are kept, for L{ttl} seconds: an address added
    anywhere (also by the CLI, another process) in a known domain is found
    at once, and a refusal at RCPT (a permanent 550) never comes from a
    stale entry.  A change made in this process clears the cache; one made
    by another process is seen within L{ttl} seconds, and until then mail
    still goes to the old route (a deleted account's delivery fails with a
    temporary error, so nothing is lost).

    It also keeps the set of local domains for L{ttl} seconds, so that mail
    to other domains (most of what users send) is routed without a
    database trip; a domain added by another process is local within
    L{ttl} seconds (Postfix needs a reload for that).
    """

    def __init__(
        self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Resolution]] = {}
        self._domains: tuple[float, frozenset[str]] | None = None

    def local_domains(self) -> frozenset[str] | None:
        """The local domains, if read less than L{ttl} seconds ago."""
        if self._domains is None or self._clock() >= self._domains[0]:
            return None
        return self._domains[1]

    def set_local_domains(self, domains: frozenset[str]) -> None:
        self._domains = (self._clock() + self.ttl, domains)

    def get(self, address: str) -> Resolution | None:
        entry = self._entries.get(address)
        if entry is None:
            return None
        expires, resolution = entry
        if self._clock() >= expires:
            del self._entries[address]
            return None
        return resolution

    def put(self, address: str, resolution: Resolution) -> None:
        if not (resolution.local_domain and resolution.deliverable):
            return
        if len(self._entries) >= self.max_entries:
            # Oldest insertion first (dicts keep order): cheap and good enough.
            del self._entries[next(iter(self._entries))]
        self._entries[address] = (self._clock() + self.ttl, resolution)

    def clear(self) -> None:
        self._entries.clear()
        self._domains = None


@dataclass(frozen=True)
class CheckedPassword:
    """
    A password that passed L{AccountService.authenticate_with_proof}, and
    what it matched: the account's password hash, or an app password's
    digest.
    """

    account: Account
    password_hash: str | None = None
    app_password_digest: str | None = None


class AccountService(Service):
    """Accounts, aliases and credentials, for every part of gk."""

    name = "accounts"
    #: Alias chains longer than this are treated as loops.
    MAX_ALIAS_DEPTH = 10
    #: How long a route found by L{resolve} is reused (see L{RouteCache}).
    ROUTE_CACHE_SECONDS = 15.0

    def __init__(
        self, db: Database, mailstore: MailStore, reactor: IReactorThreads | None = None
    ) -> None:
        self.db = db
        self.mailstore = mailstore
        self._reactor = reactor
        self._hash_pool = ThreadPool(1, 2, name="gk-argon2")
        self.routes = RouteCache(self.ROUTE_CACHE_SECONDS)

    def startService(self) -> None:
        super().startService()
        self._hash_pool.start()

    def stopService(self) -> None:
        super().stopService()
        self._hash_pool.stop()

    async def _hash(self, fn: Callable[..., T], *args: object) -> T:
        if self._reactor is None:
            raise RuntimeError("AccountService needs a reactor")
        return await deferToThreadPool(self._reactor, self._hash_pool, fn, *args)

    # -- domains -----------------------------------------------------------

    async def add_domain(self, name: str) -> bool:
        domain = normalize_domain(name)
        added = await self.db.write(lambda s: store.add_domain(s, domain))
        self.routes.clear()
        return added

    async def list_domains(self) -> list[str]:
        return await self.db.read(store.list_domains)

    async def delete_domain(self, name: str) -> None:
        domain = normalize_domain(name)
        await self.db.write(lambda s: store.delete_domain(s, domain))
        self.routes.clear()

    async def is_local_domain(self, name: str) -> bool:
        try:
            domain = normalize_domain(name)
        except InvalidAddress:
            return False
        return await self.db.read(lambda s: store.domain_exists(s, domain))

    # -- users -------------------------------------------------------------

    async def create_user(
        self,
        email: str,
        password: str,
        *,
        is_admin: bool = False,
        quota_bytes: int | None = None,
    ) -> Account:
        """
        Create an account with its mail folders (on disk and indexed) and
        its default calendar, task list and address book.
        """
        address = normalize_address(email)
        check_password_strength(password)
        password_hash = await self._hash(passwords.hash_password, password)
        # Folders on disk first: idempotent, and harmless if the insert fails.
        await self._hash(self.mailstore.create_default_folders_on_disk, address)

        def insert(session: Session) -> Account:
            account = store.add_user(session, address, password_hash, is_admin, quota_bytes)
            mail_index.create_default_folders(session, account.id)
            dav_store.ensure_default_collections(session, account.id)
            return account

        account = await self.db.write(insert)
        self.routes.clear()  # e.g. a catch-all's route to this address
        return account

    async def get_user(self, email: str) -> Account | None:
        try:
            address = normalize_address(email)
        except InvalidAddress:
            return None
        return await self.db.read(lambda s: store.get_user(s, address))

    async def get_user_by_id(self, user_id: int) -> Account | None:
        return await self.db.read(lambda s: store.get_user_by_id(s, user_id))

    async def list_users(self, domain: str | None = None) -> list[Account]:
        name = None if domain is None else normalize_domain(domain)
        return await self.db.read(lambda s: store.list_users(s, name))

    async def delete_user(self, email: str) -> Account:
        """
        Remove the account and its credentials.  Its mail is not destroyed:
        the Maildir is moved aside under C{mail/.deleted/} for the operator.
        """
        address = normalize_address(email)
        account = await self.db.write(lambda s: store.delete_user(s, address))
        self.routes.clear()
        await self._hash(self.mailstore.archive_user_files, address)
        return account

    async def set_password(self, email: str, password: str) -> None:
        address = normalize_address(email)
        check_password_strength(password)
        password_hash = await self._hash(passwords.hash_password, password)
        await self.db.write(lambda s: store.set_password_hash(s, address, password_hash))

    async def set_admin(self, email: str, is_admin: bool) -> Account:
        """
        Give or take administration rights; the account as it now is.

        @raise NotFound: no such user.
        """
        address = normalize_address(email)
        return await self.db.write(lambda s: store.set_admin(s, address, is_admin))

    async def authenticate(self, email: str, password: str) -> Account | None:
        """
        The account if C{password} is its password or one of its app
        passwords; L{None} otherwise (also for unknown users, after the
        same amount of work).
        """
        checked = await self.authenticate_with_proof(email, password)
        return None if checked is None else checked.account

    async def authenticate_with_proof(self, email: str, password: str) -> CheckedPassword | None:
        """
        L{authenticate}, with what the check relied on, so that a cache of
        verified passwords can ask L{recheck} whether it still holds.
        """
        try:
            address = normalize_address(email)
        except InvalidAddress:
            return None
        found = await self.db.read(lambda s: store.password_hash_of(s, address))
        if found is None:
            await self._hash(passwords.verify_password, passwords.dummy_hash(), password)
            return None
        account, password_hash = found
        if await self._hash(passwords.verify_password, password_hash, password):
            if passwords.needs_rehash(password_hash):
                password_hash = await self._hash(passwords.hash_password, password)
                await self.db.write(lambda s: store.set_password_hash(s, address, password_hash))
            return CheckedPassword(account, password_hash=password_hash)
        digest = passwords.secret_digest(password)
        found_account = await self.db.write(
            lambda s: store.user_by_app_password(s, address, digest)
        )
        if found_account is None:
            return None
        return CheckedPassword(found_account, app_password_digest=digest)

    async def recheck(self, checked: CheckedPassword) -> Account | None:
        """
        The account, if the password C{checked} earlier would still pass:
        its password unchanged, or its app password not revoked, and the
        account not deleted.  One database read, no password hashing.
        """
        user_id = checked.account.id
        return await self.db.read(
            lambda s: store.account_if_credential_current(
                s, user_id, checked.password_hash, checked.app_password_digest
            )
        )

    async def authenticate_token(self, token: str) -> Account | None:
        digest = passwords.secret_digest(token)
        return await self.db.write(lambda s: store.user_by_token(s, digest))

    # -- aliases -----------------------------------------------------------

    async def add_alias(self, alias: str, target: str) -> bool:
        source = normalize_alias_source(alias)
        destination = normalize_address(target)
        local_domains = await self.list_domains()
        if source.rpartition("@")[2] not in local_domains:
            raise AccountError(f"{alias}: {source.rpartition('@')[2]} is not a local domain")
        added = await self.db.write(lambda s: store.add_alias(s, source, destination))
        self.routes.clear()
        return added

    async def list_aliases(self) -> list[tuple[str, str]]:
        return await self.db.read(store.list_aliases)

    async def delete_alias(self, alias: str, target: str | None = None) -> int:
        source = normalize_alias_source(alias)
        destination = None if target is None else normalize_address(target)
        removed = await self.db.write(lambda s: store.delete_alias(s, source, destination))
        self.routes.clear()
        return removed

    async def resolve(self, address: str) -> Resolution:
        """
        Where mail to C{address} goes: an account, an alias (followed
        recursively, loops cut), C{user+tag@} as C{user@}, then the
        domain's catch-all.  Foreign addresses resolve to themselves as
        remote; unknown local ones to nothing.  A route found recently may
        come from L{routes}.
        """
        normalized = normalize_address(address)
        cached = self.routes.get(normalized)
        if cached is not None:
            return cached
        domains = self.routes.local_domains()
        if domains is None:
            domains = frozenset(await self.db.read(store.list_domains))
            self.routes.set_local_domains(domains)
        if normalized.rpartition("@")[2] not in domains:
            return Resolution((), (normalized,), local_domain=False)
        resolution = await self.db.read(lambda s: self._resolve(s, normalized))
        self.routes.put(normalized, resolution)
        return resolution

    async def resolve_or_none(self, address: str) -> Resolution | None:
        """
        L{resolve}, or L{None} when the address is not one gk accepts as a
        local address (e.g. a quoted local part); one database trip either way.
        """
        try:
            return await self.resolve(address)
        except InvalidAddress:
            return None

    async def may_send_as(self, account: Account, address: str) -> bool:
        """
        Whether C{account} may use C{address} as its sender: its own
        address, C{own+tag@}, or an alias that leads to it.  A catch-all
        does not count, or its target could send as anyone in the domain.
        """
        try:
            normalized = normalize_address(address)
        except InvalidAddress:
            return False
        if normalized == account.email:
            return True
        resolution = await self.db.read(lambda s: self._resolve(s, normalized, catch_all=False))
        return any(owner.id == account.id for owner in resolution.local)

    async def owned_addresses(self, account: Account, addresses: Iterable[str]) -> frozenset[str]:
        """
        Those of C{addresses} (as given) that L{may_send_as} allows
        C{account} to use, in one database trip for all of them.
        """
        normalized: dict[str, str] = {}
        for address in addresses:
            try:
                normalized[address] = normalize_address(address)
            except InvalidAddress:
                continue
        own = {a for a, n in normalized.items() if n == account.email}
        others = {a: n for a, n in normalized.items() if a not in own}
        if not others:
            return frozenset(own)

        def resolve(session: Session) -> set[str]:
            # Most addresses of a meeting are elsewhere: one query rules them out.
            domains = set(store.list_domains(session))
            return {
                address
                for address, n in others.items()
                if n.rpartition("@")[2] in domains
                and any(o.id == account.id for o in self._resolve(session, n, False).local)
            }

        return frozenset(own | await self.db.read(resolve))

    def _resolve(self, session: Session, address: str, catch_all: bool = True) -> Resolution:
        local: dict[int, Account] = {}
        remote: list[str] = []
        seen: set[str] = set()
        pending = [(address, 0)]
        while pending:
            current, depth = pending.pop(0)
            if current in seen or depth > self.MAX_ALIAS_DEPTH:
                continue
            seen.add(current)
            if not store.domain_exists(session, current.rpartition("@")[2]):
                if current == address:
                    return Resolution((), (address,), local_domain=False)
                remote.append(current)
                continue
            account = store.get_user(session, current)
            if account is not None:
                local[account.id] = account
                continue
            targets = self._aliases_of(session, current, catch_all)
            pending.extend((target, depth + 1) for target in targets)
        return Resolution(tuple(local.values()), tuple(dict.fromkeys(remote)))

    @staticmethod
    def _aliases_of(session: Session, address: str, catch_all: bool) -> list[str]:
        """
        Where an address of a local domain that is no account goes: its
        aliases, else C{user+tag@} as C{user@}, else the domain's catch-all.
        """
        targets = store.alias_targets(session, address)
        if targets:
            return targets
        local_part, _, domain = address.rpartition("@")
        base, plus, _tag = local_part.partition("+")
        if plus and base:
            return [f"{base}@{domain}"]
        return store.alias_targets(session, f"@{domain}") if catch_all else []

    # -- app passwords and tokens ---------------------------------------------

    async def create_app_password(self, email: str, name: str) -> str:
        """Make a new app password; the secret is returned once, stored hashed."""
        address = normalize_address(email)
        secret = passwords.generate_password(groups=4, group_size=6)
        digest = passwords.secret_digest(secret)
        await self.db.write(lambda s: store.add_app_password(s, address, check_name(name), digest))
        return secret

    async def list_app_passwords(self, email: str | None = None) -> list[Credential]:
        address = None if email is None else normalize_address(email)
        return await self.db.read(lambda s: store.list_app_passwords(s, address))

    async def revoke_app_password(self, email: str, name: str) -> None:
        address = normalize_address(email)
        await self.db.write(lambda s: store.revoke_app_password(s, address, name))

    async def create_token(self, email: str, name: str) -> str:
        """Make a new API token; returned once, stored hashed."""
        address = normalize_address(email)
        token = passwords.generate_token()
        digest = passwords.secret_digest(token)
        await self.db.write(lambda s: store.add_token(s, address, check_name(name), digest))
        return token

    async def list_tokens(self, email: str | None = None) -> list[Credential]:
        address = None if email is None else normalize_address(email)
        return await self.db.read(lambda s: store.list_tokens(s, address))

    async def revoke_token(self, email: str, name: str) -> None:
        address = normalize_address(email)
        await self.db.write(lambda s: store.revoke_token(s, address, name))


def normalize_alias_source(alias: str) -> str:
    """An alias address, or C{@domain} for a catch-all."""
    if alias.strip().startswith("@"):
        return "@" + normalize_domain(alias.strip()[1:])
    return normalize_address(alias)


MIN_PASSWORD_LENGTH = 10


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password != password.strip() or any(ord(c) < 0x20 for c in password):
        raise AccountError("the password must not have control characters or outer spaces")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise AccountError("the password is not valid Unicode text") from None


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 0x20 for c in name):
        raise AccountError("a name must be 1 to 100 printable characters")
    return name
