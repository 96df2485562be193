"""
Asking an MCP client's user to confirm a side effect, in both eras.

The question is a form elicitation whose message is the exact action
(L{PreparedCall.summary <gk.assistant.tools.PreparedCall>}) and whose
form has one boolean, C{confirm}; only C{accept} with C{confirm: true}
approves (L{read_answer}).  In the handshake era gk sends it as an
C{elicitation/create} request over the call's event stream and waits; in
the stateless era (2026-07-28) the call is answered with an
C{input_required} result carrying the question and an opaque
C{requestState}, and the client calls again with the user's answer.

That second call is trusted only through L{PendingConfirmations}: the
C{requestState} is the id of a confirmation gk keeps server-side, bound
to the account, the tool and the exact arguments (canonical JSON),
single-use and short-lived.  A client cannot approve anything by
claiming so: without a live confirmation for this very call, its answer
is not read.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gk.mcp.jsonrpc import JSON

#: The key of gk's one input request in an C{input_required} result.
INPUT_KEY = "confirm"
#: How long a stateless confirmation waits for the client's second call, in seconds.
CONFIRMATION_TTL = 600.0
#: Confirmations one account may have pending at once.
PENDING_PER_ACCOUNT = 16


def question(summary: str, with_mode: bool = True) -> JSON:
    """
    The params of the C{elicitation/create} form asking to confirm
    C{summary}; C{with_mode} for revisions that name the mode (2025-11-25 on).
    """
    params: JSON = {
        "message": summary,
        "requestedSchema": {
            "type": "object",
            "properties": {
                "confirm": {
                    "type": "boolean",
                    "title": "Confirm",
                    "description": "Yes: do exactly this now. No: do nothing.",
                    "default": False,
                }
            },
            "required": ["confirm"],
        },
    }
    if with_mode:
        return {"mode": "form", **params}
    return params


def read_answer(answer: Any) -> bool:
    """Whether an elicitation result approves: accepted, with C{confirm} true."""
    if not isinstance(answer, dict) or answer.get("action") != "accept":
        return False
    content = answer.get("content")
    return isinstance(content, dict) and content.get("confirm") is True


def describe_refusal(answer: Any) -> str:
    """How the user answered, when that was not an approval, for the tool error."""
    action = answer.get("action") if isinstance(answer, dict) else None
    if action == "cancel":
        return "the user dismissed the confirmation"
    if action == "accept":
        return "the user did not confirm"
    return "the user declined"


def canonical(arguments: JSON) -> str:
    """The arguments as one string, equal for equal JSON whatever the key order."""
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class ConfirmationRefused(Exception):
    """The C{requestState} names no live confirmation for this account and call."""


@dataclass(frozen=True)
class PendingConfirmation:
    id: str
    account_id: int
    tool: str
    #: L{canonical} form of the arguments the user is asked about.
    arguments: str
    summary: str
    expires: float


class PendingConfirmations:
    """Stateless-era confirmations awaiting the client's second call."""

    def __init__(
        self,
        clock: Callable[[], float],
        ttl: float = CONFIRMATION_TTL,
        per_account: int = PENDING_PER_ACCOUNT,
    ) -> None:
        self.clock = clock
        self.ttl = ttl
        self.per_account = per_account
        self._pending: dict[str, PendingConfirmation] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def issue(
        self, account_id: int, tool: str, arguments: JSON, summary: str
    ) -> PendingConfirmation:
        """A new confirmation; the account's oldest is dropped beyond the bound."""
        self._expire()
        mine = sorted(
            (p for p in self._pending.values() if p.account_id == account_id),
            key=lambda p: p.expires,
        )
        for old in mine[: max(0, len(mine) - self.per_account + 1)]:
            del self._pending[old.id]
        pending = PendingConfirmation(
            secrets.token_urlsafe(32),
            account_id,
            tool,
            canonical(arguments),
            summary,
            self.clock() + self.ttl,
        )
        self._pending[pending.id] = pending
        return pending

    def find(self, state: Any, account_id: int, tool: str, arguments: JSON) -> PendingConfirmation:
        """
        The live confirmation C{state} of this account for exactly this
        call.  One named for another call of the account is dropped: it was
        for different arguments, and the user is asked again.

        @raise ConfirmationRefused: unknown, expired, another account's, or
            another call's.
        """
        self._expire()
        pending = self._pending.get(state) if isinstance(state, str) else None
        if pending is None or pending.account_id != account_id:
            raise ConfirmationRefused()
        if pending.tool != tool or pending.arguments != canonical(arguments):
            del self._pending[pending.id]
            raise ConfirmationRefused()
        return pending

    def discard(self, pending: PendingConfirmation) -> None:
        """A confirmation is used once: approved or refused, it is gone."""
        self._pending.pop(pending.id, None)

    def _expire(self) -> None:
        now = self.clock()
        for pending in [p for p in self._pending.values() if p.expires <= now]:
            del self._pending[pending.id]
