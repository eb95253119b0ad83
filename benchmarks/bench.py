"""dsnparse benchmarks: ``python benchmarks/bench.py [SECTION ...] [--seconds S] [--mbox-gb G]``.

Sections (default: all but ``memory``):

``throughput``  ``dsnparse.parse`` over the Sisimai corpus (repeated for at least ``--seconds``)
                against the bare stdlib parse (``policy.compat32`` + walk of every part) of the
                same bytes, in the same run; messages/s of both and their ratio (target >= 0.6).
``profile``     where the time goes: loading, RFC 3464, pack dispatch, recipients, text rules,
                status codes, code table, output.
``packs``       10x the shipped packs (synthetic copies whose literals are changed so they
                never match): slowdown of parsing against the shipped packs (target < 1.5x),
                and the same without the prefilter, for comparison.
``startup``     ``dsnparse parse -`` on one message as a fresh process (an MTA pipe), median
                of 15 runs with a warm pack cache (target < 150 ms).
``jobs``        ``dsnparse parse --jobs 1`` vs ``--jobs N`` on an mbox of the corpus repeated,
                medians of 3 alternated runs of each (target >= 1.7x on 2 cores).
``patterns``    every shipped pattern (detection, recipients, text rules, markers) run on
                hostile strings (long tokens, runs of one character, repeated phrases; alone
                and as two lines) with a 2 s limit: the cases over 50 ms and the worst times
                (no target; a linear pattern stays far below the 0.25 s pattern timeout).
``untimed``     the searches that run without the regex timeout (dsnparse/backtrack.py: the
                pattern's backtracking is bounded on texts up to a length it works out): every
                such pattern on hostile texts of that length, its own characters included;
                the worst times (no target; the bound is a million backtracking steps).
``memory``      a ``--mbox-gb`` GB mbox (default 2) built in /tmp from corpus emails plus one
                message over the size cap, parsed by the CLI; peak RSS (target < 150 MB), the
                oversized message's verdict; the mbox is deleted after.
``dask``        messages/s of ``dsnparse parse --dask local:1`` and ``--dask local:2`` (a
                LocalCluster of 1 and 2 worker processes, started by the run and counted in
                its time) against ``--jobs 2`` on a ``--mbox-gb`` GB mbox (default 2) and on
                one of a 40th of that size (the fixed costs, for the crossover), JSON Lines
                to a file; the outputs must be byte for byte the same.  Not in the default.

Needs the shared corpus beside the checkout (../shared/corpus/sisimai).
"""
from __future__ import annotations

import argparse
import email
import io
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from email import policy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus" / "sisimai" / "maildir"

import dsnparse  # noqa: E402
from dsnparse import rules  # noqa: E402
from dsnparse.options import Options  # noqa: E402


def corpus() -> list:
    if not CORPUS.is_dir():
        sys.exit(f"{CORPUS} is absent: the benchmarks need the shared corpus beside the checkout")
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file()]


def _parse_all(data, opts=None):
    for b in data:
        try:
            dsnparse.parse(b, opts)
        except dsnparse.InputError:
            pass


def _stdlib_all(data):
    for b in data:
        m = email.message_from_bytes(b, policy=policy.compat32)
        for part in m.walk():
            part.get_payload()


def _rate(fn, data, seconds):
    fn(data)  # warm-up (pack loading, pattern compilation)
    n, t0 = 0, time.perf_counter()
    while True:
        fn(data)
        n += len(data)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def _load_all(data):
    from dsnparse.load import load

    for b in data:
        try:
            m = load(b)
        except dsnparse.InputError:
            continue
        for part in m.walk():
            part.get_payload()


