"""The compiled methods of dataclasses, kept between processes (start-up of ``dsnparse pipe``).

``@dataclass`` writes the source of each class's ``__init__``, ``__repr__``, ``__eq__``…
and compiles it with ``exec`` every time the class is created, that is on every import of
its module: CPython 3.10-3.12 ``dataclasses._create_fn``, one ``exec`` per method (3.13
batches a class's methods in one).  For dsnparse's classes (the report, the verdict, the
packs, the options, the codes tables) that is about a hundred compilations, some 10-20 ms
of each fresh process — what an MTA pipe pays per bounce, as the ``.py`` files would cost
without their ``.pyc``.

While :func:`install` is in effect the ``exec`` that ``dataclasses`` calls is replaced (a
global of that module, shadowing the builtin) by one that looks the source text up in a
cache of code objects and compiles only the texts it has not seen: the compilation is the
one ``exec`` does (``compile(text, "<string>", "exec")``, no inherited ``__future__``
flags: ``dataclasses`` has none), and the code object is run with the same globals and
namespace, so the classes are the same.  A text is its own key — a changed class has a new
text and is compiled — so the cache cannot be stale.  :func:`finish` restores the builtin and,
when something was compiled, stores the code objects used in this run with those already
kept (up to :data:`MAX_ENTRIES`, then only this run's; ``marshal``, keyed on
the interpreter's version and build) through :mod:`dsnparse.cachefile`: written
only by this user and signed, checked before anything in it is loaded (a code object runs
whatever it says), skipped silently on a read-only or absent cache directory (then every
start compiles, as before).  ``DSNPARSE_CACHE=0`` turns it off with the other caches.
"""
from __future__ import annotations

import builtins
import sys
from typing import Optional

MAX_ENTRIES = 2000  # code objects kept (dsnparse's own classes need about 100)
_state: Optional[dict] = None  # while installed: {"path", "known", "used", "missed"}


def _key() -> tuple:
    # the interpreter that wrote the code objects: its version and build (marshal's format
    # and the bytecode change with it; the bytecode magic number follows the version)
    return ("dataclass-code", 1, sys.implementation.cache_tag, sys.version, sys.hexversion)


def _exec(source, globals=None, locals=None):  # noqa: A002 - the signature of exec
    if globals is None:  # (what exec would take: the caller's namespaces)
        frame = sys._getframe(1)
        globals, locals = frame.f_globals, frame.f_locals if locals is None else locals
    state = _state
    if state is None or type(source) is not str:
        return builtins.exec(source, globals, locals)
    code = state["used"].get(source)
    if code is None:
        import marshal

        blob = state["known"].get(source)
        try:
            code = marshal.loads(blob) if blob is not None else None
        except (EOFError, ValueError, TypeError):
            code = None
        if code is None:
            code = compile(source, "<string>", "exec", dont_inherit=True)
            state["missed"] = True
        state["used"][source] = code
    return builtins.exec(code, globals, locals)


def install(directory=None) -> bool:
    """Serve the ``exec`` calls of ``dataclasses`` from the cache until :func:`finish`.

    ``directory`` (a path): where the cache file is, instead of
    :func:`dsnparse.cachefile.cache_dir` (``dsnparse pipe --cache-dir``).  ``False``
    (nothing changed) when caching is off (``DSNPARSE_CACHE=0``) or it is installed
    already."""
    global _state
    if _state is not None:
        return False
    from pathlib import Path

    from .cachefile import cache_dir

    d = cache_dir()
    if d is None:
        return False
    if directory:
        d = Path(directory)
    import dataclasses

    from . import cachefile

    path = d / f"code-{sys.implementation.cache_tag}.pickle"
    known = cachefile.read(path, _key())
    _state = {"path": path, "known": known if isinstance(known, dict) else {}, "used": {},
              "missed": False}
    dataclasses.exec = _exec
    return True


def finish() -> None:
    """Give ``dataclasses`` its builtin ``exec`` back; store the code objects of this run
    when one of them had to be compiled.  Never raises (a cache that cannot be written is
    no cache)."""
    global _state
    state, _state = _state, None
    if state is None:
        return
    import dataclasses

    if dataclasses.__dict__.get("exec") is _exec:
        del dataclasses.exec
    if not state["missed"]:
        return
    import marshal

    from . import cachefile

    try:
        blobs = {src: marshal.dumps(code) for src, code in state["used"].items()}
    except ValueError:  # (a code object marshal cannot write: keep none)
        return
    if len(state["known"]) + len(blobs) <= MAX_ENTRIES:
        # (what other commands and options use too: runs that create different classes do
        # not write the file in turn; texts of older versions go when it is full)
        blobs = {**state["known"], **blobs}
    cachefile.write(state["path"], _key(), blobs)
