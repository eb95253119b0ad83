"""``parse_event``: a provider's webhook event → :class:`~dsnparse.events.model.EventReport`.

Where the event carries SMTP fields (an enhanced status, a diagnostic, a reply code) they
go through the mail path's own steps (:func:`dsnparse.verdict.verdict_from_fields`: status
rules, text rules, ``rules/reasons.yaml``, the code table, :func:`dsnparse.fault.fault_of`),
so the same rejection gives the same verdict whether it came in a DSN or in an event.  The
provider's classification is kept as ``provider_class``; it decides only what the SMTP
fields leave open (the ``classes`` of the provider's YAML mapping).  ``rule`` is
``event/<provider>#<event type>``, followed by ``+<pack>#<text rule>`` when a text rule
matched the diagnostic and ``+class:<provider class>`` when the provider's class decided.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from .. import codes
from ..fault import fault_of
from ..model import Verdict
from .errors import EventFormatError
from .mapping import PROVIDERS, EventType, ProviderMapping, first, load_mapping
from .model import EventReport
from .unwrap import decode, events_of

_REPLY = re.compile(r"[245]\d\d\Z")
_DEFAULT_ACTION = {"bounce": "failed", "delay": "delayed", "delivered": "delivered"}
_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
MAX_RECIPIENTS = 1000
"""Recipients of one event read at most (SES sends at most 50 per message); beyond, the
report is ``truncated`` with the defect ``recipients_truncated``."""
_MAX_TEXT = 10_000  # characters of one field value kept (a diagnostic is one SMTP reply)


def parse_event(provider: str, payload: Any, headers: Optional[Mapping[str, str]] = None, *,
                options=None) -> list:
    """Read one webhook request body of ``provider`` into one report per event.

    Args:
        provider: ``ses``, ``sendgrid``, ``mailgun``, ``postmark`` or ``sparkpost``.
        payload: the decoded JSON body (``dict`` or ``list``), or its raw text (``bytes``
            or ``str``, read as UTF-8 JSON).  SES: an SNS message (``Type: Notification``
            with the SES event as its ``Message`` string, or a subscription message) or a
            bare SES event; SendGrid and SparkPost: arrays of events.
        headers: the request's header fields (not needed to read any documented format;
            accepted so that callers pass what they have).
        options: :class:`dsnparse.options.Options` (extra rule packs, time budget).

    Returns:
        A ``list`` of :class:`~dsnparse.events.model.EventReport`, one per event in the body
        order (a SparkPost ping gives none).  Kinds: ``bounce``, ``delay``, ``delivered``,
        ``complaint``, ``auto_reply`` as for mail; an event type that is no bounce (opens,
        clicks, SNS subscription messages…) gives a report of kind ``not_bounce`` without
        verdicts, which the ledger does not record.

    Raises:
        EventFormatError: (a ``ValueError``) an unknown provider, a body that is not JSON or
            not the provider's shape, an event type the provider does not document, a
            bounce, delay, delivery or complaint without a recipient address.
        MessageTimeout: deciding a verdict took longer than ``options.message_timeout``.
    """
    if provider not in PROVIDERS:
        raise EventFormatError(str(provider)[:40], f"unknown provider (expected one of "
                                                   f"{', '.join(PROVIDERS)})")
    mapping = load_mapping(provider)
    return [_report(mapping, ev, i, options)
            for i, ev in enumerate(events_of(provider, decode(provider, payload)))]


def _text(v: Any) -> Optional[str]:
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return str(v).lower()
    s = str(v).strip()
    return s[:_MAX_TEXT] or None


def event_hash(event: dict) -> str:
    """``sha256:<hex>`` of the event's canonical JSON (keys sorted; the ``_sns`` envelope
    left out): the id of an event that carries none."""
    ev = {k: v for k, v in event.items() if k != "_sns"}
    blob = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _iso(v: Any) -> Optional[str]:
    """The event time as ISO 8601 UTC: epoch seconds (number or digits) converted, a
    date string kept as written when it reads as one, else ``None``."""
    if v is None or isinstance(v, bool):
        return None
    try:
        if isinstance(v, (int, float)) or (isinstance(v, str) and
                                            re.fullmatch(r"\d{9,11}(\.\d+)?", v.strip())):
            t = float(v)
            if not math.isfinite(t) or not 0 <= t < 32503680000:
                return None
            return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None
    if isinstance(v, str):
        from ..ledger import to_epoch

        s = v.strip()[:64]
        m = _ISO.match(s)
        if m:  # 6 fraction digits, a colon in the offset: what Python 3.10 reads
            frac = (m.group(2) or "")[1:7]
            tz = m.group(3) or "Z"
            if len(tz) == 5:
                tz = tz[:3] + ":" + tz[3:]
            s = m.group(1) + ("." + frac.ljust(6, "0") if frac else "") + tz
        try:
            to_epoch(s)
        except ValueError:
            return None
        return s
    return None


_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?\Z")


def _address(v: Any) -> Optional[str]:
    from ..rules import clean_address

    s = _text(v)
    if not s or "@" not in s or len(s) > _MAX_ADDRESS:
        return None
    return clean_address(s) or s


_MAX_ADDRESS = 512  # RFC 5321 §4.5.3.1.3: a path is at most 256 octets; room for a name


def _strip_type(v: Any) -> Optional[str]:
    from ..rfc3464 import strip_type

    s = _text(v)
    return strip_type(s) if s else None


def _kind(p: ProviderMapping, et: EventType, ev: dict) -> str:
    if et.kind:
        return et.kind
    value = _text(first(ev, et.kind_field))
    for k, kind in et.kind_map:
        if k == value:
            return kind
    if et.kind_default:
        return et.kind_default
    where = ".".join(et.kind_field[0]) if et.kind_field else "?"
    raise EventFormatError(p.provider, f"{et.name} event: unknown {where} {value!r} "
                                       f"(expected one of {', '.join(k for k, _ in et.kind_map)})")


def _report(p: ProviderMapping, ev: dict, index: int, options) -> EventReport:
    etype = _text(first(ev, p.fields["type"]))
    if etype is None:
        names = " or ".join(".".join(x) for x in p.fields["type"])
        raise EventFormatError(p.provider, f"event #{index}: no event type ({names})")
    et = p.events.get(etype)
    if et is None:
        raise EventFormatError(p.provider, f"event #{index}: unknown event type "
                                           f"{etype[:60]!r} (documented: "
                                           f"{', '.join(p.events)})")
    parts = [_text(first(ev, c)) for c in et.class_paths]
    pclass = "/".join(x for x in parts if x) or None
    kind = _kind(p, et, ev)
    centry = et.class_entry(pclass)
    if centry is not None and centry.kind:
        kind = centry.kind
    event_id = _text(first(ev, p.paths(et, "id"))) or event_hash(ev)
    when = _iso(first(ev, p.paths(et, "time")))
    base = dict(kind=kind, format=f"event/{p.provider}", date=when,
                original_message_id=_text(first(ev, p.paths(et, "message_id"))),
                provider=p.provider, event_id=event_id, event_type=etype,
                provider_class=pclass)
    if kind == "not_bounce":
        return EventReport(**base)
    rule = f"event/{p.provider}#{etype}"
    reporting = _strip_type(first(ev, p.paths(et, "reporting_mta")))
    remote = _strip_type(first(ev, p.paths(et, "remote_mta")))
    truncated = False
    event_fields = {k: first(ev, p.paths(et, k)) for k in
                    ("status", "diagnostic", "reply_code", "feedback_type")}
    if et.recipients is not None:
        items = first(ev, et.recipients["list"])
        if not isinstance(items, list) or not items:
            raise EventFormatError(p.provider, f"{etype} event #{index}: no recipients "
                                               f"({'.'.join(et.recipients['list'][0])})")
        rcpts = []
        if len(items) > MAX_RECIPIENTS:
            truncated = True
            items = items[:MAX_RECIPIENTS]
        for item in items:
            f = dict(event_fields)
            for k in ("status", "diagnostic", "reply_code", "action"):
                if k in et.recipients:
                    v = first(item, et.recipients[k])
                    if v is not None:
                        f[k] = v
            rcpts.append((first(item, et.recipients["address"]), f))
    else:
        rcpts = [(first(ev, p.paths(et, "recipient")), event_fields)]
    verdicts = []
    for raw_addr, f in rcpts:
        addr = _address(raw_addr)
        if addr is None:
            raise EventFormatError(p.provider, f"{etype} event #{index}: no recipient address"
                                               f" (got {_text(raw_addr)!r:.80})")
        if kind == "complaint":
            verdicts.append(Verdict(final_recipient=addr, reason="feedback",
                                    feedback_type=(_text(f.get("feedback_type")) or
                                                   et.default_feedback_type),
                                    reporting_mta=reporting, rule=rule))
            continue
        if kind == "auto_reply":
            verdicts.append(Verdict(final_recipient=addr, reason="vacation", rule=rule))
            continue
        action = (_text(f.get("action")) or "").lower()
        if action not in _ACTIONS:
            action = et.action or _DEFAULT_ACTION[kind]
        reply = _text(f.get("reply_code"))
        verdicts.append(_verdict(addr, action, rule, f, reply if reply and _REPLY.match(reply)
                                 else None, remote, reporting, centry, pclass, options))
    return EventReport(verdicts=tuple(verdicts), reporting_mta=reporting, truncated=truncated,
                       defects=("recipients_truncated",) if truncated else (), **base)


def _verdict(addr, action, rule, f, reply, remote, reporting, centry, pclass, options):
    from ..verdict import verdict_from_fields

    v = verdict_from_fields(recipient=addr, action=action, rule=rule,
                            status=_text(f.get("status")),
                            diagnostic=_strip_type(f.get("diagnostic")), reply_code=reply,
                            remote_mta=remote, reporting_mta=reporting, options=options)
    if centry is None or action in ("delivered", "relayed", "expanded") or \
            not (centry.reason or centry.status) or \
            (v.reason not in (None, "undefined") and v.code != "911"):
        return v
    # The SMTP fields leave the verdict open: the provider's class says what it is.
    status, source = (v.status, v.status_source) if v.status else (centry.status, "rule")
    c = codes.classify(status, v.reply_code, status_source=source, action=action)
    reason = v.reason if v.reason not in (None, "undefined") else (centry.reason or c.reason)
    fault, fault_rule = fault_of(reason, c.status, c.code, action)
    return replace(v, status=c.status, status_source=c.status_source, code=c.code,
                   bounce_type=c.bounce_type, description=c.description, reason=reason,
                   fault=fault, fault_rule=fault_rule, rule=f"{v.rule}+class:{pclass}")
