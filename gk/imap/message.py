"""
The message side of IMAP FETCH (RFC 3501 6.4.5, 7.4.2 and 9): ENVELOPE,
BODY / BODYSTRUCTURE and the content of C{BODY[section]<partial>}, from the
stored bytes of a message.

Pure, deterministic and total: no input makes these raise, and what they
return is always a well-formed IMAP value.  Sections are byte slices of the
stored message, never re-encoded (only HEADER.FIELDS and .NOT join the
chosen fields, each as stored).

Choices, where RFC 3501 leaves them open:

  - Strings are quoted when they are 7-bit and sent as literals
    (C{{n}\\r\\n...}) when they hold CR, LF or 8-bit bytes (RFC 6532 UTF-8
    headers, raw 8-bit parameters): IMAP4rev1 quoted strings are 7-bit only,
    literals are valid whether or not the client enabled UTF8=ACCEPT, so
    the rendering never depends on the session and can be stored.  NUL
    (never valid outside literal8) is dropped.
  - Header values are unfolded and trimmed, otherwise as in the message:
    encoded-words are not decoded, dates are not reformatted.  The first
    occurrence of a field is used.
  - Addresses: display names are the phrase with its quoted-strings
    unquoted and whitespace runs collapsed (a trailing comment names a bare
    addr-spec, as Dovecot does); the local part keeps its quotes (so that
    C{mailbox@host} is a valid address again); a missing domain is C{""}
    (NIL is reserved for group markers).
  - Media types, subtypes, parameter names and values are sent as they
    appear in the message (Dovecot's choice), so boundaries keep their case;
    a part without a valid Content-Type is C{"text" "plain" ("charset"
    "us-ascii")}, an absent Content-Transfer-Encoding C{"7bit"}.
  - Sizes are octets as stored (bare LFs are not counted as CRLF: what we
    send is what is stored); line counts are the LFs plus one for an
    unterminated last line.
  - A section that does not exist (a part number too high, HEADER or TEXT
    of a part that is not message/rfc822, MIME of the whole message) is
    C{b""}, as Dovecot sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gk.imap.mime import (
    Entity,
    Field,
    comment_end,
    header_fields,
    parse,
    parse_disposition,
    quoted_string,
    skip_cfws,
)

__all__ = [
    "MessageStructure",
    "bodystructure",
    "envelope",
    "header_fields",
    "partial",
    "section",
]

NIL = b"NIL"


# IMAP strings.

#: What goes between quotes as it is (RFC 3501 9 QUOTED-CHAR, less the escapes).
_PLAIN = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]*")


def _string(value: bytes) -> bytes:
    """C{value} as an IMAP string: quoted, or a literal when it must be."""
    if _PLAIN.fullmatch(value):
        return b'"' + value + b'"'
    if b"\x00" in value:
        value = value.replace(b"\x00", b"")
    if b"\r" in value or b"\n" in value or not value.isascii():
        return b"{%d}\r\n%s" % (len(value), value)
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _nstring(value: bytes | None) -> bytes:
    return NIL if value is None else _string(value)


def _list(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


# ENVELOPE.

_ATOM, _QUOTED, _COMMENT, _LITERAL, _SPECIAL = range(5)
_WORDS = (_ATOM, _QUOTED)
_ADDRESS_SPECIALS = frozenset(b'()<>[]:;@,."')
_SPACE = frozenset(b" \t\r\n")

#: (kind, text, whether whitespace or a comment came before).  Text is raw,
#: except for comments (their content).
_Token = tuple[int, bytes, bool]


def _tokens(value: bytes) -> list[_Token]:
    """RFC 5322 lexical tokens of an address field value; never fails."""
    out: list[_Token] = []
    n = len(value)
    i = 0
    space = False
    while i < n:
        c = value[i]
        if c in _SPACE:
            space = True
            i += 1
        elif c == 0x28:  # (
            j = comment_end(value, i)
            inner = value[i + 1 : j - 1 if value[j - 1] == 0x29 else j]
            out.append((_COMMENT, inner.strip(b" \t"), space))
            space = True
            i = j
        elif c == 0x22:  # "
            _, j = quoted_string(value, i)
            out.append((_QUOTED, value[i:j], space))
            space = False
            i = j
        elif c == 0x5B:  # [
            j = value.find(b"]", i)
            j = n if j == -1 else j + 1
            out.append((_LITERAL, value[i:j], space))
            space = False
            i = j
        elif c in _ADDRESS_SPECIALS:
            out.append((_SPECIAL, value[i : i + 1], space))
            space = False
            i += 1
        else:
            j = i + 1
            while j < n and value[j] not in _SPACE and value[j] not in _ADDRESS_SPECIALS:
                j += 1
            out.append((_ATOM, value[i:j], space))
            space = False
            i = j
    return out


def _phrase(tokens: Sequence[_Token]) -> bytes | None:
    """A display name: quoted-strings unquoted, whitespace runs as one space."""
    parts: list[bytes] = []
    for kind, text, space in tokens:
        if kind == _COMMENT:
            continue
        if space and parts:
            parts.append(b" ")
        parts.append(quoted_string(text, 0)[0] if kind == _QUOTED else text)
    name = b"".join(parts)
    return name or None


def _spec(tokens: Sequence[_Token]) -> bytes:
    """A local part or domain: tokens as written, CFWS dropped between them."""
    parts: list[bytes] = []
    previous = -1
    for kind, text, space in tokens:
        if kind == _COMMENT:
            continue
        if space and kind in _WORDS and previous in _WORDS:
            parts.append(b" ")
        parts.append(text)
        previous = kind
    return b"".join(parts)


def _is(token: _Token, char: bytes) -> bool:
    return token[0] == _SPECIAL and token[1] == char


def _address(tokens: list[_Token]) -> bytes | None:
    """One mailbox as an IMAP address, L{None} when there is nothing."""
    words = [t for t in tokens if t[0] != _COMMENT]
    if not words:
        return None
    open_ = next((i for i, t in enumerate(words) if _is(t, b"<")), -1)
    adl = None
    if open_ == -1:
        comments = [t[1] for t in tokens if t[0] == _COMMENT and t[1]]
        name = comments[-1] if comments else None
        spec = words
    else:
        name = _phrase(words[:open_])
        close = next((i for i, t in enumerate(words) if i > open_ and _is(t, b">")), len(words))
        spec = words[open_ + 1 : close]
        if spec and _is(spec[0], b"@"):
            colon = next((i for i, t in enumerate(spec) if _is(t, b":")), -1)
            if colon != -1:
                adl = _spec(spec[:colon])
                spec = spec[colon + 1 :]
    at = max((i for i, t in enumerate(spec) if _is(t, b"@")), default=-1)
    local, domain = (spec, []) if at == -1 else (spec[:at], spec[at + 1 :])
    return _list([_nstring(name), _nstring(adl), _string(_spec(local)), _string(_spec(domain))])


def _addresses(value: bytes | None) -> list[bytes]:
    """The IMAP addresses of an address-list field, group markers included."""
    if value is None:
        return []
    out: list[bytes] = []
    current: list[_Token] = []
    angle = group = False

    def flush() -> None:
        address = _address(current)
        if address is not None:
            out.append(address)
        current.clear()

    for token in _tokens(value):
        if token[0] != _SPECIAL:
            current.append(token)
        elif token[1] == b"<":
            angle = True
            current.append(token)
        elif token[1] == b">":
            angle = False
            current.append(token)
        elif angle:
            current.append(token)
        elif token[1] == b",":
            flush()
        elif token[1] == b":" and not group and not any(_is(t, b"@") for t in current):
            group = True
            name = _phrase(current) or b""
            out.append(_list([NIL, NIL, _string(name), NIL]))
            current.clear()
        elif token[1] == b";":
            flush()
            if group:
                out.append(b"(NIL NIL NIL NIL)")
                group = False
        else:
            current.append(token)
    flush()
    if group:
        out.append(b"(NIL NIL NIL NIL)")
    return out


def _envelope(entity: Entity) -> bytes:
    def address_list(addresses: list[bytes]) -> bytes:
        return b"(" + b"".join(addresses) + b")" if addresses else NIL

    from_ = _addresses(entity.get(b"from"))
    sender = _addresses(entity.get(b"sender")) or from_
    reply_to = _addresses(entity.get(b"reply-to")) or from_
    return _list(
        [
            _nstring(entity.get(b"date")),
            _nstring(entity.get(b"subject")),
            address_list(from_),
            address_list(sender),
            address_list(reply_to),
            address_list(_addresses(entity.get(b"to"))),
            address_list(_addresses(entity.get(b"cc"))),
            address_list(_addresses(entity.get(b"bcc"))),
            _nstring(entity.get(b"in-reply-to")),
            _nstring(entity.get(b"message-id")),
        ]
    )


# BODY and BODYSTRUCTURE.


def _params(params: Sequence[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return _list(_string(item) for pair in params for item in pair)


def _extension(entity: Entity) -> list[bytes]:
    """body-fld-dsp, body-fld-lang and body-fld-loc."""
    disposition = entity.get(b"content-disposition")
    parsed = None if disposition is None else parse_disposition(disposition)
    dsp = NIL if parsed is None else _list([_string(parsed[0]), _params(parsed[1])])
    language = entity.get(b"content-language")
    tags = []
    if language is not None:
        tags = [t for t in (s.strip(b" \t\r\n") for s in language.split(b",")) if t]
    if not tags:
        lang = NIL
    elif len(tags) == 1:
        lang = _string(tags[0])
    else:
        lang = _list(_string(t) for t in tags)
    return [dsp, lang, _nstring(entity.get(b"content-location"))]


def _encoding(entity: Entity) -> bytes:
    value = entity.get(b"content-transfer-encoding")
    if value is not None:
        i = skip_cfws(value, 0)
        value = value[i:].split(b"(")[0].strip(b" \t\r\n")
    return value or b"7bit"


def _body(entity: Entity, extensible: bool) -> bytes:
    ctype = entity.content_type
    if entity.children:
        out = b"".join(_body(child, extensible) for child in entity.children)
        out += b" " + _string(ctype.subtype)
        if extensible:
            out += b" " + b" ".join([_params(ctype.params), *_extension(entity)])
        return b"(" + out + b")"
    items = [
        _string(ctype.type),
        _string(ctype.subtype),
        _params(ctype.params),
        _nstring(entity.get(b"content-id")),
        _nstring(entity.get(b"content-description")),
        _string(_encoding(entity)),
        b"%d" % entity.body_size,
    ]
    if entity.message is not None:
        items += [
            _envelope(entity.message),
            _body(entity.message, extensible),
            b"%d" % entity.body_lines,
        ]
    elif ctype.is_(b"text"):
        items.append(b"%d" % entity.body_lines)
    if extensible:
        items += [_nstring(entity.get(b"content-md5")), *_extension(entity)]
    return _list(items)


# BODY[section].


class MessageStructure:
    """
    One stored message, scanned once: renderings and sections come from
    the same parse (cache it while a FETCH walks a message).
    """

    __slots__ = ("_body", "_bodystructure", "_envelope", "raw", "root")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.root = parse(raw)
        self._envelope: bytes | None = None
        self._body: bytes | None = None
        self._bodystructure: bytes | None = None

    def envelope(self) -> bytes:
        """The ENVELOPE, e.g. C{("date" "subject" ((NIL NIL "a" "b")) ...)}."""
        if self._envelope is None:
            self._envelope = _envelope(self.root)
        return self._envelope

    def bodystructure(self, extensible: bool = True) -> bytes:
        """BODYSTRUCTURE (with extension data), or BODY when not C{extensible}."""
        if extensible:
            if self._bodystructure is None:
                self._bodystructure = _body(self.root, True)
            return self._bodystructure
        if self._body is None:
            self._body = _body(self.root, False)
        return self._body

    def _resolve(self, part: Sequence[int]) -> tuple[Entity, bool] | None:
        """
        The entity C{part} names, and whether it is a message (the whole
        message, for the empty path) rather than a body part.
        """
        entity, is_message = self.root, True
        for number in part:
            if not is_message and entity.message is not None:
                entity, is_message = entity.message, True
            if entity.children:
                if not 1 <= number <= len(entity.children):
                    return None
                entity, is_message = entity.children[number - 1], False
            elif is_message and number == 1:
                # The body part of a non-multipart message is the message.
                is_message = False
            else:
                return None
        return entity, is_message

    def span(self, part: Sequence[int], kind: str | None = None) -> tuple[int, int] | None:
        """
        Where the content of C{BODY[part.kind]} lies in L{raw}, for every
        kind but HEADER.FIELDS(.NOT); L{None} when there is no such section
        or it is not one slice.  Lets a server send (a partial of) a large part
        without copying it.
        """
        resolved = self._resolve(part)
        if resolved is None:
            return None
        entity, is_message = resolved
        kind = None if kind is None else kind.upper()
        if kind == "MIME":
            return None if is_message else (entity.start, entity.body_start)
        if kind is None:
            if is_message:
                return entity.start, entity.end
            return entity.body_start, entity.end
        if not is_message:
            if entity.message is None:
                return None
            entity = entity.message
        if kind == "HEADER":
            return entity.start, entity.body_start
        if kind == "TEXT":
            return entity.body_start, entity.end
        return None

    def section(
        self, part: Sequence[int], kind: str | None = None, fields: Sequence[str | bytes] = ()
    ) -> bytes:
        """
        The content of C{BODY[section]}: C{part} is the part number path
        (empty for the whole message), C{kind} None (the whole part, or the
        whole message), HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT (with
        C{fields}, case-insensitive), TEXT or MIME.  HEADER and
        HEADER.FIELDS(.NOT) end with the blank line when the message has
        one.  C{b""} when there is no such section.
        """
        kind = None if kind is None else kind.upper()
        if kind not in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            where = self.span(part, kind)
            return b"" if where is None else self.raw[where[0] : where[1]]
        resolved = self._resolve(part)
        if resolved is None:
            return b""
        entity, is_message = resolved
        if not is_message:
            if entity.message is None:
                return b""
            entity = entity.message
        return _header_fields(entity, fields, kind == "HEADER.FIELDS.NOT")


def _header_fields(entity: Entity, names: Sequence[str | bytes], exclude: bool) -> bytes:
    wanted = {
        (name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")).lower()
        for name in names
    }
    raw = entity.raw

    def chosen(f: Field) -> bool:
        return (f.name.lower() in wanted) != exclude

    out = [raw[f.start : f.end] for f in entity.fields if chosen(f)]
    out.append(raw[entity.fields_end : entity.body_start])
    return b"".join(out)


def envelope(raw: bytes) -> bytes:
    """The IMAP ENVELOPE of the message C{raw} (RFC 3501 7.4.2)."""
    return _envelope(parse(raw))


def bodystructure(raw: bytes, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE of the message C{raw}, or BODY when not C{extensible}."""
    return _body(parse(raw), extensible)


def section(
    raw: bytes, part: Sequence[int], kind: str | None = None, fields: Sequence[str | bytes] = ()
) -> bytes:
    """The content of C{BODY[section]} of C{raw}: see L{MessageStructure.section}."""
    return MessageStructure(raw).section(part, kind, fields)


def partial(data: bytes, origin: int, count: int | None) -> bytes:
    """
    The C{<origin.count>} partial of C{data} (RFC 3501 6.4.5): at most
    C{count} octets from C{origin} (all of them for L{None}); C{b""} when
    C{origin} is past the end.  Negative values are C{ValueError}.
    """
    if origin < 0 or (count is not None and count < 0):
        raise ValueError("negative partial range")
    if count is None:
        return data[origin:]
    return data[origin : origin + count]
