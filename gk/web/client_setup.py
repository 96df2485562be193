"""
What mail, calendar and contacts clients need to connect to gk, from the
config alone, and the two documents that hand it to them:

  - L{autoconfig_xml}: Thunderbird's autoconfiguration document
    (C{/.well-known/autoconfig/mail/config-v1.1.xml}): IMAP and SMTP
    submission servers with C{%EMAILADDRESS%} as the user name;
  - L{mobileconfig}: an Apple configuration profile (unsigned XML
    property list) with a mail account (C{com.apple.mail.managed}) and
    CalDAV and CardDAV accounts for one user.  It never holds a password:
    the device asks for it when the profile is installed.

Servers come from the config's listeners: C{tls_listen} endpoints are
implicit TLS (Thunderbird's C{SSL}), C{listen} endpoints STARTTLS; the
implicit TLS ones are listed first (RFC 8314 5.1).  A listener whose port
cannot be told from its endpoint string (port 0, a UNIX socket) is left
out, as in C{gk dns}.  Mail servers are named by C{[server] hostname};
CalDAV/CardDAV live at C{/dav/} of C{[http] public_url} when it is
HTTPS, else on the first C{[http] tls_listen} port of the hostname, else
at the plain-HTTP public URL (a development instance).

Pure functions: documents are built with C{xml.etree} and C{plistlib},
never by pasting text together, so an odd address or host name cannot
change their structure.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from gk.config import Config
from gk.delivery.dns_records import dav_location, endpoint_port

#: Thunderbird's names of the two kinds of security.
IMPLICIT_TLS = "SSL"
STARTTLS = "STARTTLS"
#: Where Thunderbird looks for the document on the mail domain's web server.
AUTOCONFIG_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"
#: The MIME type iOS and macOS install profiles from.
MOBILECONFIG_TYPE = "application/x-apple-aspen-config"
#: Namespace of the profile's stable UUIDs (installing it again replaces it).
_PROFILE_NAMESPACE = uuid.UUID("8f0f5f4e-3c43-4b0e-9d57-8a4f35d1f0b1")


@dataclass(frozen=True)
class MailServer:
    """An IMAP or SMTP submission server a client connects to."""

    host: str
    port: int
    #: L{IMPLICIT_TLS} or L{STARTTLS}.
    security: str

    @property
    def implicit_tls(self) -> bool:
        return self.security == IMPLICIT_TLS

    @property
    def security_label(self) -> str:
        return "SSL/TLS" if self.implicit_tls else "STARTTLS"


@dataclass(frozen=True)
class DavServer:
    """Where CalDAV and CardDAV clients connect: the DAV root's URL and its parts."""

    host: str
    port: int
    https: bool
    #: The DAV root, with its slashes (C{/dav/}).
    path: str

    @property
    def url(self) -> str:
        scheme = "https" if self.https else "http"
        default = 443 if self.https else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:  # an IPv6 literal
            netloc = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        return f"{scheme}://{netloc}{self.path}"

    def principal_url(self, email: str) -> str:
        """The user's principal (where clients find their calendars and address books)."""
        return f"{self.url}principals/{quote(email, safe='@+')}/"


@dataclass(frozen=True)
class ClientSetup:
    """Everything a client's set-up needs, derived from the config."""

    hostname: str
    imap: tuple[MailServer, ...]
    smtp: tuple[MailServer, ...]
    dav: DavServer | None
    public_url: str

    @property
    def autoconfig_url(self) -> str:
        return self.public_url.rstrip("/") + AUTOCONFIG_PATH

    @property
    def mcp_url(self) -> str:
        return self.public_url.rstrip("/") + "/mcp"


def _servers(host: str, tls_listen: Iterable[str], listen: Iterable[str]) -> tuple[MailServer, ...]:
    found: dict[tuple[int, str], MailServer] = {}
    for descriptions, security in ((tls_listen, IMPLICIT_TLS), (listen, STARTTLS)):
        for description in descriptions:
            port = endpoint_port(description)
            if port is not None:
                found.setdefault((port, security), MailServer(host, port, security))
    return tuple(found.values())


def _dav(config: Config) -> DavServer | None:
    target, path = dav_location(config)
    if target.offered:
        return DavServer(target.host, target.port, True, path)
    url = urlsplit(config.http.public_url)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
    https = url.scheme == "https"
    return DavServer(url.hostname, port or (443 if https else 80), https, "/dav/")


def client_setup(config: Config) -> ClientSetup:
    """The servers clients of C{config}'s gk connect to (see the module docstring)."""
    host = config.server.hostname
    return ClientSetup(
        hostname=host,
        imap=_servers(host, config.imap.tls_listen, config.imap.listen),
        smtp=_servers(host, config.submission.tls_listen, config.submission.listen),
        dav=_dav(config),
        public_url=config.http.public_url,
    )


