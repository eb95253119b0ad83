"""Loading rule packs: reading a pack file, validating it against the schema, compiling its
patterns (size-checked first) into a :class:`~.pack.Pack`; finding the pack files of a
directory; the ordered pack list of the user's and the shipped directories
(:func:`load_packs`, through the pack cache).

Validation happens at load: bad YAML, an unknown key, a wrong type or a pattern that does not
compile raises :class:`~dsnparse.errors.RuleError` naming the file, the rule and the field.
"""
from __future__ import annotations

import functools
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from .. import linescan
from .. import vocabulary
from ..backtrack import untimed_length
from ..errors import RuleError
from ..resources import rules_dir
from .cache import _cache_key, _cache_read, _cache_write
from .detection import _triggers
from .literals import _literal_sets, required_literal_groups, split_branches
from .pack import (DATA_FILES, KINDS, RECIPIENT_ACTIONS, Condition, Pack, RecipientRule,
                   TextRule)
from .pattern import Pattern, _compile_source, _pattern_flags, _regex


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
    from ..backtrack import counted_repeats, program_size

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


def _reasons() -> frozenset:
    from ..codes import REASONS

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
    from ..codes import normalize_status

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
