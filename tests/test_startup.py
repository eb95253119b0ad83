"""Start-up of the one-message commands (dsnparse.startup, dsnparse.codecache,
dsnparse.console): what they cut must not change any output.

Every check runs the real console entry (``python -m dsnparse``, which is
``dsnparse.console.main`` as the ``dsnparse`` script is) in a fresh process with its own
cache directory, and compares with what ``dsnparse.cli.main`` gives in this process, or with
a run that has every cache off.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

BOUNCE = SAMPLES / "rfc3464" / "01.eml"


@pytest.fixture
def cache_dir():
    d = Path(tempfile.mkdtemp(prefix="dsnparse-startup-"))
    try:
        yield d / "cache"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _env(cache: Path | None, **more) -> dict:
    env = dict(os.environ, **more)
    env.pop("DSNPARSE_CACHE", None)
    if cache is None:
        env["DSNPARSE_CACHE"] = "0"
    else:
        env["DSNPARSE_CACHE_DIR"] = str(cache)
    return env


def _dsnparse(args, cache, data: bytes = b"", **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsnparse", *map(str, args)], input=data,
                          capture_output=True, env=_env(cache, **env), timeout=120, cwd=ROOT)


def _code_cache(cache: Path) -> Path:
    return cache / f"code-{sys.implementation.cache_tag}.pickle"


# ------------------------------------------------------------------ the same output

def test_parse_stdin_output_is_the_in_process_output(cache_dir, capsys):
    """``parse -`` ends with os._exit: every byte of stdout and the summary on stderr are
    still written (the first run fills the caches, the second reads them)."""
    from dsnparse.cli import main

    data = BOUNCE.read_bytes()
    import io

    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(data))
    try:
        assert main(["parse", "--format", "jsonl", "-"]) == 0
    finally:
        sys.stdin = old
    want = capsys.readouterr()
    assert want.out.count("\n") >= 1 and "bounces: 1" in want.err
    for _ in range(2):
        r = _dsnparse(["parse", "--format", "jsonl", "-"], cache_dir, data)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == want.out
        assert r.stderr.decode() == want.err
    assert _code_cache(cache_dir).is_file()


def test_pipe_records_same_with_and_without_caches(cache_dir):
    """The pipe's records with every cache off, on a first run (caches written) and on a
    second (caches read) are the same bytes; exit 0 each time."""
    data = BOUNCE.read_bytes()
    outs = []
    for cache in (None, cache_dir, cache_dir):
        work = Path(tempfile.mkdtemp(prefix="dsnparse-startup-out-"))
        try:
            r = _dsnparse(["pipe", "-o", work / "v.jsonl", "--sender", "<>"], cache, data)
            assert r.returncode == 0, r.stderr
            outs.append((work / "v.jsonl").read_bytes())
        finally:
            shutil.rmtree(work, ignore_errors=True)
    assert outs[0] == outs[1] == outs[2]
    rec = json.loads(outs[0].splitlines()[0])
    # RFC 3464 sample: its Final-Recipient and Status fields
    assert rec["kind"] == "bounce" and rec["status"].startswith("5.")


def test_usage_error_and_help_exit_as_before(cache_dir):
    """argparse's exits pass through the console entry: --help 0, a bad option of pipe 75
    (EX_TEMPFAIL, see dsnparse.pipe), of parse 2."""
    assert _dsnparse(["pipe", "--help"], cache_dir).returncode == 0
    assert _dsnparse(["pipe", "--bogus"], cache_dir).returncode == 75
    r = _dsnparse(["parse", "--bogus", "-"], cache_dir)
    assert r.returncode == 2 and b"unrecognized arguments: --bogus" in r.stderr


# ------------------------------------------------------------------ the code cache

_DUMP = textwrap.dedent("""
    import dataclasses, json, sys
    from dsnparse import startup
    if sys.argv[1] == "cached":
        startup.begin()
    import dsnparse.model, dsnparse.options, dsnparse.rules, dsnparse.codes, dsnparse.reasons
    from dsnparse.rulepacks import detection, pack, pattern, textrules
    startup.resume_collector()
    out = {}
    for mod in (dsnparse.model, dsnparse.options, pack, pattern, detection, textrules,
                dsnparse.codes, dsnparse.reasons):
        for name, cls in sorted(vars(mod).items()):
            if isinstance(cls, type) and dataclasses.is_dataclass(cls) and \\
                    cls.__module__ == mod.__name__:
                for attr, f in sorted(vars(cls).items()):
                    code = getattr(f, "__code__", None)
                    if code is None or code.co_filename != "<string>":
                        continue
                    # (a frozenset constant compared as its sorted items: its iteration order
                    # follows the insertion history, which marshal does not keep)
                    consts = repr(tuple(sorted(c) if isinstance(c, frozenset) else c
                                        for c in code.co_consts))
                    out[f"{name}.{attr}"] = [code.co_code.hex(), consts,
                                             code.co_names, code.co_varnames,
                                             repr(f.__defaults__), repr(f.__kwdefaults__),
                                             repr(f.__annotations__), f.__qualname__]
    print(json.dumps(out, sort_keys=True))
