"""
The IMAP command grammar: one L{RawCommand} in, one L{Command} or one
L{ParseError} (the response to send) out.

Pure and total: no I/O, no state, and no input makes it raise.  The
grammar is IMAP4rev1 (RFC 3501 9) with LITERAL+ (RFC 7888), UIDPLUS
(RFC 4315), MOVE (RFC 6851), ID (RFC 2971), ENABLE (RFC 5161), UNSELECT
(RFC 3691), IDLE (RFC 2177), NAMESPACE (RFC 2342), CONDSTORE and QRESYNC
(RFC 7162), QUOTA (RFC 9208), LIST-EXTENDED (RFC 5258) with SPECIAL-USE
(RFC 6154), ESEARCH's RETURN (RFC 4731) and STATUS=SIZE (RFC 8438).

Parsing normalises what means the same: command names, keywords and
header field names are upper-case, system flags have their usual
spelling, mailbox names are decoded from modified UTF-7 (C{INBOX} in any
case is C{INBOX}), FETCH macros are expanded, and SEARCH keys are reduced
to a few node types (L{SearchKey}).  Whether a command is allowed in the
session's state is for the session to decide.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from gk.imap.fetch_attributes import FetchAttribute, Section, fetch_attributes
from gk.imap.framing import RawCommand
from gk.imap.search import SearchKey, search_program
from gk.imap.syntax import MAX_MODSEQ, Invalid, ParseError, SequenceSet, Tokens, mailbox_name, utf8

__all__ = [
    "Append",
    "Authenticate",
    "Command",
    "Copy",
    "Enable",
    "Expunge",
    "Fetch",
    "FetchAttribute",
    "GetQuota",
    "Id",
    "ListMailboxes",
    "Login",
    "MailboxCommand",
    "ParseError",
    "QResync",
    "Rename",
    "Search",
    "SearchKey",
    "Section",
    "Select",
    "SequenceSet",
    "Status",
    "Store",
    "parse_command",
]


@dataclass(frozen=True)
class Command:
    """
    A syntactically valid command.  Those without arguments (CAPABILITY,
    NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, UNSELECT, IDLE, NAMESPACE) are
    plain L{Command}s; the others are the subclasses below, whose own
    fields are keyword-only.

    @ivar name: upper-case command name, C{UID} left out.
    @ivar uid: the command was prefixed with C{UID} (FETCH, STORE, COPY,
        MOVE, SEARCH, EXPUNGE): its numbers are UIDs.
    """

    tag: str
    name: str
    uid: bool = False


@dataclass(frozen=True, kw_only=True)
class Authenticate(Command):
    """@ivar initial_response: SASL-IR (RFC 4959) base64, C{"="} for an empty one."""

    mechanism: str
    initial_response: str | None = None


@dataclass(frozen=True, kw_only=True)
class Login(Command):
    username: str
    password: str


@dataclass(frozen=True)
class QResync:
    """
    SELECT's QRESYNC parameter (RFC 7162 3.2.5).

    @ivar seq_match: known sequence numbers and their UIDs, pairwise.
    """

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, kw_only=True)
class Select(Command):
    """SELECT or EXAMINE."""

    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, kw_only=True)
class MailboxCommand(Command):
    """CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE or GETQUOTAROOT."""

    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Rename(Command):
    mailbox: str
    new_name: str


@dataclass(frozen=True, kw_only=True)
class GetQuota(Command):
    """@ivar root: a quota root name (not a mailbox name)."""

    root: str


@dataclass(frozen=True, kw_only=True)
class ListMailboxes(Command):
    """
    LIST or LSUB.

    @ivar reference: the reference name, decoded like a mailbox name.
    @ivar patterns: one or more (LIST-EXTENDED) patterns with C{*} and C{%}.
    @ivar select_options: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE.
    @ivar return_options: SUBSCRIBED, CHILDREN, SPECIAL-USE.
    """

    reference: str
    patterns: tuple[str, ...]
    select_options: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Status(Command):
    """@ivar items: upper-case, in the order asked, each once."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Append(Command):
    """@ivar date_time: the INTERNALDATE to give, L{None} for now."""

    mailbox: str
    flags: tuple[str, ...] = ()
    date_time: datetime | None = None
    message: bytes


