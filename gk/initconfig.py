"""
The config file that C{gk init} writes.

L{InitSettings} holds what the operator chose on the command line;
L{render_config} turns it into a commented TOML file with every section of
``interface.md``; L{write_config_file} creates the file only when it does
not exist yet, after checking that gk would accept it.  Nothing here
touches the database or the certificate (see L{gk.cli_commands.init}).
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gk.config import (
    AssistantConfig,
    ConfigError,
    DNSConfig,
    LogConfig,
    SMTPConfig,
    build_config,
)

#: Where a production instance keeps its data unless told otherwise.
DEFAULT_DATA_DIR = "/var/lib/gk"

#: Listeners per role as (listen, tls_listen); SMTP has no implicit TLS.
STANDARD_LISTENERS: dict[str, tuple[list[str], list[str]]] = {
    "smtp": (["tcp:25"], []),
    "submission": (["tcp:587"], ["tcp:465"]),
    "imap": (["tcp:143"], ["tcp:993"]),
    "http": (["tcp:8080"], []),
}

_LOOPBACK = "interface=127.0.0.1"

#: ``make run``: loopback only, high ports that need no privileges.
DEV_LISTENERS: dict[str, tuple[list[str], list[str]]] = {
    "smtp": ([f"tcp:2525:{_LOOPBACK}"], []),
    "submission": ([f"tcp:2587:{_LOOPBACK}"], [f"tcp:2465:{_LOOPBACK}"]),
    "imap": ([f"tcp:2143:{_LOOPBACK}"], [f"tcp:2993:{_LOOPBACK}"]),
    "http": ([f"tcp:8080:{_LOOPBACK}"], []),
}

DEV_PUBLIC_URL = "http://127.0.0.1:8080/"


@dataclass(frozen=True)
class InitSettings:
    """
    The choices a new config file is made from.

    @ivar domain: the first local mail domain, already normalised.
    @ivar data_dir: written as it is; a relative path is relative to the
        config file's folder (as L{gk.config.load_config} reads it).
    """

    domain: str
    hostname: str
    data_dir: str
    listeners: dict[str, tuple[list[str], list[str]]]
    public_url: str

    @classmethod
    def choose(
        cls, domain: str, hostname: str | None, dev: bool, data_dir: str | None
    ) -> InitSettings:
        """
        Fill in the defaults: the host's FQDN as hostname (C{localhost}
        with C{dev}), C{/var/lib/gk} as data directory (the config file's
        own folder with C{dev}), the standard ports (loopback high ports
        with C{dev}).
        """
        if hostname is None:
            hostname = "localhost" if dev else socket.getfqdn()
        if data_dir is None:
            data_dir = "." if dev else DEFAULT_DATA_DIR
        if dev:
            return cls(domain, hostname, data_dir, DEV_LISTENERS, DEV_PUBLIC_URL)
        return cls(domain, hostname, data_dir, STANDARD_LISTENERS, f"http://{hostname}:8080/")


_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """
    C{value} as a TOML basic string: quotes, backslashes and control
    characters escaped, everything else (including non-ASCII) as it is.
    """
    out = []
    for char in value:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def render_config(settings: InitSettings) -> str:
    """The text of a complete, commented config file for C{settings}."""
    s = toml_string
    listen = {role: (toml_list(a), toml_list(b)) for role, (a, b) in settings.listeners.items()}
    smtp, dns = SMTPConfig(), DNSConfig()
    assistant, log = AssistantConfig(), LogConfig()
    return f"""\
# gk configuration, written by `gk init`.
# Listeners are lists of Twisted endpoint strings ("tcp:PORT:interface=ADDR");
# an empty list turns one off.  Relative paths are relative to this file's
# folder.  GK_<SECTION>__<KEY> environment variables override single values.

[server]
hostname = {s(settings.hostname)}  # greetings, Received headers, DKIM
domains = {toml_list([settings.domain])}  # local mail domains (also in the database)
data_dir = {s(settings.data_dir)}  # database, mail store, spool, keys

[database]
# Empty: the SQLite file gk.sqlite3 in data_dir.
# Any SQLAlchemy URL works, e.g. "postgresql+psycopg://gk@/gk".
url = ""

[tls]
# PEM chain and key.  Unset: data_dir/tls/cert.pem and data_dir/tls/key.pem,
# which `gk init` fills with a self-signed certificate.
# cert = "/etc/letsencrypt/live/mail.example.org/fullchain.pem"
# key = "/etc/letsencrypt/live/mail.example.org/privkey.pem"

[smtp]  # MX inbound: no AUTH, local domains only
listen = {listen["smtp"][0]}
max_message_size = {smtp.max_message_size}  # bytes
max_recipients = {smtp.max_recipients}

[submission]  # mail clients sending: AUTH after TLS
listen = {listen["submission"][0]}  # STARTTLS
tls_listen = {listen["submission"][1]}  # implicit TLS

[imap]
listen = {listen["imap"][0]}  # STARTTLS; LOGIN refused before TLS
tls_listen = {listen["imap"][1]}  # implicit TLS

[http]  # web UI, CalDAV/CardDAV, WebSocket, MCP, health and metrics
listen = {listen["http"][0]}
tls_listen = {listen["http"][1]}
public_url = {s(settings.public_url)}  # where users reach the web UI

[dns]  # every lookup: SPF, DKIM, DMARC, MX, MTA-STS, DNSBL
nameservers = {toml_list(dns.nameservers)}  # empty: the system resolver; e.g. ["127.0.0.1:5353"]
timeout = {dns.timeout!r}  # seconds for all lookups of one check together

[delivery]  # outbound queue
smarthost = ""  # "host:port"; empty: deliver by MX lookup

[assistant]
ollama_url = {s(assistant.ollama_url)}
model = {s(assistant.model)}

[log]
format = {s(log.format)}  # "text" or "json" (one JSON object a line)
"""


def write_config_file(path: Path, settings: InitSettings) -> bool:
    """
    Create the config file at C{path} (and its folder) unless it exists.

    The text is checked with the same validation as L{gk.config.load_config}
    before anything is written, so a bad hostname leaves no file behind.
    The file is readable by its owner only: it may come to hold a database
    password.

    @return: whether the file was created (C{False}: it existed and was
        left byte for byte as it was).
    @raise ConfigError: the settings do not make a valid config.
    @raise OSError: the file or its folder cannot be created.
    """
    if path.exists():
        return False
    text = render_config(settings)
    build_config(tomllib.loads(text), path.parent, path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("the config would hold a path that is not valid UTF-8") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True
