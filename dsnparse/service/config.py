"""Settings of one ``dsnparse serve`` run, passed to every Uvicorn worker process.

Uvicorn starts its worker processes from an import string, so the settings travel in one
environment variable (:data:`ENV_VAR`, JSON) from the command to
:func:`dsnparse.service.app.app_from_env`.  The bearer token is not put there: each process
reads it again from ``DSNPARSE_API_TOKEN`` or the token file.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Optional

ENV_VAR = "DSNPARSE_SERVE_CONFIG"
"""Environment variable holding the JSON settings for the worker processes."""

DEFAULT_MAX_BODY = 10 * 1024 * 1024
"""Default ``--max-body``: 10 MiB (bytes), the size a bounce with its returned original
rarely exceeds; Amazon SES caps a message at 10 MB too."""


@dataclass(frozen=True)
class ServeConfig:
    """What a server process needs.

    Attributes:
        db: ledger file (``str``) where messages and events are recorded and suppressions
            read; ``None``: nothing is recorded and ``/v1/suppressions`` answers 503.
        policy: suppression policy YAML (``str``) merged over the shipped one, or ``None``.
        max_body: largest request body accepted, in bytes (``int``); larger gets 413.
        body_timeout: seconds a request body may take to arrive (``float``; ``0``: no
            limit); a stalled client gets 408 instead of holding the request forever.
        ledger_timeout: seconds a ledger call waits for another writer's lock (``float``)
            before the request gets 503 (nothing recorded; the client retries).
        token_file: file holding the bearer token (``str``) or ``None``; the token may
            instead come from ``DSNPARSE_API_TOKEN`` (see :mod:`dsnparse.service.auth`).
        insecure_unsigned_webhooks: accept webhook events without checking their
            provider's signature or credentials (``bool``; tests and trusted proxies only).
        webhook_secrets: file of webhook secrets (``str``) for
            :class:`dsnparse.events.WebhookSecrets`, or ``None`` (environment only).
        message_timeout: seconds the parser may spend on one message (``float``;
            ``0``: no limit), as ``dsnparse parse --message-timeout``.
        rules: extra rule-pack directories (``tuple`` of ``str``), as ``--rules``.
        sns_certificates: pinned SNS signing certificates, ``((SigningCertURL, PEM file),
            …)``: requests naming such a URL are checked against that certificate, never
            fetched (``--sns-certificate URL=FILE``; air-gapped servers, tests).
        multiprocess_dir: directory of prometheus-client's multiprocess mode (``str``), set
            when ``--workers`` is more than 1 so that ``/metrics`` adds up every worker.
    """

    db: Optional[str] = None
    policy: Optional[str] = None
    max_body: int = DEFAULT_MAX_BODY
    body_timeout: float = 30.0
    ledger_timeout: float = 30.0
    token_file: Optional[str] = None
    insecure_unsigned_webhooks: bool = False
    webhook_secrets: Optional[str] = None
    message_timeout: float = 5.0
    rules: tuple = ()
    sns_certificates: tuple = ()
    multiprocess_dir: Optional[str] = None

    def to_json(self) -> str:
        """The settings as one JSON text (``str``)."""
        d = asdict(self)
        d["rules"] = list(self.rules)
        d["sns_certificates"] = [list(p) for p in self.sns_certificates]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "ServeConfig":
        """Read settings written by :meth:`to_json`.

        Raises:
            ValueError: the text is not JSON of an object, or names an unknown setting.
        """
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"{ENV_VAR}: not a JSON object")
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"{ENV_VAR}: unknown setting(s): {', '.join(sorted(bad))}")
        if "rules" in d:
            d["rules"] = tuple(d["rules"] or ())
        if "sns_certificates" in d:
            d["sns_certificates"] = tuple(tuple(p) for p in d["sns_certificates"] or ())
        return cls(**d)

    @classmethod
    def from_env(cls) -> "ServeConfig":
        """Settings from :data:`ENV_VAR` (defaults when it is not set)."""
        text = os.environ.get(ENV_VAR)
        return cls.from_json(text) if text else cls()
