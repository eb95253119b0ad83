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
from typing import Any, Callable, Optional, Sequence

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

#: The bounces, as a condition that no index serves: ``kind`` is "bounce" for most events,
#: so a full scan beats looking each row up through the (kind, at) index (SQLite would
#: otherwise take the index).  Plain standard SQL.
BOUNCE = "(kind || '') = 'bounce'"

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
        domains: ``(domain, events, {fault: events})`` for bounces, most bounced first (at
            most ``top``).
        reasons: ``(reason, events)``, most frequent first (at most ``top``).
        codes: ``(code, bounce_type, events)`` of the seed table's codes.
        statuses: ``(status, events)`` of the enhanced status codes, most frequent first.
        sender: ``(domain, category, events, addresses, first, last, status, example,
            remote_mta)`` of sender/message-fault bounces, per receiving domain and
            category; ``example`` is the diagnostic of the newest such bounce.
        sender_kinds: ``(category, events, first)`` of all sender/message-fault bounces of
            the period (not only the ``top`` rows above), most first.
        suppressed_daily: ``(day, basis, addresses)`` of the suppressions whose ``since``
            lies in the period; ``basis`` is ``hard``, ``soft``, ``complaint`` or
            ``review`` (tagged ``review_…``: a 911 or unknown-fault suppression).
        suppressed_total: addresses suppressed now (``int``, whatever the period).
        review_total: of those, how many carry a ``review_…`` tag (``int``).
        review: ``(address, since, reason, code, status, tags)`` of those, newest first
            (at most ``review_limit``).
        campaigns: ``(campaign, events, hard, soft)``, most bounced first.

    Distinct addresses are counted where it is cheap (the summary, the sender-side rows):
    a ``COUNT(DISTINCT address)`` per reason, code, domain or campaign costs one sort of the
    whole ledger each.
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


def _sender_side() -> str:
    """The condition of a sender/message-fault bounce; one recorded without a fault counts
    by its reason (rules/reasons.yaml), the evidence dsnparse.fault reads first."""
    from ..reasons import load_reasons

    names = sorted(n for n, r in load_reasons().items() if r.fault in SENDER_FAULTS)
    return (f"(fault IN ({_faults_in(SENDER_FAULTS)}) OR (fault IS NULL AND reason IN "
            f"({_faults_in(names)})))")


