"""Command line: ``dsnparse parse PATH…`` and the other commands.

Exit status (all commands): 0 success; 1 some input could not be read — a missing path, an
unreadable file or directory, or a message the parser failed on (the rest was still processed and
reported); 2 usage error (bad option, broken rules, unwritable output).  Input that was read
but is not an email gets a record of kind ``error`` and does not change the exit status.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from typing import Optional

from . import __version__
from .cliargs import add_db_arguments  # noqa: F401 - re-exported
from .cliargs import options_from_args as _options, output_is_input as _output_is_input
from .cliargs import summary_line as _summary
from .cliargs import positive_int as _positive_int, seconds as _seconds
from .errors import DsnparseError, SourceError

log = logging.getLogger("dsnparse")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 on usage errors already; keep its format
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


#: Commands registered by their own modules: (command, module, help).  Their modules (and
#: what they import: sqlite3, the policy, IMAP…) are imported only when one of them runs or
#: help lists them; ``dsnparse parse`` and ``eval`` only see a light placeholder parser.
_PLUGIN_COMMANDS = (
    ("suppressions", "dsnparse.ledger_cli", "the ledger's list of addresses not to mail"),
    ("ledger", "dsnparse.ledger_admin_cli", "ledger migrations and copies (SQLite, PostgreSQL)"),
    ("senders", "dsnparse.senders", "sender- and message-side rejections per receiving "
                                    "domain"),
    ("report", "dsnparse.report.cli", "one HTML page of bounces, suppressions and sender-side "
                                      "blocks"),
    ("imap", "dsnparse.imap_cli", "process a bounce mailbox over IMAP"),
    ("pop3", "dsnparse.pop3_cli", "process a bounce mailbox over POP3"),
    ("pipe", "dsnparse.pipe", "one bounce on stdin from an MTA pipe (Postfix, Exim); exit 0 / 75"),
    ("rules", "dsnparse.rules_cli", "work with rule packs (rules check)"),
    ("explain", "dsnparse.rules_cli", "show how one message was parsed (packs tried, rules "
                                      "matched)"),
    ("serve", "dsnparse.service.cli", "HTTP service: bounces, ESP webhook events, the ledger"),
)


def _command_word(argv) -> Optional[str]:
    """The command named in ``argv`` (the top-level options take no value), or ``None``."""
    from .startup import command_word

    return command_word(sys.argv[1:] if argv is None else argv)


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The ``dsnparse`` parser for ``argv`` (default ``sys.argv[1:]``): the command modules of
    :data:`_PLUGIN_COMMANDS` are imported unless ``argv`` names ``parse`` or ``eval``; when
    ``argv`` names a command with only ``-v`` before it, that command's parser alone is built
    (nothing can print the list of commands then: the same usage, help and errors)."""
    p = _Parser(
        prog="dsnparse",
        description="Turn email bounces (RFC 3464 delivery status notifications and vendor "
                    "free-text bounces) into verdicts: recipient, enhanced status, bounce code "
                    "(hard/soft), reason and the rule that decided.",
        epilog="Exit status: 0 all input read; 1 some input could not be read, or the parser "
               "failed on a message (the rest is still reported); 2 usage error. "
               "'suppressions check' exits 1 when an address is suppressed.",
    )
    p.add_argument("--version", action="version", version=f"dsnparse {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    word = _command_word(argv)
    # only the command that runs is built when nothing before it can print the list of
    # commands (--help, --version): the start-up of `dsnparse pipe`, `dsnparse parse -`
    only = word if _runs_one_command(argv, word) else None
    if only is not None and only not in ("parse", "eval"):
        for mod in _plugin_modules(only):
            mod.register(sub)
        return p

    pp = sub.add_parser(
        "parse", help="parse bounce messages from files, directories, mbox, Maildir or stdin",
        description="Parse every message under each PATH and write one record per recipient "
                    "(one record with empty recipient fields for a message with no verdict).",
    )
    pp.add_argument("paths", nargs="+", metavar="PATH",
                    help=".eml file, directory, mbox file, Maildir, MBOX#N or MAILDIR#KEY "
                         "(one message, as printed in 'source'), or - for standard input")
    pp.add_argument("-f", "--format", choices=("jsonl", "csv", "table", "parquet"), default=None,
                    help="output format (default: from the -o file's extension: .csv csv, "
                         ".jsonl/.json/.ndjson jsonl, .txt table; else table on a terminal, "
                         "jsonl otherwise); parquet needs --dask and -o FILE or -o DIR/")
    pp.add_argument("-o", "--output", metavar="FILE", help="write records to FILE (default: stdout)")
    pp.add_argument("--stdin-format", choices=("message", "mbox"), default="message",
                    help="what - (standard input) holds: one message (default) or an mbox "
                         "of several (sources -#0, -#1, …)")
    pp.add_argument("--rules", metavar="DIR", action="append", default=[],
                    help="extra rule-pack directory, tried before the shipped packs (repeatable; "
                         "also DSNPARSE_RULES)")
    pp.add_argument("--max-size", metavar="BYTES", type=_positive_int, default=25 * 1024 * 1024,
                    help="messages larger than this are reported as errors, not loaded "
                         "(default: 25 MiB)")
    pp.add_argument("--message-timeout", metavar="SECONDS", type=_seconds, default=None,
                    help="time budget per message: a message that takes longer gets a record "
                         "of kind error ('message_timeout: …') and the run goes on "
                         "(default: 5; 0: no limit)")
    pp.add_argument("-j", "--jobs", metavar="N", type=int, default=None,
                    help="worker processes for directories, mbox files and Maildirs "
                         "(default: one per core; 1 parses in this process; output stays in "
                         "input order)")
    pp.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    pp.add_argument("--dask", metavar="ADDRESS", default=None,
                    help="parse on a Dask cluster: a scheduler address (tcp://HOST:8786) or "
                         "local:N (a local cluster of N processes); the paths (local, shared "
                         "or fsspec URLs) must be readable by the workers; see README, "
                         "'Archives on Dask'")
    add_db_arguments(pp, record=True)
    pp.set_defaults(func=cmd_parse)
    if only == "parse":
        return p

    pe = sub.add_parser(
        "eval", help="measure accuracy on a labelled corpus (expectations JSON Lines)",
        description="Run the parser over every email of an expectations file and print, per "
                    "family and in total: bounces detected, false positives, recipient-count "
                    "match, status class match, exact status match (real codes only), reason "
                    "match, and suppress: where one bounce suppressing a fresh address (the "
                    "shipped ledger policy) agrees with the hardbounce label.",
    )
    pe.add_argument("expectations", nargs="+", metavar="EXPECTATIONS.jsonl")
    pe.add_argument("--only-dsn", action="store_true",
                    help="only emails that contain a delivery-status part")
    pe.add_argument("--family", action="append", default=[], help="only this family (repeatable)")
    pe.add_argument("--misses", action="store_true", help="list every mismatch after the table")
    pe.add_argument("--json", action="store_true", help="print the figures as JSON")
    pe.add_argument("--rules", metavar="DIR", action="append", default=[],
                    help="extra rule-pack directory")
    pe.add_argument("--leave-out", metavar="FAMILY", action="append", default=[],
                    help="run without the packs written from this corpus family (their "
                         "'written_from'; repeatable)")
    pe.add_argument("--leave-one-out", action="store_true",
                    help="measure every family with its own packs left out (the generic "
                         "layer on formats it was not written from)")
    pe.set_defaults(func=cmd_eval)
    if only == "eval":
        return p

    if word in ("parse", "eval"):
        for name, _, help_ in _PLUGIN_COMMANDS:  # placeholders: same usage and choices
            sub.add_parser(name, help=help_)
    elif word in {name for name, _, _ in _PLUGIN_COMMANDS}:
        # one plugin command runs: only its module is imported (start-up of `dsnparse pipe`)
        for mod in _plugin_modules(word):
            mod.register(sub)
        for name, _, help_ in _PLUGIN_COMMANDS:
            if name not in sub.choices:
                sub.add_parser(name, help=help_)
    else:
        for mod in _plugin_modules():
            mod.register(sub)
    return p


def _runs_one_command(argv, word: Optional[str]) -> bool:
    """``word`` is a command and only ``-v``/``--verbose`` come before it: the main parser
    then never prints its list of commands, and the other commands need no parser."""
    if word not in {"parse", "eval"} | {name for name, _, _ in _PLUGIN_COMMANDS}:
        return False
    for a in sys.argv[1:] if argv is None else argv:
        if a == word:
            return True
        if a != "--verbose" and not (len(a) > 1 and a.strip("v") == "-"):
            return False
    return False


def _plugin_modules(command: Optional[str] = None):
    """Command groups that live in their own modules (each has ``register(subparsers)``);
    only the module of ``command`` when it is given."""
    import importlib

    mods = []
    for name in dict.fromkeys(m for c, m, _ in _PLUGIN_COMMANDS if command in (None, c)):
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return mods


def cmd_parse(args) -> int:
    """Parse every PATH; with ``--jobs N`` the workers parse and render the records (see
    :func:`dsnparse.parallel.process`); this process splits the input, writes the text in
    input order and, with ``--db``, records the reports the workers send back."""
    from .output import (abandon_output, format_for_path, make_writer, stdout_for_records,
                         terminal_width)
    from .parallel import default_jobs, process
    from .rules import load_packs
    from .sources import iter_messages

    if args.format is None and args.output and \
            os.path.splitext(args.output.rstrip("/"))[1].lower() == ".parquet":
        args.format = "parquet"  # implied by the name: written with --dask, else refused
    from .startup import resume_collector

    if getattr(args, "dask", None) is not None or args.format == "parquet":
        resume_collector()
        from .dask_cli import cmd_parse_dask  # (imports Dask only when it runs)

        return cmd_parse_dask(args)
    opts = _options(args)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        print("dsnparse: error: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "policy", None) is not None and getattr(args, "db", None) is None:
        # the policy decides suppressions in the ledger; without one it would be ignored
        print("dsnparse: error: --policy needs --db (the policy decides what the ledger "
              "suppresses; parse alone records nothing)", file=sys.stderr)
        return EXIT_USAGE
    progress = _Progress() if not args.quiet and sys.stderr is not None \
        and sys.stderr.isatty() else None
    try:
        # broken rules, like a bad --db, are found before -o truncates
        load_packs(tuple(opts.rules))
        from . import engine  # noqa: F401 - loaded before the collector is back (dsnparse.startup)
    finally:
        resume_collector()
    clash = _output_is_input(args.output, args.paths) if args.output else None
    if clash:
        print(f"dsnparse: error: the output {args.output} {clash}", file=sys.stderr)
        return EXIT_USAGE
    ledger = None
    if getattr(args, "db", None) is not None:
        from .ledger_cli import open_ledger

        ledger = open_ledger(args)
    keep = ledger is not None
    try:
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output \
            else stdout_for_records()
    except OSError as e:
        if ledger is not None:
            ledger.close()
        print(f"dsnparse: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    fmt = args.format or (args.output and format_for_path(args.output)) or (
        "table" if not args.output and out.isatty() else "jsonl")
    width = terminal_width(out) if fmt == "table" else None   # None: a pipe keeps full values
    writer = make_writer(fmt, out, width=width)
    counts: Counter = Counter()
    unreadable = 0
    try:
        for path in args.paths:
            try:
                # without a ledger, workers read directory files themselves (no raw bytes needed)
                items = iter_messages(path, opts, defer_files=not keep,
                                      stdin_format=args.stdin_format)
                for chunk, res in process(items, opts, 1 if path == "-" else jobs, fmt, keep,
                                          width):
                    out.write(res.text)
                    counts.update(res.counts)
                    for w in res.warnings:
                        unreadable += 1
                        log.warning("%s", w)
                    if progress:
                        progress.tick(counts["messages"])
                    if keep:
                        for (source, data), report in zip(chunk, res.reports):
                            if report.kind not in ("error", "not_bounce"):
                                ledger.record_report(
                                    report, source, original_headers=dict(report.original_headers),
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
        abandon_output(out)
        return EXIT_USAGE
    finally:
        try:
            if args.output:
                out.close()
            else:
                out.flush()   # (standard output stays open)
        except (OSError, ValueError):
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

    from .evaluate import format_table, evaluate, leave_one_out

    opts = _options(args)
    if args.leave_out:
        from .rules import load_packs

        known = {f for p in load_packs(tuple(opts.rules)) for f in p.written_from}
        unknown = sorted(set(args.leave_out) - known)
        if unknown:  # a typo would silently leave nothing out
            print(f"dsnparse: error: --leave-out {unknown[0]}: no pack was written from that "
                  f"family (the families packs name: {', '.join(sorted(known))})",
                  file=sys.stderr)
            return EXIT_USAGE
        opts = opts.replace(leave_out=frozenset(args.leave_out))
    run = leave_one_out if args.leave_one_out else evaluate
    for path in args.expectations:
        result = run(path, opts, only_dsn=args.only_dsn, families=args.family or None)
        missing = sorted(set(args.family) - set(result))
        if missing:
            print(f"dsnparse: error: --family {missing[0]}: no email of {path} is of that "
                  f"family", file=sys.stderr)
            return EXIT_USAGE
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


def main(argv=None) -> int:
    """Run the command of ``argv`` (default ``sys.argv[1:]``); returns its exit status."""
    return run_command(argv)[0]


def run_command(argv=None) -> tuple:
    """:func:`main`, returning ``(exit status, parsed arguments)``; ``SystemExit`` from
    argparse (``--help``, usage errors) passes through."""
    if sys.stderr is None:  # started with stderr closed (2>&-): messages go nowhere, not
        sys.stderr = open(os.devnull, "w")  # to standard output (print's fallback)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="dsnparse: %(levelname)s: %(message)s")
    try:
        return args.func(args), args
    except DsnparseError as e:
        print(f"dsnparse: error: {e}", file=sys.stderr)
        return EXIT_USAGE, args
    except KeyboardInterrupt:
        print("dsnparse: interrupted", file=sys.stderr)
        return 130, args


def one_message_run(args) -> bool:
    """``dsnparse pipe``, or ``dsnparse parse`` reading standard input alone (no workers, no
    Dask): the runs whose process may end as soon as their output is stored
    (:func:`dsnparse.startup.exit_now`)."""
    if args.command == "pipe":
        return True
    return (args.command == "parse" and all(p == "-" for p in args.paths)
            and getattr(args, "dask", None) is None and args.format != "parquet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
