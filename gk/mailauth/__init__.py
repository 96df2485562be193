"""
Checks on inbound mail: SPF (RFC 7208), DKIM (RFC 6376, RFC 8463) and DMARC
(RFC 7489), reported in an Authentication-Results field (RFC 8601).

The SMTP server uses L{MailAuthenticator}: C{check_sender} at MAIL FROM,
C{check_message} after DATA; the L{AuthResults} it returns carries the
C{disposition} (deliver, file into Junk, refuse with 550 5.7.1) and the
header field to add.  L{remove_own_results} strips fields that claim to be
this server's before that.
"""

from gk.mailauth.results import (
    AuthResults,
    Disposition,
    DKIMResult,
    DMARCResult,
    SPFResult,
    remove_own_results,
)
from gk.mailauth.service import MailAuthenticator

__all__ = [
    "AuthResults",
    "DKIMResult",
    "DMARCResult",
    "Disposition",
    "MailAuthenticator",
    "SPFResult",
    "remove_own_results",
]
