"""dsnparse.backtrack: which rule searches may run without the regex timeout.

The expected lengths are worked out by hand from the step bound in the module docstring:
a search over n characters takes at most (n + 1) * tree(n) steps, within BUDGET = 10**6.
"""
from __future__ import annotations

import logging

import pytest

import dsnparse
from dsnparse import rules
from dsnparse.backtrack import BUDGET, MAX_LENGTH, untimed_length
from dsnparse.options import Options


def test_budget_is_a_million_steps():
    assert BUDGET == 1_000_000


@pytest.mark.parametrize("source, tree", [
    ("user unknown", 12),  # 12 characters, one way through: 12 steps per start
    ("user (?:unknown|invalid)", 5 + (7 + 1) + (7 + 1) + 1),  # 5, two branches (+ markers), +1
    (".{0,40}", 40 + 41),  # 40 iterations of one step, then 41 places to stop
    ("a?b", (1 + 2) + 2 * 1),  # a? = 1 step + 2 ends (2 ways), then b once per way
])
def test_patterns_without_unbounded_repeats(source, tree):
    # the tree does not grow with the text: the longest n with (n + 1) * tree <= BUDGET
    assert untimed_length(source) == BUDGET // tree - 1


def test_unbounded_repeat_of_one_way_is_polynomial():
    # ".*" over n characters: n + 1 iterations at most, n + 2 places to stop -> tree 2n + 3;
    # (n + 1)(2n + 3) <= 10**6 holds for n = 705 (997,578) and not for n = 706 (1,000,405)
    assert untimed_length(".*") == 705


@pytest.mark.parametrize("source", [
    "(x+x+)+y",  # nested unbounded repeats: exponential
    "(?:a|a)+b",  # ambiguous alternatives under a repeat (the stdlib parser would merge them)
    "(?:ab|ab)+c",  # the same, with common prefixes
    "(?:\\w|\\d)+!",  # overlapping classes as alternatives
    "(?:a?){0,30}",  # 2**30 ways in 30 bounded iterations
])
def test_exponential_patterns_are_always_timed(source):
    assert untimed_length(source) <= 0


@pytest.mark.parametrize("source", [
    "\\p{L}+",  # syntax of the regex package only
    "(?:abc){e<=1}",  # fuzzy matching
    "(?|(a)|(b))",  # branch reset
])
def test_syntax_the_analysis_does_not_know_is_always_timed(source):
    assert untimed_length(source) == -1


def test_classes_and_escapes_are_not_split():
    # "|" and ")" inside a class or escaped are characters, not alternations or groups
    assert untimed_length("[|)]x") == untimed_length("ab") == BUDGET // 2 - 1
    assert untimed_length("\\|\\)") == BUDGET // 2 - 1
    assert untimed_length("[]|]+") == untimed_length("a+")


def test_longest_length_is_capped():
    assert untimed_length("") <= MAX_LENGTH


def test_shipped_patterns_carry_their_limit():
    packs = rules.load_packs(())
    pats = [t.pattern for p in packs for t in p.text_rules]
    assert pats and all(pt.untimed == untimed_length(pt.source) for pt in pats)
    split = [pt for pt in pats if pt.branches]
    assert split and all(len(pt.branch_untimed) == len(pt.branches) for pt in split)


def test_long_text_still_runs_under_the_timeout(tmp_path, caplog):
    # a pattern with a bound runs untimed only up to its limit: beyond it, the timeout
    # still stops a search that takes too long ((x+x+)+y has no bound past length 0)
    (tmp_path / "slow.yaml").write_text(
        "id: slow\norder: 10\ndetect:\n  any:\n    - body: '(x+x+)+y'\n"
        "recipients:\n  - id: r\n    pattern: '(?P<recipient>\\S+@\\S+)'\n")
    opts = Options(rules=(str(tmp_path),), pattern_timeout=0.05)
    msg = b"From: someone@example.com\nSubject: hello\n\n" + b"x" * 5000 + b"\n"
    with caplog.at_level(logging.WARNING, logger="dsnparse.rules"):
        assert dsnparse.parse(msg, opts).kind == "not_bounce"
    assert any("timed out" in r.getMessage() for r in caplog.records)
