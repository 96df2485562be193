"""
The assistant's commands on C{/ws} (C{assistant.*}, C{docs/websocket.md}).

A turn can take as long as the model thinks, and a socket handles its
messages one at a time, so C{assistant.send} and C{assistant.confirm}
answer at once (C{{"started": true}}) and the turn runs on: its events
reach every socket of the user as C{assistant} events as they happen —
the model's words as C{delta}s, then C{text}, C{tool_call},
C{tool_result}, C{confirm}, C{error} — and end with a C{state} event
(C{done} or C{awaiting_confirmation}).  Meanwhile the socket stays free
for C{assistant.cancel} and everything else.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gk.assistant.conversations import AssistantError, AssistantService
from gk.events import AssistantActivity
from gk.storage.accounts import Account
from gk.ws.connection import LiveSocket
from gk.ws.hub import LiveHub
from gk.ws.protocol import ClientMessage, ProtocolError

#: Longest text of one message (the service checks its own limit too).
MAX_TEXT = 20_000
MAX_ID = 64


class AssistantCommands:
    """C{assistant.*} commands, acting through an L{AssistantService}."""

    log = Logger()

    def __init__(self, hub: LiveHub, assistant: AssistantService) -> None:
        self.assistant = assistant
        hub.forward(AssistantActivity, _activity)

    def commands(self) -> dict[str, Any]:
        return {
            "assistant.conversations": self.conversations,
            "assistant.create": self.create,
            "assistant.history": self.history,
            "assistant.delete": self.delete,
            "assistant.send": self.send,
            "assistant.confirm": self.confirm,
            "assistant.cancel": self.cancel,
        }

    async def conversations(self, connection: LiveSocket, message: ClientMessage) -> Any:
        found = await self.assistant.conversations(connection.account)
        return {"conversations": [c.to_json() for c in found]}

    async def create(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return {"id": await self.assistant.create(connection.account)}

    async def history(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return await _guard(
            message, self.assistant.history(connection.account, _conversation(message))
        )

    async def delete(self, connection: LiveSocket, message: ClientMessage) -> Any:
        await _guard(message, self.assistant.delete(connection.account, _conversation(message)))
        return {}

    async def send(self, connection: LiveSocket, message: ClientMessage) -> Any:
        conversation_id = _conversation(message)
        text = message.text("text", max_length=MAX_TEXT)
        assert text is not None
        account = connection.account
        # Checked now, so that a wrong id is this message's error.
        await _guard(message, self.assistant.check_exists(account, conversation_id))
        self._start(account, self.assistant.send(account, conversation_id, text))
        return {"started": True}

    async def confirm(self, connection: LiveSocket, message: ClientMessage) -> Any:
        confirmation_id = message.text("confirmation_id", max_length=MAX_ID)
        assert confirmation_id is not None
        approve = message.flag("approve", False)
        account = connection.account
        self._start(account, self.assistant.confirm(account, confirmation_id, approve))
        return {"started": True}

    async def cancel(self, connection: LiveSocket, message: ClientMessage) -> Any:
        return {"cancelled": self.assistant.cancel(connection.account, _conversation(message))}

    def _start(self, account: Account, turn: Any) -> None:
        d: Deferred[Any] = Deferred.fromCoroutine(turn)

        def failed(failure: Any) -> None:
            if failure.check(AssistantError):
                self.assistant.publish_error(account, str(failure.value))
                return
            self.log.failure("assistant turn failed", failure)
            self.assistant.publish_error(account, "the assistant failed; try again")

        d.addErrback(failed)


async def _guard(message: ClientMessage, work: Any) -> Any:
    try:
        return await work
    except AssistantError as e:
        raise ProtocolError(e.code, str(e), message.id) from None


def _conversation(message: ClientMessage) -> str:
    conversation_id = message.text("conversation_id", max_length=MAX_ID)
    assert conversation_id is not None
    return conversation_id


def _activity(event: AssistantActivity) -> tuple[str, Any, int | None]:
    return "assistant", {"conversation_id": event.conversation_id, **event.event}, None
