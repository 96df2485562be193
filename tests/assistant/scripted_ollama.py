"""
A scripted Ollama-compatible HTTP server on loopback: the real
C{/api/chat} request and streamed NDJSON answer shapes (content pieces,
thinking, tool_calls, the final C{done} line), C{/api/show} and
C{/api/tags}, so that gk's real client code path runs in tests.

A test gives the answers in order: each is a L{Reply}, or a function of
the request's JSON that returns one (to answer from what gk sent, e.g.
echo a subject found in a tool result).  Every request is kept in
C{requests} for assertions on what the model was shown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

JSON = dict[str, Any]
MODEL = "qwen3:8b"
CREATED = "2026-11-20T09:00:00.000000Z"


@dataclass
class Reply:
    """One model answer: words in pieces, thinking, tool calls."""

    content: list[str] = field(default_factory=list)
    tool_calls: list[tuple[str, JSON]] = field(default_factory=list)
    thinking: str = ""
    #: Seconds to wait before answering (to test timeouts and cancel).
    delay: float = 0.0

    @classmethod
    def text(cls, text: str) -> Reply:
        words = text.split(" ")
        return cls([w + " " for w in words[:-1]] + [words[-1]])

    @classmethod
    def call(cls, name: str, **arguments: Any) -> Reply:
        return cls(tool_calls=[(name, arguments)])


Answer = Reply | Callable[[JSON], Reply]


def tool_results(request: JSON) -> list[JSON]:
    """The tool results in a chat request, decoded from gk's quoting."""
    found = []
    for message in request["messages"]:
        if message["role"] == "tool":
            _header, _, payload = message["content"].partition("\n")
            found.append(json.loads(payload))
    return found


def last_result(request: JSON) -> JSON:
    return tool_results(request)[-1]


class _Chat(Resource):
    isLeaf = True

    def __init__(self, server: ScriptedOllama) -> None:
        super().__init__()
        self.scripted = server

    def render_POST(self, request: Request) -> bytes | int:
        body = json.loads(request.content.read() if request.content else b"{}")
        self.scripted.requests.append(body)
        if body.get("model") not in self.scripted.models:
            request.setResponseCode(404)
            return json.dumps({"error": f"model '{body.get('model')}' not found"}).encode()
        if not self.scripted.answers:
            request.setResponseCode(500)
            return json.dumps({"error": "the script has no more answers"}).encode()
        answer = self.scripted.answers.pop(0)
        reply = answer(body) if callable(answer) else answer
        request.setHeader(b"content-type", b"application/x-ndjson")
        if reply.delay:
            self.scripted.reactor.callLater(reply.delay, self._stream, request, reply)
            return NOT_DONE_YET
        self._stream(request, reply)
        return NOT_DONE_YET

    def _stream(self, request: Request, reply: Reply) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        lines: list[JSON] = []
        if reply.thinking:
            lines.append(_chunk({"role": "assistant", "content": "", "thinking": reply.thinking}))
        for piece in reply.content:
            lines.append(_chunk({"role": "assistant", "content": piece}))
        if reply.tool_calls:
            calls = [{"function": {"name": n, "arguments": a}} for n, a in reply.tool_calls]
            lines.append(_chunk({"role": "assistant", "content": "", "tool_calls": calls}))
        done = _chunk({"role": "assistant", "content": ""})
        done.update(done=True, done_reason="stop", total_duration=1000, eval_count=len(lines))
        lines.append(done)
        for line in lines:
            request.write(json.dumps(line).encode() + b"\n")
        request.finish()


def _chunk(message: JSON) -> JSON:
    return {"model": MODEL, "created_at": CREATED, "message": message, "done": False}


class _Show(Resource):
    isLeaf = True

    def __init__(self, server: ScriptedOllama) -> None:
        super().__init__()
        self.scripted = server

    def render_POST(self, request: Request) -> bytes:
        body = json.loads(request.content.read() if request.content else b"{}")
        if body.get("model") not in self.scripted.models:
            request.setResponseCode(404)
            return json.dumps({"error": f"model '{body.get('model')}' not found"}).encode()
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {
                "modelfile": "",
                "parameters": "",
                "template": "",
                "model_info": {"general.architecture": "qwen3"},
                "capabilities": ["tools"],
            }
        ).encode()


class _Tags(Resource):
    isLeaf = True

    def __init__(self, server: ScriptedOllama) -> None:
        super().__init__()
        self.scripted = server

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        models = [{"name": m, "model": m} for m in sorted(self.scripted.models)]
        return json.dumps({"models": models}).encode()


class ScriptedOllama:
    """The server; C{answers} are consumed one per C{/api/chat} request."""

    def __init__(self, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.answers: list[Answer] = []
        self.requests: list[JSON] = []
        self.models: set[str] = {MODEL}
        self._port: IListeningPort | None = None

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    @property
    def url(self) -> str:
        assert self._port is not None
        address: Any = self._port.getHost()
        return f"http://127.0.0.1:{address.port}"

    async def start(self) -> None:
        root = Resource()
        api = Resource()
        root.putChild(b"api", api)
        api.putChild(b"chat", _Chat(self))
        api.putChild(b"show", _Show(self))
        api.putChild(b"tags", _Tags(self))
        site = Site(root)
        site.noisy = False
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        self._port = await endpoint.listen(site)

    async def stop(self) -> None:
        """Stop listening (again: nothing); then requests are refused."""
        if self._port is None:
            return
        port, self._port = self._port, None
        stopped = port.stopListening()
        if stopped is not None:
            await stopped
