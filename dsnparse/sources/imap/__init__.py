"""Process a bounce mailbox over IMAP: a verdict for every message, each exactly once.

Entry point: :func:`run` with an :class:`ImapOptions`; it returns a :class:`Summary`.
The command line front end is :mod:`dsnparse.imap_cli`.  Records are made exactly as
``dsnparse parse`` makes them (:func:`dsnparse.sources.parse_item`); only ``source`` differs.

Flow of one pass (RFC 3501 unless noted)
----------------------------------------
1. Connect: IMAPS with certificate verification by default (``ca_file`` for a private CA),
   or STARTTLS (RFC 3501 §6.2.1), or plain IMAP only when asked for explicitly.  LOGIN.
2. SELECT the folder (EXAMINE in a dry run); read its UIDVALIDITY (§2.3.1.1).
3. UID SEARCH once (ALL, or SINCE / UNSEEN).  UIDs already in the state file are dropped
   before anything is fetched; ``limit`` counts only messages still to do.
4. UID FETCH ``BODY.PEEK[]`` in batches (PEEK: reading sets no ``\\Seen``), parse each
   message, write its records.  Every record's ``source`` is an RFC 5092 IMAP URL,
   ``imap://user@host/FOLDER;UIDVALIDITY=v/;UID=u``.
5. Make the batch durable: flush + fsync the output, call ``on_stored`` for each message,
   then commit the batch to the state file (one SQLite transaction).
6. Only then file the batch: bounces (kinds ``bounce`` and ``delay``) are moved to
   ``processed_folder`` (UID MOVE, RFC 6851; without MOVE: UID COPY, ``\\Deleted``,
   UID EXPUNGE of exactly those UIDs, RFC 4315; without UIDPLUS the copies are left
   flagged ``\\Deleted`` and nothing is expunged), or flagged with ``flag_only``; all
   other mail goes to ``other_folder`` or stays.  Nothing is ever deleted outright.
   Input that is not an email (kind ``error``) counts as "other".  A message that makes the
   parser raise (a bug) gets a kind ``error`` record saying so, counts as an error (exit
   status 1), is stored (so a rerun does not repeat it) and stays where it is.

Exactly once: why output-then-state with a checkpoint
------------------------------------------------------
The state file (SQLite, WAL, ``synchronous=FULL``) holds one row per message whose result is
stored, keyed by (server, user, folder, UIDVALIDITY, UID), plus the message's Message-ID,
SHA-256 of its bytes, its disposition and whether it has been filed.  It also holds, for each
output *file*, a checkpoint: the file's size when the last batch was committed.

Records are written and fsynced *before* the state commit, and the commit stores the new
checkpoint in the same transaction.  So at any instant the output file is the committed
prefix plus, at most, the records of one uncommitted batch (possibly torn mid-line by a
``kill -9``).  On start-up every known output file is reconciled: bytes after its checkpoint
are records of messages the state does not know, so the file is truncated back to the
checkpoint and those messages are simply processed again.  The result: each message has
exactly one record, whatever the point of interruption.  Alternatives rejected: scanning
the tail and adopting whatever records it holds cannot tell whether *all* records of a
multi-recipient message made it; storing records inside the state transaction and replaying
them doubles every write.  Before truncating, the tail is checked to hold only records whose
source starts with an ``imap://user@host/FOLDER;UIDVALIDITY=`` prefix this state file has
written (server, user and folder; a foreign line makes the run stop with an error rather
than cut someone else's data), so the output file should be dedicated to ``dsnparse imap``.
An output file belongs to one state file: ``OUTPUT.owner`` holds the owner's random id, and
a run with another state file refuses that output (exit 2) instead of truncating the other's
records; an output taken over by another state file is forgotten, never truncated.  A
reader that follows the file live (``tail -f``) may see an uncommitted batch that is later
retracted.

Local I/O errors are not network errors.  A batch's records are rendered in memory and
written with ``os.write`` + ``fsync``; if that or the state commit fails (ENOSPC, EIO,
EACCES, EDQUOT, SQLite "disk full"), the output is truncated back to the last committed
offset at once (no partial record stays to be glued to a later one), nothing of the batch is
filed, and :class:`LocalIOError` ends the pass: a one-shot run stops (exit status 1, a rerun
finishes); ``watch`` keeps the connection, waits (exponential backoff up to
``max_backoff``) and retries the pass from the committed state.

On stdout (a pipe) there is nothing to truncate: a kill between the flush and the commit
can repeat that batch there (at least once).  Use an output file for exactly once.

``on_stored(report, source)`` runs after the record is fsynced and before the state commit,
so it is called at least once per message (again after a crash in that window); ``source``
is a stable key for de-duplication.  If it raises, the batch is not committed and the run
stops with an error; the next run retries the batch.

Filing is idempotent: a message committed but not yet filed (kill between commit and MOVE)
is filed by the next run without being parsed or written again.  Without MOVE, a kill
between UID COPY and UID EXPUNGE leaves the message in both folders; before copying such a
message again (or one matched after a UIDVALIDITY change) the target folder is searched
(size, Message-ID, then SHA-256 of the bytes) and an existing copy is reused: the message
is only expunged from the source.

UIDVALIDITY changes: while the folder has rows under another UIDVALIDITY and no pass has
yet seen every message under the current one, every message not known by UID is matched on
(Message-ID, SHA-256) against unclaimed rows of the older UIDVALIDITYs.  A match gets a new
row that points at the old one (``alias_of``), is filed if it is still in the folder, and
gets no second record.  Matching goes on across runs cut short (``limit``, a kill, a lost
connection, a full disk) and ends once a whole pass (no ``since``/``unseen``/``limit`` cut,
not stopped) is done: the folder is then marked reconciled in the state file.

A process-wide ``flock`` on ``STATE.lock`` keeps two runs from sharing a state file.

Service mode (``watch``): after a pass the connection IDLEs (RFC 2177, re-issued every
``idle_timeout`` seconds) or, without IDLE, polls every ``poll_interval`` seconds; a
dropped connection is re-opened with exponential backoff.  ``stop`` (a
:class:`threading.Event`, set by the CLI on SIGINT/SIGTERM) is checked after every
message: the current message is finished, its batch is stored and filed, and the run ends.

Test hook (for crash tests only): ``DSNPARSE_IMAP_TEST_KILL=N:POINT`` makes the process
SIGKILL itself when the N-th message of the run (parsed, or matched after a UIDVALIDITY
change) reaches POINT: ``parsed`` (records rendered in memory, not written), ``written``
(batch fsynced, state not committed), ``committed`` (state committed, not filed),
``copied`` (without MOVE: UID COPY done, not yet expunged) or ``filed`` (batch filed).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from ...errors import SourceError
from ...model import Report
from ...options import Options
from .client import _close, _network_errors, connect
from .options import (BOUNCE_KINDS, KILL_POINTS, SECURITY, ImapConnectionLost, ImapLoginError,
                      ImapOptions, LocalIOError, Summary, default_state_path, log)
from .outfile import _Output, _reconcile_outputs, _tail_is_ours  # noqa: F401 (tests)
from .process import _Run
from .state import StateDB

__all__ = ["run", "connect", "ImapOptions", "Summary", "StateDB", "ImapLoginError",
           "ImapConnectionLost", "LocalIOError", "default_state_path", "BOUNCE_KINDS",
           "KILL_POINTS", "SECURITY"]


def run(options: ImapOptions, output: Optional[str] = None, fmt: str = "jsonl", *,
        on_stored: Optional[Callable[[Report, str], None]] = None,
        progress: Optional[Callable[[int, int], None]] = None,
        stop: Optional[threading.Event] = None,
        parse: Optional[Callable[[str, bytes], Report]] = None,
        parse_options: Optional[Options] = None) -> Summary:
    """Process the mailbox; return a :class:`Summary` (``summary.exit_status`` is 0 or 1).

    Args:
        options: connection, folders, filters, state path.
        output: path of the output file (appended to; see the module docstring on why it
            should be dedicated to this command), or ``None``/``"-"`` for stdout.
        fmt: ``"jsonl"`` or ``"csv"``.
        on_stored: called as ``on_stored(report, source)`` once the message's record is
            durably stored and before the message is filed (the ``--db`` ledger hook).
        progress: called as ``progress(done, total)`` during each pass.
        stop: set it to finish the current message, store and file its batch, and return.
        parse: ``parse(source, data) -> Report``; by default
            :func:`dsnparse.sources.parse_item` with ``parse_options`` (default
            ``Options.from_env()``), so records equal those of ``dsnparse parse``.

    Raises:
        ImapLoginError: connecting, TLS or LOGIN failed at the start (nothing was changed).
        SourceError: the state file is locked or cannot be opened, the output file cannot
            be opened, belongs to another state file, or cannot be reconciled.

    A local I/O error during the run (:class:`LocalIOError`) is not raised: it ends the run
    with ``summary.complete`` false and ``summary.io_error`` set (one-shot), or is retried
    after a back-off (``watch``).
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"format must be jsonl or csv, not {fmt!r}")
    if parse is None:
        from .. import parse_item
        popts = parse_options or Options.from_env()

        def parse(source, data):
            if len(data) > popts.max_message_bytes:
                data = SourceError(f"{source}: message of {len(data)} bytes is larger than "
                                   f"the {popts.max_message_bytes}-byte limit: not loaded")
            return parse_item(source, data, popts)
    stop = stop or threading.Event()
    o = options
    state = StateDB(o.state_path or default_state_path(), readonly=o.dry_run)
    prefix = o.source_prefix()
    summary = Summary()
    out = None
    try:
        out = _Output(output, fmt, state, prefix, o.dry_run)
        r = _Run(o, out, state, summary, on_stored, progress, stop, parse)
        _loop(r, o, summary, stop)
    finally:
        if out:
            out.close()
        state.close()
    return summary


