"""
A stored message as the web UI shows it: its body as safe HTML (for the
sandboxed frame) or as plain text, and the list of its attachments, each
downloadable by its number.

Safety has two layers.  HTML is sanitised with nh3 (ammonia): no script,
no event handler, no form, no frame, no style sheet element, links open
in a new tab with C{rel="noopener noreferrer"}; images elsewhere (C{http:}
and C{https:} sources, C{url()} in style attributes) are removed unless
the reader asked to see them.  Then the frame that shows it is sandboxed
(no scripts, an opaque origin) and its Content-Security-Policy
(L{frame_policy}) lets nothing load but C{data:} images, and remote
images only when asked: what slipped past the first layer cannot run or
phone home through the second.

Images a message carries itself (C{cid:} references to its own parts,
RFC 2392) are shown inline as C{data:} URIs and left out of the
attachment list.

Parts are numbered by their place among the MIME tree's leaves, depth
first, from 1; an attached message (C{message/rfc822}) is one leaf.  The
same bytes always give the same numbers, so a number in a URL names one
part for as long as the message exists.

Parsing is CPU work: callers on the reactor run these functions in a
thread.  Malformed input never raises.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

import nh3

from gk.assistant.mail_content import _filename, _text_of

#: MIME nesting followed, at most.
MAX_DEPTH = 16
#: A C{cid:} image is inlined up to this size (bytes) ...
MAX_INLINE_IMAGE = 2 * 1024 * 1024
#: ... and all of a message's together up to this.
MAX_INLINE_TOTAL = 6 * 1024 * 1024

#: The frame's policy: nothing but inline styles and data: images.
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:{images}; "
    "sandbox allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'"
)
#: What an attachment download may do: nothing (it is not even rendered).
DOWNLOAD_CSP = "default-src 'none'; sandbox"

#: Types served as themselves (the rest as application/octet-stream).  All
#: are downloaded (Content-Disposition: attachment), never shown by gk.
HARMLESS_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
        "text/plain", "text/csv", "text/calendar", "text/vcard", "audio/mpeg", "audio/ogg",
        "video/mp4", "video/webm", "application/zip", "message/rfc822",
    }
)  # fmt: skip

_FRAME_STYLE = (
    "html{color-scheme:light}"
    "body{margin:12px;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:#1b1f24;background:#fff;overflow-wrap:anywhere}"
    "img{max-width:100%;height:auto}table{max-width:100%}"
    "pre{white-space:pre-wrap;font:13px/1.45 ui-monospace,Menlo,monospace}"
    "blockquote{margin:0 0 0 .5em;padding-left:.75em;border-left:3px solid #d0d7de}"
)

_TAGS = nh3.ALLOWED_TAGS | {"font", "tfoot", "big", "section", "main", "address"}
#: Elements dropped with their content (the rest of the unknown ones keep their text).
_DROPPED = {
    "script", "style", "title", "template", "iframe", "object", "embed", "svg", "math",
    "noembed", "noframes", "xmp", "textarea", "select", "button",
}  # fmt: skip
_GENERIC = {"style", "title", "dir", "lang", "align", "valign", "width", "height", "bgcolor"}
_EXTRA_ATTRIBUTES: dict[str, set[str]] = {
    "font": {"color", "face", "size"},
    "table": {"border", "cellpadding", "cellspacing"},
    "td": {"nowrap"},
    "th": {"nowrap"},
}
_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_CSS_FETCH = re.compile(r"(?i)url\s*\(|image-set|image\(|\\|@import")
_CSS_REMOTE = re.compile(r"(?i)url\s*\(\s*['\"]?\s*(https?:)?//")
_LINK = re.compile(r"\bhttps?://[^\s<>\"')\]]+", re.IGNORECASE)


@dataclass(frozen=True)
class MailPart:
    """A part of a message a reader may download."""

    #: Its place among the message's leaves (see the module docstring).
    number: int
    filename: str
    content_type: str
    #: Decoded size in bytes.
    size: int


@dataclass
class RenderedMessage:
    """What the reading view shows of a message."""

    #: The sanitised HTML body (a fragment for L{frame_document}), or None
    #: when the message has no HTML: then L{text} is the body.
    html: str | None = None
    #: The plain-text body (empty when L{html} is the body).
    text: str = ""
    #: The HTML refers to images elsewhere (removed unless allowed).
    remote_images: bool = False
    attachments: list[MailPart] = field(default_factory=list)


def render_message(data: bytes, allow_images: bool = False) -> RenderedMessage:
    """The body and attachments of the message C{data}; see the module docstring."""
    message = BytesParser(policy=compat32).parsebytes(data)
    leaves = list(_leaves(message, 0))
    numbers = {id(part): n for n, part in enumerate(leaves, 1)}
    pieces: list[Message] = []
    _body_parts(message, pieces, 0)
    body_ids = {id(p) for p in pieces}
    rendered = RenderedMessage()
    if any(p.get_content_type() == "text/html" for p in pieces):
        images = _CidImages(leaves)
        chunks = []
        for piece in pieces:
            if piece.get_content_type() == "text/html":
                cleaned, remote = sanitise_html(_text_of(piece), allow_images, images)
                rendered.remote_images |= remote
                chunks.append(cleaned)
            else:
                chunks.append(f"<pre>{html.escape(_text_of(piece))}</pre>")
        rendered.html = "\n".join(chunks)
        body_ids |= images.used
    else:
        rendered.text = "\n\n".join(t for t in (_text_of(p).strip("\n") for p in pieces) if t)
    for part in leaves:
        if id(part) in body_ids or _is_alternative_text(part):
            continue
        rendered.attachments.append(_describe(part, numbers[id(part)]))
    return rendered


def part_data(data: bytes, number: int) -> tuple[MailPart, bytes] | None:
    """The part C{number} of the message C{data} and its decoded bytes, or None."""
    message = BytesParser(policy=compat32).parsebytes(data)
    for n, part in enumerate(_leaves(message, 0), 1):
        if n == number:
            return _describe(part, n), _payload(part)
    return None


def sanitise_html(
    source: str, allow_images: bool = False, images: _CidImages | None = None
) -> tuple[str, bool]:
    """
    C{source} made safe to show (see the module docstring), and whether it
    refers to images elsewhere.
    """
    remote = False

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal remote
        if attribute == "src" and tag == "img":
            lowered = value.strip().lower()
            if lowered.startswith(("http:", "https:", "//")):
                remote = True
                if not allow_images:
                    return None
                return "https:" + value.strip() if lowered.startswith("//") else value
            if lowered.startswith("cid:"):
                return None if images is None else images.uri(value.strip()[4:])
            if lowered.startswith("data:image/"):
                return value
            return None
        if attribute == "href" and value.strip().lower().startswith(("data:", "cid:")):
            return None
        if attribute == "style":
            if _CSS_REMOTE.search(value):
                remote = True
            if not allow_images and _CSS_FETCH.search(value):
                return ";".join(d for d in value.split(";") if not _CSS_FETCH.search(d)) or None
        return value

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    for tag, names in _EXTRA_ATTRIBUTES.items():
        attributes.setdefault(tag, set()).update(names)
    attributes["*"] = set(_GENERIC)
    cleaned = nh3.clean(
        source,
        tags=_TAGS,
        clean_content_tags=_DROPPED,
        attributes=attributes,
        attribute_filter=keep,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes=_SCHEMES,
        url_relative="deny",
    )
    return cleaned, remote


def frame_document(body: str) -> bytes:
    """The document the frame shows: C{body} (already safe HTML) with gk's base style."""
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<style>{_FRAME_STYLE}</style></head><body>{body}</body></html>"
    ).encode()


