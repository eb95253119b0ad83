"""Where messages come from: .eml files, directories, mbox files, Maildirs, standard input.

Every source yields ``(source, data)`` pairs, where ``source`` names the message for output
records and ``data`` is the message's bytes or a :class:`~dsnparse.errors.SourceError`
explaining why it could not be read.  Reading streams: memory does not grow with the number
of messages (an mbox is read line by line; a directory is walked lazily).

A directory is walked recursively in name order; hidden files and files that are plainly
not messages (``*.json``, ``*.jsonl``, ``*.md``, ``*.yaml``, ``*.yml``, ``*.py``, and
``README*``, ``LICENSE*``, ``NOTICE*``) are skipped.  A file given by name is always read.

Source names: a file's path as given; ``PATH#N`` for the N-th message of an mbox (from 0);
``PATH#KEY`` for a Maildir message (its key: the file name without the ``:2,`` flags);
``-`` for standard input.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Iterator, Optional, Union

from ..errors import InputError, SourceError
from ..model import Report
from ..options import DEFAULT, Options

Item = tuple[str, Union[bytes, SourceError]]
_NOT_MAIL = (".json", ".jsonl", ".md", ".yaml", ".yml", ".py", ".pyc")
_DOC_NAMES = ("README", "LICENSE", "NOTICE")


def iter_messages(path: Union[str, os.PathLike], options: Options = DEFAULT) -> Iterator[Item]:
    """Yield ``(source, bytes | SourceError)`` for every message under ``path``.

    ``path`` may be ``-`` (standard input: one message), an .eml file, an mbox file (first
    line ``From ``), a Maildir (a directory with ``cur`` and ``new``) or any directory
    (walked recursively in name order, hidden files skipped).

    Raises:
        SourceError: ``path`` does not exist or is not a file or directory.
    """
    cap = options.max_message_bytes
    if str(path) == "-":
        try:
            if sys.stdin is None:  # started with standard input closed
                raise OSError("standard input is closed")
            data = sys.stdin.buffer.read(cap + 1)
        except (OSError, ValueError) as e:
            yield "-", SourceError(f"-: cannot read standard input: {getattr(e, 'strerror', None) or e}")
            return
        if len(data) > cap:
            yield "-", SourceError(f"message larger than {cap} bytes: not loaded")
        else:
            yield "-", data
        return
    p = Path(path)
    if p.is_dir():
        if (p / "cur").is_dir() and (p / "new").is_dir():
            yield from _maildir(p, cap)
        else:
            yield from _directory(p, cap)
    elif p.is_file():
        yield from _file(p, cap, str(path))
    elif not p.exists():
        raise SourceError(f"{path}: no such file or directory")
    else:
        raise SourceError(f"{path}: not a regular file or directory")


def _not_regular(p: Path, name: str) -> Optional[SourceError]:
    """A SourceError for a FIFO, socket, device or directory met during a walk (opening a
    FIFO for reading would block until a writer comes), else ``None``."""
    try:
        mode = p.stat().st_mode
    except OSError as e:
        return SourceError(f"{name}: {e.strerror or e}")
    if not stat.S_ISREG(mode):
        return SourceError(f"{name}: not a regular file")
    return None


def _read_file(p: Path, cap: int, name: str) -> Union[bytes, SourceError]:
    err = _not_regular(p, name)
    if err is not None:
        return err
    try:
        size = p.stat().st_size
        if size > cap:
            return SourceError(f"{name}: message of {size} bytes is larger than the "
                               f"{cap}-byte limit: not loaded")
        with open(p, "rb") as f:
            return f.read()
    except OSError as e:
        return SourceError(f"{name}: {e.strerror or e}")


def _file(p: Path, cap: int, name: str) -> Iterator[Item]:
    err = _not_regular(p, name)
    if err is not None:
        yield name, err
        return
    try:
        with open(p, "rb") as f:
            head = f.read(5)
    except OSError as e:
        yield name, SourceError(f"{name}: {e.strerror or e}")
        return
    if head == b"From ":
        yield from _mbox(p, cap, name)
    else:
        yield name, _read_file(p, cap, name)


def _directory(p: Path, cap: int) -> Iterator[Item]:
    for root, dirs, files in os.walk(p, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fn in sorted(files):
            if fn.startswith(".") or fn.endswith(_NOT_MAIL) or fn.upper().startswith(_DOC_NAMES):
                continue
            fp = Path(root) / fn
            yield from _file(fp, cap, str(fp))


def _maildir(p: Path, cap: int) -> Iterator[Item]:
    for sub in ("new", "cur"):
        d = p / sub
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            yield f"{d}", SourceError(f"{d}: {e.strerror or e}")
            continue
        for fn in names:
            if fn.startswith("."):
                continue
            key = fn.split(":2,", 1)[0].split("!2,", 1)[0]
            yield f"{p}#{key}", _read_file(d / fn, cap, str(d / fn))


def _mbox(p: Path, cap: int, name: str) -> Iterator[Item]:
    """Stream an mbox (mboxo/mboxrd, RFC 4155): split on ``From `` lines, unescape ``>From``."""
    index = 0
    buf: list[bytes] = []
    size = 0
    too_big = False
    prev_blank = True

    def emit():
        if too_big:
            return f"{name}#{index}", SourceError(
                f"{name}#{index}: message larger than the {cap}-byte limit: not loaded")
        return f"{name}#{index}", b"".join(buf)

    try:
        with open(p, "rb") as f:
            first = True
            for line in f:
                if line.startswith(b"From ") and (prev_blank or first):
                    if not first:
                        yield emit()
                        index += 1
                    buf, size, too_big, first = [], 0, False, False
                    prev_blank = False
                    continue
                prev_blank = line in (b"\n", b"\r\n")
                if too_big:
                    continue
                if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
                    line = line[1:]
                size += len(line)
                if size > cap:
                    too_big, buf = True, []
                    continue
                buf.append(line)
            if not first:
                yield emit()
    except OSError as e:
        yield f"{name}#{index}", SourceError(f"{name}: {e.strerror or e}")


def parse_item(source: str, data: Union[bytes, SourceError], options: Options = DEFAULT) -> Report:
    """Parse one ``(source, data)`` item; unreadable or non-email input gives kind ``error``.

    Never raises for bad input: the ``error`` field of the report says what went wrong.  A
    bug in the parser on one message (an exception other than :class:`InputError`) is also
    turned into kind ``error`` with ``error`` starting ``internal error:`` and logged, so that
    one message never stops a run; :class:`~dsnparse.errors.RuleError` (broken packs) still
    raises, as it concerns every message.
    """
    from ..engine import parse
    from ..errors import RuleError

    if isinstance(data, SourceError):
        return Report(kind="error", error=str(data))
    try:
        return parse(data, options)
    except InputError as e:
        return Report(kind="error", error=f"{source}: {e}")
    except RuleError:
        raise
    except Exception as e:  # noqa: BLE001 - one message must not stop the run
        import logging

        logging.getLogger("dsnparse").exception("%s: internal error while parsing", source)
        return Report(kind="error", error=f"{source}: internal error: {type(e).__name__}: {e}")


def parse_path(path, options: Optional[Options] = None) -> Iterator[tuple[str, Report]]:
    """Yield ``(source, Report)`` for every message under ``path`` (see :func:`iter_messages`).

    Raises:
        SourceError: ``path`` does not exist.
    """
    options = options or DEFAULT
    for source, data in iter_messages(path, options):
        yield source, parse_item(source, data, options)
