"""The SQLite ledger: one file in WAL mode (the default backend of :class:`Ledger`).

Storage
    One SQLite file in WAL mode (readers never block the writer).  Each write is one
    ``BEGIN IMMEDIATE`` transaction: a process killed mid-write leaves either all of a
    batch or none of it.  Writers wait on a locked database (SQLite busy timeout) and retry
    with back-off until ``timeout`` seconds have passed, so several processes (an IMAP
    watcher and a batch import) can write one ledger at once.  ``synchronous=NORMAL`` (the
    default) survives a killed process; pass ``synchronous="FULL"`` to survive power loss too.
    The schema is versioned (``PRAGMA user_version``) and migrated on open (``dsnparse
    ledger migrate`` does the same explicitly).
"""
from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from ..errors import LedgerError
from ..policy import Policy, load_policy
from .core import EVENT_COLUMNS, Ledger, default_db_path

SCHEMA_VERSION = 2
"""Current schema version (``PRAGMA user_version`` of a ledger file)."""

# MIGRATIONS[n] brings a ledger from version n-1 to n.  Never edit a shipped migration;
# append a new one and bump SCHEMA_VERSION.
MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_key TEXT NOT NULL UNIQUE,
            address TEXT NOT NULL,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            action TEXT, code TEXT, bounce_type TEXT, status TEXT, reason TEXT,
            feedback_type TEXT, reporting_mta TEXT,
            message_id TEXT, source TEXT, original_message_id TEXT, campaign TEXT,
            note TEXT,
            recorded_at REAL NOT NULL)""",
        "CREATE INDEX events_address_at ON events(address, at, id)",
        """CREATE TABLE addresses (
            address TEXT PRIMARY KEY,
            suppressed INTEGER NOT NULL,
            basis TEXT, reason TEXT, since REAL, code TEXT, status TEXT,
            tags TEXT NOT NULL DEFAULT '',
            soft_count INTEGER NOT NULL DEFAULT 0,
            event_ids TEXT NOT NULL DEFAULT '',
            removed_at REAL,
            updated_at REAL NOT NULL) WITHOUT ROWID""",
        "CREATE INDEX addresses_suppressed_since ON addresses(suppressed, since)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
    ),
    # 2: each event keeps the verdict's fault, diagnostic and remote MTA (`dsnparse
    # senders`); older events keep NULL there and get their fault from reason and status.
    2: (
        "ALTER TABLE events ADD COLUMN fault TEXT",
        "ALTER TABLE events ADD COLUMN diagnostic_code TEXT",
        "ALTER TABLE events ADD COLUMN remote_mta TEXT",
        "CREATE INDEX events_kind_at ON events(kind, at)",
    ),
}

_INSERT_COLUMNS = [c for c in EVENT_COLUMNS if c != "id"]
_INSERT_SQL = (f"INSERT OR IGNORE INTO events({', '.join(_INSERT_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})")


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


class SQLiteLedger(Ledger):
    """A bounce ledger in one SQLite file (see :class:`~dsnparse.ledger.Ledger` for the
    arguments, errors and API)."""

    backend = "sqlite"

    def __init__(self, path: Union[str, os.PathLike, None] = None, *,
                 policy: Optional[Policy] = None, timeout: float = 30.0,
                 synchronous: str = "NORMAL", create: bool = True):
        self.policy = policy if policy is not None else load_policy()
        self.path = Path(path).expanduser() if path is not None else default_db_path(self.policy)
        self.timeout = float(timeout)
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        memory = str(self.path) == ":memory:"
        if not create and not memory and not self.path.is_file():
            raise LedgerError(f"no ledger at {self.path} (record bounces first with "
                              f"`dsnparse parse … --db {self.path}`)")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                target, uri = str(self.path), False
            else:  # mode=rw: SQLite itself refuses to create the file
                target, uri = ("file::memory:" if memory else
                               f"{self.path.resolve().as_uri()}?mode=rw"), True
            self._conn = sqlite3.connect(target, timeout=min(self.timeout, 5.0),
                                         isolation_level=None, uri=uri)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"{self.path}: cannot open ledger: {exc}") from exc
        try:
            self._retry(lambda: self._conn.execute("PRAGMA journal_mode=WAL").fetchone())
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._migrate()
            self._check_policy()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise LedgerError(f"{self.path}: not a usable ledger: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def migrate_schema(cls, location: Any, *, timeout: float = 30.0) -> tuple[int, int]:
        """``dsnparse ledger migrate`` for a file: open it (creating it when missing: an
        SQLite ledger migrates on open) and report ``(version before, version after)``."""
        path = Path(location).expanduser()
        before = 0
        if path.is_file():
            try:
                con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                      timeout=timeout)
                try:
                    before = con.execute("PRAGMA user_version").fetchone()[0]
                finally:
                    con.close()
            except sqlite3.Error as exc:
                raise LedgerError(f"{path}: not a usable ledger: {exc}") from exc
        with cls(path, timeout=timeout) as led:
            return before, led.schema_version()

    def schema_version(self) -> int:
        return self._retry(lambda: self.conn.execute("PRAGMA user_version").fetchone()[0])

    def reader(self) -> Optional[Callable[[], Any]]:
        if str(self.path) == ":memory:":
            return None
        uri, timeout = f"{self.path.resolve().as_uri()}?mode=ro", self.timeout
        return lambda: sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

    def _retry(self, fn: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise LedgerError(f"{self.path}: database stayed locked for "
                                      f"{self.timeout:g} s: {exc}") from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, retrying while busy."""
        conn = self.conn

        def attempt():
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return self._retry(attempt)

    def _insert_events(self, conn: sqlite3.Connection, rows: list[dict]
                       ) -> list[tuple[str, float]]:
        stored = []
        for r in rows:
            if conn.execute(_INSERT_SQL, [r[c] for c in _INSERT_COLUMNS]).rowcount == 1:
                stored.append((r["address"], r["at"]))
        return stored

    def _lock_addresses(self, conn: sqlite3.Connection, addrs: Sequence[str]
                        ) -> dict[str, tuple[Any, Any, Any]]:
        # BEGIN IMMEDIATE already holds the one write lock: just read the rows
        out = {}
        for a in addrs:
            row = conn.execute("SELECT suppressed, since, removed_at FROM addresses "
                               "WHERE address=?", (a,)).fetchone()
            if row is not None:
                out[a] = tuple(row)
        return out

    def _migrate(self) -> None:
        def version() -> int:
            return self.conn.execute("PRAGMA user_version").fetchone()[0]

        v = self._retry(version)
        if v > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: ledger schema version {v} is newer than this "
                              f"dsnparse supports ({SCHEMA_VERSION}); upgrade dsnparse")
        if v == SCHEMA_VERSION:
            return

        def run(conn):
            cur = version()               # another process may have migrated meanwhile
            if cur == 0 and conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]:
                raise LedgerError(f"{self.path}: not a dsnparse ledger (has other tables)")
            for n in range(cur + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[n]:
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={n}")
        self._write(run)
