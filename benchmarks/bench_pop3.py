"""Messages per second of ``dsnparse pop3`` over a real Dovecot POP3S on loopback.

Starts a private Dovecot (tests/dovecot_server.py: root and Debian's dovecot-pop3d needed),
appends N messages (default 1000; the corpus of ../shared when present, else the project's
samples, cycled, each made distinct by an ``X-Bench-Seq`` header) to two maildrops, then
times :func:`dsnparse.sources.pop3.run`:

1. the first maildrop, messages left on the server (UIDL, RETR, parse, JSON Lines to a file
   with an fsync and a state commit per batch);
2. a rerun on it: UIDL only, every message already stored (what a cron job pays each time);
3. the second maildrop with ``delete`` and ``delete_other`` (DELE after each stored batch,
   QUIT at the end).

The parser alone on the same bytes is timed for comparison; the rule packs are loaded
before anything is timed.

    PYTHONPATH=. python benchmarks/bench_pop3.py [-n 1000] [--batch-size 50]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from dovecot_server import Dovecot  # noqa: E402

from dsnparse.sources import parse_item  # noqa: E402
from dsnparse.sources import pop3  # noqa: E402


def messages(n: int) -> tuple[list[bytes], str]:
    corpus = REPO.parent / "shared" / "corpus" / "sisimai" / "maildir"
    files = [f for d in ("bsd", "not") for f in sorted((corpus / d).glob("*.eml"))
             if f.stat().st_size] if corpus.is_dir() else []
    what = f"../shared sisimai corpus ({len(files)} files)"
    if not files:
        files = sorted((REPO / "samples").glob("*/[0-9]*.eml"))
        what = f"project samples ({len(files)} files)"
    return [b"X-Bench-Seq: %d\r\n" % i + files[i % len(files)].read_bytes()
            for i in range(n)], what


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=50)
    a = ap.parse_args()
    msgs, what = messages(a.n)
    srv = Dovecot.start(pop3=True, users=2)
    work = Path(tempfile.mkdtemp(prefix="dsnpop-bench-"))
    try:
        t0 = time.perf_counter()
        for user in ("u0", "u1"):
            srv.append(user, msgs)
        t_append = time.perf_counter() - t0

        def opts(user, **kw):
            return pop3.Pop3Options(host=srv.host, port=srv.ports["pop3s"], user=user,
                                    password=srv.users[user], ca_file=srv.ca,
                                    state_path=str(work / f"{user}.db"),
                                    batch_size=a.batch_size, **kw)

        def timed(o, out):
            t = time.perf_counter()
            s = pop3.run(o, str(work / out))
            return time.perf_counter() - t, s

        parse_item("warm-up", msgs[0])     # the rule packs are loaded once per process
        t_keep, s_keep = timed(opts("u0"), "u0.jsonl")
        t_rerun, s_rerun = timed(opts("u0"), "u0.jsonl")
        t_del, s_del = timed(opts("u1", delete=True, delete_other=True), "u1.jsonl")
        left = len(srv.uidls("u1", bodies=False))
        t = time.perf_counter()
        for m in msgs:
            parse_item("x", m)
        t_parse = time.perf_counter() - t
        n = a.n
        print(f"messages: {n} from {what}; batch size {a.batch_size}; POP3S on loopback")
        print(f"append (IMAP, 2 maildrops): {t_append:.2f} s")
        print(f"pop3, keep on server: {t_keep:.2f} s = {n / t_keep:.0f} msg/s  ({s_keep.line()})")
        print(f"pop3, rerun (all known): {t_rerun:.2f} s  ({s_rerun.line()})")
        print(f"pop3 --delete --delete-other: {t_del:.2f} s = {n / t_del:.0f} msg/s  "
              f"({s_del.line()}; {left} left on the server)")
        print(f"parse only (same bytes, in memory): {t_parse:.2f} s = {n / t_parse:.0f} msg/s")
    finally:
        srv.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
