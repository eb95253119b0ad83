"""Email service providers' bounce events (webhooks) as the same verdicts as bounce mail.

Public API::

    parse_event(provider, payload, headers=None) -> list[EventReport]
    verify_request(provider, headers, body, secrets, *, now=None) -> None   # EventAuthError
    WebhookSecrets.load(path=None, environ=None)                           # the secrets
    confirm_subscription(payload, secrets) -> str | None   # SNS SubscriptionConfirmation

Providers: ``ses`` (Amazon SES through SNS), ``sendgrid``, ``mailgun``, ``postmark``,
``sparkpost``.  Event formats are data (``providers/<name>.yaml``, see
:mod:`dsnparse.events.mapping`); the SMTP fields of an event go through the mail path's
rules (:func:`dsnparse.verdict.verdict_from_fields`).  Nothing on the mail path imports
this package.
"""
from .errors import EventAuthError, EventFormatError
from .mapping import PROVIDERS
from .model import EVENT_FIELDS, EVENT_RECORD_FIELDS, EventReport
from .parse import parse_event
from .secrets import WebhookSecrets
from .sns import CertificateCache, confirm_subscription
from .verify import verify_request

__all__ = ["parse_event", "verify_request", "confirm_subscription", "WebhookSecrets",
           "CertificateCache", "EventReport", "EventFormatError", "EventAuthError",
           "PROVIDERS", "EVENT_FIELDS", "EVENT_RECORD_FIELDS"]
