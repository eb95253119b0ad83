"""What a pack's rules find in a recognised message: the error-report region
(:func:`region`), the recipients with their reply code, enhanced status, diagnostic and
remote MTA (:func:`extract`, continuation lines included), and a reply code stated after a
label (:func:`labelled_reply`).
"""
from __future__ import annotations

import itertools
import re
from typing import Optional

from ..status import find_codes
from .address import clean_address, is_system_address
from .automaton import _MANY_BRANCHES, present_branches
from .pack import Pack, RecipientRule
from .pattern import Pattern


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
    see :func:`.address.notified_addresses`), those addresses and mail-system mailboxes are skipped.
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
