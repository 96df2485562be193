"""
The MIME structure of a stored message, as offsets into its bytes.

L{parse} scans the raw message once and returns a tree of L{Entity}: each
knows where its header block, the blank line and its body lie in the
stored bytes, its header fields, its parsed Content-Type, and its children
(the parts of a multipart, the encapsulated message of a message/rfc822).
Nothing is copied or rewritten: every section IMAP sends is a slice of the
original bytes (RFC 3501 6.4.5).

Lines end in CRLF or in a bare LF.  Pure and total: no input makes it
raise.  Malformed structure degrades the way Dovecot's parser does: a
multipart without a usable boundary (or without any delimiter line) is a
single text/plain part; nesting past L{MAX_DEPTH} or more than
L{MAX_PARTS} entities stop the splitting (the rest stays inside the last
part as opaque content), and past L{MAX_FIELDS} header fields the rest of
a header block is one field.  Work is linear in the size of the message
(times the nesting depth for line counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

#: Levels of multipart / message/rfc822 nesting parsed; deeper ones are text.
MAX_DEPTH = 50
#: Entities parsed per message; further delimiters are part of the content.
MAX_PARTS = 10_000
#: Header fields told apart per entity; the rest of the header is in the last.
MAX_FIELDS = 10_000

_LF = 0x0A
_CR = 0x0D
_WSP = b" \t"
#: Lines starting like a delimiter before the splitter switches to a regex.
_MAX_MISSES = 64
#: The end of a field: a line break not followed by a continuation line.
_FIELD_END = re.compile(rb"\n(?![ \t])")


class Field(NamedTuple):
    """
    One header field: C{name} as stored (without the whitespace before the
    colon; C{b""} for a line that is not a field), and the offsets of its
    raw bytes in the message, continuation lines and line end included.
    """

    name: bytes
    start: int
    end: int
    #: Offset just after the colon (C{end} when there is none).
    value_start: int


@dataclass(frozen=True, slots=True)
class ContentType:
    """
    A media type with its parameters, all as they appear in the message
    (case kept; quoted values unquoted, RFC 2231 parameters passed as they
    are).
    """

    type: bytes
    subtype: bytes
    params: tuple[tuple[bytes, bytes], ...] = ()

    def is_(self, type_: bytes, subtype: bytes | None = None) -> bool:
        """Case-insensitive comparison with C{type_} (and C{subtype})."""
        if self.type.lower() != type_:
            return False
        return subtype is None or self.subtype.lower() == subtype

    def param(self, name: bytes) -> bytes | None:
        """The first parameter called C{name} (case-insensitive), if any."""
        for key, value in self.params:
            if key.lower() == name:
                return value
        return None


#: RFC 2045 5.2: the type of a part without (or with an invalid) Content-Type.
DEFAULT_TYPE = ContentType(b"text", b"plain", ((b"charset", b"us-ascii"),))
#: RFC 2046 5.1.5: the default inside multipart/digest.
DIGEST_DEFAULT_TYPE = ContentType(b"message", b"rfc822")


@dataclass(eq=False, slots=True)
class Entity:
    """
    A message or body part: C{raw[start:body_start]} is the header block
    (the blank line included), C{raw[body_start:end]} the body.

    For the parts of a multipart, C{end} stops before the line break that
    precedes the next delimiter line (it belongs to the delimiter, RFC 2046
    5.1.1).
    """

    raw: bytes
    start: int
    #: Where the header fields end and the blank line (if any) starts.
    fields_end: int
    body_start: int
    end: int
    fields: list[Field]
    content_type: ContentType
    #: The parts of a multipart (empty for any other entity).
    children: list[Entity] = field(default_factory=list)
    #: The encapsulated message of a message/rfc822 part.
    message: Entity | None = None
    _index: dict[bytes, Field] | None = None

    @property
    def header(self) -> bytes:
        """The header block, blank line included."""
        return self.raw[self.start : self.body_start]

    @property
    def body(self) -> bytes:
        return self.raw[self.body_start : self.end]

    @property
    def body_size(self) -> int:
        return self.end - self.body_start

    @property
    def body_lines(self) -> int:
        """Lines of the body; a last line without a line break counts."""
        return count_lines(self.raw, self.body_start, self.end)

    def get(self, name: bytes) -> bytes | None:
        """
        The value of the first field called C{name} (lower-case), unfolded,
        without the whitespace around it; L{None} when there is none.
        """
        if self._index is None:
            index: dict[bytes, Field] = {}
            for f in self.fields:
                index.setdefault(f.name.lower(), f)
            self._index = index
        found = self._index.get(name)
        if found is None:
            return None
        return field_value(self.raw, found)


def count_lines(raw: bytes, start: int, end: int) -> int:
    """Lines in C{raw[start:end]}: its LFs, plus one for an unterminated last line."""
    lines = raw.count(b"\n", start, end)
    if end > start and raw[end - 1] != _LF:
        lines += 1
    return lines


def field_value(raw: bytes, f: Field) -> bytes:
    """The unfolded value of the field C{f}, without surrounding whitespace."""
    value = raw[f.value_start : f.end]
    if b"\n" in value:
        # Inside a field every line break starts a continuation line.
        value = value.rstrip(b"\r\n").replace(b"\r\n", b"").replace(b"\n", b"")
    return value.strip(b" \t\r\n")


def split_header(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """
    Where the header fields of the entity at C{raw[start:end]} end and
    where its body starts.  Without a blank line, the entity is all header
    and its body is empty.
    """
    if raw.startswith(b"\r\n", start, end):
        return start, start + 2
    if raw.startswith(b"\n", start, end):
        return start, start + 1
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end)
    if lf != -1 and (crlf == -1 or lf < crlf):
        return lf + 1, lf + 2
    if crlf != -1:
        return crlf + 1, crlf + 3
    return end, end


def scan_fields(raw: bytes, start: int, end: int) -> list[Field]:
    """
    The header fields in C{raw[start:end]} (a header block without its
    blank line).  Past L{MAX_FIELDS}, the rest of the block is part of the
    last field.
    """
    fields: list[Field] = []
    pos = start
    while pos < end:
        if len(fields) == MAX_FIELDS - 1:
            field_end = end
        else:
            match = _FIELD_END.search(raw, pos, end)
            field_end = end if match is None else match.end()
        if raw[pos] in _WSP:  # a continuation line without a field
            fields.append(Field(b"", pos, field_end, field_end))
        else:
            nl = raw.find(b"\n", pos, field_end)
            colon = raw.find(b":", pos, field_end if nl == -1 else nl)
            if colon == -1:
                fields.append(Field(b"", pos, field_end, field_end))
            else:
                fields.append(Field(raw[pos:colon].rstrip(b" \t"), pos, field_end, colon + 1))
        pos = field_end
    return fields


def header_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    """
    The header fields of the message C{raw}: (name as stored, raw field
    bytes with their folding and line end), in order.
    """
    fields_end, _ = split_header(raw, 0, len(raw))
    return [(f.name, raw[f.start : f.end]) for f in scan_fields(raw, 0, fields_end)]


# Structured header values (RFC 2045 Content-Type and RFC 2183
# Content-Disposition): token, quoted-string and comment scanning.


def skip_cfws(value: bytes, i: int) -> int:
    """Skip whitespace and (nested) comments from C{i}."""
    n = len(value)
    while i < n:
        c = value[i]
        if c in b" \t\r\n":
            i += 1
        elif c == 0x28:  # (
            i = comment_end(value, i)
        else:
            break
    return i


def comment_end(value: bytes, i: int) -> int:
    """The end of the (nested) comment at C{value[i]}; unclosed, the end of C{value}."""
    n = len(value)
    depth = 0
    while i < n:
        c = value[i]
        if c == 0x5C:  # quoted-pair
            i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


#: RFC 2045 token: CHARs but SPACE, CTLs and tspecials.
_TOKEN = re.compile(rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]*")


def _token(value: bytes, i: int) -> tuple[bytes, int]:
    match = _TOKEN.match(value, i)
    assert match is not None  # the pattern matches the empty string
    return match.group(), match.end()


def quoted_string(value: bytes, i: int) -> tuple[bytes, int]:
    """The content of the quoted-string at C{value[i]} (a quote), unescaped."""
    out = bytearray()
    i += 1
    n = len(value)
    while i < n:
        c = value[i]
        if c == 0x22:
            return bytes(out), i + 1
        if c == 0x5C and i + 1 < n:
            i += 1
            c = value[i]
        if c not in b"\r\n":  # folding inside a quoted-string is not content
            out.append(c)
        i += 1
    return bytes(out), n


def _params(value: bytes, i: int) -> tuple[tuple[bytes, bytes], ...]:
    """The C{; name=value} parameters from C{i}; malformed ones are skipped."""
    params: list[tuple[bytes, bytes]] = []
    n = len(value)
    while True:
        i = skip_cfws(value, i)
        if i >= n:
            break
        if value[i] != 0x3B:  # junk before the next ";"
            semi = value.find(b";", i)
            if semi == -1:
                break
            i = semi
        i = skip_cfws(value, i + 1)
        eq = value.find(b"=", i)
        semi = value.find(b";", i)
        if eq == -1 or (semi != -1 and semi < eq):
            continue
        name = value[i:eq].strip(b" \t\r\n")
        i = skip_cfws(value, eq + 1)
        if i < n and value[i] == 0x22:
            param, i = quoted_string(value, i)
        else:
            stop = value.find(b";", i)
            stop = n if stop == -1 else stop
            param = value[i:stop]
            comment = re.search(rb"[ \t\r\n]*\(", param)
            if comment is not None:
                param = param[: comment.start()]
            param = param.strip(b" \t\r\n")
            i = stop
        if name and _token(name, 0)[1] == len(name):
            params.append((name, param))
    return tuple(params)


def parse_content_type(value: bytes) -> ContentType | None:
    """
    Parse a Content-Type value; L{None} when it is not C{type/subtype}
    (RFC 2045 5.2: such a part is then text/plain; charset=us-ascii).
    """
    type_, i = _token(value, skip_cfws(value, 0))
    i = skip_cfws(value, i)
    if not type_ or i >= len(value) or value[i] != 0x2F:  # /
        return None
    subtype, i = _token(value, skip_cfws(value, i + 1))
    if not subtype:
        return None
    return ContentType(type_, subtype, _params(value, i))


def parse_disposition(value: bytes) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]] | None:
    """Parse a Content-Disposition value: (type, parameters), or L{None}."""
    type_, i = _token(value, skip_cfws(value, 0))
    if not type_:
        return None
    return type_, _params(value, i)


# The entity tree.


class _Budget:
    """How many more entities this message may have (L{MAX_PARTS})."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_PARTS


