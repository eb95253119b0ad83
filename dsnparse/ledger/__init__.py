"""The bounce ledger: every bounce event, and who to stop mailing (SQLite or PostgreSQL).

``Ledger(location)`` opens an SQLite file (:mod:`dsnparse.ledger.sqlite`, the default) or a
PostgreSQL database named by a ``postgresql://`` URL (:mod:`dsnparse.ledger.postgres`,
through psycopg 3); both have the API and decisions documented in :mod:`dsnparse.ledger.core`.

Typical use::

    from dsnparse.ledger import Ledger
    with Ledger("bounces.sqlite3") as led:          # or "postgresql://bounces@db1/bounces"
        for source, report in dsnparse.parse_path("Maildir"):
            led.record_report(report, source)
        if led.is_suppressed("bob@example.com"):
            ...

Modules: ``values`` (addresses, times, dedup keys), ``core`` (the backend-neutral
:class:`Ledger`), ``sqlite`` and ``postgres`` (one per backend: connection, schema
migrations, transactions and locks), ``transfer`` (copies between backends).
"""
from ..errors import LedgerError
from .core import (EVENT_COLUMNS, EXPORT_FIELDS, Ledger, Timestamp, _clean_mid, _event_kind,
                   _hash, _soft_epoch, backend_class, campaign_from_headers, default_db_path,
                   event_key, is_suppressed, is_url, migrate, normalize_address, split_route,
                   to_epoch)
from .sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteLedger

__all__ = ["EVENT_COLUMNS", "EXPORT_FIELDS", "Ledger", "LedgerError", "MIGRATIONS",
           "SCHEMA_VERSION", "SQLiteLedger", "Timestamp", "backend_class",
           "campaign_from_headers", "default_db_path", "event_key", "is_suppressed", "is_url",
           "migrate", "normalize_address", "split_route", "to_epoch",
           "_clean_mid", "_event_kind", "_hash", "_soft_epoch"]