def frame_policy(allow_images: bool) -> str:
    """The frame's Content-Security-Policy: remote images only when asked for."""
    return FRAME_CSP.format(images=" https: http:" if allow_images else "")


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, with web addresses made links that open a new tab."""
    out = []
    last = 0
    for match in _LINK.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        end = match.start() + len(url)
        out.append(html.escape(text[last : match.start()]))
        safe = html.escape(url, quote=True)
        out.append(f'<a href="{safe}" target="_blank" rel="noopener noreferrer">{safe}</a>')
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def download_headers(part: MailPart) -> tuple[str, dict[str, str]]:
    """
    The content type and headers of a download of C{part}: always an
    attachment (never shown inline), under a safe file name.
    """
    kind = part.content_type if part.content_type in HARMLESS_TYPES else "application/octet-stream"
    name = safe_filename(part.filename, part.content_type, part.number)
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    quoted = urllib.parse.quote(name, safe="")
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"
    return kind, {"Content-Disposition": disposition}


def safe_filename(name: str, content_type: str, number: int) -> str:
    """
    A file name to save a part under: no folders, no control characters,
    no leading dots, at most 150 characters; a made-up one when it has none.
    """
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*;')
    base = base.strip().lstrip(".").strip()[:150]
    if base:
        return base
    extension = ".eml" if content_type == "message/rfc822" else ""
    extension = extension or mimetypes.guess_extension(content_type) or ".bin"
    return f"attachment-{number}{extension}"


# -- the MIME tree ---------------------------------------------------------------


def _leaves(part: Message, depth: int) -> Iterator[Message]:
    """The leaves of C{part}'s tree, depth first (an attached message is a leaf)."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        yield part
        return
    if depth >= MAX_DEPTH:
        return
    for child in part.get_payload():
        if isinstance(child, Message):
            yield from _leaves(child, depth + 1)


