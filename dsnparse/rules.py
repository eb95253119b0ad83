"""Rule packs, as callers have always imported them: ``from dsnparse import rules``.

The code lives in the package :mod:`dsnparse.rulepacks`, one module per responsibility
(its docstring lists them): :mod:`~dsnparse.rulepacks.literals` (prefilter literals),
:mod:`~dsnparse.rulepacks.pattern` (compiled, time-limited patterns),
:mod:`~dsnparse.rulepacks.pack` (data classes), :mod:`~dsnparse.rulepacks.automaton`
(one-pass literal search), :mod:`~dsnparse.rulepacks.address` (recipient addresses),
:mod:`~dsnparse.rulepacks.detection` (which packs apply), :mod:`~dsnparse.rulepacks.extract`
(report region, recipients), :mod:`~dsnparse.rulepacks.textrules` (text rules),
:mod:`~dsnparse.rulepacks.cache` (the pack cache) and :mod:`~dsnparse.rulepacks.loader`
(loading and validating packs).  This module re-exports every name the single module
``rules.py`` had, so ``rules.load_packs``, ``rules.Pattern``, ``rules._continue`` … keep
working; new code may import from the package's modules directly.

Names a module rebinds as it runs (``_ADDR``, ``_LAST_FOLD``) are read from their module.
To replace a function for a test, patch it in the package module that calls it (e.g.
``dsnparse.rulepacks.loader.load_pack``): setting a name here changes only this module.
"""
from __future__ import annotations

from . import linescan, vocabulary  # noqa: F401 - names of the former module
from .cachefile import cache_dir  # noqa: F401
from .errors import RuleError  # noqa: F401
from .resources import rules_dir  # noqa: F401
from .rulepacks import (address, automaton, cache, detection, extract as _extract_mod,
                        literals, loader, pack, pattern, textrules)
from .rulepacks.address import (_CJK_PUNCT, _PLAIN_ADDR, _SYSTEM_LOCAL,  # noqa: F401
                                clean_address, is_system_address, notified_addresses)
from .rulepacks.automaton import (_BRANCH_INDEX, _MANY_BRANCHES, Literals,  # noqa: F401
                                  present_branches)
from .rulepacks.cache import (_CACHE_VERSION, _TOUCH_AFTER, CACHE_FILES_KEPT,  # noqa: F401
                              _cache_file, _cache_key, _cache_read, _cache_write,
                              _prune_cache)
from .rulepacks.detection import (_DISPATCH, _MAX_ANY_GROUPS, _MAX_GROUPS,  # noqa: F401
                                  _MAX_TRIGGER_LITERALS, Dispatch, Folded,
                                  _condition_literals, _describe, _evidence, _test,
                                  _triggers, detect, dispatch_for, may_apply)
from .rulepacks.extract import (_LABELLED_REPLY, _LAZY_SPANS, MAX_CONTINUATION,  # noqa: F401
                                _continue, _finditer, _first_match, _lines_from, _matches,
                                _search_text, _starts_entry, extract, labelled_reply, region)
from .rulepacks.literals import (_BRANCHES, _INLINE_FLAGS, _MAX_MORE,  # noqa: F401
                                 _MIN_BRANCHES, _MIN_NEEDLE, _all_groups, _best,
                                 _caseless_mark, _fold_safe, _literal_sets, _required_groups,
                                 _selectivity, required_literal_groups, required_literals,
                                 split_branches)
from .rulepacks.loader import (_COND, _DETECT, _RCPT, _TEXT, _TOP, MAX_PROGRAM,  # noqa: F401
                               MAX_REPEAT, _check_keys, _compile_any, _load_listing,
                               _reasons, check_pattern_size, leave_out, load_pack,
                               load_packs, pack_files, pack_from_data)
from .rulepacks.pack import (DATA_FILES, KINDS, RECIPIENT_ACTIONS, Condition,  # noqa: F401
                             Pack, RecipientRule, TextRule)
from .rulepacks.pattern import (_REPORTED, Pattern, _compile_source,  # noqa: F401
                                _compiled_from, _pattern_flags, _regex, _search, _timed_out,
                                log)
from .rulepacks.textrules import (_BY_TUPLE, _TEXT_INDEX, _TRP_CACHE,  # noqa: F401
                                  _VTP_CACHE, _TextIndex, _grouped, _may_run,
                                  _rules_that_may_match, _run_text_rule, _text_index,
                                  _text_rule_packs, find_text_rule, is_vendor_pack,
                                  packs_with_matching_rule, text_rule_packs,
                                  vendor_text_packs)

_MODULES = (literals, pattern, pack, automaton, address, detection, _extract_mod, textrules,
            cache, loader)
del address, automaton, cache, detection, _extract_mod, literals, loader, pack, pattern, \
    textrules
_MISSING = object()


def __getattr__(name: str):
    """A name of a package module that is not re-exported above: one that its module rebinds
    (``_ADDR``, ``_LAST_FOLD``), read from there each time."""
    for mod in _MODULES:
        value = mod.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
