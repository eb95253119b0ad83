"""The ``dsnparse suppressions`` command group, and ``--db`` helpers for other commands.

``dsnparse.cli`` builds the main parser and calls :func:`register` with its subparsers
object; every leaf parser sets ``func`` (``func(args) -> int`` exit status)::

    dsnparse suppressions list   [--db F] [--policy P] [--format table|jsonl|csv]
                                 [--tag TAG] [--limit N]
    dsnparse suppressions export [--db F] [--policy P] [--format csv|jsonl] [--tag TAG]
                                 [-o FILE]
    dsnparse suppressions check  [--db F] [--policy P] ADDRESS...
    dsnparse suppressions remove [--db F] [--policy P] [--note TEXT] ADDRESS...

Exit status: 0 success (``check``: every address mailable); 1 ``check`` found a suppressed
address; 2 a usage error, an invalid address, or a ledger/policy that cannot be used.

The ledger file is ``--db``, else ``$DSNPARSE_DB``, else the policy's ``ledger.path``, else
``$XDG_DATA_HOME/dsnparse/ledger.sqlite3`` (``~/.local/share/dsnparse/ledger.sqlite3``); any
of them may be a ``postgresql://`` URL instead (:mod:`dsnparse.ledger.postgres`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable

from .cliargs import add_db_arguments  # noqa: F401 - re-exported (parse, imap, suppressions)
from .errors import DsnparseError
from .output import SafeCsvWriter, format_for_path
if TYPE_CHECKING:  # the ledger (sqlite3, uuid…) is imported only when a command needs it
    from .ledger import Ledger
from .policy import Decision, iso, load_policy


def open_ledger(args: argparse.Namespace, *, create: bool = True) -> Ledger:
    """Open the :class:`~dsnparse.ledger.Ledger` named by ``args.db`` / ``args.policy``.

    ``create=False`` (read-only commands): a ledger file that does not exist raises
    instead of being created.

    Raises:
        LedgerError: the ledger cannot be opened (or does not exist and ``create`` is false).
        RuleError: the policy file is invalid.
    """
    from .ledger import Ledger

    policy = load_policy(getattr(args, "policy", None))
    return Ledger(getattr(args, "db", None), policy=policy, create=create)


def register(subparsers: Any) -> None:
    """Add the ``suppressions`` command group to an argparse subparsers object.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Each leaf parser sets ``func``: call ``args.func(args)`` and exit with the ``int`` it
    returns.  ``dsnparse suppressions`` without a subcommand prints its help and returns 2.
    """
    common = argparse.ArgumentParser(add_help=False)
    add_db_arguments(common)
    top = subparsers.add_parser(
        "suppressions", help="the ledger's list of addresses not to mail",
        description="Ask and manage the bounce ledger's suppression list.")
    top.set_defaults(func=lambda args: _help(top))
    sub = top.add_subparsers(dest="suppressions_command", metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="suppressed addresses, newest first",
                       description="List suppressed addresses, newest first, with the "
                                   "reason and the bounces that led there.")
    p.add_argument("--format", choices=("table", "jsonl", "csv"), default="table")
    p.add_argument("--tag", help="only suppressions with this tag (e.g. review_911)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N addresses")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("export", parents=[common], help="export for a mailing tool",
                       description="Export every suppressed address, one per row "
                                   "(columns email, reason, basis, since, code, status, "
                                   "tags).")
    p.add_argument("--format", choices=("csv", "jsonl"), default=None,
                   help="default: jsonl for an -o file ending .jsonl/.json/.ndjson, else csv")
    p.add_argument("--tag", help="only suppressions with this tag")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (replaced atomically) instead of standard output")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("check", parents=[common], help="may these addresses be mailed?",
                       description="Exit 0 when every address is mailable, 1 when any is "
                                   "suppressed (each is printed with why).")
    p.add_argument("addresses", nargs="+", metavar="ADDRESS")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("remove", parents=[common], help="lift suppressions (recorded)",
                       description="Make addresses mailable again.  The removal is recorded "
                                   "in the ledger as an operator event; bounces before it no "
                                   "longer count.")
    p.add_argument("addresses", nargs="+", metavar="ADDRESS")
    p.add_argument("--note", metavar="TEXT", help="why (stored with the removal)")
    p.set_defaults(func=cmd_remove)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _run(args: argparse.Namespace, body: Callable[[Ledger], int], *, read_only: bool = True) -> int:
    """Open the ledger and run ``body``.  A read-only command (list, export, check) on a
    ledger file that does not exist is an error (exit 2), not an empty ledger that would
    call every address mailable; ``remove`` may create it."""
    try:
        with open_ledger(args, create=not read_only) as led:
            return body(led)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (DsnparseError, ValueError, OSError) as exc:
        print(f"dsnparse: error: {exc}", file=sys.stderr)
        return 2


def _why(d: Decision) -> str:
    parts = [f"basis={d.basis}", f"reason={d.reason}", f"since={iso(d.since)}"]
    if d.code:
        parts.append(f"code={d.code}")
    if d.status:
        parts.append(f"status={d.status}")
    if d.tags:
        parts.append(f"tags={','.join(d.tags)}")
    return " ".join(parts)


# --------------------------------------------------------------------------- list

def _event_summary(e) -> dict:
    return {"at": iso(e.at), "kind": e.kind, "code": e.code, "status": e.status,
            "reason": e.reason, "message_id": e.message_id,
            "original_message_id": e.original_message_id, "campaign": e.campaign,
            "source": e.source}


def cmd_list(args: argparse.Namespace) -> int:
    """``suppressions list``: suppressed addresses, newest first, with their bounces."""
    def body(led: Ledger) -> int:
        out = sys.stdout
        fmt = args.format
        w = None
        table = None
        if fmt == "table":
            table = _ListTable(out)
        elif fmt == "csv":
            w = SafeCsvWriter(out)
            w.writerow(("address", "since", "basis", "reason", "code", "status", "tags",
                        "soft_count", "bounces"))
        for d in led.suppressions(tag=args.tag, limit=args.limit):
            evs = [_event_summary(e) for e in led.events(ids=d.event_ids)]
            if table is not None:
                table.row((iso(d.since), d.address, d.basis, d.reason, d.code,
                           ",".join(d.tags)))
                for e in evs:
                    bits = [e["at"], e["kind"], e["status"] or e["code"] or "-"]
                    if e["message_id"]:
                        bits.append(f"bounce <{e['message_id']}>")
                    if e["original_message_id"]:
                        bits.append(f"original <{e['original_message_id']}>")
                    if e["campaign"]:
                        bits.append(f"campaign {e['campaign']}")
                    if e["source"]:
                        bits.append(f"from {e['source']}")
                    table.detail(bits)
            elif fmt == "jsonl":
                obj = {"address": d.address, "since": iso(d.since), "basis": d.basis,
                       "reason": d.reason, "code": d.code, "status": d.status,
                       "tags": list(d.tags), "soft_count": d.soft_count, "events": evs}
                out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            else:
                bounces = " | ".join(f"{e['at']} {e['message_id'] or e['source'] or ''}"
                                     .strip() for e in evs)
                w.writerow((d.address, iso(d.since), d.basis, d.reason, d.code or "",
                            d.status or "", ";".join(d.tags), d.soft_count, bounces))
        return 0
    return _run(args, body)


class _ListTable:
    """The ``list`` table: one line per address, then its bounces indented below.

    On a terminal the columns fit its width (long cells cut in the middle with ``…``) and
    the bounce lines wrap at it; on a pipe or file every value is written whole
    (:class:`dsnparse.output.TableWriter` does the same for the verdict table)."""

    COLUMNS = ("SINCE", "ADDRESS", "BASIS", "REASON", "CODE", "TAGS")
    WIDTHS = (20, 36, 9, 22, 4, 16)
    MINIMUM = (20, 16, 5, 10, 4, 4)     # a time is never cut
    SHRINK = (5, 3, 2, 1)               # tags, reason, basis, then the address
    GROW = (1, 3, 5)                    # a wide terminal: address, reason, tags

    def __init__(self, out):
        from .output import TableWriter, terminal_width

        self.out = out
        self.width = terminal_width(out)
        self._w = TableWriter(out, columns=self.COLUMNS, widths=self.WIDTHS, width=self.width,
                              minimum=self.MINIMUM, shrink=self.SHRINK, grow=self.GROW)

    def row(self, cells) -> None:
        self._w.write_row(cells)

    def detail(self, bits) -> None:
        from .output import display_width, fit, printable

        bits = [printable(b) for b in bits]
        if self.width is None:
            self.out.write("    " + "  ".join(bits) + "\n")
            return
        line, indent = "    ", "      "
        for b in bits:
            b = fit(b, self.width - len(indent))
            if line.strip() and display_width(line) + 2 + display_width(b) > self.width:
                self.out.write(line.rstrip() + "\n")
                line = indent
            line += ("  " if line.strip() else "") + b
        self.out.write(line.rstrip() + "\n")


# --------------------------------------------------------------------------- export

def cmd_export(args: argparse.Namespace) -> int:
    """``suppressions export``: every suppressed address for a mailing tool."""
    fmt = args.format or ("jsonl" if args.output and format_for_path(args.output) == "jsonl"
                          else "csv")

    def body(led: Ledger) -> int:
        if not args.output:
            led.export(sys.stdout, fmt, tag=args.tag)
            return 0
        target = os.path.abspath(args.output)
        fd, tmp = tempfile.mkstemp(prefix=".export-", dir=os.path.dirname(target))
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                n = led.export(f, fmt, tag=args.tag)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        print(f"{n} suppressed address(es) written to {args.output}", file=sys.stderr)
        return 0
    return _run(args, body)


# --------------------------------------------------------------------------- check

def cmd_check(args: argparse.Namespace) -> int:
    """``suppressions check``: 0 when every address is mailable, 1 when any is suppressed,
    2 when an argument is not an address."""
    def body(led: Ledger) -> int:
        from .ledger import normalize_address
        bad = [a for a in args.addresses if normalize_address(a) is None]
        for a in bad:
            print(f"dsnparse: error: not an address: {a!r}", file=sys.stderr)
        good = [a for a in args.addresses if normalize_address(a) is not None]
        any_suppressed = False
        for d in led.check(good):
            if d.suppressed:
                any_suppressed = True
                print(f"suppressed {d.address} {_why(d)}")
            else:
                extra = f" (soft bounces counted: {d.soft_count})" if d.soft_count else ""
                print(f"ok {d.address}{extra}")
        if bad:
            return 2
        return 1 if any_suppressed else 0
    return _run(args, body)


# --------------------------------------------------------------------------- remove

def cmd_remove(args: argparse.Namespace) -> int:
    """``suppressions remove``: an operator's override, recorded in the ledger."""
    def body(led: Ledger) -> int:
        for d in led.remove(args.addresses, note=args.note):
            if d.suppressed:
                print(f"removed {d.address} (was {_why(d)})")
            else:
                print(f"removed {d.address} (was not suppressed; removal recorded)")
        return 0
    return _run(args, body, read_only=False)
