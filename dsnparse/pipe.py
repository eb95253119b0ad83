"""``dsnparse pipe``: one bounce on standard input, from an MTA's pipe delivery.

Postfix delivers to a command with ``pipe(8)`` (a ``master.cf`` service), Exim with its
``pipe`` transport; either starts ``dsnparse pipe`` once per message and decides from its exit
status whether the message is delivered (removed from the queue), deferred (kept and retried)
or bounced.  The exit status follows ``<sysexits.h>``, and only two values are used:

``0`` (EX_OK)
    The message was parsed and its result stored: the records appended to ``--output``, the
    bounce events in the ``--db`` ledger, the raw message in ``--keep-dir`` when asked.  A
    message that is no bounce (kind ``not_bounce``) or that cannot be parsed (kind ``error``:
    not an email, over ``--max-size``, over its ``--message-timeout``, a parser bug) is stored
    as such a record and also exits 0: retrying would give the same result.

``75`` (EX_TEMPFAIL)
    Anything could not be stored — the output cannot be opened or written (permissions, a
    full disk: a partly written record is cut off again), its lock or the ledger stayed busy
    past ``--lock-timeout``, the ledger cannot be opened — and also a usage error (a bad
    option, a missing policy file, broken rule packs) and any unexpected failure.  Postfix
    (``pipe(8)``: EX_TEMPFAIL is a soft error) and Exim (``temp_errors`` holds 75 by default)
    keep the message queued and retry it later; the reason is the one line written to
    standard error, which both MTAs put in their log and queue listing (``postqueue -p``,
    ``exim -bp``).

Why a usage error is 75 and not EX_USAGE (64): both MTAs take 64 as a permanent failure and
would bounce the bounce — to its null sender, so it ends with the postmaster as a
double bounce and is lost for dsnparse.  A mistake in ``master.cf`` or in the Exim transport
is a configuration error the administrator fixes; until then the MTA keeps every bounce, and
``postqueue -f`` (``exim -qff``) delivers them all afterwards.  ``--help`` and ``--version``
exit 0.  Exit statuses 1 and 2 of the other commands are never used here (to Postfix an
unknown status is a bounce) — except by the main parser, for an unknown option placed
before the command word (``dsnparse --bogus pipe``), which this module does not see.

Exactly once: the ledger is written first (its events are deduplicated, so a retry after a
later failure stores nothing twice), ``--keep-dir`` second (its file name is the message's
SHA-256: a retry replaces the same file), the output last, as one ``write`` under an exclusive
``flock`` on an ``O_APPEND`` descriptor, then fsynced; only then does the command exit 0.  A
retry after a crash between the output's fsync and the exit (or a message the MTA delivers
twice) appends its records again: the ``message_id`` field tells them apart.

Envelope: Postfix's ``flags=F`` (and Exim's default ``message_prefix``) put a ``From SENDER
DATE`` line before the message; it is removed (its sender is the envelope sender when
``--sender`` is not given).  ``flags=R`` adds ``Return-Path: <SENDER>`` (and ``D``
``Delivered-To:``), which stay: a null Return-Path is evidence of a bounce.  ``--sender`` and
``--recipient`` take the envelope from the MTA's macros (``${sender}``, ``${recipient}``;
``$sender_address``, ``$local_part@$domain``); JSON Lines records carry them as
``envelope_sender`` (``""`` for the null sender ``<>``; Postfix writes it ``MAILER-DAEMON``)
and ``envelope_recipients`` (a list: a VERP address there names the original recipient).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from typing import Optional

EX_OK = 0
EX_TEMPFAIL = 75
"""``<sysexits.h>``: temporary failure, the MTA keeps the message and retries."""

DEFAULT_LOCK_TIMEOUT = 10.0
NULL_SENDERS = ("", "<>", "MAILER-DAEMON")
"""Spellings of the null reverse-path (RFC 5321 §4.5.5) an MTA passes: Exim's empty
``$sender_address``, ``<>``, Postfix pipe(8)'s default ``null_sender`` ``MAILER-DAEMON``."""


class TempFail(Exception):
    """Something could not be stored (or the command is misconfigured): exit 75."""


