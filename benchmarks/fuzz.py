"""Long fuzzing campaign: ``python benchmarks/fuzz.py [CASES] [--jobs N] [--seed S]
[--hostile H] [--budget B]``.

Runs the mutation fuzzer of tests/fuzzing.py over the samples and (when ../shared is beside
the checkout) the corpus emails, split across worker processes.  CASES defaults to
``DSNPARSE_FUZZ_CASES`` or 1,000,000.  Then H hostile messages (default
``DSNPARSE_FUZZ_HOSTILE`` or CASES // 500: long runs of one token, unbalanced brackets,
encoded-word floods in every field the parser reads; ``fuzzing.hostile``) are parsed with a
time budget of B seconds per message (default 2): each must end within B plus 3 s.  Failing
inputs are written to ``/tmp/dsnparse-fuzz/SEED-CASE.eml`` (``hostile-SEED-CASE.eml``) with
the failure in ``.txt``; the figures (cases, failures, seconds, peak RSS of each worker; for
the hostile cases those stopped by the budget and the slowest) are printed at the end.
Exit status 1 if any case broke the contract.
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


def _save_hostile(seed, i, data, why):
    _save(f"hostile-{seed}", i, data, why)


def _hostile_worker(args):
    seed, cases, budget = args
    res = fuzzing.run_hostile(cases, seed=seed, budget=budget, on_failure=_save_hostile)
    res["seed"] = seed
    return res


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
    ap.add_argument("--hostile", type=int, default=None,
                    help="hostile cases (default DSNPARSE_FUZZ_HOSTILE or CASES // 500)")
    ap.add_argument("--budget", type=float, default=2.0,
                    help="time budget per hostile message, seconds (default 2)")
    a = ap.parse_args(argv)
    hostile = a.hostile if a.hostile is not None else \
        int(os.environ.get("DSNPARSE_FUZZ_HOSTILE", a.cases // 500))
    per = [a.cases // a.jobs + (1 if i < a.cases % a.jobs else 0) for i in range(a.jobs)]
    hper = [hostile // a.jobs + (1 if i < hostile % a.jobs else 0) for i in range(a.jobs)]
    t0 = time.time()
    with Pool(a.jobs) as p:
        results = p.map(_worker, [(a.seed + i, n) for i, n in enumerate(per)])
        hresults = p.map(_hostile_worker, [(a.seed + i, n, a.budget) for i, n in enumerate(hper)])
    total = sum(r["cases"] for r in results)
    fails = sum(r["failures"] for r in results)
    for r in results:
        print(f"seed {r['seed']}: {r['cases']} cases, {r['failures']} failures, "
              f"{r['seconds']:.0f} s, peak RSS {r['maxrss_mb']:.0f} MB")
        for f in r["first"]:
            print("   ", f)
    hfails = sum(r["failures"] for r in hresults)
    stopped = sum(r["stopped_by_budget"] for r in hresults)
    slowest = max((r["slowest"] for r in hresults), default=(0.0, None, 0))
    for r in hresults:
        for f in r["first"]:
            print("    hostile", f)
    print(f"TOTAL: {total} cases, {fails} failures, {time.time() - t0:.0f} s wall, "
          f"{a.jobs} processes, {len(fuzzing.seeds())} seed emails")
    print(f"HOSTILE: {hostile} cases, {hfails} failures, budget {a.budget:g} s: "
          f"{stopped} stopped by it; slowest {slowest[0]:.2f} s ({slowest[1]}, "
          f"a run of {slowest[2]:,} characters)")
    return 1 if fails or hfails else 0


if __name__ == "__main__":
    sys.exit(main())
