#!/usr/bin/env python3
"""
The web UI's weight and speed: for each main page, signed in as a user
with a little of everything (L{web_instance.seed}), the bytes a browser
transfers for it (the HTML, plus gk's own CSS and scripts as served,
gzip-compressed; mail content is not counted, as the issue says) and how
long the server takes to answer it (median and 95th percentile of
C{--requests} sequential requests over one keep-alive connection).
Prints one JSON object; the target is a page under 100 KB.

    .venv/bin/python bench/web_pages.py
    .venv/bin/python bench/web_pages.py --requests 200
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from typing import Any

import httpx
from web_instance import ALICE, PASSWORD, seed, web_instance

#: Pages measured; "first:PREFIX" is the first link on the previous page starting so.
PAGES = [
    ("login", "/login"),
    ("assistant", "/?new"),
    ("mail", "/mail"),
    ("message", "first:/mail/m/"),
    ("compose", "/mail/compose"),
    ("calendar", "/calendar"),
    ("contacts", "/contacts"),
    ("chat", "/chat"),
    ("settings", "/settings"),
    ("admin", "/admin"),
]
TARGET_BYTES = 100 * 1024
_ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')
_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def sign_in(http: httpx.Client) -> None:
    form = http.get("/login")
    token = _TOKEN.search(form.text)
    assert token is not None
    answer = http.post(
        "/login",
        data={"csrf": token.group(1), "email": ALICE, "password": PASSWORD, "next": "/"},
        headers={"Origin": str(http.base_url).rstrip("/")},
    )
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: {answer.status_code}")


def weigh(http: httpx.Client, html: str, cache: dict[str, int]) -> int:
    """Bytes of gk's own assets a page references, as transferred (gzip)."""
    total = 0
    for asset in sorted(set(_ASSET.findall(html.replace("&amp;", "&")))):
        if asset not in cache:
            with http.stream("GET", asset, headers={"Accept-Encoding": "gzip"}) as answer:
                cache[asset] = sum(len(chunk) for chunk in answer.iter_raw())
        total += cache[asset]
    return total


def measure(http: httpx.Client, path: str, requests: int) -> dict[str, Any]:
    times = []
    answer = http.get(path)
    for _ in range(requests):
        start = time.perf_counter()
        answer = http.get(path)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "status": answer.status_code,
        "html_bytes": len(answer.content),
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "html": answer.text,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    parser.add_argument("--database-url", help="default: SQLite in the temporary instance")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with web_instance(args.database_url) as instance:
        seed(instance)
        with httpx.Client(base_url=instance.base_url, timeout=30) as http:
            sign_in(http)
            cache: dict[str, int] = {}
            previous = ""
            for name, path in PAGES:
                if path.startswith("first:"):
                    prefix = path.split(":", 1)[1]
                    found = re.search(rf'href="({re.escape(prefix)}[^"]*)"', previous)
                    if found is None:
                        results[name] = {"error": f"no link starting {prefix}"}
                        continue
                    path = found.group(1).replace("&amp;", "&")
                client = (
                    httpx.Client(base_url=instance.base_url, timeout=30)
                    if name == "login"
                    else http
                )
                page = measure(client, path, args.requests)
                html = page.pop("html")
                previous = html
                assets = weigh(http, html, cache)
                page["asset_bytes"] = assets
                page["total_bytes"] = page["html_bytes"] + assets
                page["path"] = path
                results[name] = page
                if client is not http:
                    client.close()
    heaviest = max((r.get("total_bytes", 0) for r in results.values()), default=0)
    print(json.dumps({"pages": results, "heaviest_bytes": heaviest,
                      "target_bytes": TARGET_BYTES, "meets_target": heaviest < TARGET_BYTES},
                     indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
