"""
Signing in and out of the web UI over real HTTP: the session cookie's
flags, the brute-force guard, CSRF on every state-changing request and
session fixation.
"""

from __future__ import annotations

import pytest_twisted

from tests.helpers import in_thread
from tests.web.conftest import ALICE, BOB, WebServer


@pytest_twisted.ensureDeferred
async def test_pages_need_a_session_and_sign_in_sets_a_safe_cookie(web: WebServer) -> None:
    anonymous = await web.client(None)
    answer = await in_thread(lambda: anonymous.get("/mail"))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fmail"

    client = await web.client(None)
    signed_in = await in_thread(lambda: client.login(ALICE))
    assert signed_in.status_code == 303
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if "gk_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; __Host- and Secure under HTTPS

    home = await in_thread(lambda: client.get("/", follow_redirects=True))
    assert home.status_code == 200
    assert ALICE in home.text
    policy = home.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert home.headers["x-frame-options"] == "DENY"


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_refused_and_repeated_failures_block_the_source(
    web: WebServer,
) -> None:
    client = await web.client(None)
    wrong = await in_thread(lambda: client.login(ALICE, "not the password at all"))
    assert wrong.status_code == 401
    assert "Wrong address or password" in wrong.text
    guard = web.app.security.auth
    for _ in range(guard.policy.auth_block_after):
        guard.record_failure("127.0.0.1", BOB, "web")
    blocked = await in_thread(lambda: client.login(ALICE))
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text


@pytest_twisted.ensureDeferred
async def test_state_changing_requests_need_the_session_csrf_token(web: WebServer) -> None:
    client = await web.client(ALICE)
    without = await in_thread(lambda: client.post("/assistant/new", {"csrf": ""}))
    assert without.status_code == 403
    forged = await in_thread(lambda: client.post("/assistant/new", {"csrf": "guessed"}))
    assert forged.status_code == 403
    cross_site = await in_thread(
        lambda: client.post("/assistant/new", headers={"Origin": "https://evil.example"})
    )
    assert cross_site.status_code == 403
    assert await web.tree.assistant.conversations(web.accounts[ALICE]) == []

    good = await in_thread(lambda: client.post("/assistant/new"))
    assert good.status_code == 303
    assert len(await web.tree.assistant.conversations(web.accounts[ALICE])) == 1


@pytest_twisted.ensureDeferred
async def test_sign_in_never_keeps_a_planted_session_id_and_sign_out_ends_it(
    web: WebServer,
) -> None:
    attacker = await web.client(BOB)
    planted = attacker.http.cookies["gk_session"]
    victim = await web.client(None)
    token = await in_thread(victim.login_token)
    victim.http.cookies.set("gk_session", planted, domain="127.0.0.1")
    await in_thread(lambda: victim.login(ALICE, token=token))
    fresh = victim.http.cookies["gk_session"]
    assert fresh != planted
    # The planted id was ended at the victim's sign-in: the attacker is out.
    assert (await in_thread(lambda: attacker.get("/mail"))).status_code == 303
    page = await in_thread(lambda: victim.get("/", follow_redirects=True))
    assert ALICE in page.text and BOB not in page.text

    out = await in_thread(lambda: victim.post("/logout"))
    assert out.status_code == 303
    victim.http.cookies.set("gk_session", fresh, domain="127.0.0.1")
    assert (await in_thread(lambda: victim.get("/mail"))).status_code == 303


@pytest_twisted.ensureDeferred
async def test_login_form_refuses_a_post_without_its_cookie_token(web: WebServer) -> None:
    client = await web.client(None)
    forged = await in_thread(
        lambda: client.http.post(
            "/login", data={"csrf": "x", "email": ALICE, "password": "correct horse battery staple"}
        )
    )
    assert forged.status_code == 403
    assert "gk_session" not in forged.headers.get("set-cookie", "")
