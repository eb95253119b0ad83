"""Process a bounce mailbox over POP3 (RFC 1939): a verdict for every message, each exactly once.

Entry point: :func:`run` with a :class:`Pop3Options`; it returns a :class:`Pop3Summary`.
The command line front end is :mod:`dsnparse.pop3_cli`.  Records are made exactly as
``dsnparse parse`` makes them (:func:`dsnparse.sources.parse_item`); only ``source`` differs.
The output file, its checkpoints and ownership, and the state file's locking are those of
the IMAP source (:mod:`dsnparse.sources.imap`): see there.

Flow of one run
---------------
1. Connect: POP3S (implicit TLS, port 995) with certificate verification by default
   (``ca_file`` for a private CA), or POP3 upgraded with STLS (RFC 2595 §4), or plain POP3
   only when asked for explicitly.  USER/PASS (RFC 1939 §7).
2. UIDL (RFC 1939 §7): the unique-id of every message.  A server without UIDL is refused
   (a message could not be told from another across sessions).  Unique-ids already in the
   state file are not fetched again; ``limit`` counts only messages still to do.  LIST
   gives the sizes: a message larger than the parser's limit is recorded as an ``error``
   without being downloaded.
3. RETR each message of a batch (all RETR commands of the batch at once when the server
   announces PIPELINING, RFC 2449), parse it, render its records.  Every record's ``source``
   is ``pop://user@host[:port]/;UIDL=<unique-id>`` (RFC 2384's POP URL with the unique-id
   appended: POP3 has no standard per-message URL).
4. Make the batch durable: write + fsync the output, call ``on_stored`` for each message,
   then commit the batch to the state file (one SQLite transaction).
5. Only then, with ``delete``, DELE the batch's bounces (and, with ``delete_other``, its
   other messages).  A message whose parsing crashed is never deleted.  DELE only marks:
   the server removes the messages when the session ends with QUIT (RFC 1939 §6, UPDATE
   state); the state file records the deletion after QUIT succeeded.  Messages stored by
   an earlier run and not deleted yet are DELE'd at the start of the next ``delete`` run.

A run killed anywhere leaves no message lost and none repeated: records written but not
committed are truncated away by the next run (the output checkpoint); messages committed
but not deleted are deleted by the next ``delete`` run without being parsed again; a
session that ends without QUIT deletes nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import poplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import quote

from ..errors import SourceError
from ..model import Report
from ..options import Options
from .imap.options import BOUNCE_KINDS, LocalIOError, Summary
from .imap.outfile import _Output
from .imap.process import _KillHook, _message_id
from .imap.state import StateDB

log = logging.getLogger("dsnparse.pop3")

SECURITY = ("ssl", "starttls", "plain")
KILL_POINTS = ("parsed", "written", "committed", "deleted", "quit")
MAX_LINE = 1 << 20
"""Longest line accepted from the server (poplib's own limit, 2048 octets, would refuse a
message with a long line, which broken mailers do send)."""

_POP3_SCHEMA = """
CREATE TABLE IF NOT EXISTS pop3_messages(
    server TEXT NOT NULL, user TEXT NOT NULL, uidl TEXT NOT NULL,
    message_id TEXT, sha256 TEXT NOT NULL,
    disposition TEXT NOT NULL,          -- bounce | other | error
    deleted INTEGER NOT NULL DEFAULT 0, -- 1 once the server confirmed QUIT after DELE
    stored_at REAL NOT NULL,
    PRIMARY KEY(server, user, uidl));