""")


def test_cached_dataclass_methods_are_the_compiled_ones(cache_dir):
    """The methods ``@dataclass`` made from the cache have the bytecode, constants, names,
    defaults, annotations and qualified names of those it compiles itself."""
    def dump(mode):
        # one hash seed for the three processes: a frozen dataclass's __setattr__ holds a
        # frozenset of field names (Python 3.13), whose repr follows the string hashes
        r = subprocess.run([sys.executable, "-c", _DUMP, mode], capture_output=True,
                           env=_env(cache_dir, PYTHONHASHSEED="0"), timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)

    plain = dump("plain")
    assert len(plain) > 50  # __init__, __repr__, __eq__… of dsnparse's dataclasses
    first = dump("cached")  # compiles and writes the cache
    assert _code_cache(cache_dir).is_file()
    second = dump("cached")  # reads it
    assert plain == first == second


_CLASS = textwrap.dedent("""
    import sys
    from dsnparse import codecache
    assert codecache.install()
    import dataclasses
    @dataclasses.dataclass
    class Probe:
        {field}: int = 1
    codecache.finish()
    assert "exec" not in vars(dataclasses)  # the builtin is back
    print(Probe(), dataclasses.fields(Probe)[0].name)
""")


def _probe(cache: Path, field: str) -> str:
    r = subprocess.run([sys.executable, "-c", _CLASS.replace("{field}", field)],
                       capture_output=True, env=_env(cache), timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


def test_changed_class_is_compiled_again(cache_dir):
    """A text is its own key: after a class changes, its methods are its new ones."""
    assert _probe(cache_dir, "alpha") == "Probe(alpha=1) alpha"
    assert _probe(cache_dir, "alpha") == "Probe(alpha=1) alpha"  # (from the cache)
    assert _probe(cache_dir, "beta") == "Probe(beta=1) beta"
    assert _probe(cache_dir, "alpha") == "Probe(alpha=1) alpha"


def test_code_cache_not_signed_by_this_user_is_not_loaded(cache_dir):
    """A code cache whose MAC does not verify (dsnparse.cachefile: written by someone else,
    or damaged) is never loaded: the methods are compiled afresh.  The same forged contents
    with a valid MAC — what only this user's processes can write — are loaded, which shows
    the forgery would be seen."""
    import marshal
    import pickle
    import struct

    from dsnparse import cachefile

    assert _probe(cache_dir, "gamma") == "Probe(gamma=1) gamma"
    f = _code_cache(cache_dir)
    data = f.read_bytes()
    body = data[len(cachefile.MAGIC) + 32:]
    (n,) = struct.unpack_from(">I", body)
    blobs = pickle.loads(body[4 + n:])
    # the __repr__ that says another field name
    forged = {src: marshal.dumps(compile(src.replace("(gamma=", "(omega="), "<string>", "exec",
                                         dont_inherit=True)) for src in blobs}
    assert any("(gamma=" in src for src in blobs)
    body = body[:4 + n] + pickle.dumps(forged)
    f.write_bytes(cachefile.MAGIC + bytes(32) + body)
    assert _probe(cache_dir, "gamma") == "Probe(gamma=1) gamma"
    secret = (cache_dir / cachefile.KEY_NAME).read_bytes()
    f.write_bytes(cachefile.MAGIC + cachefile._mac(secret, body) + body)
    assert _probe(cache_dir, "gamma") == "Probe(omega=1) gamma"


def test_unwritable_cache_directory(cache_dir):
    """A cache directory that cannot be made (a file is in the way) means no cache: the
    pipe still stores its records and exits 0."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    blocker = cache_dir.parent / "not-a-dir"
    blocker.write_text("x")
    out = cache_dir.parent / "v.jsonl"
    r = _dsnparse(["pipe", "-o", out], blocker / "cache", BOUNCE.read_bytes())
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text().splitlines()[0])["kind"] == "bounce"


