"""Every query of ``dsnparse report``: the aggregation, in SQL, over the ledger's tables.

The figures of the report are computed by the database (``GROUP BY`` over ``events`` and
``addresses``, the tables of :mod:`dsnparse.ledger`), so a report over a 1,000,000-event
ledger reads a few hundred rows into Python, not a million.  The SQL is plain standard SQL
(``CASE``, ``COALESCE``, ``COUNT(DISTINCT …)``, ``||``, ``WITH``, ``ROW_NUMBER() OVER``,
``LIMIT``) that runs on SQLite (3.25 or later, for the window function) and on PostgreSQL;
the two expressions that differ between them — the UTC day of an epoch time and the domain
of an address — come from a :class:`Dialect`, and placeholders are written ``?``
(:meth:`Dialect.sql` rewrites them for a driver that wants ``%s``).  Porting the report to
another backend is one new :class:`Dialect` (e.g. :data:`POSTGRES`).

Public API::

    Period(since=None, until=None)            # epoch seconds; half-open [since, until)
    Figures = collect(conn, period, dialect=SQLITE, top=15)

Times are epoch seconds (``float``) as the ledger stores them; a day is a UTC calendar day
given as its number since 1970-01-01 (``int``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ..model import FAULTS

__all__ = ["Dialect", "SQLITE", "POSTGRES", "Period", "Figures", "collect",
           "SENDER_CATEGORIES", "SENDER_FAULTS", "REVIEW_TAG_PREFIX"]

#: The faults that are the sender's side (:mod:`dsnparse.senders`): they never suppress.
SENDER_FAULTS = ("sender", "message")

#: Which kind of sender-side problem a reason (``rules/reasons.yaml``, Sisimai names) is, in
#: the report's order: what to fix first.  A sender/message-fault bounce whose reason is none
#: of these is ``other``.
SENDER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "reputation": ("bad_reputation", "blocked", "require_ptr"),
    "authentication": ("auth_failure", "security_error"),
    "content": ("spam_detected", "virus_detected", "content_error", "not_compliant_rfc",
                "policy_violation"),
    "rate": ("rate_limited", "speeding", "too_many_conn"),
    "size": ("mesg_too_big", "exceed_limit"),
    "sender_address": ("rejected", "no_relaying", "syntax_error"),
}

#: Tags of a suppression that waits for a person (``rules/policy.yaml``: ``review_911``,
#: ``review_unknown``).
REVIEW_TAG_PREFIX = "review_"


@dataclass(frozen=True)
class Dialect:
    """The SQL that differs between databases, for the queries of this module.

    Attributes:
        name: ``"sqlite"`` or ``"postgresql"`` (``str``).
        day: expression template of the UTC day number of an epoch-seconds column
            (``{col}`` is replaced), rounding down.
        domain: expression template of the part of an address after its first ``@``.
        placeholder: ``"?"`` (sqlite3) or ``"%s"`` (psycopg).
    """

    name: str
    day: str
    domain: str
    placeholder: str = "?"

    def sql(self, text: str) -> str:
        """``text`` with ``{day:col}``/``{domain:col}`` expanded and ``?`` placeholders
        rewritten for the driver (``str``)."""
        import re

        text = re.sub(r"\{day:(\w+)\}", lambda m: self.day.format(col=m.group(1)), text)
        text = re.sub(r"\{domain:(\w+)\}", lambda m: self.domain.format(col=m.group(1)), text)
        if self.placeholder != "?":
            text = text.replace("%", "%%").replace("?", self.placeholder)
        return text


# SQLite: CAST truncates toward zero, which is rounding down for the (positive) times of a
# ledger; instr() finds the first "@".
SQLITE = Dialect("sqlite", day="CAST({col} / 86400 AS INTEGER)",
                 domain="substr({col}, instr({col}, '@') + 1)")
# PostgreSQL: CAST(double AS integer) rounds to nearest, so FLOOR; split_part() per @.
POSTGRES = Dialect("postgresql", day="CAST(FLOOR({col} / 86400) AS INTEGER)",
                   domain="split_part({col}, '@', 2)", placeholder="%s")


@dataclass(frozen=True)
class Period:
    """The period a report covers: events with ``since <= at < until`` (epoch seconds,
    ``float``; ``None`` leaves that side open)."""

    since: Optional[float] = None
    until: Optional[float] = None

    def where(self, col: str = "at") -> tuple[str, list]:
        """``(" AND …", params)`` restricting ``col`` to the period."""
        sql, args = "", []
        if self.since is not None:
            sql += f" AND {col} >= ?"
            args.append(self.since)
        if self.until is not None:
            sql += f" AND {col} < ?"
            args.append(self.until)
        return sql, args


@dataclass
class Figures:
    """What :func:`collect` read: lists of tuples (rows), in the orders given.

    Attributes:
        totals: ``{kind: events}`` in the period (``bounce``, ``delay``, ``complaint``, …),
            plus ``addresses`` (distinct addresses with a bounce), ``hard``, ``soft``
            (bounces by the seed table's type), ``first``/``last`` (epoch seconds or
            ``None``).
        daily: ``(day, kind, bounce_type, fault, events)`` for bounces, delays and
            complaints; ``fault`` resolved for events recorded without one.
        domains: ``(domain, events, addresses, {fault: events})`` for bounces, most bounced
            first (at most ``top``).
        reasons: ``(reason, events, addresses)``, most frequent first (at most ``top``).
        codes: ``(code, bounce_type, events, addresses)`` of the seed table's codes.
        statuses: ``(status, events)`` of the enhanced status codes, most frequent first.
        sender: ``(domain, category, events, addresses, first, last, status, example,
            remote_mta)`` of sender/message-fault bounces, per receiving domain and
            category; ``example`` is the diagnostic of the newest such bounce.
        sender_kinds: ``(category, events, addresses, domains, first)`` of all
            sender/message-fault bounces of the period (not only the ``top`` rows above).
        suppressed_daily: ``(day, basis, addresses)`` of the suppressions whose ``since``
            lies in the period; ``basis`` is ``hard``, ``soft``, ``complaint`` or
            ``review`` (tagged ``review_…``: a 911 or unknown-fault suppression).
        suppressed_total: addresses suppressed now (``int``, whatever the period).
        review_total: of those, how many carry a ``review_…`` tag (``int``).
        review: ``(address, since, reason, code, status, tags)`` of those, newest first
            (at most ``review_limit``).
        campaigns: ``(campaign, events, addresses, hard, soft)``, most bounced first.
    """

    totals: dict = field(default_factory=dict)
    daily: list = field(default_factory=list)
    domains: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    statuses: list = field(default_factory=list)
    sender: list = field(default_factory=list)
    sender_kinds: list = field(default_factory=list)
    suppressed_daily: list = field(default_factory=list)
    suppressed_total: int = 0
    review_total: int = 0
    review: list = field(default_factory=list)
    campaigns: list = field(default_factory=list)


def _category_case(col: str = "reason") -> str:
    whens = " ".join(
        f"WHEN {col} IN ({', '.join(repr(r) for r in reasons)}) THEN '{cat}'"
        for cat, reasons in SENDER_CATEGORIES.items())
    return f"CASE {whens} ELSE 'other' END"


def _faults_in(faults: Sequence[str]) -> str:
    return ", ".join(f"'{f}'" for f in faults)


def collect(conn: Any, period: Period = Period(), *, dialect: Dialect = SQLITE,
            top: int = 15, review_limit: int = 50) -> Figures:
    """Run every query of the report on a ledger connection.

    Args:
        conn: a DB-API connection to a ledger (``sqlite3.Connection``; any connection whose
            ``execute`` returns a cursor, or that has ``cursor()``).
        period: the events counted (:class:`Period`); suppressions by their ``since``.
        dialect: :data:`SQLITE` or :data:`POSTGRES`.
        top: at most this many domains, reasons, codes, statuses, campaigns and sender rows.
        review_limit: at most this many addresses pending review are listed.

    Returns:
        :class:`Figures`.

    Raises:
        sqlite3.DatabaseError (or the driver's error): the tables cannot be read.
    """
    def q(sql: str, args: Sequence[Any] = ()) -> list:
        text = dialect.sql(sql)
        if hasattr(conn, "execute"):
            return conn.execute(text, list(args)).fetchall()
        cur = conn.cursor()
        try:
            cur.execute(text, list(args))
            return cur.fetchall()
        finally:
            cur.close()

    f = Figures()
    pw, pa = period.where("at")

    # -- totals
    for kind, n in q(f"SELECT kind, COUNT(*) FROM events WHERE kind <> 'removed'{pw} "
                     "GROUP BY kind", pa):
        f.totals[kind] = n
    row = q("SELECT COUNT(DISTINCT address), "
            "SUM(CASE WHEN bounce_type = 'hard' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN bounce_type = 'soft' THEN 1 ELSE 0 END), MIN(at), MAX(at) "
            f"FROM events WHERE kind = 'bounce'{pw}", pa)[0]
    f.totals.update(addresses=row[0] or 0, hard=row[1] or 0, soft=row[2] or 0,
                    first=row[3], last=row[4])

    # -- per day: kind, seed-table type and fault.  Events recorded without a fault (ledgers
    # older than schema 2) are grouped by what gives it (reason, status, code) and resolved
    # below, as dsnparse.policy.event_fault does.
    rows = q("SELECT {day:at} AS day, kind, bounce_type, fault, "
             "CASE WHEN fault IS NULL THEN reason END, "
             "CASE WHEN fault IS NULL THEN status END, "
             "CASE WHEN fault IS NULL THEN code END, COUNT(*) "
             f"FROM events WHERE kind IN ('bounce', 'delay', 'complaint'){pw} "
             "GROUP BY {day:at}, kind, bounce_type, fault, "
             "CASE WHEN fault IS NULL THEN reason END, CASE WHEN fault IS NULL THEN status END, "
             "CASE WHEN fault IS NULL THEN code END", pa)
    merged: dict = {}
    for day, kind, btype, fault, reason, status, code, n in rows:
        if fault is None and kind == "bounce":
            fault = _fault(reason, status, code)
        key = (day, kind, btype, fault or None)
        merged[key] = merged.get(key, 0) + n
    f.daily = sorted(((*k, n) for k, n in merged.items()),
                     key=lambda r: (r[0], r[1], r[2] or "", r[3] or ""))

    # -- receiving domains, split by fault
    rows = q("WITH b AS (SELECT {domain:address} AS domain, address, fault, reason, status, "
             f"code FROM events WHERE kind = 'bounce'{pw}), "
             "t AS (SELECT domain, COUNT(*) AS n, COUNT(DISTINCT address) AS a FROM b "
             "GROUP BY domain ORDER BY COUNT(*) DESC, domain LIMIT ?) "
             "SELECT t.domain, t.n, t.a, b.fault, "
             "CASE WHEN b.fault IS NULL THEN b.reason END, "
             "CASE WHEN b.fault IS NULL THEN b.status END, "
             "CASE WHEN b.fault IS NULL THEN b.code END, COUNT(*) "
             "FROM t JOIN b ON b.domain = t.domain "
             "GROUP BY t.domain, t.n, t.a, b.fault, CASE WHEN b.fault IS NULL THEN b.reason END, "
             "CASE WHEN b.fault IS NULL THEN b.status END, "
             "CASE WHEN b.fault IS NULL THEN b.code END", [*pa, top])
    doms: dict = {}
    for dom, n, a, fault, reason, status, code, k in rows:
        entry = doms.setdefault(dom, (dom, n, a, {}))
        fault = fault or _fault(reason, status, code) or "unknown"
        entry[3][fault] = entry[3].get(fault, 0) + k
    f.domains = sorted(doms.values(), key=lambda r: (-r[1], r[0]))

    # -- reasons, seed-table codes, enhanced statuses
    f.reasons = [tuple(r) for r in q(
        "SELECT COALESCE(reason, 'undefined'), COUNT(*), COUNT(DISTINCT address) FROM events "
        f"WHERE kind = 'bounce'{pw} GROUP BY COALESCE(reason, 'undefined') "
        "ORDER BY COUNT(*) DESC, COALESCE(reason, 'undefined') LIMIT ?", [*pa, top])]
    f.codes = [tuple(r) for r in q(
        "SELECT code, bounce_type, COUNT(*), COUNT(DISTINCT address) FROM events "
        f"WHERE kind = 'bounce' AND code IS NOT NULL{pw} GROUP BY code, bounce_type "
        "ORDER BY COUNT(*) DESC, code LIMIT ?", [*pa, top])]
    f.statuses = [tuple(r) for r in q(
        "SELECT status, COUNT(*) FROM events "
        f"WHERE kind = 'bounce' AND status IS NOT NULL{pw} GROUP BY status "
        "ORDER BY COUNT(*) DESC, status LIMIT ?", [*pa, top])]

    # -- sender-side problems: per receiving domain and category, since when, one example
    # (the newest diagnostic: ROW_NUMBER over each group, newest first)
    cat = _category_case("reason")
    rows = q("WITH s AS (SELECT {domain:address} AS domain, " + cat + " AS category, "
             "address, at, status, diagnostic_code, remote_mta FROM events "
             f"WHERE kind = 'bounce' AND fault IN ({_faults_in(SENDER_FAULTS)}){pw}), "
             "g AS (SELECT domain, category, COUNT(*) AS n, COUNT(DISTINCT address) AS a, "
             "MIN(at) AS first_at, MAX(at) AS last_at FROM s GROUP BY domain, category), "
             "e AS (SELECT domain, category, status, diagnostic_code, remote_mta, "
             "ROW_NUMBER() OVER (PARTITION BY domain, category "
             "ORDER BY CASE WHEN diagnostic_code IS NULL THEN 1 ELSE 0 END, at DESC) AS rn "
             "FROM s) "
             "SELECT g.domain, g.category, g.n, g.a, g.first_at, g.last_at, e.status, "
             "e.diagnostic_code, e.remote_mta FROM g JOIN e ON e.domain = g.domain "
             "AND e.category = g.category AND e.rn = 1 "
             "ORDER BY g.a DESC, g.n DESC, g.domain, g.category LIMIT ?", [*pa, top])
    f.sender = [tuple(r) for r in rows]
    f.sender_kinds = [tuple(r) for r in q(
        "SELECT " + cat + ", COUNT(*), COUNT(DISTINCT address), "
        "COUNT(DISTINCT {domain:address}), MIN(at) FROM events "
        f"WHERE kind = 'bounce' AND fault IN ({_faults_in(SENDER_FAULTS)}){pw} "
        f"GROUP BY {cat} ORDER BY COUNT(*) DESC", pa)]

    # -- suppressions (the addresses table; "since" is when each was suppressed)
    sw, sa = period.where("since")
    review = f"(',' || tags) LIKE '%,{REVIEW_TAG_PREFIX}%'"
    basis = f"CASE WHEN {review} THEN 'review' ELSE COALESCE(basis, 'hard') END"
    f.suppressed_daily = [tuple(r) for r in q(
        "SELECT {day:since}, " + basis + ", COUNT(*) FROM addresses "
        f"WHERE suppressed = 1 AND since IS NOT NULL{sw} GROUP BY {{day:since}}, {basis} "
        "ORDER BY 1, 2", sa)]
    row = q(f"SELECT COUNT(*), SUM(CASE WHEN {review} THEN 1 ELSE 0 END) FROM addresses "
            "WHERE suppressed = 1")[0]
    f.suppressed_total, f.review_total = row[0] or 0, row[1] or 0
    f.review = [tuple(r) for r in q(
        "SELECT address, since, reason, code, status, tags FROM addresses "
        f"WHERE suppressed = 1 AND {review} ORDER BY since DESC, address LIMIT ?",
        [review_limit])]

    # -- campaigns (policy ledger.campaign_headers)
    f.campaigns = [tuple(r) for r in q(
        "SELECT campaign, COUNT(*), COUNT(DISTINCT address), "
        "SUM(CASE WHEN bounce_type = 'hard' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN bounce_type = 'soft' THEN 1 ELSE 0 END) FROM events "
        f"WHERE kind = 'bounce' AND campaign IS NOT NULL{pw} GROUP BY campaign "
        "ORDER BY COUNT(*) DESC, campaign LIMIT ?", [*pa, top])]
    return f


def _fault(reason: Optional[str], status: Optional[str], code: Optional[str]) -> Optional[str]:
    """The fault of a bounce recorded without one (:func:`dsnparse.policy.event_fault`)."""
    from ..policy import Event, event_fault

    fault = event_fault(Event("x@x", 0.0, "bounce", code=code, status=status, reason=reason))
    return fault if fault in FAULTS else None
