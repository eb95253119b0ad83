"""Parse a stream of ``(source, data)`` items in worker processes, in input order.

Used by ``dsnparse parse --jobs N``.  Items are grouped into chunks and handed to a process
pool; at most ``2 × jobs`` chunks are in flight, so memory stays flat however long the input
is (an mbox keeps being streamed).  Output order is input order.  Input that fits in one
chunk is handled in-process (starting workers would cost more than it saves), and so is
everything with ``jobs <= 1``.

:func:`process` is what the command line uses: the workers do all the per-message work —
read deferred files (:class:`~dsnparse.sources.FileRef`), parse, and render the output
records as text (:class:`~dsnparse.output.Renderer`) — and send back one :class:`Chunk`: the
chunk's text, the counters of the summary and the unreadable-input warnings.  The parent
only splits the input, feeds chunks and writes text.  Reports come back only when asked
(``keep_reports=True``, for the ``--db`` ledger, which records them in the parent together
with the raw bytes).

:func:`parse_items` is the older, Report-returning interface (library use).

Chunk sizes grow from ``FIRST_CHUNK_ITEMS`` to ``CHUNK_ITEMS`` messages (so short inputs are
still spread over the workers while long ones cost few round trips), capped at
``CHUNK_BYTES`` bytes of message data.
"""
from __future__ import annotations

import os
from collections import deque
from itertools import islice
from typing import Iterable, Iterator, NamedTuple, Optional

from .options import Options

FIRST_CHUNK_ITEMS = 16
CHUNK_ITEMS = 128
CHUNK_BYTES = 4 * 1024 * 1024


def default_jobs() -> int:
    """One job per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _chunks(items: Iterable, first: int = CHUNK_ITEMS) -> Iterator[list]:
    chunk, size, limit = [], 0, first
    for item in items:
        chunk.append(item)
        data = item[1]
        size += len(data) if isinstance(data, (bytes, bytearray)) else 0
        if len(chunk) >= limit or size >= CHUNK_BYTES:
            yield chunk
            chunk, size, limit = [], 0, min(limit * 2, CHUNK_ITEMS)
    if chunk:
        yield chunk


def _pool(options: Options, jobs: int, initializer=None, initargs=()):
    import multiprocessing as mp

    from . import codes, reasons, rules

    # load (and validate) once; forked workers inherit
    rules.load_packs(tuple(options.rules))
    codes.load_table()
    reasons.load_reasons()
    try:
        ctx = mp.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork
        ctx = mp.get_context()
    return ctx.Pool(jobs, initializer=initializer, initargs=initargs)


def _run(chunks: Iterator[list], work, jobs: int, pool_args) -> Iterator[tuple]:
    """Yield ``(chunk, work(chunk))`` in order, in this process or in a pool."""
    first = list(islice(chunks, 2))
    if jobs <= 1 or len(first) < 2:
        for chunk in first:
            yield chunk, work(chunk)
        for chunk in chunks:
            yield chunk, work(chunk)
        return
    pending: deque = deque()
    with _pool(*pool_args) as pool:
        for chunk in first:
            pending.append((chunk, pool.apply_async(work, (chunk,))))
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(work, (chunk,))))
            while len(pending) > 2 * jobs:
                chunk, res = pending.popleft()
                yield chunk, res.get()
        while pending:
            chunk, res = pending.popleft()
            yield chunk, res.get()


# --------------------------------------------------------------------------- command line

class Chunk(NamedTuple):
    """What a worker sends back for a chunk of messages.

    Attributes:
        text: the chunk's output records, rendered (no header).
        counts: summary counters: ``messages``, one per report kind, ``hard``, ``soft``,
            ``truncated`` (messages whose text was cut at a size limit).
        warnings: one message per input that could not be read.
        reports: the reports (with ``keep_reports``), else ``None``.
    """

    text: str
    counts: dict
    warnings: list
    reports: Optional[list]


_state: dict = {}


def _init(options: Options, fmt: str, keep_reports: bool, width: Optional[int] = None) -> None:
    from .output import Renderer

    _state.update(options=options, render=Renderer(fmt, width), keep=keep_reports)


def _process_chunk(chunk: list) -> Chunk:
    from .errors import SourceError
    from .sources import parse_item, resolve

    options, render, keep = _state["options"], _state["render"], _state["keep"]
    cap = options.max_message_bytes
    texts, warnings, reports = [], [], []
    counts: dict = {}
    get = counts.get
    for source, data in chunk:
        data = resolve(data, cap)
        if isinstance(data, SourceError):
            warnings.append(str(data))
        report = parse_item(source, data, options)
        if report.error and ": internal error:" in report.error:
            warnings.append(report.error)  # the parser failed on this message: exit status 1
        counts["messages"] = get("messages", 0) + 1
        counts[report.kind] = get(report.kind, 0) + 1
        if report.truncated:
            counts["truncated"] = get("truncated", 0) + 1
        for v in report.verdicts:
            if v.action == "failed" and v.bounce_type:
                counts[v.bounce_type] = get(v.bounce_type, 0) + 1
        texts.append(render(report.records(source)))
        if keep:
            reports.append(report)
    return Chunk("".join(texts), counts, warnings, reports if keep else None)


def process(items: Iterable, options: Options, jobs: int, fmt: str = "jsonl",
            keep_reports: bool = False, width: Optional[int] = None) -> Iterator[tuple]:
    """Parse and render every item; yield ``(items_of_the_chunk, Chunk)`` in input order.

    ``fmt`` is an output format of :mod:`dsnparse.output`; the text of the chunks, written
    one after the other after the writer's header, is what ``make_writer(fmt)`` writes for
    the reports' records.  ``items`` may hold :class:`~dsnparse.sources.FileRef` data, read
    by the worker.  ``width``: the terminal width a ``table`` is fitted to (``None``: full
    values; :class:`~dsnparse.output.TableWriter`).
    """
    args = (options, fmt, keep_reports, width)
    _init(*args)  # for the in-process path (jobs 1, short inputs); workers run it again
    yield from _run(_chunks(items, FIRST_CHUNK_ITEMS), _process_chunk, jobs,
                    (options, jobs, _init, args))


# --------------------------------------------------------------------------- library

def _parse_chunk(chunk_and_options):
    from .sources import parse_item

    chunk, options = chunk_and_options
    return [parse_item(source, data, options) for source, data in chunk]


def parse_items(items: Iterable, options: Options, jobs: int) -> Iterator[tuple]:
    """Yield ``(source, data, Report)`` for every item, in input order."""
    chunks = ((c, options) for c in _chunks(items, FIRST_CHUNK_ITEMS))
    for (chunk, _), reports in _run(chunks, _parse_chunk, jobs, (options, jobs)):
        for (source, data), report in zip(chunk, reports):
            yield source, data, report
