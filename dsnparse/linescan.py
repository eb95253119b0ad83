"""Searching a text only on the lines that can hold a match of a line-local rule pattern.

Most recipient patterns and returned-original markers describe one line (``^[ \\t]*<?(?P<recipient>
[^\\s<>…]+@…)>?[ \\t]*$``), and every match holds a literal (``@``, ``--``, a label).  The
``regex`` package tries such a pattern at every position of the text, so a report of a few
kilobytes costs tens of microseconds per pattern even when only three lines hold an ``@``.

A pattern is *line-local* (:func:`is_line_local`) when nothing in it, look-arounds included,
can match a newline, and it has no anchor of the whole string (``\\A``, ``\\Z``) nor a flag
that changes the meaning of ``^``, ``$`` or ``.``: every match and everything a look-around
reads then lies within one line, and ``^``, ``$``, ``\\b`` and a look-behind at the edge of a
line see the same on the line alone as in the whole text (a newline or nothing, neither of
which such a pattern can match).  When, in addition, every match holds one of a set of literals
(:func:`dsnparse.rules.required_literal_groups` with no minimum length; :func:`anchor_literals`),
only the lines where one of them occurs can hold a match (:func:`line_spans`): searching each
of those lines alone (``finditer(text, start, end)``) finds the same matches, in the same
order, at the same places, as the search over the whole text.

The standard library's parser reads the patterns (the ``regex`` package's syntax beyond it —
``\\p{…}``, fuzzy matching, possessive repeats before Python 3.11 — is not line-local here:
such a pattern is searched over the whole text, as before).
"""
from __future__ import annotations

import re
from typing import Optional

from .backtrack import _syntax_known

try:  # Python 3.11+
    from re import _constants as _c, _parser as _sre
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

_NL = ord("\n")
# inline flags (scoped or global) could turn DOTALL on or MULTILINE off: not analysed
_INLINE_FLAGS = re.compile(r"\(\?[a-zA-Z^-]+[:)]")
_REPEATS = frozenset(getattr(_c, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                     if hasattr(_c, n))
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)
# categories (\s, \d, \w and their negations) that contain a newline
_NL_CATEGORIES = frozenset(getattr(_c, n) for n in (
    "CATEGORY_SPACE", "CATEGORY_NOT_DIGIT", "CATEGORY_NOT_WORD", "CATEGORY_LINEBREAK",
    "CATEGORY_UNI_SPACE", "CATEGORY_UNI_NOT_DIGIT", "CATEGORY_UNI_NOT_WORD",
    "CATEGORY_UNI_LINEBREAK", "CATEGORY_LOC_NOT_WORD") if hasattr(_c, n))
_KNOWN_CATEGORIES = _NL_CATEGORIES | frozenset(getattr(_c, n) for n in (
    "CATEGORY_NOT_SPACE", "CATEGORY_DIGIT", "CATEGORY_WORD", "CATEGORY_NOT_LINEBREAK",
    "CATEGORY_UNI_NOT_SPACE", "CATEGORY_UNI_DIGIT", "CATEGORY_UNI_WORD",
    "CATEGORY_UNI_NOT_LINEBREAK", "CATEGORY_LOC_WORD") if hasattr(_c, n))
# anchors that behave alike on a line alone and in the whole text, under MULTILINE
_LINE_ANCHORS = frozenset(getattr(_c, n) for n in (
    "AT_BEGINNING", "AT_BEGINNING_LINE", "AT_END", "AT_END_LINE", "AT_BOUNDARY",
    "AT_NON_BOUNDARY", "AT_UNI_BOUNDARY", "AT_UNI_NON_BOUNDARY") if hasattr(_c, n))


class _NotLocal(Exception):
    pass


def is_line_local(source: str, flags: int = re.I | re.M) -> bool:
    """``True`` when no match of ``source`` (compiled with ``flags``, which must hold
    ``re.M`` and not ``re.S``) nor any look-around of it can extend over a newline, and the
    pattern has no anchor of the whole string: its matches on a text are the matches on each
    line alone.  ``False`` when that is not so or the analysis cannot tell (syntax the
    standard library's parser does not read as the ``regex`` package does).  Never raises."""
    if not flags & re.M or flags & re.S or flags & re.X or not _syntax_known(source, flags) \
            or _INLINE_FLAGS.search(source) or "\\p" in source or "\\P" in source \
            or "\\N" in source or "[[:" in source:
        return False
    try:
        _check(_sre.parse(source, flags & (re.I | re.M)))
    except (_NotLocal, re.error, RecursionError, OverflowError, TypeError, ValueError,
            AttributeError):
        return False
    return True


