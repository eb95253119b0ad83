"""Running the standard library's recursive parsers on hostile input.

The stdlib feedparser recurses once per nested ``multipart`` or ``message/rfc822`` part, and
``email.utils.getaddresses`` once per nested comment ``(`` or group; a hostile message drives
either to the interpreter's recursion limit, where :class:`RecursionError` is caught by the
caller.  What the caller cannot catch is a finalizer (a ``__del__``, a suspended generator's
``finally``) that the cyclic garbage collector happens to run at that depth: it fails with a
``RecursionError`` of its own, which Python reports to ``sys.unraisablehook`` — noise in a log
and, under pytest, a failed test.  While such a parse runs the collector is paused, so
finalizers run later, at a normal depth.

The pause is process-wide (``gc.disable``); nested and concurrent pauses from several threads
are counted, and the collector is enabled again when the last one ends — only if it was
enabled when the first one began.
"""
from __future__ import annotations

import contextlib
import gc
import threading
from typing import Iterable, Iterator

_lock = threading.Lock()
_holders = 0
_was_enabled = False
# More nesting characters than this in the values given to getaddresses: it may recurse deeply
_NESTING_WORTH_A_PAUSE = 100


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Context manager: the cyclic garbage collector does not run inside it (see the module
    docstring).  Never raises on its own; re-entrant and thread-safe."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()


def getaddresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """``email.utils.getaddresses(values)`` (RFC 5322 §3.4 address lists, the stdlib's
    reading), or ``[]`` when the values nest comments or groups deeper than the interpreter
    can recurse.  Never raises ``RecursionError``."""
    from email.utils import getaddresses as _getaddresses

    values = list(values)
    try:
        if sum(v.count("(") + v.count(":") for v in values) > _NESTING_WORTH_A_PAUSE:
            with collector_paused():
                return _getaddresses(values)
        return _getaddresses(values)
    except RecursionError:  # hostile: nested "(" or groups beyond the recursion limit
        return []
