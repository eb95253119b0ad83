"""The text the rule patterns run on: long lines broken (RFC 5322 §2.1.1), HTML made plain.

Both are linear in their input, whatever it holds (hostile bounces: lines of megabytes,
thousands of unclosed tags), so no pattern run after them can take more than bounded work
per line.
"""
from __future__ import annotations

import re

MAX_LINE = 998  # RFC 5322 §2.1.1: a line is at most 998 characters (CRLF excluded)


def bound_lines(s: str, limit: int = MAX_LINE) -> str:
    """``s`` with every line longer than ``limit`` characters broken into lines of at most
    ``limit`` characters, at the last space or tab of each piece when there is one (the
    whitespace stays at the end of the line; no character is lost or added but newlines).

    Rule patterns run on the report text and on header values after this: a conforming
    message (RFC 5322 §2.1.1) is unchanged, and a hostile one cannot make a pattern that is
    quadratic within a line (``[^\\n]*`` runs, an address tried at every position of a
    token) take more than bounded work per line.  Header values are unfolded first, so a
    long folded header (many recipients) is broken again near its folding whitespace."""
    if len(s) <= limit:
        return s
    lines = s.split("\n")
    if max(map(len, lines)) <= limit:
        return s
    out = []
    for line in lines:
        while len(line) > limit:
            cut = max(line.rfind(" ", 0, limit), line.rfind("\t", 0, limit)) + 1
            if cut < limit // 2:  # no whitespace in the second half: cut hard
                cut = limit
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\n".join(out)


# Linear-time patterns only (no scan to the end of the text from every '<'): hostile HTML
# such as 100,000 unclosed "<head" tags must not take quadratic time.
_TAGS = re.compile(r"<[^<>]*>")
_BLOCK = re.compile(r"<\s*(?:br|/p|/div|/tr|/li|/h\d|p|div|tr|li)\b[^<>]*>", re.I)
_DROP_OPEN = re.compile(r"<(script|style|head)\b", re.I)


def _drop_blocks(h: str) -> str:
    """Remove ``<script>``, ``<style>`` and ``<head>`` elements (an unclosed one: its tag only)."""
    out, pos = [], 0
    low = None
    unclosed: set = set()  # names with no closing tag left: never searched again
    while True:
        m = _DROP_OPEN.search(h, pos)
        if not m:
            break
        if low is None:
            low = h.lower()
        name = m.group(1).lower()
        end = -1 if name in unclosed else low.find("</" + name, m.end())
        if end < 0:  # unclosed: drop the opening tag only
            unclosed.add(name)
            out.append(h[pos:m.start()])
            gt = h.find(">", m.end(), m.end() + 1000)
            pos = m.end() if gt < 0 else gt + 1
            continue
        close = low.find(">", end)
        out.append(h[pos:m.start()] + " ")
        pos = len(h) if close < 0 else close + 1
    out.append(h[pos:])
    return "".join(out)


def html_to_text(h: str) -> str:
    """A plain-text rendering of an HTML bounce, good enough for the rule patterns."""
    h = _drop_blocks(h)
    h = _BLOCK.sub("\n", h)
    import html  # (only HTML bounces need it: not imported at start-up)

    return html.unescape(_TAGS.sub("", h))
