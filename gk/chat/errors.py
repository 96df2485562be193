"""
What L{gk.chat.ChatService} raises: one class per kind of refusal, each
with a message fit to show to the user as it is and a short C{code} for
API error bodies (C{{"error": {"code": ..., "message": ...}}}).
"""

from __future__ import annotations

from gk.errors import GkError


class ChatError(GkError):
    """A chat request that cannot be done; the message says why."""

    #: Machine-readable reason, stable across versions.
    code = "chat_error"


class NoSuchRoom(ChatError):
    """
    The room does not exist, or the user may not see it (a private or
    direct room they do not belong to): the two cannot be told apart.
    """

    code = "no_such_room"


class NoSuchMessage(ChatError):
    """
    The message does not exist, is in a room the user does not belong to,
    or was deleted (for changes to it).
    """

    code = "no_such_message"


class NotAllowed(ChatError):
    """The user sees the room or message but may not do this to it."""

    code = "not_allowed"


class InvalidInput(ChatError):
    """An argument is malformed, out of range or names unknown users."""

    code = "invalid_input"
