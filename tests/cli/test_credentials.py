"""
C{gk token create|list|revoke} and C{gk app-password create|list|revoke}:
the printed secret is the one the server accepts, until it is revoked.
"""

from __future__ import annotations

import re
from pathlib import Path

from gk import passwords
from gk.storage import accounts as store
from tests.cli.conftest import Gk, add_user, open_database, together

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def token_owner(config_file: Path, token: str) -> str | None:
    with open_database(config_file) as database, database.transaction() as session:
        account = store.user_by_token(session, passwords.secret_digest(token))
    return None if account is None else account.email


def app_password_works(config_file: Path, email: str, secret: str) -> bool:
    with open_database(config_file) as database, database.transaction() as session:
        digest = passwords.secret_digest(secret)
        return store.user_by_app_password(session, email, digest) is not None


def test_tokens_and_app_passwords_from_creation_to_revocation(gk: Gk, config_file: Path) -> None:
    add_user(config_file, "alice@example.test")
    add_user(config_file, "bob@example.test")
    with open_database(config_file) as database, database.transaction() as session:
        store.add_token(session, "bob@example.test", "script", passwords.secret_digest("gk_bob"))

    token, app_password = together(
        gk.start("token", "create", "Alice@example.test", "--name", "mcp client"),
        gk.start("app-password", "create", "alice@example.test", "--name", "phone"),
    )

    (secret,) = token.succeeded()
    assert token_owner(config_file, secret) == "alice@example.test"
    (password,) = app_password.succeeded()
    assert app_password_works(config_file, "alice@example.test", password)

    all_tokens, alices_app_passwords, duplicate = together(
        gk.start("token", "list"),
        gk.start("app-password", "list", "alice@example.test"),
        gk.start("app-password", "create", "alice@example.test", "--name", "phone"),
    )

    rows = [line.split("\t") for line in all_tokens.succeeded()]
    assert [row[:2] for row in rows] == [
        ["alice@example.test", "mcp client"],
        ["bob@example.test", "script"],
    ]
    assert all(re.fullmatch(TIMESTAMP, row[2]) for row in rows)
    assert re.fullmatch(TIMESTAMP, rows[0][3])  # used above to look up its owner
    assert rows[1][3] == "-"  # never used
    assert [line.split("\t")[:2] for line in alices_app_passwords.succeeded()] == [
        ["alice@example.test", "phone"]
    ]
    assert duplicate.failed() == "alice@example.test already has an app password named 'phone'"

    revoked_token, revoked_password, unknown = together(
        gk.start("token", "revoke", "alice@example.test", "mcp client"),
        gk.start("app-password", "revoke", "alice@example.test", "phone"),
        gk.start("app-password", "revoke", "alice@example.test", "laptop"),
    )

    assert revoked_token.succeeded() == ["revoked token 'mcp client' of alice@example.test"]
    assert revoked_password.succeeded() == ["revoked app password 'phone' of alice@example.test"]
    assert unknown.failed() == "alice@example.test has no app password named 'laptop'"
    assert token_owner(config_file, secret) is None
    assert not app_password_works(config_file, "alice@example.test", password)
    assert token_owner(config_file, "gk_bob") == "bob@example.test"


def test_a_credential_needs_a_name(gk: Gk) -> None:
    message = gk.fails("token", "create", "alice@example.test", status=2)

    assert message.startswith("token create: the following arguments are required: --name")
