"""Cache files that only this user could have written: signed, checked before they are read.

The pack cache and the data caches (:func:`dsnparse.rules.load_packs`,
:func:`dsnparse.codes.cached_load`) hold pickles, and the compiled patterns in them are the
``regex`` package's programs, which it trusts: unpickling a file that someone else wrote
would run their code, or crash the matcher.  So a cache file is read only when

- the cache directory is a real directory (not a symbolic link) owned by this user and
  writable by nobody else (dsnparse creates it ``0700``, and tightens one of its own that is
  not);
- the file, opened with ``O_NOFOLLOW``, is a regular file owned by this user and writable by
  nobody else;
- its HMAC-SHA256 (RFC 2104), keyed with a secret of 32 random bytes kept in the directory's
  ``key`` file (``0600``, checked the same way), matches: only a process that could read the
  key could have written the file.

Files are written to a new temporary name (``O_CREAT | O_EXCL | O_NOFOLLOW``, ``0600``: a
planted symbolic link is never followed) and renamed into place, so a reader sees a whole
file or none; the key is created the same way and linked into place, so two processes
starting at once agree on one key.  Anything wrong (another owner, a loose mode, a link, a
bad MAC, a stale key) means "no cache": the caller rebuilds, and never raises for it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import stat
import struct
from pathlib import Path
from typing import Any, Optional


def cache_dir() -> Optional[Path]:
    """Where the caches live (``$DSNPARSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/dsnparse`` or
    ``~/.cache/dsnparse``), or ``None`` when caching is off (``DSNPARSE_CACHE=0``, ``no``,
    ``off`` or ``false``)."""
    if os.environ.get("DSNPARSE_CACHE", "1") in ("0", "no", "off", "false"):
        return None
    d = os.environ.get("DSNPARSE_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dsnparse"

MAGIC = b"dsnparse-cache-2\n"
KEY_NAME = "key"
KEY_BYTES = 32
_MAC_BYTES = 32  # SHA-256
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _mine(st: os.stat_result, loose: int = 0o022) -> bool:
    """Owned by this user and writable by no one else (no ``loose`` mode bits)."""
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    return st.st_uid == uid and not st.st_mode & loose


def secure_dir(d: Path) -> bool:
    """Make sure ``d`` is a directory only this user can write to: created ``0700`` when
    absent (its parents as ``os.makedirs`` makes them).  An existing directory is never
    changed (it may be a shared one such as ``/tmp``, given as ``--cache-dir``): it is used
    when it is this user's own and no one else can write to it.  ``False`` (do not cache)
    when it is a symbolic link, not a directory, owned by someone else, writable by group or
    others, or cannot be made."""
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.lstat(d)
        return stat.S_ISDIR(st.st_mode) and _mine(st, 0) and not st.st_mode & 0o022
    except OSError:
        return False


def _read_private(path: Path, limit: int) -> Optional[bytes]:
    """The bytes of ``path`` if it is a regular file of this user that no one else can write
    (opened without following a symbolic link), at most ``limit`` bytes; else ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _mine(st) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_new(d: Path, prefix: str, data: bytes) -> Path:
    """``data`` in a new file of ``d`` (``0600``, created exclusively, never through a link);
    returns its path.  Raises ``OSError``."""
    for _ in range(8):
        tmp = d / f".{prefix}-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return tmp
    raise FileExistsError(f"no free temporary name in {d}")


def _key(d: Path) -> Optional[bytes]:
    """The directory's secret key, created on first use; ``None`` when it cannot be had."""
    path = d / KEY_NAME
    key = _read_private(path, KEY_BYTES)
    if key is not None:
        return key if len(key) == KEY_BYTES else None
    if os.path.lexists(path):  # there, but not a file of ours: no cache
        return None
    try:
        tmp = _write_new(d, "key", secrets.token_bytes(KEY_BYTES))
        try:
            os.link(tmp, path)  # fails if another process made one meanwhile: use theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    key = _read_private(path, KEY_BYTES)
    return key if key is not None and len(key) == KEY_BYTES else None


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


def read(path: Path, key_of_content, limit: int = 256 << 20) -> Optional[Any]:
    """The object stored in ``path`` by :func:`write` with ``key_of_content``, or ``None``.

    ``None`` when the directory or the file fails the checks of the module docstring, the MAC
    does not match, the file was written for another ``key_of_content`` (a stale cache), or
    it cannot be read.  Only a file that passes is unpickled.  Never raises."""
    d = path.parent
    try:
        st = os.lstat(d)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or not _mine(st, 0o077):
        return None
    data = _read_private(path, limit)
    if data is None or not data.startswith(MAGIC):
        return None
    secret = _key(d)
    if secret is None:
        return None
    head = len(MAGIC)
    mac, body = data[head:head + _MAC_BYTES], data[head + _MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    try:
        (n,) = struct.unpack_from(">I", body)
        if pickle.loads(body[4:4 + n]) != key_of_content:
            return None
        return pickle.loads(body[4 + n:])
    except Exception:  # noqa: BLE001 - (signed by us, but written by another version)
        return None


def write(path: Path, key_of_content, value) -> bool:
    """Store ``value`` (picklable) in ``path``, signed, for :func:`read` with the same
    ``key_of_content``; the directory is made safe first (:func:`secure_dir`).  ``False``
    when it cannot be (an unsafe directory, a read-only or full disk); never raises for that.
    """
    d = path.parent
    if not secure_dir(d):
        return False
    secret = _key(d)
    if secret is None:
        return False
    try:
        k = pickle.dumps(key_of_content, pickle.HIGHEST_PROTOCOL)
        body = struct.pack(">I", len(k)) + k + pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        tmp = _write_new(d, path.name, MAGIC + _mac(secret, body) + body)
    except Exception:  # noqa: BLE001 - OSError (read-only, full disk) or a pickling error
        return False
    try:
        os.replace(tmp, path)  # (replaces a link planted at ``path``, never its target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
