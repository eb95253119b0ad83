"""Writers for output records: JSON Lines, CSV and a terminal table.

A record is a ``dict`` as made by :meth:`dsnparse.model.Report.records`; its keys are
:data:`dsnparse.model.RECORD_FIELDS` (extra keys such as ``error`` are kept in JSON Lines
and dropped from CSV/table).  Every writer has ``write(records)``, ``flush(durable=False)``
and ``close()``.  ``flush(durable=True)`` also ``fsync``s a real file, so that a caller can
mark a message processed only once its record is on disk.

CSV safety (OWASP "CSV injection"): every CSV cell dsnparse writes goes through
:func:`csv_cell`, so no cell starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, which a spreadsheet would run as a formula; such a cell gets a leading ``'``.  Every
CSV writer of the project uses :class:`SafeCsvWriter` (or :class:`CsvWriter` built on it).
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
from typing import IO, Iterable, Optional, Sequence

from .model import RECORD_FIELDS

FORMATS = ("jsonl", "csv", "table")

#: Output format implied by an output file's extension (``-o FILE`` without ``-f``); any
#: other extension keeps the default (JSON Lines).  ``.txt`` is the terminal table.
EXTENSION_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
                     ".txt": "table"}


class _FullWrites(io.RawIOBase):
    """A file descriptor written whole or not at all: ``write`` loops until every byte is
    out and raises ``OSError`` (ENOSPC, EPIPE …) otherwise.  (CPython's buffered standard
    output can stop at a short write on a full disk, keep the rest, and report nothing.)"""

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd
        self._discard = False   # set by abandon(): the failure was reported

    def abandon(self) -> None:
        """Drop whatever is still buffered for this descriptor (its failure was reported),
        so that a flush at close or at exit does not raise again."""
        self._discard = True

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        total = len(view)
        if self._discard:
            return total
        while view:
            n = os.write(self._fd, view)
            if n <= 0:
                raise OSError(errno.EIO, f"short write ({total - len(view)} of {total} bytes)")
            view = view[n:]
        return total


def abandon_output(stream) -> None:
    """After a write to :func:`stdout_for_records`'s stream failed and was reported: drop
    what is still buffered (no second error, no "Exception ignored" at exit)."""
    raw = getattr(getattr(stream, "buffer", None), "raw", None)
    if isinstance(raw, _FullWrites):
        raw.abandon()


def stdout_for_records() -> IO[str]:
    """Standard output for records: a text stream over the same file descriptor whose every
    write is complete or raises ``OSError`` (see :class:`_FullWrites`), so a full disk is
    reported, not a cut file with exit status 0.  ``sys.stdout`` itself when it has no file
    descriptor (a test's capture); a stream whose writes raise ``OSError`` (EBADF) when
    standard output is closed (``>&-``).  Flush it; do not close it."""
    s = sys.stdout
    if s is None:
        return io.TextIOWrapper(io.BufferedWriter(_FullWrites(-1)), encoding="utf-8")
    try:
        fd = s.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return s
    s.flush()
    return io.TextIOWrapper(io.BufferedWriter(_FullWrites(fd)),
                            encoding=getattr(s, "encoding", None) or "utf-8",
                            errors=getattr(s, "errors", None) or "strict")


def format_for_path(path: "str | os.PathLike[str]") -> "str | None":
    """Return the output format named by ``path``'s extension (:data:`EXTENSION_FORMATS`,
    case-insensitive), or ``None`` when the extension names none (``str`` or ``None``)."""
    return EXTENSION_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower())


#: First characters that make a spreadsheet read a cell as a formula or a command (OWASP,
#: "CSV Injection"): ``=``, ``+``, ``-``, ``@``, tab and carriage return.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """Return ``value`` as a CSV cell that no spreadsheet will run as a formula (``str``).

    ``None`` is the empty cell; anything else is ``str(value)``.  A cell whose first
    character is one of :data:`CSV_FORMULA_STARTS` gets a leading ``'`` (the OWASP advice:
    spreadsheets show the rest as text), so ``-`` becomes ``'-``, ``-1`` becomes ``'-1``
    and ``=HYPERLINK(…)`` becomes ``'=HYPERLINK(…)``.  Applied to every cell, whatever its
    column: a status, a number or an address is no exception.  A NUL character (from a
    hostile bounce; Python 3.10's ``csv`` cannot write it and spreadsheets cut the cell
    there) is written as U+FFFD.  Never raises.
    """
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    if s[:1] in CSV_FORMULA_STARTS:
        return "'" + s
    return s


class SafeCsvWriter:
    """An RFC 4180 ``csv.writer`` (``\\n`` line ends) whose every cell goes through
    :func:`csv_cell`.  The one CSV writer of dsnparse: use it for any new CSV output.

    Args:
        stream: a text stream opened with ``newline=""``.
    """

    #: Whether this Python's ``csv`` quotes a cell holding a CR when the line terminator is
    #: ``\\n`` (3.11 and later do; 3.10 wrote it bare, which splits the row for a reader).
    _quotes_cr: "bool | None" = None

    def __init__(self, stream: IO[str]):
        import csv

        self._w = csv.writer(stream, lineterminator="\n")
        if SafeCsvWriter._quotes_cr is None:
            import io

            probe = io.StringIO()
            csv.writer(probe, lineterminator="\n").writerow(["a\rb"])
            SafeCsvWriter._quotes_cr = probe.getvalue().startswith('"')
        self._all = (None if SafeCsvWriter._quotes_cr else
                     csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL))

    def writerow(self, cells: Iterable[object]) -> None:
        """Write one row; each cell is passed through :func:`csv_cell`.  A row with a CR in
        a cell is written with every cell quoted where the ``csv`` module would not quote
        it (Python 3.10), so that it stays one row."""
        row = [csv_cell(c) for c in cells]
        if self._all is not None and any("\r" in c for c in row):
            self._all.writerow(row)
        else:
            self._w.writerow(row)


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
    commands' tables, e.g. ``dsnparse senders``, pass their own); ``None`` is an empty cell;
    every cell is made spreadsheet-safe by :func:`csv_cell`."""

    def __init__(self, stream, header: bool = True, fields: Sequence[str] = RECORD_FIELDS):
        super().__init__(stream)
        self._w = SafeCsvWriter(stream)
        self._fields = tuple(fields)
        if header:
            self._w.writerow(self._fields)

    def write(self, records):
        row = self._w.writerow
        fields = self._fields
        for r in records:
            get = r.get
            row([get(k) for k in fields])