def _interleaved(data, seconds):
    """Passes of the stdlib parse and of dsnparse.parse over ``data``, alternated until
    ``2 * seconds`` have passed: ``(stdlib rate, dsnparse rate, ratio per round)``.  The
    ratio of each round compares two passes made a moment apart, so a machine whose speed
    drifts (a shared host: the rate of the same code was seen to move by 20% within
    minutes) moves both alike; the median of the rounds is the figure."""
    _stdlib_all(data)
    _parse_all(data)  # warm-up (pack loading, pattern compilation)
    t_std = t_ours = 0.0
    ratios = []
    t_end = time.perf_counter() + 2 * seconds
    while time.perf_counter() < t_end or len(ratios) < 5:
        t0 = time.perf_counter()
        _stdlib_all(data)
        t1 = time.perf_counter()
        _parse_all(data)
        t2 = time.perf_counter()
        t_std += t1 - t0
        t_ours += t2 - t1
        ratios.append((t1 - t0) / (t2 - t1))
    n = len(ratios) * len(data)
    return n / t_std, n / t_ours, ratios


def throughput(data, seconds):
    stdlib, ours, ratios = _interleaved(data, seconds)
    loading = _rate(_load_all, data, max(seconds / 2, 1))
    print(f"throughput over {len(data)} emails ({sum(map(len, data)) / len(data) / 1024:.1f} KB avg), "
          f"{len(ratios)} alternated rounds, >= {2 * seconds:.0f} s:")
    print(f"  stdlib compat32 parse + walk : {stdlib:8.0f} messages/s")
    print(f"  dsnparse.parse               : {ours:8.0f} messages/s")
    print(f"  ratio                        : {statistics.median(ratios):8.2f}   (target >= 0.60; "
          f"median of the rounds, spread {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"  (dsnparse load + walk: the same tree, dsnparse/mime.py: {loading:.0f} messages/s)")


def profile(data):
    from dsnparse import codes, engine, load as load_mod, rfc3464
    from dsnparse.output import make_writer

    acc = {}

    def timed(mod, name, stage):
        real = getattr(mod, name)

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                acc[stage] = acc.get(stage, 0.0) + time.perf_counter() - t0
        setattr(mod, name, wrapper)
        return real

    _parse_all(data)
    saved = [(engine, "load", timed(engine, "load", "loading (MIME parse)")),
             (rfc3464, "scan", timed(rfc3464, "scan", "RFC 3464 (scan + read)")),
             (rfc3464, "read", timed(rfc3464, "read", "RFC 3464 (scan + read)")),
             (engine, "_candidates", timed(engine, "_candidates",
                                           "pack dispatch (automaton + detect)")),
             (rules, "detect", timed(rules, "detect", "pack dispatch (automaton + detect)")),
             (rules, "region", timed(rules, "region", "pack recipients (region + extract)")),
             (rules, "extract", timed(rules, "extract", "pack recipients (region + extract)")),
             (rules, "find_text_rule", timed(rules, "find_text_rule", "text rules")),
             (rules, "text_rule_packs", timed(rules, "text_rule_packs", "text rules")),
             (rules, "packs_with_matching_rule",
              timed(rules, "packs_with_matching_rule", "text rules")),
             (engine, "find_codes", timed(engine, "find_codes", "status and reply codes")),
             (codes, "classify", timed(codes, "classify", "code table")),
             (engine, "_base_fields", timed(engine, "_base_fields", "report header fields"))]
    reports = []
    t0 = time.perf_counter()
    for b in data * 3:
        try:
            reports.append(dsnparse.parse(b))
        except dsnparse.InputError:
            pass
    total = time.perf_counter() - t0
    for mod, name, real in saved:
        setattr(mod, name, real)
    t1 = time.perf_counter()
    w = make_writer("jsonl", io.StringIO())
    for i, r in enumerate(reports):
        w.write(r.records(f"m{i}"))
    w.close()
    out = time.perf_counter() - t1
    n = len(data) * 3
    print(f"per-stage profile ({n} parses; µs per message):")
    inner = 0.0
    for stage, t in sorted(acc.items(), key=lambda kv: -kv[1]):
        inner += t
        print(f"  {stage:38s} {t / n * 1e6:8.0f}  {t / total:5.1%}")
    print(f"  {'other (report text, verdicts, glue)':38s} {(total - inner) / n * 1e6:8.0f}  "
          f"{(total - inner) / total:5.1%}")
    print(f"  {'output (records + JSON Lines)':38s} {out / n * 1e6:8.0f}  (after parsing)")


_LITERAL = re.compile(r"(?<![\\(?<])\b([A-Za-z]{3,})\b")


def _scramble(pattern: str, k: int) -> str:
    """Make copy ``k`` of a pattern another vendor's: its literal words changed, and a
    vendor token of its own required in front (as any real vendor pack has words of its
    own), so that it never matches the corpus but keeps the pattern's shape and cost."""
    if "(?P" not in pattern:  # (a {{lang.…}} placeholder of the vocabulary stays as it is)
        parts = re.split(r"(\{\{[\w.-]+\}\})", pattern)
        pattern = "".join(p if p.startswith("{{") else _LITERAL.sub(
            lambda m: m.group(1)[:2] + "qz" + str(k) + m.group(1)[2:], p) for p in parts)
    return f"vendorqz{k}x(?:{pattern})"


def synthetic_packs(dst: Path, factor: int = 10) -> int:
    """Write ``factor - 1`` scrambled copies of every shipped pack into ``dst``."""
    import yaml

    n = 0
    for pid, path in rules.pack_files(rules.rules_dir()):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for k in range(1, factor):
            d = dict(data)
            d["id"] = f"synthetic{k}/{pid}"
            det = d.get("detect") or {}
            d["detect"] = {key: [{kk: (_scramble(v, k) if kk in ("body", "pattern") else
                                       f"X-Synthetic{k}-{v}" if kk == "header" else v)
                                  for kk, v in c.items()} for c in conds]
                           for key, conds in det.items()}
            if "keywords" in d:
                d["keywords"] = [_scramble(w, k) for w in d["keywords"]]
            d["text_rules"] = [dict(t, pattern=_scramble(t["pattern"], k)) for t in d.get("text_rules", [])]
            d["mta"] = [_scramble(m, k) for m in d.get("mta", [])]
            d.pop("samples", None)
            out = dst / f"synthetic{k}" / (pid + ".yaml")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(yaml.safe_dump(d, allow_unicode=True), encoding="utf-8")
            n += 1
    return n


def packs(data, seconds):
    shipped = len(rules.load_packs(()))
    with tempfile.TemporaryDirectory() as tmp:
        n = synthetic_packs(Path(tmp))
        big = Options(rules=(tmp,))
        total = len(rules.load_packs((tmp,)))
        base = _rate(lambda d: _parse_all(d), data, seconds)
        many = _rate(lambda d: _parse_all(d, big), data, seconds)
        same = all(_kinds(b) == _kinds(b, big) for b in data)
        # the same without the prefilter (patterns always run): patched where they are called
        from dsnparse.rulepacks import detection, textrules

        def every_text_rule(diagnostic, packs):  # every text rule, as a whole pattern
            for pack, rule in textrules._text_index(packs).rules:
                yield pack, rule, None

        saved = (rules.Pattern.may_match, detection.may_apply, rules.Dispatch.candidates,
                 textrules._rules_that_may_match)
        rules.Pattern.may_match = lambda self, folded: True
        detection.may_apply = lambda pack, folded: True
        rules.Dispatch.candidates = lambda self, folded: list(range(len(self.packs)))
        textrules._rules_that_may_match = every_text_rule
        try:
            nopf_base = _rate(lambda d: _parse_all(d), data, seconds / 2)
            nopf_many = _rate(lambda d: _parse_all(d, big), data, seconds / 2)
        finally:
            (rules.Pattern.may_match, detection.may_apply, rules.Dispatch.candidates,
             textrules._rules_that_may_match) = saved
    print(f"pack dispatch: {shipped} shipped packs vs {total} ({n} synthetic copies, literals changed):")
    print(f"  shipped packs     : {base:8.0f} messages/s")
    print(f"  10x packs         : {many:8.0f} messages/s   slowdown {base / many:.2f}x (target < 1.5x); "
          f"same verdicts: {same}")
    print(f"  without prefilter : {nopf_base:8.0f} -> {nopf_many:.0f} messages/s   "
          f"slowdown {nopf_base / nopf_many:.2f}x")


def _kinds(b, opts=None):
    try:
        r = dsnparse.parse(b, opts)
    except dsnparse.InputError:
        return None
    return r.kind, r.format, tuple((v.final_recipient, v.status, v.reason) for v in r.verdicts)


def _cli(args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dsnparse", *args], input=stdin, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0, r


def startup():
    one = (ROOT / "samples" / "rfc3464" / "01.eml").read_bytes()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dsnparse")])
    _cli(["parse", "-q", "-"], one)  # warm the pack cache
    times = sorted(_cli(["parse", "-q", "-"], one)[0] for _ in range(15))
    bare = sorted(_timed_python() for _ in range(7))
    print(f"start-up: `dsnparse parse -` on one message, fresh process, 15 runs:")
    print(f"  median {statistics.median(times) * 1000:.0f} ms, min {times[0] * 1000:.0f} ms, "
          f"max {times[-1] * 1000:.0f} ms (target < 150 ms); bare `python -c pass`: "
          f"{statistics.median(bare) * 1000:.0f} ms")


def _timed_python():
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"])
    return time.perf_counter() - t0


def _write_mbox(path: Path, data, target_bytes: int, big: int = 0) -> int:
    n = 0
    with open(path, "wb") as f:
        written = 0
        while written < target_bytes:
            for b in data:
                body = b.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
                chunk = b"From MAILER-DAEMON Mon Mar  2 09:14:07 2026\n" + body + b"\n\n"
                f.write(chunk)
                written += len(chunk)
                n += 1
                if big and n == 1000:  # one message over the size cap
                    filler = b"x" * 76 + b"\n"
                    f.write(b"From x@example.com Mon Mar  2 09:14:07 2026\nFrom: x@example.com\n"
                            b"Subject: huge\n\n")
                    for _ in range(big // len(filler) + 1):
                        f.write(filler)
                    f.write(b"\n")
                    written += big
                    n += 1
                if written >= target_bytes:
                    break
    return n


def jobs(data, rounds=3):
    cores = os.cpu_count() or 1
    ones, ns = [], []
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "jobs.mbox"
        n = _write_mbox(p, data, 40 * 1024 * 1024)
        _cli(["parse", "-q", "-"], data[0])  # warm the pack cache
        for _ in range(rounds):  # alternated, so that a slower spell of the machine hits both
            ones.append(_cli(["parse", "-q", "--jobs", "1", str(p)])[0])
            ns.append(_cli(["parse", "-q", "--jobs", str(cores), str(p)])[0])
    t1, tn = statistics.median(ones), statistics.median(ns)
    pairs = sorted(a / b for a, b in zip(ones, ns))
    print(f"parallel runs: mbox of {n} messages, {cores} cores, medians of {rounds} alternated runs:")
    print(f"  --jobs 1: {t1:.2f} s ({n / t1:.0f}/s)   --jobs {cores}: {tn:.2f} s ({n / tn:.0f}/s)   "
          f"speed-up {t1 / tn:.2f}x (target >= 1.7x on 2 cores); "
          f"per round {', '.join(f'{x:.2f}x' for x in pairs)}")


def memory(data, gb, cap_mb=25):
    tmp = Path(tempfile.mkdtemp(prefix="dsnparse-mem-", dir="/tmp"))
    try:
        p = tmp / "big.mbox"
        n = _write_mbox(p, data, int(gb * 1024 ** 3), big=(cap_mb + 5) * 1024 * 1024)
        size = p.stat().st_size
        for j in (os.cpu_count() or 1,):
            out = tmp / "out.jsonl"
            code = ("import resource, subprocess, sys, time; t=time.time(); "
                    f"r=subprocess.run([sys.executable,'-m','dsnparse','parse','-q','--jobs','{j}',"
                    f"'-o','{out}','{p}']); "
                    "print(time.time()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            secs, rss = r.stdout.split()
            errors = [l for l in out.read_text().splitlines() if '"kind": "error"' in l]
            lines = sum(1 for _ in open(out))
            print(f"memory: {size / 1024 ** 3:.2f} GB mbox, {n} messages, --jobs {j}: {float(secs):.0f} s, "
                  f"peak RSS of the largest process {int(rss) / 1024:.0f} MB (target < 150 MB), "
                  f"{lines} records")
            for e in errors[:2]:
                print("  over the cap:", re.sub(r'.*"error": ("[^"]*").*', r"\1", e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dask_runs(data, gb):
    import hashlib

    tmp = Path(tempfile.mkdtemp(prefix="dsnparse-dask-bench-", dir="/tmp"))
    try:
        for size in (gb / 40, gb):
            p = tmp / "archive.mbox"
            n = _write_mbox(p, data, int(size * 1024 ** 3))
            mb = p.stat().st_size / 1024 ** 2
            _cli(["parse", "-q", "-"], data[0])  # warm the pack cache
            print(f"dask: mbox of {mb:.0f} MB, {n} messages (16 MiB partitions: "
                  f"{-(-p.stat().st_size // (16 * 1024 ** 2))}), JSON Lines to a file:")
            digests = {}
            for label in ("--jobs 2", "--dask local:1", "--dask local:2"):
                out = tmp / "out.jsonl"
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                secs, r = _cli(["parse", "-q", *label.split(), "-o", str(out), str(p)])
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                # (Dask's workers are children of its nannies, reaped in turn: counted here)
                cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                if r.returncode not in (0, 1):
                    sys.exit(f"{label} failed: {r.stderr.decode()[-2000:]}")
                h = hashlib.sha256()
                with open(out, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                digests[label] = h.hexdigest()
                out.unlink()
                print(f"  {label:15} {secs:8.1f} s  {n / secs:7.0f} messages/s   CPU {cpu:7.1f} s "
                      f"(all processes)  {n / cpu:6.0f} messages per CPU second")
            same = len(set(digests.values())) == 1
            print(f"  outputs byte for byte the same: {'yes' if same else 'NO'}")
            p.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


HOSTILE = ["word " * 4000, "a" * 20000, " " * 20000 + "x", "<" * 10000, "@" * 10000, "x@" * 5000,
           "user unknown " * 2000, "-" * 20000, "a:" * 5000, "a.b" * 5000 + "@",
           "The following address failed: " * 1000, "\t " * 5000 + ":", "<a@b.c> " * 3000,
           "550 " * 5000, "5.1.1 " * 4000, "Remote host said: " * 1500]


def patterns(limit=2.0, slow_at=0.05, show=20):
    """Times of every shipped pattern on :data:`HOSTILE` strings (alone and as two lines)."""
    slow, worst, n = [], [], 0
    t_all = time.perf_counter()
    for p in rules.load_packs(()):
        pats = ([("det", c.pattern) for c in p.detect_any + p.detect_all + p.detect_none]
                + [("rcpt", r.pattern) for r in p.recipients]
                + [("text", t.pattern) for t in p.text_rules]
                + [("mark", x) for x in p.report_start + p.original_start])
        for kind, pt in pats:
            n += 1
            top = 0.0
            for h in HOSTILE:
                for text in (h, h + "\n" + h):
                    t = time.perf_counter()
                    try:
                        list(pt.compiled.finditer(text, timeout=limit))
                    except TimeoutError:
                        pass
                    el = time.perf_counter() - t
                    top = max(top, el)
                    if el > slow_at:
                        slow.append((round(el, 3), p.id, kind, pt.where[-60:], repr(h[:20])))
            worst.append((top, p.id, kind, pt.where[-60:]))
    slow.sort(reverse=True)
    worst.sort(reverse=True)
    print(f"patterns: {n} patterns x {2 * len(HOSTILE)} hostile texts in "
          f"{time.perf_counter() - t_all:.1f} s; {len(slow)} cases over {slow_at * 1000:.0f} ms "
          f"(limit {limit} s)")
    for s_ in slow[:show]:
        print("  slow:", s_)
    for el, pid, kind, where in worst[:show]:
        print(f"  worst {el * 1000:7.1f} ms  {pid} {kind} {where}")


def _own_texts(source: str, n: int, rng) -> list:
    """Texts of ``n`` characters built from the pattern's own characters: runs of each, its
    literal words repeated, random mixtures; what makes a backtracking pattern work hardest
    is text that almost matches it."""
    chars = sorted(set(re.sub(r"\\[A-Za-z]", "", source)) - set("()[]{}?*+|^$\\")) or ["a"]
    words = re.findall(r"[A-Za-z][A-Za-z' .:@<>-]*", source) or ["a"]
    out = [c * n for c in chars[:12]]
    out += [(" ".join(words) + " ") * (n // max(1, len(" ".join(words))) + 1)]
    out += ["".join(rng.choice(chars + [" ", "\n", "@", "."]) for _ in range(n)) for _ in range(4)]
    out += [(w + " ") * (n // (len(w) + 1) + 1) for w in words[:6]]
    return [t[:n] for t in out]


def untimed(show=15):
    """Searches that run without the regex timeout (``dsnparse.backtrack``): every shipped
    pattern and branch with a bound, on hostile texts cut to its limit length (the
    :data:`HOSTILE` strings and texts made of the pattern's own characters), run as the
    engine runs them (no timeout).  The worst times show what the bound allows."""
    import random

    rng = random.Random(7)
    seen, worst, n_pat, n_run = set(), [], 0, 0
    t_all = time.perf_counter()
    for p in rules.load_packs(()):
        pats = ([c.pattern for c in p.detect_any + p.detect_all + p.detect_none]
                + [r.pattern for r in p.recipients] + [t.pattern for t in p.text_rules]
                + list(p.report_start + p.original_start))
        for pt in pats:
            cases = [(pt.source, pt.untimed)]
            cases += list(zip([b for b, _ in pt.branches or ()], pt.branch_untimed or ()))
            for source, limit in cases:
                if limit < 0 or source in seen:
                    continue
                seen.add(source)
                n_pat += 1
                compiled = rules._compile_source(source)
                n = min(limit, 400_000)
                top = 0.0
                for text in [h[:n] for h in HOSTILE] + _own_texts(source, n, rng):
                    t = time.perf_counter()
                    list(compiled.finditer(text))
                    top = max(top, time.perf_counter() - t)
                    n_run += 1
                worst.append((top, limit, pt.where[-60:], source[:50]))
    worst.sort(reverse=True)
    print(f"untimed searches: {n_pat} patterns/branches with a bound, {n_run} hostile texts at "
          f"their limit length, {time.perf_counter() - t_all:.1f} s; worst (no timeout):")
    for el, limit, where, src in worst[:show]:
        print(f"  {el * 1000:7.2f} ms  limit {limit:>7}  {where}  {src!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="*",
                    default=["throughput", "profile", "packs", "startup", "jobs", "patterns",
                             "untimed"])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mbox-gb", type=float, default=2.0)
    a = ap.parse_args(argv)
    data = corpus()
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.platform()}")
    for s in a.sections:
        if s == "throughput":
            throughput(data, a.seconds)
        elif s == "profile":
            profile(data)
        elif s == "packs":
            packs(data, a.seconds)
        elif s == "startup":
            startup()
        elif s == "jobs":
            jobs(data)
        elif s == "patterns":
            patterns()
        elif s == "untimed":
            untimed()
        elif s == "memory":
            memory(data, a.mbox_gb)
        elif s == "dask":
            dask_runs(data, a.mbox_gb)
        else:
            sys.exit(f"unknown section {s!r}")
    print(f"# peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
