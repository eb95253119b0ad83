"""A rule pattern (:class:`Pattern`): compiled with the ``regex`` package on first use (or
loaded from the pack cache's pickle of its program), searched under a time limit.

Every search runs with a time limit (``Options.pattern_timeout``, within the message's
budget, :mod:`dsnparse.budget`): a pattern that times out is reported once through
``logging`` (logger ``dsnparse.rules``) and counts as "no match", so a bad pattern cannot
hang a run.  A search whose backtracking is bounded by the pattern and the text's length
(:mod:`dsnparse.backtrack`) runs without the timer on texts short enough for the bound to
stay small (:func:`_search`).
"""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from typing import Optional

from .. import budget as _budget
from .. import linescan
from .literals import _all_groups

log = logging.getLogger("dsnparse.rules")


def _regex():
    import regex

    return regex


def _pattern_flags() -> int:
    """The flags every rule pattern has: case-insensitive, ``^``/``$`` at line ends, ``regex``
    version 0 (``re``-compatible).  Part of the pack cache's key."""
    regex = _regex()
    return int(regex.I | regex.M | regex.V0)


def _compile_source(source: str):
    """Compile a rule pattern (whole or one branch) with :func:`_pattern_flags`."""
    return _regex().compile(source, _pattern_flags())


def _compiled_from(code: Optional[bytes], source: str):
    """The compiled pattern from the pack cache's pickle of it (``regex`` pickles a pattern
    as its compiled program, and loading it skips the pattern parser), or compiled from
    ``source`` when there is none or it is not a pattern of ``source``.  The ``regex``
    package trusts a pickled program: the pack cache is checked whole when it is read (see
    :func:`.cache._cache_read`), and its key holds the ``regex`` version and the flags."""
    if code is not None:
        try:
            compiled = pickle.loads(code)
            if isinstance(compiled, _regex().Pattern) and compiled.pattern == source:
                return compiled
        except Exception:  # noqa: BLE001 - not a pickle of a pattern: compile instead
            pass
    return _compile_source(source)