def _disposition(part: Message) -> str:
    return (part.get_content_disposition() or "").lower()


def _is_text_body(part: Message) -> bool:
    return part.get_content_type() in ("text/plain", "text/html") and _disposition(part) != (
        "attachment"
    )


def _body_parts(part: Message, pieces: list[Message], depth: int) -> None:
    """
    The parts a reader sees as the body, in order: the richest version of
    a C{multipart/alternative} (HTML over plain text), the root of a
    C{multipart/related}, the inline text parts of anything else.
    """
    kind = part.get_content_type()
    if kind == "message/rfc822":
        return
    if not part.is_multipart():
        if _is_text_body(part):
            pieces.append(part)
        return
    if depth >= MAX_DEPTH:
        return
    children = [c for c in part.get_payload() if isinstance(c, Message)]
    if kind == "multipart/alternative":
        chosen = _richest(children)
        if chosen is not None:
            _body_parts(chosen, pieces, depth + 1)
        return
    if kind == "multipart/related":
        if children:
            _body_parts(children[0], pieces, depth + 1)
        return
    for child in children:
        _body_parts(child, pieces, depth + 1)


def _richest(children: list[Message]) -> Message | None:
    for wanted in ("text/html", "multipart/related", "multipart/mixed", "text/plain"):
        for child in reversed(children):
            if child.get_content_type() == wanted and _disposition(child) != "attachment":
                return child
    return None


def _is_alternative_text(part: Message) -> bool:
    """A text part that is no attachment: a version of the body not shown."""
    return _is_text_body(part) and not part.get_filename()


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            try:
                return inner[0].as_bytes()
            except (ValueError, LookupError, UnicodeError):
                return b""
        return b""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    return str(part.get_payload()).encode("utf-8", "replace")


def _describe(part: Message, number: int) -> MailPart:
    kind = part.get_content_type()
    name = _filename(part)
    if kind == "message/rfc822" and name == "forwarded message":
        name = "forwarded message.eml"
    return MailPart(number, name, kind, len(_payload(part)))


class _CidImages:
    """A message's own images by Content-ID, as data: URIs, within a size budget."""

    def __init__(self, leaves: list[Message]) -> None:
        self._by_cid: dict[str, Message] = {}
        for part in leaves:
            cid = str(part.get("Content-ID", "")).strip().strip("<>").strip()
            if cid and part.get_content_maintype() == "image":
                self._by_cid.setdefault(cid, part)
        self.used: set[int] = set()
        self._uris: dict[int, str] = {}
        self._budget = MAX_INLINE_TOTAL

    def uri(self, reference: str) -> str | None:
        part = self._by_cid.get(urllib.parse.unquote(reference).strip("<>"))
        if part is None:
            return None
        if id(part) not in self._uris:
            data = _payload(part)
            if len(data) > MAX_INLINE_IMAGE or len(data) > self._budget:
                return None
            self._budget -= len(data)
            self.used.add(id(part))
            encoded = base64.b64encode(data).decode("ascii")
            self._uris[id(part)] = f"data:{part.get_content_type()};base64,{encoded}"
        return self._uris[id(part)]
