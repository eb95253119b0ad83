"""The ``dsnparse report`` command (see :mod:`dsnparse.report`)::

    dsnparse report [PATH ...] [--db FILE|URL] [--policy FILE] [--since WHEN] [--until WHEN]
                    [-o FILE] [--lang en|fr] [--top N] [--rules DIR] [-j N]

Without PATH the figures come from the ledger (``--db``, else ``$DSNPARSE_DB``, else the
policy's ``ledger.path``); a ledger that does not exist is an error and is not created.  With
PATHs (files, directories, mbox, Maildir, ``-``) the mail is parsed into a temporary
in-memory ledger (the same recording and the same policy as ``parse --db``) and reported
from there; nothing is written to disk but the report.

Exit status: 0 the report is written; 1 it is written but some input could not be read (each
is named on stderr); 2 usage error, unusable ledger or policy, or the report cannot be written
(nothing is left half-written: the file is replaced atomically).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, Optional

from ..cliargs import point_in_time
from ..errors import DsnparseError, SourceError


def _top(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= n <= 200:
        raise argparse.ArgumentTypeError(f"must be between 1 and 200, not {n}")
    return n


def register(subparsers: Any) -> None:
    """Add the ``report`` command to an argparse subparsers object (sets ``func``)."""
    p = subparsers.add_parser(
        "report", help="one HTML page of bounces, suppressions and sender-side blocks",
        description="Write one self-contained HTML report (inline styles and SVG charts, no "
                    "script, no request to any other host: it reads offline and as an email "
                    "attachment): sender-side problems first when there are any, bounces per "
                    "day by hard/soft and fault, the receiving domains, reasons and status "
                    "codes with the seed table's descriptions, suppressions per day by basis "
                    "and those pending review, and the campaigns with the most bounces.  "
                    "Figures come from the ledger (--db), or from the given mail (PATH) parsed "
                    "into a temporary ledger.",
        epilog="Exit status: 0 written; 1 written, but some input could not be read; 2 usage "
               "error, unusable ledger, or the report could not be written.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=".eml file, directory, mbox, Maildir or - (default: the ledger)")
    p.add_argument("--db", metavar="FILE|URL",
                   help="ledger: an SQLite file or a postgresql:// URL (default $DSNPARSE_DB, "
                        "the policy's ledger.path, else $XDG_DATA_HOME/dsnparse/"
                        "ledger.sqlite3); not with PATH")
    p.add_argument("--policy", metavar="FILE",
                   help="suppression policy YAML (default $DSNPARSE_POLICY)")
    p.add_argument("--since", type=point_in_time, metavar="WHEN",
                   help="only events at or after WHEN: 7d, 24h, 90m, 2w or a date (2024-05-01)")
    p.add_argument("--until", type=point_in_time, metavar="WHEN",
                   help="only events before WHEN (same forms; a date means its midnight UTC)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the page to FILE (replaced atomically; e.g. report.html); "
                        "default: standard output when it is not a terminal")
    p.add_argument("--lang", choices=("en", "fr"), default="en",
                   help="language of the page and of the seed table's code descriptions")
    p.add_argument("--top", type=_top, default=15, metavar="N",
                   help="rows per ranking: domains, reasons, codes, campaigns (default 15)")
    p.add_argument("--rules", metavar="DIR", action="append", default=[],
                   help="extra rule-pack directory (for PATH)")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="worker processes parsing PATHs (default: one per core)")
    p.set_defaults(func=cmd_report)


def _err(msg: str) -> int:
    print(f"dsnparse: error: {msg}", file=sys.stderr)
    return 2


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``dsnparse report``; returns the exit status (see the module docstring)."""
    if args.paths and args.db:
        return _err("give PATHs or --db, not both")
    if args.since is not None and args.until is not None and args.until <= args.since:
        return _err("--until must be later than --since")
    if args.jobs is not None and args.jobs < 1:
        return _err("--jobs must be at least 1")
    if not args.output and sys.stdout.isatty():
        return _err("give -o FILE (e.g. -o report.html) or redirect standard output: the "
                    "report is an HTML page")
    if args.output:
        from ..cliargs import output_is_input as _output_is_input

        clash = _output_is_input(args.output, args.paths)
        if clash:
            return _err(f"the output {args.output} {clash}")
        # before any work: a report that cannot be written is known now, not after the parse
        parent = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(parent):
            return _err(f"cannot write {args.output}: no directory {parent}")
        if not os.access(parent, os.W_OK) or os.path.isdir(args.output):
            return _err(f"cannot write {args.output}: "
                        + ("a directory" if os.path.isdir(args.output) else
                           f"{parent} is not writable"))
    from . import build_report
    from ..ledger import Ledger, default_db_path, is_url
    from ..policy import load_policy

    unreadable = 0
    try:
        policy = load_policy(args.policy)
        if args.paths:
            with Ledger(":memory:", policy=policy) as led:
                unreadable, counts = _record_paths(led, args)
                read = (f"{counts.get('messages', 0)} messages read, "
                        f"{counts.get('not_bounce', 0)} not bounces, "
                        f"{counts.get('error', 0)} not readable as email, "
                        f"{unreadable} inputs unreadable")
                print(f"dsnparse: {read}", file=sys.stderr)
                html = build_report(led, since=args.since, until=args.until, lang=args.lang,
                                    top=args.top, source=f"{', '.join(args.paths)} ({read})")
        else:
            path = args.db or default_db_path(policy)
            if not is_url(path) and not os.path.exists(path):  # a read creates no ledger
                return _err(f"no ledger at {path} (record bounces first with "
                            f"`dsnparse parse … --db {path}`, or give the mail as PATH)")
            with Ledger(path, policy=policy, create=False) as led:
                html = build_report(led, since=args.since, until=args.until, lang=args.lang,
                                    top=args.top)
    except ImportError as exc:
        return _err(f"{exc.name or exc}: the report needs matplotlib "
                    f"(pip install 'dsnparse[report]')")
    except (DsnparseError, ValueError) as exc:
        return _err(str(exc))
    try:
        _write(args.output, html)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _err(f"writing {args.output or 'standard output'} failed: {exc.strerror or exc}")
    if args.output:
        print(f"dsnparse: report written to {args.output} ({len(html.encode()):,} bytes)",
              file=sys.stderr)
    return 1 if unreadable else 0