# -- Thunderbird -------------------------------------------------------------------------


def _server_element(parent: ET.Element, tag: str, kind: str, server: MailServer) -> None:
    element = ET.SubElement(parent, tag, type=kind)
    for name, value in (
        ("hostname", server.host),
        ("port", str(server.port)),
        ("socketType", server.security),
        ("authentication", "password-cleartext"),
        ("username", "%EMAILADDRESS%"),
    ):
        ET.SubElement(element, name).text = value


def autoconfig_xml(setup: ClientSetup, domains: Sequence[str]) -> bytes:
    """
    Thunderbird's autoconfiguration document (C{clientConfig} version
    1.1) for the mail C{domains} (the first is the provider's id; the
    host name stands in when there is none): one C{incomingServer} per
    IMAP endpoint, one C{outgoingServer} per submission endpoint, in
    order of preference, each authenticating with the full address.
    """
    names = list(dict.fromkeys(d for d in domains if d)) or [setup.hostname]
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=names[0])
    for name in names:
        ET.SubElement(provider, "domain").text = name
    ET.SubElement(provider, "displayName").text = f"gk mail ({names[0]})"
    ET.SubElement(provider, "displayShortName").text = "gk"
    for server in setup.imap:
        _server_element(provider, "incomingServer", "imap", server)
    for server in setup.smtp:
        _server_element(provider, "outgoingServer", "smtp", server)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


# -- Apple ---------------------------------------------------------------------------------


def _reverse_dns(hostname: str) -> str:
    labels = [label for label in hostname.lower().split(".") if label]
    return ".".join(reversed(labels)) or "localhost"


def _payload(setup: ClientSetup, email: str, kind: str, payload_type: str) -> dict[str, Any]:
    """The keys every payload has; its UUID is stable for this server, user and kind."""
    stable = uuid.uuid5(_PROFILE_NAMESPACE, f"{setup.hostname}\n{email}\n{kind}")
    return {
        "PayloadType": payload_type,
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse_dns(setup.hostname)}.gk.{kind}.{stable}",
        "PayloadUUID": str(stable).upper(),
        "PayloadDisplayName": f"gk {kind}",
    }


def _mail_payload(
    setup: ClientSetup, email: str, imap: MailServer, smtp: MailServer
) -> dict[str, Any]:
    return {
        **_payload(setup, email, "mail", "com.apple.mail.managed"),
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAccountDescription": f"{email} (gk)",
        "EmailAddress": email,
        "IncomingMailServerHostName": imap.host,
        "IncomingMailServerPortNumber": imap.port,
        "IncomingMailServerUseSSL": imap.implicit_tls,
        "IncomingMailServerUsername": email,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": smtp.host,
        "OutgoingMailServerPortNumber": smtp.port,
        "OutgoingMailServerUseSSL": smtp.implicit_tls,
        "OutgoingMailServerUsername": email,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }


def _dav_payload(setup: ClientSetup, email: str, dav: DavServer, prefix: str) -> dict[str, Any]:
    kind = prefix.lower()
    return {
        **_payload(setup, email, kind, f"com.apple.{kind}.account"),
        f"{prefix}AccountDescription": f"{email} (gk)",
        f"{prefix}HostName": dav.host,
        f"{prefix}Port": dav.port,
        f"{prefix}UseSSL": dav.https,
        f"{prefix}PrincipalURL": dav.principal_url(email),
        f"{prefix}Username": email,
    }


def mobileconfig(setup: ClientSetup, email: str) -> bytes:
    """
    An unsigned Apple configuration profile (XML plist) for C{email}: a
    mail account when both IMAP and submission are offered (the
    preferred endpoint of each), and CalDAV and CardDAV accounts when
    DAV is.  No password is in it.
    """
    content: list[dict[str, Any]] = []
    if setup.imap and setup.smtp:
        content.append(_mail_payload(setup, email, setup.imap[0], setup.smtp[0]))
    if setup.dav is not None:
        content.append(_dav_payload(setup, email, setup.dav, "CalDAV"))
        content.append(_dav_payload(setup, email, setup.dav, "CardDAV"))
    profile = {
        **_payload(setup, email, "profile", "Configuration"),
        "PayloadDisplayName": f"gk: {email}",
        "PayloadDescription": (
            f"Mail, calendars and contacts of {email} on {setup.hostname}. "
            "Your password is asked for when the profile is installed."
        ),
        "PayloadOrganization": setup.hostname,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": content,
    }
    document: bytes = plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)
    return document
