"""One recipient's verdict from what a report says of it (steps 4–6 of :mod:`dsnparse.engine`).

:func:`build_verdict` decides the status (the ``Status`` field or the diagnostic text,
:func:`decide_status`; else a text rule's status or the default status of the reason it
gave), the reason (text rules, then the conditions of ``rules/reasons.yaml``), the code of
the bounce-code table (:func:`dsnparse.codes.classify`) and whose fault it is
(:func:`dsnparse.fault.fault_of`).  :func:`verdict_from_fields` does the same for RFC 3464
§2.3 fields that come without a message (an email service provider's event,
:mod:`dsnparse.events`), so that the same rejection gives the same verdict either way.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from . import budget, codes, reasons, rules
from .fault import fault_of
from .model import Verdict
from .options import DEFAULT, Options
from .status import find_codes, more_specific

FAILED = "failed"
#: ``matched`` of :func:`build_verdict` for a delivery-status report whose vendor pack is
#: looked for only if it matters (``ctx.vendor_if_it_matters(packs, text, status)``).
LAZY = object()


def build_verdict(ctx, packs, matched, *, recipient, action, field_status, diagnostic, rule,
                  original_recipient=None, reply_code=None, remote_mta=None, reporting_mta=None,
                  last_attempt_date=None, fallback_text=None) -> Verdict:
    """Decide one recipient's status, reason and table code (steps 4 and 5 of the module doc).

    ``field_status`` is a status stated as such (RFC 3464 ``Status`` or a pack's ``status``
    group); ``diagnostic`` the diagnostic text; ``fallback_text`` text searched for codes and
    text rules when there is no diagnostic (the report of a single-recipient bounce), or,
    after it, when the diagnostic holds no code (a recipient line that only names the
    address: the codes on the lines around it count).
    ``matched`` is the pack that recognised the message (its text rules first), ``None``, or
    ``LAZY`` for a delivery-status report whose vendor is looked for only if it matters.
    """
    budget.check("the verdict of %.100r", recipient)
    text = diagnostic or fallback_text or ""
    if diagnostic and fallback_text:  # a recipient line without a code: the report's count too
        text = f"{diagnostic}\n{fallback_text}"
    text_status, paired, text_reply = find_codes(text)
    reply = reply_code or text_reply
    status, source = decide_status(field_status, text_status, paired)
    if matched is LAZY:
        matched = ctx.vendor_if_it_matters(packs, text, status)
    tpacks = rules.text_rule_packs(packs, (remote_mta, reporting_mta), matched, ctx.timeout)
    hit = rules.find_text_rule(text, tpacks, ctx.timeout, status)
    if not hit and ctx.trace is not None:
        ctx.note(f"{recipient}: no text rule matched "
                 + (f"(packs tried: {', '.join(p.id for p in tpacks)})" if tpacks and text
                    else "(no text to match)" if not text else "(no pack has text rules for it)"))
    reason = None
    decided_by = rule
    own_status = status  # the status the message gave (before one inferred from the reason)
    final = False  # a reason given by a vendor or remote-host pack is not re-decided
    if hit:
        tpack, trule, m = hit
        if ctx.trace is not None:
            ctx.note(f"{recipient}: text rule {tpack.id}#{trule.id} matched {m.group(0)[:80]!r}")
        reason = trule.reason
        final = bool(tpack.mta) or (tpack is matched and rules.is_vendor_pack(tpack))
        if trule.status and (status is None or _generic(status)) and \
                (status is None or status[0] == trule.status[0] or status[0] == "5"):
            status, source = trule.status, "rule"
            if status[0] == "4" and action == FAILED and not (reply or "").startswith("4"):
                status = "5" + status[1:]  # the MTA gave up: a permanent failure now
        elif status is None and not trule.status and action not in codes.SUCCESS_ACTIONS:
            inferred = reasons.inferred_status(reason, reply, action)
            if inferred:  # the reason names one RFC 3463 condition (rules/reasons.yaml)
                status, source = inferred, "rule"
        decided_by = f"{rule}+{tpack.id}#{trule.id}"
    if action is None:
        action = "delivered" if status and status.startswith("2.") else FAILED
    c = _classify(status, reply, source, action)
    if action in codes.SUCCESS_ACTIONS:
        reason = "delivered"
    else:
        if not final:  # the conditions of rules/reasons.yaml (Sisimai's meanings)
            decided = reasons.decide(
                reason, status=own_status, reply_code=reply, action=action,
                command=lambda: reasons.smtp_command(text, ctx.text(), recipient))
            if decided and decided != (reason or c.reason):
                if ctx.trace is not None:
                    ctx.note(f"{recipient}: reason {decided} (rules/reasons.yaml: "
                             f"{reason or c.reason} under its conditions)")
                reason = decided
                decided_by += f"+reasons#{decided}"
        if (reason or c.reason) == "delivered":
            # a failure or delay never carries "delivered" (codes.classify sees to the
            # table's reason of the success codes X.1.5 and X.3.6; this is a text rule's)
            reason = "undefined"
        if action == FAILED and (c.status or "").startswith("4.") and \
                (reason or c.reason) == "undefined":
            # RFC 3464 §2.3.3: "failed" with a transient status and no stated cause means the
            # MTA gave up retrying: the message expired in its queue
            reason = "expired"
    reason = reason or c.reason
    fault, fault_rule = fault_of(reason, c.status, c.code, action)
    if ctx.trace is not None:  # (the text is only built for a trace)
        ctx.note(f"{recipient}: status {c.status} ({c.status_source}), reply {reply}, "
                 f"code {c.code} {c.bounce_type}, reason {reason}, "
                 f"fault {fault or '-'}" + (f" ({fault_rule})" if fault_rule else ""))
    return _verdict(
        final_recipient=recipient,
        original_recipient=original_recipient,
        action=action,
        status=c.status,
        status_source=c.status_source,
        reply_code=reply,
        code=c.code,
        bounce_type=c.bounce_type,
        description=c.description,
        reason=reason,
        diagnostic_code=diagnostic,
        remote_mta=remote_mta,
        reporting_mta=reporting_mta,
        last_attempt_date=last_attempt_date,
        rule=decided_by,
        fault=fault,
        fault_rule=fault_rule,
    )


def one_step_constructor(cls):
    """A function ``f(**values)`` that returns ``cls(**values)`` for a frozen dataclass
    ``cls``, built by filling the instance's ``__dict__`` in one step instead of one
    ``object.__setattr__`` per field, which is how the frozen dataclass's ``__init__`` sets
    them (the same object: fields, equality, hash, ``repr``, ``dataclasses.replace`` and
    pickling read ``__dict__``).  ``cls`` itself when a field has a ``default_factory`` or
    is not an ``__init__`` argument, or ``cls`` has a ``__post_init__`` or ``__slots__``;
    a call that lacks a field without default, or gives an unknown name, goes to ``cls``
    (which raises ``TypeError`` as usual)."""
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        return cls
    defaults, required = {}, set()
    for f in dataclasses.fields(cls):
        if not f.init or f.default_factory is not dataclasses.MISSING:
            return cls
        if f.default is dataclasses.MISSING:
            required.add(f.name)
        else:
            defaults[f.name] = f.default
    names = frozenset(defaults) | required
    new = object.__new__

    def construct(**values):
        if not required.issubset(values) or not names.issuperset(values):
            return cls(**values)
        obj = new(cls)
        d = obj.__dict__
        d.update(defaults)
        d.update(values)
        return obj

    construct.__name__ = construct.__qualname__ = f"new_{cls.__name__}"
    return construct


_verdict = one_step_constructor(Verdict)


def _classify(status: Optional[str], reply: Optional[str], source: str, action: str):
    """:func:`dsnparse.codes.classify` with the shipped table, memoised: a pure function of
    its arguments and the table (its :class:`~dsnparse.codes.Classification` is frozen), and
    a stream of bounces repeats a few hundred combinations of status, reply code, source and
    action.  The memo is dropped when it grows past :data:`_CLASSIFY_MAX` entries (hostile
    input can bring any number of reply codes) or when the shipped table is another object."""
    table = codes.load_table()
    key = (status, reply, source, action)
    hit = _CLASSIFIED.get(key)
    if hit is not None and hit[0] is table:
        return hit[1]
    c = codes.classify(status, reply, status_source=source, action=action, table=table)
    if len(_CLASSIFIED) >= _CLASSIFY_MAX:
        _CLASSIFIED.clear()
    _CLASSIFIED[key] = (table, c)
    return c


_CLASSIFIED: dict = {}  # (status, reply, source, action) -> (table, Classification)
_CLASSIFY_MAX = 4096


def _generic(status: str) -> bool:
    _, s, d = status.split(".")
    return s == "0" and d == "0"


def decide_status(field_status: Optional[str], text_status: Optional[str], paired: bool = False):
    """Pick the status and its source from the ``Status`` field and the diagnostic text.

    Returns ``(status, status_source)``; ``(None, "none")`` when neither has one.
    RFC 3464 §2.3.4 makes ``Status`` the authority; a generic field (``X.0.0``, or ``X.Y.0``
    with the text's subject) yields to the more specific code the remote MTA wrote, and so
    does any field when the text is the remote server's own ``reply enhanced`` pair of the
    same class (see :func:`dsnparse.status.more_specific`).  A generic ``X.0.0`` field with
    a specific code of the other class in the text keeps its class and takes the text's
    subject and detail (``5.0.0`` with ``4.4.7`` → ``5.4.7``).
    """
    if field_status and not more_specific(field_status, text_status, paired):
        if text_status and text_status[0] != field_status[0] and _generic(field_status) \
                and not _generic(text_status):
            # "Status: 5.0.0" over "#< #4.4.7 smtp; 400 4.4.7 Message delayed>": the field
            # keeps its class (the reporting MTA gave up, RFC 3464 §2.3.3), the text names
            # the condition (RFC 3463 §3.5): 5.4.7
            return field_status[0] + text_status[1:], "diagnostic_text"
        return field_status, "status_field"
    if text_status:
        return text_status, "diagnostic_text"
    return None, "none"


class _FieldsContext:
    """What :func:`build_verdict` reads of a message, for delivery-status fields that come
    without one (a provider's webhook event): no header, no report text, no vendor pack."""

    trace = None
    vendor = None
    truncated = False

    def __init__(self, timeout: float):
        self.timeout = timeout

    def text(self) -> str:
        return ""

    def header(self, name: str) -> str:
        return ""

    def note(self, what: str) -> None:
        pass


def verdict_from_fields(*, recipient: Optional[str], action: str, rule: str,
                        status: Optional[str] = None, diagnostic: Optional[str] = None,
                        reply_code: Optional[str] = None, remote_mta: Optional[str] = None,
                        reporting_mta: Optional[str] = None,
                        last_attempt_date: Optional[str] = None,
                        options: Optional[Options] = None) -> Verdict:
    """Decide one recipient's verdict from RFC 3464 §2.3 fields given outside a message
    (an email service provider's bounce event), by the same steps as a delivery-status
    report's recipient (:func:`build_verdict`: status from the ``status`` field and the
    diagnostic text, the text rules of the packs, ``rules/reasons.yaml``, the code table,
    :func:`dsnparse.fault.fault_of`), so that the same rejection text gives the same
    verdict whichever way it arrived.

    Args:
        recipient: the address (``str``) or ``None``.
        action: RFC 3464 §2.3.3 action (``failed``, ``delayed``, ``delivered``…).
        rule: the ``rule`` of the verdict (text rules that match are appended to it).
        status: an enhanced status stated as such (RFC 3463, ``"5.1.1"``) or ``None``.
        diagnostic: the SMTP diagnostic without its type (``"550 5.1.1 user unknown"``).
        reply_code: an SMTP reply code (RFC 5321 §4.2) stated as such, or ``None``.
        remote_mta, reporting_mta, last_attempt_date: as in a delivery-status report.
        options: :class:`~dsnparse.options.Options` (rule packs, time budget).

    Returns:
        A :class:`~dsnparse.model.Verdict`.

    Raises:
        MessageTimeout: deciding took longer than ``options.message_timeout`` seconds.
        RuleError: a rule pack is broken.
    """
    options = options or DEFAULT
    packs = rules.load_packs(tuple(options.rules))
    prev = budget.start(options.message_timeout)
    try:
        ctx = _FieldsContext(options.pattern_timeout)
        return build_verdict(ctx, packs, None, recipient=recipient, action=action,
                             field_status=codes.normalize_status(status),
                             diagnostic=diagnostic, reply_code=reply_code,
                             remote_mta=remote_mta, reporting_mta=reporting_mta,
                             last_attempt_date=last_attempt_date, rule=rule)
    finally:
        budget.restore(prev)
