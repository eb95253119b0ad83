"""mta/postfix#recipient and generic/unknown-mta#reply-names-address on hostile lines: the
shipped patterns end well within the pattern timeout where their earlier forms (kept here as
the reference) retried every '@' or every reply code of a line, and they find the same
matches as those forms on random texts."""
from __future__ import annotations

import random

import pytest
import regex

from dsnparse import rules
from fuzzing import HOSTILE_TOKENS

F = regex.I | regex.M | regex.V0
EARLIER = {
    ("generic/unknown-mta", "reply-names-address"):
        r'''^(?P<diagnostic>[^\n]*?(?<![\d.])(?P<reply_code>[45][0-5]\d)[ -](?:(?P<status>[45]\.\d{1,3}\.\d{1,3})[ \t]+)?[^\n]*?<(?P<recipient>[^\s<>()\[\]"',;:@]+@[\w-]+(?:\.[\w-]+)+)>[^\n]*)$''',
    ("mta/postfix", "recipient"):
        r'''^<(?P<recipient>[^>\s]+@[^>\s]+)>(?:\s*\(expanded from <[^>]+>\))?:\s*(?P<diagnostic>.*)$''',
}


def _pattern(pack_id, rule_id):
    pack = {p.id: p for p in rules.load_packs(())}[pack_id]
    return next(r.pattern for r in pack.recipients if r.id == rule_id)


@pytest.mark.parametrize("key", sorted(EARLIER))
def test_hostile_lines_end_within_the_timeout(key):
    compiled = _pattern(*key).compiled
    units = ["<" + t for t in HOSTILE_TOKENS] + ["550 <", "550 <a@b ", "550-<@", "<a@"]
    for unit in units:
        line = (unit * (997 // len(unit) + 1))[:997]  # lines are cut at 998 characters
        line = line if key[0] == "generic/unknown-mta" else "<" + line[1:]
        text = "\n".join([line] * 300)
        # raises TimeoutError if the search takes more than 1 s of CPU (the earlier forms
        # took 2 s and more on some of these)
        compiled.findall(text, timeout=1.0)


@pytest.mark.parametrize("key", sorted(EARLIER))
def test_same_matches_as_the_earlier_form(key):
    now, before = _pattern(*key).compiled, regex.compile(EARLIER[key], F)
    rnd = random.Random(12)
    pieces = ["550 ", "550-", "451 ", "5.1.1 ", "<", ">", "a@b.c", "a@b", "@", " ", "\t", "\n",
              "x", "1", ".", "(expanded from <z>)", ":", "<a@b.c>", "<a@@b>", "<a@b.c.d>", "user"]
    for _ in range(5000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 30)))
        assert [(m.span(), m.groupdict()) for m in now.finditer(text)] == \
            [(m.span(), m.groupdict()) for m in before.finditer(text)], repr(text)
