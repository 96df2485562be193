"""
What each C{gk} subcommand does (the parser and the runner are in L{gk.cli}).

Two kinds of command:

  - I{offline} ones (C{init}, C{migrate}) take C{(args, config_path)} and
    do blocking set-up work before any reactor runs, as the server does
    at start;
  - I{online} ones take C{(app, args)} and await the same
    L{gk.accounts.AccountService} methods the server uses, with the
    database and account services running.

Success prints plain lines on stdout, tab-separated where there are
columns; secrets (generated passwords, tokens) are printed once and never
stored in clear.  Failures raise L{GkError} (or its subclasses), which the
runner turns into one line on stderr.

Heavy modules (SQLAlchemy, Twisted's reactor) are imported inside the
functions so that C{gk --help} and usage errors stay fast.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from gk.errors import GkError

if TYPE_CHECKING:
    from gk.app import GkApp
    from gk.config import Config
    from gk.delivery.dns_records import Entry
    from gk.storage.accounts import Credential


# -- sizes -----------------------------------------------------------------

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*(?:([KMGT])(?:I?B)?|B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """
    C{"500M"} -> 524288000: a positive number of bytes with an optional
    binary unit K, M, G or T (C{"2G"}, C{"2GB"}, C{"2GiB"} are the same).

    @raise argparse.ArgumentTypeError: not such a size (a usage error).
    """
    match = _SIZE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (a positive number of bytes, or e.g. 500M, 2G)"
        )
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def format_size(size: int | None) -> str:
    """The shortest exact form L{parse_size} reads back; C{-} for no limit."""
    if size is None:
        return "-"
    for unit in ("T", "G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def format_time(moment: datetime.datetime | None) -> str:
    """RFC 3339 in UTC to the second, or C{-} for never."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit_rows(rows: Iterable[Iterable[str]]) -> None:
    """Print one tab-separated line per row."""
    for row in rows:
        print("\t".join(row))


def read_password(from_stdin: bool) -> str | None:
    """
    The password given on stdin (one line, its newline removed), or
    L{None} when the caller should generate one.  On a terminal the
    password is asked for without echo.

    @raise GkError: stdin is empty or not text.
    """
    if not from_stdin:
        return None
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    try:
        line = sys.stdin.readline()
    except UnicodeDecodeError:
        raise GkError("the password on stdin is not valid text") from None
    if not line:
        raise GkError("--password-stdin: no password on stdin")
    return line.removesuffix("\n").removesuffix("\r")


# -- offline: init and migrate --------------------------------------------------


def init(args: argparse.Namespace, config_path: Path) -> None:
    """
    Create whatever of a new instance is missing: the config file, the data
    directory, the database at the newest schema, a self-signed
    certificate.  What exists is kept as it is (and reported as kept).
    A half-present certificate (cert without key or the reverse) stops it
    before the database is touched.
    """
    from gk.accounts import normalize_domain
    from gk.config import load_config
    from gk.initconfig import InitSettings, write_config_file
    from gk.tls import write_self_signed

    chosen_dir = None if args.data_dir is None else str(Path(args.data_dir).absolute())
    settings = InitSettings.choose(
        normalize_domain(args.domain), args.hostname, args.dev, chosen_dir
    )
    config_path = config_path.absolute()
    folder_existed = config_path.parent.is_dir()
    created = write_config_file(config_path, settings)
    print(f"{'created' if created else 'kept'} config {config_path}")
    config = load_config(config_path)
    cert, key = config.tls_cert_path, config.tls_key_path
    _check_certificate_pair(cert, key)
    data_dir = config.server.data_dir
    # With --dev the data directory is the config's folder, made just now.
    data_existed = data_dir.is_dir() and (folder_existed or data_dir != config_path.parent)
    print(f"{'kept' if data_existed else 'created'} data directory {data_dir}")
    print(_prepare_database(config))
    if cert.exists():
        print(f"kept TLS certificate {cert}")
    else:
        write_self_signed(cert, key, config.server.hostname)
        print(f"created self-signed TLS certificate {cert} for {config.server.hostname}")


def migrate(args: argparse.Namespace, config_path: Path) -> None:
    """Bring the database to the newest schema and say what changed."""
    from gk.config import load_config

    print(_prepare_database(load_config(config_path)))


