"""
L{AssistantService}: the conversation loop.

One turn starts with the user's words and runs the model; each tool call
the model makes is checked and run as the user, its result handed back
as quoted data, until the model answers without calling a tool, a step
limit is reached, or a call needs the user's consent.  Then the turn
pauses: everything so far is stored, with the calls not yet run, and a
confirmation id is given to the user.  The answer to it (approve or not)
runs or refuses that exact call — a refusal goes back to the model as
such — and the turn goes on.  Because the paused state is in the
database, a restart between the two loses nothing.

Every event of a turn is returned in order and also published on the
event bus as it happens (L{AssistantActivity}), with the model's words
streamed as deltas, for the user's open sockets.
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from gk.assistant.model import ModelReply, ModelUnavailable, OllamaModel
from gk.assistant.prompt import quote_result, system_prompt, without_images
from gk.assistant.tools import ToolContext, ToolError, ToolOutcome, ToolRegistry
from gk.errors import GkError
from gk.events import AssistantActivity, EventBus
from gk.storage import assistant_store as store
from gk.storage.accounts import Account
from gk.storage.database import Database

JSON = dict[str, Any]

#: Longest message a user may send in one turn.
MAX_TEXT = 20_000
#: The conversations a list shows.
MAX_LISTED = 200
#: Seconds a readiness probe of the model server is reused.
PROBE_INTERVAL = 10.0


class AssistantError(GkError):
    """A request the assistant cannot take; C{code} and C{status} for the API."""

    code = "assistant_error"
    status = 400


class NoSuchConversation(AssistantError):
    code = "no_such_conversation"
    status = 404


class NoSuchConfirmation(AssistantError):
    code = "no_such_confirmation"
    status = 404


class Busy(AssistantError):
    code = "busy"
    status = 409


@dataclass
class Turn:
    """What one request to the assistant produced, in order."""

    events: list[JSON] = field(default_factory=list)
    #: C{done} or C{awaiting_confirmation}.
    state: str = "done"

    def to_json(self) -> JSON:
        return {"events": self.events, "state": self.state}


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated: datetime.datetime
    awaiting_confirmation: bool

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "title": self.title,
            "updated": self.updated.isoformat(),
            "awaiting_confirmation": self.awaiting_confirmation,
        }


class _Run:
    """One running turn: its conversation, events and step budget."""

    def __init__(self, service: AssistantService, account: Account, conversation_id: str) -> None:
        self.service = service
        self.account = account
        self.conversation_id = conversation_id
        self.turn = Turn()
        self.steps = 0

    def emit(self, event: JSON) -> None:
        self.turn.events.append(event)
        self.service.publish(self.account, self.conversation_id, event)

    def delta(self, text: str) -> None:
        self.service.publish(self.account, self.conversation_id, {"type": "delta", "text": text})


class AssistantService:
    """Conversations with the model, for each user, over gk's tools."""

    log = Logger()

    def __init__(
        self,
        db: Database,
        events: EventBus,
        tools: ToolRegistry,
        model: OllamaModel,
        timezone: ZoneInfo,
        max_steps: int,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.tools = tools
        self.model = model
        self.timezone = timezone
        self.max_steps = max_steps
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._busy: set[str] = set()
        self._running: dict[str, Deferred[Any]] = {}
        self._ollama_tools = [tool.to_ollama() for tool in tools]
        self._probed: tuple[datetime.datetime, str | None] | None = None

    # -- conversations -------------------------------------------------

    async def create(self, account: Account) -> str:
        conversation_id = secrets.token_hex(8)
        await self.db.write(lambda s: store.create_conversation(s, account.id, conversation_id))
        return conversation_id

    async def conversations(self, account: Account) -> list[ConversationSummary]:
        infos = await self.db.read(lambda s: store.list_conversations(s, account.id, MAX_LISTED))
        return [
            ConversationSummary(i.id, i.title, i.updated, i.confirmation_id is not None)
            for i in infos
        ]

    async def history(self, account: Account, conversation_id: str) -> JSON:
        """The conversation as the user saw it: its events, message by message."""

        def read(session: Any) -> tuple[store.ConversationInfo | None, list[store.StoredMessage]]:
            info = store.get_conversation(session, account.id, conversation_id)
            return info, [] if info is None else store.messages(session, conversation_id)

        info, messages = await self.db.read(read)
        if info is None:
            raise NoSuchConversation(f"no conversation {conversation_id!r}")
        events = [event for m in messages for event in m.events]
        if info.confirmation_id and info.pending:
            # The paused call is not a stored message yet: show its card.
            events.extend(self._paused_events(info.confirmation_id, info.pending))
        return {
            "id": info.id,
            "title": info.title,
            "updated": info.updated.isoformat(),
            "events": events,
            "state": "awaiting_confirmation" if info.confirmation_id else "done",
        }

    @staticmethod
    def _paused_events(confirmation_id: str, pending: JSON) -> list[JSON]:
        """The C{tool_call} and C{confirm} events of a paused turn, as they were emitted."""
        call = pending["calls"][pending["index"]]
        name, arguments = call["name"], call["arguments"]
        return [
            {"type": "tool_call", "name": name, "arguments": arguments},
            {
                "type": "confirm",
                "confirmation_id": confirmation_id,
                "name": name,
                "arguments": arguments,
                "summary": pending["summary"],
            },
        ]

    async def check_exists(self, account: Account, conversation_id: str) -> None:
        """
        @raise NoSuchConversation: C{account} has no such conversation.
        """
        await self._conversation(account, conversation_id)

    async def delete(self, account: Account, conversation_id: str) -> None:
        self.cancel(account, conversation_id)
        if not await self.db.write(
            lambda s: store.delete_conversation(s, account.id, conversation_id)
        ):
            raise NoSuchConversation(f"no conversation {conversation_id!r}")

    def cancel(self, account: Account, conversation_id: str) -> bool:
        """Stop the model's current answer in a running turn; whether one ran."""
        running = self._running.get(f"{account.id}:{conversation_id}")
        if running is None:
            return False
        running.cancel()
        return True

    def publish(self, account: Account, conversation_id: str, event: JSON) -> None:
        self.events.publish(AssistantActivity(account.id, conversation_id, event))

    def publish_error(self, account: Account, message: str, conversation_id: str = "") -> None:
        """Tell the user's sockets that a turn could not run."""
        self.publish(account, conversation_id, {"type": "error", "message": message})
        self.publish(account, conversation_id, {"type": "state", "state": "done"})

    # -- turns ---------------------------------------------------------

    async def send(self, account: Account, conversation_id: str, text: str) -> Turn:
        """
        The user says C{text}: run the turn until the model answers or a
        call needs consent.  A confirmation still open in the conversation
        is answered "no" first (the user moved on).
        """
        text = text.strip()
        if not text:
            raise AssistantError("the message is empty")
        if len(text) > MAX_TEXT:
            raise AssistantError(f"the message is longer than {MAX_TEXT} characters")
        async with self._turn(account, conversation_id) as run:
            info = await self._conversation(account, conversation_id)
            if info.confirmation_id is not None:
                await self._settle(run, info.pending, approve=False, why="the user moved on")
            event = {"type": "user", "text": text}

            def write(session: Any) -> None:
                body = {"role": "user", "content": text}
                store.append_message(session, conversation_id, "user", body, [event])
                store.set_title(session, conversation_id, _title(text))

            await self.db.write(write)
            self.publish(account, conversation_id, event)
            await self._steps(run)
            return run.turn

    async def confirm(self, account: Account, confirmation_id: str, approve: bool) -> Turn:
        """
        The user's answer to a confirmation: run (or refuse) the paused
        call, then go on with the turn.
        """
        info = await self.db.read(
            lambda s: store.conversation_of_confirmation(s, account.id, confirmation_id)
        )
        if info is None:
            raise NoSuchConfirmation(f"no pending confirmation {confirmation_id!r}")
        async with self._turn(account, info.id) as run:
            # Claimed under the row lock: a second answer finds nothing.
            pending = await self.db.write(lambda s: self._claim(s, account, confirmation_id))
            if pending is None:
                raise NoSuchConfirmation(f"no pending confirmation {confirmation_id!r}")
            if await self._settle(run, pending, approve, why="the user declined"):
                await self._steps(run)
            return run.turn

    # -- the loop ------------------------------------------------------

    def _turn(self, account: Account, conversation_id: str) -> _TurnGuard:
        return _TurnGuard(self, account, conversation_id)

    async def _conversation(self, account: Account, conversation_id: str) -> store.ConversationInfo:
        info = await self.db.read(lambda s: store.get_conversation(s, account.id, conversation_id))
        if info is None:
            raise NoSuchConversation(f"no conversation {conversation_id!r}")
        return info

    @staticmethod
    def _claim(session: Any, account: Account, confirmation_id: str) -> JSON | None:
        info = store.conversation_of_confirmation(session, account.id, confirmation_id)
        if info is None:
            return None
        store.set_pending(session, info.id, None, None)
        return info.pending

    def context(self, account: Account) -> ToolContext:
        return ToolContext(account, self.timezone, self.clock)

    async def _steps(self, run: _Run) -> None:
        """Ask the model, run its calls, repeat: until done, paused or out of steps."""
        while True:
            if run.steps >= self.max_steps:
                run.emit(
                    {
                        "type": "error",
                        "message": f"stopped after {self.max_steps} steps without an answer; "
                        "try a simpler request",
                    }
                )
                return
            run.steps += 1
            try:
                reply = await self._ask(run)
            except ModelUnavailable as e:
                run.emit({"type": "error", "message": f"The assistant is unavailable: {e}."})
                return
            events: list[JSON] = []
            content = without_images(reply.content.strip())
            if content:
                events.append({"type": "text", "text": content})
            message = reply.to_message()
            message["content"] = content
            await self._append(run, "assistant", message, events)
            for event in events:
                run.emit(event)
            if not reply.tool_calls:
                return
            if not await self._run_calls(run, reply.tool_calls, 0):
                return

    async def _ask(self, run: _Run) -> ModelReply:
        stored = await self.db.read(lambda s: store.messages(s, run.conversation_id))
        now = self.clock()
        history = [{"role": "system", "content": system_prompt(run.account, now, self.timezone)}]
        history.extend(m.body for m in stored)
        key = f"{run.account.id}:{run.conversation_id}"
        answer = self.model.reply(history, self._ollama_tools, run.delta)
        self._running[key] = answer
        try:
            return await answer
        except (CancelledError, asyncio.CancelledError):
            raise ModelUnavailable("the answer was cancelled") from None
        finally:
            self._running.pop(key, None)

    async def _run_calls(self, run: _Run, calls: list[JSON], start: int) -> bool:
        """
        Run C{calls[start:]} in order; False when one needs consent (the
        turn is then paused on it), True when all ran.
        """
        context = self.context(run.account)
        for index in range(start, len(calls)):
            name, arguments = calls[index]["name"], calls[index]["arguments"]
            call_event = {"type": "tool_call", "name": name, "arguments": arguments}
            try:
                prepared = await self.tools.prepare(context, name, arguments)
            except ToolError as e:
                await self._record(run, [call_event], ToolOutcome(name, True, str(e)))
                continue
            if prepared.needs_consent:
                await self._pause(run, calls, index, prepared.summary or "", call_event)
                return False
            outcome = await self.tools.run(prepared)
            await self._record(run, [call_event], outcome)
        return True

    async def _pause(
        self, run: _Run, calls: list[JSON], index: int, summary: str, call_event: JSON
    ) -> None:
        confirmation_id = secrets.token_hex(16)
        pending = {"calls": calls, "index": index, "summary": summary}
        name, arguments = calls[index]["name"], calls[index]["arguments"]
        confirm = {
            "type": "confirm",
            "confirmation_id": confirmation_id,
            "name": name,
            "arguments": arguments,
            "summary": summary,
        }
        await self.db.write(
            lambda s: store.set_pending(s, run.conversation_id, confirmation_id, pending)
        )
        run.emit(call_event)
        run.emit(confirm)
        run.turn.state = "awaiting_confirmation"

    async def _settle(self, run: _Run, pending: JSON, approve: bool, why: str) -> bool:
        """
        Answer the paused call: run it (approved, with exactly the stored
        arguments) or tell the model it was refused; then run the step's
        remaining calls.  False when one of those pauses again.
        """
        calls: list[JSON] = pending["calls"]
        index: int = pending["index"]
        name, arguments = calls[index]["name"], calls[index]["arguments"]
        context = self.context(run.account)
        if approve:
            try:
                prepared = await self.tools.prepare(context, name, arguments)
            except ToolError as e:
                outcome = ToolOutcome(name, True, str(e))
            else:
                if prepared.needs_consent and prepared.summary != pending["summary"]:
                    # What would run now is not what the user saw: ask again.
                    await self._pause(
                        run, calls, index, prepared.summary or "",
                        {"type": "tool_call", "name": name, "arguments": arguments},
                    )  # fmt: skip
                    return False
                prepared.approve()
                outcome = await self.tools.run(prepared)
        else:
            outcome = ToolOutcome(
                name,
                True,
                f"{why}: {name} was NOT run. Do not try it again unless the user asks.",
            )
        await self._record(run, [], outcome)
        return await self._run_calls(run, calls, index + 1)

    async def _record(self, run: _Run, before: list[JSON], outcome: ToolOutcome) -> None:
        """Store a tool's result as the model and the user will see it."""
        result_event: JSON = {
            "type": "tool_result",
            "name": outcome.name,
            "is_error": outcome.is_error,
            "content": outcome.content if outcome.content is not None else outcome.text,
        }
        message = {"role": "tool", "tool_name": outcome.name, "content": quote_result(outcome)}
        events = [*before, result_event]
        await self._append(run, "tool", message, events)
        for event in events:
            run.emit(event)

    async def _append(self, run: _Run, role: str, message: JSON, events: list[JSON]) -> None:
        await self.db.write(
            lambda s: store.append_message(s, run.conversation_id, role, message, events)
        )

    # -- readiness -----------------------------------------------------

    async def problem(self) -> str | None:
        """
        None when the model server answers and has the model; otherwise
        what is wrong, for C{/ready}.  Checked at most every
        L{PROBE_INTERVAL} seconds, so probes cannot load the server.
        """
        now = self.clock()
        if self._probed is None or (now - self._probed[0]).total_seconds() >= PROBE_INTERVAL:
            self._probed = (now, await self.model.probe())
        return self._probed[1]


class _TurnGuard:
    """One turn at a time per conversation (a second gets L{Busy})."""

    def __init__(self, service: AssistantService, account: Account, conversation_id: str) -> None:
        self.service = service
        self.key = f"{account.id}:{conversation_id}"
        self.run = _Run(service, account, conversation_id)

    async def __aenter__(self) -> _Run:
        if self.key in self.service._busy:
            raise Busy("the assistant is still answering in this conversation")
        self.service._busy.add(self.key)
        return self.run

    async def __aexit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.service._busy.discard(self.key)
        if kind is None:
            # The end of the turn, for the sockets (the API has it in its answer).
            run = self.run
            run.service.publish(
                run.account, run.conversation_id, {"type": "state", "state": run.turn.state}
            )


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:59].rstrip() + "…"