"""


class Pop3LoginError(SourceError):
    """Connecting, TLS, login or UIDL failed before anything was changed (CLI exit 2)."""


@dataclass(frozen=True)
class Pop3Options:
    """Everything :func:`run` needs.  ``port`` defaults to 995 (``security="ssl"``) or 110.

    ``delete``: delete stored bounces from the server; ``delete_other``: also delete stored
    messages that are not bounces.  ``limit``: at most this many messages are processed.
    ``state_path=None`` means :func:`default_state_path`.  ``timeout`` is in seconds.
    ``pipelining``: send a batch's RETR commands at once when the server announces
    PIPELINING (RFC 2449 §6.6); false: one command at a time.
    """

    host: str
    user: str
    password: str = field(repr=False, default="")
    port: Optional[int] = None
    security: str = "ssl"
    ca_file: Optional[str] = None
    limit: Optional[int] = None
    batch_size: int = 50
    delete: bool = False
    delete_other: bool = False
    dry_run: bool = False
    state_path: Optional[str] = None
    timeout: float = 60.0
    pipelining: bool = True

    def __post_init__(self):
        if self.security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}, not {self.security!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")
        if self.delete_other and not self.delete:
            raise ValueError("delete_other needs delete")
        if self.dry_run and self.delete:
            raise ValueError("a dry run deletes nothing: drop delete or dry_run")

    @property
    def real_port(self) -> int:
        return self.port or (995 if self.security == "ssl" else 110)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.real_port}"

    def source_prefix(self) -> str:
        """``pop://user@host/;UIDL=``: what every record's source starts with."""
        default = 995 if self.security == "ssl" else 110
        hostport = self.host if self.real_port == default else self.server
        return f"pop://{quote(self.user, safe='')}@{hostport}/;UIDL="

    def source(self, uidl: str) -> str:
        return self.source_prefix() + quote(uidl, safe="")


@dataclass
class Pop3Summary(Summary):
    """Counts of one run; ``deleted`` counts messages the server confirmed deleting."""

    deleted: int = 0
    vanished: int = 0

    def line(self) -> str:
        return (f"read {self.read}, bounces {self.bounces} (hard {self.hard}, soft {self.soft}), "
                f"other {self.other}, deleted {self.deleted}, skipped {self.skipped}, "
                f"errors {self.errors}" + (f", vanished {self.vanished}" if self.vanished else "")
                + ("" if self.complete else ", incomplete")
                + (f" (local I/O error: {self.io_error})" if self.io_error else ""))


def default_state_path() -> str:
    """``$XDG_DATA_HOME/dsnparse/pop3-state.sqlite3`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "dsnparse", "pop3-state.sqlite3")


class Pop3State(StateDB):
    """The IMAP source's state file (lock, output checkpoints) plus ``pop3_messages``."""

    COMMAND = "pop3"

    def __init__(self, path: str, readonly: bool = False):
        super().__init__(path, readonly)
        try:
            if not readonly or not os.path.exists(path):
                self.db.executescript(_POP3_SCHEMA)
        except Exception as e:
            self.close()
            raise SourceError(f"cannot open the state file {path}: {e}") from e

    def known(self, o: Pop3Options) -> dict[str, tuple[str, int]]:
        """unique-id → (disposition, deleted) of the messages stored for this mailbox."""
        import sqlite3
        try:
            rows = self.db.execute("SELECT uidl, disposition, deleted FROM pop3_messages "
                                   "WHERE server=? AND user=?", (o.server, o.user))
            return {u: (d, x) for u, d, x in rows}
        except sqlite3.OperationalError:        # a read-only state file without the table
            return {}

    def commit(self, o: Pop3Options, done: list["_Done"], checkpoint) -> None:
        now = time.time()
        with self._tx():
            self.db.executemany(
                "INSERT INTO pop3_messages(server,user,uidl,message_id,sha256,disposition,"
                "deleted,stored_at) VALUES(?,?,?,?,?,?,0,?)",
                [(o.server, o.user, d.uidl, d.message_id, d.sha256, d.disposition, now)
                 for d in done])
            if checkpoint:
                self.db.execute("INSERT OR REPLACE INTO outputs(path,size) VALUES(?,?)",
                                checkpoint)

    def mark_deleted(self, o: Pop3Options, uidls) -> None:
        with self._tx():
            self.db.executemany("UPDATE pop3_messages SET deleted=1 WHERE server=? AND user=?"
                                " AND uidl=?", [(o.server, o.user, u) for u in uidls])


@dataclass
class _Done:
    uidl: str
    message_id: Optional[str]
    sha256: str
    disposition: str
    report: Optional[Report] = None
    source: str = ""


# ----------------------------------------------------------------------------- connection
class _LongLines:
    def _getline(self):
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise poplib.error_proto("line too long")
        if self._debugging > 1:
            print("*get*", repr(line))
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


def _err(e: BaseException) -> str:
    a = e.args[0] if e.args else e
    return a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)


