"""The ``dsnparse imap`` command: process a bounce mailbox (see :mod:`dsnparse.sources.imap`).

``register(subparsers)`` adds the command to the main CLI's argparse subparsers; the
handler is stored as ``func`` on the parsed namespace and returns the exit status:
0 all done, 1 some messages failed or the run was cut short (a lost connection, a full disk
or another local I/O error; the rest is done; rerun), 2 usage, login or TLS failure, or an
output file owned by another state file (nothing was changed on the server).

Run on its own with ``python -m dsnparse.imap_cli [options]`` (same options).

The password comes from ``DSNPARSE_IMAP_PASSWORD`` or an interactive prompt, never from
the command line or the config file.  With ``--auth xoauth2|oauthbearer`` an OAuth2 access
token is used instead: the output of ``--oauth2-token-command CMD`` (run at every
connection) or ``DSNPARSE_IMAP_TOKEN``.  ``--config FILE`` (TOML if it ends in ``.toml``,
YAML otherwise) may hold any other option, keys spelt like the long options with ``-`` or
``_`` (``processed-folder: Bounces``); command line options win over the file.
"""
from __future__ import annotations

from .cliargs import tcp_port, timeout_seconds

import argparse
import dataclasses
import datetime as _dt
import getpass
import logging
import os
import signal
import sys
import threading
import time

from .errors import DsnparseError

log = logging.getLogger("dsnparse.imap")

# option name → (type, default); the single list for argparse, config files and ImapOptions
_OPTIONS = {
    "host": (str, None), "port": (int, None), "user": (str, None),
    "ca_file": (str, None), "folder": (str, "INBOX"), "since": (str, None),
    "unseen": (bool, False), "limit": (int, None), "batch_size": (int, 50),
    "processed_folder": (str, "Processed"), "other_folder": (str, None),
    "flag_only": (bool, False), "flag": (str, "\\Flagged"), "dry_run": (bool, False),
    "state": (str, None), "output": (str, None), "format": (str, "jsonl"),
    "watch": (bool, False), "idle_timeout": (float, 300.0), "poll_interval": (float, 30.0),
    "timeout": (float, 60.0), "starttls": (bool, False), "insecure_plain": (bool, False),
    "progress": (bool, None), "auth": (str, "login"), "oauth2_token_command": (str, None),
}


def add_output_arguments(p: argparse.ArgumentParser, protocol: str) -> argparse._ArgumentGroup:
    """Add the "output and state" options of a mailbox command (``imap``, ``pop3``) to a
    parser; return their group."""
    g = p.add_argument_group("output and state")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="append records to FILE (default stdout; a file gives exactly once; "
                   "it belongs to one state file, recorded in FILE.owner)")
    g.add_argument("--format", choices=("jsonl", "csv"),
                   help="output format (default: csv for an -o file ending .csv, else jsonl)")
    g.add_argument("--state", metavar="FILE", help="state file (default "
                   f"$XDG_DATA_HOME/dsnparse/{protocol}-state.sqlite3)")
    return g


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``imap`` options to a parser (every default is ``None``: see :func:`settings`)."""
    g = p.add_argument_group("connection")
    g.add_argument("--config", metavar="FILE", help="TOML or YAML file with any option but "
                   "the password")
    g.add_argument("--host", help="IMAP server")
    g.add_argument("--port", type=tcp_port, help="port (default 993 for IMAPS, 143 otherwise)")
    g.add_argument("--user", help="login name (password: $DSNPARSE_IMAP_PASSWORD or prompt)")
    g.add_argument("--ca-file", metavar="PEM", help="trust this CA (private CA, self-signed)")
    g.add_argument("--starttls", action="store_true", default=None,
                   help="plain IMAP upgraded with STARTTLS instead of IMAPS")
    g.add_argument("--insecure-plain", action="store_true", default=None,
                   help="unencrypted IMAP: password and mail in clear text")
    g.add_argument("--timeout", type=timeout_seconds, metavar="S", help="network timeout (default 60)")
    g.add_argument("--auth", choices=("login", "xoauth2", "oauthbearer"),
                   help="login (password, the default), or an OAuth2 access token with the "
                   "SASL mechanism XOAUTH2 (Gmail, Microsoft 365) or OAUTHBEARER (RFC 7628)")
    g.add_argument("--oauth2-token-command", metavar="CMD",
                   help="shell command printing an OAuth2 access token, run at every "
                   "connection (a reconnect gets a fresh token); without it the token is "
                   "read from $DSNPARSE_IMAP_TOKEN")
    g = p.add_argument_group("what to read")
    g.add_argument("--folder", help="folder to read (default INBOX)")
    g.add_argument("--since", metavar="YYYY-MM-DD", help="only mail received since DATE")
    g.add_argument("--unseen", action="store_true", default=None, help="only unseen mail")
    g.add_argument("--limit", type=int, metavar="N", help="process at most N messages a pass")
    g.add_argument("--batch-size", type=int, metavar="N", help="messages per fetch (50)")
    g = p.add_argument_group("filing")
    g.add_argument("--processed-folder", metavar="F",
                   help="move bounces here (default Processed; created if missing)")
    g.add_argument("--flag-only", action="store_true", default=None,
                   help="flag bounces (see --flag) instead of moving them")
    g.add_argument("--flag", metavar="FLAG", help="flag for --flag-only (default \\Flagged)")
    g.add_argument("--other-folder", metavar="F",
                   help="move non-bounces here (default: leave them)")
    g.add_argument("--dry-run", action="store_true", default=None,
                   help="read and report only: change nothing on the server or in the state")
    add_output_arguments(p, "imap")
    g = p.add_argument_group("service")
    g.add_argument("--watch", action="store_true", default=None,
                   help="stay connected (IDLE or polling) and process new mail as it comes")
    g.add_argument("--idle-timeout", type=float, metavar="S", help="re-issue IDLE after S (300)")
    g.add_argument("--poll-interval", type=float, metavar="S",
                   help="poll every S seconds when the server lacks IDLE (30)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more logging (-vv)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``imap`` command to an argparse subparsers object."""
    p = subparsers.add_parser("imap", help="process a bounce mailbox over IMAP",
                              description="Give a verdict for every message of an IMAP "
                              "folder and file the messages away, each exactly once.")
    add_arguments(p)
    from .ledger_cli import add_db_arguments

    add_db_arguments(p, record=True)
    p.set_defaults(func=command_with_ledger)
    return p