def _usage_error(parser: argparse.ArgumentParser):
    def error(message: str):
        try:
            parser.print_usage(sys.stderr)
        except (OSError, ValueError, AttributeError):
            pass
        _say(f"dsnparse pipe: usage error: {message}; exit 75 (EX_TEMPFAIL): the MTA keeps "
             f"the message until the command is fixed")
        sys.exit(EX_TEMPFAIL)
    return error


from .cliargs import byte_count as _bytes, seconds as _seconds  # noqa: E402


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``pipe`` command to an argparse subparsers object (``dsnparse.cli``).

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The ``pipe`` parser; its ``func`` is :func:`cmd_pipe`.  Its usage errors exit 75
        (EX_TEMPFAIL), not 2: see the module docstring.
    """
    p = subparsers.add_parser(
        # options written in full only: --cache-dir is read before argparse runs (the code
        # cache, dsnparse.startup), and an MTA's command line is written once
        "pipe", allow_abbrev=False, help="one bounce on stdin from an MTA pipe (Postfix pipe(8), Exim pipe "
                     "transport); exit 0 stored / 75 retry",
        description="Read one message on standard input (as Postfix pipe(8) or Exim's pipe "
                    "transport deliver it), parse it and store the result: records appended "
                    "to --output (O_APPEND, one write under an exclusive lock, fsynced), "
                    "bounce events in the --db ledger, the raw message in --keep-dir. A "
                    "leading 'From ' envelope line (pipe flag F, Exim's message_prefix) is "
                    "removed.",
        epilog="Exit status (sysexits.h): 0 parsed and stored (a message that is not a bounce "
               "or cannot be parsed is stored as a not_bounce or error record, still 0); 75 "
               "EX_TEMPFAIL when anything could not be stored (output unwritable, disk full, "
               "ledger or lock busy past --lock-timeout), on a usage error and on any other "
               "failure: the MTA keeps the message and retries. No other status is used.")
    p.error = _usage_error(p)  # usage errors: 75, not argparse's 2 (see the module docstring)
    known = p.parse_known_args

    def parse_known_args(args=None, namespace=None):  # unknown options: our error, not the
        ns, extra = known(args, namespace)             # main parser's (which exits 2)
        if extra:
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra
    p.parse_known_args = parse_known_args
    from . import __version__

    p.add_argument("--version", action="version", version=f"dsnparse {__version__}")
    g = p.add_argument_group("where the result goes (at least --output or --keep-dir)")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="append the records to FILE (created 0644 less the umask; whole "
                        "records under an exclusive flock, then fsynced); - for standard output")
    g.add_argument("-f", "--format", choices=("jsonl", "csv"), default=None,
                   help="output format (default: csv for a .csv file, else jsonl); CSV gets "
                        "its header row when the file is empty")
    g.add_argument("--db", metavar="FILE|URL",
                   help="record the bounce events in this ledger (an SQLite file or a "
                        "postgresql:// URL; see `dsnparse suppressions`)")
    g.add_argument("--policy", metavar="FILE",
                   help="suppression policy YAML merged over the shipped defaults "
                        "(default $DSNPARSE_POLICY)")
    g.add_argument("--keep-dir", metavar="DIR",
                   help="Maildir (created) that receives the raw message when it gives no "
                        "ledger event (not a bounce, an error record, no recipient address), "
                        "named by its SHA-256; `dsnparse parse DIR` reads it back")
    g.add_argument("--lock-timeout", metavar="SECONDS", type=_seconds,
                   default=DEFAULT_LOCK_TIMEOUT,
                   help="how long to wait for the output's lock and the ledger's write lock "
                        f"before exiting 75 (default {DEFAULT_LOCK_TIMEOUT:g})")
    g.add_argument("--synchronous", choices=("full", "normal"), default="full",
                   help="ledger durability: full (default: every commit fsynced, since the MTA "
                        "deletes its copy on exit 0) or normal")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="the pack cache (as $DSNPARSE_CACHE_DIR; default ~/.cache/dsnparse): "
                        "give one the pipe user owns when its home is not writable (nobody's "
                        "/nonexistent), else every delivery compiles the rule packs again")
    g = p.add_argument_group("envelope (from the MTA's macros)")
    g.add_argument("--sender", metavar="ADDR",
                   help="envelope sender: Postfix ${sender}, Exim $sender_address (empty, <> "
                        "and MAILER-DAEMON mean the null sender)")
    g.add_argument("--recipient", metavar="ADDR", action="append", default=[],
                   help="envelope recipient (repeatable): Postfix --recipient=${recipient} "
                        "(one argument per recipient), Exim $local_part@$domain")
    g.add_argument("--queue-id", metavar="ID",
                   help="the MTA's queue id (Postfix ${queue_id}, Exim $message_exim_id); "
                        "the records' source is then pipe:ID")
    g.add_argument("--source", metavar="NAME",
                   help="the records' source (default pipe:QUEUE_ID, else pipe)")
    g.add_argument("recipients", nargs="*", metavar="RECIPIENT",
                   help="more envelope recipients (as --recipient)")
    g = p.add_argument_group("parsing")
    g.add_argument("--rules", metavar="DIR", action="append", default=[],
                   help="extra rule-pack directory (repeatable; also DSNPARSE_RULES)")
    g.add_argument("--max-size", metavar="BYTES", type=_bytes, default=25 * 1024 * 1024,
                   help="a larger message is stored as an error record, not parsed (default "
                        "25 MiB; the rest of standard input is still read)")
    g.add_argument("--message-timeout", metavar="SECONDS", type=_seconds, default=None,
                   help="time budget of the parser (default 5; 0: none); over it, an error "
                        "record")
    p.set_defaults(func=cmd_pipe)
    return p


# --------------------------------------------------------------------------- reading

def read_message(stream, cap: int) -> tuple[bytes, bool]:
    """Read at most ``cap + 1`` bytes of a binary ``stream``; return ``(them, whether the
    message is longer than cap)``.  The caller reads the rest (:func:`drain`, or
    :func:`keep_message` with ``rest=stream``), so the MTA never sees a broken pipe.

    Raises:
        OSError: standard input cannot be read.
    """
    data = stream.read(cap + 1)
    return data, len(data) > cap


def drain(stream) -> None:
    """Read ``stream`` to its end, dropping what it holds."""
    while stream.read(1 << 20):
        pass


def split_envelope(data: bytes) -> tuple[Optional[str], bytes]:
    """Remove a leading mbox ``From SENDER DATE`` line (Postfix pipe flag ``F``, Exim's
    default ``message_prefix``; RFC 4155's separator line).

    Returns:
        ``(SENDER or None when there is no such line, the message without it)``.
    """
    if data[:5] != b"From ":
        return None, data
    end = data.find(b"\n")
    line = data[5:end if end >= 0 else len(data)].decode("utf-8", "replace").strip()
    rest = data[end + 1:] if end >= 0 else b""
    return (line.split()[0] if line else ""), rest


def null_sender(value: Optional[str]) -> Optional[str]:
    """The envelope sender as recorded: ``""`` for the null reverse-path (any of
    :data:`NULL_SENDERS`), the address without ``<>`` otherwise, ``None`` when unknown."""
    if value is None:
        return None
    v = value.strip()
    if v.upper() in NULL_SENDERS or v == "<>":
        return ""
    if v.startswith("<") and v.endswith(">"):
        v = v[1:-1].strip()
    return v


# --------------------------------------------------------------------------- storing

def append_records(path: str, text: bytes, header: bytes, lock_timeout: float) -> int:
    """Append ``text`` to ``path`` as one ``write`` under an exclusive ``flock``, then fsync.

    ``header`` (a CSV header row, or ``b""``) is written first when the file is empty.  When
    the write fails or is short (a full disk), the file is cut back to its size before it, so
    no partial record is left for the next delivery to glue onto.

    Returns:
        The number of bytes appended (``int``).

    Raises:
        TempFail: the file cannot be opened or written, or its lock stayed held past
            ``lock_timeout`` seconds.
    """
    import errno
    import fcntl

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise TempFail(f"cannot open the output {path}: {e.strerror or e}") from e
    try:
        deadline = time.monotonic() + lock_timeout
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise TempFail(f"cannot lock the output {path}: {e.strerror or e}") from e
                if time.monotonic() >= deadline:
                    raise TempFail(f"the output {path} stayed locked for {lock_timeout:g} s "
                                   f"(--lock-timeout)") from e
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        start = os.fstat(fd).st_size
        blob = (header if start == 0 else b"") + text
        try:
            n = os.write(fd, blob)
            if n != len(blob):
                raise OSError(28, f"short write: {n} of {len(blob)} bytes (disk full?)")
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise TempFail(f"cannot write the output {path}: {e.strerror or e}") from e
        return n
    finally:
        os.close(fd)  # (releases the lock)


def keep_message(directory: str, data: bytes, rest=None) -> str:
    """Deliver ``data`` into the Maildir ``directory`` (``tmp/`` written and fsynced, then
    renamed into ``new/``), named ``<SHA-256>.eml`` so a retry replaces the same file.
    ``rest``: a binary stream whose remaining bytes follow ``data`` (a message over
    ``--max-size`` is copied whole, never held in memory).

    Returns:
        The path of the file in ``new/`` (``str``).

    Raises:
        TempFail: the directory or file cannot be created or written.
    """
    digest = hashlib.sha256()
    tmp = None
    try:
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(directory, sub), exist_ok=True)
        tmp = os.path.join(directory, "tmp", f"{time.time():.6f}.{os.getpid()}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            while data:
                digest.update(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                data = rest.read(1 << 20) if rest is not None else b""
            os.fsync(fd)
        finally:
            os.close(fd)
        final = os.path.join(directory, "new", digest.hexdigest() + ".eml")
        os.replace(tmp, final)
        dfd = os.open(os.path.join(directory, "new"), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return final
    except OSError as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise TempFail(f"cannot keep the message in {directory}: {e.strerror or e}") from e


def _render(records: list, fmt: str) -> tuple[bytes, bytes]:
    import io

    if fmt == "jsonl":
        import json

        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(), b""
    from .output import CsvWriter

    head, body = io.StringIO(), io.StringIO()
    CsvWriter(head)  # the header row alone
    CsvWriter(body, header=False).write(records)
    return body.getvalue().encode("utf-8"), head.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- the command

def _write_all(stream, data: bytes) -> None:
    """Write ``data`` to the file descriptor of ``stream`` until every byte is written;
    raises ``OSError`` (a full disk: ENOSPC, a reader gone: EPIPE) instead of stopping short
    (a buffered write can leave part of the records behind and still return)."""
    stream.flush()
    fd = stream.fileno()
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(f"short write ({len(data) - len(view)} of {len(data)} bytes)")
        view = view[n:]


def _say(message: str) -> None:
    """Print ``message`` on standard error if it can be written: a closed or full stderr
    (``2>/dev/full``, ``2>&-``) must not turn exit 75 into a crash (status 1 bounces)."""
    try:
        print(message, file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass


def cmd_pipe(args: argparse.Namespace) -> int:
    """Handler of ``dsnparse pipe``: returns 0 (EX_OK) or 75 (EX_TEMPFAIL), never another
    status, and never raises (see the module docstring)."""
    try:
        return _run(args)
    except TempFail as e:
        _say(f"dsnparse pipe: {e}; exit 75 (EX_TEMPFAIL): the MTA keeps the message and "
             f"retries")
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        _say("dsnparse pipe: interrupted; exit 75 (EX_TEMPFAIL)")
        return EX_TEMPFAIL
    except BaseException as e:  # noqa: BLE001 - any other status would bounce the bounce
        if isinstance(e, SystemExit) and e.code in (None, 0, EX_TEMPFAIL):
            raise
        _say(f"dsnparse pipe: unexpected failure: {type(e).__name__}: {e}; exit 75 "
             f"(EX_TEMPFAIL): the MTA keeps the message and retries")
        return EX_TEMPFAIL


def _run(args: argparse.Namespace) -> int:
    if not args.output and not args.keep_dir:
        raise TempFail("usage error: give --output FILE (every message's records) and/or "
                       "--keep-dir DIR (messages that give no ledger event), so that no "
                       "message is dropped")
    if args.policy and not args.db:  # (as parse: the policy only decides in a ledger)
        raise TempFail("usage error: --policy needs --db (the policy decides what the ledger "
                       "suppresses)")
    fmt = args.format
    if fmt is None:
        fmt = "csv" if args.output and args.output.lower().endswith(".csv") else "jsonl"

    if args.cache_dir:
        os.environ["DSNPARSE_CACHE_DIR"] = args.cache_dir
    from .errors import DsnparseError, RuleError
    from .options import Options

    opts = Options.from_env()
    changes: dict = {"max_message_bytes": args.max_size}
    if args.rules:
        changes["rules"] = tuple(args.rules) + opts.rules
    if args.message_timeout is not None:
        changes["message_timeout"] = args.message_timeout
    opts = opts.replace(**changes)

    policy = None
    if args.db:
        from .policy import load_policy

        try:
            policy = load_policy(args.policy)
        except RuleError as e:
            raise TempFail(f"usage error: {e}") from e

    try:
        if sys.stdin is None:
            raise OSError("standard input is closed")
        raw, too_big = read_message(sys.stdin.buffer, opts.max_message_bytes)
    except (OSError, ValueError) as e:
        raise TempFail(f"cannot read standard input: {getattr(e, 'strerror', None) or e}") \
            from e
    from_line_sender, message = split_envelope(raw)
    if too_big:  # the rest of standard input: kept whole with --keep-dir, else dropped
        try:
            if args.keep_dir:
                keep_message(args.keep_dir, message, rest=sys.stdin.buffer)
            else:
                drain(sys.stdin.buffer)
        except (OSError, ValueError) as e:
            raise TempFail(f"cannot read standard input: {e}") from e
    sender = null_sender(args.sender if args.sender is not None else from_line_sender)
    recipients = [r for r in list(args.recipient) + list(args.recipients) if r]
    source = args.source or (f"pipe:{args.queue_id}" if args.queue_id else "pipe")

    from .errors import SourceError
    from .sources import parse_item

    if too_big:
        data = SourceError(f"message larger than {opts.max_message_bytes} bytes: not loaded "
                           f"(--max-size)")
    elif not message.strip():
        data = SourceError("empty message on standard input")
    else:
        data = message
    try:
        if not isinstance(data, SourceError):  # (what parse_item loads: before the collector
            from .engine import parse  # noqa: F401 - is back, see dsnparse.startup)
            from .rules import load_packs

            load_packs(tuple(opts.rules))
        from .startup import resume_collector

        resume_collector()  # (the message itself is parsed with the collector on)
        report = parse_item(source, data, opts)
    except RuleError as e:  # broken packs concern every message: a configuration error
        raise TempFail(f"usage error: {e}") from e

    records = report.records(source)
    for r in records:
        r["envelope_sender"] = sender
        r["envelope_recipients"] = recipients

    events = False  # (the ledger module, sqlite3 and the policy only load with --db)
    if args.db and report.kind not in ("error", "not_bounce"):
        from .ledger import normalize_address

        events = any(normalize_address(v.final_recipient or v.original_recipient)
                     for v in report.verdicts)

    # 1. the ledger (idempotent: a retry after a later failure adds nothing)
    if args.db and events:
        import sqlite3

        from .ledger import Ledger

        try:
            with Ledger(args.db, policy=policy, timeout=args.lock_timeout,
                        synchronous=args.synchronous.upper()) as led:
                led.record_report(report, source,
                                  original_headers=dict(report.original_headers),
                                  raw=message)
        except (DsnparseError, sqlite3.Error, OSError) as e:
            from .ledger.postgres import mask_url, scrub  # (no password in the MTA's log)

            raise TempFail(f"cannot record in the ledger {mask_url(str(args.db))}: "
                           f"{scrub(str(e), str(args.db))}") from e
    # 2. the raw message of what the ledger does not hold (same name on a retry)
    if args.keep_dir and not (events and args.db) and not too_big:  # (too big: kept above)
        keep_message(args.keep_dir, message)
    # 3. the records, appended last (the one step a retry would repeat)
    if args.output:
        text, header = _render(records, fmt)
        if args.output == "-":
            try:
                _write_all(sys.stdout, header + text)
            except (OSError, ValueError, AttributeError) as e:  # (closed: None, or no fd)
                raise TempFail(f"cannot write standard output: "
                               f"{getattr(e, 'strerror', None) or e}") from e
        else:
            append_records(args.output, text, header if fmt == "csv" else b"",
                           args.lock_timeout)
    return EX_OK
