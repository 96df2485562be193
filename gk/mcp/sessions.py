"""
The handshake era's sessions: what C{initialize} negotiated for one
client, under the unguessable id it sends back in C{MCP-Session-Id}.

A session belongs to the account whose token opened it: looked up with
another account's token it does not exist (the resource answers 404, as
for an unknown id), so ids leaked between users are worthless.  Sessions
idle longer than C{idle_timeout} expire, and an account holds at most
C{per_account} of them (opening one more ends its least recently used),
so clients that never send DELETE cannot fill memory.

A session also holds gk's requests to the client still awaiting an
answer (elicitations): ending the session cancels them, which ends the
tool call that waits on each without running it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred

from gk.mcp.jsonrpc import JSON, RequestId, Response

#: How long a session may stay unused, in seconds.
IDLE_TIMEOUT = 3600.0
#: Sessions one account may hold at once.
SESSIONS_PER_ACCOUNT = 16
#: gk's requests awaiting the client's answer in one session.
OUTSTANDING_PER_SESSION = 8


class TooManyOutstanding(Exception):
    """The session already waits for as many answers as it may."""


@dataclass
class Session:
    id: str
    account_id: int
    #: The negotiated protocol version.
    version: str
    #: The client's capabilities, as C{initialize} declared them.
    capabilities: JSON
    client_info: JSON | None
    last_used: float
    #: gk's requests to the client by id, each awaiting the client's answer.
    outstanding: dict[RequestId, Deferred[Response]] = field(default_factory=dict)
    #: For each of those, the id of the client's call it was asked for.
    asked_for: dict[RequestId, RequestId] = field(default_factory=dict)
    _counter: int = 0

    @property
    def busy(self) -> bool:
        """Whether gk waits on this session's client (its user may take a while)."""
        return bool(self.outstanding)

    def next_request_id(self) -> str:
        """A fresh id for a request gk sends in this session."""
        self._counter += 1
        return f"gk-{self._counter}"

    def expect_answer(self, request_id: RequestId, call_id: RequestId) -> Deferred[Response]:
        """
        A Deferred that fires with the client's answer to gk's request
        C{request_id}, asked while answering the client's call C{call_id};
        cancelling it forgets the request.

        @raise TooManyOutstanding: the session waits for too many answers.
        """
        if len(self.outstanding) >= OUTSTANDING_PER_SESSION:
            raise TooManyOutstanding()

        def forget(_d: Deferred[Response]) -> None:
            self.outstanding.pop(request_id, None)
            self.asked_for.pop(request_id, None)

        waiting: Deferred[Response] = Deferred(forget)
        self.outstanding[request_id] = waiting
        self.asked_for[request_id] = call_id
        return waiting

    def deliver(self, answer: Response) -> bool:
        """Hand the client's answer to whoever waits for it; False when nobody does."""
        waiting = self.outstanding.pop(answer.id, None)
        if waiting is None:
            return False
        self.asked_for.pop(answer.id, None)
        waiting.callback(answer)
        return True

    def cancel_call(self, call_id: RequestId) -> None:
        """The client cancelled its call C{call_id}: stop waiting on its behalf."""
        for request_id, asked in list(self.asked_for.items()):
            if asked == call_id and request_id in self.outstanding:
                self.outstanding[request_id].cancel()

    def end(self) -> None:
        """Cancel everything still waiting on this session."""
        for waiting in list(self.outstanding.values()):
            waiting.cancel()
        self.outstanding.clear()
        self.asked_for.clear()


class SessionStore:
    """The live sessions, by id, with their expiry and per-account bound."""

    def __init__(
        self,
        clock: Callable[[], float],
        idle_timeout: float = IDLE_TIMEOUT,
        per_account: int = SESSIONS_PER_ACCOUNT,
    ) -> None:
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.per_account = per_account
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(
        self, account_id: int, version: str, capabilities: JSON, client_info: JSON | None
    ) -> Session:
        """A new session for the account, ending its least recently used beyond the bound."""
        self._expire()
        mine = sorted(
            (s for s in self._sessions.values() if s.account_id == account_id),
            key=lambda s: s.last_used,
        )
        for old in mine[: max(0, len(mine) - self.per_account + 1)]:
            self._end(old.id)
        session = Session(
            secrets.token_urlsafe(32), account_id, version, capabilities, client_info, self.clock()
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, account_id: int) -> Session | None:
        """The account's live session C{session_id}, marked used; None for any other."""
        session = self._sessions.get(session_id)
        if session is None or session.account_id != account_id:
            return None
        now = self.clock()
        if self._idle(session, now):
            self._end(session_id)
            return None
        session.last_used = now
        return session

    def close(self, session_id: str, account_id: int) -> bool:
        """End the account's session C{session_id}; False when it has none by that id."""
        if self.get(session_id, account_id) is None:
            return False
        self._end(session_id)
        return True

    def close_all(self) -> None:
        for session_id in list(self._sessions):
            self._end(session_id)

    def _idle(self, session: Session, now: float) -> bool:
        # A session whose user is being asked is in use, however long they take.
        return not session.busy and now - session.last_used > self.idle_timeout

    def _expire(self) -> None:
        now = self.clock()
        for session in list(self._sessions.values()):
            if self._idle(session, now):
                self._end(session.id)

    def _end(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.end()
