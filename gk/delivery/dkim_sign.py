"""
DKIM signing of outbound mail (RFC 6376, RFC 8301, RFC 8463) and its keys.

Keys live in files, one per selector::

    data_dir/dkim/<domain>/<selector>.pem

a PEM private key (RSA or Ed25519: the algorithm is whatever the file
holds), mode 0600 in directories of mode 0700; C{<domain>} is the
lower-case A-label form.  L{generate_key} makes one (C{gk dkim keygen}),
L{DKIMSigner} signs a message with every key of its From domain and picks
up keys made or replaced while the server runs.

Default selectors are fixed names, C{gk} (RSA) and C{gked} (Ed25519),
rather than dated ones like C{gk202611}:

  - the record to publish has a name an operator can predict and look
    for, and C{gk dns} shows the same names month after month;
  - running C{keygen} a second time is refused with a clear message,
    instead of quietly making a second key that the signer would start
    using at once, before its record is published;
  - rotating is one explicit step: C{keygen --selector gk2}, publish the
    record, delete C{gk.pem} once it is visible, remove the old record a
    few days later.  Every key of a domain signs, so the old and the new
    signatures overlap while the record spreads.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.logger import Logger

from gk.delivery import dkim_core
from gk.delivery.dkim_core import SigningKey
from gk.errors import GkError
from gk.mailauth.dmarc import header_values
from gk.mailauth.resolver import a_label

Algorithm = Literal["rsa", "ed25519"]

#: The folder of C{data_dir} that holds the keys.
KEY_DIR_NAME = "dkim"
DEFAULT_SELECTORS: dict[Algorithm, str] = {"rsa": "gk", "ed25519": "gked"}
DEFAULT_RSA_BITS = 2048
#: 1024-bit RSA is still accepted by verifiers (RFC 8301) but too weak to make now.
MIN_RSA_BITS = 2048
#: Longer keys no longer fit comfortably in DNS answers and buy nothing yet.
MAX_RSA_BITS = 4096
#: A key file found with fewer bits is not used: verifiers refuse it (RFC 8301 3.2).
MIN_USABLE_RSA_BITS = 1024
#: Signatures per message at most (each costs the receiver a DNS lookup).
MAX_KEYS_PER_DOMAIN = 4

#: Header fields signed when present (RFC 6376 5.4.1, RFC 8058 for List-Unsubscribe-Post).
SIGNED_FIELDS = (
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-id",
    b"list-help",
    b"list-subscribe",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-post",
    b"list-owner",
    b"list-archive",
)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")
_SELECTOR = re.compile(rf"(?=.{{1,200}}$){_LABEL}(?:\.{_LABEL})*")


class DKIMKeyError(GkError):
    """A key cannot be made or used; the message says which and why."""


@dataclass(frozen=True)
class DKIMKey:
    """
    One usable signing key, read from C{<domain>/<selector>.pem}.

    @ivar algorithm: the C{k=} tag: C{rsa} or C{ed25519}.
    @ivar bits: the RSA modulus size; 256 for Ed25519.
    @ivar private: the private key in the form C{dkim.sign} takes
        (PKCS#1 PEM for RSA, the base64 seed for Ed25519).
    @ivar public: the C{p=} bytes: SubjectPublicKeyInfo DER for RSA, the
        raw 32-byte key for Ed25519 (RFC 8463 4.2).
    """

    domain: str
    selector: str
    algorithm: Algorithm
    bits: int
    path: Path
    private: bytes = field(repr=False)
    public: bytes = field(repr=False)
    #: The key as C{cryptography} holds it, which L{dkim_core.sign} uses.
    signing_key: SigningKey | None = field(default=None, repr=False, compare=False)

    @property
    def signature_algorithm(self) -> bytes:
        """The C{a=} tag of its signatures."""
        return b"rsa-sha256" if self.algorithm == "rsa" else b"ed25519-sha256"

    @property
    def dns_name(self) -> str:
        """Where its record goes: C{<selector>._domainkey.<domain>} (no final dot)."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_value(self) -> str:
        """The TXT record to publish, e.g. C{v=DKIM1; k=rsa; p=MIIB...}."""
        return f"v=DKIM1; k={self.algorithm}; p={base64.b64encode(self.public).decode()}"


def key_directory(data_dir: Path) -> Path:
    """The folder of every domain's keys: C{data_dir/dkim}."""
    return data_dir / KEY_DIR_NAME


def check_domain(domain: str) -> str:
    """
    C{domain} when it is a lower-case A-label domain name (so that it is
    safe as a folder name).

    @raise DKIMKeyError: it is not.
    """
    if not _DOMAIN.fullmatch(domain):
        raise DKIMKeyError(f"{domain!r} is not a lower-case domain name in A-label form")
    return domain


def check_selector(selector: str) -> str:
    """
    C{selector} in lower case when it is a valid DKIM selector (RFC 6376
    3.1: dot-separated labels of letters, digits and hyphens).

    @raise DKIMKeyError: it is not.
    """
    lowered = selector.lower()
    if not _SELECTOR.fullmatch(lowered):
        raise DKIMKeyError(
            f"{selector!r} is not a valid selector (letters, digits, hyphens, dots between labels)"
        )
    return lowered


# -- keys on disk -----------------------------------------------------------------


def key_path(key_dir: Path, domain: str, selector: str) -> Path:
    """The file of C{domain}'s key C{selector} (both already checked)."""
    return key_dir / domain / f"{selector}.pem"


def key_files(key_dir: Path, domain: str) -> list[Path]:
    """
    The key files of C{domain}, sorted by name; empty when it has none.
    Hidden files (a key being written) and files not ending in C{.pem} are
    not keys.
    """
    try:
        names = os.listdir(key_dir / check_domain(domain))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        key_dir / domain / name
        for name in sorted(names)
        if name.endswith(".pem") and not name.startswith(".")
    ]


