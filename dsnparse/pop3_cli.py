"""The ``dsnparse pop3`` command: process a bounce mailbox over POP3 (see
:mod:`dsnparse.sources.pop3`).

``register(subparsers)`` adds the command to the main CLI.  Exit status: 0 all done; 1 some
messages failed to parse, or the run was cut short (a lost connection, a full disk or
another local I/O error: what was stored stays stored; rerun); 2 usage, login, TLS or UIDL
failure, or an output file owned by another state file (nothing was changed on the server).

The password comes from ``DSNPARSE_POP3_PASSWORD`` or an interactive prompt, never from the
command line or the config file.  ``--config FILE`` (TOML if it ends in ``.toml``, YAML
otherwise; a ``[pop3]`` table is read when there is one) may hold any other option.

Run on its own with ``python -m dsnparse.pop3_cli [options]``.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from .cliargs import tcp_port, timeout_seconds
from .imap_cli import UsageError, add_output_arguments, run_mailbox, settings

log = logging.getLogger("dsnparse.pop3")

# option name → (type, default): argparse, config files and Pop3Options
_OPTIONS = {
    "host": (str, None), "port": (int, None), "user": (str, None), "ca_file": (str, None),
    "starttls": (bool, False), "insecure_plain": (bool, False), "timeout": (float, 60.0),
    "limit": (int, None), "batch_size": (int, 50), "delete": (bool, False),
    "delete_other": (bool, False), "dry_run": (bool, False), "state": (str, None),
    "output": (str, None), "format": (str, "jsonl"), "progress": (bool, None),
}
PASSWORD_ENV = "DSNPARSE_POP3_PASSWORD"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``pop3`` options to a parser (every default is ``None``: see settings)."""
    g = p.add_argument_group("connection")
    g.add_argument("--config", metavar="FILE", help="TOML or YAML file with any option but "
                   "the password")
    g.add_argument("--host", help="POP3 server")
    g.add_argument("--port", type=tcp_port, help="port (default 995 for POP3S, 110 otherwise)")
    g.add_argument("--user", help=f"login name (password: ${PASSWORD_ENV} or prompt)")
    g.add_argument("--ca-file", "--cafile", dest="ca_file", metavar="PEM",
                   help="trust this CA (private CA, self-signed)")
    g.add_argument("--starttls", action="store_true", default=None,
                   help="plain POP3 upgraded with STLS (RFC 2595) instead of POP3S")
    g.add_argument("--insecure-plain", action="store_true", default=None,
                   help="unencrypted POP3: password and mail in clear text")
    g.add_argument("--timeout", type=timeout_seconds, metavar="S", help="network timeout (default 60)")
    g = p.add_argument_group("what to do")
    g.add_argument("--limit", type=int, metavar="N", help="process at most N new messages")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help="messages stored per fsync and state commit (50)")
    g.add_argument("--delete", action="store_true", default=None,
                   help="delete bounces from the server once their records are stored "
                   "(default: leave all mail on the server; the state file remembers what "
                   "was done)")
    g.add_argument("--delete-other", action="store_true", default=None,
                   help="with --delete: also delete stored messages that are not bounces")
    g.add_argument("--dry-run", action="store_true", default=None,
                   help="read and report only: change nothing on the server or in the state")
    g = add_output_arguments(p, "pop3")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more logging (-vv)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``pop3`` command to an argparse subparsers object."""
    p = subparsers.add_parser(
        "pop3", help="process a bounce mailbox over POP3",
        description="Give a verdict for every message of a POP3 maildrop, each exactly once "
        "(a state file keyed on the server's unique-ids, UIDL), and delete the stored "
        "bounces with --delete.",
        epilog="Exit status: 0 done; 1 a message failed to parse or the run was cut short "
        "(rerun); 2 usage, login, TLS or UIDL failure (nothing changed).")
    add_arguments(p)
    from .ledger_cli import add_db_arguments

    add_db_arguments(p, record=True)
    p.set_defaults(func=command_with_ledger)
    return p


def command_with_ledger(args: argparse.Namespace) -> int:
    """``dsnparse pop3`` with ``--db``: record each stored bounce in the bounce ledger."""
    if getattr(args, "db", None) is None:
        return command(args)
    from .ledger_cli import open_ledger

    with open_ledger(args) as ledger:
        def on_stored(report, source):
            if report.kind not in ("error", "not_bounce"):
                ledger.record_report(report, source,
                                     original_headers=dict(report.original_headers))
        return command(args, on_stored=on_stored)


def build_options(s: dict, password: str):
    from .sources.pop3 import Pop3Options
    if not s["host"] or not s["user"]:
        raise UsageError("--host and --user are required (on the command line or in --config)")
    if s["starttls"] and s["insecure_plain"]:
        raise UsageError("--starttls and --insecure-plain exclude each other")
    if s["delete_other"] and not s["delete"]:
        raise UsageError("--delete-other needs --delete")
    if s["dry_run"] and s["delete"]:
        raise UsageError("--dry-run deletes nothing: give --delete or --dry-run, not both")
    try:
        return Pop3Options(
            host=s["host"], user=s["user"], password=password, port=s["port"],
            security="starttls" if s["starttls"] else "plain" if s["insecure_plain"] else "ssl",
            ca_file=s["ca_file"], limit=s["limit"], batch_size=s["batch_size"],
            delete=s["delete"], delete_other=s["delete_other"], dry_run=s["dry_run"],
            state_path=s["state"], timeout=s["timeout"])
    except ValueError as e:
        raise UsageError(str(e)) from None


def _password() -> str:
    pw = os.environ.get(PASSWORD_ENV)
    if pw is not None:
        return pw
    if sys.stdin.isatty():
        return getpass.getpass("POP3 password: ")
    raise UsageError(f"no password: set {PASSWORD_ENV} (or run on a terminal to be asked)")


def command(args: argparse.Namespace, on_stored=None) -> int:
    """Handler of ``dsnparse pop3``; returns the exit status (0, 1 or 2)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[
            min(getattr(args, "verbose", 0), 2)], format="dsnparse: %(levelname)s: %(message)s")
    from .sources import pop3
    try:
        s = settings(args, _OPTIONS, "pop3", PASSWORD_ENV)
        opts = build_options(s, "")
        import dataclasses
        opts = dataclasses.replace(opts, password=_password())
    except UsageError as e:
        print(f"dsnparse pop3: {e}", file=sys.stderr)
        return 2
    return run_mailbox("pop3", pop3.run, opts, s, on_stored, logger=log)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dsnparse pop3",
                                description="process a bounce mailbox over POP3")
    add_arguments(p)
    return command(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
