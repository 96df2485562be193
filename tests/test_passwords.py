"""
Secrets: Argon2id for chosen passwords, strong generated passwords and
tokens, and the SHA-256 lookup digest of generated secrets.
"""

from __future__ import annotations

import base64
import hashlib
import math
import string

import pytest

from gk import passwords

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return passwords.hash_password(PASSWORD)


def test_hash_then_verify(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$")
    assert PASSWORD not in stored
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.verify_password(stored, PASSWORD + " ")
    assert not passwords.verify_password(stored, PASSWORD.upper())
    assert not passwords.verify_password(stored, "")
    assert not passwords.needs_rehash(stored)


def test_the_same_password_hashes_differently_each_time(stored: str) -> None:
    again = passwords.hash_password(PASSWORD)
    assert again != stored
    assert passwords.verify_password(again, PASSWORD)


def test_non_ascii_passwords(stored: str) -> None:
    hashed = passwords.hash_password("mot de passe très sûr — 密码")
    assert passwords.verify_password(hashed, "mot de passe très sûr — 密码")
    assert not passwords.verify_password(hashed, "mot de passe tres sur — 密码")
    # Not valid Unicode text: never matches, never raises.
    assert not passwords.verify_password(stored, "\ud800")


def test_a_malformed_hash_never_verifies(stored: str) -> None:
    malformed = [
        "",
        "x",
        PASSWORD,
        "$argon2id$",
        stored[:-10],
        stored + "é",
        "é" * 20,
        stored.replace("$argon2id$", "$argon2x$"),
        stored.replace("m=65536", "m=1"),
        stored.replace("t=3", "t=0"),
        "$argon2id$v=19$m=65536,t=3,p=4$$",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        hashlib.sha256(PASSWORD.encode()).hexdigest(),
    ]
    for bad in malformed:
        assert passwords.verify_password(bad, PASSWORD) is False, bad
        assert passwords.needs_rehash(bad) is True, bad
    # Well-formed but for another digest: just a mismatch.
    other_digest = stored.rsplit("$", 1)[0] + "$" + "A" * 43
    assert passwords.verify_password(other_digest, PASSWORD) is False


def test_the_dummy_hash_is_a_real_hash_that_matches_nothing() -> None:
    dummy = passwords.dummy_hash()
    assert dummy.startswith("$argon2id$")
    assert passwords.dummy_hash() is dummy
    assert not passwords.verify_password(dummy, PASSWORD)
    assert not passwords.needs_rehash(dummy)


ALPHABET = set(passwords._ALPHABET)


def test_generated_passwords_are_readable_and_strong() -> None:
    # No look-alike characters, both cases and digits, no duplicates.
    assert not ALPHABET & set("0O1lI")
    assert ALPHABET.issubset(string.ascii_letters + string.digits)
    assert len(ALPHABET) == len(passwords._ALPHABET) == 57

    generated = [passwords.generate_password() for _ in range(200)]
    assert len(set(generated)) == 200
    for password in generated:
        groups = password.split("-")
        assert [len(g) for g in groups] == [5, 5, 5, 5]
        assert set("".join(groups)) <= ALPHABET
    # 20 characters from 57: over 116 bits.
    assert 20 * math.log2(len(ALPHABET)) > 116
    # Every character of the alphabet turns up: the choice is not biased to a part of it.
    assert set("".join(generated).replace("-", "")) == ALPHABET

    app_password = passwords.generate_password(groups=4, group_size=6)
    assert [len(g) for g in app_password.split("-")] == [6, 6, 6, 6]
    assert 24 * math.log2(len(ALPHABET)) > 128


def test_tokens_have_256_bits_of_entropy() -> None:
    tokens = [passwords.generate_token() for _ in range(200)]
    assert len(set(tokens)) == 200
    for token in tokens:
        assert token.startswith("gk_")
        body = token[3:]
        assert len(body) == 43
        assert set(body) <= set(string.ascii_letters + string.digits + "-_")
        assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert passwords.generate_token(prefix="x_").startswith("x_")


def test_secret_digest_is_sha256_hex() -> None:
    token = passwords.generate_token()
    digest = passwords.secret_digest(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert passwords.secret_digest(token) == digest
    assert passwords.secret_digest(token + "x") != digest
    assert passwords.secret_digest("é") == hashlib.sha256("é".encode()).hexdigest()
    # Any str has a digest (it can never match a generated secret).
    assert len(passwords.secret_digest("\ud800")) == 64
    assert passwords.digests_equal(digest, passwords.secret_digest(token))
    assert not passwords.digests_equal(digest, passwords.secret_digest(token + "x"))
