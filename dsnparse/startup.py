"""Start-up and exit of the one-message commands (``dsnparse pipe``, ``dsnparse parse -``).

An MTA starts ``dsnparse pipe`` once per bounce (Postfix ``pipe(8)``, Exim's ``pipe``
transport), so what a Python process pays to start and to stop is paid per message.  Two
costs here are not the parser's work and are cut without changing any output:

* **The cyclic garbage collector during start-up.**  Importing the modules and unpickling the
  pack cache create some hundred thousand long-lived objects; the collector's generation
  scans run over them again and again while they are made, and find nothing to free.
  :func:`pause_collector` switches it off when the process starts and
  :func:`resume_collector` switches it back on — after ``gc.freeze()`` has moved everything
  loaded so far to the permanent generation (CPython's ``gc`` documentation, ``gc.freeze``)
  — before the first message is read, so a message is always parsed with the collector
  running, as before.
* **Interpreter finalization.**  At exit CPython tears every module and object down one by
  one (``Py_FinalizeEx``): for a process that has done its one job this is about 15 ms of
  freeing memory that the kernel frees at once.  :func:`exit_now` ends the process with
  ``os._exit`` once everything the normal exit would still do that can be seen from outside
  is done: standard output and standard error flushed, the ``atexit`` handlers run (which
  include ``logging.shutdown``).  It declines (returns ``False``, and the caller exits the
  normal way) when a flush fails — the normal exit then reports it as before — or when
  another thread is still running, which the normal exit would wait for.

* **Compiling the dataclasses' methods**, on every start: :mod:`dsnparse.codecache` keeps
  the compiled code between processes, from :func:`begin` to :func:`resume_collector`.

Only :func:`dsnparse.console.main` (the console script and ``python -m dsnparse``) uses
these, and only for ``pipe`` and ``parse`` (``exit_now`` only for ``pipe`` and for ``parse``
reading standard input alone); :func:`dsnparse.cli.main` called from a program never ends
the process.
"""
from __future__ import annotations

import gc
import os
import sys
from typing import Optional

_paused = False

ONE_MESSAGE_COMMANDS = ("pipe", "parse")


def command_word(argv) -> Optional[str]:
    """The command named in ``argv`` (the arguments after the program name; the top-level
    options take no value), or ``None``."""
    for a in argv:
        if not a.startswith("-"):
            return a
        if a == "--":
            return None
    return None


def option_value(argv, option: str) -> Optional[str]:
    """The value of ``option`` (``--opt VALUE`` or ``--opt=VALUE``, as written: no
    abbreviation) in ``argv``, the last one given; ``None`` when absent."""
    value = None
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(option + "="):
            value = a[len(option) + 1:]
    return value


def begin(argv=()) -> None:
    """Start-up of ``pipe`` and ``parse`` (``argv``: the arguments after the program name):
    the collector paused (:func:`pause_collector`) and the dataclasses' compiled methods
    served from :mod:`dsnparse.codecache` — in ``pipe``'s ``--cache-dir`` when given —
    until :func:`resume_collector`.  Never raises."""
    pause_collector()
    from . import codecache

    directory = option_value(argv, "--cache-dir") if command_word(argv) == "pipe" else None
    try:
        codecache.install(directory)
    except Exception:  # noqa: BLE001 - a cache is never worth a failed start
        codecache.finish()


def pause_collector() -> None:
    """Switch the cyclic garbage collector off for the start-up (see the module docstring);
    nothing when it is already off.  Never raises."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """End of start-up: freeze the objects loaded so far (``gc.freeze``: later collections do
    not scan them) and switch the collector on again — only if :func:`pause_collector`
    switched it off; and the end of :mod:`dsnparse.codecache`'s part (see :func:`begin`).
    Idempotent; never raises."""
    global _paused
    if "dsnparse.codecache" in sys.modules:
        try:
            sys.modules["dsnparse.codecache"].finish()
        except Exception:  # noqa: BLE001 - (see begin)
            pass
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def exit_now(status: int) -> bool:
    """End the process with ``status`` without interpreter finalization, after flushing
    standard output and standard error and running the ``atexit`` handlers.

    Returns ``False`` (and changes nothing but the flushes) when a flush fails or another
    thread is alive: the caller then exits normally (``sys.exit``), which reports a failed
    flush as it always did and waits for the thread.  Does not return otherwise."""
    import threading

    if threading.active_count() > 1:
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            return False
    import atexit

    atexit._run_exitfuncs()  # (logging.shutdown among them, when logging was set up)
    for stream in (sys.stdout, sys.stderr):  # (a handler may have written)
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
