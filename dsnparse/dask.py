"""Archives on Dask: bounce files, directories, mbox files and Maildirs as a Dask bag.

``read_bounces(paths)`` turns its inputs (local paths or any fsspec URL: ``s3://…``,
``gs://…``, ``file://…``) into a :class:`dask.bag.Bag` of verdict records: the very dicts
``dsnparse parse --format jsonl`` writes for the same inputs (same ``source`` names, same
``error`` records for unreadable files, in the same order when computed), and
:func:`to_dataframe` into a Dask DataFrame with the declared columns and dtypes of
:func:`meta`.  ``dsnparse parse --dask ADDRESS`` (:mod:`dsnparse.dask_cli`) runs it on a
cluster.

Partitions follow the input:

- an mbox file larger than ``blocksize`` bytes is split into byte ranges of ``blocksize``
  (a 2 GB mbox gives 128 partitions of 16 MiB); a partition parses the messages whose ``From ``
  separator line (RFC 4155; the first line of the file, or a ``From `` line after a blank
  line, as :mod:`dsnparse.sources` splits) starts in its range, reading past the range's end
  to the end of its last message.  The message numbers (``MBOX#N``) come from a first pass
  in which every range counts its separators; the ranges of the second pass wait for those
  counts (a dependency in the Dask graph: no work queue of ours);
- other files (one message each, or a small mbox) are grouped, up to ``files_per_partition``
  files or ``blocksize`` bytes per partition, in the order ``dsnparse parse`` reads them;
- a Maildir's messages likewise (``new`` then ``cur``).

Listing (walking directories, reading the first five bytes of large files to know whether
they are mbox files) happens where the graph is built; reading and parsing on the workers.
Each worker process loads the rule packs, the code table and the reasons once (the
module-level caches of :mod:`dsnparse.rules`, :mod:`dsnparse.codes` and
:mod:`dsnparse.reasons`, warmed by :func:`_warm` on the first partition it runs).

This module is named ``dask`` inside the package; it imports the real Dask with absolute
imports (``from __future__ import annotations`` and no implicit relative imports), so
``import dask`` here is the library.  It is imported only by ``read_bounces`` users and by
``dsnparse parse --dask``: plain ``dsnparse parse`` never imports Dask.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional, Union

from dsnparse.errors import SourceError
from dsnparse.model import RECORD_FIELDS
from dsnparse.options import DEFAULT, Options

DEFAULT_BLOCKSIZE = 16 * 1024 * 1024
"""Bytes per partition (``int``): the byte-range size an mbox is split into, and the most
message bytes grouped into one partition of small files.  16 MiB is about 4,000 bounces,
a few seconds of parsing: enough to make the scheduling cost nothing, small enough that
the last partitions do not leave workers idle (a 2 GB mbox gives 128)."""

FILES_PER_PARTITION = 256
"""Most files (one-message files, small mbox files, Maildir messages) in one partition."""

_SEPARATOR = b"\nFrom "
_LOADS = 0  # how many times this process loaded the rules (tests check: once per worker)
_WARM: set = set()


class Part(NamedTuple):
    """What one partition gives back.

    Attributes:
        records: the output records (``list`` of ``dict``, keys :data:`RECORD_FIELDS`), or,
            when the partition was asked to render them, their text (``str``, no header).
        counts: summary counters as ``dsnparse parse`` keeps them (``messages``, one per
            report kind, ``hard``, ``soft``, ``truncated``).
        warnings: one line per input that could not be read or that the parser failed on
            (the inputs that make ``dsnparse parse`` exit 1).
    """

    records: Union[list, str]
    counts: dict
    warnings: list


# --------------------------------------------------------------------------- listing

def _is_url(path: str) -> bool:
    return "://" in path


def _fs(path: str, storage_options: Optional[dict]):
    import fsspec.core

    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def _skip(fn: str) -> bool:
    from dsnparse.sources import _DOC_NAMES, _NOT_MAIL

    return fn.startswith(".") or fn.endswith(_NOT_MAIL) or fn.upper().startswith(_DOC_NAMES)


def _pieces(path: str, options: Options, blocksize: int,
            storage_options: Optional[dict]) -> Iterator[tuple]:
    """The inputs under ``path``, in ``dsnparse parse`` order, as picklable pieces:

    ``("file", fs, path, name, size)``   a file read on a worker (one message, or an mbox
                                          parsed whole); ``fs`` ``None`` for a local file
    ``("maildir", fs, path, source, name)``  one Maildir message (never an mbox)
    ``("mbox", fs, path, name, size)``    an mbox larger than ``blocksize``: split
    ``("error", source, text)``           what could not be listed (a record of kind error)
    ``("data", source, bytes)``           a message read here (``MBOX#N``, ``MAILDIR#KEY``)

    Raises:
        SourceError: as :func:`dsnparse.sources.iter_messages` for ``path`` itself.
    """
    if path == "-":
        raise SourceError("-: standard input cannot be read by Dask workers: save it to a "
                          "file first")
    if _is_url(path):
        yield from _remote_pieces(path, blocksize, storage_options)
        return
    from dsnparse.sources import _is_dir, _one_message

    p = Path(path)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except (OSError, ValueError) as e:
        raise SourceError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    if st is None:
        if "#" in path and not os.path.lexists(p):
            source, data = _one_message(path, options.max_message_bytes)
            yield ("data", source, data)
            return
        raise SourceError(f"{path}: no such file or directory")
    if stat.S_ISDIR(st.st_mode):
        if _is_dir(p / "cur") and _is_dir(p / "new"):
            yield from _local_maildir(p)
        else:
            yield from _local_directory(p, blocksize)
    elif stat.S_ISREG(st.st_mode):
        yield _local_file(p, path, st, blocksize)
    else:
        raise SourceError(f"{path}: not a regular file or directory")


def _local_file(p: Path, name: str, st, blocksize: int) -> tuple:
    if stat.S_ISREG(st.st_mode) and st.st_size > blocksize:
        try:
            with open(p, "rb") as f:
                if f.read(5) == b"From ":
                    return ("mbox", None, str(p), name, st.st_size)
        except OSError:
            pass  # the worker reports it, as dsnparse parse does
    return ("file", None, str(p), name, st.st_size)


def _local_directory(p: Path, blocksize: int) -> Iterator[tuple]:
    """As :func:`dsnparse.sources._directory` walks (same order, same skips, same errors)."""
    from dsnparse.sources import _walk_error

    errors: list = []
    for root, dirs, files in os.walk(p, onerror=errors.append):
        while errors:
            for source, err in _walk_error(errors.pop(0)):
                yield ("error", source, str(err))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fn in sorted(files):
            if _skip(fn):
                continue
            fp = Path(root) / fn
            try:
                st = fp.stat()
            except OSError:
                yield ("file", None, str(fp), str(fp), 0)  # the worker reports why
                continue
            yield _local_file(fp, str(fp), st, blocksize)
    for e in errors:
        for source, err in _walk_error(e):
            yield ("error", source, str(err))


def _local_maildir(p: Path) -> Iterator[tuple]:
    """As :func:`dsnparse.sources._maildir` reads (``new`` then ``cur``, name order)."""
    for sub in ("new", "cur"):
        d = p / sub
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            yield ("error", f"{d}", f"{d}: {e.strerror or e}")
            continue
        for fn in names:
            if fn.startswith("."):
                continue
            key = fn.split(":2,", 1)[0].split("!2,", 1)[0]
            yield ("maildir", None, str(d / fn), f"{p}#{key}", str(d / fn))


def _remote_pieces(url: str, blocksize: int, storage_options: Optional[dict]) -> Iterator[tuple]:
    """The pieces of an fsspec URL; sources are full URLs (``s3://bucket/key#N``)."""
    fs, root = _fs(url, storage_options)
    name = fs.unstrip_protocol(root)
    try:
        info = fs.info(root)
    except FileNotFoundError:
        raise SourceError(f"{url}: no such file or directory") from None
    except OSError as e:
        raise SourceError(f"{url}: {e.strerror or e}") from None
    if info.get("type") == "directory":
        sep = "/"
        if fs.isdir(root.rstrip(sep) + sep + "cur") and fs.isdir(root.rstrip(sep) + sep + "new"):
            for sub in ("new", "cur"):
                d = root.rstrip(sep) + sep + sub
                try:
                    entries = sorted(fs.ls(d, detail=True), key=lambda e: e["name"])
                except OSError as e:
                    yield ("error", fs.unstrip_protocol(d), f"{fs.unstrip_protocol(d)}: {e}")
                    continue
                for e in entries:
                    fn = e["name"].rstrip(sep).rsplit(sep, 1)[-1]
                    if fn.startswith("."):
                        continue
                    key = fn.split(":2,", 1)[0].split("!2,", 1)[0]
                    full = fs.unstrip_protocol(e["name"])
                    if e.get("type") != "file":  # (opening a FIFO would block)
                        yield ("error", f"{name.rstrip(sep)}#{key}", f"{full}: not a regular file")
                        continue
                    yield ("maildir", fs, e["name"], f"{name.rstrip(sep)}#{key}", full)
        else:
            yield from _remote_walk(fs, root.rstrip(sep), blocksize)
    elif info.get("type") == "file":
        yield _remote_file(fs, root, name, info.get("size") or 0, blocksize)
    else:
        raise SourceError(f"{url}: not a regular file or directory")


def _remote_file(fs, path: str, name: str, size: int, blocksize: int) -> tuple:
    if size > blocksize:
        try:
            with fs.open(path, "rb") as f:
                if f.read(5) == b"From ":
                    return ("mbox", fs, path, name, size)
        except OSError:
            pass
    return ("file", fs, path, name, size)


def _remote_walk(fs, d: str, blocksize: int) -> Iterator[tuple]:
    """Files of ``d`` in name order, then its subdirectories (the order of ``os.walk``)."""
    try:
        entries = sorted(fs.ls(d, detail=True), key=lambda e: e["name"])
    except OSError as e:
        full = fs.unstrip_protocol(d)
        yield ("error", full, f"{full}: cannot read directory: {e}")
        return
    subdirs = []
    for e in entries:
        fn = e["name"].rstrip("/").rsplit("/", 1)[-1]
        if e.get("type") == "directory":
            if not fn.startswith(".") and e["name"].rstrip("/") != d:
                subdirs.append(e["name"].rstrip("/"))
        elif _skip(fn):
            continue
        elif e.get("type") != "file":  # a FIFO, socket or device: opening it could block
            full = fs.unstrip_protocol(e["name"])
            yield ("error", full, f"{full}: not a regular file")
        else:
            yield _remote_file(fs, e["name"], fs.unstrip_protocol(e["name"]),
                               e.get("size") or 0, blocksize)
    for sd in subdirs:
        yield from _remote_walk(fs, sd, blocksize)


# --------------------------------------------------------------------------- mbox ranges

def _open(fs, path: str):
    return open(path, "rb") if fs is None else fs.open(path, "rb")


def scan_range(fs, path: str, start: int, end: int) -> tuple:
    """First pass over bytes ``[start, end)`` of an mbox: ``(first, count)``, the offset of
    the first message separator that starts in the range (``-1``: none) and how many start
    there.  A separator is the file's first line, or a ``From `` line after a blank line
    (``\\n\\nFrom `` or ``\\n\\r\\nFrom ``): the rule of :func:`dsnparse.sources._mbox`.

    Raises:
        OSError: the file cannot be read (the second pass turns it into an error record).
    """
    lo = max(0, start - 3)
    with _open(fs, path) as f:
        f.seek(lo)
        data = f.read(end + 4 - lo)
    count, first = 0, -1
    if start == 0 and data[:5] == b"From ":
        count, first = 1, 0
    i = data.find(_SEPARATOR)
    while i >= 0:
        s = lo + i + 1
        if s >= end:
            break
        if s >= start and (data[i - 1:i] == b"\n" or data[i - 2:i] == b"\n\r"):
            count += 1
            if first < 0:
                first = s
        i = data.find(_SEPARATOR, i + 1)
    return first, count


def _layout(size: int, *scans) -> list:
    """``(start, end, first_index)`` of the messages each range holds (``None``: none) from
    the first-pass ``scans``: a range reads from its first separator to the first separator
    of the next range that has one (or the end of the file)."""
    out: list = [None] * len(scans)
    index = sum(n for _, n in scans)
    end = size
    for k in range(len(scans) - 1, -1, -1):
        first, n = scans[k]
        index -= n
        if n:
            out[k] = (first, end, index)
            end = first
    return out


class _Range:
    """A read-only binary stream of ``length`` bytes of ``f`` from its current position."""

    def __init__(self, f, length: int):
        self._f, self._left = f, length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data


def _mbox_range_items(fs, path: str, name: str, layout: Optional[tuple],
                      cap: int) -> Iterator[tuple]:
    from dsnparse.sources import _mbox_stream

    if layout is None:
        return
    start, end, index = layout
    try:
        with _open(fs, path) as f:
            f.seek(start)
            yield from _mbox_stream(_Range(f, end - start), cap, name, first=index)
    except OSError as e:
        yield f"{name}#{index}", SourceError(f"{name}: {e.strerror or e}")


# --------------------------------------------------------------------------- workers

def _warm(options: Options) -> None:
    """Load (and validate) the rule packs, the code table and the reasons once per process
    for ``options.rules``: the first partition a worker runs pays for it, the others reuse
    the module-level caches."""
    global _LOADS
    key = tuple(options.rules)
    if key in _WARM:
        return
    from dsnparse import codes, reasons, rules

    rules.load_packs(key)
    codes.load_table()
    reasons.load_reasons()
    _WARM.add(key)
    _LOADS += 1


def _remote_file_items(fs, path: str, name: str, cap: int,
                       split_mbox: bool = True) -> Iterator[tuple]:
    """As :func:`dsnparse.sources._file` reads a local file (``split_mbox=False``: as
    ``_read_file`` reads a Maildir message, never as an mbox)."""
    from dsnparse.sources import _mbox_stream

    try:
        with fs.open(path, "rb") as f:
            head = f.read(5)
            if head == b"From " and split_mbox:
                f.seek(0)
                yield from _mbox_stream(f, cap, name)
                return
            f.seek(0)
            data = f.read(cap + 1)
    except OSError as e:
        yield name, SourceError(f"{name}: {e.strerror or e}")
        return
    if len(data) > cap:
        size = fs.size(path)
        yield name, SourceError(f"{name}: message of {size} bytes is larger than the "
                                f"{cap}-byte limit: not loaded")
    else:
        yield name, data


def _items(pieces: Iterable[tuple], cap: int) -> Iterator[tuple]:
    from dsnparse.sources import _file, _read_file

    for piece in pieces:
        kind = piece[0]
        if kind == "file":
            _, fs, path, name, _size = piece
            if fs is None:
                yield from _file(Path(path), cap, name)
            else:
                yield from _remote_file_items(fs, path, name, cap)
        elif kind == "maildir":
            _, fs, path, source, name = piece
            if fs is None:
                yield source, _read_file(Path(path), cap, name)
            else:
                for _, data in _remote_file_items(fs, path, name, cap, split_mbox=False):
                    yield source, data
        elif kind == "error":
            yield piece[1], SourceError(piece[2])
        elif kind == "data":
            yield piece[1], piece[2]
        else:  # pragma: no cover - built by _plan only
            raise ValueError(f"unknown piece {kind!r}")


def _run(items: Iterable[tuple], options: Options, fmt: Optional[str]) -> Part:
    """Parse ``items`` as :func:`dsnparse.parallel._process_chunk` does (same counters, same
    warnings); records as dicts, or rendered in ``fmt``."""
    from dsnparse.sources import parse_item

    _warm(options)
    counts: dict = {}
    get = counts.get
    warnings: list = []
    records: list = []
    for source, data in items:
        if isinstance(data, SourceError):
            warnings.append(str(data))
        report = parse_item(source, data, options)
        if report.error and ": internal error:" in report.error:
            warnings.append(report.error)
        counts["messages"] = get("messages", 0) + 1
        counts[report.kind] = get(report.kind, 0) + 1
        if report.truncated:
            counts["truncated"] = get("truncated", 0) + 1
        for v in report.verdicts:
            if v.action == "failed" and v.bounce_type:
                counts[v.bounce_type] = get(v.bounce_type, 0) + 1
        records.extend(report.records(source))
    if fmt is not None:
        from dsnparse.output import Renderer

        return Part(Renderer(fmt)(records), counts, warnings)
    return Part(records, counts, warnings)


def _group_part(pieces: list, options: Options, fmt: Optional[str], index: int = 0) -> Part:
    # index: the partition's place in the input (not used here): the same input named
    # twice gives two partitions with keys of their own, as parse gives its records twice
    return _run(_items(pieces, options.max_message_bytes), options, fmt)


def _mbox_part(fs, path: str, name: str, k: int, layout: list, options: Options,
               fmt: Optional[str], index: int = 0) -> Part:
    items = _mbox_range_items(fs, path, name, layout[k], options.max_message_bytes)
    return _run(items, options, fmt)


def _scan_or_fail(fs, path: str, start: int, end: int) -> tuple:
    try:
        return scan_range(fs, path, start, end)
    except OSError:
        # unreadable: the range holding offset 0 reports it as one error record (as the
        # mbox reader of dsnparse parse does); the others have nothing
        return (0, 1) if start == 0 else (-1, 0)


# --------------------------------------------------------------------------- graph

def plan(paths, *, options: Optional[Options] = None, blocksize: int = DEFAULT_BLOCKSIZE,
         files_per_partition: int = FILES_PER_PARTITION, storage_options: Optional[dict] = None,
         fmt: Optional[str] = None, on_error=None) -> list:
    """The partitions of ``paths`` as a list of :class:`dask.delayed.Delayed`, each computing
    a :class:`Part`, in input order (see :func:`read_bounces` for the arguments).

    ``fmt`` (an output format of :mod:`dsnparse.output`): the partitions render their
    records as text instead of returning dicts.  ``on_error(path, SourceError)``: called for
    a path that cannot be read at all (``dsnparse parse`` prints it and goes on); without
    it, the error is raised.

    Raises:
        SourceError: a path does not exist or is not a file or directory (no ``on_error``).
        ValueError: ``blocksize`` or ``files_per_partition`` below 1.
    """
    from dask import delayed

    if blocksize < 1 or files_per_partition < 1:
        raise ValueError("blocksize and files_per_partition must be at least 1")
    options = options or DEFAULT
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    group_part = delayed(_group_part, pure=True)
    parts: list = []
    group: list = []
    size = 0

    def flush():
        nonlocal group, size
        if group:
            parts.append(group_part(group, options, fmt, len(parts)))
        group, size = [], 0

    for path in paths:
        path = os.fspath(path)
        try:
            pieces = list(_pieces(path, options, blocksize, storage_options))
        except SourceError as e:
            if on_error is None:
                raise
            on_error(path, e)
            continue
        for piece in pieces:
            if piece[0] == "mbox":
                flush()
                _, fs, fpath, name, fsize = piece
                bounds = list(range(0, fsize, blocksize)) + [fsize]
                scans = [delayed(_scan_or_fail, pure=True)(fs, fpath, a, b)
                         for a, b in zip(bounds, bounds[1:])]
                layout = delayed(_layout, pure=True)(fsize, *scans)
                for k in range(len(scans)):
                    parts.append(delayed(_mbox_part, pure=True)(fs, fpath, name, k, layout,
                                                                options, fmt, len(parts)))
                continue
            group.append(piece)
            if piece[0] in ("file", "maildir"):
                size += piece[4] if piece[0] == "file" else 0
            if len(group) >= files_per_partition or size >= blocksize:
                flush()
        flush()
    return parts


def read_bounces(paths, *, options: Optional[Options] = None,
                 blocksize: int = DEFAULT_BLOCKSIZE, files_per_partition: int = FILES_PER_PARTITION,
                 storage_options: Optional[dict] = None):
    """A :class:`dask.bag.Bag` of the verdict records of every message under ``paths``.

    Args:
        paths: a path or URL, or a list of them: .eml files, directories (walked as
            ``dsnparse parse`` walks them), mbox files (RFC 4155), Maildirs, ``MBOX#N`` /
            ``MAILDIR#KEY`` names (local only), on the local disk or any fsspec URL
            (``s3://bucket/archive.mbox``; its sources are then full URLs).  The paths must be
            readable by the workers (a shared file system or an object store).
        options: :class:`~dsnparse.options.Options` (``rules``, ``max_message_bytes``,
            ``message_timeout``…); default :data:`~dsnparse.options.DEFAULT`.  Extra rule
            directories must exist on the workers too.
        blocksize: bytes per mbox partition and most message bytes per partition of small
            files (``int``, default 16 MiB).
        files_per_partition: most files per partition (``int``, default 256).
        storage_options: passed to ``fsspec`` for URLs (credentials, endpoints).

    Returns:
        A ``dask.bag.Bag`` of ``dict`` records (keys :data:`dsnparse.model.RECORD_FIELDS`),
        equal to the JSON Lines records of ``dsnparse parse`` on the same inputs, in the same
        order when computed.  An unreadable file or a message that is not an email gives the
        same record of kind ``error``.

    Raises:
        SourceError: a path does not exist or is not a file or directory (raised here, while
            the graph is built, as ``dsnparse.parse_path`` raises).
        ValueError: ``blocksize`` or ``files_per_partition`` below 1.
    """
    import dask.bag as db
    from dask import delayed

    parts = plan(paths, options=options, blocksize=blocksize,
                 files_per_partition=files_per_partition, storage_options=storage_options)
    if not parts:
        return db.from_sequence([], npartitions=1)
    records = delayed(_records, pure=True)
    return db.from_delayed([records(p) for p in parts])


def _records(part: Part) -> list:
    return part.records


def meta():
    """The empty ``pandas.DataFrame`` describing a records frame: one column per
    :data:`~dsnparse.model.RECORD_FIELDS`, dtype ``string`` (missing values ``<NA>``)
    except ``truncated`` (``bool``)."""
    import pandas as pd

    return pd.DataFrame({f: pd.Series([], dtype="bool" if f == "truncated" else "string")
                         for f in RECORD_FIELDS})


def to_dataframe(bag):
    """``bag`` (from :func:`read_bounces`) as a Dask DataFrame with the columns and dtypes of
    :func:`meta`."""
    return bag.to_dataframe(meta=meta())


def records_frame(records: list):
    """One partition's records as a ``pandas.DataFrame`` with the dtypes of :func:`meta`."""
    import pandas as pd

    m = meta()
    df = pd.DataFrame.from_records(list(records), columns=list(RECORD_FIELDS))
    return df.astype(m.dtypes.to_dict()) if len(df) else m
