"""``verify_request``: is a webhook request really from its provider?

* ``ses``: the SNS message signature (:func:`dsnparse.events.sns.verify_sns`), and the
  topic when ``sns_topic_arns`` is set.
* ``sendgrid``: Signed Event Webhook — ECDSA P-256 with SHA-256 over the
  ``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the raw body, signature
  (base64 DER) in ``X-Twilio-Email-Event-Webhook-Signature``, checked with the
  verification key (base64 DER SubjectPublicKeyInfo) SendGrid shows.
* ``mailgun``: HMAC-SHA256 of ``timestamp`` + ``token`` with the webhook signing key, hex
  in ``signature`` (the body's ``signature`` object); the timestamp must be within
  ``mailgun_max_age`` seconds of now and the token not seen before (replay protection).
* ``postmark``, ``sparkpost``: HTTP basic auth (RFC 7617) or a shared token in
  ``X-Webhook-Token``, compared in constant time.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Mapping, Optional

from .errors import EventAuthError
from .mapping import PROVIDERS
from .secrets import TOKEN_HEADER, WebhookSecrets, now_or

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _header(headers: Optional[Mapping[str, str]], name: str) -> Optional[str]:
    if not headers:
        return None
    low = name.lower()
    for k, v in headers.items():
        if str(k).lower() == low:
            return str(v)
    return None


def verify_request(provider: str, headers: Optional[Mapping[str, str]], body: bytes,
                   secrets: WebhookSecrets, *, now: Optional[float] = None) -> None:
    """Check that a webhook request comes from ``provider``; return ``None`` when it does.

    Args:
        provider: one of :data:`dsnparse.events.PROVIDERS`.
        headers: the request's header fields (any case).
        body: the raw request body (``bytes``, as received: signatures cover it).
        secrets: :class:`~dsnparse.events.WebhookSecrets`.
        now: the time (epoch seconds) for timestamp windows and certificate validity.

    Raises:
        EventAuthError: the request fails its provider's check (see the module
            docstring), or the secret the provider needs is not configured.  Nothing is
            done with a request that fails.
    """
    if provider not in PROVIDERS:
        raise EventAuthError(str(provider)[:40], "unknown provider")
    if secrets.insecure_unsigned:
        return
    if not isinstance(body, (bytes, bytearray)):
        raise EventAuthError(provider, "the body must be the raw bytes received")
    try:
        if provider == "ses":
            _ses(headers, bytes(body), secrets, now)
        elif provider == "sendgrid":
            _sendgrid(headers, bytes(body), secrets)
        elif provider == "mailgun":
            _mailgun(bytes(body), secrets, now_or(now))
        else:
            _shared(provider, headers, secrets)
    except (UnicodeError, ValueError, TypeError, RecursionError) as exc:
        # a field no signature can be over (a lone surrogate "\ud800" in the token, a
        # number where text belongs, nesting past the JSON decoder's depth): not authentic
        if isinstance(exc, EventAuthError):
            raise
        raise EventAuthError(provider, f"malformed signature fields "
                                       f"({type(exc).__name__})") from None


def _ses(headers, body: bytes, secrets: WebhookSecrets, now) -> None:
    from .sns import verify_sns

    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        raise EventAuthError("ses", "the body is not an SNS message (not JSON)") from None
    if not isinstance(message, dict):
        raise EventAuthError("ses", "the body is not an SNS message")
    declared = _header(headers, "x-amz-sns-message-type")
    if declared is not None and declared != message.get("Type"):
        raise EventAuthError("ses", "x-amz-sns-message-type does not match the message Type")
    verify_sns(message, secrets.sns_certificates, topics=secrets.sns_topic_arns, now=now)


def _sendgrid(headers, body: bytes, secrets: WebhookSecrets) -> None:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not secrets.sendgrid_public_key:
        raise EventAuthError("sendgrid", "no verification key configured "
                                         "(DSNPARSE_SENDGRID_PUBLIC_KEY)")
    sig_b64 = _header(headers, SENDGRID_SIGNATURE)
    ts = _header(headers, SENDGRID_TIMESTAMP)
    if not sig_b64 or not ts:
        raise EventAuthError("sendgrid", f"unsigned request (no {SENDGRID_SIGNATURE} or "
                                         f"{SENDGRID_TIMESTAMP})")
    key_text = secrets.sendgrid_public_key.strip()
    try:
        if key_text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(key_text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(key_text, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise EventAuthError("sendgrid", "the configured verification key is not a public "
                                         "key (base64 DER or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise EventAuthError("sendgrid", "the configured verification key is not ECDSA P-256")
    try:
        sig = base64.b64decode(sig_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EventAuthError("sendgrid", "the signature is not base64") from None
    try:
        key.verify(sig, ts.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise EventAuthError("sendgrid", "bad signature") from None


def _mailgun(body: bytes, secrets: WebhookSecrets, now: float) -> None:
    if not secrets.mailgun_signing_key:
        raise EventAuthError("mailgun", "no signing key configured "
                                        "(DSNPARSE_MAILGUN_SIGNING_KEY)")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise EventAuthError("mailgun", "the body is not JSON: no signature") from None
    sig = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(sig, dict):
        raise EventAuthError("mailgun", "no signature object")
    ts, token, digest = sig.get("timestamp"), sig.get("token"), sig.get("signature")
    if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in (ts, token, digest)):
        raise EventAuthError("mailgun", "signature needs timestamp, token and signature")
    ts, token, digest = str(ts), str(token), str(digest)
    expected = hmac.new(secrets.mailgun_signing_key.encode("utf-8"),
                        (ts + token).encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"),
                               digest.strip().lower().encode("utf-8", "replace")):
        raise EventAuthError("mailgun", "bad signature")
    try:
        t = float(ts)
    except ValueError:
        raise EventAuthError("mailgun", "the signature timestamp is not a number") from None
    window = secrets.mailgun_max_age
    if not abs(now - t) <= window:
        raise EventAuthError("mailgun", f"the signature timestamp is more than {window:g} s "
                                        f"from now (a replay, or a clock off)")
    if not secrets.mailgun_seen.add(token, t + window, now):
        raise EventAuthError("mailgun", "this token was already used (a replay)")


def _shared(provider: str, headers, secrets: WebhookSecrets) -> None:
    basic = getattr(secrets, f"{provider}_basic_auth")
    token = getattr(secrets, f"{provider}_token")
    up = provider.upper()
    if not basic and not token:
        raise EventAuthError(provider, f"no credentials configured (DSNPARSE_{up}_BASIC_AUTH "
                                       f"or DSNPARSE_{up}_TOKEN)")
    if basic:
        auth = _header(headers, "authorization") or ""
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                given = b""
            if hmac.compare_digest(given, basic.encode("utf-8")):
                return
    if token:
        given_token = _header(headers, TOKEN_HEADER)
        if given_token is not None and hmac.compare_digest(given_token.strip().encode("utf-8"),
                                                           token.encode("utf-8")):
            return
    raise EventAuthError(provider, "missing or wrong credentials (basic auth or "
                                   f"{TOKEN_HEADER})")
