"""Many literals found in one pass over a text (:class:`Literals`, an Aho-Corasick automaton),
and the branches of a long phrase list that may match a text (:func:`present_branches`).
"""
from __future__ import annotations

from .pattern import Pattern


class Literals:
    """Which of a list of literals occur in a text, found in one pass: an Aho-Corasick
    automaton (the ``ahocorasick_rs`` package, Rust's ``aho-corasick`` crate) run over the
    text's UTF-8 bytes (lone surrogates, which the bytes parser makes of undecodable octets,
    pass through as their own byte sequences; UTF-8 is self-synchronising, so a literal's
    bytes occur in the text's bytes exactly where the literal occurs in the text).

    Args:
        literals: the strings to look for (any order; found as written, case included).
        dfa: build a DFA (about 2.5x faster per character than the NFA, slower to build and
            larger: for automata that scan whole reports) instead of a contiguous NFA.

    Without ``ahocorasick_rs`` it falls back to ``literal in text`` for each literal.
    """

    def __init__(self, literals, dfa: bool = False):
        self.literals = list(literals)
        self._ac = None
        if not self.literals:
            return
        try:
            import ahocorasick_rs as ars
        except ImportError:  # pragma: no cover - the dependency is declared
            return
        impl = ars.Implementation.DFA if dfa else ars.Implementation.ContiguousNFA
        self._ac = ars.BytesAhoCorasick([x.encode("utf-8", "surrogatepass") for x in self.literals],
                                        implementation=impl)

    def found(self, text: str) -> set:
        """The indices (into ``literals``) of the literals that occur in ``text``."""
        if self._ac is None:
            return {i for i, x in enumerate(self.literals) if x in text}
        return {i for i, _, _ in self._ac.find_matches_as_indexes(
            text.encode("utf-8", "surrogatepass"), overlapping=True)}


_MANY_BRANCHES = 24  # above this, a condition's branches are found with an automaton
_BRANCH_INDEX: dict = {}  # id(pattern) -> (pattern, Literals, branch indices per literal, always)


def present_branches(pattern: Pattern, folded: str) -> list:
    """The branches of a split pattern (:attr:`Pattern.branches`) that may match the
    case-folded text ``folded``: those one of whose literals occurs (found in one pass by a
    :class:`Literals` automaton, built once per pattern) and whose other literal sets occur,
    plus those without literals."""
    hit = _BRANCH_INDEX.get(id(pattern))
    if hit is None or hit[0] is not pattern:
        by: dict = {}
        always = []
        for j, (_, needles) in enumerate(pattern.branches):
            if needles is None:
                always.append(j)
            for n in needles or ():
                by.setdefault(n, []).append(j)
        lits = Literals(sorted(by))
        hit = _BRANCH_INDEX[id(pattern)] = (pattern, lits, [by[n] for n in lits.literals], always)
    _, lits, table, always = hit
    idx = set(always)
    for i in lits.found(folded):
        idx.update(table[i])
    return pattern.branches_that_may_match(sorted(idx), folded) if idx else []
