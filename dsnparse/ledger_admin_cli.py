"""The ``dsnparse ledger`` command group: schema migrations, copies between backends, facts.

``dsnparse.cli`` calls :func:`register` with its subparsers object::

    dsnparse ledger migrate [--db FILE|URL]
    dsnparse ledger copy    SRC DST [--policy P] [--batch N]
    dsnparse ledger info    [--db FILE|URL] [--policy P] [--format text|json]

A ledger location is an SQLite file or a ``postgresql://`` URL (default ``$DSNPARSE_DB``, the
policy's ``ledger.path``, else ``$XDG_DATA_HOME/dsnparse/ledger.sqlite3``).

Exit status: 0 success; 2 a usage error, or a ledger that cannot be reached, migrated, read
or written (the message says which).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .cliargs import add_db_arguments
from .errors import DsnparseError


def _location(args: argparse.Namespace) -> Any:
    from .ledger import default_db_path
    from .policy import load_policy

    db = getattr(args, "db", None)
    return db if db is not None else default_db_path(load_policy(getattr(args, "policy",
                                                                         None)))


def register(subparsers: Any) -> None:
    """Add the ``ledger`` command group to an argparse subparsers object.

    Each leaf parser sets ``func`` (``func(args) -> int`` exit status); ``dsnparse ledger``
    without a subcommand prints its help and returns 2.
    """
    top = subparsers.add_parser(
        "ledger", help="ledger schema migrations and copies (SQLite, PostgreSQL)",
        description="Administer a bounce ledger: an SQLite file or a postgresql:// URL.")
    top.set_defaults(func=lambda args: _help(top))
    sub = top.add_subparsers(dest="ledger_command", metavar="COMMAND")

    p = sub.add_parser(
        "migrate", help="create the ledger's tables or bring them up to date",
        description="Apply the ledger schema migrations this dsnparse knows, in one "
                    "transaction.  A PostgreSQL ledger is only ever migrated this way (run "
                    "it once before the first write, and after upgrading dsnparse); an "
                    "SQLite ledger is also migrated when opened, so this just opens it "
                    "(creating the file when missing).")
    add_db_arguments(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "copy", help="copy a ledger's events into another ledger (any backends)",
        description="Copy every event of SRC into DST (operator removals included) and "
                    "update DST's decisions; events DST has already are skipped, so the "
                    "copy can be re-run or resumed.  An SQLite DST is created when missing; a "
                    "PostgreSQL DST must have its schema: run `dsnparse ledger migrate --db "
                    "DST` first.")
    p.add_argument("src", metavar="SRC", help="ledger file or postgresql:// URL to read")
    p.add_argument("dst", metavar="DST", help="ledger file or postgresql:// URL to write")
    p.add_argument("--policy", metavar="FILE", default=argparse.SUPPRESS,
                   help="suppression policy YAML for DST's decisions (default "
                        "$DSNPARSE_POLICY)")
    p.add_argument("--batch", type=int, default=5000, metavar="N",
                   help="events per transaction (default 5000)")
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("info", help="backend, schema version and counts",
                       description="Print the ledger's backend, schema version and the "
                                   "numbers of events, addresses and suppressions.")
    add_db_arguments(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_info)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _error(exc: BaseException) -> int:
    print(f"dsnparse: error: {exc}", file=sys.stderr)
    return 2


def cmd_migrate(args: argparse.Namespace) -> int:
    """``ledger migrate``: print ``LOCATION: schema version A -> B``."""
    from .ledger import backend_class, migrate
    from .ledger.postgres import mask_url

    loc = _location(args)
    try:
        before, after = migrate(loc)
    except (DsnparseError, OSError) as exc:
        return _error(exc)
    name = backend_class(loc).backend
    shown = mask_url(str(loc))
    if before == after:
        print(f"{shown}: {name} ledger schema version {after}, up to date")
    else:
        print(f"{shown}: {name} ledger schema version {before} -> {after}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    """``ledger copy SRC DST``: events copied, DST's decisions updated; idempotent."""
    from .ledger import Ledger
    from .ledger.transfer import copy_ledger
    from .policy import load_policy

    if args.batch < 1:
        return _error(f"--batch must be at least 1, not {args.batch}")
    tty = sys.stderr.isatty()

    def progress(read: int, stored: int) -> None:
        if tty:
            print(f"\r{read:,} events read, {stored:,} new", end="", file=sys.stderr)
    try:
        policy = load_policy(getattr(args, "policy", None))
        with Ledger(args.src, policy=policy, create=False) as src, \
                Ledger(args.dst, policy=policy) as dst:
            read, stored = copy_ledger(src, dst, batch=args.batch, progress=progress)
            if tty:
                print(file=sys.stderr)
            n_sup = dst.query("SELECT count(*) FROM addresses WHERE suppressed=1")[0][0]
            total = dst.count_events()
            print(f"copied {read} event(s) from {src.path} to {dst.path}: {stored} new, "
                  f"{read - stored} already there; {dst.path} has {total} event(s), "
                  f"{n_sup} suppressed address(es)")
    except (DsnparseError, ValueError, OSError) as exc:
        return _error(exc)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``ledger info``: backend, schema version, counts."""
    from .ledger_cli import open_ledger

    try:
        with open_ledger(args, create=False) as led:
            (n_addr, n_sup), = led.query("SELECT count(*), coalesce(sum(suppressed), 0) "
                                         "FROM addresses")
            facts = {"location": str(led.path), "backend": led.backend,
                     "schema_version": led.schema_version(), "events": led.count_events(),
                     "addresses": int(n_addr), "suppressed": int(n_sup)}
    except (DsnparseError, ValueError, OSError) as exc:
        return _error(exc)
    if args.format == "json":
        print(json.dumps(facts))
    else:
        for k, v in facts.items():
            print(f"{k}: {v}")
    return 0
