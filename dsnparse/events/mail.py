"""A provider's event that arrives as an email: Amazon SES notifications delivered by an
Amazon SNS subscription of protocol ``email`` (the body is the SES event's JSON text,
followed by SNS's unsubscribe footer) or ``email-json`` (the body is the SNS message as
JSON).  Amazon SNS Developer Guide, "Email notifications"; Amazon SES Developer Guide,
"Notification contents".

The mail path asks :func:`report_from_body` only for a message no rule pack recognised, and
only when its text starts with ``{``: ordinary mail never pays for it.  The body is read by
:func:`dsnparse.events.parse_event` (provider ``ses``), so the verdicts are the webhook's.
"""
from __future__ import annotations

import json
import re
from typing import Optional

from .errors import EventFormatError
from .model import EventReport
from .parse import parse_event

MAX_JSON = 1_000_000
"""Characters of a body read as JSON at most (an SES notification is a few KB; one with 50
recipients and the original's headers stays far below)."""
_SHAPE = re.compile(r'"(?:notificationType|eventType|Type)"\s*:')


def looks_like_json(text: str) -> bool:
    """``True`` when ``text`` (a message's report text) starts with a JSON object."""
    return text[:64].lstrip()[:1] == "{"


def report_from_body(text: str, options=None) -> Optional[EventReport]:
    """The SES event a message's body holds, or ``None``.

    Args:
        text: the message's decoded text (``str``); the JSON value at its start is read
            (:meth:`json.JSONDecoder.raw_decode`), and what follows it (SNS's footer) is
            ignored.
        options: :class:`dsnparse.options.Options` for the verdicts (rule packs, budget).

    Returns:
        One :class:`~dsnparse.events.model.EventReport` (kind ``bounce``, ``delay``,
        ``delivered`` or ``complaint``), or ``None`` when the body is not JSON, not an SES
        notification or SNS message, or holds no bounce, delay, delivery or complaint.

    Raises:
        MessageTimeout: deciding the verdicts took longer than the message's budget.
    """
    s = text.lstrip()
    if not s.startswith("{") or not _SHAPE.search(s, 0, 4000):
        return None
    try:
        # strict=False: a long line folded by a mail system leaves a line break inside a
        # string (RFC 5322 §2.1.1 limits lines to 998 characters; SNS writes one line)
        payload, _ = json.JSONDecoder(strict=False).raw_decode(s[:MAX_JSON])
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    try:
        reports = parse_event("ses", payload, options=options)
    except EventFormatError:
        return None
    reports = [r for r in reports if r.kind != "not_bounce" and r.verdicts]
    return reports[0] if len(reports) == 1 else None
