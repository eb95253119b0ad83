"""Text rules: diagnostic text to a reason and an enhanced status.

:class:`_TextIndex` (one automaton per pack list) tells which rules may match a diagnostic;
:func:`find_text_rule` runs them in order; :func:`text_rule_packs` chooses the packs whose
text rules apply to a verdict (the recognising pack, vendor packs by MTA name, shared
packs, a generic pack).
"""
from __future__ import annotations

from typing import Iterable, Optional

from .automaton import Literals
from .literals import _BRANCHES, _all_groups
from .pack import Pack, TextRule


class _TextIndex:
    """The text rules of a pack list in order, with an Aho-Corasick automaton of their
    required literals: one pass over a diagnostic tells which rules can match at all.

    Entries are ints, ``rule index * _BRANCHES + 1 + branch index`` for a branch of a split
    rule (:func:`.literals.split_branches`) and ``rule index * _BRANCHES`` for a whole
    pattern, so that sorting them gives rule order."""

    def __init__(self, packs):
        self.packs = packs
        self.rules = [(p, r) for p in packs for r in p.text_rules]
        always: list = []
        by_needle: dict = {}
        for i, (_, r) in enumerate(self.rules):
            branches = r.pattern.branches
            parts = [(1 + j, b[1]) for j, b in enumerate(branches)] if branches else \
                [(0, r.pattern.needles)]
            for j, needles in parts:
                entry = i * _BRANCHES + j
                if needles is None:
                    always.append(entry)
                for n in needles or ():
                    by_needle.setdefault(n, []).append(entry)
        self.always = tuple(always)
        self.by_needle = {n: tuple(e) for n, e in by_needle.items()}
        self._literals = Literals(self.by_needle)
        self._entries = [self.by_needle[n] for n in self._literals.literals]

    def entries(self, folded: str) -> list:
        """The sorted entries that may match the case-folded text ``folded``."""
        idx = set(self.always)
        table = self._entries
        for i in self._literals.found(folded):
            idx.update(table[i])
        return sorted(idx)

    def candidates(self, folded: str) -> list:
        """``(rule index, branches)`` in rule order for the rules that may match ``folded``;
        ``branches`` lists the branch indices to run, or is ``None`` (run the whole pattern)."""
        return list(_grouped(self.entries(folded)))


def _grouped(entries):
    cur, branches = -1, None
    for e in entries:
        i, j = divmod(e, _BRANCHES)
        if i != cur:
            if cur >= 0:
                yield cur, branches
            cur, branches = i, (None if j == 0 else [j - 1])
        elif branches is not None:
            branches.append(j - 1)
    if cur >= 0:
        yield cur, branches


_TEXT_INDEX: dict = {}


def _text_index(packs) -> _TextIndex:
    hit = _BY_TUPLE.get(id(packs))
    if hit is not None and hit[0] is packs:  # a (memoised) pack tuple seen before
        return hit[1]
    if not isinstance(packs, (list, tuple)):
        packs = list(packs)
    # keyed by which packs, not by the list object: a stream of bounces names thousands of
    # remote MTAs, but only a few combinations of packs apply to them
    key = tuple(map(id, packs))
    index = _TEXT_INDEX.get(key)
    if index is None or any(a is not b for a, b in zip(index.packs, packs)):
        if len(_TEXT_INDEX) > 256:
            _TEXT_INDEX.clear()
        index = _TEXT_INDEX[key] = _TextIndex(list(packs))
    if isinstance(packs, tuple):
        if len(_BY_TUPLE) > 256:
            _BY_TUPLE.clear()
        _BY_TUPLE[id(packs)] = (packs, index)
    return index


# id of a pack tuple -> (the tuple, its index): the tuples come from memoised calls (the
# vendor packs of a pack set, the packs of a verdict), a few of which alternate per message
_BY_TUPLE: dict = {}


def find_text_rule(diagnostic: str, packs: Iterable[Pack], timeout: float,
                   status: Optional[str] = None):
    """First text rule of ``packs`` (in the order given) whose pattern matches; ``(pack, rule,
    match)`` or ``None``.  Rules with ``if_status`` are skipped unless ``status`` (the
    verdict's status so far) matches it.  Rules whose required literals are absent from the
    text are not run (see :class:`_TextIndex`)."""
    if not diagnostic:
        return None
    for pack, rule, branches in _rules_that_may_match(diagnostic, packs):
        m = _run_text_rule(rule, branches, diagnostic, timeout, status)
        if m:
            return pack, rule, m
    return None


def packs_with_matching_rule(diagnostic: str, packs: list, timeout: float,
                             status: Optional[str] = None) -> list:
    """The packs of ``packs`` (in order) that have a text rule matching ``diagnostic``, with
    the same ``if_status`` and prefilter logic as :func:`find_text_rule`."""
    if not diagnostic or not packs:
        return []
    found: list = []
    for pack, rule, branches in _rules_that_may_match(diagnostic, packs):
        if found and found[-1] is pack:
            continue  # rules are grouped by pack: this pack already matched
        if _run_text_rule(rule, branches, diagnostic, timeout, status):
            found.append(pack)
    return found