# ------------------------------------------------------------------ collector and exit

def test_collector_paused_then_resumed_frozen():
    from dsnparse import startup

    assert gc.isenabled()
    try:
        startup.pause_collector()
        assert not gc.isenabled()
        startup.resume_collector()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        startup.resume_collector()  # idempotent
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
    gc.disable()  # off by someone else: left off
    try:
        startup.pause_collector()
        startup.resume_collector()
        assert not gc.isenabled()
    finally:
        gc.enable()


_EXIT = textwrap.dedent("""
    import atexit, sys, threading, time
    from dsnparse import startup
    atexit.register(lambda: sys.stdout.write("atexit ran\\n"))
    sys.stdout.write("buffered, no newline")
    if sys.argv[1] == "thread":
        def late():
            time.sleep(0.3)
            open(sys.argv[2], "w").write("done")
        threading.Thread(target=late).start()
    startup.exit_now(7)
    sys.stdout.write(" / exit_now returned")
    sys.exit(8)
""")


def test_exit_now_flushes_and_runs_atexit(tmp_path):
    r = subprocess.run([sys.executable, "-c", _EXIT, "plain"], capture_output=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 7
    assert r.stdout == b"buffered, no newlineatexit ran\n"


def test_exit_now_declines_while_a_thread_runs(tmp_path):
    """The normal exit waits for a non-daemon thread: exit_now leaves it to it."""
    flag = tmp_path / "flag"
    r = subprocess.run([sys.executable, "-c", _EXIT, "thread", str(flag)], capture_output=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 8
    assert r.stdout == b"buffered, no newline / exit_now returnedatexit ran\n"
    assert flag.read_text() == "done"


def test_pipe_start_up_imports(cache_dir, tmp_path):
    """What ``pipe`` without ``--db`` does not need is not imported: the HTML parser, the
    ledger, sqlite3, the IMAP/POP3 and service modules."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "dsnparse", "pipe", "-o",
                        str(tmp_path / "v.jsonl")], input=BOUNCE.read_bytes(),
                       capture_output=True, env=_env(cache_dir), timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    mods = {line.rsplit("|", 1)[1].strip() for line in r.stderr.decode().splitlines()
            if line.startswith("import time:") and "|" in line}
    assert "dsnparse.engine" in mods and "dsnparse.rules" in mods
    for unneeded in ("html", "sqlite3", "dsnparse.ledger", "imaplib", "poplib",
                     "dsnparse.service", "dsnparse.output"):
        assert unneeded not in mods, unneeded


@pytest.mark.parametrize("command", ["parse", "eval", "pipe", "suppressions", "imap", "pop3",
                                     "rules", "explain", "senders"])
def test_parser_of_one_command_is_the_full_ones(command):
    """``dsnparse COMMAND …`` builds only COMMAND's parser: its usage and help are those of
    the parser built with every command (as for ``dsnparse --help COMMAND``)."""
    from dsnparse.cli import build_parser

    def sub(parser):
        return parser._subparsers._group_actions[0].choices

    narrow = sub(build_parser(["-v", command, "x"]))
    full = sub(build_parser(["--help", command]))
    assert set(narrow) <= set(full) and command in narrow and len(full) > len(narrow)
    assert narrow[command].format_help() == full[command].format_help()
    assert narrow[command].format_usage() == full[command].format_usage()


def test_pipe_cache_dir_holds_the_code_cache(cache_dir, tmp_path):
    """``pipe --cache-dir DIR`` (the README's Postfix and Exim recipes) keeps the code cache
    there too, not in the pipe user's home."""
    own = tmp_path / "pipe-cache"
    r = _dsnparse(["pipe", "-o", tmp_path / "v.jsonl", "--cache-dir", own], cache_dir,
                  BOUNCE.read_bytes())
    assert r.returncode == 0, r.stderr
    assert _code_cache(own).is_file() and not _code_cache(cache_dir).exists()
    from dsnparse.startup import option_value

    assert option_value(["pipe", "--cache-dir=/a", "--cache-dir", "/b"], "--cache-dir") == "/b"
    assert option_value(["pipe", "--", "--cache-dir", "/b"], "--cache-dir") is None
