"""Which packs apply to a message.

At load, :func:`_triggers` derives the literal groups a pack's detection requires.  Per
message, :class:`Folded` holds the case-folded views, :class:`Dispatch` (one automaton over
every pack's triggers) lists the packs that may recognise it, and :func:`detect` runs a
pack's ``detect`` conditions (header tests first, results memoised per message), saying why
not for ``dsnparse explain``.
"""
from __future__ import annotations

import itertools
from typing import Optional

from .automaton import Literals, _MANY_BRANCHES, present_branches
from .literals import _MIN_NEEDLE, _best, _selectivity, required_literal_groups
from .pack import Condition, Pack


def _triggers(keywords, detect_any, detect_all) -> Optional[tuple]:
    """Groups of case-folded literals such that the pack can only recognise a message whose
    header section plus report text (:meth:`Folded.all`) holds a literal of every group;
    ``None`` when no group can be derived (the pack is always tried).

    The pack's ``keywords`` form a group.  Each ``detect.all`` condition gives the literal
    groups its pattern requires (:func:`required_literal_groups`) and, for a header
    condition, ``name:`` (the field must be present).  ``detect.any`` (one condition must
    hold) gives the groups of the disjunction: one literal set per choice of one group from
    each condition, their union (at most :data:`_MAX_ANY_GROUPS` of them; else one group,
    the most selective group of each condition merged).
    """
    groups = []
    if keywords:
        groups.append(frozenset(keywords))
    for c in detect_all:
        groups.extend(_condition_literals(c))
    if detect_any:
        per = [_condition_literals(c) for c in detect_any]
        if all(per):
            n = 1
            for g in per:
                n *= len(g)
            if n <= _MAX_ANY_GROUPS:
                groups.extend(frozenset().union(*choice) for choice in itertools.product(*per))
            else:
                groups.append(frozenset().union(*(_best(g) for g in per)))
    # a group of many literals (a vocabulary's phrase list) filters little and would make
    # every message's dispatch pass report its matches: such a condition is checked by its
    # own automaton when the pack is tried (present_branches)
    groups = sorted({g for g in groups if len(g) <= _MAX_TRIGGER_LITERALS}, key=_selectivity)
    return tuple(groups[:_MAX_GROUPS]) or None


_MAX_TRIGGER_LITERALS = 64
_MAX_ANY_GROUPS = 16
_MAX_GROUPS = 3  # the most selective (longest shortest literal) are kept: enough to decide


def _condition_literals(c) -> list:
    """The literal sets a condition's match requires in :meth:`Folded.all` (one literal of
    each set)."""
    out = []
    for needles in required_literal_groups(c.pattern.source):
        if c.target == "header":
            # the header section is searched as written: a field may be folded (RFC 5322
            # §2.2.3) at any white space of a literal, so only its longest run without white
            # space is sure to be there
            needles = frozenset(max(n.split(), key=len, default="") for n in needles)
            if min(map(len, needles)) < _MIN_NEEDLE:
                continue
        out.append(needles)
    if c.target == "header":
        out.append(frozenset({c.name.casefold() + ":"}))
    return out


def _describe(c: Condition) -> str:
    src = c.pattern.source if len(c.pattern.source) <= 70 else c.pattern.source[:69] + "…"
    return f"{c.target}{':' + c.name if c.name else ''} ~ /{src}/"


