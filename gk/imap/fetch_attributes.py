"""
FETCH data items (RFC 3501 6.4.5, RFC 7162 MODSEQ): what a client asks
for, as L{FetchAttribute}s, macros (ALL, FAST, FULL) expanded.

A body section is a L{Section}, whose fields match what
L{gk.imap.message.section} takes.  Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gk.imap.syntax import MAX_NUMBER, Invalid, Tokens

_ATTRIBUTE = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_SPEC = re.compile(rb"[A-Za-z0-9.]*")


@dataclass(frozen=True)
class Section:
    """
    A body section (RFC 3501 6.4.5): C{BODY[1.2.HEADER.FIELDS (FROM TO)]}
    is C{Section((1, 2), "HEADER.FIELDS", ("FROM", "TO"))}.

    @ivar part: part numbers; empty for the whole message.
    @ivar text: HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
        (only after part numbers), or L{None} for the whole part.
    @ivar fields: the upper-case field names of HEADER.FIELDS[.NOT].
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join([*map(str, self.part), *([self.text] if self.text else [])])
        return f"{spec} ({' '.join(self.fields)})" if self.fields else spec


_SECTION_TEXTS = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"}
_SIMPLE_ATTRIBUTES = {
    *("ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE"),
    *("RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ"),
}


@dataclass(frozen=True)
class FetchAttribute:
    """
    One FETCH data item.

    @ivar name: ENVELOPE, FLAGS, INTERNALDATE, RFC822, RFC822.HEADER,
        RFC822.SIZE, RFC822.TEXT, BODY, BODYSTRUCTURE, UID or MODSEQ.
        C{BODY} with a C{section} is C{BODY[...]} (or C{BODY.PEEK[...]}
        with C{peek}); without, the non-extensible body structure.
    @ivar partial: C{<offset.count>}, in octets.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def response_name(self) -> str:
        """The name the FETCH response gives the value: C{BODY[TEXT]<0>}, C{FLAGS}."""
        if self.section is None:
            return self.name
        origin = f"<{self.partial[0]}>" if self.partial else ""
        return f"BODY[{self.section}]{origin}"

    @property
    def sets_seen(self) -> bool:
        """Whether fetching it sets C{\\Seen} (RFC 3501 6.4.5)."""
        if self.section is not None:
            return not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")


_FAST = tuple(map(FetchAttribute, ("FLAGS", "INTERNALDATE", "RFC822.SIZE")))
_MACROS = {
    "FAST": _FAST,
    "ALL": (*_FAST, FetchAttribute("ENVELOPE")),
    "FULL": (*_FAST, FetchAttribute("ENVELOPE"), FetchAttribute("BODY")),
}


def fetch_attributes(t: Tokens) -> list[FetchAttribute]:
    """C{"(" fetch-att *(SP fetch-att) ")"}, a single fetch-att, or a macro."""
    if t.skip(b"("):
        attributes = [_fetch_attribute(t)]
        while t.skip(b" "):
            attributes.append(_fetch_attribute(t))
        t.expect(b")")
        return attributes
    for macro, expansion in _MACROS.items():
        if t.skip_word(macro.encode()):
            return list(expansion)
    return [_fetch_attribute(t)]


def _fetch_attribute(t: Tokens) -> FetchAttribute:
    name = t.token(_ATTRIBUTE, "a FETCH attribute").decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and t.at(b"["):
        section = _section(t)
        partial = None
        if t.skip(b"<"):
            offset = t.number(what="a partial offset")
            t.expect(b".")
            partial = (offset, t.nz_number("a partial length"))
            t.expect(b">")
        return FetchAttribute("BODY", section, partial, peek=name == "BODY.PEEK")
    if name not in _SIMPLE_ATTRIBUTES:
        raise Invalid(f"unknown FETCH attribute {name}")
    return FetchAttribute(name)


def _section(t: Tokens) -> Section:
    t.expect(b"[")
    spec = t.token(_SECTION_SPEC, "a section").decode("ascii")
    items = spec.split(".") if spec else []
    part: list[int] = []
    while items and items[0].isdigit():
        number = int(items.pop(0)[:11])
        if not 1 <= number <= MAX_NUMBER:
            raise Invalid("invalid section part number")
        part.append(number)
    text = ".".join(items).upper() if items else None
    if text is not None and (text not in _SECTION_TEXTS or (text == "MIME" and not part)):
        raise Invalid(f"invalid section {spec}")
    fields: list[str] = []
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        t.sp()
        t.expect(b"(")
        while not fields or t.skip(b" "):
            field = t.text("a header field name").upper()
            if not field or not all("!" <= c <= "~" and c != ":" for c in field):
                raise Invalid("invalid header field name")
            fields.append(field)
        t.expect(b")")
    t.expect(b"]")
    return Section(tuple(part), text, tuple(dict.fromkeys(fields)))
