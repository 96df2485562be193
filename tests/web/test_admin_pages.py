"""
The web admin over real HTTP: hidden from everyone but administrators;
accounts, aliases and domains managed through the same services as the
CLI; the DNS records of a domain checked live against a real DNS server;
the outbound queue listed, retried and emptied.
"""

from __future__ import annotations

import datetime
import html
import re

import pytest_twisted
from sqlalchemy.orm import Session

from gk.storage import queue_store
from tests.dnsserver import DNSTestServer
from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, CAROL, PASSWORD, WebServer

_PASSWORD_SHOWN = re.compile(r'<code id="new-password" class="secret-value">([^<]+)</code>')
_ALERT = re.compile(r'role="alert"[^>]*>([^<]+)<')
_ROW = re.compile(
    r'<tr class="check-(?P<status>[\w-]+)">\s*<td data-label="Name"><code>(?P<name>.*?)</code>'
    r'</td>\s*<td data-label="Type" class="type">(?P<type>\w+)</td>(?P<rest>.*?)</tr>',
    re.S,
)


def alert(page: str) -> str:
    """The one error message of a page."""
    found = _ALERT.findall(page)
    assert len(found) == 1, found
    return html.unescape(found[0])


def dns_rows(page: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(name, type) -> (check status, the rest of the row as text) of a DNS records table."""
    return {
        (_text(m["name"]).replace(" ", ""), m["type"]): (m["status"], _text(m["rest"]))
        for m in _ROW.finditer(page)
    }


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@pytest_twisted.ensureDeferred
async def test_admin_pages_answer_404_to_everyone_but_administrators(web: WebServer) -> None:
    bob = await web.client(BOB)
    unknown = await in_thread(lambda: bob.get("/no-such-page"))
    assert unknown.status_code == 404
    for path in (
        "/admin",
        "/admin/users",
        "/admin/users/manage?email=carol%40example.test",
        "/admin/aliases",
        "/admin/domains",
        "/admin/dns/example.test",
        "/admin/dns/example.test/check",
        "/admin/queue",
        "/admin/aliases/delete",
    ):
        answer = await in_thread(lambda path=path: bob.get(path))
        assert (answer.status_code, answer.text) == (404, unknown.text), path

    posts = {
        "/admin/users": {"email": "mallory@example.test", "password": "", "admin": "on"},
        "/admin/users/delete": {"email": CAROL, "confirm": "yes"},
        "/admin/users/password": {"email": ALICE, "password": "bob owns alice now"},
        "/admin/domains": {"domain": "evil.test"},
        "/admin/aliases": {"alias": "@example.test", "target": BOB},
    }
    for path, data in posts.items():
        answer = await in_thread(lambda path=path, data=data: bob.post(path, data))
        assert answer.status_code == 404, path
        # Without his CSRF token too: 404, not a 403 that says the page exists.
        tokenless = await in_thread(
            lambda path=path, data=data: bob.post(path, {**data, "csrf": ""})
        )
        assert (tokenless.status_code, tokenless.text) == (404, unknown.text), path
    assert await web.app.accounts.get_user("mallory@example.test") is None
    assert await web.app.accounts.get_user(CAROL) is not None
    assert await web.app.accounts.authenticate(ALICE, PASSWORD) is not None
    assert await web.app.accounts.list_domains() == ["example.test"]
    assert await web.app.accounts.list_aliases() == []
    home = await in_thread(lambda: bob.get("/no-such-page"))
    assert 'href="/admin"' not in home.text

    alice = await web.client(ALICE)
    overview = await in_thread(lambda: alice.get("/admin"))
    assert overview.status_code == 200
    assert 'href="/admin"' in overview.text and "3</strong> users" in overview.text
    assert 'href="/admin/dns/example.test"' in overview.text
    wrong_method = await in_thread(lambda: alice.post("/admin", {}))
    assert wrong_method.status_code == 405


@pytest_twisted.ensureDeferred
async def test_admin_creates_resets_and_deletes_accounts(web: WebServer) -> None:
    alice = await web.client(ALICE)
    created = await in_thread(
        lambda: alice.post("/admin/users", {"email": "Dave@Example.test", "password": ""})
    )
    assert created.status_code == 200, created.text
    assert "Created user dave@example.test" in created.text
    shown = _PASSWORD_SHOWN.search(created.text)
    assert shown is not None
    password = html.unescape(shown.group(1))
    assert await web.app.accounts.authenticate("dave@example.test", password) is not None
    listed = await in_thread(lambda: alice.get("/admin/users"))
    assert "dave@example.test" in listed.text and password not in listed.text

    refusals = [
        ({"email": "not-an-address", "password": ""}, 400, "is not an email address"),
        ({"email": BOB, "password": ""}, 409, f"User {BOB} already exists."),
        ({"email": "erin@example.test", "password": "short"}, 400, "at least 10 characters"),
        ({"email": "erin@elsewhere.test", "password": ""}, 404, "not a local domain"),
    ]
    for data, status, message in refusals:
        answer = await in_thread(lambda data=data: alice.post("/admin/users", data))
        assert answer.status_code == status, answer.text
        assert message in alert(answer.text)
        assert f'value="{data["email"]}"' in answer.text  # what was typed is kept
    assert await web.app.accounts.get_user("erin@example.test") is None

    chosen = "a new long passphrase"
    reset = await in_thread(
        lambda: alice.post(
            "/admin/users/password", {"email": "dave@example.test", "password": chosen}
        )
    )
    assert reset.status_code == 200 and "Changed the password" in reset.text
    assert _PASSWORD_SHOWN.search(reset.text) is None  # a given password is not echoed
    assert await web.app.accounts.authenticate("dave@example.test", chosen) is not None
    assert await web.app.accounts.authenticate("dave@example.test", password) is None

    promoted = await in_thread(
        lambda: alice.post("/admin/users/role", {"email": "dave@example.test", "admin": "yes"})
    )
    assert promoted.status_code == 200 and "is now an administrator" in promoted.text
    dave = await web.client(None)
    await in_thread(lambda: dave.login("dave@example.test", chosen))
    assert (await in_thread(lambda: dave.get("/admin"))).status_code == 200
    await in_thread(
        lambda: alice.post("/admin/users/role", {"email": "dave@example.test", "admin": "no"})
    )
    assert (await in_thread(lambda: dave.get("/admin"))).status_code == 404
    own = await in_thread(lambda: alice.post("/admin/users/role", {"email": ALICE, "admin": "no"}))
    assert own.status_code == 409 and "cannot change your own role" in alert(own.text)
    assert (await web.app.accounts.get_user(ALICE)).is_admin  # type: ignore[union-attr]

    bob = await web.client(BOB)
    unconfirmed = await in_thread(lambda: alice.post("/admin/users/delete", {"email": BOB}))
    assert unconfirmed.status_code == 200 and f"Delete {BOB}?" in unconfirmed.text
    assert await web.app.accounts.get_user(BOB) is not None
    deleted = await in_thread(
        lambda: alice.post("/admin/users/delete", {"email": BOB, "confirm": "yes"})
    )
    assert deleted.status_code == 200 and f"Deleted {BOB}" in deleted.text
    assert await web.app.accounts.get_user(BOB) is None
    signed_out = await in_thread(lambda: bob.get("/admin"))
    assert signed_out.status_code == 303  # bob's session ended with his account

    itself = await in_thread(
        lambda: alice.post("/admin/users/delete", {"email": ALICE, "confirm": "yes"})
    )
    assert itself.status_code == 409
    assert "cannot delete your own account" in alert(itself.text)
    assert await web.app.accounts.get_user(ALICE) is not None


@pytest_twisted.ensureDeferred
async def test_admin_manages_aliases_and_domains(web: WebServer) -> None:
    alice = await web.client(ALICE)
    accounts = web.app.accounts
    for alias, target in (("info@example.test", BOB), ("@example.test", CAROL)):
        added = await in_thread(
            lambda a=alias, t=target: alice.post("/admin/aliases", {"alias": a, "target": t})
        )
        assert added.status_code == 200 and "Added the alias" in added.text
    assert await accounts.list_aliases() == [("@example.test", CAROL), ("info@example.test", BOB)]
    page = await in_thread(lambda: alice.get("/admin/aliases"))
    assert "catch-all" in page.text
    assert (await accounts.resolve("nobody@example.test")).local[0].email == CAROL

    bad = await in_thread(
        lambda: alice.post("/admin/aliases", {"alias": "x@elsewhere.test", "target": BOB})
    )
    assert bad.status_code == 400 and "not a local domain" in alert(bad.text)
    shadowing = await in_thread(
        lambda: alice.post("/admin/aliases", {"alias": BOB, "target": CAROL})
    )
    assert shadowing.status_code == 409 and "an alias cannot shadow it" in alert(shadowing.text)
    removed = await in_thread(
        lambda: alice.post("/admin/aliases/delete", {"alias": "@example.test", "target": CAROL})
    )
    assert removed.status_code == 200 and "Deleted the alias @example.test" in removed.text
    assert await accounts.list_aliases() == [("info@example.test", BOB)]

    added = await in_thread(lambda: alice.post("/admin/domains", {"domain": "Example.ORG"}))
    assert added.status_code == 200 and "Added the domain example.org" in added.text
    assert 'href="/admin/dns/example.org"' in added.text
    assert await accounts.list_domains() == ["example.org", "example.test"]
    not_a_domain = await in_thread(lambda: alice.post("/admin/domains", {"domain": "localhost"}))
    assert not_a_domain.status_code == 400 and "not a valid domain" in alert(not_a_domain.text)
    configured = await in_thread(
        lambda: alice.post("/admin/domains/delete", {"domain": "example.test", "confirm": "yes"})
    )
    assert configured.status_code == 400
    assert "in [server] domains of the config file" in alert(configured.text)

    await accounts.add_alias("sales@example.org", BOB)
    await accounts.create_user("frank@example.org", PASSWORD)
    with_user = await in_thread(
        lambda: alice.post("/admin/domains/delete", {"domain": "example.org", "confirm": "yes"})
    )
    assert with_user.status_code == 400 and "still has 1 user(s)" in alert(with_user.text)
    await accounts.delete_user("frank@example.org")
    confirm = await in_thread(lambda: alice.get("/admin/domains/delete?domain=example.org"))
    assert confirm.status_code == 200 and "Delete the domain example.org?" in confirm.text
    deleted = await in_thread(
        lambda: alice.post("/admin/domains/delete", {"domain": "example.org", "confirm": "yes"})
    )
    assert deleted.status_code == 200 and "Deleted the domain example.org" in deleted.text
    assert await accounts.list_domains() == ["example.test"]
    assert await accounts.list_aliases() == [("info@example.test", BOB)]


@pytest_twisted.ensureDeferred
async def test_dns_page_lists_the_records_and_checks_them_live(
    web: WebServer, dns_server: DNSTestServer
) -> None:
    alice = await web.client(ALICE)
    before = await in_thread(lambda: alice.get("/admin/dns/example.test"))
    assert before.status_code == 200 and "No DKIM key yet" in before.text
    made = await in_thread(
        lambda: alice.post("/admin/dns/example.test/dkim", {"algorithm": "ed25519"})
    )
    assert made.status_code == 200 and "Made the DKIM key gked" in made.text
    rows = dns_rows(made.text)
    assert rows[("example.test", "MX")][0] == "unknown"
    assert "10 mail.example.test." in rows[("example.test", "MX")][1]
    assert "v=spf1 mx -all" in rows[("example.test", "TXT")][1]
    assert "v=DKIM1; k=ed25519; p=" in rows[("gked._domainkey.example.test", "TXT")][1]
    assert 'hx-get="/admin/dns/example.test/check" hx-trigger="load"' in made.text
    assert "example.test. 3600 IN MX 10 mail.example.test." in made.text  # zone-file form
    assert "No DKIM key yet" not in made.text

    dns_server.mx("example.test", "mail.example.test")
    dns_server.txt("example.test", "google-site-verification=abc", "v=spf1 ip4:192.0.2.1 -all")
    dns_server.fail("_dmarc.example.test")
    fragment = await in_thread(
        lambda: alice.get("/admin/dns/example.test/check", headers={"HX-Request": "true"})
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    checked = dns_rows(fragment.text)
    assert checked[("example.test", "MX")][0] == "match"
    spf_status, spf_row = checked[("example.test", "TXT")]
    assert spf_status == "differs" and "found: v=spf1 ip4:192.0.2.1 -all" in spf_row
    assert "google-site-verification" not in spf_row
    assert checked[("gked._domainkey.example.test", "TXT")][0] == "missing"
    assert checked[("_dmarc.example.test", "TXT")][0] == "failed"
    assert "1 differ" in fragment.text and "could not be looked up" in fragment.text
    assert dns_server.asked("example.test", "MX") >= 1  # through [dns] nameservers

    without_js = await in_thread(lambda: alice.get("/admin/dns/example.test?check=1"))
    assert dns_rows(without_js.text)[("example.test", "MX")][0] == "match"
    elsewhere = await in_thread(lambda: alice.get("/admin/dns/elsewhere.test"))
    assert elsewhere.status_code == 404


@pytest_twisted.ensureDeferred
async def test_queue_page_lists_retries_and_deletes_queued_mail(web: WebServer) -> None:
    queue = web.app.queue
    message = b"From: alice@example.test\r\nTo: zoe@elsewhere.test\r\nSubject: hi\r\n\r\nhello\r\n"
    queue_id = await queue.enqueue(ALICE, ["zoe@elsewhere.test"], message)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)

    def defer_it(session: Session) -> None:
        (recipient,) = queue_store.recipients_of(session, queue_id)
        outcome = queue_store.Outcome(recipient.id, "deferred", "451 4.3.0 try later", later)
        queue_store.record(session, [outcome], datetime.datetime.now(datetime.UTC))

    await web.app.db.write(defer_it)

    alice = await web.client(ALICE)
    page = await in_thread(lambda: alice.get("/admin/queue"))
    assert page.status_code == 200
    for shown in (queue_id, ALICE, "zoe@elsewhere.test", "deferred", "451 4.3.0 try later"):
        assert shown in page.text
    assert later.strftime("%Y-%m-%dT%H:%M") in page.text
    assert 'data-label="Attempts">1<' in page.text

    retried = await in_thread(lambda: alice.post("/admin/queue/retry", {"id": queue_id.lower()}))
    assert retried.status_code == 200
    assert f"{queue_id}: 1 deferred recipient(s) are due now" in retried.text
    (due,) = await web.app.db.read(lambda s: queue_store.recipients_of(s, queue_id))
    assert due.next_attempt <= datetime.datetime.now(datetime.UTC)
    unknown = await in_thread(lambda: alice.post("/admin/queue/retry", {"id": "NOPE"}))
    assert unknown.status_code == 404 and "No message NOPE in the queue" in alert(unknown.text)

    unconfirmed = await in_thread(lambda: alice.post("/admin/queue/delete", {"id": queue_id}))
    assert f"Delete message {queue_id}?" in unconfirmed.text and "no bounce" in unconfirmed.text
    assert [e.queue_id for e in await queue.entries()] == [queue_id]
    deleted = await in_thread(
        lambda: alice.post("/admin/queue/delete", {"id": queue_id, "confirm": "yes"})
    )
    assert deleted.status_code == 200 and "The queue is empty" in deleted.text
    assert await queue.entries() == []
    assert not queue.path_of(queue_id).exists()
