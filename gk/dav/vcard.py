"""
vCard 3.0 and 4.0 for CardDAV (RFC 6352 over RFC 2426 / RFC 6350): checking
a client's PUT body, indexing it, addressbook-query filters (RFC 6352 10.5),
partial address-data (10.4.2), and writing cards for the assistant.

Cards are handled as content lines, not as an object model.  Clients care
about every byte of their own fields (Apple's C{item1.} groups and
C{X-ABLabel}s, photos, folding), so the client's bytes are stored with only
the line ends made CRLF, and partial address-data and L{update_vcard} copy
untouched lines verbatim.  Neither icalendar nor vobject keeps those bytes,
and both lose data when indexing real cards (vobject cuts text values at an
unescaped comma; icalendar keeps one of Apple's repeated C{type=}
parameters), so one small tokenizer serves everything: unfold (and join
quoted-printable soft line breaks), then split each line into group, name,
parameters and value, honouring quoted parameter values.  Pure: no I/O.
"""

from __future__ import annotations

import quopri
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from xml.etree.ElementTree import Element

CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
_C = f"{{{CARDDAV_NS}}}"

MatchType = Literal["equals", "contains", "starts-with", "ends-with"]
Test = Literal["anyof", "allof"]

_MATCH_TYPES: dict[str, MatchType] = {t: t for t in get_args(MatchType)}
_TESTS: dict[str, Test] = {t: t for t in get_args(Test)}
COLLATIONS = ("i;unicode-casemap", "i;ascii-casemap", "i;octet")


class InvalidAddressData(ValueError):
    """Not one acceptable vCard: precondition C{valid-address-data} (RFC 6352 6.3.2.1)."""


class InvalidFilter(ValueError):
    """A malformed C{CARDDAV:filter}: precondition C{valid-filter} (RFC 6352 8.6)."""


class UnsupportedCollation(ValueError):
    """A collation not in L{COLLATIONS}: precondition C{supported-collation} (RFC 6352 8.3)."""

    def __init__(self, collation: str) -> None:
        super().__init__(f"unsupported collation {collation!r}")
        self.collation = collation


class InvalidAddressDataRequest(ValueError):
    """A malformed C{CARDDAV:address-data} request element: 400 Bad Request."""


# --- content lines -------------------------------------------------------

_BREAK = re.compile(r"\r\n|\r|\n")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NAME = re.compile(r"(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)")
_PARAM_NAME = re.compile(r"[A-Za-z0-9-]+")
_PARAM_VALUE = re.compile(r'"([^"]*)"|([^";:,]*)')
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_CARET = re.compile(r"\^([n^'])")
_UNCARET = {"n": "\n", "^": "^", "'": '"'}  # RFC 6868
_UNESCAPED = {"n": "\n", "N": "\n", ",": ",", ";": ";", ":": ":", "\\": "\\"}
_ENCODINGS = frozenset({"QUOTED-PRINTABLE", "BASE64", "B", "8BIT", "7BIT"})
#: The separators of list or structured values: a text-match may also hit
#: one component (one nickname, the family name, one category).
_STRUCTURED = dict(N=";,", ADR=";,", ORG=";", GENDER=";", NICKNAME=",", CATEGORIES=",")
_ALWAYS_SELECTED = frozenset({"BEGIN", "END", "VERSION", "UID"})


