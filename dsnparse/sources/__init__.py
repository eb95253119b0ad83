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
``-`` for standard input (``-#N`` for the N-th message of an mbox read from it).  Those names
can be given back as paths: ``PATH#N`` / ``PATH#KEY`` selects that one message (a file whose
name really contains ``#`` is taken as it is first).

Nothing is skipped silently: a directory (or Maildir folder) that cannot be listed, the
top one included, gives one ``(path, SourceError)`` item, which becomes a record of kind
``error`` and counts as unreadable.
"""
from __future__ import annotations

import logging
import os
import re
import stat
import sys
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Union

from ..errors import InputError, SourceError
from ..model import Report
from ..options import DEFAULT, Options



class FileRef(NamedTuple):
    """A message file not read yet (``iter_messages(..., defer_files=True)``): the process
    that parses it reads it with :func:`resolve` (a worker, so the parent only lists files)."""

    path: str
    name: str


Item = tuple[str, Union[bytes, SourceError, FileRef]]
log = logging.getLogger("dsnparse")

STDIN_FORMATS = ("message", "mbox")
"""What standard input holds: one message (the default), or an mbox (RFC 4155)."""

_NOT_MAIL = (".json", ".jsonl", ".md", ".yaml", ".yml", ".py", ".pyc")
_DOC_NAMES = ("README", "LICENSE", "NOTICE")


def iter_messages(path: Union[str, os.PathLike], options: Options = DEFAULT, *,
                  defer_files: bool = False, stdin_format: str = "message") -> Iterator[Item]:
    """Yield ``(source, bytes | SourceError)`` for every message under ``path``.

    ``path`` may be ``-`` (standard input: one message, or an mbox with
    ``stdin_format="mbox"``), an .eml file, an mbox file (first line ``From ``), a Maildir
    (a directory with ``cur`` and ``new``), any directory (walked recursively in name order,
    hidden files skipped), or a source name printed earlier: ``MBOX#N`` (the N-th message,
    from 0) or ``MAILDIR#KEY`` (one Maildir message), used when no file has that very name.

    Standard input read as one message that looks like an mbox of several (it starts with
    ``From `` and holds more ``From `` separator lines followed by header fields) is still
    one message, with a warning on the ``dsnparse`` logger naming ``--stdin-format mbox``.

    With ``defer_files``, a one-message file met in a directory or Maildir is yielded as a
    :class:`FileRef` instead of its bytes (mbox files are still split here); pass the data
    through :func:`resolve` before parsing it.

    Raises:
        SourceError: ``path`` does not exist or is not a file or directory, or names a
            message (``#N``/``#KEY``) its mailbox does not hold.
        ValueError: ``stdin_format`` is not one of :data:`STDIN_FORMATS`.
    """
    if stdin_format not in STDIN_FORMATS:
        raise ValueError(f"stdin_format must be one of {', '.join(STDIN_FORMATS)}, "
                         f"not {stdin_format!r}")
    cap = options.max_message_bytes
    if str(path) == "-":
        yield from _stdin(cap, stdin_format)
        return
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except (OSError, ValueError) as e:  # e.g. a parent directory without search permission
        raise SourceError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    if mode is None:
        if "#" in str(path) and not os.path.lexists(p):
            yield _one_message(str(path), cap)
            return
        raise SourceError(f"{path}: no such file or directory")
    if stat.S_ISDIR(mode):
        if _is_dir(p / "cur") and _is_dir(p / "new"):
            yield from _maildir(p, cap, defer_files)
        else:
            yield from _directory(p, cap, defer_files)
    elif stat.S_ISREG(mode):
        yield from _file(p, cap, str(path))
    else:
        raise SourceError(f"{path}: not a regular file or directory")


def _is_dir(p: Path) -> bool:
    """``Path.is_dir`` that says ``False`` instead of raising (a parent without search
    permission raises ``PermissionError`` before Python 3.14); the walk reports the error."""
    try:
        return stat.S_ISDIR(p.stat().st_mode)
    except (OSError, ValueError):
        return False


def _stdin(cap: int, fmt: str) -> Iterator[Item]:
    try:
        if sys.stdin is None:  # started with standard input closed
            raise OSError("standard input is closed")
        if fmt == "mbox":
            yield from _mbox_stream(sys.stdin.buffer, cap, "-")
            return
        data = sys.stdin.buffer.read(cap + 1)
    except (OSError, ValueError) as e:
        yield "-", SourceError(f"-: cannot read standard input: {getattr(e, 'strerror', None) or e}")
        return
    if len(data) > cap:
        yield "-", SourceError(f"message larger than {cap} bytes: not loaded")
        return
    if data[:5] == b"From ":
        n = looks_like_mbox(data)
        if n > 1:
            log.warning("-: standard input looks like an mbox of %d messages but is read as "
                        "one message; use --stdin-format mbox to parse each", n)
    yield "-", data


# a "From " separator line (after a blank line, RFC 4155) followed by a header field line
_SEPARATOR_THEN_HEADER = re.compile(rb"\n\r?\nFrom [^\n]*\n[!-9;-~]+:")


def looks_like_mbox(data: bytes) -> int:
    """How many messages ``data`` holds if read as an mbox (``int``): 1 plus the number of
    ``From `` separator lines (after a blank line, RFC 4155) followed by a header field.
    ``0`` when ``data`` does not start with ``From ``."""
    if data[:5] != b"From ":
        return 0
    return 1 + len(_SEPARATOR_THEN_HEADER.findall(data))


def _one_message(name: str, cap: int) -> Item:
    """The message a source name ``MBOX#N`` or ``MAILDIR#KEY`` names (the file named
    ``name`` itself does not exist)."""
    base, _, key = name.rpartition("#")
    bp = Path(base)
    if _is_dir(bp) and _is_dir(bp / "cur") and _is_dir(bp / "new"):
        for source, data in _maildir(bp, cap, True):   # file names only, until it is found
            if source.rpartition("#")[2] == key:
                return name, resolve(data, cap)
        raise SourceError(f"{name}: no message with key {key!r} in the Maildir {base}")
    if not bp.is_file():
        raise SourceError(f"{name}: no such file or directory")
    if not key.isdigit():
        raise SourceError(f"{name}: no such file, and {key!r} is not a message number "
                          f"(MBOX#N, N from 0)")
    want, count = int(key), 0
    try:
        with open(bp, "rb") as f:
            is_mbox = f.read(5) == b"From "
    except OSError as e:
        raise SourceError(f"{name}: {base}: {e.strerror or e}") from None
    if not is_mbox:
        raise SourceError(f"{name}: no such file, and {base} is not an mbox")
    for source, data in _mbox(bp, cap, base):
        if count == want:
            return name, data
        count += 1
    raise SourceError(f"{name}: {base} holds {count} message(s) (#0 to #{count - 1})"
                      if count else f"{name}: {base} holds no message")


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


def resolve(data: Union[bytes, SourceError, FileRef], cap: int) -> Union[bytes, SourceError]:
    """Read a :class:`FileRef` (at most ``cap`` bytes); other data is returned as is."""
    if isinstance(data, FileRef):
        return _read_file(Path(data.path), cap, data.name)
    return data


def _file(p: Path, cap: int, name: str, defer: bool = False) -> Iterator[Item]:
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
    elif defer:
        yield name, FileRef(str(p), name)
    else:
        yield name, _read_file(p, cap, name)


def _directory(p: Path, cap: int, defer: bool = False) -> Iterator[Item]:
    errors: list = []                  # directories os.walk could not list
    for root, dirs, files in os.walk(p, onerror=errors.append):
        while errors:
            yield from _walk_error(errors.pop(0))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fn in sorted(files):
            if fn.startswith(".") or fn.endswith(_NOT_MAIL) or fn.upper().startswith(_DOC_NAMES):
                continue
            fp = Path(root) / fn
            yield from _file(fp, cap, str(fp), defer)
    for e in errors:
        yield from _walk_error(e)


def _walk_error(e: OSError) -> Iterator[Item]:
    name = e.filename if e.filename is not None else "?"
    yield str(name), SourceError(f"{name}: cannot read directory: {e.strerror or e}")


def _maildir(p: Path, cap: int, defer: bool = False) -> Iterator[Item]:
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
            if defer:
                yield f"{p}#{key}", FileRef(str(d / fn), str(d / fn))
            else:
                yield f"{p}#{key}", _read_file(d / fn, cap, str(d / fn))


_BLOCK = 1 << 20
_ESCAPED = re.compile(rb"(?m)^>(>*From )")


def _unescape(data: bytes) -> bytes:
    """Undo mboxrd quoting: ``>From `` (any number of ``>``) loses one ``>``."""
    if b">From " in data:
        return _ESCAPED.sub(rb"\1", data)
    return data


def _mbox(p: Path, cap: int, name: str) -> Iterator[Item]:
    """Stream an mbox (mboxo/mboxrd, RFC 4155): split on ``From `` lines, unescape ``>From``.

    A ``From `` line starts a message when it is the first line of the file or follows a
    blank line.  The file is read in 1 MiB blocks and split with ``bytes.find`` (no per-line
    Python work); a message over ``cap`` bytes is dropped as soon as that is known, so
    memory stays bounded by ``cap`` plus one block.
    """
    try:
        with open(p, "rb") as f:
            yield from _mbox_stream(f, cap, name)
    except OSError as e:
        yield f"{name}#0", SourceError(f"{name}: {e.strerror or e}")


def _mbox_stream(f, cap: int, name: str, first: int = 0) -> Iterator[Item]:
    """Split the binary stream ``f`` as an mbox (see :func:`_mbox`); sources ``name#N``, N
    counted from ``first`` (``int``: the number of messages of the mbox before the stream's
    start, when ``f`` is a byte range of it starting at a separator: :mod:`dsnparse.dask`)."""
    index = first
    try:
        read = f.read
        buf = read(_BLOCK)
        if not buf:
            return
        pos = 0                    # start of the current ``From `` line (a separator)
        while True:
            # skip the separator line
            nl = buf.find(b"\n", pos)
            while nl < 0:
                more = read(_BLOCK)
                if not more:       # a final ``From `` line without a newline
                    yield f"{name}#{index}", b""
                    return
                buf, pos = buf[pos:] + more, 0
                nl = buf.find(b"\n")
            start, scan, too_big = nl + 1, nl, False
            while True:            # find the next separator
                i = buf.find(b"\nFrom ", scan)
                while i >= 0 and not (buf[i - 1:i] == b"\n" or buf[i - 2:i] == b"\n\r"):
                    i = buf.find(b"\nFrom ", i + 1)
                if i >= 0:
                    end = i + 1
                    break
                more = read(_BLOCK)
                if not more:
                    end = -1
                    break
                if not too_big and len(buf) - start > cap:
                    whole = buf[start:buf.rfind(b"\n") + 1]
                    too_big = len(_unescape(whole)) > cap
                keep = max(start - 1, len(buf) - 8) if too_big else start - 1
                scan = max(0, len(buf) - keep - 6)
                buf = buf[keep:] + more
                start -= keep
                if too_big:
                    start = 0
            msg = b"" if too_big else _unescape(buf[start:] if end < 0 else buf[start:end])
            if too_big or len(msg) > cap:
                yield f"{name}#{index}", SourceError(
                    f"{name}#{index}: message larger than the {cap}-byte limit: not loaded")
            else:
                yield f"{name}#{index}", msg
            if end < 0:
                return
            index += 1
            pos = end
            if pos > _BLOCK:       # drop what has been consumed
                buf, pos = buf[pos:], 0
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

    data = resolve(data, options.max_message_bytes)
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
