"""
C{gk alias add|list|delete} and C{gk domain add|list|delete}.
"""

from __future__ import annotations

from pathlib import Path

from gk.storage import accounts as store
from tests.cli.conftest import Gk, add_user, open_database, together


def aliases_in_database(config_file: Path) -> list[tuple[str, str]]:
    with open_database(config_file) as database, database.transaction() as session:
        return store.list_aliases(session)


def test_aliases_and_a_catch_all(gk: Gk, config_file: Path) -> None:
    add_user(config_file, "alice@example.test")
    add_user(config_file, "bob@example.test")

    info, catch_all = together(
        gk.start("alias", "add", "Info@example.test", "alice@example.test"),
        gk.start("alias", "add", "@Example.test", "bob@example.test"),
    )

    assert info.succeeded() == ["added alias info@example.test -> alice@example.test"]
    assert catch_all.succeeded() == ["added alias @example.test -> bob@example.test"]

    listing, again = together(
        gk.start("alias", "list"),
        gk.start("alias", "add", "info@example.test", "alice@example.test"),
    )

    assert listing.succeeded() == [
        "@example.test\tbob@example.test",
        "info@example.test\talice@example.test",
    ]
    assert again.succeeded() == ["kept alias info@example.test -> alice@example.test (it exists)"]
    gk.ok("alias", "add", "info@example.test", "bob@example.test")

    one_target, catch_all, unknown = together(
        gk.start("alias", "delete", "info@example.test", "bob@example.test"),
        gk.start("alias", "delete", "@example.test"),
        gk.start("alias", "delete", "sales@example.test"),
    )

    assert one_target.succeeded() == ["deleted 1 alias of info@example.test"]
    assert catch_all.succeeded() == ["deleted 1 alias of @example.test"]
    assert unknown.failed() == "no alias sales@example.test"
    assert aliases_in_database(config_file) == [("info@example.test", "alice@example.test")]


def test_domains(gk: Gk, config_file: Path) -> None:
    added, bad = together(
        gk.start("domain", "add", "Other.TEST."),
        gk.start("domain", "add", "not a domain"),
    )

    assert added.succeeded() == ["added domain other.test"]
    assert "not a valid domain" in bad.failed()

    listing, from_config, unknown = together(
        gk.start("domain", "list"),
        gk.start("domain", "delete", "example.test"),
        gk.start("domain", "delete", "nowhere.test"),
    )

    assert listing.succeeded() == ["example.test", "other.test"]
    assert from_config.failed() == (
        "domain example.test is in [server] domains of the config file; remove it there first"
    )
    assert unknown.failed() == "no domain nowhere.test"

    assert gk.ok("domain", "delete", "other.test") == ["deleted domain other.test"]
    with open_database(config_file) as database, database.transaction() as session:
        assert store.list_domains(session) == ["example.test"]
