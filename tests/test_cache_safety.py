"""The caches cannot run code (issue 18): a planted pickle is never loaded, a planted
symbolic link never followed; only files this user wrote, with a matching HMAC, are read."""
from __future__ import annotations

import os
import pickle
import stat
import sys

import pytest

import dsnparse
from dsnparse import cachefile, codes, rules
from dsnparse.options import Options
from dsnparse.rules import load_packs

PACK = """\
description: test vendor
order: 100
detect:
  any:
    - body: 'could not be delivered to'
recipients:
  - id: rcpt
    pattern: '^\\s+(?P<recipient>[^\\s@]+@[^\\s@]+)$'
"""
MSG = (b"From: postmaster@acme.example\nTo: s@example.com\nSubject: failure\n\n"
       b"Your message could not be delivered to:\n\n   lost@example.org\n")


class Evil:
    """Unpickling this creates the marker file: what a planted cache would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("DSNPARSE_CACHE", "1")
    monkeypatch.setenv("DSNPARSE_CACHE_DIR", str(d))
    load_packs.cache_clear()
    yield d
    load_packs.cache_clear()


def _rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "vendor.yaml").write_text(PACK)
    return d


def _works(d):
    r = dsnparse.parse(MSG, Options(rules=(str(d),)))
    return r.format == "vendor" and [v.final_recipient for v in r.verdicts] == ["lost@example.org"]


def test_planted_pickles_never_run(tmp_path, cache):
    d = _rules_dir(tmp_path)
    marker = tmp_path / "ran"
    load_packs((str(d),))  # writes the cache (and the key)
    (f,) = cache.glob("packs-*.pickle")
    evil = pickle.dumps(Evil(marker))
    plants = [
        evil,  # a bare pickle (what the caches were before)
        pickle.dumps({"key": None, "digest": b"", "packs": evil}),  # the old layout
        cachefile.MAGIC + b"\0" * 32 + b"\0\0\0\1" + evil,  # the new layout, a made-up MAC
        cachefile.MAGIC + f.read_bytes()[len(cachefile.MAGIC):-1] + b"\x00",  # one byte off
    ]
    for data in plants:
        f.write_bytes(data)
        os.chmod(f, 0o600)
        load_packs.cache_clear()
        assert _works(d)
        assert not marker.exists()
    # the data caches (codes.yaml, reasons.yaml) are read the same way
    for data_file in cache.glob("data-*.pickle"):
        data_file.write_bytes(evil)
        os.chmod(data_file, 0o600)
    codes._default = None
    try:
        assert codes.load_table().rows
    finally:
        codes._default = None
    assert not marker.exists()


def test_cache_files_of_others_or_writable_by_others_are_not_read(tmp_path, cache):
    d = tmp_path / "data"
    d.mkdir(mode=0o700)
    f = d / "x.pickle"
    assert cachefile.write(f, "k", {"value": 1})
    assert cachefile.read(f, "k") == {"value": 1}
    assert cachefile.read(f, "other key") is None  # stale: written for another key
    os.chmod(f, 0o666)
    assert cachefile.read(f, "k") is None  # writable by others: not trusted
    os.chmod(f, 0o600)
    os.chmod(d, 0o777)
    assert cachefile.read(f, "k") is None  # a directory others may write to
    os.chmod(d, 0o700)
    assert cachefile.read(f, "k") == {"value": 1}
    if os.getuid() == 0:  # as root the file can be handed to another user
        os.chown(f, 65534, 65534)
        assert cachefile.read(f, "k") is None
        os.chown(f, 0, 0)
        os.chown(d / cachefile.KEY_NAME, 65534, 65534)  # a key that is not ours
        assert cachefile.read(f, "k") is None


def test_symbolic_links_are_never_followed(tmp_path, cache):
    d = _rules_dir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    load_packs((str(d),))
    (f,) = cache.glob("packs-*.pickle")
    # the cache file replaced by a link to the victim: read as absent, then replaced by a
    # new file (the link itself, never its target)
    f.unlink()
    f.symlink_to(victim)
    load_packs.cache_clear()
    assert _works(d)
    assert victim.read_text() == "precious\n"
    assert not f.is_symlink() and f.stat().st_size > 0
    # the key replaced by a link to a file of known bytes: no cache at all, nothing written
    key = cache / cachefile.KEY_NAME
    known = tmp_path / "known-key"
    known.write_bytes(b"k" * cachefile.KEY_BYTES)
    key.unlink()
    key.symlink_to(known)
    f.unlink()
    load_packs.cache_clear()
    assert _works(d)
    assert not list(cache.glob("packs-*.pickle"))
    assert known.read_bytes() == b"k" * cachefile.KEY_BYTES


def test_a_link_planted_where_a_data_cache_is_written_is_not_followed(tmp_path, cache):
    # the data cache used to write through a predictable temporary name (".NAME.PID")
    import zlib

    src = tmp_path / "codes.yaml"
    src.write_text(codes.default_path().read_text(encoding="utf-8"), encoding="utf-8")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    cache.mkdir(mode=0o700)
    name = f"data-codes-{zlib.crc32(str(src).encode()):08x}.pickle"
    (cache / f".{name}.{os.getpid()}").symlink_to(victim)
    table = codes.cached_load(src, codes._load)
    assert table.rows and victim.read_text() == "precious\n"
    assert codes.cached_load(src, lambda p: pytest.fail("the cache was not used")).rows


def test_a_linked_cache_directory_is_not_used(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(elsewhere)
    monkeypatch.setenv("DSNPARSE_CACHE", "1")
    monkeypatch.setenv("DSNPARSE_CACHE_DIR", str(link))
    load_packs.cache_clear()
    try:
        d = _rules_dir(tmp_path)
        assert _works(d)
        assert list(elsewhere.iterdir()) == []  # nothing written through the link
    finally:
        load_packs.cache_clear()


def test_cache_directory_and_files_are_private(tmp_path, cache):
    d = _rules_dir(tmp_path)
    load_packs((str(d),))
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700
    for f in cache.iterdir():
        assert stat.S_IMODE(os.lstat(f).st_mode) == 0o600, f
    # an existing directory is never changed: readable by others, it is used as it is (the
    # files stay private); writable by others (a shared /tmp, sticky), it is not used
    os.chmod(cache, 0o755)
    for f in cache.glob("packs-*.pickle"):
        f.unlink()
    load_packs.cache_clear()
    load_packs((str(d),))
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o755
    assert [stat.S_IMODE(os.lstat(f).st_mode) for f in cache.glob("packs-*.pickle")] == [0o600]
    os.chmod(cache, 0o1777)
    for f in cache.glob("packs-*.pickle"):
        f.unlink()
    load_packs.cache_clear()
    load_packs((str(d),))
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o1777
    assert list(cache.glob("packs-*.pickle")) == []
    os.chmod(cache, 0o700)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_two_processes_agree_on_one_key(tmp_path):
    import subprocess

    from conftest import ROOT

    d = tmp_path / "c"
    code = ("import sys; from pathlib import Path; from dsnparse import cachefile; "
            "p = Path(sys.argv[1]) / f'f{sys.argv[2]}'; "
            "assert cachefile.write(p, 'k', sys.argv[2]); print(cachefile.read(p, 'k'))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(d), str(i)], env=env,
                              stdout=subprocess.PIPE) for i in range(4)]
    outs = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert outs == ["0", "1", "2", "3"]
    for i in range(4):  # every file verifies with the one key left in the directory
        assert cachefile.read(d / f"f{i}", "k") == str(i)
