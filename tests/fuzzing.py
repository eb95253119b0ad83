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


# --------------------------------------------------------------------------- hostile shapes
# Inputs built to make a parser slow rather than to break it (issue 18): a long run of one
# token, unbalanced brackets, floods of encoded-word openers, placed where the parser reads
# them (an RFC 3464 field, a header, the returned message's To, an ARF field, a free-text
# bounce's body).  The contract for them is the time budget: ``parse`` with
# ``Options(message_timeout=B)`` returns a Report or raises InputError (MessageTimeout for a
# message over its budget) within B plus a margin.

HOSTILE_TOKENS = ["@", "<", ">", "(", ")", "<@", "(x", "a@", "a@b ", "\"", "\\", "[", "]",
                  "{", ":", ";", ",", " ", "\t", "-", ".", "=", "=?", "?=", "=?utf-8?b?",
                  "a@=?utf-8?b?5.", "=?utf-8?q?a?= ", "550 ", "550-", "5.1.", "5.1.1 ", "+2B",
                  "\\x{", "x", "aa", "<a@b.c>", "mailto:", "rfc822;", "user unknown ", "\u00e9"]
HOSTILE_PLACES = ["final-recipient", "original-recipient", "diagnostic-code", "remote-mta",
                  "status", "subject", "to", "from", "returned-to", "arf-rcpt", "body",
                  "body-line", "html"]


def hostile_run(rng: random.Random, size: int) -> str:
    """``size`` characters (about) of one token repeated, or of a few tokens mixed."""
    if rng.random() < 0.7:
        tok = rng.choice(HOSTILE_TOKENS)
        return tok * max(1, size // len(tok))
    toks = rng.sample(HOSTILE_TOKENS, rng.randint(2, 4))
    unit = "".join(toks)
    return unit * max(1, size // len(unit))


def hostile(rng: random.Random, size: Optional[int] = None) -> tuple:
    """One hostile message: ``(place, size, bytes)`` (size: the run's length in characters,
    log-uniform between 1,000 and 300,000 unless given)."""
    if size is None:
        size = int(10 ** rng.uniform(3, 5.5))
    place = rng.choice(HOSTILE_PLACES)
    run = hostile_run(rng, size)
    fields = {"final-recipient": "rfc822; alice@example.org", "original-recipient": None,
              "diagnostic-code": "smtp; 550 5.1.1 user unknown", "remote-mta": "dns; mx.example.org",
              "status": "5.1.1"}
    head = {"subject": "Undelivered Mail Returned to Sender", "to": "sender@example.org",
            "from": "MAILER-DAEMON@mx.example.net"}
    body = "This is the mail system at host mx.example.net.\n\nYour message could not be delivered."
    if place in fields:
        fields[place] = ("rfc822; " if place.endswith("recipient") else "") + run
    elif place in head:
        head[place] = run
    if place == "arf-rcpt":
        return place, size, (
            f"From: fbl@isp.example\nTo: abuse@example.org\nSubject: complaint\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=feedback-report; boundary=F\n\n--F\n"
            "Content-Type: text/plain\n\ncomplaint\n--F\nContent-Type: message/feedback-report\n\n"
            f"Feedback-Type: abuse\nVersion: 1\nOriginal-Rcpt-To: {run}\n\n--F--\n").encode()
    if place in ("body", "body-line", "html", "returned-to"):
        if place == "body":
            text = body + "\n\n" + run + "\n"
        elif place == "body-line":
            text = body + "\n\n" + "\n".join([run[:997]] * max(1, size // 998)) + "\n"
        else:
            text = body + "\n"
        ctype = "text/html" if place == "html" else "text/plain"
        if place == "html":
            text = "<html><body><p>" + body + "</p>" + run + "</body></html>\n"
        to = run if place == "returned-to" else "carol@example.com"
        return place, size, (
            f"From: {head['from']}\nTo: {head['to']}\nSubject: {head['subject']}\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=R\n\n"
            f"--R\nContent-Type: {ctype}; charset=utf-8\n\n{text}--R\n"
            "Content-Type: message/rfc822\n\nFrom: sender@example.org\n"
            f"To: {to}\nSubject: hello\n\nhello\n--R--\n").encode()
    ds = "".join(f"{k.title()}: {v}\n" for k, v in fields.items() if v is not None)
    return place, size, (
        f"From: {head['from']}\nTo: {head['to']}\nSubject: {head['subject']}\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
        f"--B\nContent-Type: text/plain\n\n{body}\n--B\n"
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        f"{ds}\n--B--\n").encode()


def run_hostile(cases: int, seed: int = 0, budget: float = 2.0, margin: float = 3.0,
                on_failure: Optional[Callable] = None) -> dict:
    """``cases`` hostile messages parsed with ``Options(message_timeout=budget)``: a case
    fails when it breaks the contract of :func:`check` or takes longer than ``budget +
    margin`` seconds (the budget did not hold).  Returns counts, the first failures, the
    cases stopped by the budget and the slowest case."""
    import dsnparse
    from dsnparse.errors import MessageTimeout
    from dsnparse.options import Options

    opts = Options(message_timeout=budget)
    rng = random.Random(seed)
    failures: list = []
    stopped = 0
    slowest = (0.0, None, 0)
    t0 = time.perf_counter()
    for i in range(cases):
        place, size, data = hostile(rng)
        timed_out = []

        def parse(d):
            try:
                return dsnparse.parse(d, opts)
            except MessageTimeout:
                timed_out.append(1)
                raise

        t = time.perf_counter()
        why = check(parse, data, slow=budget + margin)
        dt = time.perf_counter() - t
        stopped += bool(timed_out)
        if dt > slowest[0]:
            slowest = (dt, place, size)
        if why:
            failures.append((seed, i, place, size, why))
            if on_failure:
                on_failure(seed, i, data, f"{place} x{size}: {why}")
    return {"cases": cases, "failures": len(failures), "first": failures[:20],
            "stopped_by_budget": stopped, "slowest": slowest,
            "seconds": time.perf_counter() - t0}


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
