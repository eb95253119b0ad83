"""The ``dsnparse serve`` command: run the HTTP service under Uvicorn.

    dsnparse serve [--host 127.0.0.1] [--port 8000] [--db FILE] [--policy FILE]
                   [--max-body BYTES] [--workers N] [--token-file FILE]
                   [--webhook-secrets FILE] [--insecure-unsigned-webhooks] …

Exit status: on SIGTERM the requests in flight are finished and the ledger closed, then the
process ends by that signal (Uvicorn re-raises it: 143 in a shell); SIGINT the same, then exit 0;
2 a usage error, or a ledger, policy, rule pack, token file or secrets file that cannot be
used (checked before the server starts); 1 the server could not start (e.g. the port is
taken).
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from ..errors import DsnparseError
from .config import DEFAULT_MAX_BODY, ENV_VAR, ServeConfig

log = logging.getLogger("dsnparse.service")


from ..cliargs import byte_count as _bytes  # noqa: E402


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {n}")
    return n


def _pin(text: str) -> tuple:
    url, eq, path = text.partition("=")
    if not eq or not url.startswith("https://") or not path:
        raise argparse.ArgumentTypeError(f"expected https://sns.REGION.amazonaws.com/….pem="
                                         f"FILE, not {text!r}")
    return (url, path)


def register(subparsers: Any) -> None:
    """Add the ``serve`` command to an argparse subparsers object (sets ``func``)."""
    from ..cliargs import positive_int as _positive_int, seconds as _seconds

    p = subparsers.add_parser(
        "serve", help="HTTP service: parse bounces and ESP webhook events, ask the ledger",
        description="Serve the parser and the bounce ledger over HTTP: POST /v1/messages "
                    "(a raw bounce), POST /v1/events/{ses,sendgrid,mailgun,postmark,"
                    "sparkpost} (webhooks), GET/DELETE /v1/suppressions/ADDRESS, GET "
                    "/healthz, /metrics, /openapi.json.  The bearer token "
                    "($DSNPARSE_API_TOKEN or --token-file) protects /v1/messages and "
                    "/v1/suppressions; webhooks use their provider's signature.",
        epilog="Exit status: SIGTERM ends it by that signal (143) after the requests in "
               "flight, SIGINT 0; 1 the server could not start (port in use); 2 bad "
               "options, ledger, policy, rules, token or secrets.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; use 0.0.0.0 or :: only "
                        "behind a firewall or a reverse proxy, with a token)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    p.add_argument("--db", metavar="FILE|URL",
                   help="record every bounce and event in this ledger (an SQLite file or a "
                        "postgresql:// URL) and "
                        "answer /v1/suppressions from it; without it nothing is recorded")
    p.add_argument("--policy", metavar="FILE",
                   help="suppression policy YAML merged over the shipped defaults "
                        "(default $DSNPARSE_POLICY)")
    p.add_argument("--max-body", metavar="BYTES", type=_bytes, default=DEFAULT_MAX_BODY,
                   help=f"largest request body; larger gets 413 (default {DEFAULT_MAX_BODY}"
                        f", 10 MiB)")
    p.add_argument("--body-timeout", metavar="SECONDS", type=_seconds, default=30.0,
                   help="time a request body may take to arrive; a stalled client gets 408 "
                        "(default 30; 0: no limit)")
    p.add_argument("--ledger-timeout", metavar="SECONDS", type=_seconds, default=30.0,
                   help="time a request waits for another writer's lock on the ledger before "
                        "it gets 503, nothing recorded (default 30)")
    p.add_argument("--workers", metavar="N", type=_positive_int, default=1,
                   help="server processes (default 1); they share the ledger file")
    p.add_argument("--token-file", metavar="FILE",
                   help="file whose first line is the bearer token (used when "
                        "$DSNPARSE_API_TOKEN is unset)")
    p.add_argument("--webhook-secrets", metavar="FILE",
                   help="file of the providers' webhook secrets (see README, 'Email service "
                        "providers'); environment variables are read too")
    p.add_argument("--sns-certificate", metavar="URL=FILE", action="append", default=[],
                   type=_pin,
                   help="pin the SNS signing certificate of SigningCertURL URL to the PEM "
                        "FILE: never fetched (repeatable; for servers without access to "
                        "sns.<region>.amazonaws.com)")
    p.add_argument("--insecure-unsigned-webhooks", action="store_true",
                   help="accept webhook events without checking their signature or "
                        "credentials (tests, or a trusted proxy that checked them); logs a "
                        "warning at start")
    p.add_argument("--message-timeout", metavar="SECONDS", type=_seconds, default=5.0,
                   help="time budget per message (default 5; 0: no limit)")
    p.add_argument("--rules", metavar="DIR", action="append", default=[],
                   help="extra rule-pack directory (repeatable; also DSNPARSE_RULES)")
    p.add_argument("--forwarded-allow-ips", metavar="IPS", default=None,
                   help="comma-separated addresses of reverse proxies whose "
                        "X-Forwarded-For/-Proto are trusted (default 127.0.0.1; '*' trusts "
                        "all)")
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    p.set_defaults(func=cmd_serve)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(config: ServeConfig) -> None:
    """Open everything once before starting, so that a bad option is exit 2, not a worker
    that dies at start.  Raises DsnparseError (or subclasses) with the reason."""
    from ..rules import load_packs
    from ..options import Options
    from .app import load_webhook_secrets
    from .auth import load_token

    load_token(config.token_file)
    load_packs(tuple(config.rules) + Options.from_env().rules)
    load_webhook_secrets(config)
    if config.db:
        from ..ledger import Ledger
        from ..policy import load_policy

        Ledger(config.db, policy=load_policy(config.policy)).close()


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM; see the module docstring for exit statuses."""
    try:
        import uvicorn
    except ImportError:
        print("dsnparse: error: dsnparse serve needs the serve extra: "
              "pip install 'dsnparse[serve]'", file=sys.stderr)
        return 2
    config = ServeConfig(
        db=args.db, policy=args.policy, max_body=args.max_body,
        body_timeout=args.body_timeout, ledger_timeout=args.ledger_timeout,
        token_file=args.token_file,
        insecure_unsigned_webhooks=args.insecure_unsigned_webhooks,
        webhook_secrets=args.webhook_secrets, message_timeout=args.message_timeout,
        rules=tuple(args.rules), sns_certificates=tuple(args.sns_certificate))
    try:
        _check(config)
    except DsnparseError as e:
        print(f"dsnparse: error: {e}", file=sys.stderr)
        return 2
    from .auth import load_token

    if config.insecure_unsigned_webhooks:   # (dsnparse.events warns too, per process)
        log.warning("--insecure-unsigned-webhooks: anyone who can reach %s:%s can record "
                    "bounces and complaints in the ledger", args.host, args.port)
    if not _loopback(args.host) and load_token(config.token_file) is None:
        log.warning("listening on %s with no API token: /v1/messages and /v1/suppressions "
                    "are open to anyone who can connect (set DSNPARSE_API_TOKEN or "
                    "--token-file)", args.host)
    mpdir = None
    if args.workers > 1:
        # prometheus-client adds up the worker processes' metrics from files in this dir
        mpdir = tempfile.mkdtemp(prefix="dsnparse-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = mpdir
        config = ServeConfig(**{**config.__dict__, "multiprocess_dir": mpdir})
    os.environ[ENV_VAR] = config.to_json()
    try:
        uvicorn.run("dsnparse.service.app:app_from_env", factory=True, host=args.host,
                    port=args.port, workers=args.workers, access_log=not args.no_access_log,
                    forwarded_allow_ips=args.forwarded_allow_ips, log_level="info",
                    timeout_graceful_shutdown=10)
    except SystemExit as e:  # uvicorn exits 1 or 3 (by version) when it cannot bind or start
        return 0 if e.code in (0, None) else 1
    finally:
        if mpdir:
            shutil.rmtree(mpdir, ignore_errors=True)
    return 0
