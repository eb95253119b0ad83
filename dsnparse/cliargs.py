"""Command-line arguments shared by several command modules (``parse``, ``imap``,
``suppressions`` …), kept apart from :mod:`dsnparse.cli` so that a command module can use
them without importing the CLI that imports it."""
from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from typing import Optional

from .options import Options


def add_db_arguments(parser: argparse.ArgumentParser, record: bool = False) -> None:
    """Add ``--db FILE`` and ``--policy FILE`` to ``parser`` (for parse, imap, suppressions).

    Both default to "absent" (``argparse.SUPPRESS``) so that a value given to a parent
    parser is not overwritten; read them with ``getattr(args, "db", None)`` or call
    :func:`dsnparse.ledger_cli.open_ledger`.  (Also exported as
    ``dsnparse.cli.add_db_arguments`` and ``dsnparse.ledger_cli.add_db_arguments``.)
    ``record=True`` (parse, imap): the commands record into the ledger only when ``--db``
    is given.
    """
    parser.add_argument("--db", metavar="FILE|URL", default=argparse.SUPPRESS,
                        help="also record every bounce in this ledger (an SQLite file or a "
                             "postgresql:// URL; see `dsnparse suppressions`); nothing is "
                             "recorded without it" if record
                        else "ledger: an SQLite file or a postgresql:// URL; default "
                             "$DSNPARSE_DB, the policy's ledger.path, else "
                             "$XDG_DATA_HOME/dsnparse/ledger.sqlite3")
    parser.add_argument("--policy", metavar="FILE", default=argparse.SUPPRESS,
                        help="suppression policy YAML merged over the shipped defaults "
                             "(default $DSNPARSE_POLICY)")


def options_from_args(args) -> Options:
    """The :class:`~dsnparse.options.Options` of a command: the environment's
    (:meth:`Options.from_env`) with ``--rules``, ``--max-size`` and ``--message-timeout``
    applied."""
    opts = Options.from_env()
    extra = tuple(getattr(args, "rules", ()) or ())
    changes = {}
    if extra:
        changes["rules"] = extra + opts.rules
    if getattr(args, "max_size", None):
        changes["max_message_bytes"] = args.max_size
    if getattr(args, "message_timeout", None) is not None:
        changes["message_timeout"] = args.message_timeout
    return opts.replace(**changes) if changes else opts


def output_is_input(output: str, paths) -> Optional[str]:
    """Why ``output`` (an existing file) may not be written: it is an input given (same
    device and inode), or it lies inside a directory given (it would be walked as input);
    ``None`` when it is neither.  ``-o`` opens its file for writing, which would truncate an
    input before it is read."""
    try:
        out = os.stat(output)
    except OSError:
        return None  # not there yet: it cannot be an input
    for p in paths or ():
        if p == "-":
            continue
        base = p.split("#", 1)[0] if not os.path.exists(p) else p
        try:
            st = os.stat(base)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            return f"is the input {p}: opening it for writing would destroy it before it is read"
        if os.path.isdir(base):
            parent = os.path.abspath(os.path.dirname(os.path.abspath(output)))
            if (parent + os.sep).startswith(os.path.abspath(base) + os.sep):
                return (f"is inside the input directory {p}: it would be read as input "
                        f"(write it elsewhere)")
    return None


def summary_line(c: Counter, unreadable: int) -> str:
    """One line: messages by kind, then failed recipients by hard/soft (a bounce may name
    several recipients, so the two counts differ); then, when there are any, the messages
    whose text was cut at a size limit (their later recipients were not read)."""
    line = (f"messages: {c['messages']}  bounces: {c['bounce']}  delays: {c['delay']}  "
            f"delivered: {c['delivered']}  auto-replies: {c['auto_reply']}  "
            f"complaints: {c['complaint']}  not bounces: {c['not_bounce']}  errors: {c['error']} "
            f"(unreadable: {unreadable}) | failed recipients: hard: {c['hard']}  soft: {c['soft']}")
    if c["truncated"]:
        line += (f" | truncated: {c['truncated']} (text cut at its size limit: later "
                 f"recipients not read; see the records' 'truncated' field)")
    return line


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number, 1 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_since(text: str, now: Optional[float] = None) -> float:
    """``--since``: a duration back from now (``90m``, ``24h``, ``7d``, ``2w``) or a date
    (ISO 8601 ``2024-05-01`` / ``2024-05-01T12:00:00Z``, or RFC 5322); epoch seconds.

    Raises:
        ValueError: neither.
    """
    from .ledger import to_epoch

    s = text.strip()
    unit = _UNITS.get(s[-1:].lower())
    if unit is not None and s[:-1].replace(".", "", 1).isdigit():
        return (time.time() if now is None else now) - float(s[:-1]) * unit
    return to_epoch(s)


def point_in_time(text: str) -> float:
    """An ``argparse`` type: ``--since`` / ``--until`` (:func:`parse_since`)."""
    try:
        return parse_since(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (a duration back from now such as 7d, 24h, 90m, 2w, or a "
            f"date such as 2024-05-01 or 2024-05-01T12:00:00Z)") from None


def seconds(text: str) -> float:
    """A number of seconds, ``0`` or more (``0``: no limit)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not x >= 0 or x == float("inf"):  # (also NaN)
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, not {text}")
    return x


def timeout_seconds(text: str) -> float:
    """An ``argparse`` type: a network timeout, a finite number of seconds above 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < x < 86400 * 366:  # (also NaN and infinity)
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 (and below a "
                                         f"year), not {text}")
    return x


def tcp_port(text: str) -> int:
    """An ``argparse`` type: a TCP port, 1 to 65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, not {n}")
    return n


def byte_count(text: str) -> int:
    """An ``argparse`` type: a size in bytes, 1 to 2**40 (1 TiB: no message is larger, and a
    larger number overflows a slice index)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}") from None
    if not 1 <= n <= 2 ** 40:
        raise argparse.ArgumentTypeError(f"must be 1 to {2 ** 40} bytes, not {n}")
    return n