def _write(output: Optional[str], html: str) -> None:
    if not output or output == "-":
        sys.stdout.write(html)
        sys.stdout.flush()
        return
    target = os.path.abspath(output)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html",
                               dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(html)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _record_paths(led, args) -> tuple[int, dict]:
    """Parse every PATH into ``led`` (as ``parse --db`` records); return the count of inputs
    that could not be read and the counts of messages by kind (``messages``, ``bounce``,
    ``not_bounce``, ``error`` …, as ``parse`` counts them)."""
    from collections import Counter

    from ..options import Options
    from ..parallel import default_jobs, process
    from ..sources import iter_messages

    opts = Options.from_env()
    if args.rules:
        opts = opts.replace(rules=tuple(args.rules) + opts.rules)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    unreadable = 0
    counts: Counter = Counter()
    for path in args.paths:
        try:
            items = iter_messages(path, opts, defer_files=False)
            for chunk, res in process(items, opts, 1 if path == "-" else jobs, "jsonl", True):
                counts.update(res.counts)
                for w in res.warnings:
                    unreadable += 1
                    print(f"dsnparse: {w}", file=sys.stderr)
                for (source, data), report in zip(chunk, res.reports):
                    if report.kind not in ("error", "not_bounce"):
                        led.record_report(report, source,
                                          original_headers=dict(report.original_headers),
                                          raw=data if isinstance(data, bytes) else None)
        except SourceError as exc:
            unreadable += 1
            print(f"dsnparse: {exc}", file=sys.stderr)
    return unreadable, dict(counts)
