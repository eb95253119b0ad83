"""The time budget of one message (``Options.message_timeout``).

:func:`dsnparse.engine.parse` sets a deadline (``time.monotonic()`` seconds) for the
message it parses; the steps check it between stages (:func:`check`), and every timed rule
pattern search runs with the smaller of its own timeout and the time left (:func:`timeout`),
so a message that would take longer stops with :class:`~dsnparse.errors.MessageTimeout`
soon after its deadline.  The deadline is kept per thread; nothing runs in the background
(no thread, no signal), and a check costs one read of the monotonic clock.

Searches that :mod:`dsnparse.backtrack` bounds run without a timer (their cost is bounded by
a million steps); the stdlib parser's own work on one message (:func:`dsnparse.load.load`)
cannot be interrupted and is checked once it returns.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

from .errors import MessageTimeout

_state = threading.local()  # .deadline: (monotonic deadline, budget seconds) or None
_now = time.monotonic


def start(seconds: float) -> Optional[tuple]:
    """Start a budget of ``seconds`` (wall clock) for this thread; ``seconds <= 0``: none.

    Returns the previous state, to give to :func:`restore` when the message is done."""
    prev = getattr(_state, "deadline", None)
    _state.deadline = (_now() + seconds, seconds) if seconds > 0 else None
    return prev


def restore(prev: Optional[tuple]) -> None:
    """Put back the state :func:`start` returned."""
    _state.deadline = prev


def check(stage: str, arg=None) -> None:
    """Raise :class:`~dsnparse.errors.MessageTimeout` naming ``stage`` (``stage % arg`` when
    ``arg`` is given: formatted only then) when this thread's deadline has passed; nothing
    when there is none."""
    d = getattr(_state, "deadline", None)
    if d is not None and _now() > d[0]:
        raise MessageTimeout(d[1], stage if arg is None else stage % (arg,))


def timeout(limit: float) -> float:
    """The timeout for one timed search: ``limit`` or the time left, whichever is smaller.

    Raises:
        MessageTimeout: the deadline has passed.
    """
    d = getattr(_state, "deadline", None)
    if d is None:
        return limit
    left = d[0] - _now()
    if left <= 0:
        raise MessageTimeout(d[1], "a rule pattern search")
    return left if left < limit else limit
