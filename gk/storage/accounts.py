"""
Account data access: domains, users, aliases, app passwords and API tokens.

Blocking functions that take a L{Session}; they run in the database's
worker threads (L{gk.storage.database.Database.read}/C{write}) and never
hash passwords themselves (the caller does that off the reactor too).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Result, delete, func, select
from sqlalchemy.orm import Session

from gk.errors import GkError
from gk.storage.models import Alias, APIToken, AppPassword, Domain, MailFolder, Message, User


class AccountError(GkError):
    """A request about accounts that cannot be done (the message says why)."""


class NotFound(AccountError):
    pass


class AlreadyExists(AccountError):
    pass


@dataclass(frozen=True)
class Account:
    """A user as the rest of gk sees it (no password hash)."""

    id: int
    email: str
    is_admin: bool
    quota_bytes: int | None
    created: datetime.datetime

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.email.rpartition("@")[0]


@dataclass(frozen=True)
class Credential:
    """An app password or API token, without its secret."""

    id: int
    email: str
    name: str
    created: datetime.datetime
    last_used: datetime.datetime | None


def _rowcount(result: Result[Any]) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _account(user: User) -> Account:
    return Account(user.id, user.email, user.is_admin, user.quota_bytes, user.created)


# -- domains -------------------------------------------------------------


def add_domain(session: Session, name: str) -> bool:
    """Add C{name} (normalised); return whether it was new."""
    if session.scalar(select(Domain.id).where(Domain.name == name)) is not None:
        return False
    session.add(Domain(name=name))
    session.flush()
    return True


def list_domains(session: Session) -> list[str]:
    return list(session.scalars(select(Domain.name).order_by(Domain.name)))


def domain_exists(session: Session, name: str) -> bool:
    return session.scalar(select(Domain.id).where(Domain.name == name)) is not None


def delete_domain(session: Session, name: str) -> None:
    domain = session.scalar(select(Domain).where(Domain.name == name))
    if domain is None:
        raise NotFound(f"no domain {name}")
    users = session.scalar(
        select(func.count()).select_from(User).where(User.domain_id == domain.id)
    )
    if users:
        raise AccountError(f"domain {name} still has {users} user(s); delete them first")
    session.execute(delete(Alias).where(Alias.source.like(f"%@{name}")))
    session.delete(domain)


# -- users ---------------------------------------------------------------


def add_user(
    session: Session,
    email: str,
    password_hash: str,
    is_admin: bool = False,
    quota_bytes: int | None = None,
) -> Account:
    local, _, domain_name = email.rpartition("@")
    domain = session.scalar(select(Domain).where(Domain.name == domain_name))
    if domain is None:
        raise NotFound(f"domain {domain_name} is not a local domain (gk domain add {domain_name})")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AlreadyExists(f"user {email} already exists")
    if session.scalar(select(Alias.id).where(Alias.source == email)) is not None:
        raise AlreadyExists(f"{email} is an alias; delete the alias first")
    user = User(
        domain_id=domain.id,
        local_part=local,
        email=email,
        password_hash=password_hash,
        is_admin=is_admin,
        quota_bytes=quota_bytes,
    )
    session.add(user)
    session.flush()
    return _account(user)


def get_user(session: Session, email: str) -> Account | None:
    user = session.scalar(select(User).where(User.email == email))
    return None if user is None else _account(user)


def get_user_by_id(session: Session, user_id: int) -> Account | None:
    user = session.get(User, user_id)
    return None if user is None else _account(user)


def password_hash_of(session: Session, email: str) -> tuple[Account, str] | None:
    user = session.scalar(select(User).where(User.email == email))
    return None if user is None else (_account(user), user.password_hash)


def list_users(session: Session, domain: str | None = None) -> list[Account]:
    query = select(User).order_by(User.email)
    if domain is not None:
        query = query.join(Domain).where(Domain.name == domain)
    return [_account(u) for u in session.scalars(query)]


def set_password_hash(session: Session, email: str, password_hash: str) -> None:
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"no user {email}")
    user.password_hash = password_hash


def delete_user(session: Session, email: str) -> Account:
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"no user {email}")
    account = _account(user)
    # Explicit deletes rather than relying on ON DELETE CASCADE, which
    # SQLite only honours with foreign keys enabled on that connection.
    folder_ids = select(MailFolder.id).where(MailFolder.user_id == user.id)
    session.execute(delete(Message).where(Message.folder_id.in_(folder_ids)))
    session.execute(delete(MailFolder).where(MailFolder.user_id == user.id))
    session.execute(delete(AppPassword).where(AppPassword.user_id == user.id))
    session.execute(delete(APIToken).where(APIToken.user_id == user.id))
    session.delete(user)
    return account


def set_quota(session: Session, email: str, quota_bytes: int | None) -> None:
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"no user {email}")
    user.quota_bytes = quota_bytes


def set_admin(session: Session, email: str, is_admin: bool) -> Account:
    """Make C{email} an administrator or not; the account as it now is."""
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"no user {email}")
    user.is_admin = is_admin
    session.flush()
    return _account(user)


# -- aliases -------------------------------------------------------------


def add_alias(session: Session, source: str, target: str) -> bool:
    if session.scalar(select(User.id).where(User.email == source)) is not None:
        raise AlreadyExists(f"{source} is a user; an alias cannot shadow it")
    exists = session.scalar(select(Alias.id).where(Alias.source == source, Alias.target == target))
    if exists is not None:
        return False
    session.add(Alias(source=source, target=target))
    session.flush()
    return True


def list_aliases(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(select(Alias.source, Alias.target).order_by(Alias.source, Alias.target))
    return [(s, t) for s, t in rows]


def delete_alias(session: Session, source: str, target: str | None = None) -> int:
    query = delete(Alias).where(Alias.source == source)
    if target is not None:
        query = query.where(Alias.target == target)
    count = _rowcount(session.execute(query))
    if not count:
        raise NotFound(f"no alias {source}" + (f" -> {target}" if target else ""))
    return count


def alias_targets(session: Session, source: str) -> list[str]:
    return list(session.scalars(select(Alias.target).where(Alias.source == source)))


# -- app passwords and tokens ---------------------------------------------


def _user_id(session: Session, email: str) -> int:
    user_id = session.scalar(select(User.id).where(User.email == email))
    if user_id is None:
        raise NotFound(f"no user {email}")
    return user_id


def add_app_password(session: Session, email: str, name: str, digest: str) -> None:
    user_id = _user_id(session, email)
    taken = select(AppPassword.id).where(AppPassword.user_id == user_id, AppPassword.name == name)
    if session.scalar(taken) is not None:
        raise AlreadyExists(f"{email} already has an app password named {name!r}")
    session.add(AppPassword(user_id=user_id, name=name, secret_hash=digest))
    session.flush()


def add_token(session: Session, email: str, name: str, digest: str) -> None:
    user_id = _user_id(session, email)
    taken = select(APIToken.id).where(APIToken.user_id == user_id, APIToken.name == name)
    if session.scalar(taken) is not None:
        raise AlreadyExists(f"{email} already has a token named {name!r}")
    session.add(APIToken(user_id=user_id, name=name, token_hash=digest))
    session.flush()


def list_app_passwords(session: Session, email: str | None = None) -> list[Credential]:
    query = select(AppPassword, User.email).join(User, AppPassword.user_id == User.id)
    if email is not None:
        query = query.where(User.email == email)
    return [
        Credential(p.id, e, p.name, p.created, p.last_used)
        for p, e in session.execute(query.order_by(User.email, AppPassword.name))
    ]


def list_tokens(session: Session, email: str | None = None) -> list[Credential]:
    query = select(APIToken, User.email).join(User, APIToken.user_id == User.id)
    if email is not None:
        query = query.where(User.email == email)
    return [
        Credential(t.id, e, t.name, t.created, t.last_used)
        for t, e in session.execute(query.order_by(User.email, APIToken.name))
    ]


def revoke_app_password(session: Session, email: str, name: str) -> None:
    user_id = _user_id(session, email)
    query = delete(AppPassword).where(AppPassword.user_id == user_id, AppPassword.name == name)
    if not _rowcount(session.execute(query)):
        raise NotFound(f"{email} has no app password named {name!r}")


def revoke_token(session: Session, email: str, name: str) -> None:
    user_id = _user_id(session, email)
    query = delete(APIToken).where(APIToken.user_id == user_id, APIToken.name == name)
    if not _rowcount(session.execute(query)):
        raise NotFound(f"{email} has no token named {name!r}")


def user_by_app_password(session: Session, email: str, digest: str) -> Account | None:
    """The user C{email} if C{digest} is one of its app passwords; marks it used."""
    row = session.execute(
        select(AppPassword, User)
        .join(User, AppPassword.user_id == User.id)
        .where(User.email == email, AppPassword.secret_hash == digest)
    ).first()
    if row is None:
        return None
    password, user = row
    password.last_used = datetime.datetime.now(datetime.UTC)
    return _account(user)


def account_if_credential_current(
    session: Session, user_id: int, password_hash: str | None, app_password_digest: str | None
) -> Account | None:
    """
    The user C{user_id} if its password hash is still C{password_hash} or,
    when that is L{None}, it still has the app password C{app_password_digest}:
    whether a password checked earlier would still pass (read-only).
    """
    # Columns, not an ORM object: this runs on every DAV request.
    row = session.execute(
        select(
            User.id, User.email, User.is_admin, User.quota_bytes, User.created,
            User.password_hash,
        ).where(User.id == user_id)
    ).one_or_none()  # fmt: skip
    if row is None:
        return None
    account = Account(row.id, row.email, row.is_admin, row.quota_bytes, row.created)
    if password_hash is not None:
        return account if row.password_hash == password_hash else None
    found = session.scalar(
        select(AppPassword.id).where(
            AppPassword.user_id == user_id, AppPassword.secret_hash == app_password_digest
        )
    )
    return account if found is not None else None


def user_by_token(session: Session, digest: str) -> Account | None:
    """The user owning the token with C{digest}; marks it used."""
    row = session.execute(
        select(APIToken, User)
        .join(User, APIToken.user_id == User.id)
        .where(APIToken.token_hash == digest)
    ).first()
    if row is None:
        return None
    token, user = row
    token.last_used = datetime.datetime.now(datetime.UTC)
    return _account(user)
