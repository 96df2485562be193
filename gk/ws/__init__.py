"""
C{/ws}: the WebSocket every browser session keeps open, carrying chat,
live events (mail delivered, calendar and contacts changed) and, later,
the assistant's streaming.  L{gk.ws.protocol} is the message format,
L{gk.ws.connection} one socket, L{gk.ws.hub} who is connected and
presence, L{gk.ws.commands} what a client may ask, L{gk.ws.resource}
the resource on the HTTP listener; C{docs/websocket.md} describes it
for client authors.
"""
