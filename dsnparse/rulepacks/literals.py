"""The literals a rule pattern requires, read from its syntax: the prefilter.

:func:`required_literals` and :func:`required_literal_groups` give case-folded strings of
which one occurs in every match, so a pattern whose literals are absent from a text is not
run at all; :func:`split_branches` cuts a long top-level alternation into branches, each
with its own literals.  Pure functions of the pattern source: nothing here compiles or runs a
pattern.
"""
from __future__ import annotations

import re
from typing import Optional

from ..backtrack import top_level_bars


_MAX_MORE = 4  # literal sets checked beyond a pattern's needles: the most selective ones


def _all_groups(groups, folded: str) -> bool:
    for g in groups:
        for n in g:
            if n in folded:
                break
        else:
            return False
    return True


def _literal_sets(source: str) -> tuple:
    """``(needles, more)``: :func:`required_literals` of ``source`` and up to
    :data:`_MAX_MORE` of its other required literal sets, most selective first."""
    groups = required_literal_groups(source)
    if not groups:
        return None, ()
    best = _best(groups)
    rest = sorted({frozenset(g) for g in groups if g != best}, key=_selectivity)
    return best, tuple(rest[:_MAX_MORE])


# Splitting pays when the alternation is long: the regex package tries every branch at every
# position of the text, while a branch that starts with a literal is found by a fast scan.
_MIN_BRANCHES = 4
_INLINE_FLAGS = re.compile(r"\(\?[a-zA-Z^]+\)")


def split_branches(source: str) -> Optional[tuple]:
    """The branches of a pattern that is a top-level alternation, each with its required
    literals (:func:`required_literals`), or ``None`` when splitting would not pay (fewer than
    :data:`_MIN_BRANCHES` branches, or every branch always runs) or could change the meaning:
    groups that are named or referred to, global inline flags, POSIX classes."""
    if "(?P" in source or "[:" in source or re.search(r"\\[1-9gk]", source) \
            or _INLINE_FLAGS.search(source):
        return None
    try:
        bars, depth = top_level_bars(source)
    except ValueError:  # an unterminated class
        return None
    starts = [0] + [b + 1 for b in bars]
    parts = [source[a:b] for a, b in zip(starts, bars + [len(source)])]
    if not _MIN_BRANCHES <= len(parts) < _BRANCHES - 1 or depth != 0:
        return None
    branches = tuple((p, required_literals(p)) for p in parts)
    if all(needles is None for _, needles in branches):
        return None
    return branches


# --------------------------------------------------------------------------- prefilter

_MIN_NEEDLE = 3


def required_literals(source: str) -> Optional[frozenset]:
    """Case-folded literals of which at least one occurs in every match of ``source``.

    Derived from the pattern's syntax tree (the standard library's parser, which reads the
    common subset of ``regex`` syntax): the most selective run of literal characters that
    every match must contain, or the union over the branches of an alternation.  Returns
    ``None`` (no prefilter: the pattern always runs) when no literal of at least 3
    characters is required, or when the pattern uses syntax only ``regex`` reads (POSIX
    classes, fuzzy matching, ``\\p{..}``) where the standard parser could misread it.
    The check is a plain ``in`` on the case-folded text, so it never rejects text the
    case-insensitive pattern would match.
    """
    groups = required_literal_groups(source)
    return _best(groups) if groups else None


def required_literal_groups(source: str, min_len: int = _MIN_NEEDLE) -> list:
    """Every set of case-folded literals of at least ``min_len`` characters that a match of
    ``source`` must contain one of (the most selective is :func:`required_literals`); ``[]``
    when there is none or the pattern uses syntax only ``regex`` reads."""
    import re as _re

    if "[[:" in source or "\\p" in source or "\\P" in source or "\\N" in source \
            or _re.search(r"\{[^}]*[eids][<=>]", source):
        return []
    try:
        try:
            from re import _parser as sre_parse  # Python 3.11+
        except ImportError:  # pragma: no cover
            import sre_parse
        tree = sre_parse.parse(source, _re.I | _re.M)
    except Exception:  # noqa: BLE001 - regex-only syntax: no prefilter
        return []
    return [frozenset(g) for g in _required_groups(list(tree), sre_parse)
            if min(len(n) for n in g) >= min_len]


def _caseless_mark(ch: str) -> bool:
    """A combining mark (categories Mn, Mc) of a script without case, such as a Devanagari
    vowel sign or virama: part of the word, the same under any case folding."""
    import unicodedata

    return unicodedata.category(ch) in ("Mn", "Mc")


def _fold_safe(ch: str) -> bool:
    """A non-ASCII literal usable as a needle: a letter without case (CJK, kana, …) or a
    combining mark of such a word (:func:`_caseless_mark`), or a Cyrillic or Greek letter.  For these, the characters a case-insensitive pattern matches are exactly
    those whose ``casefold()`` equals the literal's (no full case folding into several
    characters, as for "ß" or "ΐ"; Greek final sigma "ς" folds to "σ" on both sides)."""
    if ch.lower() == ch.upper():
        return ch.casefold() == ch and (ch.isalpha() or _caseless_mark(ch))
    return ("\u0400" <= ch <= "\u04ff" or "\u0370" <= ch <= "\u03ff") and len(ch.casefold()) == 1


def _selectivity(group) -> tuple:
    """Sort key of literal sets, most selective first: the longest shortest literal, then
    the fewest literals (then the literals, for a stable order)."""
    return -min(map(len, group)), len(group), sorted(group)


def _best(groups: list) -> Optional[set]:
    """The most selective group: the longest shortest literal, then the fewest literals."""
    if not groups:
        return None
    return max(groups, key=lambda alts: (min(len(a) for a in alts), -len(alts)))


def _required_groups(items, sp) -> list:
    """Sets of literals such that every match contains one literal of each set."""
    c = sp._constants if hasattr(sp, "_constants") else sp
    cands: list = []
    run: list = []

    def flush():
        if run:
            cands.append({"".join(run)})
            run.clear()

    for op, av in items:
        if op is c.LITERAL and (av < 128 or _fold_safe(chr(av))):
            run.append(chr(av).casefold())
            continue
        flush()
        if op is c.SUBPATTERN:
            cands.extend(_required_groups(list(av[-1]), sp))
        elif op is c.BRANCH:
            alts = [_best(_required_groups(list(b), sp)) for b in av[1]]
            if alts and all(alts):
                cands.append(set().union(*alts))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            cands.extend(_required_groups(list(av[2]), sp))
        elif op is getattr(c, "ATOMIC_GROUP", None):
            cands.extend(_required_groups(list(av), sp))
    flush()
    return cands


_BRANCHES = 4096  # more branches than any pattern has (split_branches caps it)