TABLE_COLUMNS = ("source", "kind", "final_recipient", "status", "code", "bounce_type", "fault",
                 "reason", "rule")


# --------------------------------------------------------------------------- terminal width

def char_width(ch: str) -> int:
    """Columns one character takes on a terminal (``int``): 0 for a combining mark, a
    zero-width format character (ZWJ, ZWSP, variation selector: Unicode general categories
    Mn, Me, Cf) or a control character; 2 for an East Asian Wide or Fullwidth character
    (UAX #11, ``unicodedata.east_asian_width`` "W"/"F": CJK, kana, Hangul, fullwidth forms,
    most emoji); else 1.  The standard library's Unicode data, so no extra dependency."""
    import unicodedata

    o = ord(ch)
    if 0x20 <= o < 0x7F:
        return 1
    if o < 0x20 or 0x7F <= o < 0xA0 or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (``int``; sum of :func:`char_width`)."""
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def _take(text: str, width: int, from_end: bool = False) -> str:
    """The longest start (or end) of ``text`` that fits in ``width`` columns."""
    out, used = [], 0
    for ch in (reversed(text) if from_end else text):
        w = char_width(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(reversed(out) if from_end else out)


def fit(text: str, width: int) -> str:
    """``text`` cut in the middle with ``…`` to at most ``width`` columns (``str``).

    The start and the end are kept (an address keeps its local part's start and its
    domain; a source keeps its folder and its message number); text that fits is returned
    unchanged.  Widths count terminal columns (:func:`display_width`)."""
    if display_width(text) <= width:
        return text
    if width <= 1:
        return "…"[:max(width, 0)]
    room = width - 1
    head = _take(text, (room + 1) // 2)
    tail = _take(text, room - display_width(head), from_end=True)
    return head + "…" + tail


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (wide characters count 2)."""
    return text + " " * max(0, width - display_width(text))


def terminal_width(stream: IO[str]) -> Optional[int]:
    """Columns of the terminal ``stream`` writes to (``int``), or ``None`` when it is no
    terminal (a pipe, a file: tables then keep full values).

    The width is ``shutil.get_terminal_size`` (``$COLUMNS`` when set, else the terminal's
    own size, else 80)."""
    import shutil

    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError, OSError):
        return None
    return max(shutil.get_terminal_size().columns, 20)


