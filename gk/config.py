"""
gk's configuration: one TOML file, validated as a whole when it is loaded.

The schema is the one promised to operators in ``interface.md``.  Every
section is a frozen dataclass; L{load_config} reads the file, applies
``GK_<SECTION>__<KEY>`` environment overrides, resolves relative paths
against the config file's folder and checks every value, so that a bad
config stops gk before anything starts, with one clear message
(L{ConfigError}).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gk.errors import GkError
from gk.security.policy import SecurityPolicy

ENV_PREFIX = "GK_"


class ConfigError(GkError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class ServerConfig:
    hostname: str = "localhost"
    domains: list[str] = field(default_factory=list)
    data_dir: Path = Path("/var/lib/gk")


@dataclass(frozen=True)
class DatabaseConfig:
    #: Empty means ``sqlite:///<data_dir>/gk.sqlite3``.
    url: str = ""


@dataclass(frozen=True)
class TLSConfig:
    #: Empty means ``<data_dir>/tls/cert.pem`` and ``key.pem``.
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class SMTPConfig:
    listen: list[str] = field(default_factory=lambda: ["tcp:25"])
    max_message_size: int = 26214400
    max_recipients: int = 100


@dataclass(frozen=True)
class SubmissionConfig:
    listen: list[str] = field(default_factory=lambda: ["tcp:587"])
    tls_listen: list[str] = field(default_factory=lambda: ["tcp:465"])


@dataclass(frozen=True)
class IMAPConfig:
    listen: list[str] = field(default_factory=lambda: ["tcp:143"])
    tls_listen: list[str] = field(default_factory=lambda: ["tcp:993"])


@dataclass(frozen=True)
class HTTPConfig:
    listen: list[str] = field(default_factory=lambda: ["tcp:8080"])
    tls_listen: list[str] = field(default_factory=list)
    public_url: str = "http://localhost:8080/"


@dataclass(frozen=True)
class DNSConfig:
    nameservers: list[str] = field(default_factory=list)
    timeout: float = 5.0


@dataclass(frozen=True)
class DeliveryConfig:
    """The outbound queue: routing, TLS, retries (times in seconds)."""

    #: Run the delivery worker in this process (one process per database).
    worker: bool = True
    #: "host:port" of a relay that takes every outgoing message; "" = MX lookup.
    smarthost: str = ""
    smarthost_username: str = ""
    smarthost_password: str = ""
    #: How to reach the smarthost: "starttls" (required), "implicit" or "none".
    smarthost_tls: str = "starttls"
    #: The port of remote MX hosts (25; another only for tests or odd networks).
    mx_port: int = 25
    #: Domains whose MX must offer TLS with a certificate valid for its name.
    require_tls_domains: list[str] = field(default_factory=list)
    #: Honour the MTA-STS policies (RFC 8461) that domains publish.
    mta_sts: bool = True
    #: A PEM bundle of CAs for verified TLS; "" = the system's.
    ca_file: str = ""
    first_retry: float = 120.0
    max_retry_interval: float = 3600.0
    max_lifetime: float = 5 * 86400.0
    delay_warning: float = 4 * 3600.0
    #: Outbound connections at once (one per destination domain at a time).
    concurrency: int = 20
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.smarthost_tls not in ("starttls", "implicit", "none"):
            raise ValueError('smarthost_tls must be "starttls", "implicit" or "none"')
        if not 0 < self.mx_port < 65536:
            raise ValueError("mx_port must be a port number")
        for key in ("first_retry", "max_retry_interval", "max_lifetime", "connect_timeout"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be positive")
        if self.max_retry_interval < self.first_retry:
            raise ValueError("max_retry_interval must be at least first_retry")
        if self.delay_warning < 0:
            raise ValueError("delay_warning must not be negative (0: no warnings)")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if bool(self.smarthost_username) != bool(self.smarthost_password):
            raise ValueError("smarthost_username and smarthost_password go together")
        if self.smarthost_username and self.smarthost_tls == "none":
            raise ValueError('a smarthost password is never sent without TLS: smarthost_tls "none"')


@dataclass(frozen=True)
class AssistantConfig:
    ollama_url: str = "http://127.0.0.1:11434"
    model: str = "qwen3:8b"
    #: The users' time zone (IANA name): "tomorrow" and times without an
    #: offset are read in it, and the system prompt states it.
    timezone: str = "UTC"
    #: Model turns (each may call tools) before a request is cut short.
    max_steps: int = 8
    #: Seconds one model answer may take before the turn is abandoned.
    timeout: float = 120.0


@dataclass(frozen=True)
class LogConfig:
    #: ``text`` (Twisted's human-readable lines) or ``json`` (one JSON object a line).
    format: str = "text"


@dataclass(frozen=True)
class Config:
    """
    The whole, validated configuration.

    @ivar path: the file it was read from (absolute), or L{None} when built
        in memory.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    imap: IMAPConfig = field(default_factory=IMAPConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    dns: DNSConfig = field(default_factory=DNSConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    assistant: AssistantConfig = field(default_factory=AssistantConfig)
    log: LogConfig = field(default_factory=LogConfig)
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    path: Path | None = None

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.server.data_dir / 'gk.sqlite3'}"

    @property
    def tls_cert_path(self) -> Path:
        return self.tls.cert or self.server.data_dir / "tls" / "cert.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.tls.key or self.server.data_dir / "tls" / "key.pem"

    @property
    def mail_dir(self) -> Path:
        return self.server.data_dir / "mail"

    @property
    def spool_dir(self) -> Path:
        return self.server.data_dir / "spool"

    def listeners(self) -> list[tuple[str, str, bool]]:
        """
        Every configured listener as C{(role, endpoint description, implicit_tls)}.
        """
        result: list[tuple[str, str, bool]] = []
        for role in ("smtp", "submission", "imap", "http"):
            section = getattr(self, role)
            result.extend((role, desc, False) for desc in section.listen)
            result.extend((role, desc, True) for desc in getattr(section, "tls_listen", []))
        return result


_SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name != "path"
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return "a list of strings"
    if tp is Path or tp == (Path | None):
        return "a path"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, str(tp)
    )


