"""The output file of the IMAP source: batches, checkpoints, reconciliation, ownership.

The records of one batch are rendered into memory and written with ``os.write`` on an
``O_APPEND`` descriptor, then fsynced (:meth:`_Output.flush`).  If any of that fails with a
local I/O error (ENOSPC, EIO, EACCES, EDQUOT, …) the file is truncated back to the offset of
the last committed batch and :class:`~.options.LocalIOError` is raised, so a partial record
is never left behind and never glued to a later one.

Ownership: an output file belongs to one state file.  ``OUTPUT.owner`` (next to it) holds
the owning state file's random id and path; a run with another state file refuses the
output (two state files sharing one output would truncate each other's records).  The
records after a checkpoint are truncated only if each names one of the RFC 5092 URL
prefixes (server, user, folder) that this state file has written.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import Optional

from ...errors import SourceError
from ...output import CsvWriter, make_writer
from .options import LocalIOError, log
from .state import StateDB

OWNER_SUFFIX = ".owner"


class _Output:
    """The output stream, with checkpoint/reconcile support when it is a regular file.

    ``write(records)`` renders into memory (a file) or writes to stdout; ``flush()`` makes
    the pending records durable; ``committed`` is the file size at the last state commit.
    """

    def __init__(self, path: Optional[str], fmt: str, state: StateDB, prefix: str,
                 dry_run: bool):
        self.path = None if path in (None, "-") else os.path.abspath(path)
        self.fmt = fmt
        self.fd: Optional[int] = None
        if not dry_run:
            state.add_source_prefix(prefix)
            if self.path:
                _claim(self.path, state)
            _reconcile_outputs(state, state.source_prefixes(), self.path)
        if self.path is None:
            self.stream = sys.stdout
            self.writer = make_writer(fmt, self.stream)
            return
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                              0o666)
        except OSError as e:
            raise SourceError(f"cannot open the output file {self.path}: {e.strerror}") from e
        self.committed = self.size()
        self.buf = io.StringIO()
        if fmt == "csv":
            self.writer = CsvWriter(self.buf, header=self.committed == 0)
        else:
            self.writer = make_writer(fmt, self.buf)
        self.flush()
        if not dry_run:                 # after reconciling, the whole file is committed
            state.set_checkpoint(self.path, self.size())
        self.committed = self.size()

    def write(self, records) -> None:
        try:
            self.writer.write(records)
        except OSError as e:            # stdout only: a file is written in flush()
            raise LocalIOError(f"cannot write the output: {e}") from e

    def flush(self) -> None:
        """Write the pending records and fsync; on failure truncate and raise LocalIOError."""
        if self.fd is None:
            try:
                self.writer.flush(durable=True)
            except OSError as e:
                raise LocalIOError(f"cannot write the output: {e}") from e
            return
        data = memoryview(self.buf.getvalue().encode("utf-8"))
        self.buf.seek(0)
        self.buf.truncate()
        try:
            while data:
                data = data[os.write(self.fd, data):]
            os.fsync(self.fd)
        except OSError as e:
            self.rollback(e)

    def discard(self) -> None:
        """Drop records not yet committed (a pass starting again after an error): the
        pending ones in memory and, for a file, any bytes after the last commit."""
        if self.fd is None:
            return
        self.buf.seek(0)
        self.buf.truncate()
        try:
            if self.size() > self.committed:
                os.ftruncate(self.fd, self.committed)
                os.fsync(self.fd)
        except OSError as e:
            raise LocalIOError(f"cannot truncate {self.path} back to {self.committed} bytes: "
                               f"{e}") from e

    def rollback(self, cause: BaseException) -> None:
        """Truncate the file to the last committed batch; raise :class:`LocalIOError`."""
        self.buf.seek(0)
        self.buf.truncate()
        what = f"writing {self.path} failed ({cause})"
        try:
            os.ftruncate(self.fd, self.committed)
            os.fsync(self.fd)
        except OSError as e:
            raise LocalIOError(f"{what}; truncating it back to {self.committed} bytes failed "
                               f"too ({e}): the next run does it") from cause
        raise LocalIOError(f"{what}; truncated back to the last committed record "
                           f"({self.committed} bytes)") from cause

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def checkpoint(self):
        return (self.path, self.size()) if self.path else None

    def close(self):
        if self.fd is None:
            try:
                self.writer.flush()
            except OSError:
                pass
            return
        os.close(self.fd)
        self.fd = None


def _owner_path(path: str) -> str:
    return path + OWNER_SUFFIX


def _owner_of(path: str) -> Optional[tuple[str, str]]:
    """(state id, state path) from ``PATH.owner``, or ``None`` when there is none."""
    try:
        with open(_owner_path(path), encoding="utf-8") as f:
            sid, _, spath = f.read().strip().partition("\t")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read {_owner_path(path)}: {e.strerror}") from e
    return sid, spath


def _claim(path: str, state: StateDB) -> None:
    """Make ``state`` the owner of the output ``path``; raise SourceError if another is."""
    owner = _owner_of(path)
    if owner is None:
        try:
            fd = os.open(_owner_path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileExistsError:         # another run claimed it just now
            owner = _owner_of(path)
        except OSError as e:
            raise SourceError(f"cannot create {_owner_path(path)}: {e.strerror}") from e
        else:
            try:
                os.write(fd, f"{state.id}\t{os.path.abspath(state.path)}\n".encode())
                os.fsync(fd)
            except OSError as e:
                raise SourceError(f"cannot write {_owner_path(path)}: {e.strerror}") from e
            finally:
                os.close(fd)
            return
    if owner is not None and owner[0] != state.id:
        raise SourceError(
            f"output {path} belongs to the dsnparse imap state file {owner[1] or '?'} "
            f"({_owner_path(path)}); two state files sharing one output would truncate each "
            "other's records: use a dedicated output file per state file (or remove "
            f"{_owner_path(path)} if that state file is gone)")


def _tail_is_ours(tail: bytes, prefixes) -> bool:
    """True if every complete line of ``tail`` is a record whose ``source`` starts with one
    of ``prefixes`` (a str or a tuple of str).  A torn last line is ours by construction."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
    if not prefixes:
        return False
    text = tail.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] and not text.endswith("\n"):
        lines = lines[:-1]
    for line in filter(None, lines):
        try:
            src = json.loads(line).get("source", "")
        except (ValueError, AttributeError):
            src = next(csv.reader([line]), [""])[0]
        if not str(src).startswith(prefixes):
            return False
    return True


