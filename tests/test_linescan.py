"""Line-local patterns searched on the lines that can hold a match only (dsnparse/linescan.py):
the same matches as the search over the whole text, checked against it."""
from __future__ import annotations

import random
import re

import pytest

from conftest import SAMPLES, SISIMAI
from dsnparse import linescan, rules

F = re.I | re.M


@pytest.mark.parametrize("pattern, local", [
    (r"^[ \t]*<?(?P<r>[^\s<>@]+@[\w-]+(?:\.[\w-]+)+)>?[ \t]*$", True),
    (r"^(?P<d>[^\n]*?)<(?P<r>[^<>\s]+@[^<>\s]+)>[^\n]*$", True),
    (r"(?<![\d.])[45]\d\d[ -]\S+@\S+", True),   # a one-character look-behind
    (r"\buser\b(?=[^\n]*@)", True),              # a look-ahead that stays on the line
    (r"user\s+unknown", False),                  # \s matches a newline
    (r"address:[ \t]*\n[ \t]*\S+@", False),      # a newline
    (r"\Aabc@", False),                          # the start of the whole text
    (r"abc@x\Z", False),
    (r"(?s)a.*@", False),                        # "." matches a newline under DOTALL
    (r"(?-m:^a@b)", False),                      # ^ as the start of the text
    (r"[^<>]+@", False),                         # a negated class without \n holds \n
    (r"[\x00-\x1f]@", False),                    # a range holding \n
    (r"(?=\s)@", False),                         # a look-ahead that reads a newline
    (r"a++@b", None),                            # possessive: read from Python 3.11 on
])
def test_is_line_local(pattern, local):
    got = linescan.is_line_local(pattern, F)
    if local is None:  # the stdlib parser reads it only from Python 3.11
        import sys
        assert got == (sys.version_info >= (3, 11))
    else:
        assert got is local


def test_anchor_literals():
    assert linescan.anchor_literals([{"<"}, {"@"}, {">:"}]) == {"@"}
    assert linescan.anchor_literals([{" "}, {"abc", "de"}]) == {"abc", "de"}
    assert linescan.anchor_literals([{" "}, {":"}]) is None


def test_line_spans():
    text = "a\nb@c\nd\n@@e@\nf"
    assert linescan.line_spans(text, {"@"}) == [(2, 5), (8, 12)]
    assert linescan.line_spans("Recipient: x\nnone", {"recipient"}) == [(0, 12)]
    # "ß" folds to "ss": positions of the folded text are not those of the text
    assert linescan.line_spans("straße\nrecipient", {"recipient"}) is None
    assert linescan.line_spans("x@y\n" * (linescan.MAX_LINES + 1), {"@"}) is None


def _texts() -> list:
    """Report texts: every sample (and corpus email when ../shared is present), plus
    texts that put the edge cases of lines together."""
    from dsnparse.engine import Context
    from dsnparse.load import load
    from dsnparse.options import DEFAULT
    from dsnparse import rfc3464

    paths = sorted(SAMPLES.rglob("*.eml"))
    if (SISIMAI / "maildir").is_dir():
        paths += sorted(p for p in (SISIMAI / "maildir").rglob("*") if p.is_file())
    out = []
    for p in paths:
        try:
            msg = load(p.read_bytes())
        except Exception:  # noqa: BLE001 - not a message: nothing to compare
            continue
        st = rfc3464.scan(msg)
        out.append(Context(msg, st, DEFAULT, None).text())
    rnd = random.Random(12)
    pieces = ["<a@b.example>", "a@b.example", "550 5.1.1", ":", " ", "\t", "\n", "\n\n",
              "Recipient:", "--", "==", "-----", "user unknown", "<", ">", "(", ")", "[",
              "]", "Ä", "ß", "İ", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\r", "...",
              "Original message", "550-", "RCPT TO:", "* ", "1. ", "Empfänger:", "收件人："]
    for _ in range(300):
        out.append("".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 60))))
    return out


def _patterns() -> list:
    out = []
    for pack in rules.load_packs(()):
        pats = [r.pattern for r in pack.recipients]
        pats += [r.section_start for r in pack.recipients if r.section_start is not None]
        pats += list(pack.original_start) + list(pack.report_start)
        out += [p for p in pats if p.line_literals is not None]
    return out


def _key(m):
    return m.span(), m.groupdict()


def test_line_search_finds_what_the_whole_search_finds():
    """Every shipped pattern the line search applies to, on every text: finditer and search
    over the lines give the same matches (spans and groups) as over the whole text."""
    pats = _patterns()
    assert len(pats) >= 30  # the recipient patterns of most vendor packs
    texts = _texts()
    compared = 0
    for p in pats:
        for text in texts:
            spans = p.line_spans(text)
            if spans is None:
                continue
            whole = [_key(m) for m in p.compiled.finditer(text)]
            assert [_key(m) for m in p.finditer_lines(text, spans, 5.0)] == whole, p.where
            first = p.compiled.search(text)
            got = p.search_lines(text, spans, 5.0)
            assert (got and _key(got)) == (first and _key(first)), p.where
            compared += 1
    assert compared > 1000