def parse(raw: bytes) -> Entity:
    """The structure of the message C{raw}."""
    return _entity(raw, 0, len(raw), 0, _Budget(), DEFAULT_TYPE)


def _entity(
    raw: bytes, start: int, end: int, depth: int, budget: _Budget, default: ContentType
) -> Entity:
    budget.left -= 1
    fields_end, body_start = split_header(raw, start, end)
    fields = scan_fields(raw, start, fields_end)
    entity = Entity(raw, start, fields_end, body_start, end, fields, default)
    value = entity.get(b"content-type")
    if value is not None:
        # RFC 2045 5.2: an invalid Content-Type is text/plain, even in a digest.
        entity.content_type = parse_content_type(value) or DEFAULT_TYPE
    parsed = entity.content_type
    nested = depth < MAX_DEPTH and budget.left > 0
    if parsed.is_(b"multipart"):
        boundary = parsed.param(b"boundary")
        ranges = []
        if boundary and nested:
            ranges = _split(raw, body_start, end, boundary, budget.left)
        if not ranges:
            entity.content_type = DEFAULT_TYPE
            return entity
        child_default = DIGEST_DEFAULT_TYPE if parsed.is_(b"multipart", b"digest") else DEFAULT_TYPE
        entity.children = [_entity(raw, a, b, depth + 1, budget, child_default) for a, b in ranges]
    elif parsed.is_(b"message", b"rfc822"):
        if not nested:
            entity.content_type = DEFAULT_TYPE
            return entity
        entity.message = _entity(raw, body_start, end, depth + 1, budget, DEFAULT_TYPE)
    return entity