def _rules_that_may_match(diagnostic: str, packs):
    """``(pack, rule, branches)`` in rule order for the text rules of ``packs`` whose
    required literal sets all occur in ``diagnostic`` (see :class:`_TextIndex`);
    ``branches``: the branches to run, or ``None`` for the whole pattern."""
    global _LAST_FOLD
    index = _text_index(packs)
    last = _LAST_FOLD  # (one tuple: read and replaced whole, safe across threads)
    if last[0] is diagnostic:  # (the same text, read by the vendor's rules, then the verdict's)
        folded = last[1]
    else:
        folded = diagnostic.casefold()
        _LAST_FOLD = (diagnostic, folded)
    # (_grouped, _may_run and _all_groups inlined: the same rules and branches)
    found = index._literals.found(folded)
    entries = set(index.always)
    table = index._entries
    for k in found:
        entries.update(table[k])
    if not entries:
        return
    rules_ = index.rules
    cur, branches = -1, None
    for e in sorted(entries) + [-1]:
        i, j = divmod(e, _BRANCHES) if e >= 0 else (-1, 0)
        if i == cur:
            if branches is not None:
                branches.append(j - 1)
            continue
        if cur >= 0:
            pack, rule = rules_[cur]
            pattern = rule.pattern
            if branches is None:
                for g in pattern.more:
                    for n in g:
                        if n in folded:
                            break
                    else:
                        break
                else:
                    yield pack, rule, None
            else:
                bmore = pattern.branch_more
                if bmore:
                    keep = []
                    for b in branches:
                        if b < len(bmore):
                            for g in bmore[b]:
                                for n in g:
                                    if n in folded:
                                        break
                                else:
                                    break
                            else:
                                keep.append(b)
                        else:
                            keep.append(b)
                    branches = keep
                if branches:
                    yield pack, rule, branches
        cur, branches = i, (None if j == 0 else [j - 1])


_LAST_FOLD: tuple = (None, None)  # the last text _rules_that_may_match case-folded, and its fold


def _may_run(rule: TextRule, branches, folded: str):
    """The branches of a rule the index found (``None``: the whole pattern) that may still
    match once the pattern's other required literal sets are checked, or ``False``."""
    if branches is None:
        return None if _all_groups(rule.pattern.more, folded) else False
    branches = rule.pattern.branches_that_may_match(branches, folded)
    return branches or False


def _run_text_rule(rule: TextRule, branches, diagnostic: str, timeout: float,
                   status: Optional[str]):
    """The rule's match on ``diagnostic`` (its whole pattern, or the ``branches`` given), or
    ``None``; a rule with ``if_status`` runs only when ``status`` matches it."""
    if rule.if_status is not None and not (status and rule.if_status.search(status, timeout)):
        return None
    if branches is None:
        return rule.pattern.search(diagnostic, timeout)
    return rule.pattern.search_branches(diagnostic, timeout, branches)


def text_rule_packs(packs: Iterable[Pack], mtas: Iterable[Optional[str]], matched: Optional[Pack],
                    timeout: float) -> tuple:
    """The packs whose text rules apply to a verdict: the pack that recognised the message,
    vendor packs whose ``mta`` patterns match the remote or reporting MTA, then shared packs,
    then a generic pack (order 600 and up) that recognised the message.
    Memoised per pack set, matched pack and MTA names (the same few MTAs recur)."""
    mtas = tuple(m for m in mtas if m)
    key = (id(packs), id(matched), mtas)
    hit = _TRP_CACHE.get(key)
    if hit is not None and hit[0] is packs and hit[1] is matched:
        return hit[2]
    out = _text_rule_packs(packs, mtas, matched, timeout)
    if len(_TRP_CACHE) > 4096:
        _TRP_CACHE.clear()
    _TRP_CACHE[key] = (packs, matched, out)
    return out


_TRP_CACHE: dict = {}


def is_vendor_pack(pack: Pack) -> bool:
    """A pack that can be the vendor of a delivery-status report: a bounce format of one
    provider or MTA (not an auto-reply, feedback or generic fallback pack)."""
    return pack.kind == "bounce" and bool(pack.detects) and pack.order < 600


def vendor_text_packs(packs: tuple) -> tuple:
    """The vendor packs (:func:`is_vendor_pack`) that have text rules of their own, in order
    (memoised per pack set)."""
    hit = _VTP_CACHE.get(id(packs))
    if hit is None or hit[0] is not packs:
        hit = _VTP_CACHE[id(packs)] = (packs, tuple(
            p for p in packs if is_vendor_pack(p) and p.text_rules and not p.shared))
    return hit[1]


_VTP_CACHE: dict = {}


def _text_rule_packs(packs, mtas, matched, timeout) -> tuple:
    # a generic pack that recognised the message (not a vendor: order 600 and up) comes after
    # the shared phrase lists, which are the one reason classifier for formats no vendor pack
    # knows; its own rules only name what the shared lists do not
    vendor, shared, generic = [], [], []
    for p in packs:
        if not p.text_rules:
            continue
        if p.shared:
            shared.append(p)
        elif p is matched and not p.mta and not is_vendor_pack(p):
            generic.append(p)
        elif p is matched or (p.mta and any(pt.search(m, timeout) for pt in p.mta for m in mtas)):
            vendor.append(p)
    return tuple(vendor + shared + generic)
