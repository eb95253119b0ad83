"""Values of the ledger: addresses, times, campaign ids, event kinds and dedup keys.

Backend-neutral helpers of :mod:`dsnparse.ledger` (re-exported there).
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence, Union

Timestamp = Union[datetime, int, float, str, None]


_SIMPLE_ADDR = re.compile(r"^[^\s<>()\[\],;:\"@\\]+@[^\s<>()\[\],;:\"@\\]+$")


def _flanker(value: str) -> Optional[str]:
    """Parse an odd address with flanker (imported on first use); ``None`` when it can't."""
    from ..addresses import flanker_address

    addr = flanker_address(value)
    if addr:
        return addr
    # (in linear time: the pattern <([^<>\s]+@[^<>\s]+)> rescans from every "@" after a "<";
    # "a<" and 400,000 "@" kept a --db run busy for half an hour)
    from ..rfc3464 import bracketed_address

    return bracketed_address(value)


# RFC 5321 §4.1.2: A-d-l = At-domain *( "," At-domain ), then ":" and the mailbox.  Every
# class excludes the separators that follow it, so the match is linear.
_ROUTE = re.compile(r"@[^\s,:<>@]+(?:[ \t]*,[ \t]*@[^\s,:<>@]+)*[ \t]*:")


def split_route(value: str) -> tuple[Optional[str], str]:
    """Split an RFC 5321 §4.1.2 source route off an address.

    ``"@relay.example,@hop.example:bob@example.org"`` (also inside ``<…>``) gives
    ``("@relay.example,@hop.example", "bob@example.org")``; RFC 3464 §2.3.2 lets a
    ``Final-Recipient`` carry such a path.  Anything else gives ``(None, value)``.

    Args:
        value: an address (``str``), already without an ``rfc822;`` type.

    Returns:
        ``(route or None, the rest)``, both ``str``; the route without spaces or the ``:``.
    """
    s = value.strip()
    inner = s[1:-1].strip() if s.startswith("<") and s.endswith(">") else s
    if not inner.startswith("@"):
        return None, value
    m = _ROUTE.match(inner)
    if m is None:
        return None, value
    route = "".join(inner[:m.end() - 1].split())
    return route, inner[m.end():].strip()


def normalize_address(value: Optional[str]) -> Optional[str]:
    """Normalise an email address for the ledger: domain lower-cased, local part kept.

    Accepts ``bob@Example.COM``, ``<bob@example.com>``, ``rfc822; bob@example.com``, a
    source-routed ``@relay.example:bob@example.com`` (the mailbox is kept, the route
    dropped: :func:`split_route`) and (through flanker, imported lazily)
    ``Bob <bob@example.com>``.

    Args:
        value: the address (``str``) or ``None``.

    Returns:
        ``"local@domain"`` (``str``), or ``None`` when ``value`` holds no address.
    """
    if not value:
        return None
    s = str(value).strip()
    if s[:7].lower() == "rfc822;":
        s = s[7:].strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if s.startswith("@"):
        s = split_route(s)[1]
    if not _SIMPLE_ADDR.match(s):
        s = _flanker(s) or ""
    local, at, domain = s.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not local or not domain:
        return None
    return f"{local}@{domain}"


def to_epoch(value: Timestamp) -> Optional[float]:
    """Convert a time to epoch seconds (``float``).

    Args:
        value: ``datetime`` (naive means UTC), epoch seconds (``int``/``float``), an RFC 5322
            date (``"Tue, 7 May 2024 10:00:00 +0000"``) or ISO 8601 string, or ``None``.

    Returns:
        Epoch seconds, or ``None`` for ``None``.

    Raises:
        ValueError: a string that is no date, or a value of another type.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        from email.utils import parsedate_to_datetime
        s = value.strip()
        try:
            return to_epoch(parsedate_to_datetime(s))
        except (TypeError, ValueError, IndexError):
            pass
        try:
            return to_epoch(datetime.fromisoformat(s.replace("Z", "+00:00")))
        except ValueError:
            raise ValueError(f"not a date: {value!r}") from None
    raise ValueError(f"not a time: {value!r}")


def _soft_epoch(*values: Any) -> Optional[float]:
    for v in values:
        try:
            t = to_epoch(v)
        except ValueError:
            continue
        if t is not None:
            return t
    return None


def _clean_mid(mid: Optional[str]) -> Optional[str]:
    if not mid:
        return None
    s = str(mid).strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    return s or None


def campaign_from_headers(headers: Optional[Mapping[str, Any]],
                          names: Sequence[str]) -> Optional[str]:
    """Return the campaign/list id from the returned original's header fields.

    Args:
        headers: header name → value (``str``; a list takes its first item), any case;
            ``None`` gives ``None``.  An ``email.message.Message`` works too.
        names: header names to try, in order (the policy's ``ledger.campaign_headers``).

    Returns:
        The first non-empty value (``str``); for a value with an ``<id>`` part (List-Id,
        RFC 2919) the id inside the brackets.  ``None`` when no header is present.
    """
    if not headers:
        return None
    lower: dict[str, Any] = {}
    for k, v in headers.items():
        lower.setdefault(str(k).lower(), v)
    for name in names:
        v = lower.get(name.lower())
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is None:
            continue
        s = " ".join(str(v).split())
        m = re.search(r"<([^<>]+)>", s)
        if m:
            s = m.group(1).strip()
        if s:
            return s
    return None


def _event_kind(kind: Optional[str], action: Optional[str]) -> Optional[str]:
    """Map a record's report kind and verdict action to a ledger event kind (or ``None``)."""
    if kind in ("complaint", "auto_reply"):
        return kind
    if kind not in ("bounce", "delay", "delivered"):
        return None                      # not_bounce, error: nothing to record
    a = (action or "").lower()
    if a == "failed":
        return "bounce"
    if a == "delayed":
        return "delay"
    if a in ("delivered", "relayed", "expanded"):
        return "delivered"
    return kind


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def event_key(message_key: str, address: str) -> str:
    """Return the deduplication key of one event (``str``, 32 hex digits).

    Args:
        message_key: identifies the bounce message (``"mid:<Message-ID>"`` or ``"sha:<hex>"``).
        address: the normalised recipient.
    """
    return hashlib.sha256(f"{message_key}\n{address}".encode("utf-8")).hexdigest()[:32]