def read_keys(key_dir: Path, domain: str) -> tuple[list[DKIMKey], list[DKIMKeyError]]:
    """
    Every key of C{domain} in signing order (see L{signing_order}), and why
    each unusable key file is unusable.  Uncached: for the CLI.
    """
    keys: list[DKIMKey] = []
    problems: list[DKIMKeyError] = []
    for path in key_files(key_dir, domain):
        try:
            keys.append(load_key(path))
        except DKIMKeyError as e:
            problems.append(e)
    return signing_order(keys), problems


def signing_order(keys: list[DKIMKey]) -> list[DKIMKey]:
    """
    RSA keys first, then Ed25519, by selector within each: the RSA
    signature goes on top, for receivers that check only the first (and
    many do not know Ed25519 yet).
    """
    return sorted(keys, key=lambda k: (k.algorithm != "rsa", k.selector))


def load_key(path: Path) -> DKIMKey:
    """
    Read the key in C{path} (C{<domain>/<selector>.pem}): any unencrypted
    PEM private key, PKCS#8 or PKCS#1, that is RSA (1024 bits or more) or
    Ed25519.

    @raise DKIMKeyError: the file cannot be read, is not such a key, or its
        name is not a selector.
    """
    domain, stem = path.parent.name, path.name.removesuffix(".pem")
    try:
        check_domain(domain)
        selector = check_selector(stem)
        if selector != stem:
            raise DKIMKeyError(f"{stem!r}: selector file names are lower case")
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except DKIMKeyError as e:
        raise DKIMKeyError(f"DKIM key {path}: {e}") from None
    except OSError as e:
        raise DKIMKeyError(f"DKIM key {path} cannot be read: {e.strerror or e}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise DKIMKeyError(f"DKIM key {path} is not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_USABLE_RSA_BITS:
            raise DKIMKeyError(
                f"DKIM key {path} has {key.key_size} bits; verifiers refuse RSA keys "
                f"under {MIN_USABLE_RSA_BITS} bits"
            )
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # dkimpy reads PKCS#1 only
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DKIMKey(domain, selector, "rsa", key.key_size, path, private, public, key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return DKIMKey(domain, selector, "ed25519", 256, path, base64.b64encode(seed), public, key)
    raise DKIMKeyError(f"DKIM key {path} is neither RSA nor Ed25519")


def generate_key(
    key_dir: Path,
    domain: str,
    algorithm: Algorithm = "rsa",
    selector: str | None = None,
    bits: int | None = None,
) -> DKIMKey:
    """
    Make a new key for C{domain} and write it to
    C{key_dir/<domain>/<selector>.pem} (mode 0600; folders made with mode
    0700).  The file appears whole or not at all: it is written and
    fsynced under a hidden temporary name, then hard-linked to its name,
    which, unlike a rename, never replaces an existing key even when two
    runs race.  Run as root, the new folders and file are given to the
    owner of C{key_dir}'s parent (the data directory), so that the server
    can read them.

    @param domain: a local domain, lower case, A-labels.
    @param algorithm: C{rsa} or C{ed25519}.
    @param selector: default L{DEFAULT_SELECTORS} (C{gk} or C{gked}).
    @param bits: RSA only: 2048 (the default) to 4096.
    @return: the key as the signer will use it.
    @raise DKIMKeyError: a bad argument, or the key file exists.
    @raise OSError: the file cannot be written.
    """
    check_domain(domain)
    if algorithm not in DEFAULT_SELECTORS:
        raise DKIMKeyError(f"unknown DKIM algorithm {algorithm!r} (rsa or ed25519)")
    selector = check_selector(selector or DEFAULT_SELECTORS[algorithm])
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        bits = DEFAULT_RSA_BITS if bits is None else bits
        if bits < MIN_RSA_BITS:
            raise DKIMKeyError(f"{bits}-bit RSA keys are too weak; use {MIN_RSA_BITS} or more")
        if bits > MAX_RSA_BITS:
            raise DKIMKeyError(f"{bits}-bit RSA keys are too long; use at most {MAX_RSA_BITS}")
    elif bits is not None:
        raise DKIMKeyError("--bits is for RSA keys only; Ed25519 keys have a fixed size")
    path = key_path(key_dir, domain, selector)
    if path.exists():  # early, before the slow part; _link_new decides
        raise _exists(path)
    if algorithm == "rsa":
        assert bits is not None
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    owner = _owner_to_keep(key_dir.parent)
    _private_dir(key_dir, owner)
    _private_dir(path.parent, owner)
    _write_new(path, pem, owner)
    return load_key(path)


def _exists(path: Path) -> DKIMKeyError:
    return DKIMKeyError(
        f"a DKIM key exists already: {path} (to rotate, make one with another --selector)"
    )


def _owner_to_keep(data_dir: Path) -> tuple[int, int] | None:
    """The data directory's owner when running as root (else L{None}: keep ours)."""
    if os.geteuid() != 0:
        return None
    try:
        info = data_dir.stat()
    except OSError:
        return None
    return info.st_uid, info.st_gid


def _private_dir(path: Path, owner: tuple[int, int] | None) -> None:
    """Make C{path} with mode 0700 unless it exists (an existing one is left as it is)."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    if owner is not None:
        os.chown(path, *owner)


def _write_new(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    """Write C{data} to the new file C{path} (mode 0600), atomically, never replacing one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if owner is not None:
            os.chown(tmp, *owner)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise _exists(path) from None
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# -- signing --------------------------------------------------------------------


def signing_domain(message: bytes) -> str | None:
    """
    The domain to sign C{message} for: that of its RFC5322.From address, in
    lower-case A-label form, which is what DMARC aligns with.  L{None}
    when there is no From field, more than one, a From with several
    addresses, or no usable domain in it.
    """
    values = header_values(message, b"from")
    if len(values) != 1:
        return None
    addresses = [address for _name, address in getaddresses(values) if address]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = a_label(addresses[0].rpartition("@")[2])
    return domain if _DOMAIN.fullmatch(domain) else None


def fields_to_sign(names: list[bytes]) -> list[bytes]:
    """
    The C{h=} list for a header with the fields C{names} (in order): each
    occurrence of a L{SIGNED_FIELDS} field, plus C{from} once more, so that
    a From field added later breaks the signature (over-signing).
    """
    signed = [name.lower() for name in names if name.lower() in SIGNED_FIELDS]
    return [*signed, b"from"]


class DKIMSigner:
    """
    Signs outbound messages with the keys under a key directory
    (L{key_directory}).

    Keys are read when first needed and cached by file and modification
    stamp; the domain's folder is listed again at every message (one
    C{listdir} and a C{stat} per key), so that a key made, replaced or
    deleted while the server runs is used, or no longer used, from the
    next message on.  A key file that cannot be used is logged once (per
    version of the file) and skipped.

    Thread-safe: several threads may sign at once.
    """

    log = Logger()

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self._lock = threading.Lock()
        #: path -> (stat stamp, the key, or None for an unusable file)
        self._cache: dict[Path, tuple[tuple[int, int, int], DKIMKey | None]] = {}

    def keys_for(self, domain: str) -> list[DKIMKey]:
        """
        The usable keys of C{domain} (lower-case A-labels; anything else has
        none) in L{signing_order}; at most L{MAX_KEYS_PER_DOMAIN}.
        Blocking (file system).
        """
        if not _DOMAIN.fullmatch(domain):
            return []
        paths = key_files(self.key_dir, domain)
        keys = [key for key in (self._key(path) for path in paths) if key is not None]
        self._forget_others(self.key_dir / domain, set(paths))
        return signing_order(keys)[:MAX_KEYS_PER_DOMAIN]

    def sign(self, message: bytes) -> bytes:
        """
        C{message} with one DKIM-Signature field per key of its From domain
        on top (RSA-SHA256 topmost, for receivers that check only the
        first; then Ed25519-SHA256), relaxed/relaxed.  The message itself is
        unchanged: same bytes, same line ends.

        BLOCKING (file system, RSA): run it in a thread.

        @return: the signed message, or C{message} itself when it is not to
            be signed (no From domain, no key, a header that cannot
            parse).  Never raises for a bad key or message: a message is
            never lost or refused for want of a signature.
        """
        domain = signing_domain(message)
        if domain is None:
            return message
        keys = self.keys_for(domain)
        if not keys:
            return message
        first_line = message.split(b"\n", 1)[0]
        linesep = b"\r\n" if first_line.endswith(b"\r") else b"\n"
        fields, _body = dkim_core.split_message(message)
        include = fields_to_sign([field.partition(b":")[0].strip() for field in fields])
        signatures: list[bytes] = []
        for key in keys:
            assert key.signing_key is not None
            try:
                signature = dkim_core.sign(
                    message,
                    domain=domain,
                    selector=key.selector,
                    key=key.signing_key,
                    names=include,
                    linesep=linesep,
                )
            except Exception:
                self.log.failure("DKIM signing with {path} failed", path=str(key.path))
                continue
            signatures.append(signature)
        return b"".join(signatures) + message

    def _key(self, path: Path) -> DKIMKey | None:
        """The key in C{path}, from the cache while the file is unchanged."""
        try:
            info = path.stat()
        except OSError:
            return None  # deleted since the listing
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        key: DKIMKey | None
        try:
            key = load_key(path)
        except DKIMKeyError as e:
            self.log.error("{error}; not signing with it", error=str(e))
            key = None
        with self._lock:
            self._cache[path] = (stamp, key)
        return key

    def _forget_others(self, folder: Path, present: set[Path]) -> None:
        """Drop cached keys of C{folder} whose file is gone."""
        with self._lock:
            for path in [p for p in self._cache if p.parent == folder and p not in present]:
                del self._cache[path]
