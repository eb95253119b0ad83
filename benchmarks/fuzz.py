"""Long fuzzing campaign: ``python benchmarks/fuzz.py [CASES] [--jobs N] [--seed S]``.

Runs the mutation fuzzer of tests/fuzzing.py over the samples and (when ../shared is beside
the checkout) the corpus emails, split across worker processes.  CASES defaults to
``DSNPARSE_FUZZ_CASES`` or 1,000,000.  Failing inputs are written to
``/tmp/dsnparse-fuzz/SEED-CASE.eml`` with the failure in ``.txt``; the figures (cases,
failures, seconds, peak RSS of each worker) are printed at the end.  Exit status 1 if any
case broke the contract.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fuzzing  # noqa: E402

OUT = Path("/tmp/dsnparse-fuzz")


def _save(seed, i, data, why):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{seed}-{i}.eml").write_bytes(data)
    (OUT / f"{seed}-{i}.txt").write_text(why + "\n")


def _worker(args):
    seed, cases = args
    pool = fuzzing.seeds()

    def progress(i, fails, secs):
        print(f"[seed {seed}] {i} cases, {fails} failures, {i / secs:.0f} cases/s", flush=True)

    res = fuzzing.run(pool, cases, seed=seed, on_failure=_save, progress=progress)
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["seed"] = seed
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="?", type=int,
                    default=int(os.environ.get("DSNPARSE_FUZZ_CASES", "1000000")))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1000)
    a = ap.parse_args(argv)
    per = [a.cases // a.jobs + (1 if i < a.cases % a.jobs else 0) for i in range(a.jobs)]
    t0 = time.time()
    with Pool(a.jobs) as p:
        results = p.map(_worker, [(a.seed + i, n) for i, n in enumerate(per)])
    total = sum(r["cases"] for r in results)
    fails = sum(r["failures"] for r in results)
    for r in results:
        print(f"seed {r['seed']}: {r['cases']} cases, {r['failures']} failures, "
              f"{r['seconds']:.0f} s, peak RSS {r['maxrss_mb']:.0f} MB")
        for f in r["first"]:
            print("   ", f)
    print(f"TOTAL: {total} cases, {fails} failures, {time.time() - t0:.0f} s wall, "
          f"{a.jobs} processes, {len(fuzzing.seeds())} seed emails")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