def command_with_ledger(args: argparse.Namespace) -> int:
    """``dsnparse imap`` with ``--db``: record each message in the bounce ledger once its
    output record is stored (before it is filed).  Recording is idempotent, so the rare
    second call after a crash in that window adds nothing."""
    if getattr(args, "db", None) is None:
        return command(args)
    from .ledger_cli import open_ledger

    with open_ledger(args) as ledger:
        def on_stored(report, source):
            if report.kind not in ("error", "not_bounce"):
                ledger.record_report(report, source,
                                     original_headers=dict(report.original_headers))
        return command(args, on_stored=on_stored)


class UsageError(Exception):
    pass


def _load_config(path: str, options: dict | None = None, section: str = "imap",
                 secret_env: str = "DSNPARSE_IMAP_PASSWORD") -> dict:
    """Read a config file of ``options`` (default: the ``imap`` ones; a table named
    ``section`` is read when the file has one).  Raises :class:`UsageError`."""
    options = _OPTIONS if options is None else options
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if path.endswith(".toml"):
            try:
                import tomllib  # Python 3.11+
            except ImportError:  # Python 3.10: the same parser, packaged as tomli
                import tomli as tomllib
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            import yaml
            data = yaml.safe_load(raw) or {}
    except Exception as e:              # unreadable or invalid: a usage error
        raise UsageError(f"config file {path}: {e}") from e
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: expected a table of options")
    data = data.get(section, data) if isinstance(data.get(section), dict) else data
    out = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key in ("password", "pass"):
            raise UsageError(f"config file {path}: the password may not be stored there; "
                             f"use {secret_env} or the prompt")
        if key not in options:
            raise UsageError(f"config file {path}: unknown option {k!r}")
        typ = options[key][0]
        if v is not None and not isinstance(v, typ if typ is not float else (int, float)):
            if typ is str and isinstance(v, (_dt.date,)):
                v = v.isoformat()
            else:
                raise UsageError(f"config file {path}: {k} should be a {typ.__name__}")
        out[key] = v
    return out


def settings(args: argparse.Namespace, options: dict | None = None, section: str = "imap",
             secret_env: str = "DSNPARSE_IMAP_PASSWORD") -> dict:
    """Merge command line over config file over defaults (``options``: name → (type,
    default), the ``imap`` ones by default)."""
    options = _OPTIONS if options is None else options
    conf = (_load_config(args.config, options, section, secret_env)
            if getattr(args, "config", None) else {})
    merged = {}
    for key, (_typ, default) in options.items():
        v = getattr(args, key, None)
        merged[key] = v if v is not None else conf.get(key, default)
    if getattr(args, "format", None) is None and conf.get("format") is None and merged["output"]:
        from .output import format_for_path   # -o verdicts.csv without --format: CSV

        if format_for_path(merged["output"]) in ("csv", "jsonl"):
            merged["format"] = format_for_path(merged["output"])
    return merged


