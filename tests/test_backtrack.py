"""dsnparse.backtrack: which rule searches may run without the regex timeout.

The expected lengths are worked out by hand from the step bound in the module docstring:
a search over n characters takes at most (n + 1) * tree(n) steps, within BUDGET = 10**6.
"""
from __future__ import annotations

import logging

import pytest

import dsnparse
from dsnparse import rules
from dsnparse.backtrack import BUDGET, MAX_LENGTH, steps, untimed_length
from dsnparse.options import Options


def test_budget_is_a_million_steps():
    assert BUDGET == 1_000_000


@pytest.mark.parametrize("source, tree", [
    ("user unknown", 12),  # 12 characters, one way through: 12 steps per start
    ("user (?:unknown|invalid)", 5 + (7 + 1) + (7 + 1) + 1),  # 5, two branches (+ markers), +1
    (".{0,40}", 40 + 41),  # 40 iterations of one step, then 41 places to stop
    ("a?b", (1 + 2) + 2 * 1),  # a? = 1 step + 2 ends (2 ways), then b once per way
    ("[a-z0-9_.+-]x", (1 + 5 // 8) + 1),  # a class of 5 members is one step
    ("[abcdefghijklmnop]", 1 + 16 // 8),  # 16 members: tried in turn, 3 steps
])
def test_steps_without_unbounded_repeats(source, tree):
    # the tree does not grow with the text: (n + 1) start positions times the tree
    assert steps(source, 0) == tree
    assert steps(source, 1000) == 1001 * tree


def test_untimed_length_within_the_budget():
    # ".{0,40}": 81 steps per start; the longest n with (n + 1) * 81 <= 10**6 is 12,344
    assert untimed_length(".{0,40}") == 12_344
    # "user unknown": 83,332 characters would stay within the budget; the cap is lower
    assert untimed_length("user unknown") == MAX_LENGTH == 16_384


def test_unbounded_repeat_of_one_way_is_polynomial():
    # ".*" over n characters: n + 1 iterations at most, n + 2 places to stop -> tree 2n + 3;
    # (n + 1)(2n + 3) <= 10**6 holds for n = 705 (997,578) and not for n = 706 (1,000,405)
    assert steps(".*", 705) == 997_578 and steps(".*", 706) == 1_000_405
    assert untimed_length(".*") == 705


@pytest.mark.parametrize("source", [
    "(x+x+)+y",  # nested unbounded repeats: exponential
    "(?:a|a)+b",  # ambiguous alternatives under a repeat (the stdlib parser would merge them)
    "(?:ab|ab)+c",  # the same, with common prefixes
    "(?:\\w|\\d)+!",  # overlapping classes as alternatives
    "(?:a?){0,30}",  # 2**30 ways in 30 bounded iterations
    # a comment holding "[" once hid the alternation from the scan that keeps branches apart
    # (the stdlib parser then merged a|[a-a] into one class): comments are always timed
    "(?#[)(?:a|[a-a](?#[))+b",
    "(?x:#[\n(?:a|[a-a]#[\n)+b)",
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
    assert steps("[|)]x", 0) == steps("ab", 0) == 2
    assert steps("\\|\\)", 0) == 2
    assert steps("[]|]+", 50) == steps("a+", 50)


def test_longest_length_is_capped():
    # an empty match still makes a match object at every position: capped like the rest
    assert untimed_length("") == untimed_length("(?:)") == MAX_LENGTH


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