class Folded:
    """Case-folded views of one message for the cheap prefilter (computed once, lazily):
    ``body()`` the report text, ``all()`` the header section and the report text.
    ``has(needle)`` memoises ``needle in all()`` (packs share needles)."""

    def __init__(self, headers, body):
        self._headers, self._body = headers, body
        self._b: Optional[str] = None
        self._a: Optional[str] = None
        self._h: Optional[str] = None
        self._has: dict = {}
        self.found: Optional[set] = None  # the literals of ``scanned`` present (Dispatch)
        self.scanned: frozenset = frozenset()  # literals the Dispatch automaton looked for

    def has_any(self, needles) -> bool:
        """``True`` when one of ``needles`` occurs in the header section or the report text
        (results memoised; the header section is looked at first, the text only if needed)."""
        known = self._has
        found, scanned = self.found, self.scanned
        pending = []
        for n in needles:
            if found is not None and n in scanned:
                if n in found:
                    return True
                continue
            v = known.get(n)
            if v is None:
                pending.append(n)
            elif v:
                return True
        if not pending:
            return False
        head = self.headers()
        for n in pending:
            if n in head:
                known[n] = True
                return True
        body = self.body()
        found = False
        for n in pending:
            v = known[n] = n in body
            found = found or v
        return found

    def headers(self) -> str:
        if self._h is None:
            self._h = self._headers().casefold()
        return self._h

    def body(self) -> str:
        if self._b is None:
            self._b = self._body().casefold()
        return self._b

    def all(self) -> str:
        if self._a is None:
            self._a = self.headers() + "\n" + self.body()
        return self._a


class Dispatch:
    """Which packs can recognise a message: one pass over its text finds every packs'
    trigger literal at once (:class:`Literals`, a DFA), so the cost of dispatch grows with
    the text, not with the number of packs.

    ``candidates(folded)`` returns the indices (in pack order) of the packs with detection
    whose triggers occur, plus those whose triggers cannot be derived (always tried).
    """

    def __init__(self, packs: tuple):
        self.packs = packs
        self.always = [i for i, p in enumerate(packs) if p.detects and p.triggers is None]
        # packs are indexed by the literals of their first (most selective) group; the
        # automaton looks for every group's literals, so the other groups are set look-ups
        self.by_needle: dict = {}  # literal of a pack's first group -> pack indices
        self.rest: dict = {}  # pack index -> its other groups
        needles: set = set()
        for i, p in enumerate(packs):
            if p.detects and p.triggers:
                for n in p.triggers[0]:
                    self.by_needle.setdefault(n, []).append(i)
                if len(p.triggers) > 1:
                    self.rest[i] = p.triggers[1:]
                needles.update(*p.triggers)
        self.needles = frozenset(needles)
        self._literals = Literals(sorted(needles), dfa=True)

    def candidates(self, folded: "Folded") -> list:
        lits = self._literals.literals
        found = {lits[i] for i in self._literals.found(folded.all())}
        folded.found, folded.scanned = found, self.needles
        idx = set()
        by_needle = self.by_needle
        for n in found:
            hit = by_needle.get(n)
            if hit is not None:
                idx.update(hit)
        rest = self.rest
        out = list(self.always)
        for i in idx:  # (a pack with more groups: one of each group's literals occurs too)
            groups = rest.get(i)
            if groups is not None:
                for g in groups:
                    if found.isdisjoint(g):
                        break
                else:
                    out.append(i)
            else:
                out.append(i)
        return sorted(out)


_DISPATCH: dict = {}


def dispatch_for(packs: tuple) -> Dispatch:
    """The :class:`Dispatch` of a pack tuple (built once per loaded pack set)."""
    d = _DISPATCH.get(id(packs))
    if d is None or d.packs is not packs:
        d = _DISPATCH[id(packs)] = Dispatch(packs)
    return d


def may_apply(pack: Pack, folded: Optional[Folded]) -> bool:
    """``False`` when a group of the pack's trigger literals (its ``keywords``, the literals
    its detection requires) is absent from the message."""
    if pack.triggers is None or folded is None:
        return True
    for group in pack.triggers:
        if not folded.has_any(group):
            return False
    return True


