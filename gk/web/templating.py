"""
Templates (jinja2, autoescaped, loaded from C{gk/web/templates} and
compiled once at start-up so no page reads a file on the reactor thread)
and the static files of C{gk/web/static}, served from memory with their
gzip form and a content hash in their URL so browsers may keep them.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from twisted.web.resource import Resource
from twisted.web.server import Request

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@dataclass(frozen=True)
class StaticFile:
    content_type: str
    data: bytes
    gzipped: bytes | None
    etag: str


def load_static(root: Path = STATIC) -> dict[str, StaticFile]:
    """Every file under C{root} by its path relative to it (blocking; at start-up)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.relative_to(root).as_posix()
        data = path.read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "image/svg+xml"):
            kind += "; charset=utf-8"
        squeezed = gzip.compress(data, 9, mtime=0) if len(data) > 1024 else None
        if squeezed is not None and len(squeezed) >= len(data):
            squeezed = None
        files[name] = StaticFile(kind, data, squeezed, hashlib.sha256(data).hexdigest()[:16])
    return files


class StaticResource(Resource):
    """C{/static/NAME}: files from memory; C{?v=HASH} URLs are cached for a year."""

    isLeaf = True

    def __init__(self, files: dict[str, StaticFile]) -> None:
        super().__init__()
        self.files = files

    def render_GET(self, request: Request) -> bytes:
        name = "/".join(p.decode("utf-8", "replace") for p in request.postpath or ())
        found = self.files.get(name)
        request.setHeader(b"x-content-type-options", b"nosniff")
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no such file\n"
        etag = f'"{found.etag}"'.encode("ascii")
        request.setHeader(b"etag", etag)
        versioned = request.args is not None and b"v" in request.args
        cache = "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
        request.setHeader(b"cache-control", cache.encode("ascii"))
        request.setHeader(b"vary", b"Accept-Encoding")
        if request.getHeader(b"if-none-match") == etag:
            request.setResponseCode(304)
            return b""
        request.setHeader(b"content-type", found.content_type.encode("ascii"))
        accepts = (request.getHeader(b"accept-encoding") or b"").lower()
        if found.gzipped is not None and b"gzip" in accepts:
            request.setHeader(b"content-encoding", b"gzip")
            return found.gzipped
        return found.data

    render_HEAD = render_GET


def when(value: datetime.datetime | None, zone: datetime.tzinfo | None = None) -> str:
    """A short human date: the time today, else the day and month (and year if another)."""
    if value is None:
        return ""
    now = datetime.datetime.now(zone or datetime.UTC)
    local = value.astimezone(zone or datetime.UTC)
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if local.year == now.year:
        return local.strftime("%d %b")
    return local.strftime("%d %b %Y")


def size(value: int) -> str:
    step = 1024.0
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < step or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= step
    return f"{value} B"


class Templates:
    """The jinja2 environment; L{render} fills a template."""

    def __init__(self, static: dict[str, StaticFile], root: Path = TEMPLATES) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(root)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.globals["static"] = lambda name: f"/static/{name}?v={static[name].etag}"
        self.env.filters["when"] = when
        self.env.filters["size"] = size
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)  # compile now, not on the reactor later

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
