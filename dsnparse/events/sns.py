"""Amazon SNS: message signatures, the signing-certificate cache, subscription confirmation.

Follows the Amazon SNS Developer Guide, "Verifying the signatures of Amazon SNS messages":

* the string to sign is ``Name\\nValue\\n`` for, in this order, ``Message``, ``MessageId``,
  ``Subject`` (only when present), ``Timestamp``, ``TopicArn``, ``Type`` of a
  ``Notification``; ``Message``, ``MessageId``, ``SubscribeURL``, ``Timestamp``, ``Token``,
  ``TopicArn``, ``Type`` of a ``SubscriptionConfirmation`` / ``UnsubscribeConfirmation``;
* ``SignatureVersion`` ``1`` is SHA1withRSA, ``2`` SHA256withRSA (PKCS #1 v1.5);
* the certificate is fetched from ``SigningCertURL`` only when that is
  ``https://sns.<region>.amazonaws.com/….pem`` (``.amazonaws.com.cn`` in China), without
  following redirects, and kept in a :class:`CertificateCache`.
"""
from __future__ import annotations

import base64
import binascii
import re
import threading
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit

from .errors import EventAuthError

_HOST = re.compile(r"sns\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?\Z")
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                      "TopicArn", "Type")
MAX_CERT_BYTES = 64 * 1024
FETCH_TIMEOUT = 10.0


def sns_host_region(url: str, *, what: str = "URL") -> tuple:
    """Check that ``url`` is ``https://sns.<region>.amazonaws.com[.cn]/…`` (no user, no
    port but 443) and return ``(host, region)``.

    Raises:
        EventAuthError: any other URL (plain http, a foreign host, user info…).
    """
    if not isinstance(url, str) or not url or any(c in url for c in "\\\r\n\t @"):
        raise EventAuthError("ses", f"{what} is not an SNS URL")
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        raise EventAuthError("ses", f"{what} is not a URL") from None
    if u.scheme != "https":
        raise EventAuthError("ses", f"{what} is not https: {url[:100]!r}")
    host = (u.hostname or "").lower()
    m = _HOST.match(host)
    if not m or u.username or u.password or port not in (None, 443) or u.fragment:
        raise EventAuthError("ses", f"{what} is not on sns.<region>.amazonaws.com: "
                                    f"{url[:100]!r}")
    return host, m.group(1)


def check_cert_url(url: str) -> None:
    """Raise :class:`EventAuthError` unless ``url`` is an SNS signing certificate URL
    (``https://sns.<region>.amazonaws.com/<name>.pem``, no query)."""
    sns_host_region(url, what="SigningCertURL")
    u = urlsplit(url)
    if not u.path.endswith(".pem") or u.query:
        raise EventAuthError("ses", f"SigningCertURL is not a .pem file: {url[:100]!r}")


def _https_get(url: str, limit: int) -> bytes:
    """GET ``url`` over verified TLS without following redirects; at most ``limit`` bytes."""
    import ssl
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):  # a redirect could lead off sns.*.amazonaws.com
            return None

    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    with opener.open(url, timeout=FETCH_TIMEOUT) as resp:
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        data = resp.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"more than {limit} bytes")
    return data


class CertificateCache:
    """SNS signing certificates by URL (thread-safe).

    Args:
        fetch: ``fetch(url) -> bytes`` (PEM); called only for a URL that passed
            :func:`check_cert_url`.  Default: an HTTPS GET with certificate verification,
            no redirects, at most 64 KiB, 10 s timeout.
    """

    def __init__(self, fetch: Optional[Callable[[str], bytes]] = None):
        self._fetch = fetch or (lambda url: _https_get(url, MAX_CERT_BYTES))
        self._certs: dict = {}
        self._lock = threading.Lock()

    def add(self, url: str, pem: bytes) -> None:
        """Put the PEM certificate of ``url`` in the cache (tests; a pinned certificate).

        Raises:
            EventAuthError: ``url`` is not an SNS certificate URL.
            ValueError: ``pem`` is not a PEM certificate.
        """
        from cryptography import x509

        check_cert_url(url)
        cert = x509.load_pem_x509_certificate(pem)
        with self._lock:
            self._certs[url] = cert

    def get(self, url: str):
        """The certificate (``cryptography.x509.Certificate``) of ``url``, fetched once.

        Raises:
            EventAuthError: not an SNS certificate URL, or it cannot be fetched or read.
        """
        check_cert_url(url)
        with self._lock:
            cert = self._certs.get(url)
        if cert is not None:
            return cert
        from cryptography import x509

        try:
            pem = self._fetch(url)
            cert = x509.load_pem_x509_certificate(pem)
        except (OSError, ValueError) as e:
            raise EventAuthError("ses", f"cannot get the signing certificate "
                                        f"{url[:100]!r}: {e}") from None
        with self._lock:
            self._certs[url] = cert
        return cert


