"""
C{gk user add|list|passwd|delete}: accounts made and changed from a shell,
checked against what the server would accept.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gk import passwords
from gk.storage import accounts as store
from tests.cli.conftest import Gk, add_user, open_database, together
from tests.conftest import ConfigWriter

GENERATED = re.compile(r"^password: ([A-Za-z0-9]{5}(-[A-Za-z0-9]{5}){3})$")
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def password_works(config_file: Path, email: str, password: str) -> bool:
    with open_database(config_file) as database, database.transaction() as session:
        found = store.password_hash_of(session, email)
    return found is not None and passwords.verify_password(found[1], password)


def accounts(config_file: Path) -> list[store.Account]:
    with open_database(config_file) as database, database.transaction() as session:
        return store.list_users(session)


def generated_password(line: str) -> str:
    match = GENERATED.match(line)
    assert match, line
    return match.group(1)


def test_an_account_from_creation_to_deletion(gk: Gk, config_file: Path) -> None:
    generated, chosen = together(
        gk.start("user", "add", "Alice@Example.test"),
        gk.start(
            "user", "add", "bob@example.test", "--password-stdin", "--admin", "--quota", "2G",
            stdin="correct horse battery\n",
        ),
    )  # fmt: skip

    out = generated.succeeded()
    assert out[0] == "created user alice@example.test"
    assert password_works(config_file, "alice@example.test", generated_password(out[1]))
    assert chosen.succeeded() == ["created user bob@example.test (admin)"]
    assert password_works(config_file, "bob@example.test", "correct horse battery")

    listing, chosen = together(
        gk.start("user", "list"),
        gk.start("user", "passwd", "bob@example.test", "--password-stdin", stdin="new and long\n"),
    )

    users = [line.split("\t") for line in listing.succeeded()]
    assert [row[:3] for row in users] == [
        ["alice@example.test", "-", "-"],
        ["bob@example.test", "admin", "2G"],
    ]
    assert all(re.fullmatch(TIMESTAMP, row[3]) for row in users)
    assert chosen.succeeded() == ["changed the password of bob@example.test"]
    assert password_works(config_file, "bob@example.test", "new and long")

    generated, deleted = together(
        gk.start("user", "passwd", "alice@example.test"),
        gk.start("user", "delete", "Bob@example.test"),
    )

    out = generated.succeeded()
    assert out[0] == "changed the password of alice@example.test"
    assert password_works(config_file, "alice@example.test", generated_password(out[1]))
    assert deleted.succeeded() == [
        "deleted user bob@example.test "
        f"(its mail is kept under {config_file.parent / 'data' / 'mail'}/.deleted)"
    ]
    assert [account.email for account in accounts(config_file)] == ["alice@example.test"]
    assert list((config_file.parent / "data" / "mail" / ".deleted").iterdir())


def test_refused_accounts_and_passwords(gk: Gk, config_file: Path) -> None:
    add_user(config_file, "bob@example.test")

    cases = {
        "bad address": gk.start("user", "add", "not an address"),
        "duplicate": gk.start("user", "add", "BOB@example.test"),
        "empty stdin": gk.start("user", "add", "erin@example.test", "--password-stdin"),
        "unknown user": gk.start("user", "passwd", "nobody@example.test"),
    }

    messages = {case: wait().failed(1) for case, wait in cases.items()}

    assert messages == {
        "bad address": "'not an address' is not an email address",
        "duplicate": "user bob@example.test already exists",
        "empty stdin": "--password-stdin: no password on stdin",
        "unknown user": "no user nobody@example.test",
    }
    assert [account.email for account in accounts(config_file)] == ["bob@example.test"]


@pytest.mark.parametrize("quota", ["0", "5X"])
def test_a_quota_that_is_not_a_size_is_a_usage_error(gk: Gk, quota: str) -> None:
    message = gk.fails("user", "add", "f@example.test", f"--quota={quota}", status=2)
    assert message.startswith(f"user add: argument --quota: {quota!r} is not a size")


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_same_commands_on_postgresql(write_config: ConfigWriter, database_url: str) -> None:
    config_file = write_config(database_url=database_url)
    gk = Gk(config_file)

    out = gk.ok("user", "add", "alice@example.test", "--quota", "500M")

    assert password_works(config_file, "alice@example.test", generated_password(out[1]))
    assert [line.split("\t")[:3] for line in gk.ok("user", "list")] == [
        ["alice@example.test", "-", "500M"]
    ]
