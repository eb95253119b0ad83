"""Benchmark of the bounce ledger: build a large ledger, then ``check`` and ``export``.

Usage (from a checkout)::

    PYTHONPATH=. python benchmarks/bench_ledger.py [--events 1000000] [--addresses 200000]
        [--checks 1000] [--db FILE] [--keep] [--seed 1]

It builds a ledger of ``--events`` bounce events over ``--addresses`` recipients through the
public recording API (``Ledger.record_records``, 10,000 records per transaction; about 65 %
soft bounces, 15 % hard, 3 % code 911, 10 % delays, 5 % deliveries, 2 % complaints, spread
over one year), then times:

* ``check`` of ``--checks`` addresses (half known to the ledger, half not) in one call,
  and the same addresses asked one by one with ``is_suppressed``;
* ``export`` of every suppression as CSV and as JSON Lines (to a temporary file);
* opening the ledger (a fresh process would pay this before each ``check``).

Prints the times in seconds; nothing is asserted.  The ledger is deleted afterwards unless
``--keep`` (or ``--db`` naming an existing ledger of the right size, which is then reused).

Writes per second, SQLite against PostgreSQL (issue 17)::

    PYTHONPATH=. python benchmarks/bench_ledger.py --writes 1000 [--writers 1,4]
        [--batches 1,100] [--pg postgresql://user@host/maintenance_db]

``W`` writer processes (``--writers``) each record ``--writes`` bounces through
``Ledger.record_records``, ``B`` records per transaction (``--batches``: 1 is a watcher or
an MTA pipe recording message by message, 100 an import); all writers share 1,000
recipients, as tests/ledger_writer.py does, so they contend for the same decision rows.
Each run gets a fresh ledger: a temporary SQLite file, and a new database on the PostgreSQL
server (``--pg``: a URL whose user may ``CREATE DATABASE``; the database is dropped
afterwards; without ``--pg`` a throw-away cluster is started with tests/pg_server.py).
Prints events stored per second (all writers together, wall clock from a common start
signal, given once every writer has opened the ledger, to the last commit).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsnparse.ledger import Ledger  # noqa: E402

KINDS = (  # (weight, kind, action, code, bounce_type, status, reason)
    (65, "bounce", "failed", "422", "soft", "4.2.2", "mailbox_full"),
    (15, "bounce", "failed", "511", "hard", "5.1.1", "user_unknown"),
    (3, "bounce", "failed", "911", "hard", None, None),
    (10, "delay", "delayed", "442", "soft", "4.4.2", "timeout"),
    (5, "delivered", "delivered", None, None, "2.0.0", None),
    (2, "complaint", None, None, None, None, None),
)


def build(led: Ledger, events: int, addresses: int, rng: random.Random) -> float:
    weights = [k[0] for k in KINDS]
    t0 = time.perf_counter()
    start = 1_700_000_000
    batch = []
    for i in range(events):
        _w, kind, action, code, btype, status, reason = rng.choices(KINDS, weights)[0]
        a = rng.randrange(addresses)
        batch.append({
            "source": f"bench/{i}", "kind": kind, "final_recipient": f"user{a}@d{a % 97}.test",
            "action": action, "code": code, "bounce_type": btype, "status": status,
            "reason": reason, "message_id": f"<b{i}@mx.bench>",
            "original_message_id": f"<o{rng.randrange(events)}@sender.bench>",
            "date": start + rng.randrange(365 * 86400),
        })
        if len(batch) == 10_000:
            led.record_records(batch)
            batch = []
            if (i + 1) % 100_000 == 0:
                print(f"  {i + 1:>9,} events  {time.perf_counter() - t0:7.1f} s", flush=True)
    if batch:
        led.record_records(batch)
    return time.perf_counter() - t0


def _write_records(db: str, prefix: str, n: int, batch: int, ready, go, results) -> None:
    """One writer process: ``n`` bounce records, ``batch`` per transaction; puts the number
    of new events and the seconds from ``go`` to the last commit on ``results``."""
    new = 0
    recs = [{
        "source": f"{prefix}/{i}", "kind": "bounce", "final_recipient": f"u{i % 1000}@example.com",
        "action": "failed", "status": "5.1.1" if i % 4 == 0 else "4.2.2",
        "code": "511" if i % 4 == 0 else "422",
        "bounce_type": "hard" if i % 4 == 0 else "soft",
        "reason": "user_unknown" if i % 4 == 0 else "mailbox_full",
        "message_id": f"<{prefix}-{i}@bounces.bench>",
        "original_message_id": f"<orig-{prefix}-{i}@sender.bench>",
        "date": 1_700_000_000 + i * 600} for i in range(n)]
    with Ledger(db, timeout=300) as led:
        ready.release()
        go.wait()
        t = time.perf_counter()
        for start in range(0, n, batch):
            new += led.record_records(recs[start:start + batch])
        results.put((new, time.perf_counter() - t))


def _timed_writers(db: str, writers: int, n: int, batch: int) -> float:
    """Seconds from the start signal until the last writer committed (the writers have
    started and opened the ledger before: process start-up is not counted)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    Ledger(db).close()          # schema (SQLite) and policy stored before the clock starts
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_write_records,
                         args=(db, f"w{k}", n, batch, ready, go, results))
             for k in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    t = time.perf_counter()
    go.set()
    got = [results.get() for _ in procs]
    secs = time.perf_counter() - t
    for p in procs:
        p.join()
    assert sum(g[0] for g in got) == writers * n, (got, writers * n)
    with Ledger(db) as led:
        assert led.count_events() == writers * n
    return secs


