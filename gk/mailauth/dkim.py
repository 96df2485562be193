"""
DKIM verification (RFC 6376, RFC 8301, RFC 8463) with dkimpy.

dkimpy does the canonicalization, hashing and RSA-SHA256 / Ed25519-SHA256
verification.  Its C{verify} answers only true or false (a missing key, a
DNS failure and a bad signature all look alike), so the key is fetched here
first, through the check's L{Lookups}, and handed to dkimpy: that is how the
results keep the distinctions RFC 8601 asks for.

  - pass: the signature verifies;
  - fail: the body hash or the signature does not match (RFC 6376 6.1.3);
  - permerror: the signature field is malformed or expired, the algorithm
    is refused (rsa-sha1, RFC 8301), no key is published at the selector,
    or the key is unusable or shorter than 1024 bits (RFC 6376 6.1.1, 6.1.2);
  - temperror: the key could not be fetched now (DNS timeout or failure).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import dkim as dkimpy  # type: ignore[import-untyped]
from dkim.util import InvalidTagValueList, parse_tag_value  # type: ignore[import-untyped]

from gk.mailauth.resolver import DNSTempError, Lookups
from gk.mailauth.results import DKIMOutcome, DKIMResult

#: Signatures verified per message; any more are ignored (each costs a lookup).
MAX_SIGNATURES = 8
#: RFC 8301 3.2: verifiers must accept RSA keys of 1024 bits and more.
MIN_RSA_BITS = 1024
ALGORITHMS = (b"rsa-sha256", b"ed25519-sha256")

_log = logging.getLogger("gk.mailauth.dkimpy")
_log.addHandler(logging.NullHandler())
_log.propagate = False


class Signatures:
    """
    The DKIM signatures of one message, verified one at a time so that the
    caller can choose the order (and give each its share of the budget).
    """

    def __init__(self, message: bytes) -> None:
        """
        Parse C{message} (as received, CRLF or LF line ends).  Only the first
        L{MAX_SIGNATURES} signatures, topmost first, are considered.
        """
        self._verifier: Any = None
        self._values: list[bytes] = []
        self._unreadable = False
        try:
            self._verifier = dkimpy.DKIM(message, logger=_log, minkey=MIN_RSA_BITS)
        except dkimpy.DKIMException:
            header = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
            self._unreadable = b"dkim-signature" in header.lower()
            return
        self._values = [
            value for name, value in self._verifier.headers if name.lower() == b"dkim-signature"
        ][:MAX_SIGNATURES]

    def __len__(self) -> int:
        return 1 if self._unreadable else len(self._values)

    def domain(self, index: int) -> str:
        """The C{d=} of signature C{index} (empty when unreadable)."""
        if self._unreadable:
            return ""
        return _text(_tags(self._values[index]).get(b"d", b"")).lower()

    def verify(self, lookups: Lookups, index: int) -> DKIMResult:
        """
        Verify signature C{index} (blocking: run it in a worker thread); its
        key is looked up through C{lookups}.  Never raises.
        """
        if self._unreadable:
            return DKIMResult("permerror", reason="message header unreadable")
        return _verify_one(self._verifier, lookups, index, self._values[index])


def verify_dkim(lookups: Lookups, message: bytes) -> list[DKIMResult]:
    """
    Verify each DKIM-Signature of C{message}, topmost first, in one budget
    (blocking: run it in a worker thread).

    @return: one result per signature (at most L{MAX_SIGNATURES}); empty
        when the message carries none.  Never raises.
    """
    signatures = Signatures(message)
    return [signatures.verify(lookups, i) for i in range(len(signatures))]


def _verify_one(verifier: Any, lookups: Lookups, index: int, value: bytes) -> DKIMResult:
    tags = _tags(value)

    def result(outcome: DKIMOutcome, reason: str = "") -> DKIMResult:
        return DKIMResult(
            outcome,
            domain=_text(tags.get(b"d", b"")).lower(),
            selector=_text(tags.get(b"s", b"")),
            algorithm=_text(tags.get(b"a", b"")).lower(),
            signature="".join(_text(tags.get(b"b", b"")).split()),
            reason=reason,
        )

    try:
        prepared = verifier.verify_headerprep(index)
    except dkimpy.DKIMException:
        return result("permerror", "signature field invalid or expired")
    sig = prepared[0]
    if sig[b"a"].lower() not in ALGORITHMS:
        return result("permerror", "signature algorithm not accepted")
    try:
        key_name = (sig[b"s"] + b"._domainkey." + sig[b"d"]).decode("ascii")
    except UnicodeDecodeError:
        return result("permerror", "signature field invalid or expired")
    try:
        records = lookups.txt(key_name)
    except DNSTempError:
        return result("temperror", "key lookup failed")
    if not records:
        return result("permerror", "no key for signature")
    key = records[0]
    try:
        dkimpy.evaluate_pk(key_name, key)
    except Exception:
        return result("permerror", "key unusable")
    try:
        verified = verifier.verify(index, dnsfunc=lambda _name, timeout=0: key)
    except dkimpy.ValidationError as e:
        if "body hash" in str(e):
            return result("fail", "body hash did not verify")
        return result("permerror", "key not for email")
    except dkimpy.KeyFormatError:
        return result("permerror", "key unusable or too short")
    except Exception:
        return result("permerror", "signature could not be checked")
    if verified:
        return result("pass")
    return result("fail", "signature did not verify")


def _tags(value: bytes) -> dict[bytes, bytes]:
    """The signature's tags, best effort (for reporting even a broken one)."""
    try:
        tags: dict[bytes, bytes] = parse_tag_value(value)
    except InvalidTagValueList:
        return {}
    return tags


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")
