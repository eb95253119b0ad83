"""The one place that orders the steps: load → RFC 3464 → rule packs → reasons → code table.

``parse(message)`` returns a :class:`~dsnparse.model.Report`.  Data flow:

1. :func:`dsnparse.load.load` parses the bytes (stdlib, ``compat32``).
2. :func:`dsnparse.rfc3464.scan` walks the MIME tree once; :func:`dsnparse.rfc3464.read`
   reads a delivery-status part (or a status block in the text) into per-recipient fields.
3. Each recipient's status: the ``Status`` field, unless the diagnostic text carries a more
   specific code of the same class (``5.0.0`` vs ``550 5.1.1 …``); else a code found in the
   diagnostic text; else a text rule; else the reply code's RFC 5321 meaning.
4. :func:`dsnparse.codes.classify` maps the status onto the bounce-code table (911 when
   nothing gives a status).
"""
from __future__ import annotations

from email.message import Message
from typing import Optional

from . import codes, rfc3464
from .load import header, load, unfold
from .model import Report, Verdict
from .options import DEFAULT, Options
from .status import find_reply_code, find_status_strength, more_specific

FAILED = "failed"


def parse(message, options: Optional[Options] = None) -> Report:
    """Parse one message into a :class:`~dsnparse.model.Report`.

    Args:
        message: ``bytes``, ``str`` or ``email.message.Message``.
        options: :class:`~dsnparse.options.Options`; defaults to the shipped rules only.

    Returns:
        A Report; its ``kind`` says whether it is a bounce, a delay, a delivery notice,
        an auto-reply, a complaint, or not a bounce (never ``None``).

    Raises:
        InputError: the input is not an email message at all (see :func:`dsnparse.load.load`).
    """
    options = options or DEFAULT
    msg = load(message)
    st = rfc3464.scan(msg)
    base = _base_fields(msg, st)
    ds = rfc3464.read(st)
    if ds is not None:
        return _from_delivery_status(ds, base)
    return Report(kind="not_bounce", **base)


def _base_fields(msg: Message, st: rfc3464.Structure) -> dict:
    orig = st.original
    defects = tuple(type(d).__name__ for d in getattr(msg, "defects", ()))
    return {
        "message_id": header(msg, "message-id"),
        "subject": header(msg, "subject"),
        "from_": header(msg, "from"),
        "date": header(msg, "date"),
        "original_message_id": header(orig, "message-id") if orig is not None else None,
        "original_from": header(orig, "from") if orig is not None else None,
        "original_to": header(orig, "to") if orig is not None else None,
        "original_subject": header(orig, "subject") if orig is not None else None,
        "defects": defects,
    }


def _from_delivery_status(ds: rfc3464.DeliveryStatus, base: dict) -> Report:
    pm = ds.per_message
    reporting_mta = rfc3464.strip_type(pm.get("reporting-mta"))
    verdicts = tuple(_verdict(r, reporting_mta) for r in ds.recipients)
    return Report(
        kind=kind_of(verdicts),
        format=ds.format,
        verdicts=verdicts,
        reporting_mta=reporting_mta,
        arrival_date=pm.get("arrival-date"),
        **base,
    )


def kind_of(verdicts) -> str:
    """``bounce`` if any recipient failed, else ``delay`` if any is delayed, else ``delivered``."""
    actions = {v.action for v in verdicts}
    if FAILED in actions:
        return "bounce"
    if "delayed" in actions:
        return "delay"
    if actions and actions <= {"delivered", "relayed", "expanded"}:
        return "delivered"
    return "bounce"


def _verdict(r: dict, reporting_mta: Optional[str]) -> Verdict:
    final = rfc3464.address(r.get("final-recipient")) or rfc3464.address(
        r.get("x-actual-recipient")) or rfc3464.address(r.get("original-recipient"))
    diag = rfc3464.strip_type(unfold(r.get("diagnostic-code"))) if r.get("diagnostic-code") else None
    field_status = codes.normalize_status(r.get("status"))
    text_status, paired = find_status_strength(diag)
    reply = find_reply_code(diag)
    status, source = decide_status(field_status, text_status, paired)
    act = rfc3464.action(r.get("action"))
    if act is None:
        act = "delivered" if status and status.startswith("2.") else FAILED
    c = codes.classify(status, reply, status_source=source, action=act)
    return Verdict(
        final_recipient=final,
        original_recipient=rfc3464.address(r.get("original-recipient")),
        action=act,
        status=c.status,
        status_source=c.status_source,
        reply_code=reply,
        code=c.code,
        bounce_type=c.bounce_type,
        description=c.description,
        reason=c.reason,
        diagnostic_code=diag,
        remote_mta=rfc3464.strip_type(r.get("remote-mta")),
        reporting_mta=reporting_mta,
        last_attempt_date=r.get("last-attempt-date"),
        rule="rfc3464",
    )


def decide_status(field_status: Optional[str], text_status: Optional[str], paired: bool = False):
    """Pick the status and its source from the ``Status`` field and the diagnostic text.

    Returns ``(status, status_source)``; ``(None, "none")`` when neither has one.
    RFC 3464 §2.3.4 makes ``Status`` the authority; a generic field (``X.0.0``, or ``X.Y.0``
    with the text's subject) yields to the more specific code the remote MTA wrote, and so
    does any field when the text is the remote server's own ``reply enhanced`` pair of the
    same class (see :func:`dsnparse.status.more_specific`).
    """
    if field_status and not more_specific(field_status, text_status, paired):
        return field_status, "status_field"
    if text_status:
        return text_status, "diagnostic_text"
    return None, "none"
