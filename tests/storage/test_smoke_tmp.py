import pytest_twisted

@pytest_twisted.ensureDeferred
async def test_user_and_delivery(app):
    account = await app.accounts.create_user("Alice@Example.test", "correct horse battery")
    assert account.email == "alice@example.test"
    stored = await app.mailstore.deliver(account, b"Subject: hi\r\nFrom: Bob <bob@x.test>\r\n\r\nbody\r\n")
    assert stored.uid == 1
    assert await app.mailstore.read(account, "INBOX", 1) == b"Subject: hi\r\nFrom: Bob <bob@x.test>\r\n\r\nbody\r\n"
    assert (await app.accounts.authenticate("alice@example.test", "correct horse battery")).id == account.id
    assert await app.accounts.authenticate("alice@example.test", "wrong password!") is None
    r = await app.accounts.resolve("alice+tag@example.test")
    assert [a.email for a in r.local] == ["alice@example.test"]
