"""Command-line arguments shared by several command modules (``parse``, ``imap``,
``suppressions`` …), kept apart from :mod:`dsnparse.cli` so that a command module can use
them without importing the CLI that imports it."""
from __future__ import annotations

import argparse


def add_db_arguments(parser: argparse.ArgumentParser, record: bool = False) -> None:
    """Add ``--db FILE`` and ``--policy FILE`` to ``parser`` (for parse, imap, suppressions).

    Both default to "absent" (``argparse.SUPPRESS``) so that a value given to a parent
    parser is not overwritten; read them with ``getattr(args, "db", None)`` or call
    :func:`dsnparse.ledger_cli.open_ledger`.  (Also exported as
    ``dsnparse.cli.add_db_arguments`` and ``dsnparse.ledger_cli.add_db_arguments``.)
    ``record=True`` (parse, imap): the commands record into the ledger only when ``--db``
    is given.
    """
    parser.add_argument("--db", metavar="FILE", default=argparse.SUPPRESS,
                        help="also record every bounce in this ledger (an SQLite file or a "
                             "postgresql:// URL; see `dsnparse suppressions`); nothing is "
                             "recorded without it" if record
                        else "ledger: an SQLite file or a postgresql:// URL; default "
                             "$DSNPARSE_DB or $XDG_DATA_HOME/dsnparse/ledger.sqlite3")
    parser.add_argument("--policy", metavar="FILE", default=argparse.SUPPRESS,
                        help="suppression policy YAML merged over the shipped defaults "
                             "(default $DSNPARSE_POLICY)")
