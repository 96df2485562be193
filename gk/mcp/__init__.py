"""
C{/mcp}: gk's tools served over MCP's Streamable HTTP transport, for both
protocol revisions in use (2025-11-25 with sessions, 2026-07-28 stateless).

 - L{gk.mcp.jsonrpc}: reading and writing JSON-RPC 2.0 messages (pure).
 - L{gk.mcp.protocol}: the two eras, version negotiation, the 2026-07-28
   envelope and header checks, C{Accept} and capabilities (pure).
 - L{gk.mcp.methods}: what each MCP method answers, apart from HTTP.
 - L{gk.mcp.consent}: asking the user to confirm, and the stateless era's
   pending confirmations.
 - L{gk.mcp.sessions}: the handshake era's sessions.
 - L{gk.mcp.exchange}: one POST's answer, JSON or event stream.
 - L{gk.mcp.resource}: the HTTP resource (Origin, bearer token, routing).
 - L{gk.mcp.metadata}: the RFC 9728 protected-resource metadata.
"""
