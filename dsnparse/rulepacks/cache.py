"""The pack cache: validated packs kept as a signed pickle in the user's cache directory
(:mod:`dsnparse.cachefile`), keyed by every pack and data file's path, mtime and size, the
Python, ``regex`` and dsnparse versions, the pattern flags and :data:`_CACHE_VERSION`.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

from .. import vocabulary
from ..resources import rules_dir
from .pack import DATA_FILES
from .pattern import _pattern_flags, _regex

log = logging.getLogger("dsnparse.rules")


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

_CACHE_VERSION = 18  # bump when Pack or Pattern change shape (or move: a pickle names the
# classes' module; 18: dsnparse.rulepacks.pack and .pattern, before dsnparse.rules)


from ..cachefile import cache_dir  # noqa: E402 - re-exported: where the caches live


def _cache_key(listing) -> tuple:
    from .. import __version__

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
    from .. import cachefile

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
    from .. import cachefile

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
