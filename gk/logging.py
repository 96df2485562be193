"""Log observers: Twisted's text lines, or one JSON object a line."""

from __future__ import annotations

import sys
from typing import IO

from twisted.logger import ILogObserver, jsonFileLogObserver, textFileLogObserver


def make_observer(format: str, out: IO[str] | None = None) -> ILogObserver:
    """An observer writing to C{out} (stdout) in C{format}: C{text} or C{json}."""
    stream = sys.stdout if out is None else out
    if format == "json":
        # An empty record separator makes plain JSON lines (the default is
        # RFC 7464's U+001E, which most log shippers do not expect).
        return jsonFileLogObserver(stream, recordSeparator="")
    return textFileLogObserver(stream)
