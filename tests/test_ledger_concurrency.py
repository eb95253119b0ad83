"""Several writer processes, and a writer killed mid-import (SIGKILL)."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsnparse.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "tests" / "ledger_writer.py"


def writer(db, prefix, n, batch, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(WRITER), str(db), prefix, str(n), str(batch),
                             *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def consistent(db):
    """The stored decisions equal a full recomputation from the events."""
    with Ledger(db) as led:
        before = sorted(led.suppressions(), key=lambda d: d.address)
        led.rebuild()
        after = sorted(led.suppressions(), key=lambda d: d.address)
    return before == after


def test_two_processes_10000_events_each(tmp_path):
    db = tmp_path / "shared.sqlite3"
    # one writes event by event (a watcher), the other in batches (an import)
    procs = [writer(db, "A", 10_000, 1), writer(db, "B", 10_000, 100)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == "10000"
    with Ledger(db) as led:
        assert led.count_events() == 20_000
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(DISTINCT message_id) FROM events").fetchone()[0] == 20_000
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    assert consistent(db)


def test_rerun_after_sigkill_loses_and_doubles_nothing(tmp_path):
    db, progress = tmp_path / "k.sqlite3", tmp_path / "progress"
    n = 6_000
    p = writer(db, "K", n, 1, "--progress", progress)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = progress.read_text().split() if progress.exists() else []
        if len(lines) >= 1500:
            break
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    committed = int(progress.read_text().split()[-1])
    with Ledger(db) as led:
        after_kill = led.count_events()
    assert committed <= after_kill < n            # nothing committed was lost
    rerun = writer(db, "K", n, 1)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert int(out) == n - after_kill             # only the missing ones were added
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), count(DISTINCT event_key) FROM events"
                       ).fetchone() == (n, n)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert consistent(db)


def test_waits_for_a_held_write_lock_then_fails_cleanly(tmp_path):
    from dsnparse.ledger import LedgerError
    db = tmp_path / "lock.sqlite3"
    Ledger(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Ledger(db, timeout=0.3) as led:
            with pytest.raises(LedgerError, match="locked"):
                led.record_event("a@example.com", "bounce", bounce_type="hard", code="511")
            holder.execute("ROLLBACK")
            assert led.record_event("a@example.com", "bounce", bounce_type="hard",
                                    code="511")
            assert led.count_events() == 1
    finally:
        holder.close()
