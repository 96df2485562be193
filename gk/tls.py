"""
TLS for every listener: one server context shared by implicit-TLS listeners
and STARTTLS, reloadable on SIGHUP, TLS 1.2 or newer only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from gk.errors import GkError


class TLSError(GkError):
    """The certificate or key cannot be used."""


def write_self_signed(cert_path: Path, key_path: Path, hostname: str, days: int = 825) -> None:
    """
    Write a self-signed RSA-2048 certificate for C{hostname} and its key.

    The key file is created with mode 0600 before any secret is written.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname == "localhost":
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


#: TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all fine).
TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!DSS"
_OLD_PROTOCOLS = SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1


def load_server_context(cert_path: Path, key_path: Path) -> SSL.Context:
    """
    Read a PEM chain and key into a server context that refuses anything
    older than TLS 1.2, compression and client-initiated renegotiation.

    @raise TLSError: a file is missing or unreadable, or key and chain do not match.
    """
    try:
        chain_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except OSError as e:
        raise TLSError(f"cannot read TLS certificate or key: {e}") from None
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise TLSError(f"cannot load TLS certificate {cert_path} or key {key_path}: {e}") from None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        _OLD_PROTOCOLS
        | SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_RENEGOTIATION
    )
    context.set_cipher_list(TLS12_CIPHERS)
    # Session resumption within this process; the id names the application.
    context.set_session_id(b"gk")
    try:
        context.use_certificate(certs[0])
        for extra in certs[1:]:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(key)  # type: ignore[arg-type]
        context.check_privatekey()
    except (SSL.Error, TypeError) as e:
        raise TLSError(f"TLS key {key_path} does not match certificate {cert_path}: {e}") from None
    return context


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The one server-side TLS configuration of a gk process.

    It is handed to every implicit-TLS listener and to every STARTTLS
    (C{transport.startTLS(server_tls)}); L{reload} swaps the certificate
    for connections made afterwards, leaving open ones untouched.
    """

    log = Logger()

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self._context = load_server_context(cert_path, key_path)

    def reload(self) -> bool:
        """
        Read the certificate and key again.

        @return: whether the new files were taken; on failure the previous
            certificate stays in use and the reason is logged.
        """
        try:
            self._context = load_server_context(self.cert_path, self.key_path)
        except TLSError as e:
            self.log.error("TLS reload failed, keeping the previous certificate: {error}", error=e)
            return False
        self.log.info("TLS certificate reloaded from {path}", path=str(self.cert_path))
        return True

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context, None)

    def getContext(self) -> SSL.Context:
        """The current context, for APIs that still take an old-style factory."""
        return self._context