@dataclass(frozen=True)
class Property:
    """
    One content line of a card, unfolded.

    @ivar group: the group prefix as written (C{"item1"}), C{""} for none.
    @ivar name: the property name, upper-cased.
    @ivar params: C{(NAME, values)} in order, names upper-cased, repeats kept
        apart (Apple writes C{type=} several times); an unquoted comma list
        is split, a quoted value is one.  A 2.1-style bare C{TEL;CELL:} is
        C{TYPE} (C{ENCODING} for C{QUOTED-PRINTABLE}, C{BASE64}...).
    @ivar value: the value as on the wire: still escaped or encoded.
    @ivar lines: the physical lines as received, for verbatim copies.
    """

    group: str
    name: str
    params: tuple[tuple[str, tuple[str, ...]], ...]
    value: str
    lines: tuple[str, ...] = field(repr=False)

    def param(self, name: str) -> tuple[str, ...]:
        """All values of every parameter called C{name} (any case)."""
        name = name.upper()
        return tuple(v for n, values in self.params if n == name for v in values)

    @property
    def text(self) -> str:
        """The value decoded: quoted-printable undone, backslash escapes removed."""
        return _unescape(self.decoded())

    def components(self, separators: str = ";,") -> list[str]:
        """The value split at unescaped C{separators}, each piece decoded."""
        return _split(self.decoded(), separators)

    def decoded(self) -> str:
        """The value with quoted-printable undone, escapes kept."""
        value = self.value
        if "QUOTED-PRINTABLE" in (e.upper() for e in self.param("ENCODING")):
            raw = quopri.decodestring(value.encode("utf-8"))
            charset = (self.param("CHARSET") or ("utf-8",))[0]
            try:
                value = raw.decode(charset)
            except (LookupError, ValueError):
                value = raw.decode("utf-8", "replace")
            value = _XML_ILLEGAL.sub("", value)
        return value


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), value)


def _split(value: str, separators: str, unescape: bool = True) -> list[str]:
    """C{value} split at separators not escaped by a backslash, then unescaped."""
    pieces: list[str] = []
    start = i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] in separators:
            pieces.append(value[start:i])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    return [_unescape(p) for p in pieces] if unescape else pieces


def _parse_line(text: str, lines: tuple[str, ...]) -> Property:
    """One unfolded content line. @raise InvalidAddressData: not one."""
    m = _NAME.match(text)
    if m is None:
        raise InvalidAddressData(f"not a content line: {text[:40]!r}")
    group, name = m.group(1) or "", m.group(2).upper()
    params: list[tuple[str, tuple[str, ...]]] = []
    i = m.end()
    while i < len(text) and text[i] == ";":
        pm = _PARAM_NAME.match(text, i + 1)
        if pm is None:
            raise InvalidAddressData(f"bad parameter in {name}")
        pname, i = pm.group().upper(), pm.end()
        if i < len(text) and text[i] == "=":
            values: list[str] = []
            while True:
                vm = _PARAM_VALUE.match(text, i + 1)
                assert vm is not None  # the second branch matches anything
                value = vm.group(1) or vm.group(2) or ""
                values.append(_CARET.sub(lambda c: _UNCARET[c.group(1)], value))
                i = vm.end()
                if i >= len(text) or text[i] != ",":
                    break
            params.append((pname, tuple(values)))
        else:
            bare = "ENCODING" if pname in _ENCODINGS else "TYPE"
            params.append((bare, (pname,)))
    if i >= len(text) or text[i] != ":":
        raise InvalidAddressData(f"no ':' after {name} and its parameters")
    return Property(group, name, tuple(params), text[i + 1 :], lines)


def _tokenize(data: bytes) -> list[Property]:
    """Every content line of C{data}. @raise InvalidAddressData: not UTF-8 or bad lines."""
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidAddressData("not UTF-8") from None
    bad = _XML_ILLEGAL.search(text)
    if bad is not None:
        raise InvalidAddressData(f"control character U+{ord(bad.group()):04X}")
    logical: list[tuple[list[str], list[str]]] = []  # (unfolded pieces, physical lines)
    qp = soft_break = False
    for line in _BREAK.split(text):
        if soft_break:  # quoted-printable soft line break: the line goes on as is
            pieces, physical = logical[-1]
            pieces[-1] = pieces[-1][:-1]
            pieces.append(line)
            physical.append(line)
        elif line[:1] in (" ", "\t"):
            if not logical:
                raise InvalidAddressData("continuation line before the first line")
            logical[-1][0].append(line[1:])
            logical[-1][1].append(line)
        elif not line:
            continue
        else:
            logical.append(([line], [line]))
            qp = "QUOTED-PRINTABLE" in line.split(":", 1)[0].upper()
        soft_break = qp and line.endswith("=")
    return [_parse_line("".join(p), tuple(physical)) for p, physical in logical]


