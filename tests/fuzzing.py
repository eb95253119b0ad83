"""A mutation fuzzer for ``dsnparse.parse`` (used by tests/test_fuzz.py and benchmarks/fuzz.py).

The contract under test: ``parse`` returns a :class:`~dsnparse.model.Report` or raises
:class:`dsnparse.InputError` (input that is not an email at all); never another exception,
never a hang.  Mutations are cheap byte-level edits of real emails (seeds): truncation at a
line or byte boundary, byte flips, deleted or duplicated MIME boundaries and lines, wrong or
unknown charsets, 8-bit and NUL bytes in headers, spliced halves of two emails, mixed line
endings.  Everything is driven by one ``random.Random`` so a failing case is reproducible
from its seed and case number.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SISIMAI = ROOT.parent / "shared" / "corpus" / "sisimai"
NOT_BOUNCES = ROOT.parent / "shared" / "corpus" / "not-bounces"

CHARSETS = [b"unicode-1-1-utf-7", b"utf-7", b"x-unknown", b"iso-2022-jp", b"utf-16", b"utf-32",
            b"cp1252", b"shift_jis", b"\"\"", b"utf-8\x00", b"koi8-r", b"gb18030", b"big5",
            b"ISO-8859-99", b"us-ascii'en'", b"=?utf-8?", b"b\xe4d"]
JUNK = [b"\x00", b"\xff", b"\xe9", b"\xc3\x28", b"\r", b"\n", b"\r\n", b"\t", b" ", b":",
        b";", b"<", b">", b"@", b"=?utf-8?b?", b"?=", b"--", b"\"", b"\\", b"\x1b$B", b"\x80"]
_BOUNDARY = re.compile(rb"^--[^\r\n]+\r?$", re.M)


def seeds(limit_corpus: Optional[int] = None) -> list:
    """Seed emails: the project's samples, plus the shared corpus emails when present."""
    out = [p.read_bytes() for p in sorted(SAMPLES.rglob("*.eml"))]
    corpus = []
    for d in (SISIMAI / "maildir", NOT_BOUNCES):
        if d.is_dir():
            corpus += sorted(p for p in d.rglob("*") if p.is_file() and not p.name.endswith((".jsonl", ".md")))
    if limit_corpus is not None:
        corpus = corpus[:limit_corpus]
    out += [p.read_bytes() for p in corpus]
    return [s for s in out if s]


# --------------------------------------------------------------------------- mutations

def truncate(rng, d: bytes) -> bytes:
    if rng.random() < 0.5:  # at a line boundary
        ends = [m.end() for m in re.finditer(rb"\n", d)] or [len(d)]
        return d[:rng.choice(ends)]
    return d[:rng.randrange(len(d) + 1)]


def flip(rng, d: bytes) -> bytes:
    b = bytearray(d)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def insert_junk(rng, d: bytes) -> bytes:
    i = rng.randrange(len(d) + 1)
    return d[:i] + rng.choice(JUNK) * rng.randint(1, 4) + d[i:]


def boundaries(rng, d: bytes) -> bytes:
    ms = list(_BOUNDARY.finditer(d))
    if not ms:
        return insert_junk(rng, d)
    m = rng.choice(ms)
    how = rng.randrange(3)
    if how == 0:  # delete the boundary line
        return d[:m.start()] + d[m.end():]
    if how == 1:  # duplicate it
        return d[:m.end()] + b"\n" + m.group(0) + d[m.end():]
    return d[:m.start()] + m.group(0).rstrip(b"\r") + b"--" + d[m.end():]  # close early


def charset(rng, d: bytes) -> bytes:
    cs = rng.choice(CHARSETS)
    new, n = re.subn(rb"charset=\"?[^\s;\"]*\"?", b"charset=" + cs, d, count=rng.randint(1, 3), flags=re.I)
    if n:
        return new
    return re.sub(rb"(?im)^(content-type:[^\r\n]*)", lambda m: m.group(1) + b"; charset=" + cs, d, count=1)


def header_bytes(rng, d: bytes) -> bytes:
    end = d.find(b"\n\n")
    end = end if end > 0 else min(len(d), 2000)
    i = rng.randrange(end + 1)
    junk = bytes(rng.choice([0, 0x80, 0xff, 0xe9, 0xc3, 0x1b, 0x0b, 0x0c, 0x7f]) for _ in range(rng.randint(1, 6)))
    return d[:i] + junk + d[i:]


