"""Sender-side problems, surfaced: ``dsnparse senders`` and :func:`sender_problems`.

A bounce whose fault is ``sender`` or ``message`` (:mod:`dsnparse.fault`: a blocklist, DMARC,
reputation, rate limits, spam or size) never suppresses the address — it is alive; the
problem is the sender's own.  Buried in a suppression list it would go unseen, so this
module lists them per receiving domain (the domain of the recipient address, lower-cased):

=================  ==========================================================================
``domain``         receiving domain
``rejections``     bounces of the chosen faults (default sender, message) in the window
``recipients``     distinct addresses of the domain with such a bounce
``seen``           distinct addresses of the domain with *any* event in the window (bounce,
                   delay, delivery notice, auto-reply, complaint): the denominator
``share``          ``recipients / seen`` (0 to 1)
``first_seen``     time of the oldest such bounce (ISO 8601 UTC; empty when undated)
``last_seen``      time of the newest
``faults``         count per fault, ``sender:3;message:1``
``status``         the most frequent status (ties: the newest); ``reason`` likewise
``remote_mta``     the remote MTA of the example
``example``        the diagnostic of the newest such bounce
=================  ==========================================================================

The denominator is what dsnparse knows of: recipients that produced a report (a ledger or
the given mail).  It is not the mail you sent: a domain whose every report is a DMARC
rejection shows a share of 1.0 even when most of your mail there was delivered without a
report.  Record delivery notices too (``NOTIFY=SUCCESS``) for a truer share.

Command (exit 0; 1 when a domain's share exceeds ``--threshold`` — for cron and monitoring —
or when an input could not be read; 2 usage error or an unusable ledger)::

    dsnparse senders [PATH ...] [--db FILE] [--since WHEN] [--threshold SHARE]
                     [--min-recipients N] [--fault F ...] [-f json|jsonl|csv|table] [-o FILE]

Without PATH the events come from the ledger (``--db``, else ``$DSNPARSE_DB``, else the
policy's ``ledger.path``); a ledger that does not exist is an error and is not created.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from .cliargs import parse_since
from .errors import DsnparseError, SourceError

__all__ = ["SenderRow", "FIELDS", "sender_problems", "events_from_reports",
           "events_from_ledger", "parse_since", "register"]

DEFAULT_FAULTS = ("sender", "message")
EVENT_KINDS = ("bounce", "delay", "delivered", "auto_reply", "complaint")
FIELDS = ("domain", "rejections", "recipients", "seen", "share", "first_seen", "last_seen",
          "faults", "status", "reason", "remote_mta", "example")
"""Columns of a :class:`SenderRow` (JSON keys and CSV header, in this order)."""
_TABLE_WIDTHS = (24, 10, 10, 5, 6, 20, 20, 18, 8, 16, 24, 60)


@dataclass(frozen=True)
class SenderRow:
    """One receiving domain's sender/message-fault rejections (see the module docstring).

    ``share`` is a ``float`` in [0, 1]; ``first_seen``/``last_seen`` ISO 8601 ``str`` or
    ``None``; the counts ``int``; the rest ``str`` or ``None``.
    """

    domain: str
    rejections: int
    recipients: int
    seen: int
    share: float
    first_seen: Optional[str]
    last_seen: Optional[str]
    faults: str
    status: Optional[str]
    reason: Optional[str]
    remote_mta: Optional[str]
    example: Optional[str]

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain ``dict`` with the keys of :data:`FIELDS`."""
        return asdict(self)


def _domain(address: Optional[str]) -> Optional[str]:
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].strip().rstrip(".").lower() or None


