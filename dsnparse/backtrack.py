"""How long a text a rule pattern can search without a time limit.

Every rule pattern runs under the ``regex`` package's timeout so that no pattern can hang a
run.  That timeout reads the process CPU clock (``CLOCK_PROCESS_CPUTIME_ID``) when a search
starts and ends, two system calls per search, which cost more than the search itself for
the short diagnostics most rules see (``benchmarks/README.md``).

A search can only hang on backtracking, and the backtracking of a pattern without nested or
ambiguous unbounded repeats is bounded by the pattern and the length of the text.
:func:`untimed_length` works that bound out from the pattern's parse tree: a backtracking
matcher at one start position explores a tree of choices in which

- a character, anchor or back-reference is one step with one way through; a class is
  ``1 + members // 8`` steps (the ``regex`` package tries its members in turn);
- a sequence explores each element once per way through what precedes it;
- an alternation explores each branch; its ways add up;
- ``x{m,M}`` explores up to ``M`` iterations of ``x`` and ends after any of ``m``…``M``;
  an unbounded repeat iterates at most ``n + 1`` times over ``n`` characters (an iteration
  that matches nothing ends the loop) and is accepted only when ``x`` has a single way
  through (otherwise the ways grow exponentially with ``n``);
- a look-around is explored once and succeeds at most once (it never backtracks into).

A search over ``n`` characters then takes at most ``(n + 1) * tree(n)`` steps
(:func:`steps`).  The pattern may run without a timeout on texts up to the longest ``n``
whose bound is within :data:`BUDGET` steps (milliseconds of work at most), and never beyond
:data:`MAX_LENGTH` characters.  Anything the analysis does not know — syntax only the
``regex`` package has, fuzzy matching, comments and verbose mode, a repeat over several
ways — gets ``-1``: always timed.  ``benchmarks/bench.py untimed`` runs every bounded
shipped pattern on hostile texts of its limit length.
"""
from __future__ import annotations

import re

try:  # Python 3.11+
    from re import _constants as _c, _parser as _sre
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

BUDGET = 1_000_000  # backtracking steps a search may take without a timeout
# Longest text a search may run on untimed, whatever the bound: a "step" is not always cheap
# (an empty match still makes a match object; a class of thousands of characters is tried
# member by member), and the timer's cost matters only on short texts anyway.
MAX_LENGTH = 16_384

_ATOMS = frozenset(getattr(_c, name) for name in (
    "LITERAL", "NOT_LITERAL", "IN", "ANY", "CATEGORY", "AT", "GROUPREF") if hasattr(_c, name))