# --- cards ---------------------------------------------------------------


@dataclass(frozen=True)
class VCardObject:
    """
    One checked card and what gk indexes of it.

    @ivar uid: the UID text (RFC 6352 requires one).
    @ivar version: C{"3.0"} or C{"4.0"}.
    @ivar fn: the formatted name; without FN: from N (prefix given additional
        family suffix), else the organization, else the first email.
    @ivar emails: the EMAIL values in order, any group, empty ones skipped.
    @ivar tels: the TEL values in order; a 4.0 C{tel:} URI loses its scheme.
    @ivar organization: the organization name (first ORG, first component).
    @ivar nickname: the first NICKNAME's names joined by C{", "}.
    @ivar data: what to store: the client's bytes with CRLF line ends (and
        no byte order mark or blank lines), otherwise untouched.
    @ivar properties: every content line, for L{matches}.
    """

    uid: str
    version: str
    fn: str
    emails: tuple[str, ...]
    tels: tuple[str, ...]
    organization: str
    nickname: str
    data: bytes
    properties: tuple[Property, ...] = field(repr=False)


def parse_vcard(data: bytes) -> VCardObject:
    """
    Check and index a client's card (a CardDAV PUT body); CRLF, LF or CR
    line ends, no final line end and lower-case names are fine.

    @raise InvalidAddressData: not UTF-8; not exactly one BEGIN:VCARD ...
        END:VCARD; not one VERSION (3.0 or 4.0) and one non-empty UID; a
        line that is not a content line; a character XML cannot carry (the
        card must fit in a REPORT answer).
    """
    props = _tokenize(data)
    if not props:
        raise InvalidAddressData("empty body")
    first, last = props[0], props[-1]
    if first.name != "BEGIN" or first.value.strip().upper() != "VCARD" or first.group:
        raise InvalidAddressData("does not start with BEGIN:VCARD")
    if last.name != "END" or last.value.strip().upper() != "VCARD" or len(props) < 2:
        raise InvalidAddressData("does not end with END:VCARD")
    if any(p.name in ("BEGIN", "END") for p in props[1:-1]):
        raise InvalidAddressData("not exactly one vCard")
    versions = [p.value.strip() for p in props if p.name == "VERSION"]
    if len(versions) != 1 or versions[0] not in ("3.0", "4.0"):
        raise InvalidAddressData(f"VERSION must be 3.0 or 4.0, found {versions}")
    uids = [p.text for p in props if p.name == "UID"]
    if len(uids) != 1 or not uids[0].strip():
        raise InvalidAddressData("exactly one non-empty UID required")

    def first_of(name: str) -> Property | None:
        return next((p for p in props if p.name == name), None)

    org, nick = first_of("ORG"), first_of("NICKNAME")
    organization = org.components(";")[0] if org is not None else ""
    nickname = ", ".join(filter(None, nick.components(","))) if nick is not None else ""
    emails = tuple(e for e in (p.text for p in props if p.name == "EMAIL") if e)
    tels = tuple(_tel(p) for p in props if p.name == "TEL" and p.text)
    fn_prop, n_prop = first_of("FN"), first_of("N")
    fn = fn_prop.text if fn_prop is not None else ""
    if not fn and n_prop is not None:
        parts = [
            " ".join(filter(None, _split(c, ","))) for c in _split(n_prop.decoded(), ";", False)
        ]
        parts += [""] * (5 - len(parts))
        fn = " ".join(filter(None, [parts[3], parts[1], parts[2], parts[0], parts[4]]))
    fn = fn or organization or (emails[0] if emails else "")
    stored = _join(line for p in props for line in p.lines)
    return VCardObject(
        uids[0], versions[0], fn, emails, tels, organization, nickname, stored, tuple(props)
    )


