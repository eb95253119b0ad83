"""Writers for output records: JSON Lines, CSV and a terminal table.

A record is a ``dict`` as made by :meth:`dsnparse.model.Report.records`; its keys are
:data:`dsnparse.model.RECORD_FIELDS` (extra keys such as ``error`` are kept in JSON Lines
and dropped from CSV/table).  Every writer has ``write(records)``, ``flush(durable=False)``
and ``close()``.  ``flush(durable=True)`` also ``fsync``s a real file, so that a caller can
mark a message processed only once its record is on disk.
"""
from __future__ import annotations

import json
import os
import re
from typing import IO, Iterable, Optional, Sequence

from .model import RECORD_FIELDS

FORMATS = ("jsonl", "csv", "table")


class _Writer:
    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, records: Iterable[dict]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def flush(self, durable: bool = False) -> None:
        """Flush buffers; with ``durable=True`` also ``os.fsync`` when the stream is a file."""
        self.stream.flush()
        if durable:
            try:
                os.fsync(self.stream.fileno())
            except (AttributeError, OSError, ValueError):
                pass  # a pipe or terminal: nothing more to make durable

    def close(self) -> None:
        self.flush()


class JsonlWriter(_Writer):
    """One JSON object per line (UTF-8, keys in :data:`RECORD_FIELDS` order)."""

    def write(self, records):
        for r in records:
            self.stream.write(json.dumps(r, ensure_ascii=False) + "\n")


class CsvWriter(_Writer):
    """RFC 4180 CSV with a header row of ``fields`` (default :data:`RECORD_FIELDS`; other
    commands' tables, e.g. ``dsnparse senders``, pass their own); ``None`` is an empty cell."""

    def __init__(self, stream, header: bool = True, fields: Sequence[str] = RECORD_FIELDS):
        import csv

        super().__init__(stream)
        self._w = csv.DictWriter(stream, fieldnames=list(fields), extrasaction="ignore",
                                 lineterminator="\n")
        if header:
            self._w.writeheader()

    def write(self, records):
        for r in records:
            self._w.writerow({k: ("" if v is None else v) for k, v in r.items()})


TABLE_COLUMNS = ("source", "kind", "final_recipient", "status", "code", "bounce_type", "fault",
                 "reason", "rule")


# C0/C1 controls (ESC, BEL, CR, …) from a hostile bounce would drive the terminal the table
# is written to (retitle it, recolour it, hide lines)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class TableWriter(_Writer):
    """A fixed-width table for people: one line per record, long cells shortened.

    ``columns`` and ``widths`` (characters) default to the verdict table's."""

    widths: Sequence[int] = (28, 10, 32, 8, 4, 4, 9, 16, 24)
    columns: Sequence[str] = TABLE_COLUMNS

    def __init__(self, stream, header: bool = True, columns: Optional[Sequence[str]] = None,
                 widths: Optional[Sequence[int]] = None):
        super().__init__(stream)
        if columns is not None:
            self.columns = tuple(columns)
            self.widths = tuple(widths) if widths is not None else (16,) * len(self.columns)
        if header:
            self._line(self.columns)

    def _line(self, cells):
        out = []
        for cell, w in zip(cells, self.widths):
            s = _CONTROL.sub("?", "" if cell is None else str(cell))
            if len(s) > w:
                s = "…" + s[-(w - 1):]
            out.append(s.ljust(w))
        self.stream.write(" ".join(out).rstrip() + "\n")

    def write(self, records):
        for r in records:
            self._line([r.get(c) for c in self.columns])


def make_writer(fmt: str, stream: IO[str], header: bool = True) -> _Writer:
    """Return a writer for ``fmt`` (one of :data:`FORMATS`) on a text stream.

    ``header=False`` leaves out the CSV header row / table heading (for text rendered in
    pieces, see :class:`Renderer`).

    Raises:
        ValueError: unknown format.
    """
    if fmt == "jsonl":
        return JsonlWriter(stream)
    if fmt == "csv":
        return CsvWriter(stream, header=header)
    if fmt == "table":
        return TableWriter(stream, header=header)
    raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(FORMATS)})")


class Renderer:
    """Records to text, without header: ``render(records) -> str``.

    The text is exactly what ``make_writer(fmt, stream)`` writes for those records after its
    header, so pieces rendered elsewhere (``--jobs`` workers) can be written as they come.
    """

    def __init__(self, fmt: str):
        import io

        self.fmt = fmt
        self._buf = io.StringIO()
        self._w = make_writer(fmt, self._buf, header=False)

    def __call__(self, records: Iterable[dict]) -> str:
        if self.fmt == "jsonl":
            return "".join([json.dumps(r, ensure_ascii=False) + "\n" for r in records])
        self._w.write(records)
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return text
