"""Parse a stream of ``(source, data)`` items in worker processes, in input order.

Used by ``dsnparse parse --jobs N``.  Items are grouped into chunks (at most ``CHUNK_ITEMS``
messages or ``CHUNK_BYTES`` bytes) and handed to a process pool; at most ``2 × jobs``
chunks are in flight, so memory stays flat however long the input is (an mbox keeps being
streamed).  Output order is input order.  Input that fits in one chunk is parsed in-process
(starting workers would cost more than it saves), and so is everything with ``jobs <= 1``.
"""
from __future__ import annotations

import os
from collections import deque
from itertools import islice
from typing import Iterable, Iterator

from .options import Options

CHUNK_ITEMS = 32
CHUNK_BYTES = 4 * 1024 * 1024


def default_jobs() -> int:
    """One job per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _chunks(items: Iterable) -> Iterator[list]:
    chunk, size = [], 0
    for item in items:
        chunk.append(item)
        data = item[1]
        size += len(data) if isinstance(data, (bytes, bytearray)) else 0
        if len(chunk) >= CHUNK_ITEMS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _parse_chunk(args):
    from .sources import parse_item

    chunk, options = args
    return [(source, parse_item(source, data, options)) for source, data in chunk]


def parse_items(items: Iterable, options: Options, jobs: int) -> Iterator[tuple]:
    """Yield ``(source, data, Report)`` for every item, in input order."""
    from .sources import parse_item

    chunks = _chunks(items)
    first = list(islice(chunks, 2))
    if jobs <= 1 or len(first) < 2:
        for chunk in first:
            for source, data in chunk:
                yield source, data, parse_item(source, data, options)
        for chunk in chunks:
            for source, data in chunk:
                yield source, data, parse_item(source, data, options)
        return

    import multiprocessing as mp

    from . import rules

    rules.load_packs(tuple(options.rules))  # load (and validate) once; forked workers inherit
    try:
        ctx = mp.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork
        ctx = mp.get_context()
    pending: deque = deque()
    with ctx.Pool(jobs) as pool:
        def submit(chunk):
            datas = [d for _, d in chunk]  # kept for the caller (e.g. the ledger stores raw bytes)
            pending.append((datas, pool.apply_async(_parse_chunk, ((chunk, options),))))

        for chunk in first:
            submit(chunk)
        for chunk in chunks:
            submit(chunk)
            while len(pending) > 2 * jobs:
                yield from _drain(pending.popleft())
        while pending:
            yield from _drain(pending.popleft())


def _drain(entry):
    datas, res = entry
    for data, (source, report) in zip(datas, res.get()):
        yield source, data, report