def _coerce(where: str, tp: Any, value: Any, base: Path) -> Any:
    """Check C{value} against the field type C{tp}; resolve paths against C{base}."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be {_type_name(tp)}")
        return list(value) if origin is list else tuple(value)
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be {_type_name(tp)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where} must be {_type_name(tp)}")
    if not isinstance(value, tp):
        raise ConfigError(f"{where} must be {_type_name(tp)}")
    return value


def _parse_env_value(tp: Any, raw: str) -> Any:
    """
    Read one environment override.  Lists take a TOML array (C{'["a", "b"]'})
    or a comma-separated list; every other type takes a TOML value, with a
    bare word falling back to a string.
    """
    if typing.get_origin(tp) in (list, tuple):
        text = raw.strip()
        if text.startswith("["):
            return _toml_value(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    if tp is str or tp is Path or tp == (Path | None):
        return raw
    return _toml_value(raw)


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """
    Return a copy of C{raw} with every C{GK_<SECTION>__<KEY>} variable applied.

    @raise ConfigError: a variable names a section or key that does not exist.
    """
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        section_type = _SECTIONS.get(section)
        if section_type is None:
            raise ConfigError(f"environment variable {name}: no section [{section}]")
        hints = typing.get_type_hints(section_type)
        if key not in hints:
            raise ConfigError(f"environment variable {name}: no key {key!r} in [{section}]")
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"[{section}] must be a table")
        target[key] = _parse_env_value(hints[key], value)
    return merged


def build_config(raw: dict[str, Any], base: Path, path: Path | None = None) -> Config:
    """
    Turn parsed TOML into a validated L{Config}; relative paths are taken
    relative to C{base}.
    """
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        section_type = _SECTIONS.get(name)
        if section_type is None:
            raise ConfigError(f"unknown section [{name}]")
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table")
        hints = typing.get_type_hints(section_type)
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            if key not in hints:
                raise ConfigError(f"unknown key {key!r} in [{name}]")
            kwargs[key] = _coerce(f"[{name}] {key}", hints[key], item, base)
        try:
            sections[name] = section_type(**kwargs)
        except ValueError as e:
            # Sections that check their own ranges (e.g. [security]).
            raise ConfigError(f"[{name}] {e}") from None
    config = Config(**sections, path=path)
    config = dataclasses.replace(
        config, database=DatabaseConfig(url=_resolve_database_url(config.database_url, base))
    )
    validate(config)
    return config


def _resolve_database_url(url: str, base: Path) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"[database] url is not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        database = Path(parsed.database)
        if not database.is_absolute():
            return parsed.set(database=str(base / database)).render_as_string(hide_password=False)
    return url


def validate(config: Config) -> None:
    """
    Check what the types alone do not: host names, endpoint strings, URLs,
    limits.

    @raise ConfigError: the first problem found.
    """
    from gk.listeners import check_endpoint

    hostname = config.server.hostname
    if not hostname or any(c.isspace() for c in hostname):
        raise ConfigError("[server] hostname must be a host name")
    for domain in config.server.domains:
        if not _looks_like_domain(domain):
            raise ConfigError(f"[server] domains: {domain!r} is not a domain name")
    for role, desc, _tls in config.listeners():
        key = "tls_listen" if _tls else "listen"
        try:
            check_endpoint(desc)
        except ValueError as e:
            raise ConfigError(f"[{role}] {key}: bad endpoint {desc!r}: {e}") from None
    if config.smtp.max_message_size < 1024:
        raise ConfigError("[smtp] max_message_size must be at least 1024 bytes")
    if config.smtp.max_recipients < 1:
        raise ConfigError("[smtp] max_recipients must be at least 1")
    if config.dns.timeout <= 0:
        raise ConfigError("[dns] timeout must be positive")
    for server in config.dns.nameservers:
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
        if not host or not port.isdigit():
            raise ConfigError(f"[dns] nameservers: {server!r} is not host or host:port")
    if config.delivery.smarthost:
        host, _, port = config.delivery.smarthost.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("[delivery] smarthost must be host:port")
    for key, url in (
        ("[http] public_url", config.http.public_url),
        ("[assistant] ollama_url", config.assistant.ollama_url),
    ):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{key} must be an http:// or https:// URL")
    try:
        ZoneInfo(config.assistant.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(
            f"[assistant] timezone: {config.assistant.timezone!r} is not an IANA time zone"
        ) from None
    if config.assistant.max_steps < 1:
        raise ConfigError("[assistant] max_steps must be at least 1")
    if config.assistant.timeout <= 0:
        raise ConfigError("[assistant] timeout must be positive")
    if config.log.format not in ("text", "json"):
        raise ConfigError('[log] format must be "text" or "json"')
    if (config.tls.cert is None) != (config.tls.key is None):
        raise ConfigError("[tls] cert and key go together: set both or neither")


def _looks_like_domain(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return (
        0 < len(name) <= 253
        and len(labels) >= 1
        and all(
            0 < len(label) <= 63
            and label[0] != "-"
            and label[-1] != "-"
            and all(c.isalnum() or c == "-" for c in label)
            for label in labels
        )
    )


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """
    Read, override from the environment, and validate the config file.

    @raise ConfigError: the file is missing, unreadable, not TOML, or invalid.
    """
    file = Path(path).expanduser().absolute()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {file} cannot be read: {e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {file} is not valid TOML: {e}") from None
    raw = apply_env_overrides(raw, os.environ if environ is None else environ)
    return build_config(raw, file.parent, path=file)
