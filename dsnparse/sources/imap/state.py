"""The SQLite state file of the IMAP source: stored messages and output checkpoints."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import time
import uuid
from typing import Iterable, Optional

from ...errors import SourceError
from .options import ImapOptions, LocalIOError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages(
    server TEXT NOT NULL, user TEXT NOT NULL, folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    message_id TEXT, sha256 TEXT NOT NULL,
    disposition TEXT NOT NULL,          -- bounce | other | error
    filed INTEGER NOT NULL DEFAULT 0,   -- 1 once moved/flagged (or nothing to do)
    alias_of INTEGER,                   -- rowid of the same message under an old UIDVALIDITY
    stored_at REAL NOT NULL,
    PRIMARY KEY(server, user, folder, uidvalidity, uid));
CREATE INDEX IF NOT EXISTS messages_hash ON messages(server, user, folder, sha256);
CREATE INDEX IF NOT EXISTS messages_alias ON messages(alias_of);
-- a folder under a new UIDVALIDITY is "reconciled" once one pass has seen every message in
-- it; until then each message not known by UID is matched against the old rows
CREATE TABLE IF NOT EXISTS folders(
    server TEXT NOT NULL, user TEXT NOT NULL, folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL, reconciled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(server, user, folder, uidvalidity));
CREATE TABLE IF NOT EXISTS outputs(path TEXT PRIMARY KEY, size INTEGER NOT NULL);
-- the RFC 5092 URL prefixes (imap://user@host/FOLDER;UIDVALIDITY=) this state file writes
CREATE TABLE IF NOT EXISTS sources(prefix TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StateDB:
    """The SQLite state file: which messages have a stored result, and output checkpoints."""

    COMMAND = "imap"        # named in the "in use by another run" error

    def __init__(self, path: str, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self._lock = None
        self.id: Optional[str] = None       # random, made once per state file (output owner)
        if readonly:
            if os.path.exists(path):
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            else:
                self.db = sqlite3.connect(":memory:")
                self.db.executescript(_SCHEMA)
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._lock = open(path + ".lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise SourceError(f"state file {path} is in use by another dsnparse "
                              f"{self.COMMAND} run")
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('id', ?)",
                            (uuid.uuid4().hex,))
            self.id = self.db.execute("SELECT value FROM meta WHERE key='id'").fetchone()[0]
        except sqlite3.Error as e:
            self._lock.close()
            raise SourceError(f"cannot open the state file {path}: {e}") from e

    def close(self):
        self.db.close()
        if self._lock:
            self._lock.close()

    def known(self, o: ImapOptions, uidvalidity: int) -> dict[int, tuple[str, int]]:
        """UID → (disposition, filed) for the folder under this UIDVALIDITY."""
        rows = self.db.execute(
            "SELECT uid, disposition, filed FROM messages WHERE server=? AND user=? AND folder=?"
            " AND uidvalidity=?", (o.server, o.user, o.folder, uidvalidity))
        return {uid: (d, f) for uid, d, f in rows}

    def has_other_uidvalidity(self, o: ImapOptions, uidvalidity: int) -> bool:
        return self.db.execute(
            "SELECT 1 FROM messages WHERE server=? AND user=? AND folder=? AND uidvalidity!=?"
            " LIMIT 1", (o.server, o.user, o.folder, uidvalidity)).fetchone() is not None

    def needs_rematch(self, o: ImapOptions, uidvalidity: int) -> bool:
        """True while the folder has rows under another UIDVALIDITY and no pass has yet seen
        every message under this one (:meth:`mark_reconciled`)."""
        if not self.has_other_uidvalidity(o, uidvalidity):
            return False
        try:
            row = self.db.execute(
                "SELECT reconciled FROM folders WHERE server=? AND user=? AND folder=?"
                " AND uidvalidity=?", (o.server, o.user, o.folder, uidvalidity)).fetchone()
        except sqlite3.OperationalError:        # a read-only state file of an older version
            row = None
        return not (row and row[0])

    def mark_reconciled(self, o: ImapOptions, uidvalidity: int) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO folders(server,user,folder,uidvalidity,"
                            "reconciled) VALUES(?,?,?,?,1)",
                            (o.server, o.user, o.folder, uidvalidity))

    def find_alias(self, o, uidvalidity, message_id, digest, claimed: set) -> Optional[tuple]:
        """An unclaimed row of an older UIDVALIDITY for the same message, or ``None``.

        Claimed means: a row under ``uidvalidity`` already points at it (``alias_of``), or
        its rowid is in ``claimed`` (matched earlier in this pass, not yet committed).
        """
        rows = self.db.execute(
            "SELECT m.rowid, m.disposition FROM messages m WHERE m.server=? AND m.user=?"
            " AND m.folder=? AND m.sha256=? AND m.message_id IS ? AND m.uidvalidity!=?"
            " AND m.alias_of IS NULL AND NOT EXISTS (SELECT 1 FROM messages a"
            " WHERE a.alias_of=m.rowid AND a.server=? AND a.user=? AND a.folder=?"
            " AND a.uidvalidity=?) ORDER BY m.rowid",
            (o.server, o.user, o.folder, digest, message_id, uidvalidity,
             o.server, o.user, o.folder, uidvalidity))
        for rowid, disposition in rows:
            if rowid not in claimed:
                return rowid, disposition
        return None

    def digests(self, o: ImapOptions, uidvalidity: int, uids: Iterable[int]
                ) -> dict[int, tuple[Optional[str], str]]:
        """UID → (Message-ID, SHA-256) of stored messages of the folder."""
        out = {}
        for uid in uids:
            row = self.db.execute(
                "SELECT message_id, sha256 FROM messages WHERE server=? AND user=? AND folder=?"
                " AND uidvalidity=? AND uid=?", (o.server, o.user, o.folder, uidvalidity, uid)
            ).fetchone()
            if row:
                out[uid] = (row[0], row[1])
        return out

    def commit_batch(self, o, uidvalidity, done: list, checkpoint):
        now = time.time()
        with self._tx():
            self.db.executemany(
                "INSERT INTO messages(server,user,folder,uidvalidity,uid,message_id,sha256,"
                "disposition,filed,alias_of,stored_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                [(o.server, o.user, o.folder, uidvalidity, d.uid, d.message_id, d.sha256,
                  d.disposition, 0, d.alias_of, now) for d in done])
            if checkpoint:
                self.db.execute("INSERT OR REPLACE INTO outputs(path,size) VALUES(?,?)",
                                checkpoint)

    def mark_filed(self, o, uidvalidity, uids: Iterable[int]):
        with self._tx():
            self.db.executemany(
                "UPDATE messages SET filed=1 WHERE server=? AND user=? AND folder=?"
                " AND uidvalidity=? AND uid=?",
                [(o.server, o.user, o.folder, uidvalidity, u) for u in uids])

    def checkpoints(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT path, size FROM outputs"))

    def set_checkpoint(self, path: str, size: int):
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO outputs(path,size) VALUES(?,?)",
                            (path, size))

    def drop_checkpoint(self, path: str):
        with self._tx():
            self.db.execute("DELETE FROM outputs WHERE path=?", (path,))

    def add_source_prefix(self, prefix: str):
        """Register the URL prefix of this run's records (see :meth:`source_prefixes`)."""
        with self._tx():
            self.db.execute("INSERT OR IGNORE INTO sources(prefix) VALUES(?)", (prefix,))

    def source_prefixes(self) -> tuple[str, ...]:
        """The ``imap://user@host/FOLDER;UIDVALIDITY=`` prefixes this state file wrote."""
        try:
            return tuple(p for p, in self.db.execute("SELECT prefix FROM sources"))
        except sqlite3.OperationalError:        # a read-only state file of an older version
            return ()

    def _tx(self):
        """A write transaction; a failing SQLite write (disk full, I/O error, read-only
        file) is rolled back and raised as :class:`LocalIOError`."""
        db, path = self.db, self.path

        class _T:
            def __enter__(self_):
                try:
                    db.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as e:
                    raise LocalIOError(f"state file {path}: {e}") from e

            def __exit__(self_, et, ev, tb):
                try:
                    db.execute("ROLLBACK" if et else "COMMIT")
                except sqlite3.Error as e:
                    if db.in_transaction:
                        try:
                            db.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass
                    if et is None:
                        raise LocalIOError(f"state file {path}: {e}") from e
                if et is not None and issubclass(et, sqlite3.Error):
                    raise LocalIOError(f"state file {path}: {ev}") from ev
        return _T()
