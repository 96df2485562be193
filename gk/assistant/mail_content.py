"""
What a person reads of a message: its text and the list of its
attachments, from the MIME structure (RFC 2045-2049).

The text is what a mail client would show: in a C{multipart/alternative}
the C{text/plain} version, else the HTML one turned into plain text; the
inline text parts of a C{multipart/mixed} one after the other.  HTML is
read as text only: nothing it refers to (images, style sheets, frames) is
ever fetched, and scripts and styles are dropped.  Links keep their
address after their words, so that "click here" still says where to.

Malformed input never raises: unknown charsets read as UTF-8 with
replacement characters, broken encodings as whatever decodes.

Parsing is CPU work: callers on the reactor run these functions in a
thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from html.parser import HTMLParser

from gk.storage.envelope import decode_text


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    #: Decoded size in bytes.
    size: int


@dataclass
class MessageContent:
    text: str = ""
    #: The text came from an HTML part (there was no plain-text version).
    from_html: bool = False
    attachments: list[Attachment] = field(default_factory=list)


#: MIME nesting followed, at most (real mail nests three or four deep).
_MAX_DEPTH = 16


def message_content(data: bytes) -> MessageContent:
    """The text and attachments of the message C{data}."""
    message = BytesParser(policy=compat32).parsebytes(data)
    content = MessageContent()
    texts: list[str] = []
    _walk(message, content, texts, 0)
    content.text = "\n\n".join(t for t in texts if t.strip()).strip()
    return content


def _walk(part: Message, content: MessageContent, texts: list[str], depth: int) -> None:
    kind = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    if kind == "message/rfc822" and disposition == "attachment":
        content.attachments.append(Attachment(_filename(part), kind, _size_of(part)))
        return
    if part.is_multipart():
        if depth >= _MAX_DEPTH:
            return
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if kind == "multipart/alternative":
            chosen = _preferred(children)
            if chosen is not None:
                _walk(chosen, content, texts, depth + 1)
            return
        for child in children:
            _walk(child, content, texts, depth + 1)
        return
    if kind in ("text/plain", "text/html") and disposition != "attachment":
        if kind == "text/plain":
            texts.append(_text_of(part))
        else:
            texts.append(html_to_text(_text_of(part)))
            content.from_html = True
        return
    payload = part.get_payload(decode=True)
    size = len(payload) if isinstance(payload, bytes) else len(str(part.get_payload()))
    content.attachments.append(Attachment(_filename(part), kind, size))


def _size_of(part: Message) -> int:
    """The size of an attached message, as its bytes."""
    try:
        return sum(len(m.as_bytes()) for m in part.get_payload() if isinstance(m, Message))
    except (ValueError, LookupError, UnicodeError):
        return 0


def _preferred(children: list[Message]) -> Message | None:
    """The version of a C{multipart/alternative} to read: plain text first."""
    for wanted in ("text/plain", "multipart/related", "multipart/mixed", "text/html"):
        for child in children:
            if child.get_content_type() == wanted:
                return child
    return children[-1] if children else None


def _text_of(part: Message) -> str:
    return _decoded(part).replace("\r\n", "\n").replace("\r", "\n")


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset()
    if charset is None:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode("latin-1")
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _filename(part: Message) -> str:
    name = part.get_filename()
    if name:
        # RFC 2231 is decoded by the parser; RFC 2047 words are common too.
        return decode_text(name)
    if part.get_content_type() == "message/rfc822":
        return "forwarded message"
    return ""


#: Bodies whose bytes are not their text: parsed even when the bytes lack the words.
_ENCODED = re.compile(
    rb"content-transfer-encoding:[ \t]*(base64|quoted-printable)|content-type:[ \t]*text/html"
)


def contains_text(data: bytes, needle: str) -> bool:
    """
    Whether the text of the message C{data} contains C{needle} (any case,
    Unicode case folding).

    Much mail is plain 7- or 8-bit text whose bytes are its text, so an
    ASCII word missing from the bytes is missing from the text, and the
    parse is skipped.  Encoded bodies (base64, quoted-printable) and HTML
    (where tags, entities and collapsed spaces spell words otherwise) are
    always parsed.
    """
    folded = needle.casefold()
    if folded.isascii() and not any(c.isspace() or c in "&<>\"'" for c in folded):
        lowered = data.lower()
        if folded.encode() not in lowered and not _ENCODED.search(lowered):
            return False
    return folded in message_content(data).text.casefold()


# -- HTML ------------------------------------------------------------------------

#: Elements whose content is never text a reader sees.
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "object"})
#: Elements that start on a line of their own.
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "header", "footer", "main", "aside", "nav",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr", "blockquote",
        "pre", "hr", "form", "fieldset", "address", "dl", "dt", "dd", "figure",
    }
)  # fmt: skip


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
            return
        if tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag in _BLOCKS:
            self.out.append("\n\n" if tag in ("p", "blockquote", "table", "pre") else "\n")
            if tag == "hr":
                self.out.append("----\n")
            if tag == "pre":
                self._pre += 1
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self.out.append(f"[image: {alt.strip()}]")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append(href if re.match(r"(?i)(https?|mailto):", href) else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href is not None and not self._hidden:
                shown = href.removeprefix("mailto:")
                if not "".join(self.out[-3:]).rstrip().endswith(shown):
                    self.out.append(f" <{shown}>")
        elif tag in _BLOCKS:
            self.out.append("\n")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
        self.out.append(data)


def html_to_text(html: str) -> str:
    """The text a reader sees in C{html}, with line breaks where blocks are."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # malformed markup deep in html.parser
        pass
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
