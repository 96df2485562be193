"""
Accounts: creating users with their mailboxes, signing in with passwords,
app passwords and tokens, where mail for an address goes, and deleting
users and domains without destroying mail.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.python import threadable

from gk import passwords
from gk.accounts import AccountService, InvalidAddress, Resolution
from gk.app import GkApp
from gk.storage import mail_index
from gk.storage.accounts import AccountError, AlreadyExists, NotFound
from gk.storage.models import Alias, APIToken, AppPassword, Base, MailFolder, Message, User

PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "bob's very own password"

DEFAULT_FOLDERS = {
    "INBOX": None,
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}


def emails(resolution: Resolution) -> list[str]:
    return sorted(a.email for a in resolution.local)


async def everything_in_the_database(app: GkApp) -> str:
    """Every value of every row of every table, as one string."""

    def dump(session) -> str:
        out: list[str] = []
        for table in Base.metadata.sorted_tables:
            out.extend(repr(tuple(row)) for row in session.execute(select(table)))
        return "\n".join(out)

    return await app.db.read(dump)


@pytest_twisted.ensureDeferred
async def test_a_new_user_gets_the_six_folders_indexed_and_on_disk(app: GkApp) -> None:
    account = await app.accounts.create_user(" Alice@Example.TEST ", PASSWORD)
    assert account.email == "alice@example.test"
    assert (account.local_part, account.domain) == ("alice", "example.test")
    assert not account.is_admin and account.quota_bytes is None

    folders = await app.db.read(lambda s: mail_index.list_folders(s, account.id))
    assert {f.name: f.special_use for f in folders} == DEFAULT_FOLDERS
    assert all(f.uidnext == 1 and f.uidvalidity > 0 and f.subscribed for f in folders)

    root: Path = app.config.mail_dir / "example.test" / "alice"
    assert app.mailstore.user_root(account.email) == root
    for sub in ("tmp", "new", "cur"):
        assert (root / sub).is_dir()
        assert stat.S_IMODE((root / sub).stat().st_mode) == 0o700
    for name in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        folder = root / f".{name}"
        assert set(os.listdir(folder)) == {"tmp", "new", "cur", "maildirfolder"}
    assert sorted(os.listdir(root)) == sorted(
        ["tmp", "new", "cur", ".Sent", ".Drafts", ".Trash", ".Junk", ".Archive"]
    )

    assert await app.accounts.get_user("ALICE@example.test") == account
    assert await app.accounts.get_user_by_id(account.id) == account
    assert await app.accounts.list_users() == [account]

    admin = await app.accounts.create_user("root@example.test", PASSWORD, is_admin=True)
    assert admin.is_admin
    assert [a.email for a in await app.accounts.list_users("example.test")] == [
        "alice@example.test",
        "root@example.test",
    ]


@pytest_twisted.ensureDeferred
async def test_a_duplicate_user_is_refused_and_the_first_keeps_its_mail(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    stored = await app.mailstore.deliver(alice, b"Subject: mine\r\n\r\n")

    for again in ("alice@example.test", "ALICE@EXAMPLE.TEST"):
        with pytest.raises(AlreadyExists):
            await app.accounts.create_user(again, "another good password")

    assert await app.accounts.list_users() == [alice]
    assert await app.mailstore.read(alice, "INBOX", stored.uid) == b"Subject: mine\r\n\r\n"
    assert await app.accounts.authenticate("alice@example.test", PASSWORD) == alice
    assert await app.accounts.authenticate("alice@example.test", "another good password") is None


@pytest_twisted.ensureDeferred
async def test_a_user_in_an_unknown_domain_is_refused(app: GkApp) -> None:
    with pytest.raises(NotFound, match="not a local domain"):
        await app.accounts.create_user("alice@elsewhere.test", PASSWORD)
    assert await app.accounts.list_users() == []
    assert await app.db.read(lambda s: list(s.scalars(select(MailFolder)))) == []


@pytest_twisted.ensureDeferred
async def test_invalid_addresses_and_weak_passwords_are_refused(app: GkApp) -> None:
    invalid = [
        "a" * 65 + "@example.test",  # local part over 64 octets
        "al ice@example.test",
        "alice\n@example.test",
        "alice\r\n@example.test",
        "al(ice)@example.test",
        "al,ice@example.test",
        '"alice"@example.test',
        "al\\ice@example.test",
        "alicé@example.test",
        ".alice@example.test",
        "alice.@example.test",
        "al..ice@example.test",
        "alice@",
        "@example.test",
        "alice",
        "alice@example",  # no dot: not a mail domain
        "alice@example..test",
        "alice@-example.test",
        "alice@exa mple.test",
        "alice@exam\nple.test",
        "alice@[192.0.2.1]",
        "a@" + "b" * 64 + ".test",  # label over 63 octets
        "a" * 60 + "@" + ".".join(["d" * 60] * 4) + ".test",  # address over 254 octets
    ]
    for address in invalid:
        with pytest.raises(InvalidAddress):
            await app.accounts.create_user(address, PASSWORD)
    assert await app.accounts.list_users() == []

    # The limits themselves are allowed.
    longest = await app.accounts.create_user("a" * 64 + "@example.test", PASSWORD)
    assert longest.local_part == "a" * 64
    odd = await app.accounts.create_user("o'brien+x_y.z-w=q@example.test", PASSWORD)
    assert odd.email == "o'brien+x_y.z-w=q@example.test"

    for weak in ("short", " padded password ", "tab\tin the middle"):
        with pytest.raises(AccountError):
            await app.accounts.create_user("weak@example.test", weak)
    assert await app.accounts.get_user("weak@example.test") is None


@pytest_twisted.ensureDeferred
async def test_sign_in_with_the_right_and_wrong_password_and_unknown_users(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    assert await app.accounts.authenticate("alice@example.test", PASSWORD) == alice
    assert await app.accounts.authenticate("Alice@Example.Test", PASSWORD) == alice
    assert await app.accounts.authenticate("alice@example.test", PASSWORD.upper()) is None
    assert await app.accounts.authenticate("nobody@example.test", PASSWORD) is None
    assert await app.accounts.authenticate("not an address", PASSWORD) is None
    # Not valid Unicode (a lone surrogate, as JSON "\ud800" decodes): refused, no error.
    assert await app.accounts.authenticate("alice@example.test", "\ud800") is None
    with pytest.raises(AccountError):
        await app.accounts.set_password("alice@example.test", "long enough \ud800")

    await app.accounts.set_password("alice@example.test", "a brand new password")
    assert await app.accounts.authenticate("alice@example.test", PASSWORD) is None
    assert await app.accounts.authenticate("alice@example.test", "a brand new password") == alice


@pytest_twisted.ensureDeferred
async def test_passwords_are_stored_as_argon2id_and_checked_off_the_reactor(
    app: GkApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Observe (not replace) the slow functions: record where they run.
    threads: dict[str, list[bool]] = {"hash": [], "verify": []}
    real_hash, real_verify = passwords.hash_password, passwords.verify_password

    def observed_hash(password: str) -> str:
        threads["hash"].append(threadable.isInIOThread())
        return real_hash(password)

    def observed_verify(password_hash: str, password: str) -> bool:
        threads["verify"].append(threadable.isInIOThread())
        return real_verify(password_hash, password)

    monkeypatch.setattr(passwords, "hash_password", observed_hash)
    monkeypatch.setattr(passwords, "verify_password", observed_verify)

    await app.accounts.create_user("alice@example.test", PASSWORD)
    await app.accounts.authenticate("alice@example.test", PASSWORD)
    await app.accounts.authenticate("alice@example.test", "wrong password")
    await app.accounts.authenticate("nobody@example.test", PASSWORD)

    assert threads == {"hash": [False], "verify": [False, False, False]}

    stored = await app.db.read(lambda s: s.scalar(select(User.password_hash)))
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$")
    assert PASSWORD not in stored
    assert PASSWORD not in await everything_in_the_database(app)


@pytest_twisted.ensureDeferred
async def test_app_passwords_work_for_their_user_only_until_revoked(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", BOB_PASSWORD)
    phone = await app.accounts.create_app_password("alice@example.test", "phone")
    laptop = await app.accounts.create_app_password("alice@example.test", "laptop")
    assert phone != laptop
    assert [len(group) for group in phone.split("-")] == [6, 6, 6, 6]

    assert await app.accounts.authenticate("alice@example.test", phone) == alice
    assert await app.accounts.authenticate("alice@example.test", laptop) == alice
    assert await app.accounts.authenticate("bob@example.test", phone) is None
    # Names are per user; Bob's secret is not Alice's.
    bob_phone = await app.accounts.create_app_password("bob@example.test", "phone")
    assert await app.accounts.authenticate("alice@example.test", bob_phone) is None
    assert [c.email for c in await app.accounts.list_app_passwords("bob@example.test")] == [
        bob.email
    ]

    with pytest.raises(AlreadyExists):
        await app.accounts.create_app_password("alice@example.test", "phone")
    [listed_laptop, listed_phone] = await app.accounts.list_app_passwords("alice@example.test")
    assert (listed_laptop.name, listed_phone.name) == ("laptop", "phone")
    assert listed_phone.last_used is not None

    await app.accounts.revoke_app_password("alice@example.test", "phone")
    assert await app.accounts.authenticate("alice@example.test", phone) is None
    assert await app.accounts.authenticate("alice@example.test", laptop) == alice
    with pytest.raises(NotFound):
        await app.accounts.revoke_app_password("alice@example.test", "phone")

    # Stored only as SHA-256.
    digests = await app.db.read(lambda s: sorted(s.scalars(select(AppPassword.secret_hash))))
    assert digests == sorted(hashlib.sha256(p.encode()).hexdigest() for p in (laptop, bob_phone))
    dump = await everything_in_the_database(app)
    assert laptop not in dump and bob_phone not in dump


@pytest_twisted.ensureDeferred
async def test_tokens_authenticate_until_revoked_and_are_stored_only_hashed(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    bob = await app.accounts.create_user("bob@example.test", BOB_PASSWORD)
    token = await app.accounts.create_token("alice@example.test", "mcp client")
    bob_token = await app.accounts.create_token("bob@example.test", "mcp client")

    assert await app.accounts.authenticate_token(token) == alice
    assert await app.accounts.authenticate_token(bob_token) == bob
    assert await app.accounts.authenticate_token(token + "x") is None
    assert await app.accounts.authenticate_token("") is None
    # A token is not a password.
    assert await app.accounts.authenticate("alice@example.test", token) is None

    dump = await everything_in_the_database(app)
    assert token not in dump and bob_token not in dump
    digests = await app.db.read(lambda s: sorted(s.scalars(select(APIToken.token_hash))))
    assert digests == sorted(hashlib.sha256(t.encode()).hexdigest() for t in (token, bob_token))

    [listed] = await app.accounts.list_tokens("alice@example.test")
    assert listed.name == "mcp client" and listed.last_used is not None
    with pytest.raises(AlreadyExists):
        await app.accounts.create_token("alice@example.test", "mcp client")
    with pytest.raises(AccountError):
        await app.accounts.create_token("alice@example.test", "  ")

    await app.accounts.revoke_token("alice@example.test", "mcp client")
    assert await app.accounts.authenticate_token(token) is None
    assert await app.accounts.authenticate_token(bob_token) == bob


@pytest_twisted.ensureDeferred
async def test_addresses_resolve_through_users_aliases_tags_and_catch_all(app: GkApp) -> None:
    accounts: AccountService = app.accounts
    alice = await accounts.create_user("alice@example.test", PASSWORD)
    bob = await accounts.create_user("bob@example.test", BOB_PASSWORD)

    assert await accounts.add_alias("Sales@Example.test", "alice@example.test") is True
    assert await accounts.add_alias("sales@example.test", "alice@example.test") is False
    await accounts.add_alias("forward@example.test", "Someone@Remote.TEST")
    await accounts.add_alias("team@example.test", "alice@example.test")
    await accounts.add_alias("team@example.test", "bob@example.test")
    # A chain: first -> second -> third -> alice, and second also -> outside.
    await accounts.add_alias("first@example.test", "second@example.test")
    await accounts.add_alias("second@example.test", "third@example.test")
    await accounts.add_alias("second@example.test", "archive@remote.test")
    await accounts.add_alias("third@example.test", "alice@example.test")
    # Loops, one of them with a way out.
    await accounts.add_alias("loop1@example.test", "loop2@example.test")
    await accounts.add_alias("loop2@example.test", "loop1@example.test")
    await accounts.add_alias("ring1@example.test", "ring2@example.test")
    await accounts.add_alias("ring2@example.test", "ring1@example.test")
    await accounts.add_alias("ring2@example.test", "bob@example.test")
    await accounts.add_alias("self@example.test", "self@example.test")

    async def resolve(address: str) -> Resolution:
        return await accounts.resolve(address)

    assert (await resolve("alice@example.test")).local == (alice,)
    assert (await resolve("ALICE@example.test")).local == (alice,)
    assert (await resolve("sales@example.test")).local == (alice,)
    forward = await resolve("forward@example.test")
    assert forward.local == () and forward.remote == ("someone@remote.test",)
    assert emails(await resolve("team@example.test")) == [alice.email, bob.email]
    chain = await resolve("first@example.test")
    assert chain.local == (alice,) and chain.remote == ("archive@remote.test",)
    for looping in ("loop1@example.test", "self@example.test"):
        assert not (await resolve(looping)).deliverable
    assert (await resolve("ring1@example.test")).local == (bob,)

    # user+tag@ is user@; a tag on an alias follows the alias.
    assert (await resolve("alice+lists@example.test")).local == (alice,)
    assert (await resolve("alice+a+b@example.test")).local == (alice,)
    assert (await resolve("sales+q3@example.test")).local == (alice,)

    # Unknown local addresses go nowhere until there is a catch-all.
    for unknown in ("nobody@example.test", "nobody+tag@example.test", "+tag@example.test"):
        assert not (await resolve(unknown)).deliverable
    await accounts.add_alias("@example.test", "bob@example.test")
    assert (await resolve("nobody@example.test")).local == (bob,)
    assert (await resolve("nobody+tag@example.test")).local == (bob,)
    # ... which never takes mail that has an owner.
    assert (await resolve("alice@example.test")).local == (alice,)
    assert (await resolve("alice+x@example.test")).local == (alice,)
    assert (await resolve("sales@example.test")).local == (alice,)
    assert (await resolve("loop1@example.test")).local == ()

    # Foreign domains are remote, as themselves.
    outside = await resolve("Carol@Remote.Test")
    assert outside.local == () and outside.remote == ("carol@remote.test",)
    assert outside.deliverable

    # Aliases never shadow users, and live in local domains only.
    with pytest.raises(AlreadyExists):
        await accounts.add_alias("alice@example.test", "bob@example.test")
    with pytest.raises(AlreadyExists):
        await accounts.create_user("sales@example.test", PASSWORD)
    with pytest.raises(AccountError):
        await accounts.add_alias("x@remote.test", "alice@example.test")

    assert ("@example.test", "bob@example.test") in await accounts.list_aliases()
    assert await accounts.delete_alias("team@example.test") == 2
    # Gone: the address now falls to the catch-all.
    assert (await resolve("team@example.test")).local == (bob,)
    with pytest.raises(NotFound):
        await accounts.delete_alias("team@example.test")


@pytest_twisted.ensureDeferred
async def test_international_domains_are_stored_as_a_labels(app: GkApp) -> None:
    assert await app.accounts.add_domain("Bücher.Example") is True
    assert await app.accounts.add_domain("xn--bcher-kva.example") is False
    assert "xn--bcher-kva.example" in await app.accounts.list_domains()
    assert await app.accounts.is_local_domain("bücher.example")
    assert not await app.accounts.is_local_domain("remote.test")
    assert not await app.accounts.is_local_domain("not a domain")
    user = await app.accounts.create_user("Anna@Bücher.example", PASSWORD)
    assert user.email == "anna@xn--bcher-kva.example"
    assert (await app.accounts.resolve("anna@bücher.example")).local == (user,)


@pytest_twisted.ensureDeferred
async def test_deleting_a_user_removes_credentials_and_keeps_the_mail_aside(
    app: GkApp,
) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    app_password = await app.accounts.create_app_password("alice@example.test", "phone")
    token = await app.accounts.create_token("alice@example.test", "script")
    stored = await app.mailstore.deliver(alice, b"Subject: keep me\r\n\r\nimportant\r\n")
    await app.mailstore.deliver(alice, b"Subject: sent\r\n\r\n", "Sent")
    root = app.mailstore.user_root(alice.email)

    deleted = await app.accounts.delete_user("Alice@example.test")
    assert deleted == alice

    assert await app.accounts.get_user("alice@example.test") is None
    assert await app.accounts.authenticate("alice@example.test", PASSWORD) is None
    assert await app.accounts.authenticate("alice@example.test", app_password) is None
    assert await app.accounts.authenticate_token(token) is None
    for model in (AppPassword, APIToken, MailFolder, Message, User):

        def rows_of(session, model=model) -> list[object]:
            return list(session.scalars(select(model)))

        assert await app.db.read(rows_of) == []

    # The mail is moved aside, whole, not destroyed.
    assert not root.exists()
    [archived] = (app.config.mail_dir / ".deleted" / "example.test").iterdir()
    assert archived.name.startswith("alice.")
    assert (archived / "new" / stored.path.name).read_bytes() == (
        b"Subject: keep me\r\n\r\nimportant\r\n"
    )
    assert len(os.listdir(archived / ".Sent" / "new")) == 1

    # The address can be given to someone new, who starts empty; deleting
    # again (even within the same second) keeps both archives.
    again = await app.accounts.create_user("alice@example.test", "a new owner's password")
    assert again.id != alice.id
    assert os.listdir(root / "new") == []
    await app.mailstore.deliver(again, b"Subject: second life\r\n\r\n")
    await app.accounts.delete_user("alice@example.test")
    archives = list((app.config.mail_dir / ".deleted" / "example.test").iterdir())
    assert len(archives) == 2
    assert sorted(len(os.listdir(a / "new")) for a in archives) == [1, 1]

    with pytest.raises(NotFound):
        await app.accounts.delete_user("alice@example.test")


@pytest_twisted.ensureDeferred
async def test_a_domain_with_users_cannot_be_deleted(app: GkApp) -> None:
    await app.accounts.add_domain("other.test")
    await app.accounts.create_user("carol@other.test", PASSWORD)
    await app.accounts.add_alias("info@other.test", "carol@other.test")
    await app.accounts.add_alias("@other.test", "carol@other.test")

    with pytest.raises(AccountError, match="still has 1 user"):
        await app.accounts.delete_domain("other.test")
    assert "other.test" in await app.accounts.list_domains()

    await app.accounts.delete_user("carol@other.test")
    await app.accounts.delete_domain("Other.Test")
    assert await app.accounts.list_domains() == ["example.test"]
    # Its aliases went with it.
    assert await app.db.read(lambda s: list(s.scalars(select(Alias)))) == []
    with pytest.raises(NotFound):
        await app.accounts.delete_domain("other.test")
    # Now a foreign domain.
    assert (await app.accounts.resolve("carol@other.test")).remote == ("carol@other.test",)


@pytest_twisted.ensureDeferred
async def test_a_user_may_send_as_itself_its_tags_and_its_aliases_but_not_via_catch_all(
    app: GkApp,
) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    await app.accounts.create_user("bob@example.test", PASSWORD)
    await app.accounts.add_alias("sales@example.test", "alice@example.test")
    await app.accounts.add_alias("@example.test", "alice@example.test")

    assert await app.accounts.may_send_as(alice, "Alice@Example.test")
    assert await app.accounts.may_send_as(alice, "alice+news@example.test")
    assert await app.accounts.may_send_as(alice, "sales@example.test")
    assert not await app.accounts.may_send_as(alice, "bob@example.test")
    # The catch-all delivers anything@ to alice, but does not let her send as it.
    assert [a.email for a in (await app.accounts.resolve("x@example.test")).local] == [
        "alice@example.test"
    ]
    assert not await app.accounts.may_send_as(alice, "x@example.test")
    assert not await app.accounts.may_send_as(alice, "not an address")


@pytest_twisted.ensureDeferred
async def test_the_addresses_a_user_owns_among_many_are_found_in_one_call(app: GkApp) -> None:
    alice = await app.accounts.create_user("alice@example.test", PASSWORD)
    await app.accounts.create_user("bob@example.test", PASSWORD)
    await app.accounts.add_alias("sales@example.test", "alice@example.test")
    await app.accounts.add_alias("@example.test", "alice@example.test")
    addresses = [
        "Alice@Example.test",
        "alice+news@example.test",
        "sales@example.test",
        "bob@example.test",
        "x@example.test",
        "carol@elsewhere.test",
        "not an address",
    ]

    owned = await app.accounts.owned_addresses(alice, addresses)

    # The same answers as may_send_as, address by address, spelled as given.
    assert owned == {"Alice@Example.test", "alice+news@example.test", "sales@example.test"}
    for address in addresses:
        assert (address in owned) == await app.accounts.may_send_as(alice, address)
    assert await app.accounts.owned_addresses(alice, []) == frozenset()
