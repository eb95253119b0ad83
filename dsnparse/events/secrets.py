"""Where the webhook secrets come from: :class:`WebhookSecrets`.

Environment variables (each overrides the same key of the secrets file):

=================================  ===================================================
``DSNPARSE_SNS_TOPIC_ARNS``        SNS topic ARNs allowed (comma or space separated):
                                   notifications of other topics are refused, and only
                                   these topics' subscriptions are confirmed.
``DSNPARSE_SNS_CONFIRM_ANY_TOPIC`` ``1`` to confirm subscriptions of any topic (explicit)
``DSNPARSE_SENDGRID_PUBLIC_KEY``   the Signed Event Webhook's verification key (base64
                                   DER, as SendGrid shows it; PEM also read)
``DSNPARSE_MAILGUN_SIGNING_KEY``   Mailgun's HTTP webhook signing key
``DSNPARSE_MAILGUN_MAX_AGE``       seconds a Mailgun signature timestamp may be off
                                   (default 300)
``DSNPARSE_POSTMARK_BASIC_AUTH``   ``user:password`` put in the Postmark webhook URL
``DSNPARSE_POSTMARK_TOKEN``        a shared token Postmark sends as ``X-Webhook-Token``
``DSNPARSE_SPARKPOST_BASIC_AUTH``  ``user:password`` of the SparkPost webhook's basic auth
``DSNPARSE_SPARKPOST_TOKEN``       a shared token SparkPost sends as ``X-Webhook-Token``
=================================  ===================================================

The secrets file (``--webhook-secrets FILE`` of ``dsnparse serve``) is a YAML (or JSON)
mapping of the same names in lower case without ``DSNPARSE_`` (``sendgrid_public_key:
MFkw…``).  Verification can be turned off only by the ``insecure_unsigned`` argument (the
command's ``--insecure-unsigned-webhooks``), never by a variable or the file.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional, Union

log = logging.getLogger("dsnparse.events")

ENV_PREFIX = "DSNPARSE_"
TOKEN_HEADER = "X-Webhook-Token"
"""The header a shared webhook token is sent in (Postmark, SparkPost custom headers)."""


class SeenTokens:
    """Mailgun tokens already accepted, each kept until its timestamp leaves the replay
    window (thread-safe; per process: with several server processes a replay reaching
    another process inside the window is still not counted twice, as the ledger keeps one
    event per event id)."""

    def __init__(self, limit: int = 200_000):
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def add(self, token: str, expires: float, now: float) -> bool:
        """Remember ``token`` until ``expires`` (epoch seconds); ``False`` if it was seen."""
        with self._lock:
            if token in self._seen and self._seen[token] >= now:
                return False
            if len(self._seen) >= self.limit:
                self._seen = {t: e for t, e in self._seen.items() if e >= now}
                if len(self._seen) >= self.limit:  # a flood inside the window: oldest go
                    for t in sorted(self._seen, key=self._seen.get)[: self.limit // 10]:
                        del self._seen[t]
            self._seen[token] = expires
            return True


def _split(v: Any) -> tuple:
    if v is None:
        return ()
    if isinstance(v, (list, tuple)):
        return tuple(str(x).strip() for x in v if str(x).strip())
    return tuple(x for x in str(v).replace(",", " ").split() if x)


def _flag(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    return str(v).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WebhookSecrets:
    """The secrets and settings that authenticate webhook requests
    (:func:`dsnparse.events.verify_request`).

    Attributes (secrets are ``str`` or ``None``; see the module docstring for the names):
        sns_topic_arns: ``tuple`` of allowed topic ARNs (empty: any topic's signed
            notification is read, no subscription is confirmed unless
            ``sns_confirm_any_topic``).
        sns_confirm_any_topic: confirm every SNS subscription (``bool``).
        sendgrid_public_key, mailgun_signing_key: as named.
        mailgun_max_age: replay window of Mailgun signatures, seconds (``float``).
        postmark_basic_auth, sparkpost_basic_auth: ``"user:password"``.
        postmark_token, sparkpost_token: shared token sent in :data:`TOKEN_HEADER`.
        insecure_unsigned: accept every webhook request unchecked (``bool``; only from
            ``--insecure-unsigned-webhooks``: tests and trusted proxies); a warning is
            logged when such secrets are made.
        sns_certificates: the SNS signing-certificate cache
            (:class:`dsnparse.events.CertificateCache`; tests pre-load it).
        mailgun_seen: Mailgun tokens seen (:class:`SeenTokens`).
    """

    sns_topic_arns: tuple = ()
    sns_confirm_any_topic: bool = False
    sendgrid_public_key: Optional[str] = None
    mailgun_signing_key: Optional[str] = None
    mailgun_max_age: float = 300.0
    postmark_basic_auth: Optional[str] = None
    postmark_token: Optional[str] = None
    sparkpost_basic_auth: Optional[str] = None
    sparkpost_token: Optional[str] = None
    insecure_unsigned: bool = False
    sns_certificates: Any = field(default=None, compare=False, repr=False)
    mailgun_seen: SeenTokens = field(default_factory=SeenTokens, compare=False, repr=False)

    def __post_init__(self):
        if self.sns_certificates is None:
            from .sns import CertificateCache

            object.__setattr__(self, "sns_certificates", CertificateCache())
        object.__setattr__(self, "sns_topic_arns", _split(self.sns_topic_arns))
        if self.insecure_unsigned:
            log.warning("webhook authentication is OFF (--insecure-unsigned-webhooks): any "
                        "request to /v1/events/* is believed; use only for tests or behind "
                        "a proxy that authenticates")

    def __repr__(self) -> str:  # never print a secret
        have = [f.name for f in fields(self) if f.name.endswith(("_key", "_auth", "_token"))
                and getattr(self, f.name)]
        return (f"WebhookSecrets(configured={have}, sns_topic_arns={list(self.sns_topic_arns)}"
                f", insecure_unsigned={self.insecure_unsigned})")

    @classmethod
    def load(cls, path: Union[str, os.PathLike, None] = None,
             environ: Optional[Mapping[str, str]] = None, *,
             insecure_unsigned: bool = False) -> "WebhookSecrets":
        """Secrets from the file ``path`` (if given), then the environment (which wins).

        Args:
            path: a YAML/JSON mapping file (see the module docstring), or ``None``.
            environ: the variables (default ``os.environ``).
            insecure_unsigned: see the class docstring.

        Raises:
            ValueError: the file cannot be read, is not a mapping, names an unknown key or
                gives a value of the wrong type; the message names the file and key.
        """
        env = os.environ if environ is None else environ
        names = [f.name for f in fields(cls)
                 if f.name not in ("insecure_unsigned", "sns_certificates", "mailgun_seen")]
        values: dict = {}
        if path is not None:
            import yaml

            try:
                with open(path, encoding="utf-8") as fh:
                    data = yaml.safe_load(fh)
            except OSError as e:
                raise ValueError(f"{path}: cannot read the webhook secrets "
                                 f"({e.strerror or e})") from None
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not YAML or JSON ({e})") from None
            try:
                if os.name == "posix" and os.stat(path).st_mode & 0o077:
                    log.warning("%s: the webhook secrets file can be read by other users "
                                "(chmod 600 it)", path)
            except OSError:
                pass
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a mapping of secret names to values")
            bad = set(data) - set(names)
            if bad:
                raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(map(str, bad)))} "
                                 f"(known: {', '.join(names)})")
            values.update(data)
        for n in names:
            v = env.get(ENV_PREFIX + n.upper())
            if v is not None and v.strip():
                values[n] = v.strip()
        if "sns_confirm_any_topic" in values:
            values["sns_confirm_any_topic"] = _flag(values["sns_confirm_any_topic"])
        if "mailgun_max_age" in values:
            try:
                values["mailgun_max_age"] = float(values["mailgun_max_age"])
            except (TypeError, ValueError):
                raise ValueError(f"mailgun_max_age: not a number of seconds: "
                                 f"{values['mailgun_max_age']!r}") from None
        for n in names:
            if n not in ("sns_topic_arns", "sns_confirm_any_topic", "mailgun_max_age") and \
                    n in values and values[n] is not None:
                values[n] = str(values[n]).strip() or None
        return cls(insecure_unsigned=insecure_unsigned, **values)


def now_or(now: Optional[float]) -> float:
    return time.time() if now is None else float(now)