def connect(o: Pop3Options) -> poplib.POP3:
    """A logged-in POP3 session (TRANSACTION state); raise :class:`Pop3LoginError`."""
    ctx = None
    if o.security != "plain":
        try:
            ctx = ssl.create_default_context(cafile=o.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise Pop3LoginError(f"cannot read CA file {o.ca_file}: {e}") from e
    untrusted = (f"TLS certificate of {o.server} not trusted: {{}} (use --ca-file for a "
                 "private CA)")
    try:
        if o.security == "ssl":
            client = _POP3_SSL(o.host, o.real_port, timeout=o.timeout, context=ctx)
        else:
            client = _POP3(o.host, o.real_port, timeout=o.timeout)
    except ssl.SSLCertVerificationError as e:
        raise Pop3LoginError(untrusted.format(e.verify_message)) from e
    except ssl.SSLError as e:
        raise Pop3LoginError(f"TLS with {o.server} failed: {e}") from e
    except (OSError, poplib.error_proto) as e:
        raise Pop3LoginError(f"cannot connect to {o.security.upper()} {o.server}: {e}") from e
    try:
        if o.security == "starttls":
            try:
                client.stls(ctx)
            except ssl.SSLCertVerificationError as e:
                raise Pop3LoginError(untrusted.format(e.verify_message)) from e
            except (OSError, ssl.SSLError, poplib.error_proto) as e:
                raise Pop3LoginError(f"STLS with {o.server} failed: {_err(e)}") from e
        try:
            client.user(o.user)
            client.pass_(o.password)
        except poplib.error_proto as e:
            raise Pop3LoginError(f"login as {o.user} on {o.server} failed: {_err(e)}") from e
        except OSError as e:
            raise Pop3LoginError(f"login on {o.server} failed: {e}") from e
    except BaseException:
        _close(client)
        raise
    return client


def _close(client) -> None:
    """End a session WITHOUT QUIT: nothing marked for deletion is deleted (RFC 1939 §6)."""
    try:
        client.close()
    except Exception:
        pass


def _listing(client, o: Pop3Options) -> list[tuple[int, str, Optional[int]]]:
    """(message number, unique-id, size in octets) of every message, by UIDL and LIST."""
    try:
        _, lines, _ = client.uidl()
    except poplib.error_proto as e:
        if not (e.args and isinstance(e.args[0], bytes)):
            raise                               # not the server's answer (EOF, long line)
        raise Pop3LoginError(f"{o.server} does not answer UIDL ({_err(e)}): without unique-ids "
                             "(RFC 1939 §7) messages cannot be tracked across sessions") from e
    sizes: dict[int, int] = {}
    _, list_lines, _ = client.list()
    for line in list_lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            sizes[int(parts[0])] = int(parts[1])
    out, seen = [], set()
    for line in lines:
        parts = line.decode("ascii", "replace").split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SourceError(f"{o.server}: malformed UIDL line {line!r}")
        num, uid = int(parts[0]), parts[1]
        if uid in seen:
            log.warning("%s: message %d repeats the unique-id %s of another message: left "
                        "alone (it cannot be told apart)", o.server, num, uid)
            continue
        seen.add(uid)
        out.append((num, uid, sizes.get(num)))
    return out


# ----------------------------------------------------------------------------- the run
def run(options: Pop3Options, output: Optional[str] = None, fmt: str = "jsonl", *,
        on_stored: Optional[Callable[[Report, str], None]] = None,
        progress: Optional[Callable[[int, int], None]] = None,
        stop: Optional[threading.Event] = None,
        parse: Optional[Callable[[str, object], Report]] = None,
        parse_options: Optional[Options] = None) -> Pop3Summary:
    """Process the maildrop once; return a :class:`Pop3Summary` (``exit_status`` 0 or 1).

    Args:
        options: connection, deletion, limit, state path.
        output: path of the output file (appended to; dedicated to this state file), or
            ``None``/``"-"`` for stdout.
        fmt: ``"jsonl"`` or ``"csv"``.
        on_stored: called as ``on_stored(report, source)`` once the message's record is
            durably written and before its state is committed (the ``--db`` ledger hook;
            recording is idempotent, so a crash in between adds nothing the second time).
        progress: called as ``progress(done, total)``.
        stop: set it to finish the current message, store its batch, delete what may be
            deleted, QUIT and return.
        parse: ``parse(source, bytes | SourceError) -> Report``; by default
            :func:`dsnparse.sources.parse_item`, so records equal those of ``dsnparse parse``.

    Raises:
        Pop3LoginError: connecting, TLS, login or UIDL failed (nothing was changed).
        SourceError: the state file is locked or cannot be opened, the output file cannot
            be opened, belongs to another state file, or cannot be reconciled.

    A lost connection or a local I/O error during the run is not raised: the run stops
    with ``summary.complete`` false (exit status 1) and what was stored stays stored.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"format must be jsonl or csv, not {fmt!r}")
    popts = parse_options or Options.from_env()
    if parse is None:
        from . import parse_item

        def parse(source, data):
            return parse_item(source, data, popts)
    o = options
    stop = stop or threading.Event()
    summary = Pop3Summary()
    client = connect(o)             # first: a refused login leaves no state or output file
    try:
        state = Pop3State(o.state_path or default_state_path(), readonly=o.dry_run)
        out = None
        try:
            out = _Output(output, fmt, state, o.source_prefix(), o.dry_run)
            _Pop3Run(o, client, out, state, summary, on_stored, progress, stop, parse,
                     popts.max_message_bytes).run()
        finally:
            if out:
                out.close()
            state.close()
    finally:
        _close(client)                          # after QUIT this is a no-op
    return summary


class _Pop3Run:
    def __init__(self, o, client, out, state, summary, on_stored, progress, stop, parse,
                 max_bytes):
        self.o, self.client, self.out, self.state = o, client, out, state
        self.summary, self.on_stored, self.progress = summary, on_stored, progress
        self.stop, self.parse, self.max_bytes = stop, parse, max_bytes
        self.kill = _KillHook("DSNPARSE_POP3_TEST_KILL", KILL_POINTS)
        self.count = 0
        self.marked: list[str] = []             # DELE sent in this session, QUIT pending
        self.pipelining = False

    def run(self) -> None:
        o, s = self.o, self.summary
        try:
            self.pipelining = o.pipelining and "PIPELINING" in self.client.capa()
        except poplib.error_proto as e:         # no CAPA (RFC 2449): one RETR at a time
            if not (e.args and isinstance(e.args[0], bytes)):
                raise
            self.pipelining = False
        listing = _listing(self.client, o)
        known = self.state.known(o)
        todo = [(n, u, z) for n, u, z in listing if u not in known]
        s.skipped += len(listing) - len(todo)
        if o.limit is not None:
            todo = todo[:o.limit]
        if o.delete:
            leftover = [(n, u) for n, u, _ in listing if u in known and not known[u][1]
                        and self._deletable(known[u][0])]
            if leftover:
                log.info("deleting %d messages stored by an earlier run", len(leftover))
                self.dele(leftover)
        net = (OSError, EOFError, poplib.error_proto)
        total, done_n = len(todo), 0
        if self.progress:
            self.progress(0, total)
        try:
            for i in range(0, total, o.batch_size):
                if self.stop.is_set():
                    break
                batch: list[tuple[int, _Done]] = []
                try:
                    for num, uidl, size, fetched in self.fetch(todo[i:i + o.batch_size]):
                        if self.stop.is_set():
                            continue            # pipelined answers are read all the same
                        d = self.handle(num, uidl, size, fetched)
                        done_n += 1
                        if d is not None:
                            batch.append((num, d))
                        if self.progress:
                            self.progress(done_n, total)
                except net as e:
                    s.complete = False
                    log.error("connection to %s lost: %s; %d messages of the batch are "
                              "stored, a rerun does the rest", o.server, e, len(batch))
                    self.store([d for _, d in batch])   # what was read is kept
                    return                      # no QUIT is possible: nothing is deleted
                self.store([d for _, d in batch])
                if o.delete:
                    self.dele([(n, d.uidl) for n, d in batch if self._deletable(d.disposition)])
            if self.stop.is_set() and done_n < total:
                s.complete = False
        except LocalIOError as e:
            s.complete, s.io_error = False, str(e)
            log.error("%s; stopping: the messages of that batch were neither stored nor "
                      "deleted, a rerun finishes the work", e)
        except net as e:
            s.complete = False
            log.error("connection to %s lost: %s; a rerun finishes the work", o.server, e)
            return
        self.quit()

    def _deletable(self, disposition: str) -> bool:
        return disposition == "bounce" or (disposition == "other" and self.o.delete_other)

    def fetch(self, chunk):
        """Yield (number, unique-id, size, bytes | None | error_proto) for each message of
        ``chunk``: ``None`` when it is too large to download, the error when the server
        refused RETR.  With PIPELINING (RFC 2449 §6.6) all RETR commands of the chunk are
        sent at once and the answers read in order (one round trip a batch, not one a
        message); the generator must then be run to its end."""
        big = {n for n, _, z in chunk if z is not None and z > self.max_bytes}
        if self.pipelining:
            want = [n for n, _, _ in chunk if n not in big]
            if want:
                self.client.sock.sendall(b"".join(b"RETR %d\r\n" % n for n in want))
        for num, uidl, size in chunk:
            if num in big:
                yield num, uidl, size, None
                continue
            try:
                if self.pipelining:
                    _, lines, _ = self.client._getlongresp()
                else:
                    _, lines, _ = self.client.retr(num)
            except poplib.error_proto as e:
                said = e.args[0] if e.args else b""
                if not (isinstance(said, bytes) and said.startswith(b"-ERR")):
                    raise                       # not the server's answer: EOF, long line
                yield num, uidl, size, e
                continue
            yield num, uidl, size, b"\r\n".join(lines) + b"\r\n"

    def handle(self, num: int, uidl: str, size: Optional[int], fetched) -> Optional[_Done]:
        o, s = self.o, self.summary
        source = o.source(uidl)
        if fetched is None:
            raw = None
            data: object = SourceError(f"{source}: message of {size} bytes is larger than the "
                                       f"{self.max_bytes}-byte limit: not downloaded")
        elif isinstance(fetched, poplib.error_proto):
            log.warning("%s: RETR %d refused (%s): not stored; a rerun tries again if "
                        "the server still lists it", source, num, _err(fetched))
            s.vanished += 1
            s.complete = False
            return None
        else:
            raw = fetched
            data = raw
            if len(raw) > self.max_bytes:
                data = SourceError(f"{source}: message of {len(raw)} bytes is larger than "
                                   f"the {self.max_bytes}-byte limit: not loaded")
        s.read += 1
        crashed = False
        try:
            report = self.parse(source, data)
        except Exception as e:                  # a parser bug: record it, keep the message
            log.exception("parsing %s crashed", source)
            report = Report(kind="error", error=f"parser crashed: {type(e).__name__}: {e}")
            crashed = True
            s.errors += 1
        self.out.write(report.records(source))
        if report.kind in BOUNCE_KINDS:
            disposition = "bounce"
            s.bounces += 1
            if any(v.bounce_type == "hard" for v in report.verdicts):
                s.hard += 1
            else:
                s.soft += 1
        elif crashed:
            disposition = "error"
        else:
            disposition = "other"
            s.other += 1
        self.count += 1
        self.kill("parsed", self.count)
        return _Done(uidl, _message_id(raw) if raw else None,
                     hashlib.sha256(raw or b"").hexdigest(), disposition, report, source)

    def store(self, batch: list[_Done]) -> None:
        """fsync the output, call on_stored, commit the state (LocalIOError: nothing of the
        batch is stored, the output is back at its last commit)."""
        self.out.flush()
        self.kill("written", self.count)
        if self.on_stored:
            for d in batch:
                self.on_stored(d.report, d.source)
        if not self.o.dry_run and batch:
            checkpoint = self.out.checkpoint()
            try:
                self.state.commit(self.o, batch, checkpoint)
            except LocalIOError as e:
                if self.out.fd is None:
                    raise
                self.out.rollback(e)
            if checkpoint:
                self.out.committed = checkpoint[1]
        self.kill("committed", self.count)

    def dele(self, items: list[tuple[int, str]]) -> None:
        for num, uidl in items:
            self.client.dele(num)
            self.marked.append(uidl)
        if items:
            self.kill("deleted", self.count)

    def quit(self) -> None:
        """QUIT: the server deletes the messages marked with DELE (UPDATE state); record it."""
        try:
            self.client.quit()
        except (OSError, EOFError, poplib.error_proto) as e:
            if self.marked:
                log.error("QUIT failed (%s): the server may not have deleted the %d messages "
                          "marked for deletion; the next --delete run deletes them", e,
                          len(self.marked))
                self.summary.complete = False
            return
        self.kill("quit", self.count)
        if self.marked:
            try:
                self.state.mark_deleted(self.o, self.marked)
            except LocalIOError as e:       # harmless: gone from the server, UIDL won't list it
                log.warning("%s (the deletions are done on the server)", e)
            self.summary.deleted += len(self.marked)