def string_to_sign(message: Mapping[str, str]) -> bytes:
    """The canonical string an SNS message is signed over (see the module docstring).

    Raises:
        EventAuthError: a field it needs is missing or not a string.
    """
    typ = message.get("Type")
    keys = _NOTIFICATION_KEYS if typ == "Notification" else _SUBSCRIPTION_KEYS
    out = []
    for k in keys:
        v = message.get(k)
        if v is None and k == "Subject":
            continue
        if not isinstance(v, str):
            raise EventAuthError("ses", f"SNS message without a {k} string")
        out.append(f"{k}\n{v}\n")
    return "".join(out).encode("utf-8")


def verify_sns(message: Mapping, cache: CertificateCache, *, topics: tuple = (),
               now: Optional[float] = None) -> None:
    """Verify the signature of an SNS message (``dict`` decoded from the request body).

    Args:
        message: the SNS message.
        cache: where signing certificates are kept (and fetched from SNS when missing).
        topics: allowed ``TopicArn`` values (empty: any).
        now: the time (epoch seconds) the certificate must be valid at; default now.

    Raises:
        EventAuthError: not an SNS message, an unknown ``SignatureVersion``, a certificate
            URL that is not SNS's, an expired certificate, a bad signature, or a topic not
            in ``topics``.
    """
    import time as _time
    from datetime import datetime, timezone

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if not isinstance(message, Mapping) or message.get("Type") not in (
            "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise EventAuthError("ses", "not an SNS message (no known Type): unsigned")
    version = str(message.get("SignatureVersion"))
    if version == "1":
        algo = hashes.SHA1()
    elif version == "2":
        algo = hashes.SHA256()
    else:
        raise EventAuthError("ses", f"unknown SignatureVersion {version[:10]!r} "
                                    f"(expected 1 or 2)")
    try:
        sig = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise EventAuthError("ses", "Signature is not base64") from None
    if not sig:
        raise EventAuthError("ses", "no Signature")
    to_sign = string_to_sign(message)
    cert = cache.get(str(message.get("SigningCertURL") or message.get("SigningCertUrl") or ""))
    t = datetime.fromtimestamp(_time.time() if now is None else now, timezone.utc)
    try:
        before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42
        before = cert.not_valid_before.replace(tzinfo=timezone.utc)
        after = cert.not_valid_after.replace(tzinfo=timezone.utc)
    if not before <= t <= after:
        raise EventAuthError("ses", "the signing certificate is not valid now")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise EventAuthError("ses", "the signing certificate has no RSA key")
    try:
        key.verify(sig, to_sign, padding.PKCS1v15(), algo)
    except InvalidSignature:
        raise EventAuthError("ses", "bad SNS signature") from None
    if topics and message.get("TopicArn") not in topics:
        raise EventAuthError("ses", f"topic {str(message.get('TopicArn'))[:120]!r} is not "
                                    f"in DSNPARSE_SNS_TOPIC_ARNS")


def confirm_subscription(payload: Mapping, secrets, *,
                         fetch: Optional[Callable[[str], bytes]] = None) -> Optional[str]:
    """Answer an SNS ``SubscriptionConfirmation`` by fetching its ``SubscribeURL``, when the
    topic is allowed.  Call it after :func:`dsnparse.events.verify_request` accepted the
    request.

    Args:
        payload: the SNS message (``dict``).
        secrets: :class:`~dsnparse.events.WebhookSecrets`: its ``sns_topic_arns`` allow a
            topic, ``sns_confirm_any_topic`` allows every topic.
        fetch: ``fetch(url) -> bytes`` (default: HTTPS GET, verified, no redirects).

    Returns:
        The ``SubscribeURL`` fetched (``str``), or ``None`` for a message that needs no
        answer (``Notification``, ``UnsubscribeConfirmation``: nothing is re-subscribed).

    Raises:
        EventAuthError: the topic is not allowed, or ``SubscribeURL`` is not
            ``https://sns.<region>.amazonaws.com/…`` of the topic's own region.
        EventFormatError: no ``TopicArn`` or ``SubscribeURL``.
        OSError: the URL could not be fetched (SNS then retries the confirmation).
    """
    from .errors import EventFormatError

    if not isinstance(payload, Mapping) or payload.get("Type") != "SubscriptionConfirmation":
        return None
    topic, url = payload.get("TopicArn"), payload.get("SubscribeURL")
    if not isinstance(topic, str) or not isinstance(url, str):
        raise EventFormatError("ses", "SubscriptionConfirmation without TopicArn or "
                                      "SubscribeURL")
    if topic not in secrets.sns_topic_arns and not secrets.sns_confirm_any_topic:
        raise EventAuthError("ses", f"not confirming the subscription to {topic[:120]!r}: "
                                    f"not in DSNPARSE_SNS_TOPIC_ARNS (and "
                                    f"DSNPARSE_SNS_CONFIRM_ANY_TOPIC is not set)")
    _, region = sns_host_region(url, what="SubscribeURL")
    parts = topic.split(":")
    if len(parts) < 6 or parts[3] != region:
        raise EventAuthError("ses", f"SubscribeURL region {region} is not the topic's")
    (fetch or (lambda u: _https_get(u, 1024 * 1024)))(url)
    return url
