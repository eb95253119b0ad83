"""Moving a ledger between backends: ``dsnparse ledger copy SRC DST``."""
from __future__ import annotations

from typing import Callable, Optional

from ..errors import LedgerError
from .core import EVENT_COLUMNS, Ledger


def copy_ledger(src: Ledger, dst: Ledger, *, batch: int = 5000,
                progress: Optional[Callable[[int, int], None]] = None) -> tuple[int, int]:
    """Copy every event of ``src`` into ``dst`` and bring ``dst``'s decisions up to date.

    Events are read in ``src`` id order (keyset pages of ``batch``) and stored in ``dst``
    through the same path as recording (``INSERT … ON CONFLICT (event_key) DO NOTHING`` and
    the per-address decision update, one transaction per page), keeping their
    ``recorded_at`` and event keys, operator removals included.  So a copy is idempotent: run
    again (or after an interruption: each committed page stays) it adds only what ``dst``
    lacks.  The decisions in ``dst`` are recomputed from its events under ``dst``'s policy,
    which gives the decisions of ``src`` when both use one policy (event ids differ).

    Args:
        src: the ledger to read (any backend).
        dst: the ledger to write (any backend; another location than ``src``).
        batch: events per transaction (``int`` ≥ 1).
        progress: called with ``(events read, events stored)`` after each page.

    Returns:
        ``(events read, events stored)`` (``int``, ``int``; stored < read for events ``dst``
        already had).

    Raises:
        LedgerError: either ledger cannot be read or written, or both are the same.
        ValueError: ``batch`` < 1.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    if src.backend == dst.backend and str(src.path) == str(dst.path):
        raise LedgerError(f"{src.path}: source and destination are the same ledger")
    cols = ", ".join(EVENT_COLUMNS)
    last, read, stored = -1, 0, 0
    while True:
        rows = src.query(f"SELECT {cols} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                         (last, batch))
        if not rows:
            break
        last = rows[-1][0]
        read += len(rows)
        stored += dst._store([dict(zip(EVENT_COLUMNS[1:], r[1:])) for r in rows],
                             keep_recorded_at=True)
        if progress:
            progress(read, stored)
    return read, stored
