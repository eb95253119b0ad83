"""Command line: ``dsnparse parse PATH…`` and the other commands.

Exit status (all commands): 0 success; 1 some input could not be read — a missing path, an
unreadable file, or a message the parser failed on (the rest was still processed and
reported); 2 usage error (bad option, broken rules, unwritable output).  Input that was read
but is not an email gets a record of kind ``error`` and does not change the exit status.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter

from . import __version__
from .errors import DsnparseError, SourceError
from .options import Options

log = logging.getLogger("dsnparse")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 on usage errors already; keep its format
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dsnparse",
        description="Turn email bounces (RFC 3464 delivery status notifications and vendor "
                    "free-text bounces) into verdicts: recipient, enhanced status, bounce code "
                    "(hard/soft), reason and the rule that decided.",
        epilog="Exit status: 0 all input read; 1 some input could not be read (the rest is "
               "still reported); 2 usage error.",
    )
    p.add_argument("--version", action="version", version=f"dsnparse {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    pp = sub.add_parser(
        "parse", help="parse bounce messages from files, directories, mbox, Maildir or stdin",
        description="Parse every message under each PATH and write one record per recipient "
                    "(one record with empty recipient fields for a message with no verdict).",
    )
    pp.add_argument("paths", nargs="+", metavar="PATH",
                    help=".eml file, directory, mbox file, Maildir, or - for standard input")
    pp.add_argument("-f", "--format", choices=("jsonl", "csv", "table"), default=None,
                    help="output format (default: table on a terminal, jsonl otherwise)")
    pp.add_argument("-o", "--output", metavar="FILE", help="write records to FILE (default: stdout)")
    pp.add_argument("--rules", metavar="DIR", action="append", default=[],
                    help="extra rule-pack directory, tried before the shipped packs (repeatable; "
                         "also DSNPARSE_RULES)")
    pp.add_argument("--max-size", metavar="BYTES", type=_positive_int, default=25 * 1024 * 1024,
                    help="messages larger than this are reported as errors, not loaded "
                         "(default: 25 MiB)")
    pp.add_argument("-j", "--jobs", metavar="N", type=int, default=None,
                    help="worker processes for directories, mbox files and Maildirs "
                         "(default: one per core; 1 parses in this process; output stays in "
                         "input order)")
    pp.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    from .ledger_cli import add_db_arguments

    add_db_arguments(pp)
    pp.set_defaults(func=cmd_parse)

    pe = sub.add_parser(
        "eval", help="measure accuracy on a labelled corpus (expectations JSON Lines)",
        description="Run the parser over every email of an expectations file and print, per "
                    "family and in total: bounces detected, false positives, recipient-count "
                    "match, status class match, exact status match (real codes only) and reason "
                    "match.",
    )
    pe.add_argument("expectations", nargs="+", metavar="EXPECTATIONS.jsonl")
    pe.add_argument("--only-dsn", action="store_true",
                    help="only emails that contain a delivery-status part")
    pe.add_argument("--family", action="append", default=[], help="only this family (repeatable)")
    pe.add_argument("--misses", action="store_true", help="list every mismatch after the table")
    pe.add_argument("--json", action="store_true", help="print the figures as JSON")
    pe.add_argument("--rules", metavar="DIR", action="append", default=[],
                    help="extra rule-pack directory")
    pe.set_defaults(func=cmd_eval)

    for mod in _plugin_modules():
        mod.register(sub)
    return p


def _plugin_modules():
    """Command groups that live in their own modules (each has ``register(subparsers)``)."""
    import importlib

    mods = []
    for name in ("dsnparse.ledger_cli", "dsnparse.imap_cli", "dsnparse.rules_cli"):
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return mods


def _options(args) -> Options:
    opts = Options.from_env()
    extra = tuple(getattr(args, "rules", ()) or ())
    changes = {}
    if extra:
        changes["rules"] = extra + opts.rules
    if getattr(args, "max_size", None):
        changes["max_message_bytes"] = args.max_size
    return opts.replace(**changes) if changes else opts


def cmd_parse(args) -> int:
    from .output import make_writer
    from .parallel import default_jobs, parse_items
    from .rules import load_packs
    from .sources import iter_messages

    opts = _options(args)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        print("dsnparse: error: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    progress = _Progress() if not args.quiet and sys.stderr.isatty() else None
    load_packs(tuple(opts.rules))  # broken rules, like a bad --db, are found before -o truncates
    ledger = None
    if getattr(args, "db", None) is not None or getattr(args, "policy", None) is not None:
        from .ledger_cli import open_ledger

        ledger = open_ledger(args)
    try:
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    except OSError as e:
        if ledger is not None:
            ledger.close()
        print(f"dsnparse: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    fmt = args.format or ("table" if out is sys.stdout and sys.stdout.isatty() else "jsonl")
    writer = make_writer(fmt, out)
    counts: Counter = Counter()
    unreadable = 0
    try:
        for path in args.paths:
            try:
                items = iter_messages(path, opts)
                for source, data, report in parse_items(items, opts, 1 if path == "-" else jobs):
                    if isinstance(data, SourceError) or \
                            (report.error or "").find(": internal error:") >= 0:
                        unreadable += 1
                        log.warning("%s", data if isinstance(data, SourceError) else report.error)
                    _count(counts, report)
                    writer.write(report.records(source))
                    if progress:
                        progress.tick(counts["messages"])
                    if ledger is not None and report.kind not in ("error", "not_bounce"):
                        ledger.record_report(report, source, original_headers=dict(report.original_headers),
                                             raw=data if isinstance(data, bytes) else None)
            except SourceError as e:
                unreadable += 1
                print(f"dsnparse: {e}", file=sys.stderr)
        writer.close()
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # disk full, I/O error: the records are not all written
        print(f"dsnparse: error: writing {args.output or 'standard output'} failed: "
              f"{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if out is not sys.stdout:
            try:
                out.close()
            except OSError:
                pass  # reported above
        if ledger is not None:
            ledger.close()
    if progress:
        progress.done()
    if not args.quiet:
        print(_summary(counts, unreadable), file=sys.stderr)
    return EXIT_PARTIAL if unreadable else EXIT_OK


def cmd_eval(args) -> int:
    import json

    from .evaluate import format_table, evaluate

    opts = _options(args)
    for path in args.expectations:
        result = evaluate(path, opts, only_dsn=args.only_dsn, families=args.family or None)
        if args.json:
            print(json.dumps({k: v.rates() | {"emails": v.emails} for k, v in result.items()}))
            continue
        print(f"# {path}")
        print(format_table(result))
        if args.misses:
            for fam, t in result.items():
                if fam != "TOTAL":
                    for f, what in t.misses:
                        print(f"  {f}: {what}")
    return EXIT_OK


class _Progress:
    """A message count on stderr (a terminal), refreshed at most twice a second."""

    def __init__(self):
        import time

        self._time = time.monotonic
        self._start = self._last = self._time()
        self._shown = False

    def tick(self, n: int) -> None:
        now = self._time()
        if now - self._last >= 0.5:
            self._last = now
            rate = n / max(now - self._start, 1e-9)
            sys.stderr.write(f"\rdsnparse: {n} messages ({rate:.0f}/s)")
            sys.stderr.flush()
            self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _count(counts: Counter, report) -> None:
    counts["messages"] += 1
    counts[report.kind] += 1
    for v in report.verdicts:
        if v.action == "failed" and v.bounce_type:
            counts[v.bounce_type] += 1


def _summary(c: Counter, unreadable: int) -> str:
    return (f"messages: {c['messages']}  bounces: {c['bounce']}  hard: {c['hard']}  "
            f"soft: {c['soft']}  delays: {c['delay']}  delivered: {c['delivered']}  "
            f"auto-replies: {c['auto_reply']}  complaints: {c['complaint']}  "
            f"not bounces: {c['not_bounce']}  errors: {c['error']} (unreadable: {unreadable})")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="dsnparse: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except DsnparseError as e:
        print(f"dsnparse: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dsnparse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