def detect(pack: Pack, header, body, timeout: float, why_not: Optional[list] = None,
           folded: Optional[Folded] = None, memo: Optional[dict] = None) -> Optional[str]:
    """Return a description of the condition that recognised the message, or ``None``.

    Args:
        header: callable ``name -> str`` giving a header's unfolded value (``""`` if absent).
        body: callable ``() -> str`` giving the report text (computed only when needed).
        why_not: a list that, when given, receives why the pack did not recognise the message
            (for ``dsnparse explain``).
        folded: the message's :class:`Folded` views; when given, the pack's ``keywords`` and
            each body pattern's required literals are checked with ``in`` before any pattern
            runs (a pattern that cannot match is not run).
        memo: a per-message ``dict`` of condition results: packs share conditions (the
            generic packs' "from a mail system" test), so each runs once per message.
    """
    if folded is not None and not may_apply(pack, folded):
        if why_not is not None:
            why_not.append("none of its keywords or required literals occurs in the message")
        return None

    if memo is None:
        memo = {}
    # The outcome is the same in any order (none: no match; all: every one; any: one); the
    # header tests run first, as they are cheap and most messages fail them (ordinary mail is
    # neither from a mail system nor titled as a bounce), so the body searches of a generic
    # pack cost ordinary mail nothing.  ``dsnparse explain`` keeps the documented order.
    if why_not is None and pack.detect_any and all(c.target == "header" for c in pack.detect_any):
        for c in pack.detect_all:
            if c.target == "header" and not _test(c, header, body, timeout, folded, memo):
                return None
        if not any(_test(c, header, body, timeout, folded, memo) for c in pack.detect_any):
            return None
    for c in pack.detect_none:
        m = _test(c, header, body, timeout, folded, memo)
        if m:
            if why_not is not None:
                why_not.append(f"excluded by detect.none {_describe(c)} matching {m.group(0)[:80]!r}")
            return None
    # header conditions first: a header value is short, the report text may not be (the
    # verdict is the same in any order: every detect.all condition and one detect.any must hold)
    for c in pack.detect_all:
        if c.target == "header" and not _test(c, header, body, timeout, folded, memo):
            if why_not is not None:
                why_not.append(f"detect.all {_describe(c)} did not match")
            return None
    found = None
    if pack.detect_any:
        for c in pack.detect_any:
            m = _test(c, header, body, timeout, folded, memo)
            if m:
                found = f"{_describe(c)} matched {m.group(0)[:80]!r}"
                break
        else:
            if why_not is not None:
                why_not.append("no detect.any condition matched")
            return None
    for c in pack.detect_all:
        if c.target != "header" and not _test(c, header, body, timeout, folded, memo):
            if why_not is not None:
                why_not.append(f"detect.all {_describe(c)} did not match")
            return None
    found = found or "all conditions matched"
    if why_not is not None and (pack.detect_all or len(pack.detect_any) > 1):
        return f"{found}; {_evidence(pack, header, body, timeout, folded, memo)}"
    return found


def _evidence(pack: Pack, header, body, timeout: float, folded, memo: dict) -> str:
    """Every condition that holds on a recognised message (for ``dsnparse explain``): the
    ``detect.all`` conditions and each ``detect.any`` condition that matched."""
    held = []
    for where, conds in (("all", pack.detect_all), ("any", pack.detect_any)):
        for c in conds:
            m = _test(c, header, body, timeout, folded, memo)
            if m:
                held.append(f"detect.{where} {_describe(c)} matched {m.group(0)[:60]!r}")
    return "evidence: " + "; ".join(held)


def _test(c: Condition, header, body, timeout: float, folded: Optional[Folded], memo: dict):
    """One detection condition's match (or ``None``), memoised per message."""
    key = c.key
    if key in memo:
        return memo[key]
    m = None
    pattern = c.pattern
    if pattern.branches is not None and len(pattern.branches) > _MANY_BRANCHES:
        # a long list of phrases (a vocabulary placeholder): one pass finds the branches
        # whose literals occur, and only those run
        text = header(c.name) if c.target == "header" else body()
        if text:
            f = text.casefold() if c.target == "header" else (folded.body() if folded else text.casefold())
            which = present_branches(pattern, f)
            m = pattern.search_branches(text, timeout, which) if which else None
    elif c.target == "header":
        text = header(c.name)
        if text and (pattern.needles is None or pattern.may_match(text.casefold())):
            m = pattern.search(text, timeout)
    elif folded is None or pattern.needles is None or pattern.may_match(folded.body()):
        text = body()
        m = pattern.search(text, timeout) if text else None
    memo[key] = m
    return m