def writes(a) -> int:
    """``--writes``: events per second, SQLite vs PostgreSQL, 1 and 4 writers."""
    import uuid

    from dsnparse.ledger import migrate

    server = None
    admin = a.pg
    if admin is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pg_server import PgServer
        server = PgServer.start()
        admin = server.url()
    import psycopg
    writers = [int(x) for x in a.writers.split(",")]
    batches = [int(x) for x in a.batches.split(",")]
    print(f"python {sys.version.split()[0]}, sqlite {__import__('sqlite3').sqlite_version}, "
          f"psycopg {psycopg.__version__}, {os.cpu_count()} CPU(s); {a.writes:,} records "
          f"per writer, 1,000 shared recipients")
    print(f"{'backend':<11} {'writers':>7} {'batch':>5} {'events':>7} {'seconds':>8} "
          f"{'events/s':>9}")
    try:
        for batch in batches:
            for w in writers:
                for backend in ("sqlite", "postgresql"):
                    tmp = tempfile.mkdtemp(prefix="bench-writes-")
                    dbname = None
                    if backend == "sqlite":
                        db = str(Path(tmp) / "w.sqlite3")
                    else:
                        dbname = f"bench_{uuid.uuid4().hex[:10]}"
                        with psycopg.connect(admin, autocommit=True) as c:
                            c.execute(f'CREATE DATABASE "{dbname}"')
                        db = _as_url(admin, dbname)
                        migrate(db)
                    try:
                        secs = _timed_writers(db, w, a.writes, batch)
                    finally:
                        for f in Path(tmp).iterdir():
                            f.unlink()
                        os.rmdir(tmp)
                        if dbname:
                            with psycopg.connect(admin, autocommit=True) as c:
                                c.execute(f'DROP DATABASE "{dbname}"')
                    total = w * a.writes
                    print(f"{backend:<11} {w:>7} {batch:>5} {total:>7,} {secs:>8.2f} "
                          f"{total / secs:>9,.0f}", flush=True)
    finally:
        if server is not None:
            server.stop()
    return 0