def _reconcile_outputs(state: StateDB, prefixes, current: Optional[str]):
    """Truncate every output file of ``state`` back to its last committed checkpoint.

    ``prefixes``: the source URL prefixes the state file has written (see
    :func:`_tail_is_ours`).  An output now owned by another state file is forgotten, not
    touched.  Raises :class:`SourceError` if a tail holds anything else.
    """
    for path, size in state.checkpoints().items():
        owner = _owner_of(path)
        if owner is not None and owner[0] != state.id:
            if path == current:
                _claim(path, state)             # raises with the explanation
            log.warning("output %s now belongs to the state file %s; forgetting it", path,
                        owner[1])
            state.drop_checkpoint(path)
            continue
        try:
            actual = os.path.getsize(path)
        except FileNotFoundError:
            if path == current:
                state.set_checkpoint(path, 0)
            continue
        if actual < size:                       # rotated or truncated by someone else
            log.warning("output %s is shorter than its checkpoint; starting afresh", path)
            state.set_checkpoint(path, actual)
        elif actual > size:
            with open(path, "rb") as f:
                f.seek(size)
                tail = f.read()
            if not _tail_is_ours(tail, prefixes):
                raise SourceError(
                    f"{path} holds {actual - size} bytes after the last committed record that "
                    "were not written by this dsnparse imap state file for this server, user "
                    "and folder; refusing to truncate (use a dedicated output file)")
            log.warning("output %s: dropping %d bytes of records that were never committed "
                        "(interrupted run); those messages are processed again",
                        path, actual - size)
            with open(path, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())
