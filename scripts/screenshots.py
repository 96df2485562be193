#!/usr/bin/env python3
"""
Screenshots of each main page of the web UI at phone and desktop widths,
for a person to look at (they are not committed).

Starts a throw-away gk with some mail, chat, an event and a contact
(bench/web_instance.py), signs in as alice (an admin) in Debian's Chromium
through Playwright, and writes PNG files to C{--out} (./var/screenshots):
NAME-phone.png (390 x 844) and NAME-desktop.png (1366 x 900), full pages.

    .venv/bin/python scripts/screenshots.py
    .venv/bin/python scripts/screenshots.py --out /tmp/shots --only mail,chat
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from playwright.sync_api import Page, sync_playwright
from web_instance import ALICE, PASSWORD, seed, web_instance

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
#: (name, path); "first:PREFIX" follows the first link of the previous page starting so.
PAGES = [
    ("assistant", "/?new"),
    ("mail", "/mail"),
    ("message", "first:/mail/m/"),
    ("compose", "/mail/compose"),
    ("calendar", "/calendar"),
    ("contacts", "/contacts"),
    ("chat", "/chat"),
    ("chat-room", "first:/chat/"),
    ("settings", "/settings"),
    ("admin", "/admin"),
]


def sign_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Email address").fill(ALICE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shoot(page: Page, base_url: str, out: Path, width_name: str, only: set[str]) -> list[Path]:
    written = []
    page.goto(base_url + "/login")
    page.screenshot(path=str(out / f"login-{width_name}.png"), full_page=True)
    sign_in(page, base_url)
    for name, path in PAGES:
        if path.startswith("first:"):
            prefix = path.split(":", 1)[1]
            link = page.locator(f'a[href^="{prefix}"]').first
            if link.count() == 0:
                print(f"{name}: no link starting {prefix} on the previous page", file=sys.stderr)
                continue
            path = link.get_attribute("href") or prefix
        if only and name not in only:
            page.goto(base_url + path)
            continue
        page.goto(base_url + path)
        page.wait_for_load_state("networkidle")
        target = out / f"{name}-{width_name}.png"
        page.screenshot(path=str(target), full_page=True)
        written.append(target)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the web UI's main pages.")
    parser.add_argument("--out", type=Path, default=Path("var/screenshots"))
    parser.add_argument("--only", default="", help="comma-separated page names")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = {n for n in args.only.split(",") if n}
    written: list[Path] = []
    with web_instance() as instance:
        seed(instance)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            for width_name, viewport in VIEWPORTS.items():
                context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                written += shoot(context.new_page(), instance.base_url, args.out, width_name, only)
                context.close()
            browser.close()
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