_REPEATS = frozenset(getattr(_c, name) for name in (
    "MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(_c, name))
_ASSERTS = frozenset((_c.ASSERT, _c.ASSERT_NOT))
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)
# "{" that does not open a counted repeat: fuzzy matching ("{e<=1}") or named lists in the
# regex package, or a literal brace; either way the stdlib parser would read it differently
_ODD_BRACE = re.compile(r"\{(?!\d*(?:,\d*)?\})")
_VERBOSE = re.compile(r"\(\?[a-zA-Z]*x")  # an inline flag group turning verbose mode on


class _Unbounded(Exception):
    pass


def top_level_bars(source: str) -> tuple:
    """``(bars, depth)``: the indices of the ``|`` of a pattern source that are outside any
    group and character class (its top-level alternation), and the group depth at its end
    (0 when its parentheses balance).

    Raises:
        ValueError: an unterminated character class (see :func:`syntax_chars`).
    """
    bars, depth = [], 0
    for i, c in syntax_chars(source):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            bars.append(i)
    return bars, depth


def syntax_chars(source: str):
    """``(index, character)`` of the characters of a pattern source that are syntax: neither
    escaped (``\\|``) nor inside a character class (a class runs to the first ``]`` that is
    not escaped and not its first member, as in ``[]|]`` or ``[^]|]``).  Comments and
    verbose mode are not understood (see :func:`has_comments`).

    Raises:
        ValueError: a class that is never closed.
    """
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            j = i + 1
            if source.startswith("^", j):
                j += 1
            if source.startswith("]", j):
                j += 1
            while j < n and source[j] != "]":
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                raise ValueError("unterminated character class")
            i = j + 1
            continue
        yield i, ch
        i += 1


_COUNTED = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")  # a counted repeat at "{"


def counted_repeats(source: str):
    """``(index, text, low, high)`` of every counted repeat (``{m}``, ``{m,}``, ``{,n}``,
    ``{m,n}``) that is syntax in ``source`` (not escaped — ``\\\\{9}`` is an escaped
    backslash, then a repeat — and not in a class); ``low``/``high`` are ``int`` or ``None``.

    Raises:
        ValueError: a class that is never closed.
    """
    for i, ch in syntax_chars(source):
        if ch == "{":
            m = _COUNTED.match(source, i)
            if m and (m.group(1) or m.group(2)):
                yield (i, m.group(0), int(m.group(1)) if m.group(1) else None,
                       int(m.group(2)) if m.group(2) else None)


def program_size(source: str) -> int:
    """An upper bound on the size of the program the ``regex`` package compiles ``source``
    into, in atoms: it unrolls counted repeats, so ``x{1000}`` is a thousand copies of ``x``
    and ``(?:(?:x{100}){100})`` ten thousand.  Every atom (character, escape, class) counts
    one, an alternation the sum of its branches, a counted repeat the count (its upper bound,
    or its lower one when it has none) times what it repeats; ``*``, ``+`` and ``?`` compile
    once.  Linear in ``len(source)``.

    Raises:
        ValueError: a class that is never closed.
    """
    stack = [[0, 0]]  # per open group: [total of the finished items, weight of the last item]
    prev = -1  # index of the previous syntax character
    skip_to = -1  # the end of a counted repeat being read
    for i, ch in syntax_chars(source):
        if i < skip_to:
            continue
        top = stack[-1]
        if i > prev + 1:  # an escape or a class since the last syntax character: one atom
            top[0] += top[1]
            top[1] = 1
        prev = i
        if ch == "(":
            top[0] += top[1]
            top[1] = 0
            stack.append([0, 0])
        elif ch == ")":
            if len(stack) > 1:
                inner = stack.pop()
                top = stack[-1]
                top[1] = inner[0] + inner[1]
        elif ch == "|":
            top[0] += top[1]
            top[1] = 0
        elif ch == "{":
            m = _COUNTED.match(source, i)
            if m and (m.group(1) or m.group(2)):
                low, high = m.group(1), m.group(2)
                count = int(high) if high else int(low) if low else 0
                if m.group(0).find(",") < 0:
                    count = int(low)
                top[1] *= max(count, 1)
                skip_to = m.end()
                prev = m.end() - 1
            else:  # a literal "{" (or the regex package's fuzzy constraints)
                top[0] += top[1]
                top[1] = 1
        elif ch in "*+?":
            pass  # compiled once
        else:
            top[0] += top[1]
            top[1] = 1
    if len(source) > prev + 1:  # a trailing escape or class
        stack[-1][0] += stack[-1][1]
        stack[-1][1] = 1
    size = 0
    for total, last in stack:  # (unclosed groups: the pattern will not compile anyway)
        size += total + last
    return size


def has_comments(source: str, flags: int = 0) -> bool:
    """``True`` when ``source`` may hold text that is no syntax: a ``(?#…)`` comment, or
    verbose mode (``re.X`` or an inline ``x`` flag) with its ``#`` comments."""
    return "(?#" in source or bool(flags & re.X) or bool(_VERBOSE.search(source))


def _unmerged(source: str) -> str:
    """``source`` with an empty look-ahead ``(?=)`` before every ``|`` and ``)`` outside classes.

    The stdlib parser turns an alternation of single characters into a class (``a|a`` into
    ``[a]``, ``\\w|\\d`` into ``[\\w\\d]``) and factors out common prefixes; the ``regex``
    package backtracks through such alternatives one by one (``(?:a|a)+b`` is exponential
    there).  With the empty groups no alternative is a single character, so the parse tree
    keeps every branch as written (an empty non-capturing group would be dropped).  The
    look-aheads match nothing and add no ways."""
    out, last = [], 0
    for i, ch in syntax_chars(source):
        if ch in "|)":
            out.append(source[last:i])
            out.append("(?=)")
            last = i
    out.append(source[last:])
    return "".join(out)


def _seq(items, n: int):
    tree, ways = 0, 1
    for op, av in getattr(items, "data", items):  # a SubPattern's list (its __getitem__ is slow)
        t, w = _node(op, av, n)
        tree += ways * t
        ways *= w
        if tree > BUDGET:
            raise _Unbounded
    return tree, ways


def _node(op, av, n: int):
    if op is _c.IN:
        return 1 + len(av) // 8, 1  # the regex package tries a class's members in turn
    if op in _ATOMS:
        return 1, 1
    if op is _c.SUBPATTERN:
        return _seq(av[-1], n)
    if op is _c.BRANCH:
        tree = ways = 0
        for alt in av[1]:
            t, w = _seq(alt, n)
            tree, ways = tree + t, ways + w
        return tree + 1, ways
    if op in _REPEATS:
        low, high, item = av
        t, w = _seq(item, n)
        if high >= _c.MAXREPEAT:
            if w != 1:
                raise _Unbounded  # ways grow exponentially with the text
            high = n + 1
        elif w != 1 and high > 64:
            raise _Unbounded
        low = min(low, high)
        if w == 1:
            return high * t + (high - low + 1), high - low + 1
        tree = sum(w ** (i - 1) for i in range(1, high + 1)) * t + (high - low + 1)
        return tree, sum(w ** i for i in range(low, high + 1))
    if op in _ASSERTS:
        return _seq(av[1], n)[0] + 1, 1
    if op is _c.GROUPREF_EXISTS:
        t1, w1 = _seq(av[1], n)
        t2, w2 = _seq(av[2], n) if av[2] is not None else (0, 1)
        return t1 + t2 + 1, w1 + w2
    if _ATOMIC is not None and op is _ATOMIC:
        return _seq(av, n)
    raise _Unbounded  # an operator this analysis does not know


def _steps(parsed, n: int) -> int:
    return (n + 1) * _seq(parsed, n)[0]


def _syntax_known(source: str, flags: int) -> bool:
    # comments (and verbose mode's "#" comments) hold text that is no syntax: the _unmerged
    # scan would read a "[" there as a class and miss the alternations after it
    return not (_ODD_BRACE.search(source) or has_comments(source, flags))


def steps(source: str, n: int, flags: int = re.I | re.M):
    """The bound on the backtracking steps of a search of ``source`` over ``n`` characters
    (see the module docstring), or ``None`` when there is none (or it exceeds
    :data:`BUDGET` on the way).  Never raises."""
    if not _syntax_known(source, flags):
        return None
    try:
        return _steps(_sre.parse(_unmerged(source), flags), n)
    except (_Unbounded, re.error, RecursionError, OverflowError, TypeError, ValueError):
        return None


def untimed_length(source: str, flags: int = re.I | re.M) -> int:
    """The longest text (in characters) that ``source`` may search without a timeout.

    Args:
        source: the pattern, in the ``re``-compatible syntax (``regex`` version 0).
        flags: the ``re`` flags it is compiled with.

    Returns:
        ``0 <= n <= MAX_LENGTH``: a search over at most ``n`` characters takes at most
        :data:`BUDGET` backtracking steps; ``-1``: no bound is known (always run it with a
        timeout).
        Never raises.
    """
    if not _syntax_known(source, flags):
        return -1
    try:
        parsed = _sre.parse(_unmerged(source), flags)
        tree = _seq(parsed, 0)[0]
        if tree > BUDGET:
            return -1
        if _seq(parsed, 1)[0] == tree:  # no unbounded repeat: the tree does not grow with n
            return min(MAX_LENGTH, BUDGET // max(tree, 1) - 1)
        try:
            if _steps(parsed, MAX_LENGTH) <= BUDGET:
                return MAX_LENGTH
        except _Unbounded:
            pass
        lo, hi = 0, MAX_LENGTH  # _steps(lo) <= BUDGET < _steps(hi); steps grow with n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                ok = _steps(parsed, mid) <= BUDGET
            except _Unbounded:
                ok = False
            if ok:
                lo = mid
            else:
                hi = mid
        return lo
    except (_Unbounded, re.error, RecursionError, OverflowError, TypeError, ValueError):
        return -1