def sender_problems(events: Iterable[Mapping[str, Any]], *,
                    faults: Sequence[str] = DEFAULT_FAULTS,
                    since: Optional[float] = None) -> list[SenderRow]:
    """Group events into per-domain rows of sender/message-fault rejections.

    Args:
        events: mappings with ``address``, ``kind`` (a ledger event kind), ``at`` (epoch
            seconds or ``None``), ``fault``, ``status``, ``reason``, ``diagnostic_code``,
            ``remote_mta`` (as stored by the ledger, or from :func:`events_from_reports`).
            An event without ``fault`` (older ledgers) gets the one its reason, status and
            code give (:func:`dsnparse.policy.event_fault`).
        faults: which faults count as rejections (values of :data:`dsnparse.model.FAULTS`).
        since: only events at or after this time (epoch seconds); undated events are then
            left out.  ``None``: all.

    Returns:
        :class:`SenderRow` list, most rejected recipients first, then by domain; domains
        without a rejection are left out.
    """
    from .policy import Event, event_fault, iso

    wanted = set(faults)
    seen: dict[str, set] = {}
    hit: dict[str, list] = {}
    for e in events:
        kind = e.get("kind")
        if kind not in EVENT_KINDS:
            continue
        at = e.get("at")
        if since is not None and (at is None or at < since):
            continue
        addr = e.get("address")
        dom = _domain(addr)
        if dom is None:
            continue
        seen.setdefault(dom, set()).add(addr)
        if kind != "bounce":
            continue
        fault = e.get("fault") or event_fault(Event(
            addr, at or 0.0, "bounce", code=e.get("code"), bounce_type=e.get("bounce_type"),
            status=e.get("status"), reason=e.get("reason")))
        if fault in wanted:
            hit.setdefault(dom, []).append((e, fault))
    rows = []
    for dom, items in hit.items():
        rcpts = {e.get("address") for e, _ in items}
        times = [e.get("at") for e, _ in items if e.get("at") is not None]
        # newest last (undated first), so "the newest" is items[-1] and wins ties
        items.sort(key=lambda it: (it[0].get("at") is not None, it[0].get("at") or 0.0))
        newest = items[-1][0]
        fcount = Counter(f for _, f in items)
        rows.append(SenderRow(
            domain=dom, rejections=len(items), recipients=len(rcpts), seen=len(seen[dom]),
            share=round(len(rcpts) / len(seen[dom]), 4),
            first_seen=iso(min(times)) if times else None,
            last_seen=iso(max(times)) if times else None,
            faults=";".join(f"{f}:{n}" for f, n in sorted(fcount.items(),
                                                          key=lambda x: (-x[1], x[0]))),
            status=_most_common(e.get("status") for e, _ in items),
            reason=_most_common(e.get("reason") for e, _ in items),
            remote_mta=newest.get("remote_mta"),
            example=_one_line(newest.get("diagnostic_code")),
        ))
    rows.sort(key=lambda r: (-r.recipients, -r.rejections, r.domain))
    return rows


def _most_common(values: Iterable[Optional[str]]) -> Optional[str]:
    """The most frequent non-empty value; on a tie the one met last (the newest)."""
    count: Counter = Counter()
    last: dict = {}
    for i, v in enumerate(values):
        if v:
            count[v] += 1
            last[v] = i
    if not count:
        return None
    return max(count, key=lambda v: (count[v], last[v]))


def _one_line(text: Optional[str], limit: int = 300) -> Optional[str]:
    if not text:
        return None
    s = " ".join(text.split())
    return s if len(s) <= limit else s[:limit - 1] + "…"


def events_from_reports(items: Iterable[tuple[str, Any]]) -> Iterator[dict]:
    """Ledger-like events from ``(source, Report)`` pairs, as the ledger would record them.

    The time of each event is the bounce's ``Date``, else its ``Arrival-Date``, else
    ``None`` (undated).  Recipients that are not addresses, ``not_bounce`` and ``error``
    reports give nothing.
    """
    from .ledger import _event_kind, _soft_epoch, normalize_address

    for source, report in items:
        when = _soft_epoch(report.date, report.arrival_date)
        for v in report.verdicts:
            kind = _event_kind(report.kind, v.action)
            addr = normalize_address(v.final_recipient or v.original_recipient)
            if kind is None or addr is None:
                continue
            yield {"address": addr, "kind": kind, "at": when, "fault": v.fault,
                   "status": v.status, "reason": v.reason, "code": v.code,
                   "bounce_type": v.bounce_type, "diagnostic_code": v.diagnostic_code,
                   "remote_mta": v.remote_mta, "source": source}


