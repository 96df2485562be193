"""
Finding the members a message mentions: C{@alice@example.test} names a
member by address; C{@alice} names the member whose local part is
C{alice} when exactly one member of the room has it.  Anything else
(non-members, ambiguous local parts, addresses inside words such as
C{bob@example.test}) mentions no one.

Pure functions: the caller passes the room's members.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# "@" not preceded by what could be part of an address (so the domain of
# "bob@example.test" is no mention), then a local part and maybe a domain.
_MENTION = re.compile(r"(?<![\w.@+%-])@([A-Za-z0-9._%+-]+(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?)")


def mentioned(text: str, members: Mapping[str, int]) -> list[int]:
    """
    The user ids mentioned in C{text}, each once, in order of first mention.

    @param members: the room's members, lower-case address to user id.
    """
    by_local: dict[str, list[int]] = {}
    for email, user_id in members.items():
        by_local.setdefault(email.rpartition("@")[0], []).append(user_id)
    found: dict[int, None] = {}
    for match in _MENTION.finditer(text):
        # A sentence may end right after the name: "thanks @alice."
        name = match[1].rstrip(".").lower()
        candidates = [members[name]] if name in members else by_local.get(name, [])
        if len(candidates) == 1:
            found[candidates[0]] = None
    return list(found)