def _split(raw: bytes, start: int, end: int, boundary: bytes, limit: int) -> list[tuple[int, int]]:
    """
    The (start, end) of each body part of the multipart body
    C{raw[start:end]} delimited by C{boundary} (RFC 2046 5.1.1): a delimiter
    line is C{--boundary} (C{--boundary--} for the last) at the start of a
    line, then optional whitespace.  Without a close delimiter the last part
    runs to the end.  No delimiter at all: no parts.  The C{limit}th part
    runs to the end, whatever delimiters follow.
    """
    delimiter = b"--" + boundary
    line_start = b"\n" + delimiter
    parts: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    misses = 0
    pattern: re.Pattern[bytes] | None = None
    while True:
        # The body starts a line: a delimiter there has no LF before it.
        if pos == start and raw.startswith(delimiter, start, end):
            i = start
        elif pattern is None:
            i = raw.find(line_start, max(pos - 1, start), end)
            if i == -1:
                break
            i += 1
        else:
            match = pattern.search(raw, max(pos - 1, start), end)
            if match is None:
                break
            i = match.start() + 1
        pos = i + 1
        k = i + len(delimiter)
        close = raw.startswith(b"--", k, end)
        if close:
            k += 2
        while k < end and raw[k] in _WSP:
            k += 1
        if k == end:
            line_end = end
        elif raw[k] == _LF:
            line_end = k + 1
        elif raw[k] == _CR and k + 1 < end and raw[k + 1] == _LF:
            line_end = k + 2
        else:  # "--boundaryX": another boundary, or text
            misses += 1
            if misses == _MAX_MISSES:
                # Lines that look like delimiters: let the regex engine skip them.
                pattern = re.compile(re.escape(line_start) + rb"(?:--)?[ \t]*(?:\n|\r\n|\Z)")
            continue
        if part_start != -1:
            cut = i
            if i > start:
                cut = i - 1
                if cut > start and raw[cut - 1] == _CR:
                    cut -= 1
            parts.append((part_start, max(part_start, cut)))
        if close:
            return parts
        part_start = pos = line_end
        if len(parts) == limit - 1:
            break
    if part_start != -1:
        parts.append((part_start, end))
    return parts
