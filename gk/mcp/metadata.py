"""
RFC 9728 OAuth 2.0 Protected Resource Metadata for C{/mcp}: the document
an MCP client fetches, from the URL in a 401's C{WWW-Authenticate}, to
learn how to authenticate.

gk's tokens come from C{gk token create}, not from an OAuth
authorization server, so the document names no C{authorization_servers}
(the member is optional in RFC 9728): it says what the resource is and
that the token goes in the C{Authorization} header.  It is served at
C{/.well-known/oauth-protected-resource/mcp} (the URL the 401 names) and
C{/.well-known/oauth-protected-resource}, with CORS open, as it is
public: one leaf resource mounted at the latter serves both.
"""

from __future__ import annotations

import json

from twisted.web.resource import Resource
from twisted.web.server import Request

from gk.mcp.jsonrpc import JSON

#: The path under the site root where RFC 9728 metadata lives.
WELL_KNOWN = ".well-known/oauth-protected-resource"


def _base(public_url: str) -> str:
    return public_url if public_url.endswith("/") else public_url + "/"


def resource_url(public_url: str) -> str:
    """The protected resource's identifier: the MCP endpoint's URL."""
    return _base(public_url) + "mcp"


def metadata_url(public_url: str) -> str:
    """Where the metadata of the MCP endpoint is, as the 401 challenge names it."""
    return _base(public_url) + WELL_KNOWN + "/mcp"


def metadata_document(public_url: str) -> JSON:
    return {
        "resource": resource_url(public_url),
        "bearer_methods_supported": ["header"],
        "resource_name": "gk",
    }


class ProtectedResourceMetadata(Resource):
    """The metadata document, for GET and HEAD, at its path and its C{/mcp} child."""

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD", b"OPTIONS")

    def __init__(self, public_url: str) -> None:
        super().__init__()
        self.body = json.dumps(metadata_document(public_url), separators=(",", ":")).encode()

    def _common(self, request: Request) -> None:
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, HEAD, OPTIONS")

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""], [b"mcp"]):
            request.setResponseCode(404)
            return b""
        self._common(request)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"public, max-age=3600")
        return self.body

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)

    def render_OPTIONS(self, request: Request) -> bytes:
        self._common(request)
        request.setResponseCode(204)
        return b""
