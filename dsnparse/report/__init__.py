"""``dsnparse report``: bounces, suppressions and sender-side blocks as one HTML page.

For the people behind a bounce mailbox (marketers, list owners) after a campaign: how many
hard bounces, at which receiving domains, why, and is someone blocking us?  The page is one
self-contained HTML file (inline styles and SVG charts, no script, no request to any other
host) that reads offline and as an email attachment.

Modules (one responsibility each):

* :mod:`.queries` — every figure, aggregated in SQL over the ledger's ``events`` and
  ``addresses`` tables (standard SQL; the SQLite/PostgreSQL differences in one ``Dialect``);
* :mod:`.charts` — matplotlib figures rendered to inline SVG;
* :mod:`.texts` — the page's words in English and French (``--lang``);
* :mod:`.page` — the HTML page;
* :mod:`.cli` — the command (``register(subparsers)``).

Library use::

    from dsnparse.ledger import Ledger
    from dsnparse.report import build_report
    with Ledger("bounces.sqlite3", create=False) as led:
        html = build_report(led, since=t0, lang="fr")
"""
from __future__ import annotations

import os
from typing import Any, Optional

from .queries import POSTGRES, SQLITE, Figures, Period, collect

__all__ = ["build_report", "collect", "Figures", "Period"]


def build_report(ledger: Any, *, since: Optional[float] = None, until: Optional[float] = None,
                 lang: str = "en", source: Optional[str] = None, top: int = 15,
                 generated: Optional[float] = None) -> str:
    """Return the HTML report of a ledger over a period (``str``).

    Args:
        ledger: an open :class:`dsnparse.ledger.Ledger`.
        since, until: the period, epoch seconds (``float``): events with
            ``since <= at < until``; ``None`` leaves a side open.  Suppressions count by the
            time they were made (``since`` of the address).
        lang: ``"en"`` or ``"fr"`` (page words and the seed table's descriptions).
        source: what to name as the source in the header (default the ledger's path).
        top: at most this many domains, reasons, codes, campaigns and sender-side rows.
        generated: the time printed as "generated" (epoch seconds; default now).

    Raises:
        ValueError: unknown ``lang``.
        LedgerError: the ledger cannot be read.
        ImportError: matplotlib is missing (``pip install 'dsnparse[report]'``).
    """
    from ..errors import LedgerError
    from . import page
    from .texts import texts

    texts(lang)   # an unknown language fails before any work
    period = Period(since, until)
    dialect = POSTGRES if ledger.backend == "postgresql" else SQLITE
    connect = ledger.reader()   # the scans run side by side, each on a reader of its own
    workers = min(4, os.cpu_count() or 1)
    try:
        figures = ledger._retry(lambda: collect(ledger.conn, period, dialect=dialect, top=top,
                                                connect=connect, workers=workers))
    except LedgerError:
        raise
    except Exception as exc:   # sqlite3.DatabaseError: a damaged file
        import sqlite3

        if isinstance(exc, sqlite3.Error):
            raise LedgerError(f"{ledger.path}: cannot read the ledger: {exc}") from exc
        raise
    return page.render(figures, period=period, lang=lang,
                       source=str(ledger.path) if source is None else source,
                       generated=generated)
