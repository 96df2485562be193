"""
The C{gk} command: C{gk [--config FILE] COMMAND ...} (``interface.md``).

Contract with operators and scripts:

  - success: exit status 0, plain lines on stdout (tab-separated columns
    for lists, secrets alone or after C{password: });
  - failure: exactly one line C{gk: error: MESSAGE} on stderr and a
    non-zero status, never a traceback: 2 for a usage error (unknown
    command, missing or malformed argument, no config file named), 1 for
    everything else (bad config, unreachable database, a refused
    operation).

C{--config} defaults to the C{GK_CONFIG} environment variable.  Commands
use the asyncio reactor, like the server (see C{twisted/plugins/gk_plugin.py}),
and the same L{gk.app.GkApp} start-up and account service code paths.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

from gk import cli_commands as cmd
from gk.cli_commands import parse_size
from gk.errors import GkError

if TYPE_CHECKING:
    from gk.app import GkApp

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line is wrong; the message says how."""


class Action(Protocol):
    """What a parsed subcommand runs; raises on failure."""

    def __call__(self, args: argparse.Namespace, config_path: Path) -> None: ...


OnlineHandler = Callable[["GkApp", argparse.Namespace], Awaitable[None]]


class Parser(argparse.ArgumentParser):
    """An argument parser that raises L{UsageError} instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("gk").strip()
        where = f"{command}: " if command else ""
        hint = f" (see: {self.prog} --help)"
        raise UsageError(where + message + hint)


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[Parser]


# -- running -----------------------------------------------------------------


def install_reactor() -> None:
    """Install the asyncio reactor, as the server does, unless one is installed."""
    if "twisted.internet.reactor" in sys.modules:
        return
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)


class Online:
    """
    An L{Action} that runs C{handler(app, args)} on the reactor: load the
    config, prepare the app as the server does (schema, config domains),
    start the database and account services, await the handler under
    C{react}, stop the services.  The reactor stopping before the handler
    ends (SIGINT, SIGTERM) counts as an interruption.
    """

    def __init__(self, handler: OnlineHandler) -> None:
        self.handler = handler

    def __call__(self, args: argparse.Namespace, config_path: Path) -> None:
        from gk.config import load_config

        config = load_config(config_path)  # before the heavy imports: fails fast

        from twisted.internet import reactor, task
        from twisted.internet.defer import Deferred

        from gk.app import GkApp

        app = GkApp.build(config, reactor)
        ended = False

        async def session() -> None:
            nonlocal ended
            try:
                await self.handler(app, args)
            except Exception as e:
                # react turns SystemExit into the exit status without logging.
                raise SystemExit(report(e)) from None
            finally:
                ended = True

        try:
            app.prepare(repair=False)
            app.db.startService()
            app.accounts.startService()
            task.react(lambda _reactor: Deferred.fromCoroutine(session()))
        except SystemExit:
            if not ended:
                raise KeyboardInterrupt from None
            raise
        finally:
            if app.accounts.running:
                app.accounts.stopService()
            if app.db.running:
                app.db.stopService()
            app.db.dispose()


def report(error: BaseException) -> int:
    """Print C{error} as the one stderr line and return the exit status for it."""
    if isinstance(error, UsageError):
        status, message = EXIT_USAGE, str(error)
    elif isinstance(error, KeyboardInterrupt):
        status, message = EXIT_INTERRUPTED, "interrupted"
    else:
        status, message = EXIT_FAILURE, describe(error)
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    sys.stderr.write(f"gk: error: {text or type(error).__name__}\n")
    sys.stderr.flush()
    return status


def describe(error: BaseException) -> str:
    """A message for an operator: gk's own wording, or the best one-line summary."""
    if isinstance(error, GkError):
        return str(error)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(error, sqlalchemy_exc.SQLAlchemyError):
        reason = str(getattr(error, "orig", None) or error).strip()
        return f"database error: {reason}"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"unexpected {type(error).__name__}: {error}"