@dataclass(frozen=True)
class Pattern:
    """A pattern, compiled on first use, and where it was written (for error and timeout
    messages).  ``needles``: lower-case literals of which one must occur in any text the
    pattern matches (derived from the pattern, see :func:`.literals.required_literals`), or
    ``None``."""

    source: str
    where: str
    needles: Optional[frozenset] = None
    _cell: list = field(default_factory=list, compare=False, repr=False)
    # a top-level alternation of many phrases, as (branch source, needles) pairs: see
    # :func:`.literals.split_branches` and :meth:`search_branches`
    branches: Optional[tuple] = None
    _bcell: list = field(default_factory=list, compare=False, repr=False)
    # the longest text the pattern (and each branch) may search without the timeout: its
    # backtracking is bounded (see dsnparse.backtrack); -1: always timed
    untimed: int = -1
    branch_untimed: Optional[tuple] = None
    # the other literal sets every match requires one of (required_literal_groups, beyond
    # ``needles``; at most _MAX_MORE), for the whole pattern and for each branch
    more: tuple = ()
    branch_more: Optional[tuple] = None
    # the compiled pattern and branches as the ``regex`` package pickles them (its program,
    # not only the source): kept by the pack cache, loaded on first use about 20x faster
    # than compiling (see _compiled_from)
    _code: Optional[bytes] = field(default=None, compare=False, repr=False)
    _bcode: Optional[tuple] = field(default=None, compare=False, repr=False)
    # a line-local pattern (dsnparse.linescan): literals of which one occurs on the line of
    # every match; only the lines holding one are searched.  None: search the whole text
    line_literals: Optional[frozenset] = None

    @property
    def compiled(self):
        if not self._cell:
            self._cell.append(_compiled_from(self._code, self.source))
        return self._cell[0]

    def __getstate__(self):
        """The state the pack cache pickles: the compiled objects as the ``regex`` package
        pickles them (the branches compiled here if they are not yet)."""
        code, bcode = self._code, self._bcode
        if code is None:
            code = pickle.dumps(self.compiled, pickle.HIGHEST_PROTOCOL)
        if bcode is None and self.branches:
            bcode = tuple(pickle.dumps(_compile_source(b), pickle.HIGHEST_PROTOCOL)
                          for b, _ in self.branches)
        return {"source": self.source, "where": self.where, "needles": self.needles, "_cell": [],
                "branches": self.branches, "_bcell": [], "untimed": self.untimed,
                "branch_untimed": self.branch_untimed, "more": self.more,
                "branch_more": self.branch_more, "_code": code, "_bcode": bcode,
                "line_literals": self.line_literals}

    def search_branches(self, text: str, timeout: float, which):
        """``search`` run as the branches ``which`` (indices into :attr:`branches`) only: the
        leftmost match among them, the first branch on a tie — what the whole alternation
        returns, when the other branches lack their required literals and cannot match."""
        cells = self._bcell
        if not cells:
            cells.extend([None] * len(self.branches))  # each compiled on first use
        best = None
        limits = self.branch_untimed or ()
        for j in which:
            compiled = cells[j]
            if compiled is None:
                bcode = self._bcode
                compiled = cells[j] = _compiled_from(
                    bcode[j] if bcode and j < len(bcode) else None, self.branches[j][0])
            try:
                m = _search(compiled, text, limits[j] if j < len(limits) else -1, timeout)
            except TimeoutError:
                _timed_out(self.where)
                return None
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        return best

    def may_match(self, folded: str) -> bool:
        """``False`` when the pattern cannot match the case-folded text: none of its
        ``needles`` occurs, or none of one of its ``more`` literal sets."""
        needles = self.needles
        if needles is None:
            return True
        for n in needles:
            if n in folded:
                break
        else:
            return False
        return _all_groups(self.more, folded)

    def branches_that_may_match(self, which, folded: str) -> list:
        """The branches of ``which`` whose ``branch_more`` literal sets all occur in
        ``folded`` (their ``needles`` are known to occur)."""
        more = self.branch_more
        if not more:
            return which
        return [j for j in which if j >= len(more) or _all_groups(more[j], folded)]

    def search(self, text: str, timeout: float):
        cell = self._cell
        try:
            return _search(cell[0] if cell else self.compiled, text, self.untimed, timeout)
        except TimeoutError:
            _timed_out(self.where)
            return None

    def finditer(self, text: str, timeout: float):
        try:
            if len(text) <= self.untimed:  # (see _search)
                return list(self.compiled.finditer(text))
            return list(self.compiled.finditer(text, 0, None, False, None, False,
                                               _budget.timeout(timeout)))
        except TimeoutError:
            _timed_out(self.where)
            return []

    def line_spans(self, text: str, folded: Optional[str] = None) -> Optional[list]:
        """The ``(start, end)`` of the lines of ``text`` that can hold a match (see
        :mod:`dsnparse.linescan`), or ``None``: search the whole text.  ``folded``:
        ``text.casefold()`` when the caller has it."""
        lits = self.line_literals
        return None if lits is None else linescan.line_spans(text, lits, folded)

    def finditer_lines(self, text: str, spans: list, timeout: float) -> list:
        """:meth:`finditer` over the lines ``spans`` of ``text`` only (from
        :meth:`line_spans`): the same matches, as the pattern is line-local."""
        compiled = self.cell_compiled()
        untimed = self.untimed
        out: list = []
        try:
            for s, e in spans:
                if e - s <= untimed:
                    out.extend(compiled.finditer(text, s, e))
                else:
                    out.extend(compiled.finditer(text, s, e, False, None, False,
                                                 _budget.timeout(timeout)))
        except TimeoutError:
            _timed_out(self.where)
            return []
        return out

    def search_lines(self, text: str, spans: list, timeout: float):
        """:meth:`search` over the lines ``spans`` of ``text`` only: the leftmost match."""
        compiled = self.cell_compiled()
        untimed = self.untimed
        try:
            for s, e in spans:
                if e - s <= untimed:
                    m = compiled.search(text, s, e)
                else:
                    m = compiled.search(text, s, e, None, False, _budget.timeout(timeout))
                if m is not None:
                    return m
        except TimeoutError:
            _timed_out(self.where)
        return None

    def cell_compiled(self):
        cell = self._cell
        return cell[0] if cell else self.compiled


def _search(compiled, text: str, untimed: int, timeout: float):
    """``compiled.search(text)``, under the ``regex`` timeout unless ``text`` is at most
    ``untimed`` characters long (the pattern's backtracking is then bounded, see
    :mod:`dsnparse.backtrack`): the timeout reads the process CPU clock twice, two system
    calls that cost more than a typical diagnostic's search.  The ``regex`` methods are called
    with positional arguments — ``search(string, pos, endpos, concurrent, partial, timeout)``,
    ``finditer(string, pos, endpos, overlapped, concurrent, partial, timeout)`` — as keyword
    parsing costs ~0.4 µs a call.

    A timed search gets at most the time left in the message's budget
    (:func:`dsnparse.budget.timeout`).

    Raises:
        TimeoutError: the timed search ran out of time.
        MessageTimeout: the message's time budget had run out before the search.
    """
    if len(text) <= untimed:
        return compiled.search(text)
    return compiled.search(text, 0, None, None, False, _budget.timeout(timeout))


_REPORTED: set = set()


def _timed_out(where: str) -> None:
    """A search of the pattern ``where`` timed out: when the message's budget has run out
    (the search had only the time left), :class:`~dsnparse.errors.MessageTimeout` naming the
    pattern; else the pattern is logged once and counts as not matching."""
    _budget.check(f"the rule pattern at {where}")
    if where not in _REPORTED:
        _REPORTED.add(where)
        log.warning("pattern timed out and was skipped: %s", where)