def _join(lines: Iterable[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _tel(prop: Property) -> str:
    text = prop.text
    return text[4:] if text[:4].lower() == "tel:" else text


# --- addressbook-query filters (RFC 6352 10.5) ------------------------------


@dataclass(frozen=True)
class TextMatch:
    """
    C{CARDDAV:text-match}.  @raise UnsupportedCollation: C{collation} is not
    one of L{COLLATIONS}.  @raise InvalidFilter: unknown C{match_type}.
    """

    text: str
    collation: str = "i;unicode-casemap"
    negate: bool = False
    match_type: MatchType = "contains"

    def __post_init__(self) -> None:
        if self.collation not in COLLATIONS:
            raise UnsupportedCollation(self.collation)
        if self.match_type not in _MATCH_TYPES:
            raise InvalidFilter(f"match-type {self.match_type!r}")

    def matches(self, candidates: Iterable[str]) -> bool:
        """Whether any candidate matches, inverted when C{negate}."""
        needle, compare = _casemap(self.text, self.collation), _COMPARE[self.match_type]
        return any(compare(_casemap(c, self.collation), needle) for c in candidates) != self.negate


@dataclass(frozen=True)
class ParamFilter:
    """C{CARDDAV:param-filter}: at most one of C{is_not_defined} and C{text_match}."""

    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None

    def __post_init__(self) -> None:
        if self.is_not_defined and self.text_match is not None:
            raise InvalidFilter("param-filter with is-not-defined and text-match")


@dataclass(frozen=True)
class PropFilter:
    """
    C{CARDDAV:prop-filter}.  C{name} may carry a group (C{item1.EMAIL}): then
    only that group's property matches; without, any group or none does.
    """

    name: str
    test: Test = "anyof"
    is_not_defined: bool = False
    text_matches: tuple[TextMatch, ...] = ()
    param_filters: tuple[ParamFilter, ...] = ()

    def __post_init__(self) -> None:
        if self.test not in _TESTS:
            raise InvalidFilter(f"test {self.test!r}")


@dataclass(frozen=True)
class Filter:
    """C{CARDDAV:filter}: no prop-filters matches every card."""

    test: Test = "anyof"
    prop_filters: tuple[PropFilter, ...] = ()

    def __post_init__(self) -> None:
        if self.test not in _TESTS:
            raise InvalidFilter(f"test {self.test!r}")


_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def _casemap(text: str, collation: str) -> str:
    if collation == "i;octet":
        return text
    if collation == "i;ascii-casemap":
        return text.translate(_ASCII_UPPER)
    return unicodedata.normalize("NFKD", text.casefold())


_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "equals": str.__eq__,
    "contains": str.__contains__,
    "starts-with": str.startswith,
    "ends-with": str.endswith,
}


def matches(card: VCardObject, filter: Filter | None) -> bool:
    """
    Whether C{card} passes an addressbook-query C{filter} (RFC 6352 10.5);
    L{None} and a filter without prop-filters pass every card.

    A prop-filter's tests, combined by its C{test}, must pass on one and the
    same property of its name.  A text-match compares a property's decoded
    value and, for lists and structures (N, ADR, ORG, NICKNAME...), each
    component; a parameter's values and each item of their comma lists
    (C{TYPE="work,voice"}).  A param-filter on an absent parameter fails,
    even with a negated text-match.
    """
    if filter is None or not filter.prop_filters:
        return True
    results = (_prop_filter_matches(pf, card.properties) for pf in filter.prop_filters)
    return all(results) if filter.test == "allof" else any(results)


def _prop_filter_matches(pf: PropFilter, props: Iterable[Property]) -> bool:
    group, _, name = pf.name.upper().rpartition(".")
    found = [p for p in props if p.name == name and (not group or p.group.upper() == group)]
    if pf.is_not_defined:
        return not found
    if not pf.text_matches and not pf.param_filters:
        return bool(found)
    combine = all if pf.test == "allof" else any
    for prop in found:
        tests = [tm.matches(_candidates(prop)) for tm in pf.text_matches]
        tests += [_param_filter_matches(f, prop) for f in pf.param_filters]
        if combine(tests):
            return True
    return False


def _candidates(prop: Property) -> list[str]:
    text = prop.text
    if prop.name in _STRUCTURED:
        return [text, *prop.components(_STRUCTURED[prop.name])]
    return [text, text[4:]] if prop.name == "TEL" and text[:4].lower() == "tel:" else [text]


def _param_filter_matches(pf: ParamFilter, prop: Property) -> bool:
    if not any(n == pf.name.upper() for n, _ in prop.params):
        return pf.is_not_defined
    if pf.is_not_defined or pf.text_match is None:
        return not pf.is_not_defined
    values = prop.param(pf.name)
    return pf.text_match.matches([*values, *(item for v in values for item in v.split(","))])


def _children(element: Element) -> list[Element]:
    """Element children only (lxml also yields comments and processing instructions)."""
    return [c for c in element if isinstance(c.tag, str)]


_PROP_NAME = re.compile(r"(?:[A-Za-z0-9-]+\.)?[A-Za-z0-9-]+")


def parse_filter(element: Element) -> Filter:
    """
    The L{Filter} of a C{CARDDAV:filter} element.  A prop-filter may hold
    several text-matches (RFC 6352's DTD allows one), combined by its
    C{test}, and its text-matches and param-filters in any order.

    @raise InvalidFilter: another element, a bad attribute, a missing or
        malformed C{name}, an unknown or misplaced child (refused, since
        ignoring it would widen the result).
    @raise UnsupportedCollation: a text-match names an unknown collation.
    """
    if element.tag != _C + "filter":
        raise InvalidFilter(f"expected CARDDAV:filter, got {element.tag}")
    prop_filters = []
    for child in _children(element):
        if child.tag != _C + "prop-filter":
            raise InvalidFilter(f"unexpected {child.tag} in filter")
        prop_filters.append(_parse_prop_filter(child))
    return Filter(_test(element), tuple(prop_filters))


def _test(element: Element) -> Test:
    value = element.get("test", "anyof")
    if value not in _TESTS:
        raise InvalidFilter(f"test={value!r}")
    return _TESTS[value]


def _name(element: Element, error: type[ValueError] = InvalidFilter) -> str:
    name = element.get("name", "")
    if not _PROP_NAME.fullmatch(name):
        raise error(f"bad or missing name {name!r}")
    return name.upper()


def _parse_prop_filter(element: Element) -> PropFilter:
    name, children = _name(element), _children(element)
    if any(c.tag == _C + "is-not-defined" for c in children):
        if len(children) != 1:
            raise InvalidFilter("is-not-defined must be alone in prop-filter")
        return PropFilter(name, _test(element), is_not_defined=True)
    text_matches: list[TextMatch] = []
    param_filters: list[ParamFilter] = []
    for child in children:
        if child.tag == _C + "text-match":
            text_matches.append(_parse_text_match(child))
        elif child.tag == _C + "param-filter":
            param_filters.append(_parse_param_filter(child))
        else:
            raise InvalidFilter(f"unexpected {child.tag} in prop-filter")
    return PropFilter(name, _test(element), False, tuple(text_matches), tuple(param_filters))


def _parse_param_filter(element: Element) -> ParamFilter:
    name, children = _name(element), _children(element)
    if "." in name:
        raise InvalidFilter(f"bad parameter name {name!r}")
    if not children:
        return ParamFilter(name)
    if len(children) == 1 and children[0].tag == _C + "is-not-defined":
        return ParamFilter(name, is_not_defined=True)
    if len(children) == 1 and children[0].tag == _C + "text-match":
        return ParamFilter(name, text_match=_parse_text_match(children[0]))
    raise InvalidFilter("param-filter takes one is-not-defined or text-match")


def _parse_text_match(element: Element) -> TextMatch:
    if _children(element):
        raise InvalidFilter("text-match has element content")
    negate = element.get("negate-condition", "no")
    match_type = element.get("match-type", "contains")
    if negate not in ("yes", "no") or match_type not in _MATCH_TYPES:
        raise InvalidFilter(f"negate-condition={negate!r} match-type={match_type!r}")
    collation = element.get("collation", "i;unicode-casemap")
    return TextMatch(element.text or "", collation, negate == "yes", _MATCH_TYPES[match_type])


# --- partial address-data (RFC 6352 10.4) ---------------------------------


def parse_address_data_request(element: Element) -> list[str] | None:
    """
    The property names a C{CARDDAV:address-data} request element asks for,
    upper-cased, or L{None} for the whole card (C{allprop}, or no C{prop}).
    C{novalue} and the C{content-type}/C{version} attributes are not read.

    @raise InvalidAddressDataRequest: another element, a C{prop} without a
        valid C{name}, or C{allprop} together with C{prop}.
    """
    children = _children(element)
    if element.tag != _C + "address-data" or any(
        c.tag not in (_C + "allprop", _C + "prop") for c in children
    ):
        raise InvalidAddressDataRequest(f"not an address-data request: {element.tag}")
    names = [_name(c, InvalidAddressDataRequest) for c in children if c.tag == _C + "prop"]
    if names and len(names) != len(children):
        raise InvalidAddressDataRequest("allprop and prop together")
    return names or None


def select_address_data(data: bytes, props: Sequence[str] | None) -> bytes:
    """
    The card C{data} cut down to the properties named in C{props} (as from
    L{parse_address_data_request}; a name with a group selects only that
    group), always keeping BEGIN, END, VERSION and UID; the kept lines are
    copied verbatim, folding included.  C{props} L{None}: the whole card.

    @raise InvalidAddressData: C{data} is not a valid card.
    """
    card = parse_vcard(data)
    if props is None:
        return card.data
    wanted = [name.upper().rpartition(".") for name in props]
    return _join(
        line
        for p in card.properties
        if p.name in _ALWAYS_SELECTED
        or any(n == p.name and (not g or g == p.group.upper()) for g, _, n in wanted)
        for line in p.lines
    )


# --- writing cards ---------------------------------------------------------


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return _BREAK.sub("\\\\n", text)


def _fold(line: str) -> list[str]:
    """C{line} cut into physical lines of at most 75 octets, never inside a character."""
    raw = line.encode("utf-8")
    out: list[str] = []
    start, width = 0, 75
    while True:
        end = min(start + width, len(raw))
        while end < len(raw) and raw[end] & 0xC0 == 0x80:
            end -= 1
        out.append(("" if start == 0 else " ") + raw[start:end].decode("utf-8"))
        if end >= len(raw):
            return out
        start, width = end, 74


def _check(what: str, text: str, *, blank_ok: bool = False) -> str:
    if not blank_ok and not text.strip():
        raise ValueError(f"{what} is empty")
    bad = _XML_ILLEGAL.search(text)
    if bad is not None:
        raise ValueError(f"{what} contains control character U+{ord(bad.group()):04X}")
    return text


def _n_from_fn(fn: str) -> str:
    """N for a formatted name: the last word is the family name, the rest given names."""
    words = fn.strip().rsplit(None, 1)
    family, given = (words[1], words[0]) if len(words) == 2 else (words[0], "")
    return f"{_escape(family)};{_escape(given)};;;"


def _email_line(version: str, email: str) -> str:
    prefix = "EMAIL;TYPE=INTERNET:" if version == "3.0" else "EMAIL:"
    return prefix + _escape(_check("email", email))


def build_vcard(
    uid: str,
    fn: str,
    emails: Sequence[str] = (),
    tels: Sequence[str] = (),
    organization: str = "",
    note: str = "",
) -> bytes:
    """
    A new vCard 3.0 (the version RFC 6352 requires every server and client
    to support, and the one Apple Contacts and older Android clients write),
    CRLF, folded at 75 octets.  N is derived from C{fn} (last word family,
    the rest given) since 3.0 requires it and Apple shows N, not FN.  Text
    is escaped; line breaks in values become C{\\n}, so CRLF and CR in a
    value read back as LF.

    @raise ValueError: C{uid}, C{fn}, an email or a telephone is blank, or a
        field holds a control character a card cannot carry.
    """
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        "PRODID:-//gk//gk//EN",
        "UID:" + _escape(_check("uid", uid)),
        "FN:" + _escape(_check("fn", fn)),
        "N:" + _n_from_fn(fn),
        *(_email_line("3.0", e) for e in emails),
        *("TEL:" + _escape(_check("tel", t)) for t in tels),
    ]
    if _check("organization", organization, blank_ok=True):
        lines.append("ORG:" + _escape(organization))
    if _check("note", note, blank_ok=True):
        lines.append("NOTE:" + _escape(note))
    lines.append("END:VCARD")
    return _join(x for line in lines for x in _fold(line))