def collect(conn: Any, period: Period = Period(), *, dialect: Dialect = SQLITE,
            top: int = 15, review_limit: int = 50,
            connect: Optional[Callable[[], Any]] = None, workers: int = 1) -> Figures:
    """Run every query of the report on a ledger connection.

    Args:
        conn: a DB-API connection to a ledger (``sqlite3.Connection``; any connection whose
            ``execute`` returns a cursor, or that has ``cursor()``).
        period: the events counted (:class:`Period`); suppressions by their ``since``.
        dialect: :data:`SQLITE` or :data:`POSTGRES`.
        top: at most this many domains, reasons, codes, statuses, campaigns and sender rows.
        review_limit: at most this many addresses pending review are listed.
        connect: a function opening another connection to the same ledger (read-only is
            enough); with ``workers`` above 1 the six parts of the report (the scans) run
            side by side, each in a thread on its own connection.  ``None``: all on ``conn``.
        workers: threads for ``connect`` (``int``; e.g. the number of cores).

    Returns:
        :class:`Figures`.

    Raises:
        sqlite3.DatabaseError (or the driver's error): the tables cannot be read.
    """
    def runner(c: Any) -> Callable[..., list]:
        def q(sql: str, args: Sequence[Any] = ()) -> list:
            text = dialect.sql(sql)
            if hasattr(c, "execute"):
                return c.execute(text, list(args)).fetchall()
            cur = c.cursor()
            try:
                cur.execute(text, list(args))
                return cur.fetchall()
            finally:
                cur.close()
        return q

    f = Figures()
    pw, pa = period.where("at")

    def main(q: Callable[..., list]) -> None:
        # -- one scan for everything of low cardinality: per UTC day, kind, seed-table type,
        # fault, reason, code and status (a few thousand groups for a million events); the
        # totals, the days, the reasons, the codes, the statuses and the sender-side kinds are
        # sums over these groups.  Events recorded without a fault (ledgers older than schema 2)
        # get it from reason, status and code, as dsnparse.policy.event_fault does.
        rows = q("SELECT {day:at}, kind, bounce_type, fault, reason, code, status, COUNT(*), "
                 f"MIN(at), MAX(at) FROM events WHERE kind <> 'removed'{pw} "
                 "GROUP BY {day:at}, kind, bounce_type, fault, reason, code, status", pa)
        daily: dict = {}
        reasons: dict = {}
        codes: dict = {}
        statuses: dict = {}
        kinds: dict = {}
        cat_of = {r: c for c, rs in SENDER_CATEGORIES.items() for r in rs}
        firsts, lasts = [], []
        for day, kind, btype, fault, reason, code, status, n, first, last in rows:
            f.totals[kind] = f.totals.get(kind, 0) + n
            if kind not in ("bounce", "delay", "complaint"):
                continue
            if fault is None and kind == "bounce":
                fault = _fault(reason, status, code)
            key = (day, kind, btype, fault or None)
            daily[key] = daily.get(key, 0) + n
            if kind != "bounce":
                continue
            firsts.append(first)
            lasts.append(last)
            if btype in ("hard", "soft"):
                f.totals[btype] = f.totals.get(btype, 0) + n
            r = reason or "undefined"
            reasons[r] = reasons.get(r, 0) + n
            if code is not None:
                codes[(code, btype)] = codes.get((code, btype), 0) + n
            if status is not None:
                statuses[status] = statuses.get(status, 0) + n
            if fault in SENDER_FAULTS:
                c = cat_of.get(reason, "other")
                k = kinds.setdefault(c, [c, 0, first])
                k[1] += n
                k[2] = min(k[2], first)
        f.totals.setdefault("hard", 0)
        f.totals.setdefault("soft", 0)
        f.totals["first"] = min(firsts) if firsts else None
        f.totals["last"] = max(lasts) if lasts else None
        f.daily = sorted(((*k, n) for k, n in daily.items()),
                         key=lambda r: (r[0], r[1], r[2] or "", r[3] or ""))
        f.reasons = sorted(reasons.items(), key=lambda x: (-x[1], x[0]))[:top]
        f.codes = sorted(((c, t, n) for (c, t), n in codes.items()),
                         key=lambda x: (-x[2], x[0], x[1] or ""))[:top]
        f.statuses = sorted(statuses.items(), key=lambda x: (-x[1], x[0]))[:top]
        f.sender_kinds = sorted((tuple(k) for k in kinds.values()), key=lambda k: (-k[1], k[0]))

    def addresses(q: Callable[..., list]) -> None:
        f.totals["addresses"] = q("SELECT COUNT(DISTINCT address) FROM events "
                                  f"WHERE {BOUNCE}{pw}", pa)[0][0] or 0

    def domains(q: Callable[..., list]) -> None:
        # -- receiving domains, split by fault (one scan; the top ones are picked here)
        rows = q("SELECT {domain:address}, fault, CASE WHEN fault IS NULL THEN reason END, "
                 "CASE WHEN fault IS NULL THEN status END, CASE WHEN fault IS NULL THEN code END, "
                 f"COUNT(*) FROM events WHERE {BOUNCE}{pw} GROUP BY {{domain:address}}, fault, "
                 "CASE WHEN fault IS NULL THEN reason END, "
                 "CASE WHEN fault IS NULL THEN status END, "
                 "CASE WHEN fault IS NULL THEN code END", pa)
        doms: dict = {}
        for dom, fault, reason, status, code, n in rows:
            fault = fault or _fault(reason, status, code) or "unknown"
            split = doms.setdefault(dom, {})
            split[fault] = split.get(fault, 0) + n
        f.domains = sorted(((d, sum(s.values()), s) for d, s in doms.items()),
                           key=lambda r: (-r[1], r[0]))[:top]

    def sender(q: Callable[..., list]) -> None:
        # -- sender-side problems: per receiving domain and category, since when, one example
        # (the newest diagnostic: ROW_NUMBER over each group, newest first)
        cat = _category_case("reason")
        rows = q("WITH s AS (SELECT {domain:address} AS domain, " + cat + " AS category, "
                 "address, at, status, diagnostic_code, remote_mta FROM events "
                 f"WHERE {BOUNCE} AND {_sender_side()}{pw}), "
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

    def suppressions(q: Callable[..., list]) -> None:
        # -- suppressions (the addresses table; "since" is when each was suppressed)
        review = f"(',' || tags) LIKE '%,{REVIEW_TAG_PREFIX}%'"
        basis = f"CASE WHEN {review} THEN 'review' ELSE COALESCE(basis, 'hard') END"
        # one scan of the suppressed addresses: per day and basis, and whether in the period
        inside = " AND ".join(c for c in ("since >= ?" if period.since is not None else "",
                                          "since < ?" if period.until is not None else "") if c)
        inside_sql = f"CASE WHEN since IS NOT NULL AND {inside} THEN 1 ELSE 0 END" if inside \
            else "CASE WHEN since IS NOT NULL THEN 1 ELSE 0 END"
        ia = [x for x in (period.since, period.until) if x is not None]
        # grouped by position: the period's parameters make the expressions differ in text
        rows = q("SELECT {day:since}, " + basis + f", {inside_sql}, COUNT(*) FROM addresses "
                 "WHERE suppressed = 1 GROUP BY 1, 2, 3", ia)
        per_day: dict = {}
        for day, b, ins, n in rows:
            f.suppressed_total += n
            if b == "review":
                f.review_total += n
            if ins:
                per_day[(day, b)] = per_day.get((day, b), 0) + n
        f.suppressed_daily = sorted((d, b, n) for (d, b), n in per_day.items())
        f.review = [tuple(r) for r in q(
            "SELECT address, since, reason, code, status, tags FROM addresses "
            f"WHERE suppressed = 1 AND {review} ORDER BY since DESC, address LIMIT ?",
            [review_limit])]

    def campaigns(q: Callable[..., list]) -> None:
        # -- campaigns (policy ledger.campaign_headers)
        f.campaigns = [tuple(r) for r in q(
            "SELECT campaign, COUNT(*), "
            "SUM(CASE WHEN bounce_type = 'hard' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN bounce_type = 'soft' THEN 1 ELSE 0 END) FROM events "
            f"WHERE {BOUNCE} AND campaign IS NOT NULL{pw} GROUP BY campaign "
            "ORDER BY COUNT(*) DESC, campaign LIMIT ?", [*pa, top])]

    parts = (main, addresses, domains, sender, suppressions, campaigns)
    if connect is None or workers <= 1:
        for part in parts:
            part(runner(conn))
        return f
    # each part on its own connection, in threads: the database runs the scans side by
    # side (sqlite3 releases the GIL while a statement runs)
    from concurrent.futures import ThreadPoolExecutor

    def run(part) -> None:
        c = connect()
        try:
            part(runner(c))
        finally:
            c.close()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in [pool.submit(run, part) for part in parts]:
            done.result()
    return f


def _fault(reason: Optional[str], status: Optional[str], code: Optional[str]) -> Optional[str]:
    """The fault of a bounce recorded without one (:func:`dsnparse.policy.event_fault`)."""
    from ..policy import Event, event_fault

    fault = event_fault(Event("x@x", 0.0, "bounce", code=code, status=status, reason=reason))
    return fault if fault in FAULTS else None
