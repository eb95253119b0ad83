"""Rule packs: YAML files that describe a vendor's bounce format (see ``rules/README.md``).

A pack is data: how its bounces are recognised (header and body patterns), where the error
report starts and where the returned original starts, recipient patterns with named groups,
and text rules that map diagnostic text to a reason and an enhanced status.  Packs are found
by walking ``rules/`` (and the user's ``--rules`` directories, which come first; a user pack
with the id of a shipped one replaces it).  Adding a vendor is one YAML file and a sample.

Every pattern is compiled with the ``regex`` package and run with a time limit
(``Options.pattern_timeout``): a pattern that times out is reported once through ``logging``
and counts as "no match", so a bad pattern cannot hang a run.  A search whose backtracking
is bounded by the pattern and the text's length (:mod:`dsnparse.backtrack`) runs without the
timer on texts short enough for the bound to stay small.

Validation happens at load: bad YAML, an unknown key, a wrong type or a pattern that does not
compile raises :class:`~dsnparse.errors.RuleError` naming the file, the rule and the field.
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional

from . import budget as _budget
from .backtrack import top_level_bars, untimed_length
from .errors import RuleError
from . import linescan
from . import vocabulary
from .resources import rules_dir
from .status import find_codes

log = logging.getLogger("dsnparse.rules")

DATA_FILES = {"codes.yaml", "reasons.yaml", "policy.yaml", "faults.yaml"}
KINDS = ("bounce", "auto_reply", "complaint")
# RFC 3464 §2.3.3 actions a recipient rule may state (a pack may describe a provider's own
# delivery notification: ``delivered`` recipients make the report kind ``delivered``)
RECIPIENT_ACTIONS = ("failed", "delayed", "delivered")


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
    :func:`_cache_read`), and its key holds the ``regex`` version and the flags."""
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
    pattern matches (derived from the pattern, see :func:`required_literals`), or ``None``."""

    source: str
    where: str
    needles: Optional[frozenset] = None
    _cell: list = field(default_factory=list, compare=False, repr=False)
    # a top-level alternation of many phrases, as (branch source, needles) pairs: see
    # :func:`split_branches` and :meth:`search_branches`
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


@dataclass(frozen=True)
class Condition:
    """One detection test: a pattern on a header (``header``) or on the report text (``body``)."""

    target: str  # "header" or "body"
    name: Optional[str]  # header name (lower case) for header conditions
    pattern: Pattern
    key: tuple = field(init=False, compare=False, repr=False)  # the per-message memo key

    def __post_init__(self):
        object.__setattr__(self, "key", (self.target, self.name, self.pattern.source))


@dataclass(frozen=True)
class RecipientRule:
    """A recipient pattern: named groups ``recipient``, ``reply_code``, ``status``,
    ``diagnostic``, ``remote_mta``; ``continuation`` extends the diagnostic over following
    lines (``indented``: lines starting with whitespace; ``paragraph``: up to a blank line,
    the next paragraph when the matched line ends the match's own; ``block``: the lines
    that directly follow, up to a blank line or a line that starts with an address, nothing
    when the next line is blank)."""

    id: str
    pattern: Pattern
    header: Optional[str] = None
    continuation: Optional[str] = None
    action: str = "failed"
    section_start: Optional[Pattern] = None
    section_end: Optional[Pattern] = None


@dataclass(frozen=True)
class TextRule:
    """Diagnostic text → reason (and optionally an enhanced status).  ``if_status``, when
    set, restricts the rule to verdicts whose status so far matches it."""

    id: str
    pattern: Pattern
    reason: Optional[str] = None
    status: Optional[str] = None
    if_status: Optional[Pattern] = None


@dataclass(frozen=True)
class Pack:
    """One rule pack (one YAML file).  See ``rules/README.md`` for every field."""

    id: str
    path: str
    order: int = 500
    kind: str = "bounce"
    description: str = ""
    mta: tuple = ()
    detect_any: tuple = ()
    detect_all: tuple = ()
    detect_none: tuple = ()
    report_start: tuple = ()
    original_start: tuple = ()
    recipients: tuple = ()
    text_rules: tuple = ()
    samples: tuple = ()
    needs_recipient: bool = True
    header_names: frozenset = frozenset()
    feedback_type: Optional[str] = None
    exclude_notified: bool = False
    recipient_from_original: bool = False
    keywords: tuple = ()
    # the labelled corpus families the pack was written from (``dsnparse eval --leave-out``)
    written_from: tuple = ()
    # groups of case-folded literals; the pack can only recognise a message in whose header
    # section plus report text every group has a literal (None: no literal can be derived)
    triggers: Optional[tuple] = None

    @property
    def detects(self) -> bool:
        """``True`` when the pack recognises messages (else it only carries text rules)."""
        return bool(self.detect_any or self.detect_all)

    @property
    def shared(self) -> bool:
        """``True`` for a pack whose text rules apply to any MTA (no ``mta``, no detection)."""
        return not self.mta and not self.detects


# --------------------------------------------------------------------------- schema

_TOP = {
    "id": str, "description": str, "order": int, "kind": str, "mta": list, "detect": dict,
    "report_start": list, "original_start": list, "recipients": list, "text_rules": list,
    "samples": list, "needs_recipient": bool, "feedback_type": str,
    "exclude_notified": bool, "recipient_from_original": bool,
    "keywords": list, "written_from": list,
}
_DETECT = {"any": list, "all": list, "none": list}
_COND = {"header": str, "body": str, "pattern": str}
_RCPT = {"id": str, "pattern": str, "header": str, "continuation": str, "action": str,
         "section_start": str, "section_end": str}
_TEXT = {"id": str, "pattern": str, "reason": str, "status": str, "if_status": str}


def _check_keys(path, obj, schema, rule, where):
    if not isinstance(obj, dict):
        raise RuleError(path, f"expected a mapping, got {type(obj).__name__}", rule, where)
    for k, v in obj.items():
        if k not in schema:
            raise RuleError(path, f"unknown key (allowed: {', '.join(sorted(schema))})", rule,
                            f"{where}.{k}" if where else k)
        want = schema[k]
        if want is int and isinstance(v, bool) or not isinstance(v, want):
            raise RuleError(path, f"expected {want.__name__}, got {type(v).__name__}", rule,
                            f"{where}.{k}" if where else k)


# Counted repeats: the regex package unrolls them when compiling, so ``x{1000000000}`` takes
# minutes and gigabytes (the match timeout does not cover compiling); no bounce format needs
# more than MAX_REPEAT in one count, nor a program of more than MAX_PROGRAM atoms once the
# counts are unrolled, nested ones multiplied (``(?:(?:x{10000}){10000})``: 10^8).  The
# shipped packs' largest is about a thousand.
MAX_REPEAT = 10_000
MAX_PROGRAM = 100_000


def check_pattern_size(source: str) -> Optional[str]:
    """Why ``source`` would take too long or too much memory to compile, or ``None``.

    Reads the counted repeats as syntax (:func:`dsnparse.backtrack.counted_repeats`: an
    escaped backslash before ``{n}`` does not hide the repeat, a ``\\{`` is no repeat) and
    bounds each count by :data:`MAX_REPEAT` and the unrolled program
    (:func:`dsnparse.backtrack.program_size`, counts of nested repeats multiplied) by
    :data:`MAX_PROGRAM`.  Linear in ``len(source)``; never compiles anything."""
    from .backtrack import counted_repeats, program_size

    try:
        for _, text, low, high in counted_repeats(source):
            if (low or 0) > MAX_REPEAT or (high or 0) > MAX_REPEAT:
                return f"repeat count {text} is larger than {MAX_REPEAT}"
        size = program_size(source)
    except ValueError as e:  # a class that is never closed
        return f"pattern does not compile: {e}"
    if size > MAX_PROGRAM:
        return (f"pattern too large to compile: about {size:,} atoms once its counted repeats "
                f"are unrolled (nested counts multiply; at most {MAX_PROGRAM:,})")
    return None


def _compile_any(path, source, rule, fieldname, vocab=None) -> Pattern:
    regex = _regex()
    if not isinstance(source, str) or not source:
        raise RuleError(path, "expected a non-empty pattern string", rule, fieldname)
    if "{{" in source:  # vocabulary placeholders ({{lang.body}} …): dsnparse.vocabulary
        if vocab is None:
            vocab = vocabulary.load_vocabulary((rules_dir(),))
        source = vocab.expand(source, path, rule, fieldname)
    why = check_pattern_size(source)
    if why:
        raise RuleError(path, why, rule, fieldname)
    try:
        compiled = _compile_source(source)
    except (regex.error, RecursionError, MemoryError, OverflowError, ValueError) as e:
        raise RuleError(path, f"pattern does not compile: {type(e).__name__ if not str(e) else e}",
                        rule, fieldname) from None
    branches = split_branches(source)
    needles, more = _literal_sets(source)
    line_literals = None
    if linescan.is_line_local(source, _pattern_flags()):
        line_literals = linescan.anchor_literals(required_literal_groups(source, 1))
    return Pattern(source, f"{path}: rule {rule!r}: field {fieldname!r}",
                   needles, [compiled], branches, untimed=untimed_length(source),
                   branch_untimed=tuple(untimed_length(b) for b, _ in branches) if branches else None,
                   more=more,
                   branch_more=tuple(_literal_sets(b)[1] for b, _ in branches) if branches else None,
                   line_literals=line_literals)


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
    combining mark of such a word (:func:`_caseless_mark`), or a Cyrillic letter.  For these, the characters a case-insensitive pattern matches are exactly
    those whose ``casefold()`` equals the literal's (no full case folding into several
    characters, as for "ß")."""
    if ch.lower() == ch.upper():
        return ch.casefold() == ch and (ch.isalpha() or _caseless_mark(ch))
    return "\u0400" <= ch <= "\u04ff" and len(ch.casefold()) == 1


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


def _reasons() -> frozenset:
    from .codes import REASONS

    return frozenset(REASONS)


def load_pack(path: Path, pack_id: Optional[str] = None, vocab=None) -> Pack:
    """Load and validate one pack file.

    ``vocab``: the :class:`~dsnparse.vocabulary.Vocabulary` that ``{{lang.…}}`` placeholders
    expand to (default: the shipped ``rules/lang/`` files).

    Raises:
        RuleError: unreadable file, bad YAML, unknown key, wrong type, a pattern that does not
            compile, an unknown placeholder, an unknown reason or a malformed status; the
            message names file, rule and field.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(path, f"cannot read: {e}") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise RuleError(path, f"bad YAML: {e}".replace("\n", " ")) from None
    return pack_from_data(path, data, pack_id, vocab)


def pack_from_data(path: Path, data, pack_id: Optional[str] = None, vocab=None) -> Pack:
    """Validate a pack's YAML data (what :func:`load_pack` read from ``path``, or a pack
    built from other data files, e.g. :meth:`dsnparse.vocabulary.Vocabulary.reason_pack_data`).

    Raises:
        RuleError: as :func:`load_pack`.
    """
    if not isinstance(data, dict):
        raise RuleError(path, "a pack must be a YAML mapping")
    _compile = functools.partial(_compile_any, vocab=vocab)
    _check_keys(path, data, _TOP, None, "")
    pid = data.get("id") or pack_id or path.stem
    kind = data.get("kind", "bounce")
    if kind not in KINDS:
        raise RuleError(path, f"unknown kind {kind!r} (allowed: {', '.join(KINDS)})", None, "kind")
    reasons = _reasons()

    def conds(items, where):
        out = []
        for i, c in enumerate(items):
            rid = f"{where}[{i}]"
            _check_keys(path, c, _COND, rid, "")
            targets = [k for k in ("header", "body") if k in c]
            if len(targets) != 1:
                raise RuleError(path, "a condition needs exactly one of 'header' or 'body'", rid, "header")
            if "header" in c:
                if "pattern" not in c:
                    raise RuleError(path, "a header condition needs 'pattern'", rid, "pattern")
                out.append(Condition("header", c["header"].lower(),
                                     _compile(path, c["pattern"], rid, "pattern")))
            else:
                if "pattern" in c:
                    raise RuleError(path, "a body condition takes its pattern in 'body'", rid, "pattern")
                out.append(Condition("body", None, _compile(path, c["body"], rid, "body")))
        return tuple(out)

    det = data.get("detect", {})
    _check_keys(path, det, _DETECT, "detect", "")
    detect_any = conds(det.get("any", []), "detect.any")
    detect_all = conds(det.get("all", []), "detect.all")
    detect_none = conds(det.get("none", []), "detect.none")

    def plist(key):
        return tuple(_compile(path, s, key, f"{key}[{i}]") for i, s in enumerate(data.get(key, [])))

    rcpts = []
    for i, r in enumerate(data.get("recipients", [])):
        rid = (r.get("id") if isinstance(r, dict) else None) or f"recipients[{i}]"
        _check_keys(path, r, _RCPT, rid, "")
        if "pattern" not in r:
            raise RuleError(path, "missing 'pattern'", rid, "pattern")
        cont = r.get("continuation")
        if cont not in (None, "indented", "paragraph", "block"):
            raise RuleError(path, "continuation must be 'indented', 'paragraph' or 'block'", rid,
                            "continuation")
        act = r.get("action", "failed")
        if act not in RECIPIENT_ACTIONS:
            raise RuleError(path, f"action must be one of {', '.join(RECIPIENT_ACTIONS)}", rid, "action")
        pat = _compile(path, r["pattern"], rid, "pattern")
        if "recipient" not in pat.compiled.groupindex:
            raise RuleError(path, "pattern needs a named group 'recipient'", rid, "pattern")
        sec = {k: _compile(path, r[k], rid, k) if k in r else None
               for k in ("section_start", "section_end")}
        if sec["section_end"] is not None and sec["section_start"] is None:
            raise RuleError(path, "section_end needs section_start", rid, "section_end")
        rcpts.append(RecipientRule(rid, pat, (r.get("header") or "").lower() or None, cont, act,
                                   sec["section_start"], sec["section_end"]))

    trules = []
    from .codes import normalize_status

    for i, t in enumerate(data.get("text_rules", [])):
        rid = (t.get("id") if isinstance(t, dict) else None) or f"text_rules[{i}]"
        _check_keys(path, t, _TEXT, rid, "")
        if "pattern" not in t:
            raise RuleError(path, "missing 'pattern'", rid, "pattern")
        if "reason" not in t and "status" not in t:
            raise RuleError(path, "a text rule needs 'reason' or 'status'", rid, "reason")
        if "reason" in t and t["reason"] not in reasons:
            raise RuleError(path, f"unknown reason {t['reason']!r} (see rules/reasons.yaml)", rid, "reason")
        if "status" in t and (normalize_status(t["status"]) != t["status"] or t["status"][0] not in "45"):
            raise RuleError(path, f"not an enhanced status code: {t['status']!r}", rid, "status")
        trules.append(TextRule(rid, _compile(path, t["pattern"], rid, "pattern"),
                               t.get("reason"), t.get("status"),
                               _compile(path, t["if_status"], rid, "if_status") if "if_status" in t else None))

    mta = tuple(_compile(path, s, "mta", f"mta[{i}]") for i, s in enumerate(data.get("mta", [])))
    for i, s in enumerate(data.get("samples", [])):
        if not isinstance(s, str):
            raise RuleError(path, "expected a path string", "samples", f"samples[{i}]")
    header_names = frozenset(c.name for c in detect_any + detect_all + detect_none if c.name)
    keywords = []
    for i, k in enumerate(data.get("keywords", [])):
        if not isinstance(k, str) or not k.strip():
            raise RuleError(path, "expected a non-empty string", "keywords", f"keywords[{i}]")
        keywords.append(k.casefold())
    written_from = data.get("written_from", [])
    for i, f in enumerate(written_from):
        if not isinstance(f, str) or not f.strip():
            raise RuleError(path, "expected a family name", "written_from", f"written_from[{i}]")
    return Pack(
        id=pid, path=str(path), order=data.get("order", 500), kind=kind,
        description=data.get("description", ""), mta=mta, detect_any=detect_any,
        detect_all=detect_all, detect_none=detect_none, report_start=plist("report_start"),
        original_start=plist("original_start"), recipients=tuple(rcpts),
        text_rules=tuple(trules), samples=tuple(data.get("samples", [])),
        needs_recipient=data.get("needs_recipient", True), header_names=header_names,
        feedback_type=data.get("feedback_type"),
        exclude_notified=data.get("exclude_notified", False),
        recipient_from_original=data.get("recipient_from_original", False),
        keywords=tuple(keywords), written_from=tuple(written_from),
        triggers=_triggers(tuple(keywords), detect_any, detect_all),
    )


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


def pack_files(directory: Path) -> Iterable[tuple[str, Path]]:
    """Yield ``(pack id, path)`` for every ``*.yaml`` pack under ``directory``.

    The id is the path relative to ``directory`` without ``.yaml`` (``mta/postfix``), unless
    the file sets ``id``.  The top-level data files (codes, reasons, policy, faults) and the
    vocabulary files (``lang/*.yaml``, see :mod:`dsnparse.vocabulary`) are not packs.
    """
    directory = Path(directory)
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (d == vocabulary.LANG_DIR and Path(root) == directory))
        for fn in sorted(files):
            if not fn.endswith((".yaml", ".yml")) or fn.startswith("."):
                continue
            p = Path(root) / fn
            rel = p.relative_to(directory)
            if len(rel.parts) == 1 and fn in DATA_FILES:
                continue
            yield rel.with_suffix("").as_posix(), p


@lru_cache(maxsize=8)
def load_packs(extra_dirs: tuple = ()) -> tuple:
    """Load the user's packs (``extra_dirs``, first wins) and the shipped ones, in order.

    Returns:
        A tuple of :class:`Pack` sorted by ``order``, then user packs before shipped ones,
        then id.

    Raises:
        RuleError: a broken pack (see :func:`load_pack`); two packs of one directory with the
            same id.
    """
    dirs = tuple(extra_dirs) + (rules_dir(),)
    listing = []
    for d in dirs:
        if not Path(d).is_dir():
            raise RuleError(d, "rules directory does not exist")
        listing.append((d, list(pack_files(Path(d)))))
    key = _cache_key(listing)
    cached = _cache_read(dirs, key)
    if cached is not None:
        return cached
    packs = _load_listing(listing)
    _cache_write(dirs, key, packs)
    return packs


@lru_cache(maxsize=64)
def leave_out(packs: tuple, families: frozenset) -> tuple:
    """``packs`` without those written from any of ``families`` (their ``written_from``):
    what the rest of the rules, the generic layer above all, do on mail of a format whose
    own packs do not exist.  The same tuple for the same arguments (the dispatch and text
    indexes are kept per pack tuple)."""
    if not families:
        return packs
    return tuple(p for p in packs if not families.intersection(p.written_from))


def _load_listing(listing) -> tuple:
    by_id: dict = {}
    rank: dict = {}  # pack id -> index of its directory (user directories first)
    vocab = vocabulary.load_vocabulary(d for d, _ in listing)
    for n, (d, files) in enumerate(listing):
        seen_here = set()
        for pid, p in files:
            pack = load_pack(p, pid, vocab)
            if pack.id in seen_here:
                raise RuleError(p, f"duplicate pack id {pack.id!r} in {d}", None, "id")
            seen_here.add(pack.id)
            if pack.id not in by_id:  # earlier directories (user packs) win
                by_id[pack.id], rank[pack.id] = pack, n
    # the vocabulary's reason phrases: one shared text-rule pack (a user pack of that id wins)
    data = vocab.reason_pack_data()
    if data is not None and data["id"] not in by_id:
        pack = pack_from_data(vocabulary.lang_dir(listing[-1][0]), data, data["id"], vocab)
        by_id[pack.id], rank[pack.id] = pack, len(listing)
    # by order; at equal order user packs before shipped ones; then by id
    return tuple(sorted(by_id.values(), key=lambda pk: (pk.order, rank[pk.id], pk.id)))


# --------------------------------------------------------------------------- pack cache
#
# Behind an MTA pipe the CLI runs once per message: reading and validating every pack (YAML
# parsing, compiling every pattern) on each start would dominate.  Validated packs are kept
# as a pickle in the user's cache directory, keyed by the path, mtime and size of every pack
# file (and of the data files that validation reads), the regex and Python versions and the
# pattern flags.  Each pattern and branch is kept with its compiled program as regex pickles
# it, loaded on first use (~0.05 ms against ~0.2 ms to compile: start-up, and each --jobs
# worker); the file is checked whole (a digest) before it is unpickled.  The 32 most
# recently written or used caches are kept.  DSNPARSE_CACHE=0 turns the cache off;
# DSNPARSE_CACHE_DIR moves it.

_CACHE_VERSION = 17  # bump when Pack or Pattern change shape


from .cachefile import cache_dir  # noqa: E402 - re-exported: where the caches live


def _cache_key(listing) -> tuple:
    from . import __version__

    stats = []
    data_files = [rules_dir() / n for n in sorted(DATA_FILES)]
    for d, files in listing:
        for _, p in files:
            data_files.append(p)
        data_files.extend(vocabulary.lang_files(d))  # what {{lang.…}} expands to
    for p in data_files:
        try:
            st = os.stat(p)
            stats.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((str(p), None, None))
    # (the cache holds compiled programs: the regex version, the flags and Python's too)
    return (_CACHE_VERSION, __version__, sys.version_info[:2], _regex().__version__,
            _pattern_flags(), tuple(stats))


def _cache_file(dirs) -> Optional[Path]:
    import hashlib

    d = cache_dir()
    if d is None:
        return None
    h = hashlib.sha1(repr(tuple(str(Path(x).resolve()) for x in dirs)).encode()).hexdigest()[:16]
    return d / f"packs-{h}.pickle"


_TOUCH_AFTER = 3600  # seconds: a cache read this long after it was written is touched


def _cache_read(dirs, key) -> Optional[tuple]:
    """The cached packs, or ``None`` when the cache is missing, stale, damaged or not
    provably this user's own.

    The file is read through :mod:`dsnparse.cachefile`: the directory and the file must be
    this user's and writable by no one else, and the file's HMAC (keyed with the user's
    secret in that directory) must match before anything in it is unpickled, so neither a
    planted file (a pickle runs code when loaded) nor a damaged one (a flipped bit in a
    compiled program could crash or hang the ``regex`` package, which trusts the programs
    it loads) is used: the cache is rebuilt instead."""
    from . import cachefile

    f = _cache_file(dirs)
    if f is None:
        return None
    packs = cachefile.read(f, key)
    if packs is None:
        return None
    try:
        if time.time() - os.stat(f).st_mtime > _TOUCH_AFTER:  # pruning keeps the most
            os.utime(f)  # recently used ones
    except OSError:
        pass
    return packs


def _cache_write(dirs, key, packs) -> None:
    from . import cachefile

    f = _cache_file(dirs)
    if f is None:
        return
    if not cachefile.write(f, key, packs):  # read-only home, full disk, an unsafe directory
        log.debug("pack cache not written: %s", f)
        return
    _prune_cache(f.parent)


CACHE_FILES_KEPT = 32  # pack caches (one per combination of rules directories) kept


def _prune_cache(d: Path) -> None:
    """Delete all but the :data:`CACHE_FILES_KEPT` most recently written (or, within an hour,
    read: :func:`_cache_read` touches them) pack caches of ``d``
    (each ``--rules`` directory set gets its own, about 0.5 MB; without this, runs over
    many temporary rule directories would fill the cache directory)."""
    try:
        files = sorted(d.glob("packs-*.pickle"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:-CACHE_FILES_KEPT]:
            old.unlink()
    except OSError:  # a file removed meanwhile by another process, or no permission
        log.debug("pack cache not pruned", exc_info=True)


# --------------------------------------------------------------------------- matching

_ADDR = None


_CJK_PUNCT = re.compile("[\u3000-\u303f\uff01-\uff20\uff3b-\uff40\uff5b-\uff65]")


def clean_address(text: Optional[str]) -> Optional[str]:
    """Return a plausible email address from a recipient match, or ``None``.

    Strips angle brackets, quotes, a ``mailto:`` prefix, trailing punctuation and what lies
    beyond CJK punctuation (``收件人：a@b.cn（李）`` gives ``a@b.cn``).  Addresses
    that a simple check does not accept are handed to flanker's parser (imported only then,
    as it is slow to import) which validates and normalises RFC 5322 forms such as quoted
    local parts and display names.
    """
    global _ADDR
    if not text:
        return None
    if _ADDR is None:
        regex = _regex()
        _ADDR = regex.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\p{L}\p{N}]+@"
                              r"(?:[A-Za-z0-9\p{L}\p{N}](?:[A-Za-z0-9\p{L}\p{N}\-]*[A-Za-z0-9\p{L}\p{N}])?\.)*"
                              r"[A-Za-z0-9\p{L}\p{N}](?:[A-Za-z0-9\p{L}\p{N}\-]*[A-Za-z0-9\p{L}\p{N}])?$")
    t = text.strip()
    if t[:7].lower() == "mailto:":
        t = t[7:]
    if "<" in t:  # an address in angle brackets (found in linear time)
        from .rfc3464 import bracketed_address

        t = bracketed_address(t) or t
    t = t.strip(" \t<>\"'()[],;:.")
    if not t.isascii() and _CJK_PUNCT.search(t):
        # CJK punctuation (a full-width colon after a label "收件人：", a full-width comma or
        # bracket, an ideographic full stop) delimits an address; it is no part of one
        at = t.find("@")
        if at >= 0:
            left = [m.end() for m in _CJK_PUNCT.finditer(t, 0, at)]
            right = _CJK_PUNCT.search(t, at)
            t = t[left[-1] if left else 0:right.start() if right else len(t)]
    if "\r" in t or "\n" in t:
        t = t.replace("\r", "").replace("\n", "")
    if "@" not in t or len(t) > 320:
        return None
    if _ADDR.match(t):
        return t
    from .addresses import flanker_address

    return flanker_address(t)


def region(pack: Pack, text: str, timeout: float, folded: Optional[str] = None) -> str:
    """The error-report part of ``text``: from the first ``report_start`` marker (or the
    start) to the first ``original_start`` marker after it (or the end).  ``folded``:
    ``text.casefold()`` when the caller has it (markers whose literals are absent are not
    run)."""
    start = 0
    if folded is None:
        folded = text.casefold() if pack.report_start or pack.original_start else ""
    if pack.report_start:
        hits = [m.start() for p in pack.report_start
                if p.may_match(folded) and (m := _search_text(p, text, folded, timeout))]
        if hits:
            start = min(hits)
    end = len(text)
    if pack.original_start:
        sub = text[start:] if start else text
        # (the case-folded sub when folded maps onto text character by character)
        fsub = None if len(folded) != len(text) else folded[start:] if start else folded
        hits = [m.start() for p in pack.original_start
                if p.may_match(folded) and (m := _search_text(p, sub, fsub, timeout))
                and m.start() > 0]
        if hits:
            end = start + min(hits)
    return text[start:end]


def _search_text(pattern: Pattern, text: str, folded: Optional[str], timeout: float):
    """``pattern.search(text)``, on the lines that can hold a match only when the pattern is
    line-local (:mod:`dsnparse.linescan`); ``folded``: ``text.casefold()`` or ``None``."""
    if pattern.line_literals is not None:
        spans = pattern.line_spans(text, folded)
        if spans is not None:
            return pattern.search_lines(text, spans, timeout)
    return pattern.search(text, timeout)


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


def _continue(text: str, pos: int, mode: Optional[str], entry=None, timeout: float = 0.25) -> str:
    """The lines after ``pos`` that extend a recipient's diagnostic (``mode``: the rule's
    ``continuation``), at most :data:`MAX_CONTINUATION` of them.  ``entry``: the rule's
    pattern; in ``block`` mode a line where it matches starts the next entry of the list
    and ends the block."""
    if not mode:
        return ""
    out = []
    lines = itertools.islice(_lines_from(text, pos), MAX_CONTINUATION)
    first = next(lines, None)
    if first is not None and first.strip() == "" and mode == "paragraph":
        lines = itertools.chain((first,), lines)
    # else: the rest of the matched line is already in the match (or blank, when indented)
    for line in lines:
        if mode == "indented":
            if line[:1] in (" ", "\t") and line.strip():
                out.append(line.strip())
                continue
            break
        stripped = line.strip()
        if not stripped:
            if out or mode == "block":
                break
            continue
        if mode == "block" and ("@" in stripped.split(None, 1)[0] or entry is not None
                                and "@" in stripped and _starts_entry(entry, line, timeout)):
            break  # the next entry of a list: a line that starts with an address, or the rule's own
        out.append(stripped)
    return " ".join(out)


# A recipient's diagnostic is a reply of a few lines; a "paragraph" of thousands of lines (a
# list of thousands of recipients with no blank line) would be read again for every one of
# them: quadratic.  Real multi-line replies (550-… continuation lines) stay far below this.
MAX_CONTINUATION = 50


def _starts_entry(entry, line: str, timeout: float) -> bool:
    m = entry.search(line, timeout)
    return m is not None and not line[:m.start()].strip()


def _lines_from(text: str, pos: int):
    """The lines of ``text[pos:]`` one by one, as ``text[pos:].split("\n")`` gives them."""
    while True:
        nl = text.find("\n", pos)
        if nl < 0:
            yield text[pos:]
            return
        yield text[pos:nl]
        pos = nl + 1


_LAZY_SPANS = object()  # (_finditer: the lines are found there)


def _finditer(pattern: Pattern, text: str, timeout: float, spans=_LAZY_SPANS) -> list:
    """``pattern.finditer(text)``, on the lines that can hold a match only when the pattern
    is line-local (:meth:`Pattern.line_spans`; ``spans``: those lines when the caller has
    them, ``None`` for the whole text)."""
    if spans is _LAZY_SPANS:
        spans = pattern.line_spans(text)
    if spans is None:
        return pattern.finditer(text, timeout)
    return pattern.finditer_lines(text, spans, timeout)


def _matches(rule: RecipientRule, src: str, timeout: float, spans=_LAZY_SPANS):
    """``(text, match)`` pairs of a recipient rule: over the whole text, or, with
    ``section_start``, over each section from the end of a ``section_start`` match to the
    next ``section_end`` match (or the end of the text).  ``spans``: the lines of ``src``
    that can hold a match of the rule's pattern, when the caller has them."""
    if rule.section_start is None:
        return [(src, m) for m in _finditer(rule.pattern, src, timeout, spans)]
    out = []
    if rule.section_end is None:
        # sections then run to the end of the text: each later one lies inside the first,
        # so the first is the only one to read
        first = _first_match(rule.section_start, src, timeout)
        starts = [first] if first is not None else []
    else:
        starts = _finditer(rule.section_start, src, timeout)
    for start in starts:
        seg = src[start.end():]
        if seg.startswith("\n"):
            seg = seg[1:]  # the section starts on the line after the marker
        if rule.section_end is not None:
            end = rule.section_end.search(seg, timeout)
            if end is not None:
                seg = seg[:end.start()]
        out.extend((seg, m) for m in _finditer(rule.pattern, seg, timeout))
    return out


def _first_match(pattern: Pattern, text: str, timeout: float):
    """The leftmost match of ``pattern`` in ``text`` (a long phrase list: only the branches
    whose literals occur run, see :func:`present_branches`), or ``None``."""
    if pattern.branches is not None and len(pattern.branches) > _MANY_BRANCHES:
        which = present_branches(pattern, text.casefold())
        return pattern.search_branches(text, timeout, which) if which else None
    folded = None
    if pattern.needles is not None:
        folded = text.casefold()
        if not pattern.may_match(folded):
            return None
    spans = pattern.line_spans(text, folded)
    if spans is not None:
        return pattern.search_lines(text, spans, timeout)
    return pattern.search(text, timeout)


def extract(pack: Pack, text: str, header, timeout: float, exclude=None,
            folded: Optional[str] = None, complete=None, addressed=None) -> list:
    """Apply the pack's recipient rules; return ``[(rule_id, fields dict)]`` in text order.

    ``fields`` has ``recipient`` and any of ``reply_code``, ``status``, ``diagnostic``,
    ``remote_mta``, ``action``.  A recipient found twice is kept once (first position), its
    fields completed from the later match.  With ``exclude`` (a set of lower-case addresses,
    see :func:`notified_addresses`), those addresses and mail-system mailboxes are skipped.
    ``folded``: the case-folded text ``text`` was cut from, when the caller has it (rules
    whose required literals are absent from it are not run).  ``complete``: a function from
    a local part (a recipient match without ``@`` or ``recipient_domain``) to the address it
    stands for, or ``None``; without it such a match is skipped.  ``addressed``: a function
    telling whether the returned original was addressed to a mail-system mailbox
    (``postmaster@…``): such an address is then the failed recipient, not skipped.
    """
    found: dict = {}
    order = []
    folds: dict = {None: folded} if folded is not None else {}  # source -> case-folded
    lines: dict = {}  # (source, literals) -> the lines of the source holding one
    for rule in pack.recipients:
        src = header(rule.header) if rule.header else text
        if not src:
            continue
        if rule.pattern.needles is not None:
            f = folds.get(rule.header)
            if f is None:
                f = folds[rule.header] = src.casefold()
            if not rule.pattern.may_match(f):
                continue  # a literal every match holds is absent (sections are parts of src)
        start = rule.section_start
        if start is not None and start.needles is not None:
            f = folds.get(rule.header)
            if f is None:
                f = folds[rule.header] = src.casefold()
            if not start.may_match(f):
                continue  # no section can start: the rule finds nothing
        spans = _LAZY_SPANS
        if rule.section_start is None and rule.pattern.line_literals is not None:
            key = (rule.header, rule.pattern.line_literals)
            spans = lines.get(key, _LAZY_SPANS)
            if spans is _LAZY_SPANS:
                spans = lines[key] = rule.pattern.line_spans(src)
        for src, m in _matches(rule, src, timeout, spans):
            gd = {k: v for k, v in m.groupdict().items() if v}
            raw = gd.get("recipient")
            if raw and gd.get("recipient_domain") and "@" not in raw:
                raw = f"{raw}@{gd['recipient_domain']}"  # split address, e.g. VERP "user=domain"
            elif raw and "@" not in raw and complete is not None:
                raw = complete(raw.strip(" \t<>\"'()[],;:."))  # a local part only
            addr = clean_address(raw)
            if not addr or exclude is not None and (
                    addr.lower() in exclude
                    or is_system_address(addr) and not (addressed and addressed(addr))):
                continue
            diag = (gd.get("diagnostic") or "").strip()
            more = _continue(src, m.end(), rule.continuation, rule.pattern, timeout)
            if more:
                diag = f"{diag} {more}".strip()
            fields_ = {"recipient": addr, "action": rule.action}
            for k in ("reply_code", "status", "remote_mta"):
                if gd.get(k):
                    fields_[k] = gd[k].strip()
            if diag:
                fields_["diagnostic"] = " ".join(diag.split())
                if "reply_code" not in fields_ and "status" not in fields_:
                    reply = labelled_reply(fields_["diagnostic"])
                    if reply:
                        fields_["reply_code"] = reply
            key = addr.lower()
            if key in found:
                old = found[key][1]
                for k, v in fields_.items():
                    old.setdefault(k, v)
            else:
                found[key] = (rule.id, fields_)
                order.append(key)
    return [found[k] for k in order]


# A reply code in brackets or after a label, where the RFC 5321 reply-line form ("550 text",
# "said: 550") is not used: "[550]", "(550)", "error 550:", "ERROR_CODE :550", "code=550",
# "ResponseCode 421".  Read only for a recipient line that holds no enhanced status and no
# reply code in that form.
_LABELLED_REPLY = re.compile(
    r"\[(?P<a>[45][0-5]\d)\]|\((?P<b>[45][0-5]\d)\)"
    r"|\b(?:error|code|reply|response|smtp)(?:[ _-]?code)?[ \t]*[:=#]?[ \t]*(?P<c>[45][0-5]\d)(?![\d.])",
    re.I)


def labelled_reply(text: str) -> Optional[str]:
    """The SMTP reply code (RFC 5321 §4.2) a diagnostic states in brackets or after a label,
    when it states no enhanced status and no reply code in the reply-line form, else
    ``None`` (see :data:`_LABELLED_REPLY`)."""
    status, _, reply = find_codes(text)
    if status or reply:
        return None
    m = _LABELLED_REPLY.search(text)
    return (m.group("a") or m.group("b") or m.group("c")) if m else None


_SYSTEM_LOCAL = ("postmaster", "post_master", "post-master", "mailer-daemon", "mailer_daemon",
                 "mailerdaemon")


_PLAIN_ADDR = re.compile(r"(?<![^\s<>,;:\"()])[^\s<>,;:\"()@]+@[^\s<>,;:\"()@]+")


def notified_addresses(header) -> frozenset:
    """The addresses a bounce itself is from and to (``From``, ``To``, ``Reply-To``,
    ``Sender``, ``Return-Path``), lower case: the sender being notified and the mail system,
    never a failed recipient.  Used by packs with ``exclude_notified``."""
    out = set()
    for name in ("from", "to", "reply-to", "sender", "return-path"):
        v = header(name)
        if v and "@" in v:
            # every address-shaped token of the field (one linear search; the stdlib's
            # address parser took ~50 µs a message here): a superset of the field's
            # addresses, an address in a display name included, which is never a failed
            # recipient either
            for a in _PLAIN_ADDR.findall(v):
                a = clean_address(a)
                if a:
                    out.add(a.lower())
    return frozenset(out)


def is_system_address(addr: str) -> bool:
    """``True`` for a mail system's own mailbox (``postmaster@…``, ``mailer-daemon@…``)."""
    return addr.split("@", 1)[0].lower() in _SYSTEM_LOCAL


class _TextIndex:
    """The text rules of a pack list in order, with an Aho-Corasick automaton of their
    required literals: one pass over a diagnostic tells which rules can match at all.

    Entries are ints, ``rule index * _BRANCHES + 1 + branch index`` for a branch of a split
    rule (:func:`split_branches`) and ``rule index * _BRANCHES`` for a whole pattern, so that
    sorting them gives rule order."""

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


_BRANCHES = 4096  # more branches than any pattern has (split_branches caps it)


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