def _loop(r: _Run, o: ImapOptions, summary: Summary, stop: threading.Event) -> None:
    net = _network_errors()
    backoff, io_backoff, first = 1.0, 1.0, True
    while not stop.is_set():
        try:
            client = connect(o)
        except ImapLoginError as e:
            if not (o.watch and e.retryable):
                if first:
                    raise
                log.error("%s", e)
                summary.complete = False
                return
            log.warning("%s; retrying in %.0f s", e, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, o.max_backoff)
            continue
        first = False
        try:
            log.info("connected to %s as %s", o.server, o.user)
            backoff = 1.0
            while True:
                try:
                    r.pass_once(client)
                except LocalIOError as e:
                    # a full disk or a broken file is not a lost connection: the output is
                    # already back at its last committed record and nothing of the batch
                    # was filed; stop (one-shot) or wait and retry the pass (watch)
                    summary.complete, summary.io_error = False, str(e)
                    if not o.watch:
                        log.error("%s; stopping: nothing of that batch was filed, a rerun "
                                  "finishes the work", e)
                        return
                    log.error("%s; nothing of that batch was filed; retrying in %.0f s", e,
                              io_backoff)
                    stop.wait(io_backoff)
                    io_backoff = min(io_backoff * 2, o.max_backoff)
                    if stop.is_set():
                        return
                    continue
                if summary.io_error:            # recovered: the pass finished its work
                    log.warning("writing works again after: %s", summary.io_error)
                    summary.complete, summary.io_error = True, None
                io_backoff = 1.0
                if not o.watch or stop.is_set():
                    return
                r.wait(client)
        except net as e:
            if not o.watch:
                log.error("connection to %s lost: %s; a rerun finishes the work", o.server, e)
                summary.complete = False
                return
            log.warning("connection to %s lost: %s; reconnecting in %.0f s", o.server, e,
                        backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, o.max_backoff)
        finally:
            _close(client)
