"""One pass over the folder: fetch, parse, store, file (see :mod:`dsnparse.sources.imap`)."""
from __future__ import annotations

import email.parser
import email.policy
import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from ...model import Report
from .client import ImapConnectionLost, _has_move, _move, _text
from .options import BOUNCE_KINDS, KILL_POINTS, ImapOptions, LocalIOError, Summary, log
from .outfile import _Output
from .state import StateDB


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
    """The crash-test hook: ``ENV=N:POINT`` makes the process SIGKILL itself at ``POINT``
    once ``N`` messages have been handled (``DSNPARSE_IMAP_TEST_KILL`` for ``imap``,
    ``DSNPARSE_POP3_TEST_KILL`` for ``pop3``)."""

    def __init__(self, env: str = "DSNPARSE_IMAP_TEST_KILL", points=KILL_POINTS):
        spec = os.environ.get(env, "")
        self.env, self.n, self.point = env, 0, None
        if spec:
            n, _, point = spec.partition(":")
            self.n, self.point = int(n), point or "parsed"
            if self.point not in points:
                raise ValueError(f"{env}: point must be one of {points}")

    def __call__(self, point: str, count: int):
        if self.point == point and count >= self.n:
            log.debug("%s: SIGKILL at %s after %d messages", self.env, point, count)
            os.kill(os.getpid(), signal.SIGKILL)


class _Run:
    def __init__(self, o: ImapOptions, out: _Output, state: StateDB, summary: Summary,
                 on_stored, progress, stop: threading.Event, parse):
        self.o, self.out, self.state, self.summary = o, out, state, summary
        self.on_stored, self.progress, self.stop, self.parse = on_stored, progress, stop, parse
        self.kill = _KillHook()
        self.count = 0          # messages handled in this process, for the kill hook
        self.folders_ready = False

    # one pass over the folder ----------------------------------------------------------
    def pass_once(self, client) -> None:
        o = self.o
        # records of a batch cut short by an error (a lost connection) were never committed:
        # drop them, their messages are handled again below
        self.out.discard()
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
        # after a UIDVALIDITY change, match every message not known by UID against the old
        # rows until one pass has seen the whole folder (a run cut short by --limit, a kill
        # or a dropped connection must not make the rest be parsed and written again)
        rematch = self.state.needs_rematch(o, uidvalidity)
        if rematch:
            (log.info if known else log.warning)(
                "%s: UIDVALIDITY is now %d; matching messages on Message-ID and content hash",
                o.folder, uidvalidity)
        whole = not criteria
        unfiled = [u for u in uids if u in known and not known[u][1]]
        todo = [u for u in uids if u not in known]
        self.summary.skipped += len(uids) - len(unfiled) - len(todo)
        if o.limit is not None and len(todo) > o.limit:
            todo, whole = todo[:o.limit], False
        if unfiled and not o.dry_run:
            log.info("filing %d messages stored by an earlier run", len(unfiled))
            recheck = (None if _has_move(client) else
                       self.state.digests(o, uidvalidity, unfiled))
            self.file(client, uidvalidity, [(u, known[u][0]) for u in unfiled], recheck)
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
                self.file(client, uidvalidity, [(d.uid, d.disposition) for d in batch],
                          {d.uid: (d.message_id, d.sha256) for d in batch
                           if d.alias_of is not None})
                self.kill("filed", self.count)
        if self.stop.is_set() and done_n < total:
            self.summary.complete = False
        elif rematch and whole and not o.dry_run:
            self.state.mark_reconciled(o, uidvalidity)

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
                self.count += 1
                self.kill("parsed", self.count)
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
        self.out.write(report.records(source))
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
        self.out.flush()                        # LocalIOError: truncated back, nothing filed
        self.kill("written", self.count)
        if self.on_stored:
            for d in batch:
                if d.report is not None:
                    self.on_stored(d.report, d.source)
        if not self.o.dry_run and batch:
            checkpoint = self.out.checkpoint()
            try:
                self.state.commit_batch(self.o, uidvalidity, batch, checkpoint)
            except LocalIOError as e:           # the state file cannot be written
                if self.out.fd is None:
                    raise
                self.out.rollback(e)
            if checkpoint:
                self.out.committed = checkpoint[1]
        self.kill("committed", self.count)

    def file(self, client, uidvalidity, items: list[tuple[int, str]],
             recheck: Optional[dict[int, tuple[Optional[str], str]]] = None) -> None:
        """Move or flag stored messages.  ``recheck`` maps the UIDs whose filing may have
        begun before (an earlier run, an old UIDVALIDITY) to (Message-ID, SHA-256): without
        MOVE, a copy already in the target folder is not made again."""
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
                _move(client, uids, target, o.folder, readonly=o.dry_run,
                      recheck={u: recheck[u] for u in uids if u in recheck} if recheck else None,
                      on_copied=lambda: self.kill("copied", self.count))
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
