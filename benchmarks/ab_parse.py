"""Interleaved A/B of ``dsnparse.parse`` between two source trees (the cost of a rules change).

Usage::

    python benchmarks/ab_parse.py BASE_TREE NEW_TREE [--corpus DIR] [--rounds N]

Each tree runs in its own worker process (``sys.path[0]`` = the tree, so its package and its
``rules/`` are used).  Both load every ``*.eml`` under the corpus (default
``../shared/corpus/sisimai``) once and warm up (pack load, caches); then the driver alternates
short rounds (one ``parse`` pass over the corpus each, the order of the two swapped every
round) and each worker reports the pass's ``time.process_time()`` (CPU seconds of that
process, so other load on the machine counts less than wall time would).  Printed: the
median pass of each tree, the relative cost of NEW against BASE (median of the per-round
ratios) and the load average during the run.  Exit code 0; 2 on a bad argument.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import dsnparse
from pathlib import Path
assert Path(dsnparse.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), dsnparse.__file__
data = [p.read_bytes() for p in sorted(Path(sys.argv[2]).rglob('*.eml'))]
for d in data:
    dsnparse.parse(d)
print(len(data), flush=True)
for line in sys.stdin:
    t = time.process_time()
    for d in data:
        dsnparse.parse(d)
    print(time.process_time() - t, flush=True)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="source tree A (e.g. a checkout of main)")
    ap.add_argument("new", help="source tree B (e.g. this branch)")
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "sisimai"))
    ap.add_argument("--rounds", type=int, default=20, help="rounds (one pass of each tree per round)")
    a = ap.parse_args(argv)
    for t in (a.base, a.new):
        if not (Path(t) / "dsnparse" / "__init__.py").is_file():
            ap.error(f"{t}: not a dsnparse source tree")
    if not Path(a.corpus).is_dir():
        ap.error(f"{a.corpus}: no such corpus directory")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, t, a.corpus], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for t in (a.base, a.new)]
    try:
        n = [int(p.stdout.readline()) for p in procs]
        load0 = os.getloadavg()
        times = ([], [])
        for r in range(a.rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for i in order:
                procs[i].stdin.write("go\n")
                procs[i].stdin.flush()
                times[i].append(float(procs[i].stdout.readline()))
        load1 = os.getloadavg()
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    base, new = (statistics.median(t) for t in times)
    ratio = statistics.median(b / a_ for a_, b in zip(*times))
    print(f"corpus {a.corpus}: {n[0]} messages, {a.rounds} interleaved rounds")
    print(f"base {a.base}: median pass {base * 1000:.1f} ms CPU")
    print(f"new  {a.new}: median pass {new * 1000:.1f} ms CPU")
    print(f"new/base (median of per-round ratios): {ratio:.4f}  ({(ratio - 1) * 100:+.2f}%)")
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
