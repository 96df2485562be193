"""
The SMTP command parser: one command line in, one L{Command} or one
L{Reply} (the error to send) out.

Pure and total: no I/O, no state, and no input makes it raise.  The
grammar is RFC 5321 section 4.1 with RFC 6531 (SMTPUTF8) addresses, RFC
1870 SIZE, RFC 6152 8BITMIME, RFC 3030 BDAT and RFC 4954 AUTH.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

#: RFC 5321 4.5.3.1: limits on the parts of a path, in octets.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256


@dataclass(frozen=True)
class Reply:
    """An SMTP reply: code, enhanced status (RFC 3463) and text."""

    code: int
    enhanced: str
    text: str

    def lines(self, with_enhanced: bool = True) -> list[bytes]:
        prefix = f"{self.enhanced} " if with_enhanced and self.enhanced else ""
        parts = self.text.split("\n")
        out = []
        for i, part in enumerate(parts):
            sep = " " if i == len(parts) - 1 else "-"
            out.append(f"{self.code}{sep}{prefix}{part}\r\n".encode())
        return out


def syntax_error(text: str = "Syntax error, command unrecognized") -> Reply:
    return Reply(500, "5.5.2", text)


def param_error(text: str) -> Reply:
    return Reply(501, "5.5.4", text)


@dataclass(frozen=True)
class Address:
    """
    A parsed mailbox: C{local} is the local part as the client meant it
    (quotes removed, escapes resolved), C{domain} a domain name or an
    address literal such as C{[192.0.2.1]}.
    """

    local: str
    domain: str
    #: Whether any part is non-ASCII (needs SMTPUTF8).
    utf8: bool = False

    def __str__(self) -> str:
        if not self.domain:  # RCPT TO:<Postmaster> (RFC 5321 4.1.1.3)
            return quote_local(self.local)
        return f"{quote_local(self.local)}@{self.domain}"

    @property
    def is_literal(self) -> bool:
        return self.domain.startswith("[")


@dataclass(frozen=True)
class Command:
    """
    A syntactically valid command.

    @ivar verb: upper-case command name.
    @ivar argument: the text after the verb (HELO/EHLO domain, NOOP/VRFY text).
    @ivar address: the path of MAIL/RCPT; L{None} for the null reverse-path C{<>}.
    @ivar params: ESMTP parameters, keywords upper-case, value L{None} when absent.
    """

    verb: str
    argument: str = ""
    address: Address | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    #: BDAT: chunk size and whether it is the last chunk.
    size: int = 0
    last: bool = False
    #: AUTH: mechanism and optional initial response.
    mechanism: str = ""
    initial_response: str | None = None


_SIMPLE_VERBS = {"DATA", "RSET", "QUIT", "STARTTLS"}
_TEXT_VERBS = {"NOOP", "HELP", "VRFY", "EXPN"}

_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f]")
_LDH_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# esmtp-value: any CHAR excluding "=", SP, and control characters (RFC 6531 adds UTF-8).
_VALUE = re.compile(r"^[^=\s\x00-\x1f\x7f]+$")


def parse_command(line: bytes) -> Command | Reply:
    """
    Parse one command line (without its CRLF).

    @return: the command, or the reply to send when the line is not a
        valid command.
    """
    if b"\x00" in line:
        return syntax_error("NUL characters are not allowed")
    if any(b < 0x20 and b != 0x09 for b in line) or 0x7F in line:
        return syntax_error("Control characters are not allowed")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return syntax_error("Commands must be UTF-8")
    verb, _, rest = text.partition(" ")
    verb = verb.upper()
    if not verb.isascii() or not verb.isalpha():
        return syntax_error()
    if verb in ("HELO", "EHLO"):
        return _parse_hello(verb, rest.strip())
    if verb == "MAIL":
        return _parse_path_command(verb, rest, "FROM:", allow_null=True)
    if verb == "RCPT":
        return _parse_path_command(verb, rest, "TO:", allow_null=False)
    if verb == "BDAT":
        return _parse_bdat(rest)
    if verb == "AUTH":
        return _parse_auth(rest)
    if verb in _SIMPLE_VERBS:
        if rest.strip():
            return param_error(f"{verb} takes no arguments")
        return Command(verb)
    if verb in _TEXT_VERBS:
        return Command(verb, argument=rest.strip())
    return syntax_error()


def _parse_hello(verb: str, argument: str) -> Command | Reply:
    if not argument:
        return param_error(f"{verb} needs a domain or address literal")
    # Many clients send junk after the domain ("EHLO host (comment)");
    # Postfix accepts any single word, and so do we: only the first word
    # is kept, and it must look like a domain or literal.
    word = argument.split()[0]
    if word.startswith("["):
        if _parse_address_literal(word) is None:
            return param_error("Invalid address literal")
    elif not _is_domain(word, utf8=True):
        return param_error("Invalid domain name")
    return Command(verb, argument=word)


def _parse_path_command(verb: str, rest: str, keyword: str, allow_null: bool) -> Command | Reply:
    if rest[: len(keyword)].upper() != keyword:
        return param_error(f"Syntax: {verb} {keyword}<address>")
    rest = rest[len(keyword) :].lstrip(" ")  # tolerate "MAIL FROM: <a@b>"
    if not rest.startswith("<"):
        return param_error("Addresses must be in angle brackets")
    end = _path_end(rest)
    if end is None:
        return param_error("Unterminated address")
    path, params_text = rest[1:end], rest[end + 1 :]
    if params_text and not params_text.startswith(" "):
        return param_error("Junk after the address")
    params = _parse_params(params_text.strip())
    if isinstance(params, Reply):
        return params
    if path == "":
        if not allow_null:
            return param_error("The null address is not a valid recipient")
        return Command(verb, params=params)
    if path.lower() == "postmaster" and verb == "RCPT":
        # RFC 5321 4.5.1: <Postmaster> without a domain must be accepted.
        return Command(verb, address=Address("postmaster", ""), params=params)
    if len(path.encode("utf-8")) + 2 > MAX_PATH:
        return Reply(501, "5.1.3", "Path too long")
    address = parse_path(path)
    if isinstance(address, Reply):
        return address
    return Command(verb, address=address, params=params)


def _path_end(text: str) -> int | None:
    """Index of the ">" closing the path that starts at text[0] == "<"."""
    in_quotes = False
    i = 1
    while i < len(text):
        ch = text[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == ">":
            return i
        i += 1
    return None


def parse_path(path: str) -> Address | Reply:
    """
    Parse the inside of C{<...>}: an optional source route (accepted and
    ignored, RFC 5321 4.1.2) and a mailbox.
    """
    if path.startswith("@"):
        route, colon, path = path.partition(":")
        if not colon or not all(
            part.startswith("@") and _is_domain(part[1:], utf8=True) for part in route.split(",")
        ):
            return param_error("Invalid source route")
    return parse_mailbox(path)


def parse_mailbox(text: str) -> Address | Reply:
    local, at, domain = _split_mailbox(text)
    if not at:
        return Reply(501, "5.1.3", "Address must be local-part@domain")
    if local is None:
        return Reply(501, "5.1.3", "Invalid local part")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        return Reply(501, "5.1.3", "Local part longer than 64 octets")
    if domain.startswith("["):
        literal = _parse_address_literal(domain)
        if literal is None:
            return Reply(501, "5.1.3", "Invalid address literal")
        domain = literal
    else:
        if not _is_domain(domain, utf8=True):
            return Reply(501, "5.1.3", "Invalid domain")
        if len(domain.encode("utf-8")) > MAX_DOMAIN:
            return Reply(501, "5.1.3", "Domain longer than 255 octets")
    utf8 = not (local.isascii() and domain.isascii())
    return Address(local, domain, utf8)


def _split_mailbox(text: str) -> tuple[str | None, str, str]:
    """C{(local part or None if invalid, "@" or "", domain)}."""
    if text.startswith('"'):
        local_chars = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                if i + 1 >= len(text) or not _quoted_pair_ok(text[i + 1]):
                    return None, "@", ""
                local_chars.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                break
            if not _qtext_ok(ch):
                return None, "@", ""
            local_chars.append(ch)
            i += 1
        else:
            return None, "@", ""
        rest = text[i + 1 :]
        if not rest.startswith("@"):
            return None, "", ""
        return "".join(local_chars), "@", rest[1:]
    local, at, domain = text.rpartition("@")
    if not at:
        return None, "", ""
    if not _is_dot_string(local):
        return None, "@", domain
    return local, "@", domain


def _qtext_ok(ch: str) -> bool:
    # qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8 (RFC 6531).
    o = ord(ch)
    return (32 <= o <= 126 and ch not in '"\\') or o > 127


def _quoted_pair_ok(ch: str) -> bool:
    return 32 <= ord(ch) <= 126


def _is_dot_string(text: str) -> bool:
    if not text or text.startswith(".") or text.endswith(".") or ".." in text:
        return False
    return all(_ATEXT.fullmatch(ch) for ch in text.replace(".", ""))


def _is_domain(text: str, utf8: bool = False) -> bool:
    text = text[:-1] if text.endswith(".") else text
    if not text or len(text.encode("utf-8")) > MAX_DOMAIN:
        return False
    for label in text.split("."):
        if label.isascii():
            if not _LDH_LABEL.match(label):
                return False
        elif not utf8 or not _is_u_label(label):
            return False
    return True


def _is_u_label(label: str) -> bool:
    try:
        encoded = label.encode("idna")
    except UnicodeError:
        return False
    return 0 < len(encoded) <= 63


def _parse_address_literal(text: str) -> str | None:
    """C{[192.0.2.1]} or C{[IPv6:2001:db8::1]} -> normalised literal, else None."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1]
    try:
        if inner[:5].upper() == "IPV6:":
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:]).compressed}]"
        if inner.count(".") == 3 and all(p.isdigit() and len(p) <= 3 for p in inner.split(".")):
            return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        return None
    return None