def config_path_of(args: argparse.Namespace) -> Path:
    """The config file from C{--config} or C{GK_CONFIG}; a usage error when neither is set."""
    name = args.config or os.environ.get("GK_CONFIG", "")
    if not name:
        raise UsageError("no config file: pass --config FILE or set GK_CONFIG")
    return Path(name).expanduser()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The C{gk} entry point; always ends the process with the command's status."""
    try:
        args = build_parser().parse_args(argv)
        config_path = config_path_of(args)
        action: Action = args.action
        install_reactor()
        action(args, config_path)
    except SystemExit:
        raise
    except BaseException as e:
        sys.exit(report(e))
    sys.exit(0)


# -- the command line -------------------------------------------------------------


def build_parser() -> Parser:
    """Every subcommand of ``interface.md`` (except queue, still to come)."""
    parser = Parser(
        prog="gk",
        description="Manage a gk instance: config, database, users, aliases, domains, "
        "API tokens, app passwords, DKIM keys and the DNS records to publish.",
    )
    parser.add_argument("--config", metavar="FILE", help="the gk config file (default: $GK_CONFIG)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_init(commands)
    _add_migrate(commands)
    _add_user(commands)
    _add_alias(commands)
    _add_domain(commands)
    _add_credentials(
        commands,
        "token",
        "API bearer token",
        "API bearer tokens",
        cmd.token_create,
        cmd.token_list,
        cmd.token_revoke,
    )
    _add_credentials(
        commands,
        "app-password",
        "app password",
        "app passwords (one per IMAP/SMTP/DAV client)",
        cmd.app_password_create,
        cmd.app_password_list,
        cmd.app_password_revoke,
    )
    _add_queue(commands)
    _add_dkim(commands)
    _add_dns(commands)
    return parser


def _group(commands: Subparsers, name: str, help: str) -> Subparsers:
    group = commands.add_parser(name, help=help, description=help)
    subparsers: Subparsers = group.add_subparsers(
        dest="action_name", metavar="ACTION", required=True
    )
    return subparsers


def _add_init(commands: Subparsers) -> None:
    p = commands.add_parser(
        "init",
        help="create the config file, data directory, database and TLS certificate",
        description="Create what is missing of a new instance: the config file (standard "
        "ports), the data directory, the database at the newest schema and a self-signed "
        "certificate. Running it again changes nothing that exists.",
    )
    p.add_argument("--domain", required=True, help="the first local mail domain")
    p.add_argument(
        "--hostname",
        metavar="FQDN",
        help="this server's name (default: the host's FQDN; localhost with --dev)",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="development: 127.0.0.1 high ports (SMTP 2525, "
        "submission 2587/2465, IMAP 2143/2993, HTTP 8080), data in the config file's folder",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where data goes (default: /var/lib/gk; the config file's folder with --dev)",
    )
    p.set_defaults(action=cmd.init)


def _add_migrate(commands: Subparsers) -> None:
    p = commands.add_parser("migrate", help="bring the database to the newest schema")
    p.set_defaults(action=cmd.migrate)


def _add_user(commands: Subparsers) -> None:
    users = _group(commands, "user", "manage accounts")
    add = users.add_parser("add", help="create an account (prints a generated password)")
    add.add_argument("email")
    _password_stdin(add)
    add.add_argument("--admin", action="store_true", help="make it an administrator")
    add.add_argument("--quota", type=parse_size, metavar="SIZE", help="e.g. 500M, 2G or bytes")
    add.set_defaults(action=Online(cmd.user_add))
    users.add_parser("list", help="list accounts: email, admin, quota, created").set_defaults(
        action=Online(cmd.user_list)
    )
    delete = users.add_parser("delete", help="delete an account (its mail is kept aside)")
    delete.add_argument("email")
    delete.set_defaults(action=Online(cmd.user_delete))
    passwd = users.add_parser("passwd", help="set a password (prints a generated one)")
    passwd.add_argument("email")
    _password_stdin(passwd)
    passwd.set_defaults(action=Online(cmd.user_passwd))


def _password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of generating one",
    )


def _add_alias(commands: Subparsers) -> None:
    aliases = _group(commands, "alias", "manage aliases")
    add = aliases.add_parser("add", help="forward ALIAS to TARGET (@domain: catch-all)")
    add.add_argument("alias")
    add.add_argument("target")
    add.set_defaults(action=Online(cmd.alias_add))
    aliases.add_parser("list", help="list aliases: alias, target").set_defaults(
        action=Online(cmd.alias_list)
    )
    delete = aliases.add_parser("delete", help="delete an alias (all targets, or TARGET)")
    delete.add_argument("alias")
    delete.add_argument("target", nargs="?")
    delete.set_defaults(action=Online(cmd.alias_delete))


def _add_domain(commands: Subparsers) -> None:
    domains = _group(commands, "domain", "manage local mail domains")
    for name, handler, help in (
        ("add", cmd.domain_add, "add a local domain"),
        ("delete", cmd.domain_delete, "delete a domain that has no users"),
    ):
        p = domains.add_parser(name, help=help)
        p.add_argument("domain")
        p.set_defaults(action=Online(handler))
    domains.add_parser("list", help="list local domains").set_defaults(
        action=Online(cmd.domain_list)
    )


def _add_credentials(
    commands: Subparsers,
    name: str,
    what: str,
    plural: str,
    create: OnlineHandler,
    list_: OnlineHandler,
    revoke: OnlineHandler,
) -> None:
    group = _group(commands, name, f"manage the {plural} of accounts")
    p = group.add_parser("create", help=f"make a new {what} and print it once")
    p.add_argument("email")
    p.add_argument("--name", required=True, help="what it is for, e.g. the client's name")
    p.set_defaults(action=Online(create))
    p = group.add_parser("list", help="list them: email, name, created, last used")
    p.add_argument("email", nargs="?", help="only this account's")
    p.set_defaults(action=Online(list_))
    p = group.add_parser("revoke", help=f"revoke the {what} NAME of EMAIL")
    p.add_argument("email")
    p.add_argument("name")
    p.set_defaults(action=Online(revoke))


def _add_queue(commands: Subparsers) -> None:
    queue = _group(commands, "queue", "look at and manage the outbound mail queue")
    queue.add_parser(
        "list",
        help="list queued messages: id, age, size, sender, and each recipient's state",
    ).set_defaults(action=Online(cmd.queue_list))
    retry = queue.add_parser("retry", help="make the deferred recipients of message ID due now")
    retry.add_argument("queue_id", metavar="ID")
    retry.set_defaults(action=Online(cmd.queue_retry))
    delete = queue.add_parser(
        "delete", help="remove message ID from the queue, undelivered (no bounce is sent)"
    )
    delete.add_argument("queue_id", metavar="ID")
    delete.set_defaults(action=Online(cmd.queue_delete))


def _add_dkim(commands: Subparsers) -> None:
    dkim = _group(commands, "dkim", "manage the DKIM keys that sign outbound mail")
    p = dkim.add_parser(
        "keygen",
        help="make a signing key for DOMAIN and print its DNS record",
        description="Make a DKIM signing key for the local domain DOMAIN under "
        "data_dir/dkim/DOMAIN/ and print the TXT record to publish. The server signs with "
        "it from the next message on: publish the record right away.",
    )
    p.add_argument("domain")
    p.add_argument(
        "--algorithm",
        choices=("rsa", "ed25519"),
        default="rsa",
        help="rsa (the default; every receiver checks it) or ed25519 (a second signature)",
    )
    p.add_argument("--selector", help="the key's name in DNS (default: gk for RSA, gked)")
    p.add_argument("--bits", type=int, metavar="N", help="RSA key size, 2048 (default) to 4096")
    p.set_defaults(action=Online(cmd.dkim_keygen))


def _add_dns(commands: Subparsers) -> None:
    p = commands.add_parser(
        "dns",
        help="print the DNS records to publish for DOMAIN (zone-file lines)",
        description="Print every DNS record to publish for the local domain DOMAIN as "
        "zone-file lines: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, autoconfig and SRV.",
    )
    p.add_argument("domain")
    p.set_defaults(action=Online(cmd.dns))