def _prepare_database(config: Config) -> str:
    """
    Run the server's start-up preparation (without the mail index repair)
    and describe what happened to the schema, as one line.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from twisted.internet import reactor

    from gk.app import GkApp
    from gk.storage import migrate

    app = GkApp.build(config, reactor)
    try:
        try:
            before = migrate.current_revision(app.db.engine)
        except SQLAlchemyError:
            before = None  # not there yet (or unreachable: prepare says so)
        app.prepare(repair=False)
        after = migrate.current_revision(app.db.engine)
    finally:
        app.db.dispose()
    url = make_url(config.database_url).render_as_string(hide_password=True)
    if before is None:
        return f"created database {url} at schema {after}"
    if before == after:
        return f"kept database {url} at schema {after} (the newest)"
    return f"upgraded database {url} from schema {before} to {after}"


def _check_certificate_pair(cert: Path, key: Path) -> None:
    """
    Both TLS files or neither must exist: writing a self-signed pair over
    half of the operator's would lose it.

    @raise GkError: only one of them exists.
    """
    if cert.exists() != key.exists():
        present, missing = (cert, key) if cert.exists() else (key, cert)
        raise GkError(f"TLS: {present} exists but {missing} does not; provide both or neither")


# -- online: users ------------------------------------------------------------


async def user_add(app: GkApp, args: argparse.Namespace) -> None:
    """Create an account; print the password when it was generated."""
    from gk.passwords import generate_password

    given = read_password(args.password_stdin)
    password = given if given is not None else generate_password()
    account = await app.accounts.create_user(
        args.email, password, is_admin=args.admin, quota_bytes=args.quota
    )
    print(f"created user {account.email}" + (" (admin)" if account.is_admin else ""))
    if given is None:
        print(f"password: {password}")


async def user_list(app: GkApp, args: argparse.Namespace) -> None:
    """One line per account: email, C{admin} or C{-}, quota, created."""
    accounts = await app.accounts.list_users()
    emit_rows(
        (
            a.email,
            "admin" if a.is_admin else "-",
            format_size(a.quota_bytes),
            format_time(a.created),
        )
        for a in accounts
    )


async def user_delete(app: GkApp, args: argparse.Namespace) -> None:
    """Delete an account and its credentials; its mail is moved aside, not destroyed."""
    account = await app.accounts.delete_user(args.email)
    print(f"deleted user {account.email} (its mail is kept under {app.config.mail_dir}/.deleted)")


async def user_passwd(app: GkApp, args: argparse.Namespace) -> None:
    """Set a new password; print it when it was generated."""
    from gk.accounts import normalize_address
    from gk.passwords import generate_password

    given = read_password(args.password_stdin)
    password = given if given is not None else generate_password()
    await app.accounts.set_password(args.email, password)
    print(f"changed the password of {normalize_address(args.email)}")
    if given is None:
        print(f"password: {password}")


# -- online: aliases and domains ------------------------------------------------


async def alias_add(app: GkApp, args: argparse.Namespace) -> None:
    from gk.accounts import normalize_address, normalize_alias_source

    added = await app.accounts.add_alias(args.alias, args.target)
    pair = f"{normalize_alias_source(args.alias)} -> {normalize_address(args.target)}"
    print(f"added alias {pair}" if added else f"kept alias {pair} (it exists)")


async def alias_list(app: GkApp, args: argparse.Namespace) -> None:
    """One line per alias: source (C{@domain} for a catch-all), target."""
    emit_rows(await app.accounts.list_aliases())


async def alias_delete(app: GkApp, args: argparse.Namespace) -> None:
    """Delete an alias (every target of it, or only C{TARGET})."""
    from gk.accounts import normalize_alias_source

    count = await app.accounts.delete_alias(args.alias, args.target)
    print(
        f"deleted {count} alias{'es' if count != 1 else ''} of {normalize_alias_source(args.alias)}"
    )


async def domain_add(app: GkApp, args: argparse.Namespace) -> None:
    from gk.accounts import normalize_domain

    added = await app.accounts.add_domain(args.domain)
    name = normalize_domain(args.domain)
    print(f"added domain {name}" if added else f"kept domain {name} (it exists)")


async def domain_list(app: GkApp, args: argparse.Namespace) -> None:
    for domain in await app.accounts.list_domains():
        print(domain)


async def domain_delete(app: GkApp, args: argparse.Namespace) -> None:
    """
    Delete a domain without users (its aliases go with it).  A domain of
    the config file is refused: gk would add it again at the next start.
    """
    from gk.accounts import normalize_domain

    name = normalize_domain(args.domain)
    refuse_config_domain(app.config, name)
    await app.accounts.delete_domain(name)
    print(f"deleted domain {name}")


def refuse_config_domain(config: Config, name: str) -> None:
    """
    Refuse to delete C{name} (normalised) when it is one of C{[server]
    domains}: gk would add it again at the next start.  The web admin
    shares this rule.

    @raise gk.storage.accounts.AccountError: it is.
    """
    from gk.accounts import normalize_domain
    from gk.storage.accounts import AccountError

    if name in (normalize_domain(d) for d in config.server.domains):
        raise AccountError(
            f"domain {name} is in [server] domains of the config file; remove it there first"
        )


# -- online: API tokens and app passwords -----------------------------------------


def _credential_rows(credentials: list[Credential]) -> list[tuple[str, str, str, str]]:
    return [
        (c.email, c.name, format_time(c.created), format_time(c.last_used)) for c in credentials
    ]


async def token_create(app: GkApp, args: argparse.Namespace) -> None:
    """Print a new bearer token, alone on its line (it cannot be shown again)."""
    print(await app.accounts.create_token(args.email, args.name))


async def token_list(app: GkApp, args: argparse.Namespace) -> None:
    """One line per token: email, name, created, last used (C{-}: never)."""
    emit_rows(_credential_rows(await app.accounts.list_tokens(args.email)))


async def token_revoke(app: GkApp, args: argparse.Namespace) -> None:
    from gk.accounts import normalize_address

    await app.accounts.revoke_token(args.email, args.name)
    print(f"revoked token {args.name!r} of {normalize_address(args.email)}")


async def app_password_create(app: GkApp, args: argparse.Namespace) -> None:
    """Print a new app password, alone on its line (it cannot be shown again)."""
    print(await app.accounts.create_app_password(args.email, args.name))


async def app_password_list(app: GkApp, args: argparse.Namespace) -> None:
    """One line per app password: email, name, created, last used (C{-}: never)."""
    emit_rows(_credential_rows(await app.accounts.list_app_passwords(args.email)))


async def app_password_revoke(app: GkApp, args: argparse.Namespace) -> None:
    from gk.accounts import normalize_address

    await app.accounts.revoke_app_password(args.email, args.name)
    print(f"revoked app password {args.name!r} of {normalize_address(args.email)}")


# -- online: DKIM keys and DNS records --------------------------------------------


# -- queue -----------------------------------------------------------------


async def queue_list(app: GkApp, args: argparse.Namespace) -> None:
    """One line per message, then one indented line per recipient."""
    entries = await app.queue.entries()
    if not entries:
        print("the queue is empty")
        return
    for entry in entries:
        print(
            f"{entry.queue_id}  {format_time(entry.created)}  {format_size(entry.size)}  "
            f"from=<{entry.sender}>"
        )
        for address, state, attempts, next_attempt, error in entry.recipients:
            due = f"  next={format_time(next_attempt)}" if state in ("pending", "deferred") else ""
            reason = f"  ({error})" if error else ""
            print(f"    {address}  {state}  attempts={attempts}{due}{reason}")


async def queue_retry(app: GkApp, args: argparse.Namespace) -> None:
    """
    Make a message's deferred recipients due now; the running server takes
    them at its next round (within a minute).
    """
    from gk.queue import NotQueued, normalize_queue_id

    queue_id = normalize_queue_id(args.queue_id)
    try:
        count = await app.queue.retry_now(queue_id)
    except NotQueued as e:
        raise GkError(f"{e} (see: gk queue list)") from None
    print(f"{queue_id}: {count} deferred recipient(s) due now")


async def queue_delete(app: GkApp, args: argparse.Namespace) -> None:
    """Remove a message and its spool file; it is not delivered, nobody is told."""
    from gk.queue import NotQueued

    try:
        queue_id = await app.queue.delete(args.queue_id)
    except NotQueued as e:
        raise GkError(f"{e} (see: gk queue list)") from None
    print(f"{queue_id}: deleted")


async def _local_domain(app: GkApp, name: str) -> str:
    """
    C{name} normalised (lower case, A-labels).

    @raise GkError: it is not a domain, or not a local one.
    """
    from gk.accounts import normalize_domain

    domain = normalize_domain(name)
    if not await app.accounts.is_local_domain(domain):
        raise GkError(f"{domain} is not a local domain (see: gk domain list)")
    return domain


async def dkim_keygen(app: GkApp, args: argparse.Namespace) -> None:
    """
    Make a DKIM key for a local domain and print its record: its name,
    its TXT value, and the two as one zone-file line.
    """
    from gk.delivery.dkim_sign import generate_key, key_directory
    from gk.delivery.dns_records import Record, zone_line

    domain = await _local_domain(app, args.domain)
    key = generate_key(
        key_directory(app.config.server.data_dir), domain, args.algorithm, args.selector, args.bits
    )
    print(f"created DKIM key {key.path} ({key.algorithm}, {key.bits} bits)")
    print(f"name: {key.dns_name}")
    print(f"value: {key.dns_value}")
    print(f"zone: {zone_line(Record(key.dns_name, 'TXT', key.dns_value))}")


async def dns(app: GkApp, args: argparse.Namespace) -> None:
    """Print every record to publish for a local domain, as zone-file lines."""
    from gk.delivery.dns_records import zone_lines

    domain = await _local_domain(app, args.domain)
    for line in zone_lines(dns_entries(app.config, domain)):
        print(line)


def dns_entries(config: Config, domain: str) -> list[Entry]:
    """
    The records (and comments) to publish for the local domain C{domain}
    (normalised), with its DKIM keys as they are on disk now: what C{gk
    dns} prints and the web admin shows.  Blocking (reads the key files).
    """
    from gk.delivery.dkim_sign import key_directory, read_keys
    from gk.delivery.dns_records import domain_records

    keys, problems = read_keys(key_directory(config.server.data_dir), domain)
    return domain_records(domain, config, keys, [str(p) for p in problems])