_LEDGER_COLUMNS = ("address", "kind", "at", "fault", "status", "reason", "code",
                   "bounce_type", "diagnostic_code", "remote_mta", "source")


def events_from_ledger(ledger, since: Optional[float] = None) -> Iterator[dict]:
    """The events of an open :class:`~dsnparse.ledger.Ledger` (at or after ``since``,
    epoch seconds, when given), oldest first, as dicts of the columns the rows need.

    Raises:
        LedgerError: the database cannot be read.
    """
    sql = (f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM events WHERE kind IN "
           f"({', '.join('?' * len(EVENT_KINDS))})")
    args: list = list(EVENT_KINDS)
    if since is not None:
        sql += " AND at >= ?"
        args.append(since)
    rows = ledger.query(sql + " ORDER BY at, id", args)   # SQLite or PostgreSQL
    for r in rows:
        yield dict(zip(_LEDGER_COLUMNS, r))


def _share(text: str) -> float:
    try:
        v = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share: {text!r} (e.g. 0.05 or 5%)") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"share must be between 0 and 1: {text!r}")
    return v


def register(subparsers: Any) -> None:
    """Add the ``senders`` command to an argparse subparsers object (sets ``func``)."""
    from .cliargs import point_in_time
    from .model import FAULTS

    p = subparsers.add_parser(
        "senders", help="sender- and message-side rejections per receiving domain",
        description="List, per receiving domain, the bounces whose fault is the sender's or "
                    "the message's (blocklists, DMARC/SPF/DKIM, reputation, rate limits, spam, "
                    "size): they never suppress an address, so they are shown here.  Events "
                    "come from the given mail (PATH), else from the ledger (--db).  The share "
                    "is the domain's recipients with such a bounce among its recipients with "
                    "any event in the window (what dsnparse knows of, not all mail sent).",
        epilog="Exit status: 0; 1 when a domain's share exceeds --threshold or an input "
               "could not be read; 2 usage error or unusable ledger.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=".eml file, directory, mbox, Maildir or - (default: the ledger)")
    p.add_argument("--db", metavar="FILE|URL",
                   help="ledger: an SQLite file or a postgresql:// URL (default $DSNPARSE_DB, "
                        "the policy's ledger.path, else $XDG_DATA_HOME/dsnparse/"
                        "ledger.sqlite3); not with PATH")
    p.add_argument("--policy", metavar="FILE", help="suppression policy YAML (for --db)")
    p.add_argument("--since", type=point_in_time, metavar="WHEN",
                   help="only events since WHEN: 7d, 24h, 90m, 2w or a date (2024-05-01)")
    p.add_argument("--threshold", type=_share, metavar="SHARE",
                   help="exit 1 when any domain's share exceeds SHARE (0.05 or 5%%)")
    p.add_argument("--min-recipients", type=int, default=1, metavar="N",
                   help="--threshold applies only to domains with at least N recipients seen "
                        "(default 1)")
    p.add_argument("--fault", action="append", choices=FAULTS, metavar="FAULT",
                   help="faults that count (repeatable; default: sender and message)")
    p.add_argument("-f", "--format", choices=("json", "jsonl", "csv", "table"), default=None,
                   help="output format (default: table on a terminal, jsonl otherwise)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--rules", metavar="DIR", action="append", default=[],
                   help="extra rule-pack directory (for PATH)")
    p.set_defaults(func=cmd_senders)


def cmd_senders(args: argparse.Namespace) -> int:
    """Run ``dsnparse senders`` (see the module docstring); returns the exit status."""
    if args.paths and args.db:
        print("dsnparse: error: give PATHs or --db, not both", file=sys.stderr)
        return 2
    if args.min_recipients < 1:
        print("dsnparse: error: --min-recipients must be at least 1", file=sys.stderr)
        return 2
    faults = tuple(args.fault or DEFAULT_FAULTS)
    unreadable = 0
    if args.paths:
        events, unreadable = _events_from_paths(args)
        rows = sender_problems(events, faults=faults, since=args.since)
    else:
        try:
            rows = _rows_from_ledger(args, faults)
        except DsnparseError as e:
            print(f"dsnparse: error: {e}", file=sys.stderr)
            return 2
        if rows is None:
            return 2
    try:
        _write(args, rows, faults)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError as e:
        print(f"dsnparse: error: writing {args.output or 'standard output'} failed: "
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    if not rows:  # say so: "nothing rejected" must not look like "nothing read"
        from .policy import iso

        print(f"dsnparse: no {'/'.join(faults)}-fault rejection"
              + (f" since {iso(args.since)}" if args.since is not None else "")
              + (f" ({unreadable} input(s) unreadable)" if unreadable else ""), file=sys.stderr)
    over = [r for r in rows if args.threshold is not None and r.share > args.threshold
            and r.seen >= args.min_recipients]
    for r in over:
        print(f"dsnparse: {r.domain}: {r.recipients} of {r.seen} recipients "
              f"({100 * r.share:.1f}%) rejected for {r.faults} (threshold "
              f"{100 * args.threshold:g}%)", file=sys.stderr)
    return 1 if over or unreadable else 0


def _events_from_paths(args) -> tuple[list, int]:
    from .options import Options
    from .sources import iter_messages, parse_item

    opts = Options.from_env()
    if args.rules:
        opts = opts.replace(rules=tuple(args.rules) + opts.rules)
    pairs = []
    unreadable = 0
    for path in args.paths:
        try:
            for source, data in iter_messages(path, opts):
                if isinstance(data, SourceError):
                    unreadable += 1
                    print(f"dsnparse: {data}", file=sys.stderr)
                    continue
                pairs.append((source, parse_item(source, data, opts)))
        except SourceError as e:
            unreadable += 1
            print(f"dsnparse: {e}", file=sys.stderr)
    return list(events_from_reports(pairs)), unreadable


def _rows_from_ledger(args, faults) -> Optional[list]:
    from .ledger import Ledger, default_db_path, is_url
    from .policy import load_policy

    policy = load_policy(args.policy)
    path = args.db or default_db_path(policy)
    if not is_url(path) and not os.path.exists(path):   # a read must not create an empty ledger
        print(f"dsnparse: error: no ledger at {path} (record bounces first with "
              f"`dsnparse parse … --db {path}`)", file=sys.stderr)
        return None
    with Ledger(path, policy=policy) as led:
        return sender_problems(events_from_ledger(led, args.since), faults=faults,
                               since=args.since)


def _write(args, rows: list, faults) -> None:
    from .output import CsvWriter, TableWriter
    from .policy import iso

    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        fmt = args.format or ("table" if out is sys.stdout and sys.stdout.isatty() else "jsonl")
        dicts = [r.to_dict() for r in rows]
        if fmt == "json":
            json.dump({"since": iso(args.since), "faults": list(faults),
                       "threshold": args.threshold, "domains": dicts}, out,
                      ensure_ascii=False, indent=1)
            out.write("\n")
        elif fmt == "jsonl":
            for d in dicts:
                out.write(json.dumps(d, ensure_ascii=False) + "\n")
        elif fmt == "csv":
            w = CsvWriter(out, fields=FIELDS)
            w.write(dicts)
            w.flush()
        else:
            w = TableWriter(out, columns=FIELDS, widths=_TABLE_WIDTHS, grow=(0, 10, 11))
            w.write(dicts)
            w.flush()
    finally:
        if out is not sys.stdout:
            out.close()
