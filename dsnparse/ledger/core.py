"""The bounce ledger's backend-neutral core: every bounce event, and who to stop mailing.

A :class:`Ledger` records events (one per recipient of a bounce, delay, delivery notice,
auto-reply or complaint) and keeps, per address, the :class:`~dsnparse.policy.Decision` of
the suppression policy (:mod:`dsnparse.policy`, ``rules/policy.yaml``) up to date in the same
transaction.  Asking is cheap: :meth:`Ledger.is_suppressed` reads one row.

Storage
    ``Ledger(path)`` opens the backend the location names: a file path gives the SQLite
    ledger (:mod:`dsnparse.ledger.sqlite`: one file in WAL mode, ``BEGIN IMMEDIATE``
    transactions, schema migrated on open); a ``postgresql://`` or ``postgres://`` URL gives
    the PostgreSQL ledger (:mod:`dsnparse.ledger.postgres`: psycopg 3, row locks, schema
    migrated only by ``dsnparse ledger migrate``).  Both store the same tables and make the
    same decisions; this module holds everything but the SQL dialect, the connection and
    the transaction handling.  Each write is one transaction: a process killed mid-write
    leaves either all of a batch or none of it.

Deduplication
    Each event has a stable key: the bounce's Message-ID (else a SHA-256 of the raw message
    when given, else of the parsed report) plus the normalised recipient.  Recording the
    same bounce twice stores it once.

Addresses
    Normalised by :func:`normalize_address`: the domain lower-cased, the local part kept.

Recording hook for ``dsnparse parse … --db F`` and ``dsnparse imap … --db F``
    Open one ledger per command run (``dsnparse.ledger_cli.open_ledger(args)`` reads
    ``--db``/``--policy``; ``ledger_cli.add_db_arguments(parser)`` adds them) and, per
    parsed message, call ``ledger.record_report(report, source, original_headers=hdrs,
    raw=raw_bytes)`` where ``hdrs`` maps the header names of the returned original message
    to their values (``None`` when the bounce does not carry it) — the campaign id is read
    from them.  Each call is one transaction, committed when it returns: the IMAP command
    may mark a message processed after it.  A batch import may instead pass the records of
    many messages to ``record_records`` (one transaction, faster).  Recording is
    idempotent, so re-running an import over the same mail adds nothing.

Typical use::

    from dsnparse.ledger import Ledger
    with Ledger("bounces.sqlite3") as led:
        for source, report in dsnparse.parse_path("Maildir"):
            led.record_report(report, source)
        if led.is_suppressed("bob@example.com"):
            ...
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import (IO, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence,
                    Union)

from ..errors import LedgerError  # noqa: F401 - re-exported: dsnparse.ledger.LedgerError
from ..model import FAULTS
from ..output import SafeCsvWriter
from ..policy import Decision, Event, Policy, decide, iso, load_policy
from .values import (Timestamp, _clean_mid, _event_kind, _hash, _soft_epoch,  # noqa: F401
                     campaign_from_headers, event_key, normalize_address, split_route,
                     to_epoch)

EVENT_COLUMNS = ("id", "event_key", "address", "at", "kind", "action", "code", "bounce_type",
                 "status", "reason", "feedback_type", "reporting_mta", "message_id", "source",
                 "original_message_id", "campaign", "note", "recorded_at", "fault",
                 "diagnostic_code", "remote_mta")
EXPORT_FIELDS = ("email", "reason", "basis", "since", "code", "status", "tags")
"""Columns of :meth:`Ledger.export` (``email`` first, as mailing tools expect)."""

# --------------------------------------------------------------------------- helpers

_URL_SCHEMES = {"postgresql": "dsnparse.ledger.postgres", "postgres": "dsnparse.ledger.postgres"}
"""URL scheme of a ledger location → the module of its backend (anything else: SQLite)."""


def is_url(location: Any) -> bool:
    """``True`` when ``location`` names a database server (``postgresql://…`` or
    ``postgres://…``, libpq's URI forms) rather than an SQLite file (``bool``)."""
    if not isinstance(location, str):
        return False
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() in _URL_SCHEMES


def default_db_path(policy: Optional[Policy] = None) -> Union[Path, str]:
    """Return the ledger location used when none is given (``Path``, or ``str`` for a URL).

    In order: ``$DSNPARSE_DB``; the policy's ``ledger.path``; ``$XDG_DATA_HOME/dsnparse/
    ledger.sqlite3`` (``$XDG_DATA_HOME`` defaults to ``~/.local/share``).  A
    ``postgresql://`` URL (:func:`is_url`) is returned unchanged, as a ``str``.
    """
    env = os.environ.get("DSNPARSE_DB")
    if env:
        return env if is_url(env) else Path(env).expanduser()
    if policy is not None and policy.db_path:
        return policy.db_path if is_url(policy.db_path) else Path(policy.db_path).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return Path(base) / "dsnparse" / "ledger.sqlite3"


# --------------------------------------------------------------------------- the ledger

class Ledger:
    """A bounce ledger: SQLite file or PostgreSQL database, chosen by the location.

    ``Ledger(path)`` returns a :class:`dsnparse.ledger.sqlite.SQLiteLedger` for a file path
    and a :class:`dsnparse.ledger.postgres.PostgresLedger` for a ``postgresql://`` URL
    (:func:`is_url`); both are ``Ledger`` instances with the same API and decisions.

    Args:
        path: the file (``str``/path-like) or a ``postgresql://user@host:port/dbname`` URL
            (libpq connection URI; ``?sslmode=…`` and the other libpq parameters work);
            ``None`` uses :func:`default_db_path`.
        policy: a :class:`~dsnparse.policy.Policy`; ``None`` loads the default
            (:func:`~dsnparse.policy.load_policy`).  If the ledger's decisions were made
            under another policy, they are recomputed on open (all writers of one ledger
            should share one policy).
        timeout: seconds (``float``) to keep waiting and retrying while another writer
            holds a lock, before giving up with :class:`LedgerError`.
        synchronous: SQLite ``synchronous`` level, ``"NORMAL"`` (survives a killed
            process) or ``"FULL"`` (also survives power loss; slower).  PostgreSQL commits
            are durable either way (its ``synchronous_commit`` is left as configured).
        create: ``True`` (default, for writers) creates an SQLite file that does not exist;
            ``False`` (for readers: :func:`is_suppressed`, ``suppressions list/export/
            check``) raises :class:`LedgerError` instead and creates nothing, so that a
            mistyped path is an error, not an empty ledger that calls every address
            mailable.  A PostgreSQL ledger is never created on open: its schema is made by
            ``dsnparse ledger migrate`` (:func:`dsnparse.ledger.migrate`).

    Raises:
        LedgerError: the ledger cannot be opened or is not a ledger, or its schema is newer
            than this version of dsnparse knows (PostgreSQL: or older, or absent: run
            ``dsnparse ledger migrate``), or (``create=False``) it does not exist.
        RuleError: the default policy is invalid (only when ``policy`` is ``None``).

    A ``Ledger`` is a context manager (closes on exit).  Use one per thread.
    """

    backend = "?"
    """Name of the backend (``"sqlite"`` or ``"postgresql"``)."""
    path: Any
    policy: Policy
    timeout: float

    def __new__(cls, path: Union[str, os.PathLike, None] = None, *args: Any, **kw: Any):
        if cls is Ledger:
            if path is None:
                path = (os.environ.get("DSNPARSE_DB")
                        or default_db_path(kw.get("policy") or load_policy()))
            cls = backend_class(path)
        return super().__new__(cls)

    # -- plumbing (each backend defines these) -------------------------------------------

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            conn.close()

    @property
    def conn(self) -> Any:
        """The open DB-API connection (``sqlite3.Connection`` or ``psycopg.Connection``).

        Raises:
            LedgerError: the ledger is closed.
        """
        if getattr(self, "_conn", None) is None:
            raise LedgerError(f"{self.path}: ledger is closed")
        return self._conn

    def reader(self) -> Optional[Callable[[], Any]]:
        """A function opening another connection to this ledger for reading (scans run side
        by side, e.g. by ``dsnparse report``), or ``None`` when no other connection can see
        this ledger's data (an in-memory SQLite ledger).  Each call returns a new DB-API
        connection that the caller closes."""
        return None

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Run a read ``fn()``, retrying while the database is busy."""
        raise NotImplementedError

    def _write(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(conn)`` in one write transaction, retrying while busy."""
        raise NotImplementedError

    def _x(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute ``sql`` (``?`` placeholders) on ``conn``; return the cursor."""
        return conn.execute(sql, params)

    def _iter(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Iterable[Any]:
        """Iterate the rows of a large query (``?`` placeholders)."""
        return self._x(conn, sql, params)

    def _insert_events(self, conn: Any, rows: list[dict]) -> list[tuple[str, float]]:
        """Insert event rows, ignoring those whose ``event_key`` is stored already; return
        ``(address, at)`` of each row stored."""
        raise NotImplementedError

    def _lock_addresses(self, conn: Any, addrs: Sequence[str]
                        ) -> dict[str, tuple[Any, Any, Any]]:
        """Lock the decision rows of ``addrs`` (sorted) for this transaction; return
        ``address → (suppressed, since, removed_at)`` of those that exist."""
        raise NotImplementedError

    def _lock_all(self, conn: Any) -> None:
        """Keep every other writer out of the decisions until this transaction ends."""

    def schema_version(self) -> int:
        """Return the schema version of the open ledger (``int``).

        Raises:
            LedgerError: the database cannot be read.
        """
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one read-only SQL statement (``?`` placeholders, SQL common to SQLite and
        PostgreSQL) and return its rows (``list`` of ``tuple``); for reports over the
        ``events`` and ``addresses`` tables.

        Raises:
            LedgerError: the database cannot be read.
        """
        return self._retry(lambda: [tuple(r) for r in self._x(self.conn, sql, params)
                                    .fetchall()])

    def _meta(self, key: str, conn: Any = None) -> Optional[str]:
        row = self._x(conn or self.conn, "SELECT value FROM meta WHERE key=?",
                      (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, conn: Any, key: str, value: str) -> None:
        self._x(conn, "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value=excluded.value", (key, value))

    def _check_policy(self) -> None:
        fp = self.policy.fingerprint
        if self._retry(lambda: self._meta("policy")) == fp:
            return

        def run(conn):
            if self._meta("policy", conn) != fp:
                self._lock_all(conn)
                self._rebuild(conn)
                self._set_meta(conn, "policy", fp)
        self._write(run)

    # -- recording ----------------------------------------------------------------------

    def record_report(self, report, source: Optional[str] = None, *,
                      original_headers: Optional[Mapping[str, Any]] = None,
                      at: Timestamp = None, raw: Optional[bytes] = None,
                      message_key: Optional[str] = None) -> int:
        """Record the events of one parsed message (the ``--db`` hook of parse and imap).

        One event per verdict whose recipient is an address; ``not_bounce`` and ``error``
        reports record nothing.  A verdict with ``Action: delayed`` is a delay event, one
        with ``delivered``/``relayed``/``expanded`` a delivery event.

        Args:
            report: a :class:`dsnparse.model.Report`.
            source: where the message came from (path, ``mbox#3``, IMAP URL), stored as is.
            original_headers: header fields of the returned original message (name →
                ``str``; any case; an ``email.message.Message`` works).  The campaign id is
                read from it (policy ``ledger.campaign_headers``); its ``Message-ID`` is used
                when ``report.original_message_id`` is ``None``.
            at: time of the bounce (``datetime``, epoch seconds or a date string); default:
                the bounce's ``Date``, else its ``Arrival-Date``, else now.
            raw: the raw message (``bytes``); when the bounce has no Message-ID its SHA-256
                is the dedup key (else a hash of the parsed report is used).
            message_key: the dedup key of the message itself (``str``), overriding the
                Message-ID and the hashes; default: the report's own ``message_key`` when
                it has one (:class:`dsnparse.events.EventReport`:
                ``"event:<provider>:<event id>"``), so that a redelivered webhook event
                (same id) is not counted twice even if the provider changed a detail.

        Returns:
            The number of new events stored (``int``; a bounce seen before gives 0).

        Raises:
            LedgerError: the database stayed locked past ``timeout`` or cannot be written.
            ValueError: ``at`` is not a time.
        """
        mid = _clean_mid(report.message_id)
        if message_key is None:
            message_key = getattr(report, "message_key", None)
        if message_key:
            mkey = str(message_key)
        elif mid:
            mkey = "mid:" + mid
        elif raw is not None:
            mkey = "sha:" + hashlib.sha256(raw).hexdigest()
        else:
            mkey = "sha:" + _hash(report.to_dict())
        when = to_epoch(at)
        if when is None:
            when = _soft_epoch(report.date, report.arrival_date)
        campaign = campaign_from_headers(original_headers, self.policy.campaign_headers)
        orig_mid = report.original_message_id
        if not orig_mid and original_headers:
            orig_mid = campaign_from_headers(original_headers, ("Message-ID",))
        rows = []
        for rec in report.records(source):
            rows.append(self._row(rec, mkey, when, campaign, orig_mid))
        return self._store([r for r in rows if r is not None])

    def record_records(self, records: Iterable[Mapping[str, Any]], *, at: Timestamp = None,
                       original_headers: Optional[Mapping[str, Any]] = None) -> int:
        """Record output records (:meth:`dsnparse.model.Report.records` dicts) in one
        transaction.

        The dedup key uses each record's ``message_id``, else a hash of the record without
        its ``source``.  Optional extra keys: ``date`` / ``arrival_date`` (time of the bounce,
        else now) and ``campaign`` (else read from ``original_headers``).

        Args:
            records: an iterable of record dicts (keys :data:`dsnparse.model.RECORD_FIELDS`).
            at: time of every bounce, overriding the records' dates (see
                :meth:`record_report`).
            original_headers: header fields of the returned original, for all records.

        Returns:
            The number of new events stored (``int``).

        Raises:
            LedgerError: the database stayed locked past ``timeout`` or cannot be written.
            ValueError: ``at`` is not a time.
        """
        when = to_epoch(at)
        default_campaign = campaign_from_headers(original_headers,
                                                 self.policy.campaign_headers)
        rows = []
        for rec in records:
            mid = _clean_mid(rec.get("message_id"))
            if mid:
                mkey = "mid:" + mid
            else:
                mkey = "sha:" + _hash({k: v for k, v in rec.items() if k != "source"})
            t = when if when is not None else _soft_epoch(rec.get("date"),
                                                          rec.get("arrival_date"))
            row = self._row(rec, mkey, t, rec.get("campaign") or default_campaign,
                            rec.get("original_message_id"))
            if row is not None:
                rows.append(row)
        return self._store(rows)

    def record_event(self, address: str, kind: str, *, at: Timestamp = None,
                     key: Optional[str] = None, **fields: Any) -> bool:
        """Record one event directly (for pipelines with their own bounce data, and tests).

        Args:
            address: the recipient (normalised here).
            kind: ``bounce``, ``delay``, ``delivered``, ``auto_reply`` or ``complaint``.
            at: time of the event (default now).
            key: dedup key (``str``); default: ``message_id`` + address when ``message_id``
                is given, else a fresh unique key.
            **fields: any of ``action``, ``code``, ``bounce_type``, ``status``, ``reason``,
                ``feedback_type``, ``reporting_mta``, ``message_id``, ``source``,
                ``original_message_id``, ``campaign``, ``note``, ``fault``,
                ``diagnostic_code``, ``remote_mta``.

        Returns:
            ``True`` when stored, ``False`` for a duplicate key.

        Raises:
            ValueError: no address, an unknown kind or field, a ``fault`` not in
                :data:`dsnparse.model.FAULTS`, or a bad ``at``.
            LedgerError: the database cannot be written.
        """
        addr = normalize_address(address)
        if addr is None:
            raise ValueError(f"not an address: {address!r}")
        if kind not in ("bounce", "delay", "delivered", "auto_reply", "complaint"):
            raise ValueError(f"unknown event kind {kind!r}")
        allowed = set(EVENT_COLUMNS) - {"id", "event_key", "address", "at", "kind",
                                        "recorded_at"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown event field(s): {', '.join(sorted(bad))}")
        if fields.get("fault") is not None and fields["fault"] not in FAULTS:
            raise ValueError(f"unknown fault {fields['fault']!r} (expected one of "
                             f"{', '.join(FAULTS)})")
        if key is None:
            mid = _clean_mid(fields.get("message_id"))
            key = event_key("mid:" + mid if mid else "uuid:" + uuid.uuid4().hex, addr)
        when = to_epoch(at)
        row = {c: None for c in EVENT_COLUMNS if c != "id"}
        row.update(fields, event_key=key, address=addr, kind=kind,
                   at=when if when is not None else time.time())
        return self._store([row]) == 1

    def _row(self, rec: Mapping[str, Any], mkey: str, when: Optional[float],
             campaign: Optional[str], orig_mid: Optional[str]) -> Optional[dict]:
        kind = _event_kind(rec.get("kind"), rec.get("action"))
        given = rec.get("final_recipient") or rec.get("original_recipient")
        addr = normalize_address(given)
        if kind is None or addr is None:
            return None
        note = None
        if str(given).lstrip(" <").startswith("@"):   # a source route: kept on the event
            route = split_route(str(given))[0]
            if route:
                note = f"source route {route}"
        return {
            "event_key": event_key(mkey, addr), "address": addr,
            "at": when if when is not None else time.time(), "kind": kind,
            "action": rec.get("action"), "code": rec.get("code"),
            "bounce_type": rec.get("bounce_type"), "status": rec.get("status"),
            "reason": rec.get("reason"), "feedback_type": rec.get("feedback_type"),
            "reporting_mta": rec.get("reporting_mta"),
            "message_id": _clean_mid(rec.get("message_id")), "source": rec.get("source"),
            "original_message_id": _clean_mid(orig_mid), "campaign": campaign, "note": note,
            "recorded_at": None, "fault": rec.get("fault"),
            "diagnostic_code": rec.get("diagnostic_code"), "remote_mta": rec.get("remote_mta"),
        }

    def _store(self, rows: list[dict], *, keep_recorded_at: bool = False) -> int:
        """Store event rows and update the decisions of their addresses, in one transaction.

        Rows whose ``event_key`` is stored already are skipped (the ``UNIQUE`` constraint
        decides, so concurrent writers of the same bounce store it once).  Then each address
        that got a new event is locked (in address order) and its decision recomputed from
        the events committed by then: a concurrent writer of the same address waits for the
        lock and then sees this transaction's events.  Returns the number stored (``int``).
        """
        if not rows:
            return 0

        def run(conn):
            now = time.time()
            todo = rows if keep_recorded_at else [{**r, "recorded_at": now} for r in rows]
            touched: dict[str, float] = {}
            stored = self._insert_events(conn, todo)
            for a, at in stored:
                touched[a] = min(touched.get(a, at), at)
            current = self._lock_addresses(conn, sorted(touched))
            self._update_many(conn, touched, now, current)
            return len(stored)
        return self._write(run)

    def _update(self, conn: Any, addr: str, oldest_new: Optional[float], now: float,
                cur: Optional[tuple[Any, Any, Any]]) -> None:
        """Recompute one address's decision (see :meth:`_update_many`)."""
        self._update_many(conn, {addr: oldest_new}, now, {addr: cur} if cur else {})

    def _update_many(self, conn: Any, touched: Mapping[str, Optional[float]], now: float,
                     current: Mapping[str, tuple[Any, Any, Any]]) -> None:
        """Recompute the decisions of addresses after new events.

        ``touched`` maps each address to the time of its oldest new event (``None``: an
        operator's removal, recompute all); ``current`` to its locked ``(suppressed, since,
        removed_at)`` row (absent when new)."""
        lowers: dict[str, Optional[float]] = {}
        for addr in sorted(touched):
            oldest_new, cur, lower = touched[addr], current.get(addr), None
            if cur is not None and oldest_new is not None:
                suppressed, since, removed_at = cur
                if suppressed and since is not None and oldest_new > since:
                    continue     # sticky: later events cannot change a suppression
                if removed_at is not None and oldest_new > removed_at:
                    lower = removed_at   # an operator's removal resets all that came before
            lowers[addr] = lower
        if not lowers:
            return
        histories = self._histories(conn, lowers)
        self._save_many(conn, [
            (a, decide([Event(**dict(zip(EVENT_COLUMNS, r))) for r in histories[a]],
                       self.policy)) for a in lowers], now)

    def _histories(self, conn: Any, lowers: Mapping[str, Optional[float]]
                   ) -> dict[str, list[Sequence[Any]]]:
        """The event rows of each address (at or after its lower bound when not ``None``);
        a backend may read them all in one query."""
        out = {}
        for addr, lower in lowers.items():
            if lower is None:
                out[addr] = self._x(conn, f"SELECT {', '.join(EVENT_COLUMNS)} FROM events "
                                    "WHERE address=?", (addr,)).fetchall()
            else:
                out[addr] = self._x(conn, f"SELECT {', '.join(EVENT_COLUMNS)} FROM events "
                                    "WHERE address=? AND at>=?", (addr, lower)).fetchall()
        return out

    def _save_many(self, conn: Any, decisions: Sequence[tuple[str, Decision]],
                   now: float) -> None:
        """Store decisions (distinct addresses); a backend may do it in one statement."""
        for addr, d in decisions:
            self._save(conn, addr, d, now)

    def _save(self, conn: Any, addr: str, d: Decision, now: float) -> None:
        self._x(
            conn,
            "INSERT INTO addresses(address, suppressed, basis, reason, since, code, status, "
            "tags, soft_count, event_ids, removed_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET "
            "suppressed=excluded.suppressed, basis=excluded.basis, reason=excluded.reason, "
            "since=excluded.since, code=excluded.code, status=excluded.status, "
            "tags=excluded.tags, soft_count=excluded.soft_count, "
            "event_ids=excluded.event_ids, removed_at=excluded.removed_at, "
            "updated_at=excluded.updated_at",
            (addr, int(d.suppressed), d.basis, d.reason, d.since, d.code, d.status,
             ",".join(d.tags), d.soft_count, ",".join(map(str, d.event_ids)), d.removed_at,
             now))

    def _rebuild(self, conn: Any) -> int:
        now = time.time()
        self._x(conn, "DELETE FROM addresses")
        n = 0
        batch: list[Event] = []
        done: list[tuple[str, Decision]] = []
        cur = self._iter(conn, f"SELECT {', '.join(EVENT_COLUMNS)} FROM events "
                         "ORDER BY address, at, id")
        for r in cur:
            e = Event(**dict(zip(EVENT_COLUMNS, r)))
            if batch and batch[0].address != e.address:
                done.append((batch[0].address, decide(batch, self.policy)))
                batch = []
                if len(done) >= 1000:
                    self._save_many(conn, done, now)
                    n += len(done)
                    done = []
            batch.append(e)
        if batch:
            done.append((batch[0].address, decide(batch, self.policy)))
        self._save_many(conn, done, now)
        return n + len(done)

    def rebuild(self) -> int:
        """Recompute every address's decision from its events, in one transaction.

        Other writers wait while it runs (PostgreSQL: an ``EXCLUSIVE`` lock on the
        ``addresses`` table; SQLite: the write lock).

        Returns:
            The number of addresses (``int``).

        Raises:
            LedgerError: the database cannot be written.
        """
        def run(conn):
            self._lock_all(conn)
            n = self._rebuild(conn)
            self._set_meta(conn, "policy", self.policy.fingerprint)
            return n
        return self._write(run)

    # -- questions ----------------------------------------------------------------------

    @staticmethod
    def _decision(row: Sequence[Any]) -> Decision:
        (address, suppressed, basis, reason, since, code, status, tags, soft_count,
         event_ids, removed_at) = row
        return Decision(address, bool(suppressed), basis, reason, since, code, status,
                        tuple(t for t in tags.split(",") if t), soft_count,
                        tuple(int(i) for i in event_ids.split(",") if i), removed_at)

    _DECISION_SQL = ("SELECT address, suppressed, basis, reason, since, code, status, tags, "
                     "soft_count, event_ids, removed_at FROM addresses")

    def status(self, address: str) -> Decision:
        """Return the :class:`~dsnparse.policy.Decision` for one address.

        An address the ledger has never seen (or that is not an address at all) is
        mailable: ``Decision(address, suppressed=False)``.

        Raises:
            LedgerError: the database cannot be read.
        """
        return self.check([address])[0]

    def is_suppressed(self, address: str) -> bool:
        """Return ``True`` when ``address`` must not be mailed (``bool``).

        Raises:
            LedgerError: the database cannot be read.
        """
        return self.status(address).suppressed

    def check(self, addresses: Union[str, Iterable[str]]) -> list[Decision]:
        """Return one :class:`~dsnparse.policy.Decision` per address, in the given order.

        Args:
            addresses: one address (``str``: a list of one decision is returned) or an
                iterable of addresses.

        The ``address`` of each decision is the normalised form (or the input, stripped,
        when it is not an address).

        Raises:
            LedgerError: the database cannot be read.
        """
        given = [addresses] if isinstance(addresses, str) else list(addresses)
        norm = [normalize_address(a) for a in given]
        found: dict[str, Decision] = {}
        keys = sorted({n for n in norm if n})
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self._retry(lambda: self._x(
                self.conn,
                f"{self._DECISION_SQL} WHERE address IN ({','.join('?' * len(chunk))})",
                chunk).fetchall())
            for row in rows:
                found[row[0]] = self._decision(row)
        return [found.get(n) or Decision(n or str(a).strip()) for a, n in zip(given, norm)]

    def suppressions(self, *, tag: Optional[str] = None,
                     limit: Optional[int] = None) -> Iterator[Decision]:
        """Iterate the suppressed addresses, newest suppression first.

        Args:
            tag: only those with this tag (``str``, e.g. ``"review_911"``).
            limit: at most this many (``int``).

        Yields:
            :class:`~dsnparse.policy.Decision` with ``suppressed`` ``True``.

        Raises:
            LedgerError: the database cannot be read.
        """
        sql = f"{self._DECISION_SQL} WHERE suppressed=1"
        args: list[Any] = []
        if tag:
            sql += " AND (',' || tags || ',') LIKE ?"
            args.append(f"%,{tag},%")
        sql += " ORDER BY since DESC, address"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        cur = self._retry(lambda: self._x(self.conn, sql, args))
        for row in cur:
            yield self._decision(row)

    def events(self, address: Optional[str] = None, *,
               ids: Optional[Iterable[int]] = None) -> list[Event]:
        """Return stored events, oldest first: those of ``address``, or those with ``ids``.

        Raises:
            LedgerError: the database cannot be read.
        """
        cols = ", ".join(EVENT_COLUMNS)
        if ids is not None:
            idl = list(ids)
            out: list[Event] = []
            for i in range(0, len(idl), 500):
                chunk = idl[i:i + 500]
                out += [Event(**dict(zip(EVENT_COLUMNS, r))) for r in self._retry(
                    lambda: self._x(
                        self.conn, f"SELECT {cols} FROM events WHERE id IN "
                        f"({','.join('?' * len(chunk))})", chunk).fetchall())]
            return sorted(out, key=lambda e: (e.at, e.id))
        addr = normalize_address(address) if address is not None else None
        if addr is None:
            raise ValueError(f"not an address: {address!r}")
        rows = self._retry(lambda: self._x(
            self.conn, f"SELECT {cols} FROM events WHERE address=? ORDER BY at, id",
            (addr,)).fetchall())
        return [Event(**dict(zip(EVENT_COLUMNS, r))) for r in rows]

    def count_events(self) -> int:
        """Return the number of stored events (``int``), operator removals included."""
        return self._retry(lambda: self._x(self.conn, "SELECT count(*) FROM events")
                           .fetchone()[0])

    # -- operator -----------------------------------------------------------------------

    def remove(self, addresses: Union[str, Iterable[str]], *, note: Optional[str] = None,
               at: Timestamp = None, source: Optional[str] = None) -> list[Decision]:
        """Lift suppressions: an operator's override, recorded as a ``removed`` event.

        The removal clears everything before it for the address (the soft count starts from
        zero); later bounces count as usual.  Addresses not suppressed get the event too.

        Args:
            addresses: one address (``str``) or an iterable of addresses to make mailable
                again.
            note: why (``str``), stored on the event.
            at: time of the removal (default now).
            source: who removed it, stored as the event's ``source`` (``str``; default
                ``operator:$USER``; ``dsnparse serve`` passes ``operator:api``).

        Returns:
            The decisions *before* the removal, one per valid address, in the given order.

        Raises:
            ValueError: an item is not an address, or ``at`` is not a time.
            LedgerError: the database cannot be written.
        """
        addrs = []
        for a in [addresses] if isinstance(addresses, str) else addresses:
            n = normalize_address(a)
            if n is None:
                raise ValueError(f"not an address: {a!r}")
            addrs.append(n)
        when = to_epoch(at)
        when = when if when is not None else time.time()
        user = os.environ.get("USER") or os.environ.get("USERNAME")
        who = source or (f"operator:{user}" if user else "operator")

        def run(conn):
            now = time.time()
            before = []
            current = self._lock_addresses(conn, sorted(set(addrs)))
            for addr in addrs:
                row = self._x(conn, f"{self._DECISION_SQL} WHERE address=?",
                              (addr,)).fetchone()
                before.append(self._decision(row) if row else Decision(addr))
                self._insert_events(conn, [{
                    **{c: None for c in EVENT_COLUMNS if c != "id"},
                    "event_key": "removed:" + uuid.uuid4().hex, "address": addr, "at": when,
                    "kind": "removed", "note": note,
                    "source": who, "recorded_at": now}])
                self._update(conn, addr, None, now, current.get(addr))
            return before
        return self._write(run)

    # -- export -------------------------------------------------------------------------

    def export(self, stream: IO[str], format: str = "csv", *,
               tag: Optional[str] = None) -> int:
        """Write every suppressed address, newest first, one per row.

        Columns :data:`EXPORT_FIELDS`: ``email``, ``reason``, ``basis`` (hard, soft,
        complaint), ``since`` (ISO 8601 UTC), ``code``, ``status``, ``tags`` (``;``-separated in
        CSV, a list in JSON Lines).  CSV cells are made spreadsheet-safe
        (:func:`dsnparse.output.csv_cell`: a leading ``=``, ``+``, ``-``, ``@``, tab or CR gets
        a ``'``).

        Args:
            stream: a text stream.
            format: ``"csv"`` (RFC 4180, header row) or ``"jsonl"`` (one JSON object a line).
            tag: only suppressions with this tag.

        Returns:
            The number of addresses written (``int``).

        Raises:
            ValueError: unknown format.
            LedgerError: the database cannot be read.
        """
        if format not in ("csv", "jsonl"):
            raise ValueError(f"unknown export format {format!r} (expected csv or jsonl)")
        w = SafeCsvWriter(stream) if format == "csv" else None
        if w:
            w.writerow(EXPORT_FIELDS)
        n = 0
        for d in self.suppressions(tag=tag):
            row = (d.address, d.reason, d.basis, iso(d.since), d.code, d.status,
                   ";".join(d.tags))
            if w:
                w.writerow(row)
            else:
                obj = dict(zip(EXPORT_FIELDS, row))
                obj["tags"] = list(d.tags)
                stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
        return n


def is_suppressed(address: str, db: Union[str, os.PathLike, None] = None) -> bool:
    """Shortcut: open the ledger ``db`` (default :func:`default_db_path`), ask, close.

    A pipeline sending many messages should keep one :class:`Ledger` open instead.  Nothing
    is created: a ledger that does not exist is an error, not "mailable".

    Raises:
        LedgerError: the ledger does not exist, or cannot be opened or read.
    """
    with Ledger(db, create=False) as led:
        return led.is_suppressed(address)


def backend_class(location: Any) -> type:
    """Return the :class:`Ledger` subclass for a location (``postgresql://`` URL or file).

    Raises:
        LedgerError: the backend's driver is not installed (PostgreSQL needs psycopg 3:
            ``pip install 'dsnparse[postgres]'``).
    """
    if is_url(location):
        scheme = location.partition("://")[0].lower()
        mod = importlib.import_module(_URL_SCHEMES[scheme])
        return mod.PostgresLedger
    return importlib.import_module("dsnparse.ledger.sqlite").SQLiteLedger


def migrate(db: Union[str, os.PathLike, None] = None, *, timeout: float = 30.0
            ) -> tuple[int, int]:
    """Bring a ledger's schema to the version this dsnparse knows, explicitly.

    PostgreSQL: creates the tables in an empty database, or applies the missing versioned
    migrations, in one transaction (concurrent runs wait for each other; DDL is
    transactional).  SQLite: the same as opening it (an SQLite ledger migrates on open);
    the file is created when missing.

    Args:
        db: file path or ``postgresql://`` URL; ``None`` uses :func:`default_db_path`.
        timeout: seconds (``float``) to wait for locks.

    Returns:
        ``(version before, version after)`` (``int``, ``int``; 0 before: no ledger yet).

    Raises:
        LedgerError: the database cannot be reached or written, holds other tables, or has
            a newer schema than this dsnparse knows.
    """
    cls = backend_class(db if db is not None else default_db_path(None))
    return cls.migrate_schema(db if db is not None else default_db_path(None),
                              timeout=timeout)