def _parse_params(text: str) -> dict[str, str | None] | Reply:
    params: dict[str, str | None] = {}
    if not text:
        return params
    for word in text.split(" "):
        if not word:
            continue
        keyword, eq, value = word.partition("=")
        if not _KEYWORD.match(keyword):
            return Reply(555, "5.5.4", f"Invalid parameter {keyword!r}")
        if eq and not _VALUE.match(value):
            return Reply(555, "5.5.4", f"Invalid value for {keyword.upper()}")
        key = keyword.upper()
        if key in params:
            return Reply(555, "5.5.4", f"Duplicate parameter {key}")
        params[key] = value if eq else None
    return params


def _parse_bdat(rest: str) -> Command | Reply:
    words = rest.split()
    if not words or len(words) > 2 or not words[0].isdigit() or not words[0].isascii():
        return param_error("Syntax: BDAT size [LAST]")
    if len(words) == 2 and words[1].upper() != "LAST":
        return param_error("Syntax: BDAT size [LAST]")
    if len(words[0]) > 15:
        return Reply(552, "5.3.4", "Chunk too large")
    return Command("BDAT", size=int(words[0]), last=len(words) == 2)


def _parse_auth(rest: str) -> Command | Reply:
    words = rest.split()
    if not words or len(words) > 2:
        return param_error("Syntax: AUTH mechanism [initial-response]")
    mechanism = words[0].upper()
    if not _KEYWORD.match(mechanism) and "_" not in mechanism:
        return param_error("Invalid mechanism")
    return Command(
        "AUTH", mechanism=mechanism, initial_response=words[1] if len(words) == 2 else None
    )


def quote_local(local: str) -> str:
    """The local part as it must be written in a path (quoted when needed)."""
    if _is_dot_string(local):
        return local
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