def update_vcard(
    data: bytes,
    *,
    fn: str | None = None,
    emails: Sequence[str] | None = None,
    tels: Sequence[str] | None = None,
    organization: str | None = None,
    note: str | None = None,
    nickname: str | None = None,
) -> bytes:
    """
    C{data} with the named fields changed (L{None}: unchanged) and every
    other line copied verbatim, in the card's own version.

      - C{fn} rewrites FN and N (N as in L{build_vcard}: clients show N);
      - C{organization}, C{note}, C{nickname} replace every ORG, NOTE or
        NICKNAME by one plain line where the first was (in its group);
        C{""} removes them;
      - C{emails}, C{tels} keep the lines whose value is still listed
        (emails compared case-insensitively, numbers by digits and C{+}),
        parameters and groups included; the others go, with Apple's labels
        in their group; new values follow the last old one.

    @raise InvalidAddressData: C{data} is not a valid card.
    @raise ValueError: a blank C{fn}, email or number, or a control character.
    """
    card = parse_vcard(data)
    props = card.properties
    end = len(props) - 2  # new lines go after this one: before END:VCARD
    drop: set[int] = set()
    new: dict[int, list[str]] = {}  # index -> logical lines to write after it

    def found(name: str) -> list[int]:
        return [i for i, p in enumerate(props) if p.name == name]

    singles = [("FN", fn), ("ORG", organization), ("NOTE", note), ("NICKNAME", nickname)]
    if fn is not None and (card.version == "3.0" or found("N")):
        singles.append(("N", fn))
    for name, value in singles:
        if value is None:
            continue
        where = found(name)
        drop.update(where)
        if _check(name, value, blank_ok=name not in ("FN", "N")):
            group = props[where[0]].group + "." if where and props[where[0]].group else ""
            text = _n_from_fn(value) if name == "N" else _escape(value)
            new.setdefault(where[0] if where else end, []).append(f"{group}{name}:{text}")
    for name, values, key in (("EMAIL", emails, str.casefold), ("TEL", tels, _tel_key)):
        if values is None:
            continue
        wanted = {key(_check(name, v)): v for v in values}
        where, kept = found(name), set()
        for i in where:
            k = key(_tel(props[i]) if name == "TEL" else props[i].text)
            if k in wanted and k not in kept:
                kept.add(k)
            else:
                drop.add(i)
        new.setdefault(where[-1] if where else end, []).extend(
            _email_line(card.version, v) if name == "EMAIL" else "TEL:" + _escape(v)
            for k, v in wanted.items()
            if k not in kept
        )
    _drop_orphan_labels(props, drop)
    out: list[str] = []
    for i, p in enumerate(props):
        out += [] if i in drop else p.lines
        out += [x for line in new.get(i, []) for x in _fold(line)]
    return _join(out)


def _tel_key(tel: str) -> str:
    return "".join(c for c in tel if c.isdigit() or c == "+") or tel.casefold()


def _drop_orphan_labels(props: Sequence[Property], drop: set[int]) -> None:
    """Also drop a group's remaining lines when only X- lines (labels) would be left."""
    for group in {props[i].group.upper() for i in drop if props[i].group}:
        rest = [i for i, p in enumerate(props) if p.group.upper() == group and i not in drop]
        if all(props[i].name.startswith("X-") for i in rest):
            drop.update(rest)