def _check(items) -> None:
    for op, av in getattr(items, "data", items):
        if op is _c.LITERAL:
            if av == _NL:
                raise _NotLocal
        elif op is _c.NOT_LITERAL:
            if av != _NL:
                raise _NotLocal
        elif op is _c.IN:
            if _class_has_newline(av):
                raise _NotLocal
        elif op is _c.ANY:
            continue  # "." without DOTALL: any character but a newline
        elif op is _c.AT:
            if av not in _LINE_ANCHORS:
                raise _NotLocal  # \A, \Z
        elif op is _c.CATEGORY:
            if av in _NL_CATEGORIES or av not in _KNOWN_CATEGORIES:
                raise _NotLocal
        elif op is _c.SUBPATTERN:
            if len(av) >= 4 and (av[1] or av[2]):
                raise _NotLocal  # scoped flags
            _check(av[-1])
        elif op is _c.BRANCH:
            for alt in av[1]:
                _check(alt)
        elif op in _REPEATS:
            _check(av[2])
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            _check(av[1])
        elif op is _c.GROUPREF:
            continue  # what the group matched, within the line
        elif op is _c.GROUPREF_EXISTS:
            _check(av[1])
            if av[2] is not None:
                _check(av[2])
        elif _ATOMIC is not None and op is _ATOMIC:
            _check(av)
        else:
            raise _NotLocal


def _class_has_newline(items) -> bool:
    negate = False
    has = False
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            has = has or av == _NL
        elif op is _c.RANGE:
            has = has or av[0] <= _NL <= av[1]
        elif op is _c.CATEGORY:
            if av not in _KNOWN_CATEGORIES:
                raise _NotLocal
            has = has or av in _NL_CATEGORIES
        else:  # a big charset or anything else: not analysed
            raise _NotLocal
    return has != negate


def _caseless(literals) -> bool:
    """``True`` when every character of ``literals`` is ASCII without case (``@``, ``-``,
    digits): a case-insensitive pattern matches each of them only as written."""
    return all(s.isascii() and s.lower() == s.upper() for s in literals)


def anchor_literals(groups) -> Optional[frozenset]:
    """The literal set whose lines are searched, from the required literal sets of a
    line-local pattern: ``{"@"}`` when every match holds an ``@`` (recipient patterns),
    else the most selective set whose literals are at least 2 characters long; ``None``
    when there is none (a lone common character would select most lines)."""
    best = None
    for g in groups:
        if g == {"@"}:
            return frozenset(g)
        if g and min(map(len, g)) >= 2 and "\n" not in "".join(g):
            if best is None or (min(map(len, g)), -len(g)) > (min(map(len, best)), -len(best)):
                best = g
    return frozenset(best) if best else None


MAX_LINES = 32  # more candidate lines than this: one search over the whole text instead


def line_spans(text: str, literals, folded: Optional[str] = None) -> Optional[list]:
    """``[(start, end)]`` of the lines of ``text`` (``end`` at the newline or the end of the
    text) that hold one of ``literals`` (lower case, no newline), in order.

    Args:
        text: the text to be searched.
        literals: the literals (:func:`anchor_literals`).
        folded: ``text.casefold()`` when the caller has it (needed only for literals with
            case; made here otherwise).

    Returns ``None`` when the lines cannot be found exactly (a literal with case and a text
    whose case-folded form has another length) or there are more than :data:`MAX_LINES` of
    them: search the whole text then."""
    if _caseless(literals):
        hay = text
    else:
        if folded is None:
            folded = text.casefold()
        if len(folded) != len(text):
            return None
        hay = folded
    starts = set()
    for lit in literals:
        pos = hay.find(lit)
        while pos >= 0:
            starts.add(hay.rfind("\n", 0, pos) + 1)
            if len(starts) > MAX_LINES:
                return None
            e = hay.find("\n", pos)
            if e < 0:
                break
            pos = hay.find(lit, e)
    spans = []
    n = len(text)
    for s in sorted(starts):
        e = text.find("\n", s)
        spans.append((s, n if e < 0 else e))
    return spans
