"""
Making one DKIM-Signature field (RFC 6376, relaxed/relaxed; RFC 8463 for
Ed25519), with the signature computed by C{cryptography}.

Why not dkimpy's signer: it computes RSA signatures in pure Python, about
15 ms of CPU a message with the GIL held, which would cap outbound mail
well below what the rest of gk does.  dkimpy stays the verifier (inbound
checks, and the tests that check these signatures), so the two
implementations check each other.

Everything here is pure and blocking (RSA): call it from a thread.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

_WSP_RUN = re.compile(rb"[ \t]+")
_LINE_END = re.compile(rb"\r\n|\r|\n")
#: Tags are folded onto lines of about this length.
FOLD_AT = 76

SigningKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def split_message(message: bytes) -> tuple[list[bytes], bytes]:
    """
    The header fields (each with its folding, without the final line end)
    and the body, of C{message} with every line end made CRLF (as the
    message travels over SMTP and as the verifier sees it).
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\n") == crlf and message.count(b"\r") == crlf:
        data = message  # already all CRLF: the usual case, no copy
    else:
        data = _LINE_END.sub(b"\r\n", message)
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, body = (data[:-2], b"") if data.endswith(b"\r\n") else (data, b"")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields, body


def relaxed_header(field: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfolded value, WSP runs as one space."""
    name, _colon, value = field.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """
    RFC 6376 3.4.4: WSP runs as one space, none at line ends, no empty
    lines at the end, a CRLF after the last line.  C{body} has CRLF line
    ends only.  (Whole-body operations: this runs for every message.)
    """
    body = _WSP_RUN.sub(b" ", body).replace(b" \r\n", b"\r\n")
    body = body.rstrip(b" ").rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def select_fields(fields: list[bytes], names: list[bytes]) -> list[bytes]:
    """
    The fields that C{h=names} signs (RFC 6376 5.4.2): for each name in
    turn the last instance not taken yet; a name with none left signs
    nothing (that is how over-signing works).
    """
    by_name: dict[bytes, list[bytes]] = {}
    for field in fields:
        by_name.setdefault(field.partition(b":")[0].strip(b" \t").lower(), []).append(field)
    chosen = []
    for name in names:
        instances = by_name.get(name.lower())
        if instances:
            chosen.append(instances.pop())
    return chosen


def sign(
    message: bytes,
    *,
    domain: str,
    selector: str,
    key: SigningKey,
    names: list[bytes],
    timestamp: int | None = None,
    linesep: bytes = b"\r\n",
) -> bytes:
    """
    The DKIM-Signature field for C{message} signed with C{key} for
    C{domain}, covering the header fields C{names} (C{h=}); folded with
    C{linesep} and ending in it, to be put on top of the message.
    """
    fields, body = split_message(message)
    algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
    tags = [
        "v=1",
        f"a={algorithm}",
        "c=relaxed/relaxed",
        f"d={domain}",
        f"s={selector}",
        f"t={int(time.time()) if timestamp is None else timestamp}",
        "h=" + ":".join(name.decode("ascii").lower() for name in names),
        f"bh={body_hash}",
        "b=",
    ]
    unsigned = _fold(tags)
    data = b"".join(relaxed_header(field) for field in select_fields(fields, names))
    # The signature field itself, b= empty, without its final CRLF (5.4).
    data += relaxed_header(b"DKIM-Signature: " + unsigned)[:-2]
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        # RFC 8463 3: Ed25519 signs the SHA-256 hash of the data.
        signature = key.sign(hashlib.sha256(data).digest())
    value = unsigned + base64.b64encode(signature)
    return b"DKIM-Signature: " + value.replace(b"\r\n", linesep) + linesep


def _fold(tags: list[str]) -> bytes:
    """Tags joined by "; ", with a line break (CRLF TAB) where a line grows long."""
    lines = [""]
    for i, tag in enumerate(tags):
        piece = tag + (";" if i < len(tags) - 1 else "")
        if lines[-1] and len(lines[-1]) + 1 + len(piece) > FOLD_AT:
            lines.append(piece)
        else:
            lines[-1] = f"{lines[-1]} {piece}" if lines[-1] else piece
    return "\r\n\t".join(lines).encode("ascii")
