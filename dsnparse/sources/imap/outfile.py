"""The output file of the IMAP source: batches, checkpoints, reconciliation."""
from __future__ import annotations

import csv
import json
import os
import sys
from typing import Optional

from ...errors import SourceError
from ...output import CsvWriter, make_writer
from .options import log
from .state import StateDB


class _Output:
    """The output stream, with checkpoint/reconcile support when it is a regular file."""

    def __init__(self, path: Optional[str], fmt: str, state: StateDB, prefix: str,
                 dry_run: bool):
        self.path = None if path in (None, "-") else os.path.abspath(path)
        self.fmt = fmt
        if not dry_run:
            _reconcile_outputs(state, prefix, self.path)
        if self.path is None:
            self.stream = sys.stdout
            self.writer = make_writer(fmt, self.stream)
            return
        self.stream = open(self.path, "a", encoding="utf-8", newline="")
        empty = os.fstat(self.stream.fileno()).st_size == 0
        if fmt == "csv":
            self.writer = CsvWriter(self.stream, header=empty)
        else:
            self.writer = make_writer(fmt, self.stream)
        self.writer.flush(durable=True)
        if not dry_run and self.path not in state.checkpoints():
            state.set_checkpoint(self.path, self.size())

    def size(self) -> int:
        return os.fstat(self.stream.fileno()).st_size

    def checkpoint(self):
        return (self.path, self.size()) if self.path else None

    def close(self):
        if self.path:
            self.writer.close()
            self.stream.close()
        else:
            self.writer.flush()


def _tail_is_ours(tail: bytes, prefix: str) -> bool:
    text = tail.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] and not text.endswith("\n"):
        lines = lines[:-1]                      # a torn last line: ours by construction
    for line in filter(None, lines):
        try:
            src = json.loads(line).get("source", "")
        except (ValueError, AttributeError):
            src = next(csv.reader([line]), [""])[0]
        if not str(src).startswith(prefix):
            return False
    return True


def _reconcile_outputs(state: StateDB, prefix: str, current: Optional[str]):
    """Truncate every known output file back to its last committed checkpoint."""
    for path, size in state.checkpoints().items():
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
            if not _tail_is_ours(tail, prefix):
                raise SourceError(
                    f"{path} holds {actual - size} bytes after the last committed record that "
                    "were not written by this dsnparse imap account; refusing to truncate "
                    "(use a dedicated output file)")
            log.warning("output %s: dropping %d bytes of records that were never committed "
                        "(interrupted run); those messages are processed again",
                        path, actual - size)
            with open(path, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())