@dataclass(frozen=True, kw_only=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE (RFC 4315) with the UIDs in C{sequence}."""

    sequence: SequenceSet | None = None


@dataclass(frozen=True, kw_only=True)
class Search(Command):
    """
    @ivar charset: C{UTF-8} or C{US-ASCII} as given (others are refused
        with C{NO [BADCHARSET]}); strings are decoded as UTF-8 either way.
    @ivar return_options: RETURN (RFC 4731): a subset of MIN MAX ALL
        COUNT (C{RETURN ()} means ALL), answered with ESEARCH; L{None}
        without RETURN, answered with SEARCH.
    """

    key: SearchKey
    charset: str | None = None
    return_options: frozenset[str] | None = None


@dataclass(frozen=True, kw_only=True)
class Fetch(Command):
    """
    @ivar attributes: macros expanded; one per response name (C{BODY[]}
        and C{BODY.PEEK[]} give one C{BODY[]}, not a peek); C{UID} first
        in a UID FETCH and C{MODSEQ} added with CHANGEDSINCE, as the
        responses must carry them (RFC 3501 6.4.8, RFC 7162 3.1.4.1).
    @ivar vanished: QRESYNC's VANISHED modifier (UID FETCH only).
    """

    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True, kw_only=True)
class Store(Command):
    """@ivar operation: C{FLAGS} replaces, C{+FLAGS} adds, C{-FLAGS} removes."""

    sequence: SequenceSet
    operation: Literal["replace", "add", "remove"]
    silent: bool = False
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True, kw_only=True)
class Copy(Command):
    """COPY or MOVE."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Enable(Command):
    """@ivar capabilities: upper-case, as asked."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Id(Command):
    """@ivar parameters: field/value pairs in order; L{None} for C{ID NIL}."""

    parameters: tuple[tuple[str, str | None], ...] | None


def parse_command(raw: RawCommand) -> Command | ParseError:
    """Parse one complete command (see L{gk.imap.framing})."""
    tokens = Tokens(raw.parts)
    tag: str | None = None
    try:
        tag = tokens.tag()
        if tokens.at_end():
            raise Invalid("missing command name")
        tokens.sp()
        name = tokens.keyword("a command name")
        uid = name == "UID"
        if uid:
            tokens.sp()
            name = tokens.keyword("a command name")
            if name not in _UID_COMMANDS:
                raise Invalid(f"unknown command UID {name}")
        parse = _COMMANDS.get(name)
        if parse is None:
            raise Invalid("unknown command")
        command = parse(tokens, tag, name, uid)
        tokens.end()
        return command
    except Invalid as e:
        # Messages may quote the client's words: keep responses short.
        return ParseError(tag, e.message[:200], e.status, e.code)


_Parser = Callable[[Tokens, str, str, bool], Command]

_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")  # SASL-IR initial response
_STORE_ITEM = re.compile(rb"[+-]?[A-Za-z.]+")


def _no_arguments(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    if not t.at_end():
        raise Invalid(f"{name} takes no arguments")
    return Command(tag, name)


def _authenticate(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    mechanism = t.keyword("a SASL mechanism")
    initial = None
    if t.skip(b" "):
        initial = t.token(_BASE64, "base64 or =").decode("ascii")
    return Authenticate(tag, name, mechanism=mechanism, initial_response=initial)


def _login(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    username = t.text("a user name")
    t.sp()
    return Login(tag, name, username=username, password=t.text("a password"))


def _select(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    mailbox = t.mailbox()
    condstore = False
    qresync = None
    if t.skip(b" ("):
        while True:
            param = t.keyword("a SELECT parameter")
            if param == "CONDSTORE" and not condstore:
                condstore = True
            elif param == "QRESYNC" and qresync is None:
                t.sp()
                qresync = _qresync(t)
            else:
                raise Invalid(f"unexpected SELECT parameter {param}")
            if t.skip(b")"):
                break
            t.sp()
    return Select(tag, name, mailbox=mailbox, condstore=condstore, qresync=qresync)


def _qresync(t: Tokens) -> QResync:
    t.expect(b"(")
    uidvalidity = t.nz_number("UIDVALIDITY")
    t.sp()
    modseq = t.number(MAX_MODSEQ, "a mod-sequence")
    known_uids = None
    seq_match = None
    if t.skip(b" "):
        if not t.at(b"("):
            known_uids = t.sequence_set()
        if known_uids is None or t.skip(b" "):
            t.expect(b"(")
            sequences = t.sequence_set()
            t.sp()
            seq_match = (sequences, t.sequence_set())
            t.expect(b")")
    t.expect(b")")
    return QResync(uidvalidity, modseq, known_uids, seq_match)


def _mailbox_command(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    return MailboxCommand(tag, name, mailbox=t.mailbox())


def _rename(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    mailbox = t.mailbox()
    t.sp()
    return Rename(tag, name, mailbox=mailbox, new_name=t.mailbox())


def _getquota(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    return GetQuota(tag, name, root=t.text("a quota root"))


_LIST_SELECT = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_LIST_RETURN = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"}


def _list(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    select: frozenset[str] = frozenset()
    if name == "LIST" and t.at(b"("):
        select = _options(t, _LIST_SELECT, "LIST selection option")
        if select == {"RECURSIVEMATCH"}:
            raise Invalid("RECURSIVEMATCH needs another selection option")
        t.sp()
    reference = t.mailbox()
    t.sp()
    if name == "LIST" and t.skip(b"("):
        patterns = [_pattern(t)]
        while t.skip(b" "):
            patterns.append(_pattern(t))
        t.expect(b")")
    else:
        patterns = [_pattern(t)]
    returns: frozenset[str] = frozenset()
    if name == "LIST" and t.skip(b" "):
        if not t.skip_word(b"RETURN"):
            raise Invalid("expected RETURN")
        t.sp()
        returns = _options(t, _LIST_RETURN, "LIST return option")
    return ListMailboxes(
        tag,
        name,
        reference=reference,
        patterns=tuple(patterns),
        select_options=select,
        return_options=returns,
    )


def _pattern(t: Tokens) -> str:
    return mailbox_name(t.list_mailbox())


def _options(t: Tokens, allowed: set[str], what: str) -> frozenset[str]:
    """C{(option *(SP option))}, possibly empty, each one of C{allowed}."""
    t.expect(b"(")
    options: set[str] = set()
    while not t.skip(b")"):
        if options:
            t.sp()
        option = t.keyword(what)
        if option not in allowed:
            raise Invalid(f"unknown {what} {option}")
        options.add(option)
    return frozenset(options)


_STATUS_ITEMS = {
    *("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE"),
}


def _status(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    mailbox = t.mailbox()
    t.sp()
    t.expect(b"(")
    items: list[str] = []
    while True:
        item = t.keyword("a status item")
        if item not in _STATUS_ITEMS:
            raise Invalid(f"unknown status item {item}")
        items.append(item)
        if t.skip(b")"):
            break
        t.sp()
    return Status(tag, name, mailbox=mailbox, items=tuple(dict.fromkeys(items)))


def _append(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    mailbox = t.mailbox()
    t.sp()
    flags: tuple[str, ...] = ()
    when = None
    if t.at(b"("):
        flags = t.flag_list()
        t.sp()
    if t.at(b'"'):
        when = t.date_time()
        t.sp()
    if not t.literal_next():
        raise Invalid("the message must be a literal")
    message = t.literal()
    return Append(tag, name, mailbox=mailbox, flags=flags, date_time=when, message=message)


def _expunge(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    if not uid:
        _no_arguments(t, tag, name, uid)
        return Expunge(tag, name)
    t.sp()
    return Expunge(tag, name, uid, sequence=t.sequence_set())


def _search(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    returns: frozenset[str] | None = None
    if t.skip_word(b"RETURN"):
        t.sp()
        if t.at(b"(SAVE") or t.at(b"(save"):
            raise Invalid("RETURN (SAVE) is not supported")
        returns = _options(t, {"MIN", "MAX", "ALL", "COUNT"}, "SEARCH return option")
        returns = returns or frozenset({"ALL"})
        t.sp()
    charset = None
    if t.skip_word(b"CHARSET"):
        t.sp()
        charset = t.text("a charset").upper()
        if charset not in ("UTF-8", "US-ASCII"):
            raise Invalid("unsupported charset", "NO", "BADCHARSET (US-ASCII UTF-8)")
        t.sp()
    key = search_program(t)
    return Search(tag, name, uid, key=key, charset=charset, return_options=returns)


def _fetch(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    sequence = t.sequence_set()
    t.sp()
    attributes = fetch_attributes(t)
    changed_since = None
    vanished = False
    if t.skip(b" ("):
        while True:
            modifier = t.keyword("a FETCH modifier")
            if modifier == "CHANGEDSINCE" and changed_since is None:
                t.sp()
                changed_since = t.number(MAX_MODSEQ, "a mod-sequence")
            elif modifier == "VANISHED" and not vanished:
                vanished = True
            else:
                raise Invalid(f"unexpected FETCH modifier {modifier}")
            if t.skip(b")"):
                break
            t.sp()
    if vanished and (not uid or changed_since is None):
        raise Invalid("VANISHED needs UID FETCH and CHANGEDSINCE")
    if uid and FetchAttribute("UID") not in attributes:
        attributes.insert(0, FetchAttribute("UID"))
    if changed_since is not None and FetchAttribute("MODSEQ") not in attributes:
        attributes.append(FetchAttribute("MODSEQ"))
    return Fetch(
        tag,
        name,
        uid,
        sequence=sequence,
        attributes=_merge(attributes),
        changed_since=changed_since,
        vanished=vanished,
    )


def _merge(attributes: list[FetchAttribute]) -> tuple[FetchAttribute, ...]:
    """
    One attribute per response name, the first asked for, but not a peek if
    any of them is not (C{BODY[]} and C{BODY.PEEK[]} are both C{BODY[]}).
    """
    merged: dict[str, FetchAttribute] = {}
    for attribute in attributes:
        first = merged.setdefault(attribute.response_name, attribute)
        if first.peek and not attribute.peek:
            merged[attribute.response_name] = replace(first, peek=False)
    return tuple(merged.values())


def _store(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    sequence = t.sequence_set()
    t.sp()
    unchanged_since = None
    if t.skip(b"("):
        if not t.skip_word(b"UNCHANGEDSINCE"):
            raise Invalid("expected UNCHANGEDSINCE")
        t.sp()
        unchanged_since = t.number(MAX_MODSEQ, "a mod-sequence")
        t.expect(b")")
        t.sp()
    item = t.token(_STORE_ITEM, "FLAGS, +FLAGS or -FLAGS").decode("ascii").upper()
    operation = _STORE_OPERATIONS[item[0]] if item[0] in "+-" else "replace"
    if item.lstrip("+-") not in ("FLAGS", "FLAGS.SILENT"):
        raise Invalid(f"unknown STORE item {item}")
    t.sp()
    if t.at(b"("):
        flags = t.flag_list()
    else:
        flag_items = [t.flag()]
        while t.skip(b" "):
            flag_items.append(t.flag())
        flags = tuple(dict.fromkeys(flag_items))
    return Store(
        tag,
        name,
        uid,
        sequence=sequence,
        operation=operation,
        silent=item.endswith(".SILENT"),
        flags=flags,
        unchanged_since=unchanged_since,
    )


_STORE_OPERATIONS: dict[str, Literal["add", "remove"]] = {"+": "add", "-": "remove"}


def _copy(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    sequence = t.sequence_set()
    t.sp()
    return Copy(tag, name, uid, sequence=sequence, mailbox=t.mailbox())


def _enable(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    capabilities = []
    t.sp()
    capabilities.append(t.keyword("a capability"))
    while t.skip(b" "):
        capabilities.append(t.keyword("a capability"))
    return Enable(tag, name, capabilities=tuple(dict.fromkeys(capabilities)))


def _id(t: Tokens, tag: str, name: str, uid: bool) -> Command:
    t.sp()
    if t.skip_word(b"NIL"):
        return Id(tag, name, parameters=None)
    t.expect(b"(")
    parameters: list[tuple[str, str | None]] = []
    while not t.skip(b")"):
        if parameters:
            t.sp()
        field = utf8(t.string("an ID field"), "an ID field")
        t.sp()
        value = t.nstring("an ID value")
        # RFC 2971 3.3: at most 30 pairs, fields of 30 and values of 1024 octets.
        if len(parameters) == 30 or len(field.encode()) > 30 or len(value or b"") > 1024:
            raise Invalid("ID parameters too long or too many")
        parameters.append((field, None if value is None else utf8(value, "an ID value")))
    return Id(tag, name, parameters=tuple(parameters))


_COMMANDS: dict[str, _Parser] = {
    **dict.fromkeys(
        ("CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "IDLE"),
        _no_arguments,
    ),
    "NAMESPACE": _no_arguments,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select,
    "EXAMINE": _select,
    **dict.fromkeys(
        ("CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "GETQUOTAROOT"), _mailbox_command
    ),
    "RENAME": _rename,
    "GETQUOTA": _getquota,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "ENABLE": _enable,
    "ID": _id,
}
_UID_COMMANDS = {"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"}
