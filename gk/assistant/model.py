"""
The model behind the assistant: Ollama's C{/api/chat} through the
official C{ollama} client, whose C{AsyncClient} runs on the asyncio loop
the reactor runs on.  Its coroutines are bridged into Twisted code with
C{Deferred.fromFuture}; cancelling the Deferred cancels the request.

A streamed answer is accumulated piece by piece (content, thinking and
tool calls arrive in separate chunks) into one L{ModelReply}; the content
pieces are also handed to a callback as they arrive, for live display.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from ollama import AsyncClient, ResponseError
from twisted.internet.defer import Deferred

T = TypeVar("T")


class ModelUnavailable(Exception):
    """The model cannot answer; the message says why, for the user."""


@dataclass
class ModelReply:
    """One complete answer of the model."""

    content: str = ""
    thinking: str = ""
    #: Each C{{"name": ..., "arguments": {...}}}, in the model's order.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_message(self) -> dict[str, Any]:
        """The answer as an assistant message of the chat history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.thinking:
            message["thinking"] = self.thinking
        if self.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in self.tool_calls
            ]
        return message


def _bridge(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    return Deferred.fromFuture(asyncio.ensure_future(coro))


class OllamaModel:
    """One model on one Ollama server."""

    def __init__(self, url: str, model: str, timeout: float) -> None:
        self.url = url
        self.model = model
        self.timeout = timeout
        self._client: AsyncClient | None = None

    def _ollama(self) -> AsyncClient:
        # Made on first use, on the running loop, not at import or build.
        if self._client is None:
            self._client = AsyncClient(host=self.url, timeout=self.timeout)
        return self._client

    def reply(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        on_content: Callable[[str], None] | None = None,
    ) -> Deferred[ModelReply]:
        """
        The model's next answer to C{messages}, given C{tools}.

        @raise ModelUnavailable: (as the Deferred's failure) the server
            cannot be reached, does not have the model, fails, or takes
            longer than the timeout.
        """
        return _bridge(self._reply(messages, tools, on_content))

    async def _reply(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        on_content: Callable[[str], None] | None,
    ) -> ModelReply:
        reply = ModelReply()
        try:
            async with asyncio.timeout(self.timeout):
                stream = await self._ollama().chat(
                    self.model, list(messages), tools=list(tools), stream=True
                )
                async for chunk in stream:
                    message = chunk.message
                    if message.thinking:
                        reply.thinking += message.thinking
                    if message.content:
                        reply.content += message.content
                        if on_content is not None:
                            on_content(message.content)
                    for call in message.tool_calls or ():
                        reply.tool_calls.append(
                            {"name": call.function.name, "arguments": dict(call.function.arguments)}
                        )
        except TimeoutError:
            raise ModelUnavailable(
                f"the model did not answer within {self.timeout:g} seconds"
            ) from None
        except ResponseError as e:
            raise ModelUnavailable(self._explain(e)) from None
        except (ConnectionError, httpx.HTTPError) as e:
            raise ModelUnavailable(
                f"cannot reach the model server at {self.url} ({type(e).__name__})"
            ) from None
        return reply

    def _explain(self, error: ResponseError) -> str:
        if error.status_code == 404:
            return (
                f"the model {self.model!r} is not installed on the Ollama server "
                f"(an administrator can run: ollama pull {self.model})"
            )
        return f"the model server answered with an error: {error.error}"

    def probe(self) -> Deferred[str | None]:
        """None when the server answers and has the model; else why not."""
        return _bridge(self._probe())

    async def _probe(self) -> str | None:
        try:
            async with asyncio.timeout(min(self.timeout, 3.0)):
                await self._ollama().show(self.model)
        except TimeoutError:
            return f"the model server at {self.url} did not answer in time"
        except ResponseError as e:
            return self._explain(e)
        except (ConnectionError, httpx.HTTPError) as e:
            return f"cannot reach the model server at {self.url} ({type(e).__name__})"
        except Exception as e:  # e.g. pydantic refusing an answer of another version
            return f"the model server at {self.url} gave an unexpected answer ({type(e).__name__})"
        return None

    def close(self) -> Deferred[None]:
        """Close the HTTP client (httpx needs an asyncio task for it: bridged)."""
        return _bridge(self._close())

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
