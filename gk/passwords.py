"""
Secrets: Argon2id for account passwords, SHA-256 for generated secrets.

Account passwords are chosen by people, so they get a slow, memory-hard
hash (Argon2id, RFC 9106 parameters from argon2-cffi).  App passwords and
API tokens are generated with 120+ bits of entropy, so a fast hash is
enough and lets them be looked up by hash.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

#: No ambiguous characters (0/O, 1/l/I): generated passwords get read aloud and typed.
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def hash_password(password: str) -> str:
    """An Argon2id PHC string for C{password}. Slow on purpose: not on the reactor."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether C{password} matches; a malformed hash never matches."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeError):
        # UnicodeError: a non-ASCII hash, or a password that is not valid
        # Unicode text (a lone surrogate, e.g. from JSON "\ud800").
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, UnicodeError):
        return True


def generate_password(groups: int = 4, group_size: int = 5) -> str:
    """A strong password like C{abcde-fghij-kmnop-qrstu} (about 117 bits for 4x5)."""
    return "-".join(
        "".join(secrets.choice(_ALPHABET) for _ in range(group_size)) for _ in range(groups)
    )


def generate_token(prefix: str = "gk_") -> str:
    """A bearer token with 256 bits of entropy."""
    return prefix + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """The lookup hash of a generated secret (app password or token)."""
    # surrogatepass: any str has a digest (generated secrets are ASCII anyway).
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


@functools.cache
def dummy_hash() -> str:
    """
    A valid hash to verify against when an account does not exist, so that a
    failed login takes as long for an unknown user as for a wrong password.
    """
    return _hasher.hash(secrets.token_hex(16))