def build_options(s: dict, password: str):
    from .sources.imap import ImapOptions
    if not s["host"] or not s["user"]:
        raise UsageError("--host and --user are required (on the command line or in --config)")
    if s["starttls"] and s["insecure_plain"]:
        raise UsageError("--starttls and --insecure-plain exclude each other")
    since = None
    if s["since"]:
        try:
            since = _dt.date.fromisoformat(s["since"])
        except ValueError:
            raise UsageError(f"--since {s['since']!r}: expected YYYY-MM-DD") from None
    try:
        return ImapOptions(
            host=s["host"], user=s["user"], password=password, port=s["port"],
            security="starttls" if s["starttls"] else "plain" if s["insecure_plain"] else "ssl",
            ca_file=s["ca_file"], folder=s["folder"], since=since, unseen=s["unseen"],
            limit=s["limit"], batch_size=s["batch_size"],
            processed_folder=s["processed_folder"], other_folder=s["other_folder"],
            flag_only=s["flag_only"], flag=s["flag"], dry_run=s["dry_run"],
            state_path=s["state"], timeout=s["timeout"], watch=s["watch"],
            idle_timeout=s["idle_timeout"], poll_interval=s["poll_interval"],
            auth=s["auth"], token_command=s["oauth2_token_command"])
    except ValueError as e:
        raise UsageError(str(e)) from None


def _secret(s: dict) -> str:
    """The password (``--auth login``) or the static access token (OAuth2 without a token
    command: ``DSNPARSE_IMAP_TOKEN``); empty when a token command provides it."""
    if s["auth"] == "login":
        if s["oauth2_token_command"]:
            raise UsageError("--oauth2-token-command needs --auth xoauth2 or oauthbearer")
        return _password()
    if s["oauth2_token_command"]:
        return ""
    token = os.environ.get("DSNPARSE_IMAP_TOKEN", "").strip()
    if not token:
        raise UsageError(f"--auth {s['auth']} needs an access token: give "
                         "--oauth2-token-command CMD or set DSNPARSE_IMAP_TOKEN")
    return token


def _password() -> str:
    pw = os.environ.get("DSNPARSE_IMAP_PASSWORD")
    if pw is not None:
        return pw
    if sys.stdin.isatty():
        return getpass.getpass("IMAP password: ")
    raise UsageError("no password: set DSNPARSE_IMAP_PASSWORD (or run on a terminal to be "
                     "asked)")


class _Progress:
    """``\\r done/total  N msg/s`` on stderr, at most ten updates a second."""

    def __init__(self, stream):
        self.stream, self.t0, self.last, self.total = stream, None, 0.0, 0

    def __call__(self, done: int, total: int):
        now = time.monotonic()
        if done == 0:
            self.t0, self.total = now, total
            return
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-6)
        width = 30
        fill = int(width * done / total) if total else width
        self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
                          f"{rate:6.1f} msg/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def command(args: argparse.Namespace, on_stored=None) -> int:
    """Handler of ``dsnparse imap``; returns the exit status (0, 1 or 2)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[
            min(getattr(args, "verbose", 0), 2)], format="dsnparse: %(levelname)s: %(message)s")
    from .sources import imap as imapsource
    try:
        s = settings(args)
        opts = build_options(s, "")
        opts = dataclasses.replace(opts, password=_secret(s))
    except UsageError as e:
        print(f"dsnparse imap: {e}", file=sys.stderr)
        return 2
    return run_mailbox("imap", imapsource.run, opts, s, on_stored)


def run_mailbox(name: str, run, opts, s: dict, on_stored=None, logger=None) -> int:
    """Run a mailbox source (``run``: :func:`dsnparse.sources.imap.run` or
    :func:`dsnparse.sources.pop3.run`) with ``opts`` and the settings ``s``: SIGINT and
    SIGTERM finish the current message, then stop; the summary goes to standard error.

    Returns the exit status: the summary's (0, or 1 when a message failed), 2 for a
    :class:`~dsnparse.errors.DsnparseError` (a refused login, a locked state file, a
    foreign output), 1 for anything else (what was stored is kept).  ``logger``: the
    command's logger (default ``dsnparse.imap``'s)."""
    logger = logger or log
    show = s["progress"] if s["progress"] is not None else sys.stderr.isatty()
    stop = threading.Event()

    def _stop(signum, frame):
        logger.warning("%s: finishing the current message, then exiting",
                       signal.Signals(signum).name)
        stop.set()

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, _stop)
    try:
        summary = run(opts, s["output"], s["format"], on_stored=on_stored,
                      progress=_Progress(sys.stderr) if show else None, stop=stop)
    except DsnparseError as e:
        print(f"dsnparse {name}: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        logger.exception("run failed: %s", e)
        print(f"dsnparse {name}: failed: {e} (what was stored is kept; rerun to finish)",
              file=sys.stderr)
        return 1
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    print(f"dsnparse {name}: {summary.line()}", file=sys.stderr)
    return summary.exit_status


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dsnparse imap", description=register.__doc__)
    add_arguments(p)
    return command(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