def _as_url(url: str, dbname: str) -> str:
    """``url`` with its database name replaced by ``dbname``."""
    import re
    m = re.match(r"^([a-z]+://[^/?#]*)(/[^?#]*)?(.*)$", url)
    return f"{m.group(1)}/{dbname}{m.group(3)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--addresses", type=int, default=200_000)
    ap.add_argument("--checks", type=int, default=1_000)
    ap.add_argument("--db", help="ledger file (default: a temporary file)")
    ap.add_argument("--keep", action="store_true", help="keep the ledger file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--writes", type=int, metavar="N",
                    help="instead: writes per second, SQLite vs PostgreSQL, N records per "
                         "writer")
    ap.add_argument("--writers", default="1,4", help="with --writes: writer processes "
                                                     "(comma-separated, default 1,4)")
    ap.add_argument("--batches", default="1,100", help="with --writes: records per "
                                                       "transaction (default 1,100)")
    ap.add_argument("--pg", metavar="URL", help="with --writes: PostgreSQL server URL whose "
                    "user may CREATE DATABASE (default: start a throw-away cluster)")
    a = ap.parse_args(argv)
    if a.writes:
        return writes(a)
    rng = random.Random(a.seed)
    tmpdir = tempfile.mkdtemp(prefix="bench-ledger-")
    db = Path(a.db) if a.db else Path(tmpdir) / "ledger.sqlite3"
    print(f"python {sys.version.split()[0]}, sqlite {__import__('sqlite3').sqlite_version}, "
          f"{os.cpu_count()} CPU(s); ledger {db}")

    t = time.perf_counter()
    led = Ledger(db)
    if led.count_events() < a.events:
        print(f"building {a.events:,} events over {a.addresses:,} addresses...")
        secs = build(led, a.events, a.addresses, rng)
        print(f"build: {secs:.1f} s ({a.events / secs:,.0f} events/s)")
    led.close()
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    t = time.perf_counter()
    led = Ledger(db)
    t_open = time.perf_counter() - t
    n_events = led.count_events()
    n_addr = led.conn.execute("SELECT count(*) FROM addresses").fetchone()[0]
    n_sup = led.conn.execute("SELECT count(*) FROM addresses WHERE suppressed=1").fetchone()[0]
    print(f"ledger: {n_events:,} events, {n_addr:,} addresses, {n_sup:,} suppressed, "
          f"{size / 1e6:.0f} MB")

    known = [f"user{i}@d{i % 97}.test" for i in rng.sample(range(a.addresses), a.checks // 2)]
    unknown = [f"nobody{i}@elsewhere.test" for i in range(a.checks - len(known))]
    addrs = known + unknown
    rng.shuffle(addrs)
    t = time.perf_counter()
    res = led.check(addrs)
    t_check = time.perf_counter() - t
    t = time.perf_counter()
    one = sum(led.is_suppressed(x) for x in addrs)
    t_each = time.perf_counter() - t
    assert one == sum(d.suppressed for d in res)

    times = {}
    for fmt in ("csv", "jsonl"):
        out = Path(tmpdir) / f"export.{fmt}"
        t = time.perf_counter()
        with open(out, "w", encoding="utf-8", newline="") as f:
            n = led.export(f, fmt)
        times[fmt] = (time.perf_counter() - t, n, out.stat().st_size)
    led.close()

    print(f"open ledger:                 {t_open * 1e3:8.1f} ms")
    print(f"check {len(addrs):,} addresses (1 call): {t_check * 1e3:8.1f} ms  "
          f"({one} suppressed)")
    print(f"is_suppressed x {len(addrs):,}:        {t_each * 1e3:8.1f} ms")
    for fmt, (secs, n, sz) in times.items():
        print(f"export {fmt:<5} {n:,} rows:     {secs:8.2f} s  ({sz / 1e6:.1f} MB)")
    if not a.keep and not a.db:
        for p in Path(tmpdir).iterdir():
            p.unlink()
        os.rmdir(tmpdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
