"""The one-pass read of a header section ended by an empty line (mime._fields_to_blank)
against the two-pass read it shortcuts (_SECTION, then _FIELD): the same fields, body
start and defect, or the same refusal, on every sample and corpus email and on random
sections made of field, continuation, empty, CRLF and malformed lines."""
from __future__ import annotations

import random

from conftest import SAMPLES, SHARED
from dsnparse import mime


def _two_pass(text, pos, end, crlf):
    hend = mime._SECTION.match(text, pos, end).end()
    blank = True
    if hend == end:
        body = end
    elif text.startswith("\n", hend):
        body = hend + 1
    elif text.startswith("\r\n", hend):
        body = hend + 2
    elif not mime._HEADER_LINE.match(text, hend):
        body, blank = hend, False
    else:
        return "declined"
    fields = mime._FIELD.findall(text, pos, hend)
    if crlf:
        fields = [(n, v.rstrip("\r\n")) for n, v in fields]
    return fields, body, blank


def _read(text, pos, end, crlf):
    try:
        return mime._headers(text, pos, end, crlf)
    except mime._Decline:
        return "declined"


def test_one_pass_header_read_equals_two_pass():
    texts = [p.read_bytes().decode("ascii", "surrogateescape")
             for d in (SAMPLES, SHARED / "corpus") if d.is_dir()
             for p in sorted(d.rglob("*")) if p.is_file()]
    rnd = random.Random(12)
    pieces = ["Subject: x\n", "A: b\n", " cont\n", "\tcont\n", "\n", "\r\n", "X-Y:\r\n",
              "bad line\n", "From x\n", ":\n", "a:b", " ", "\u00e9: x\n", "K:\n\n", "Z: q\r\n\r\n"]
    texts += ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 12))) for _ in range(5000)]
    compared = quick = 0
    for t in texts:
        crlf = "\r" in t
        if crlf and mime._BARE_CR.search(t):
            continue  # (declined before any header is read)
        starts = [0] + [i + 1 for i, c in enumerate(t[:4000]) if c == "\n"][:10]
        for pos in starts:
            for end in {len(t), min(len(t), pos + 50)}:
                assert _read(t, pos, end, crlf) == _two_pass(t, pos, end, crlf), repr(t[pos:end][:200])
                compared += 1
                quick += mime._fields_to_blank(t, pos, end, crlf) is not None
    assert compared > 10000 and quick > 1000
