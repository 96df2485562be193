"""Log observers: Twisted's text lines, or one JSON object a line."""

from __future__ import annotations

import sys
from typing import IO

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)


def make_observer(format: str, out: IO[str] | None = None) -> ILogObserver:
    """
    An observer writing to C{out} (stdout) in C{format}: C{text} or
    C{json}; info and above (debug events are dropped before they are
    formatted: per-message detail costs nothing unless asked for).
    """
    stream = sys.stdout if out is None else out
    if format == "json":
        # An empty record separator makes plain JSON lines (the default is
        # RFC 7464's U+001E, which most log shippers do not expect).
        observer = jsonFileLogObserver(stream, recordSeparator="")
    else:
        observer = textFileLogObserver(stream)
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)])
