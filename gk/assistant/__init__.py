"""
The assistant: gk's tools in MCP's shape (L{gk.assistant.tools}), the
families of tools over each service, and the conversation loop that lets
a local model call them for the user.
"""
