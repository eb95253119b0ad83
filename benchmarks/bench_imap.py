"""Messages per second of ``dsnparse imap`` over a real Dovecot on loopback.

Appends N messages (default 1000, cycling through the corpus in ../shared) to a fresh folder,
then times one run of :func:`dsnparse.sources.imap.run` (IMAPS, batches of 50, JSON Lines to
a file with fsync per batch, bounces moved to one folder and the rest to another).  The
server is the one of ``IMAP_*`` environment variables, or a new instance started the way the
tests do (root needed).

    PYTHONPATH=. python benchmarks/bench_imap.py [-n 1000] [--batch-size 50]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from imap_server import Server  # noqa: E402
from test_imap import corpus_files  # noqa: E402

from dsnparse.sources import imap as imapsource  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=50)
    a = ap.parse_args()
    files = [f.read_bytes() for f in corpus_files()]
    srv = Server.start()
    try:
        c = srv.client()
        folder = "bench" + uuid.uuid4().hex[:8]
        c.create_folder(folder)
        t0 = time.perf_counter()
        for i in range(a.n):
            c.append(folder, files[i % len(files)])
        t_append = time.perf_counter() - t0
        work = Path(tempfile.mkdtemp(prefix="dsnimap-bench-"))
        o = srv.options(folder=folder, processed_folder=folder + "-done",
                        other_folder=folder + "-other", state_path=str(work / "s.db"),
                        batch_size=a.batch_size)
        t0 = time.perf_counter()
        s = imapsource.run(o, str(work / "out.jsonl"))
        dt = time.perf_counter() - t0
        # the parser alone on the same bytes, for comparison
        from dsnparse.sources import parse_item
        t1 = time.perf_counter()
        for i in range(a.n):
            parse_item("x", files[i % len(files)])
        dp = time.perf_counter() - t1
        print(f"messages: {a.n}  batch size: {a.batch_size}")
        print(f"append:   {t_append:.2f} s")
        print(f"imap run: {dt:.2f} s = {a.n / dt:.0f} msg/s  ({s.line()})")
        print(f"parse only (same bytes, in memory): {dp:.2f} s = {a.n / dp:.0f} msg/s")
        c.logout()
        shutil.rmtree(work, ignore_errors=True)
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
