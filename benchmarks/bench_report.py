"""Benchmark of ``dsnparse report`` on a large ledger: build time and file size.

Usage (from a checkout)::

    PYTHONPATH=. python benchmarks/bench_report.py [--events 1000000] [--days 180]
        [--db FILE] [--keep] [--seed 16] [-o report.html]

Builds a ledger of ``--events`` events straight into the ledger schema (``executemany`` in
transactions of 50,000 rows; the recording API's per-address policy decisions would take
minutes and are not what is measured here): recipients over ~60 large receiving domains
(Zipf-like: a few take most of the mail) and a long tail of 5,000 small ones; bounces,
delays and complaints spread over ``--days`` days with campaign bursts; reasons, statuses,
seed-table codes and faults in realistic proportions (as ``rules/reasons.yaml`` and the seed
table pair them), sender-side rejections (reputation, DMARC, spam) at a few providers with a
diagnostic each.  The ``addresses`` table is then filled by SQL the way the default policy
decides (a hard bounce suppresses; three soft ones; a complaint; code 911 tagged
``review_911``).

Then times, three times each (median): the SQL aggregation (``collect``, its scans side by
side on one read-only connection per thread, as ``build_report`` runs them; wall and CPU
seconds of this process, which include the threads' work), the page
(``render``: charts and HTML), and the whole command in a fresh process (``dsnparse report
--db``, interpreter and import included); prints the page's size.  Nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsnparse.ledger import EVENT_COLUMNS, Ledger  # noqa: E402

DAY = 86400.0
BIG = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com",
       "orange.fr", "free.fr", "wanadoo.fr", "laposte.net", "sfr.fr", "gmx.de", "web.de",
       "t-online.de", "yahoo.co.jp", "docomo.ne.jp", "ezweb.ne.jp", "qq.com", "163.com",
       "naver.com", "mail.ru", "yandex.ru", "libero.it", "virgilio.it", "btinternet.com",
       "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "shaw.ca",
       "bigpond.com", "optusnet.com.au", "uol.com.br", "terra.com.br", "seznam.cz",
       "wp.pl", "o2.pl", "onet.pl", "telenet.be", "skynet.be", "ziggo.nl", "kpnmail.nl",
       "bluewin.ch", "sunrise.ch", "protonmail.com", "zoho.com", "mail.com", "fastmail.com",
       "rediffmail.com", "sina.com", "daum.net", "hanmail.net", "rambler.ru", "ukr.net",
       "abv.bg", "freenet.de", "arcor.de", "tiscali.it", "alice.it"]
# (weight, reason, status, code, bounce_type, fault)
BOUNCES = [(38, "user_unknown", "5.1.1", "511", "hard", "recipient"),
           (9, "host_unknown", "5.1.2", "512", "hard", "recipient"),
           (14, "mailbox_full", "5.2.2", "522", "soft", "mailbox"),
           (5, "suspend", "5.2.1", "521", "soft", "mailbox"),
           (4, "filtered", "5.2.0", "520", "soft", "mailbox"),
           (6, "expired", "4.4.7", "447", "soft", "network"),
           (3, "system_error", "4.3.0", "430", "soft", "network"),
           (4, "blocked", "5.7.1", "571", "hard", "sender"),
           (3, "bad_reputation", "5.7.1", "571", "hard", "sender"),
           (3, "auth_failure", "5.7.26", "570", "hard", "sender"),
           (2, "spam_detected", "5.7.1", "571", "hard", "message"),
           (2, "rate_limited", "4.7.0", "470", "soft", "sender"),
           (1, "mesg_too_big", "5.3.4", "534", "hard", "message"),
           (3, "undefined", None, "911", "hard", "unknown"),
           (3, "undefined", "5.0.0", "500", "hard", "unknown")]
DIAG = {"blocked": "550 5.7.1 Service unavailable; client [203.0.113.{n}] blocked using "
                   "Spamhaus SBL",
        "bad_reputation": "421 4.7.0 [TSS04] Messages from 203.0.113.{n} temporarily deferred "
                          "due to unexpected volume or user complaints",
        "auth_failure": "550 5.7.26 Unauthenticated email from example.com is not accepted "
                        "due to domain's DMARC policy",
        "spam_detected": "554 5.7.1 Message rejected as spam by Content Filtering",
        "rate_limited": "451 4.7.0 Rate limited, try again later",
        "mesg_too_big": "552 5.3.4 Message size exceeds fixed limit"}


def build(path: Path, events: int, days: int, seed: int) -> float:
    """Write the synthetic ledger; return the seconds it took."""
    t0 = time.perf_counter()
    rnd = random.Random(seed)
    tail = [f"mail{i}.example{i % 97}.net" for i in range(5000)]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(BIG))]
    bweights = [b[0] for b in BOUNCES]
    start = time.time() - days * DAY
    campaigns = [(f"campaign-{i:03d}", start + rnd.uniform(0, days) * DAY) for i in range(60)]
    with Ledger(path) as led:
        conn = led.conn
        cols = [c for c in EVENT_COLUMNS if c != "id"]
        sql = (f"INSERT INTO events({', '.join(cols)}) VALUES "
               f"({', '.join('?' * len(cols))})")
        n = 0
        while n < events:
            rows = []
            for _ in range(min(50_000, events - n)):
                dom = (rnd.choices(BIG, weights)[0] if rnd.random() < 0.8
                       else rnd.choice(tail))
                addr = f"u{rnd.randrange(400_000)}@{dom}"
                camp, t = rnd.choice(campaigns)
                at = min(t + rnd.expovariate(1 / (1.5 * DAY)), start + days * DAY - 1)
                r = rnd.random()
                kind = "bounce" if r < 0.88 else "delay" if r < 0.98 else "complaint"
                reason = status = code = btype = fault = diag = None
                if kind == "bounce":
                    _, reason, status, code, btype, fault = rnd.choices(BOUNCES, bweights)[0]
                    diag = DIAG.get(reason, "550 {s} {r}").format(n=rnd.randrange(256),
                                                                  s=status, r=reason)
                elif kind == "delay":
                    status, code, btype, reason, fault = "4.4.1", "441", "soft", "expired", \
                        "network"
                row = dict(event_key=f"bench:{n}", address=addr, at=at, kind=kind,
                           action={"bounce": "failed", "delay": "delayed"}.get(kind),
                           code=code, bounce_type=btype, status=status, reason=reason,
                           feedback_type="abuse" if kind == "complaint" else None,
                           reporting_mta="mx.example.net", message_id=f"b{n}@bench",
                           source=f"bench#{n}", original_message_id=f"o{n}@bench",
                           campaign=camp, note=None, recorded_at=at, fault=fault,
                           diagnostic_code=diag, remote_mta=f"mx.{dom}")
                rows.append([row[c] for c in cols])
                n += 1
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        # the default policy's decisions, by SQL: hard, three soft, complaint; 911 for review
        conn.execute("BEGIN")
        conn.execute("DELETE FROM addresses")
        conn.execute(
            "INSERT INTO addresses(address, suppressed, basis, reason, since, code, status, "
            "tags, soft_count, event_ids, updated_at) "
            "SELECT address, 1, CASE WHEN SUM(kind = 'complaint') > 0 THEN 'complaint' "
            "WHEN SUM(bounce_type = 'hard' AND fault IN ('recipient', 'unknown')) > 0 "
            "THEN 'hard' ELSE 'soft' END, MAX(reason), MIN(at), MAX(code), MAX(status), "
            "CASE WHEN SUM(code = '911') > 0 THEN 'review_911' ELSE '' END, "
            "COALESCE(SUM(bounce_type = 'soft'), 0), '', MAX(at) FROM events GROUP BY address "
            "HAVING SUM(kind = 'complaint') > 0 "
            "OR SUM(bounce_type = 'hard' AND fault IN ('recipient', 'unknown')) > 0 "
            "OR SUM(kind = 'bounce' AND bounce_type = 'soft' AND fault = 'mailbox') >= 3")
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('policy', ?)",
                     (led.policy.fingerprint,))
        conn.execute("COMMIT")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--db", help="ledger file (reused when it exists)")
    ap.add_argument("--keep", action="store_true", help="keep the ledger")
    ap.add_argument("-o", "--output", help="keep the report here")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from dsnparse.report import Period, collect, page   # what build_report runs

    tmp = tempfile.mkdtemp(prefix="dsnparse-bench-report-")
    path = Path(args.db) if args.db else Path(tmp) / "ledger.sqlite3"
    try:
        if not path.exists():
            secs = build(path, args.events, args.days, args.seed)
            print(f"built {args.events:,} events in {secs:.1f} s ({path}, "
                  f"{path.stat().st_size / 1e6:.0f} MB)")
        with Ledger(path, create=False) as led:
            n = led.count_events()
            sup = led.conn.execute("SELECT COUNT(*) FROM addresses").fetchone()[0]
            print(f"ledger: {n:,} events, {sup:,} suppressed addresses")
            import sqlite3

            uri = f"{path.resolve().as_uri()}?mode=ro"
            workers = min(4, os.cpu_count() or 1)     # as build_report does

            def connect():
                return sqlite3.connect(uri, uri=True, check_same_thread=False)
            tq, cq, tr = [], [], []
            for _ in range(args.runs):
                t0, c0 = time.perf_counter(), time.process_time()
                figs = collect(led.conn, Period(), connect=connect, workers=workers)
                t1, c1 = time.perf_counter(), time.process_time()
                page.render(figs, period=Period(), source=str(path))
                tr.append(time.perf_counter() - t1)
                tq.append(t1 - t0)
                cq.append(c1 - c0)
        out = Path(args.output) if args.output else Path(tmp) / "report.html"
        tc = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "dsnparse", "report", "--db", str(path),
                                "-o", str(out)], capture_output=True, text=True)
            tc.append(time.perf_counter() - t0)
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return 1
        size = out.stat().st_size
        print(f"SQL aggregation (collect, {workers} threads): median "
              f"{statistics.median(tq):.2f} s wall, {statistics.median(cq):.2f} s CPU  "
              f"(wall runs {', '.join(f'{x:.2f}' for x in tq)})")
        print(f"page (charts + HTML):       median {statistics.median(tr):.2f} s  "
              f"(runs {', '.join(f'{x:.2f}' for x in tr)})")
        print(f"dsnparse report --db (new process, imports included): median "
              f"{statistics.median(tc):.2f} s  (runs {', '.join(f'{x:.2f}' for x in tc)})")
        print(f"report size: {size:,} bytes ({size / 1e6:.2f} MB)")
    finally:
        if not args.keep and not args.db:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.keep:
            print(f"kept {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