def fit_widths(widths: Sequence[int], total: int, minimum: Sequence[int] = (),
               order: Optional[Sequence[int]] = None, grow: Sequence[int] = ()) -> list[int]:
    """Column widths that fit ``total`` columns with one space between columns.

    Columns give up width down to their ``minimum`` (default 4 each): in ``order`` (column
    indexes, the least needed first; each one down to its minimum before the next), else the
    widest column first, one at a time.  When even the minimums do not fit, the widest
    columns go on giving up width down to 3 columns each; below that a line is left wider
    than ``total`` (the terminal wraps it).  When ``total`` is wider than the columns need,
    the columns in ``grow`` (indexes) share the spare width, each up to three times its own.
    """
    w = list(widths)
    mins = list(minimum) + [4] * (len(w) - len(minimum))
    mins = [min(m, x) for m, x in zip(mins, w)]
    room = total - (len(w) - 1)
    spare = room - sum(w)
    growing = [k for k in grow if 0 <= k < len(w)]
    while spare > 0 and growing:
        share = max(1, spare // len(growing))
        for k in list(growing):
            add = min(share, 3 * widths[k] - w[k], spare)
            w[k] += add
            spare -= add
            if w[k] >= 3 * widths[k]:
                growing.remove(k)
            if spare <= 0:
                break
    if order is not None:
        for k in order:
            excess = sum(w) - room
            if excess <= 0:
                break
            w[k] -= min(excess, w[k] - mins[k])
    for floor in (mins, [min(3, x) for x in w]):
        while sum(w) > room:
            free = [k for k in range(len(w)) if w[k] > floor[k]]
            if not free:
                break
            w[max(free, key=lambda k: (w[k], -k))] -= 1
    return w


# C0/C1 controls (ESC, BEL, CR, …) from a hostile bounce would drive the terminal the table
# is written to (retitle it, recolour it, hide lines)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

_AUTO = object()


def printable(text: str) -> str:
    """``text`` with every C0/C1 control character shown as ``?`` (for a terminal)."""
    return _CONTROL.sub("?", text)


class TableWriter(_Writer):
    """A table for people: one line per record, columns aligned.

    ``columns`` and ``widths`` (characters) default to the verdict table's.  ``width`` is
    the terminal's width in columns: by default that of ``stream`` when it is a terminal
    (:func:`terminal_width`), when the columns are narrowed to fit it (:func:`fit_widths`
    with ``minimum`` widths and the ``shrink`` order of column indexes; default: the widest
    first) and a longer cell is cut in the middle with ``…`` (:func:`fit`);
    ``None`` (a pipe or a file) keeps every value whole — a longer cell pushes the rest of
    its line right.  Wide characters (CJK, fullwidth forms, emoji) count two columns and
    combining marks none, so columns stay aligned.  Control characters are shown as ``?``.
    """

    widths: Sequence[int] = (28, 10, 32, 8, 4, 4, 9, 16, 24)
    columns: Sequence[str] = TABLE_COLUMNS
    #: On a narrow terminal the verdict table's columns give up width in this order (rule,
    #: source, reason, fault, status, kind, … and the recipient last), each down to its minimum
    #: (which keeps "bounce", "status", "recipient" whole: 80 columns fit them all).
    shrink: Optional[Sequence[int]] = (8, 0, 7, 6, 3, 1, 5, 4, 2)
    minimum: Sequence[int] = (10, 6, 16, 6, 3, 4, 9, 10, 6)
    #: On a terminal wider than the columns need, these share the spare width (recipient,
    #: source, rule: the values that run long).
    grow: Sequence[int] = (2, 0, 8)

    def __init__(self, stream, header: bool = True, columns: Optional[Sequence[str]] = None,
                 widths: Optional[Sequence[int]] = None, width: object = _AUTO,
                 minimum: Optional[Sequence[int]] = None,
                 shrink: Optional[Sequence[int]] = None, grow: Sequence[int] = ()):
        super().__init__(stream)
        if columns is not None:
            self.columns = tuple(columns)
            self.widths = tuple(widths) if widths is not None else (16,) * len(self.columns)
            self.minimum = tuple(minimum) if minimum is not None else tuple(
                min(len(c), 8) for c in self.columns)
            self.shrink = shrink
            self.grow = tuple(grow)
        self.width = terminal_width(stream) if width is _AUTO else width
        if self.width is not None:
            self.widths = tuple(fit_widths(self.widths, self.width, self.minimum, self.shrink,
                                           self.grow))
        if header:
            self._line(self.columns)

    def write_row(self, cells: Sequence[object]) -> None:
        """Write one line of ``cells`` (in column order; ``None`` is an empty cell)."""
        self._line(cells)

    def _line(self, cells):
        out = []
        for cell, w in zip(cells, self.widths):
            s = _CONTROL.sub("?", "" if cell is None else str(cell))
            if self.width is not None:
                s = fit(s, w)
            out.append(pad(s, w))
        self.stream.write(" ".join(out).rstrip() + "\n")

    def write(self, records):
        for r in records:
            self._line([r.get(c) for c in self.columns])


def make_writer(fmt: str, stream: IO[str], header: bool = True,
                width: object = _AUTO) -> _Writer:
    """Return a writer for ``fmt`` (one of :data:`FORMATS`) on a text stream.

    ``header=False`` leaves out the CSV header row / table heading (for text rendered in
    pieces, see :class:`Renderer`).  ``width``: the table's terminal width (see
    :class:`TableWriter`; default: the stream's, when it is a terminal).

    Raises:
        ValueError: unknown format.
    """
    if fmt == "jsonl":
        return JsonlWriter(stream)
    if fmt == "csv":
        return CsvWriter(stream, header=header)
    if fmt == "table":
        return TableWriter(stream, header=header, width=width)
    raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(FORMATS)})")


class Renderer:
    """Records to text, without header: ``render(records) -> str``.

    The text is exactly what ``make_writer(fmt, stream, width=width)`` writes for those
    records after its header, so pieces rendered elsewhere (``--jobs`` workers) can be written
    as they come.  ``width``: the terminal width the table is fitted to (``None``: full
    values, as on a pipe).
    """

    def __init__(self, fmt: str, width: Optional[int] = None):
        import io

        self.fmt = fmt
        self._buf = io.StringIO()
        self._w = make_writer(fmt, self._buf, header=False, width=width)

    def __call__(self, records: Iterable[dict]) -> str:
        if self.fmt == "jsonl":
            return "".join([json.dumps(r, ensure_ascii=False) + "\n" for r in records])
        self._w.write(records)
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return text
