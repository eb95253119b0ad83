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
them doubles every write.  Before truncating, the tail is checked to hold only records of
this account (a foreign line makes the run stop with an error rather than cut someone
else's data), so the output file should be dedicated to ``dsnparse imap``.  A reader that
follows the file live (``tail -f``) may see an uncommitted batch that is later retracted.

On stdout (a pipe) there is nothing to truncate: a kill between the flush and the commit
can repeat that batch there (at least once).  Use an output file for exactly once.

``on_stored(report, source)`` runs after the record is fsynced and before the state commit,
so it is called at least once per message (again after a crash in that window); ``source``
is a stable key for de-duplication.  If it raises, the batch is not committed and the run
stops with an error; the next run retries the batch.

Filing is idempotent: a message committed but not yet filed (kill between commit and MOVE)
is filed by the next run without being parsed or written again.

UIDVALIDITY changes: when the folder's UIDVALIDITY has no rows yet but the folder has rows
under another one, every message not known by UID is matched on (Message-ID, SHA-256)
against unclaimed rows of the old UIDVALIDITY.  A match gets a new row that points at the
old one (``alias_of``), is filed if it is still in the folder, and gets no second record.

A process-wide ``flock`` on ``STATE.lock`` keeps two runs from sharing a state file.

Service mode (``watch``): after a pass the connection IDLEs (RFC 2177, re-issued every
``idle_timeout`` seconds) or, without IDLE, polls every ``poll_interval`` seconds; a
dropped connection is re-opened with exponential backoff.  ``stop`` (a
:class:`threading.Event`, set by the CLI on SIGINT/SIGTERM) is checked after every
message: the current message is finished, its batch is stored and filed, and the run ends.

Test hook (for crash tests only): ``DSNPARSE_IMAP_TEST_KILL=N:POINT`` makes the process
SIGKILL itself when the N-th message of the run reaches POINT: ``parsed`` (records written
to the buffer, not flushed), ``written`` (batch fsynced, state not committed),
``committed`` (state committed, not filed) or ``filed`` (batch filed).
"""
from __future__ import annotations

import datetime as _dt
import email.parser
import email.policy
import fcntl
import hashlib
import csv
import json
import logging
import os
import signal
import sqlite3
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional
from urllib.parse import quote

from ..errors import SourceError
from ..model import Report
from ..options import Options
from ..output import CsvWriter, make_writer

log = logging.getLogger("dsnparse.imap")

BOUNCE_KINDS = ("bounce", "delay")
SECURITY = ("ssl", "starttls", "plain")
KILL_POINTS = ("parsed", "written", "committed", "filed")


class ImapLoginError(SourceError):
    """Connecting, TLS or LOGIN failed before anything was changed (CLI exit status 2).

    ``retryable`` is true for network trouble (refused, timeout, reset) and false for a
    rejected login or an untrusted certificate.
    """

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.retryable = retryable


class ImapConnectionLost(SourceError):
    """The connection dropped in the middle of a run."""


@dataclass(frozen=True)
class ImapOptions:
    """Everything :func:`run` needs to know.  Immutable; derive with ``dataclasses.replace``.

    ``port`` defaults to 993 for ``security="ssl"`` and 143 otherwise.  ``since`` is a
    :class:`datetime.date` (IMAP SEARCH SINCE, by internal date).  ``limit`` caps the number
    of messages processed per pass.  ``processed_folder`` is used unless ``flag_only``;
    ``other_folder=None`` leaves non-bounces where they are.  ``state_path=None`` means
    :func:`default_state_path`.
    """

    host: str
    user: str
    password: str = field(repr=False, default="")
    port: Optional[int] = None
    security: str = "ssl"
    ca_file: Optional[str] = None
    folder: str = "INBOX"
    since: Optional[_dt.date] = None
    unseen: bool = False
    limit: Optional[int] = None
    batch_size: int = 50
    processed_folder: Optional[str] = "Processed"
    other_folder: Optional[str] = None
    flag_only: bool = False
    flag: str = "\\Flagged"
    dry_run: bool = False
    state_path: Optional[str] = None
    timeout: float = 60.0
    watch: bool = False
    idle_timeout: float = 300.0
    poll_interval: float = 30.0
    max_backoff: float = 60.0

    def __post_init__(self):
        if self.security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}, not {self.security!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")
        targets = {self.processed_folder if not self.flag_only else None, self.other_folder}
        if self.folder in targets:
            raise ValueError(f"the folder to read ({self.folder}) cannot also be a target folder")

    @property
    def real_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.real_port}"

    def source(self, uidvalidity: int, uid: int) -> str:
        """The RFC 5092 IMAP URL of one message."""
        default = 993 if self.security == "ssl" else 143
        hostport = self.host if self.real_port == default else self.server
        return (f"imap://{quote(self.user, safe='')}@{hostport}/{quote(self.folder, safe='/')}"
                f";UIDVALIDITY={uidvalidity}/;UID={uid}")


@dataclass
class Summary:
    """Counts of one run (all passes of a ``watch`` run)."""

    read: int = 0
    bounces: int = 0
    hard: int = 0
    soft: int = 0
    other: int = 0
    moved: int = 0
    flagged: int = 0
    skipped: int = 0
    errors: int = 0
    complete: bool = True

    @property
    def exit_status(self) -> int:
        return 0 if self.complete and not self.errors else 1

    def line(self) -> str:
        return (f"read {self.read}, bounces {self.bounces} (hard {self.hard}, soft {self.soft}), "
                f"other {self.other}, moved {self.moved}, flagged {self.flagged}, "
                f"errors {self.errors}" + ("" if self.complete else ", incomplete"))


def default_state_path() -> str:
    """``$XDG_DATA_HOME/dsnparse/imap-state.sqlite3`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "dsnparse", "imap-state.sqlite3")


# --------------------------------------------------------------------------- state file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages(
    server TEXT NOT NULL, user TEXT NOT NULL, folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    message_id TEXT, sha256 TEXT NOT NULL,
    disposition TEXT NOT NULL,          -- bounce | other | error
    filed INTEGER NOT NULL DEFAULT 0,   -- 1 once moved/flagged (or nothing to do)
    alias_of INTEGER,                   -- rowid of the same message under an old UIDVALIDITY
    stored_at REAL NOT NULL,
    PRIMARY KEY(server, user, folder, uidvalidity, uid));
CREATE INDEX IF NOT EXISTS messages_hash ON messages(server, user, folder, sha256);
CREATE TABLE IF NOT EXISTS outputs(path TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""


class StateDB:
    """The SQLite state file: which messages have a stored result, and output checkpoints."""

    def __init__(self, path: str, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self._lock = None
        if readonly:
            if os.path.exists(path):
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            else:
                self.db = sqlite3.connect(":memory:")
                self.db.executescript(_SCHEMA)
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._lock = open(path + ".lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise SourceError(f"state file {path} is in use by another dsnparse imap run")
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self):
        self.db.close()
        if self._lock:
            self._lock.close()

    def known(self, o: ImapOptions, uidvalidity: int) -> dict[int, tuple[str, int]]:
        """UID → (disposition, filed) for the folder under this UIDVALIDITY."""
        rows = self.db.execute(
            "SELECT uid, disposition, filed FROM messages WHERE server=? AND user=? AND folder=?"
            " AND uidvalidity=?", (o.server, o.user, o.folder, uidvalidity))
        return {uid: (d, f) for uid, d, f in rows}

    def has_other_uidvalidity(self, o: ImapOptions, uidvalidity: int) -> bool:
        return self.db.execute(
            "SELECT 1 FROM messages WHERE server=? AND user=? AND folder=? AND uidvalidity!=?"
            " LIMIT 1", (o.server, o.user, o.folder, uidvalidity)).fetchone() is not None

    def find_alias(self, o, uidvalidity, message_id, digest, claimed: set) -> Optional[tuple]:
        """An unclaimed row of an older UIDVALIDITY for the same message, or ``None``."""
        rows = self.db.execute(
            "SELECT rowid, disposition FROM messages WHERE server=? AND user=? AND folder=?"
            " AND sha256=? AND message_id IS ? AND uidvalidity!=? AND alias_of IS NULL"
            " AND rowid NOT IN (SELECT alias_of FROM messages WHERE server=? AND user=?"
            " AND folder=? AND uidvalidity=? AND alias_of IS NOT NULL) ORDER BY rowid",
            (o.server, o.user, o.folder, digest, message_id, uidvalidity,
             o.server, o.user, o.folder, uidvalidity))
        for rowid, disposition in rows:
            if rowid not in claimed:
                return rowid, disposition
        return None

    def commit_batch(self, o, uidvalidity, done: list["_Done"], checkpoint):
        now = time.time()
        with self._tx():
            self.db.executemany(
                "INSERT INTO messages(server,user,folder,uidvalidity,uid,message_id,sha256,"
                "disposition,filed,alias_of,stored_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                [(o.server, o.user, o.folder, uidvalidity, d.uid, d.message_id, d.sha256,
                  d.disposition, 0, d.alias_of, now) for d in done])
            if checkpoint:
                self.db.execute("INSERT OR REPLACE INTO outputs(path,size) VALUES(?,?)",
                                checkpoint)

    def mark_filed(self, o, uidvalidity, uids: Iterable[int]):
        with self._tx():
            self.db.executemany(
                "UPDATE messages SET filed=1 WHERE server=? AND user=? AND folder=?"
                " AND uidvalidity=? AND uid=?",
                [(o.server, o.user, o.folder, uidvalidity, u) for u in uids])

    def checkpoints(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT path, size FROM outputs"))

    def set_checkpoint(self, path: str, size: int):
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO outputs(path,size) VALUES(?,?)",
                            (path, size))

    def _tx(self):
        db = self.db

        class _T:
            def __enter__(self_):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_, et, ev, tb):
                db.execute("ROLLBACK" if et else "COMMIT")
        return _T()


# --------------------------------------------------------------------------- output

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


# --------------------------------------------------------------------------- IMAP

def connect(o: ImapOptions):
    """Open and log in an :class:`imapclient.IMAPClient`; raise :class:`ImapLoginError`."""
    import imapclient
    from imapclient.exceptions import IMAPClientError, LoginError

    ctx = None
    if o.security != "plain":
        try:
            ctx = ssl.create_default_context(cafile=o.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ImapLoginError(f"cannot read CA file {o.ca_file}: {e}") from e
    what = f"{o.security.upper()} {o.server}"
    try:
        client = imapclient.IMAPClient(o.host, port=o.real_port, ssl=o.security == "ssl",
                                       ssl_context=ctx, timeout=o.timeout)
    except ssl.SSLCertVerificationError as e:
        raise ImapLoginError(f"TLS certificate of {o.server} not trusted: {e.verify_message}"
                             " (use --ca-file for a private CA)") from e
    except ssl.SSLError as e:
        raise ImapLoginError(f"TLS with {o.server} failed: {e}") from e
    except (OSError, IMAPClientError) as e:
        raise ImapLoginError(f"cannot connect to {what}: {e}", retryable=True) from e
    try:
        if o.security == "starttls":
            try:
                client.starttls(ctx)
            except ssl.SSLCertVerificationError as e:
                raise ImapLoginError(f"TLS certificate of {o.server} not trusted: "
                                     f"{e.verify_message} (use --ca-file for a private CA)"
                                     ) from e
            except (OSError, IMAPClientError) as e:
                raise ImapLoginError(f"STARTTLS with {o.server} failed: {e}") from e
        try:
            client.login(o.user, o.password)
        except LoginError as e:
            raise ImapLoginError(f"login as {o.user} on {o.server} failed: "
                                 f"{_text(e.args[0]) if e.args else e}") from e
        except (OSError, IMAPClientError) as e:
            raise ImapLoginError(f"login on {o.server} failed: {e}", retryable=True) from e
    except BaseException:
        _close(client)
        raise
    return client


def _text(x):
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _close(client):
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def _network_errors():
    from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
    return (OSError, EOFError, IMAPClientAbortError, IMAPClientError, ImapConnectionLost)


# --------------------------------------------------------------------------- processing

@dataclass
class _Done:
    uid: int
    message_id: Optional[str]
    sha256: str
    disposition: str
    alias_of: Optional[int] = None
    report: Optional[Report] = None
    source: str = ""


_header_parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _message_id(raw: bytes) -> Optional[str]:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[:end + 2]
    try:
        mid = _header_parser.parsebytes(head).get("Message-ID")
    except Exception:
        return None
    return " ".join(str(mid).split()) if mid else None


class _KillHook:
    def __init__(self):
        spec = os.environ.get("DSNPARSE_IMAP_TEST_KILL", "")
        self.n, self.point = 0, None
        if spec:
            n, _, point = spec.partition(":")
            self.n, self.point = int(n), point or "parsed"
            if self.point not in KILL_POINTS:
                raise ValueError(f"DSNPARSE_IMAP_TEST_KILL: point must be one of {KILL_POINTS}")

    def __call__(self, point: str, count: int):
        if self.point == point and count >= self.n:
            log.debug("DSNPARSE_IMAP_TEST_KILL: SIGKILL at %s after %d messages", point, count)
            os.kill(os.getpid(), signal.SIGKILL)


class _Run:
    def __init__(self, o: ImapOptions, out: _Output, state: StateDB, summary: Summary,
                 on_stored, progress, stop: threading.Event, parse):
        self.o, self.out, self.state, self.summary = o, out, state, summary
        self.on_stored, self.progress, self.stop, self.parse = on_stored, progress, stop, parse
        self.kill = _KillHook()
        self.count = 0          # messages parsed in this process, for the kill hook
        self.folders_ready = False

    # one pass over the folder ----------------------------------------------------------
    def pass_once(self, client) -> None:
        o = self.o
        sel = client.select_folder(o.folder, readonly=o.dry_run)
        uidvalidity = int(sel[b"UIDVALIDITY"])
        if not o.dry_run and not self.folders_ready:
            for f in (None if o.flag_only else o.processed_folder, o.other_folder):
                if f and not client.folder_exists(f):
                    log.info("creating folder %s", f)
                    client.create_folder(f)
            self.folders_ready = True
        criteria: list[Any] = []
        if o.since:
            criteria += ["SINCE", o.since]
        if o.unseen:
            criteria.append("UNSEEN")
        uids = sorted(client.search(criteria or "ALL"))
        known = self.state.known(o, uidvalidity)
        rematch = not known and self.state.has_other_uidvalidity(o, uidvalidity)
        if rematch:
            log.warning("%s: UIDVALIDITY is now %d; matching messages on Message-ID and "
                        "content hash", o.folder, uidvalidity)
        unfiled = [u for u in uids if u in known and not known[u][1]]
        todo = [u for u in uids if u not in known]
        self.summary.skipped += len(uids) - len(unfiled) - len(todo)
        if o.limit is not None:
            todo = todo[:o.limit]
        if unfiled and not o.dry_run:
            log.info("filing %d messages stored by an earlier run", len(unfiled))
            self.file(client, uidvalidity, [(u, known[u][0]) for u in unfiled])
        total, done_n = len(todo), 0
        if self.progress:
            self.progress(0, total)
        claimed: set = set()
        for i in range(0, total, o.batch_size):
            if self.stop.is_set():
                break
            chunk = todo[i:i + o.batch_size]
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            batch: list[_Done] = []
            for uid in chunk:
                if self.stop.is_set():
                    break
                data = fetched.get(uid)
                if data is None or b"BODY[]" not in data:
                    log.info("UID %d vanished before it could be fetched", uid)
                    continue
                batch.append(self.handle(uid, uidvalidity, data[b"BODY[]"], rematch, claimed))
                done_n += 1
                if self.progress:
                    self.progress(done_n, total)
            self.store(uidvalidity, batch)
            if not o.dry_run:
                self.file(client, uidvalidity, [(d.uid, d.disposition) for d in batch])
                self.kill("filed", self.count)
        if self.stop.is_set() and done_n < total:
            self.summary.complete = False

    def handle(self, uid, uidvalidity, raw: bytes, rematch: bool, claimed: set) -> _Done:
        o = self.o
        digest = hashlib.sha256(raw).hexdigest()
        mid = _message_id(raw)
        source = o.source(uidvalidity, uid)
        if rematch:
            hit = self.state.find_alias(o, uidvalidity, mid, digest, claimed)
            if hit:
                claimed.add(hit[0])
                log.info("%s is a message stored before the UIDVALIDITY change", source)
                return _Done(uid, mid, digest, hit[1], alias_of=hit[0])
        self.summary.read += 1
        crashed = False
        try:
            report = self.parse(source, raw)
        except Exception as e:                  # a parser bug: record it, leave the message
            log.exception("parsing %s crashed", source)
            report = Report(kind="error", error=f"parser crashed: {type(e).__name__}: {e}")
            crashed = True
            self.summary.errors += 1
        self.out.writer.write(report.records(source))
        if report.kind in BOUNCE_KINDS:
            disposition = "bounce"
            self.summary.bounces += 1
            if any(v.bounce_type == "hard" for v in report.verdicts):
                self.summary.hard += 1
            else:
                self.summary.soft += 1
        elif crashed:
            disposition = "error"
        else:
            disposition = "other"
            self.summary.other += 1
        self.count += 1
        self.kill("parsed", self.count)
        return _Done(uid, mid, digest, disposition, report=report, source=source)

    def store(self, uidvalidity, batch: list[_Done]) -> None:
        """Make the batch durable: fsync output, on_stored, commit state."""
        self.out.writer.flush(durable=True)
        self.kill("written", self.count)
        if self.on_stored:
            for d in batch:
                if d.report is not None:
                    self.on_stored(d.report, d.source)
        if not self.o.dry_run and batch:
            self.state.commit_batch(self.o, uidvalidity, batch, self.out.checkpoint())
        self.kill("committed", self.count)

    def file(self, client, uidvalidity, items: list[tuple[int, str]]) -> None:
        o = self.o
        targets: dict[Optional[str], list[int]] = {}
        for uid, disposition in items:
            if disposition == "bounce":
                t = "\\flag" if o.flag_only else o.processed_folder
            elif disposition == "other":
                t = o.other_folder
            else:
                t = None                        # a parser crash: leave it for a person
            targets.setdefault(t, []).append(uid)
        for target, uids in targets.items():
            if target == "\\flag":
                client.add_flags(uids, [o.flag], silent=True)
                self.summary.flagged += len(uids)
            elif target:
                _move(client, uids, target)
                self.summary.moved += len(uids)
            self.state.mark_filed(o, uidvalidity, uids)

    # waiting for new mail -------------------------------------------------------------
    def wait(self, client) -> None:
        o = self.o
        if b"IDLE" not in client.capabilities():
            self.stop.wait(o.poll_interval)
            client.noop()
            return
        client.idle()
        try:
            deadline = time.monotonic() + o.idle_timeout
            while not self.stop.is_set() and time.monotonic() < deadline:
                t0 = time.monotonic()
                resps = client.idle_check(timeout=1)
                for resp in resps:
                    if resp and resp[0] == b"BYE":
                        raise ImapConnectionLost(f"server said BYE: {_text(resp[-1])}")
                if any(len(resp) > 1 and resp[1] in (b"EXISTS", b"RECENT") for resp in resps):
                    break
                if not resps and time.monotonic() - t0 < 0.5:
                    # readable socket but no line: idle_check swallows EOF this way
                    raise ImapConnectionLost("connection closed by the server")
        except BaseException:
            try:
                client.idle_done()
            except Exception:
                pass
            raise
        client.idle_done()


def _move(client, uids: list[int], folder: str) -> None:
    """UID MOVE (RFC 6851), else UID COPY + \\Deleted + UID EXPUNGE (RFC 4315)."""
    caps = client.capabilities()
    if b"MOVE" in caps:
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, ["\\Deleted"], silent=True)
    if b"UIDPLUS" in caps:
        client.uid_expunge(uids)
    else:
        log.warning("server has neither MOVE nor UIDPLUS: %d copied messages are left flagged "
                    "\\Deleted in %s and not expunged", len(uids), client)


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
        SourceError: the state file is locked or the output file cannot be reconciled.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"format must be jsonl or csv, not {fmt!r}")
    if parse is None:
        from . import parse_item
        popts = parse_options or Options.from_env()

        def parse(source, data):
            if len(data) > popts.max_message_bytes:
                data = SourceError(f"{source}: message of {len(data)} bytes is larger than "
                                   f"the {popts.max_message_bytes}-byte limit: not loaded")
            return parse_item(source, data, popts)
    stop = stop or threading.Event()
    o = options
    state = StateDB(o.state_path or default_state_path(), readonly=o.dry_run)
    prefix = f"imap://{quote(o.user, safe='')}@"
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
    backoff, first = 1.0, True
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
                r.pass_once(client)
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
