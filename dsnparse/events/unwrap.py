"""From a provider's webhook body to its events: the parts of each format that are code.

* SES arrives as an Amazon SNS message (``Type: Notification`` whose ``Message`` is the SES
  event as a JSON *string*; ``SubscriptionConfirmation`` / ``UnsubscribeConfirmation``), or
  as the bare SES event (SNS "raw message delivery").  The envelope's ``MessageId``,
  ``TopicArn``, ``Timestamp`` and ``Type`` are given to the mapping as ``_sns``.
* SendGrid posts a JSON array of events.
* Mailgun posts ``{"signature": {…}, "event-data": {…}}``.
* Postmark posts one JSON object.
* SparkPost posts a JSON array of ``{"msys": {"<category>_event": {…}}}``; an item with an
  empty ``msys`` is the ping sent when a webhook is created (no event).
"""
from __future__ import annotations

import json
import re
from typing import Any

from .errors import EventFormatError

SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
"""Values of an SNS message's ``Type`` (Amazon SNS Developer Guide, "HTTP/S: Parse
message")."""
MAX_EVENTS = 10_000
"""Events read from one request at most (SendGrid batches up to a few thousand)."""


def decode(provider: str, payload: Any) -> Any:
    """``payload`` as decoded JSON: ``bytes``/``str`` are read as UTF-8 JSON text, anything
    else is returned as it is.

    Raises:
        EventFormatError: the text is not JSON.
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise EventFormatError(provider, "the body is not UTF-8 JSON text") from None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as e:
            raise EventFormatError(provider, f"the body is not JSON ({e})") from None
    return scrub_surrogates(payload)


_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub_surrogates(obj: Any) -> Any:
    """``obj`` (decoded JSON) with every lone surrogate in its strings (JSON's ``"\\ud800"``
    escape decodes to one; no UTF-8 text can hold it, so nothing could store or print it)
    replaced by U+FFFD, in place (a dict with such a key is replaced by a cleaned copy).
    Linear in the size of ``obj``; no recursion."""
    def clean(v):
        if isinstance(v, str):
            return _SURROGATE.sub("\ufffd", v) if _SURROGATE.search(v) else v
        return v

    if isinstance(obj, str):
        return clean(obj)
    if not isinstance(obj, (dict, list)):
        return obj
    root = [obj]
    stack = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        v = parent[key]
        if isinstance(v, dict):
            if any(isinstance(k, str) and _SURROGATE.search(k) for k in v):
                v = {clean(k): x for k, x in v.items()}
                parent[key] = v
            stack.extend((v, k) for k in v)
        elif isinstance(v, list):
            stack.extend((v, i) for i in range(len(v)))
        elif isinstance(v, str) and _SURROGATE.search(v):
            parent[key] = clean(v)
    return root[0]


def is_sns(payload: Any) -> bool:
    """``True`` for an Amazon SNS message (a ``dict`` with ``Type`` and ``MessageId``)."""
    return isinstance(payload, dict) and payload.get("Type") in SNS_TYPES \
        and "MessageId" in payload


def _ses(payload: Any) -> list:
    if not isinstance(payload, dict):
        raise EventFormatError("ses", f"expected a JSON object (an SNS message or an SES "
                                      f"event), got {type(payload).__name__}")
    if "Type" in payload and "MessageId" in payload:
        typ = payload.get("Type")
        if typ not in SNS_TYPES:
            raise EventFormatError("ses", f"unknown SNS message Type {str(typ)[:60]!r} "
                                          f"(expected one of {', '.join(SNS_TYPES)})")
        sns = {k: payload.get(k) for k in ("MessageId", "TopicArn", "Timestamp", "Type")}
        if typ != "Notification":
            return [{"eventType": typ, "_sns": sns}]
        msg = payload.get("Message")
        if not isinstance(msg, str):
            raise EventFormatError("ses", "SNS Notification without a Message string")
        try:
            event = json.loads(msg)
        except (ValueError, RecursionError):
            raise EventFormatError("ses", "the SNS Message is not JSON (is this topic "
                                          "an SES notification topic?)") from None
        if not isinstance(event, dict):
            raise EventFormatError("ses", "the SNS Message is not a JSON object")
        return [{**event, "_sns": sns}]
    if "eventType" in payload or "notificationType" in payload:
        return [payload]
    raise EventFormatError("ses", "neither an SNS message (Type, MessageId) nor an SES event "
                                  "(eventType or notificationType)")


def _array(provider: str, payload: Any) -> list:
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise EventFormatError(provider, f"expected a JSON array of events, got "
                                         f"{type(payload).__name__}")
    for i, ev in enumerate(payload):
        if not isinstance(ev, dict):
            raise EventFormatError(provider, f"event #{i} is not a JSON object")
    return payload


def _mailgun(payload: Any) -> list:
    if not isinstance(payload, dict) or not isinstance(payload.get("event-data"), dict):
        raise EventFormatError("mailgun", "expected a JSON object with an event-data object "
                                          "(Mailgun's current webhooks; the legacy "
                                          "form-encoded ones are not read)")
    return [payload["event-data"]]


def _postmark(payload: Any) -> list:
    if not isinstance(payload, dict):
        raise EventFormatError("postmark", f"expected a JSON object, got "
                                           f"{type(payload).__name__}")
    return [payload]


def _sparkpost(payload: Any) -> list:
    out = []
    for i, item in enumerate(_array("sparkpost", payload)):
        msys = item.get("msys")
        if not isinstance(msys, dict):
            raise EventFormatError("sparkpost", f"item #{i} has no msys object")
        if not msys:
            continue  # the ping of a new webhook: no event
        if len(msys) != 1:
            raise EventFormatError("sparkpost", f"item #{i}: msys holds {len(msys)} "
                                                f"categories, expected one")
        (category, event), = msys.items()
        if not isinstance(event, dict):
            raise EventFormatError("sparkpost", f"item #{i}: msys.{category} is not an object")
        out.append(event)
    return out


def events_of(provider: str, payload: Any) -> list:
    """The events (``dict``) of one decoded webhook body, in order.

    Raises:
        EventFormatError: the body is not the provider's shape, or holds more than
            :data:`MAX_EVENTS` events.
    """
    if provider == "ses":
        events = _ses(payload)
    elif provider == "mailgun":
        events = _mailgun(payload)
    elif provider == "postmark":
        events = _postmark(payload)
    elif provider == "sparkpost":
        events = _sparkpost(payload)
    else:
        events = _array(provider, payload)
    if len(events) > MAX_EVENTS:
        raise EventFormatError(provider, f"{len(events)} events in one request (at most "
                                         f"{MAX_EVENTS})")
    return events
