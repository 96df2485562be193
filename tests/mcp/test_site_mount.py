"""
gk's own site points MCP clients the right way: a 401 from C{/mcp} names
the RFC 9728 document, and that document is served where it says.
"""

from __future__ import annotations

import pytest_twisted

from tests.assistant.conftest import PUBLIC_URL, AssistantServer, dns_server, ollama

__all__ = ["dns_server", "ollama"]


@pytest_twisted.ensureDeferred
async def test_the_metadata_a_401_points_to_is_served(gk_server: AssistantServer) -> None:
    refused = await gk_server.api("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                  None)  # fmt: skip
    document = await gk_server.api("GET", "/.well-known/oauth-protected-resource/mcp", None, None)

    assert refused.status == 401
    assert document.status == 200
    assert document.body["resource"] == PUBLIC_URL + "mcp"
    assert document.body["bearer_methods_supported"] == ["header"]