def lines(rng, d: bytes) -> bytes:
    ls = d.split(b"\n")
    if len(ls) < 2:
        return insert_junk(rng, d)
    i = rng.randrange(len(ls))
    how = rng.randrange(4)
    if how == 0:
        del ls[i]
    elif how == 1:
        ls.insert(i, ls[i])
    elif how == 2:
        j = rng.randrange(len(ls))
        ls[i], ls[j] = ls[j], ls[i]
    else:
        ls[i] = ls[i] * rng.randint(2, 50)
    return b"\n".join(ls)


def endings(rng, d: bytes) -> bytes:
    lf = d.replace(b"\r\n", b"\n")
    return rng.choice([lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r"), lf,
                       b"".join(l + rng.choice([b"\n", b"\r\n", b"\r"]) for l in lf.split(b"\n"))])


def encodings(rng, d: bytes) -> bytes:
    return re.sub(rb"(?i)content-transfer-encoding:[^\r\n]*",
                  b"Content-Transfer-Encoding: " + rng.choice([b"base64", b"quoted-printable", b"x-uuencode",
                                                               b"8bit", b"binary", b"bogus"]),
                  d, count=rng.randint(1, 3))


def content_types(rng, d: bytes) -> bytes:
    ct = rng.choice([b"message/rfc822", b"message/delivery-status", b"multipart/report",
                     b"message/global-delivery-status", b"text/html", b"multipart/mixed",
                     b"message/feedback-report", b"text/rfc822-headers", b"application/x-junk"])
    return re.sub(rb"(?i)(content-type:\s*)[\w.+-]+/[\w.+-]+", lambda m: m.group(1) + ct, d, count=1)


MUTATORS = [truncate, flip, insert_junk, boundaries, charset, header_bytes, lines, endings,
            encodings, content_types]


def splice(rng, a: bytes, b: bytes) -> bytes:
    return a[:rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1):]


def mutate(rng: random.Random, pool: list) -> bytes:
    """One case: a seed with 1 to 3 mutations (sometimes two seeds spliced)."""
    d = rng.choice(pool)
    if rng.random() < 0.05:
        d = splice(rng, d, rng.choice(pool))
    for _ in range(rng.randint(1, 3)):
        d = rng.choice(MUTATORS)(rng, d)
    return d


# --------------------------------------------------------------------------- the contract

def check(parse: Callable, data, slow: float = 5.0) -> Optional[str]:
    """Run ``parse(data)``; return ``None`` when the contract holds, else what broke."""
    from dsnparse import InputError
    from dsnparse.model import Report

    t0 = time.perf_counter()
    try:
        r = parse(data)
    except InputError:
        r = None
    except Exception as e:  # noqa: BLE001 - any other exception breaks the contract
        return f"{type(e).__name__}: {e}"[:300]
    if r is not None and not isinstance(r, Report):
        return f"returned {type(r).__name__}"
    if r is not None:
        r.records("x")  # output must render too
    dt = time.perf_counter() - t0
    if dt > slow:
        return f"slow: {dt:.1f} s"
    return None


def run(pool: list, cases: int, seed: int = 0, parse: Optional[Callable] = None,
        on_failure: Optional[Callable] = None, progress: Optional[Callable] = None) -> dict:
    """Run ``cases`` mutated cases from ``pool``; returns counts and the first failures."""
    import dsnparse

    parse = parse or dsnparse.parse
    rng = random.Random(seed)
    failures: list = []
    t0 = time.perf_counter()
    for i in range(cases):
        data = mutate(rng, pool)
        why = check(parse, data)
        if why:
            failures.append((seed, i, why))
            if on_failure:
                on_failure(seed, i, data, why)
        if progress and i and i % 10000 == 0:
            progress(i, len(failures), time.perf_counter() - t0)
    return {"cases": cases, "failures": len(failures), "first": failures[:20],
            "seconds": time.perf_counter() - t0}


def truncations(data: bytes) -> Iterable[bytes]:
    """``data`` cut at every line boundary (and a few byte offsets inside the header)."""
    for m in re.finditer(rb"\n", data):
        yield data[:m.end()]
        yield data[:m.start()]
    for i in range(0, min(len(data), 400), 7):
        yield data[:i]
