"""Start-up of ``dsnparse pipe``: what an MTA pays per bounce (one fresh process each).

Usage (from a checkout, with dsnparse installed: ``pip install -e .``)::

    python benchmarks/bench_pipe.py [--runs 50] [--message samples/rfc3464/01.eml]

Each run is a fresh ``dsnparse pipe`` process (the installed console script, as Postfix's
``pipe(8)`` or Exim's pipe transport start it) reading one bounce on standard input with the
``From `` and ``Return-Path:`` lines of pipe flags ``F`` and ``R``, a new Message-ID each
time (so the ledger really stores an event), appending to one output file and recording in
one ledger (``--synchronous full``, the default).  Wall time from start to exit, measured
here; the pack cache and the ``.pyc`` files are warm (one untimed run first), as on a
server.  Variants are alternated run by run, so load changes hit them alike:

* ``pipe -o --db``  the recipe of README "Behind an MTA pipe";
* ``pipe -o``       without the ledger;
* ``parse -``       ``dsnparse parse -`` on the same message (the reference: "as today");
* ``python -c pass`` the interpreter alone.

Prints median, p90 (nearest rank), min and max per variant, in milliseconds; every run must
exit 0 (checked).  Nothing is asserted about the times.

``--counts`` adds two figures that do not depend on the machine's load, for one run of
``pipe -o`` and of ``parse -``: the modules imported (``python -X importtime``) and the
instructions executed (Valgrind's ``callgrind``, when ``valgrind`` is installed; Debian
``valgrind``).  Under Valgrind OpenSSL's SHA-256 runs without the CPU's SHA extensions, so
the HMAC of the signed caches weighs more there than on the machine.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def program() -> list[str]:
    exe = Path(sys.executable).parent / "dsnparse"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dsnparse"]


def p90(xs) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--message", default=str(ROOT / "samples" / "rfc3464" / "01.eml"))
    ap.add_argument("--counts", action="store_true",
                    help="also count imported modules and instructions (valgrind) per run")
    a = ap.parse_args()
    msg = Path(a.message).read_bytes()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # an installed package has its .pyc files
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dsnparse")],
                   stdout=subprocess.DEVNULL, check=False)
    work = Path(tempfile.mkdtemp(prefix="dsnparse-bench-pipe-"))
    out, db = work / "verdicts.jsonl", work / "ledger.sqlite3"
    prefix = b"From MAILER-DAEMON  Sun Dec  6 08:00:00 2026\nReturn-Path: <>\n"
    prog = program()
    variants = {
        "pipe -o --db": prog + ["pipe", "-o", str(out), "--db", str(db), "--queue-id", "Q"],
        "pipe -o": prog + ["pipe", "-o", str(out)],
        "parse -": prog + ["parse", "-q", "-"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times: dict = {k: [] for k in variants}
    n = 0

    def once(name, argv):
        nonlocal n
        n += 1
        data = prefix + msg.replace(b"Message-Id: <", f"Message-Id: <bench{n}.".encode(), 1)
        t0 = time.perf_counter()
        r = subprocess.run(argv, input=data, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"{name}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
        return dt

    try:
        for name, argv in variants.items():
            once(name, argv)            # warm: pack cache, ledger schema, page cache
        for _ in range(a.runs):
            for name, argv in variants.items():
                times[name].append(once(name, argv))
        events = subprocess.run(prog + ["suppressions", "list", "--db", str(db),
                                        "--format", "jsonl"], capture_output=True, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# CPython {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"start-up per message, fresh process, {a.runs} runs each, alternated "
          f"({Path(a.message).name}, {len(msg)} bytes):")
    for name, xs in times.items():
        print(f"  {name:<15} median {statistics.median(xs) * 1000:6.0f} ms   "
              f"p90 {p90(xs) * 1000:6.0f} ms   min {min(xs) * 1000:5.0f} ms   "
              f"max {max(xs) * 1000:6.0f} ms")
    print(f"  (ledger check: `suppressions list` exit {events.returncode})")
    if a.counts:
        counts(prog, prefix + msg, env)
    return 0


def counts(prog: list, data: bytes, env: dict) -> None:
    """Modules imported and instructions executed by one ``pipe -o`` and one ``parse -``."""
    work = Path(tempfile.mkdtemp(prefix="dsnparse-bench-pipe-"))
    try:
        for name, args in (("pipe -o", ["pipe", "-o", str(work / "v.jsonl")]),
                           ("parse -", ["parse", "-q", "-"])):
            script = prog[1:] if prog[0] == sys.executable else prog  # (-m dsnparse, or the script)
            r = subprocess.run([sys.executable, "-X", "importtime", *script, *args], input=data,
                               env=env, capture_output=True)
            mods = sum(1 for line in r.stderr.decode().splitlines()
                       if line.startswith("import time:") and "self [us]" not in line)
            line = f"  {name:<15} {mods} modules imported"
            if shutil.which("valgrind"):
                out = work / "callgrind.out"
                r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                    *prog, *args], input=data, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                ir = [w for w in r.stderr.decode().split("Collected :")[1:2]]
                if ir:
                    line += f", {int(ir[0].split()[0]) / 1e6:.0f} million instructions (callgrind)"
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
