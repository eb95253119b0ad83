"""Result model: one :class:`Report` per message, one :class:`Verdict` per recipient.

Both are frozen dataclasses: build them once, never mutate them (use
:func:`dataclasses.replace` to derive a changed copy).  ``to_dict()`` gives plain JSON-ready
dicts; the field names are the JSON Lines contract of the command line tool and follow the
RFC 3464 per-recipient field names (§2.3) where one exists.

Kinds of message (``Report.kind``)
----------------------------------
``bounce``      at least one recipient failed permanently or the MTA gave up
                (RFC 3464 ``Action: failed``, or a free-text bounce).
``delay``       only delays (``Action: delayed``): still being retried, a soft condition.
``delivered``   only success notices (``delivered``, ``relayed``, ``expanded``).
``auto_reply``  an automatic reply (RFC 3834: vacation, out of office, challenge-response).
``complaint``   an ARF feedback report (RFC 5965).
``not_bounce``  anything else: ordinary mail, read receipts (MDN), forwarded messages.
``error``       input that could not be read as an email at all (only produced by sources,
                never by :func:`dsnparse.parse`).

``status_source`` values (where a verdict's enhanced status came from)
-----------------------------------------------------------------------
``status_field``     the ``Status:`` field of a delivery-status part (RFC 3464 §2.3.4).
``diagnostic_text``  an enhanced code written in the diagnostic / bounce text.
``reply_code``       inferred from a bare SMTP reply code by its RFC 5321 §4.2 meaning.
``rule``             set by a text rule of a rule pack (``rule`` names which).
``none``             nothing gave a status; the verdict is code 911 (hard).

``fault`` values (whose problem a failure is: is the address itself dead?)
--------------------------------------------------------------------------
``recipient``  the address does not exist or is invalid, has moved, its domain does not
               exist or takes no mail (RFC 3463 X.1.1, X.1.2, X.1.6, X.1.10, X.4.4…).
``mailbox``    the mailbox exists but cannot take mail now: full, disabled, suspended,
               refusing by its own filter (X.2.x).
``sender``     the sending side: reputation, blocklists, SPF/DKIM/DMARC, PTR, rate limits,
               relaying denied, a site policy against the sender (X.7.x, X.5.x).
``message``    this message: content, spam, virus, size, format, headers (X.6.x, X.3.4).
``network``    DNS, connections, timeouts, expired queue, loops, system errors (X.4.x, X.3.x).
``unknown``    no evidence (every code 911, reason ``undefined``, status X.0.x).
``None``       not a failure: delivery notices, complaints, auto-replies.
Decided by :mod:`dsnparse.fault` from data (``rules/reasons.yaml``, ``rules/faults.yaml``);
``fault_rule`` says which entry decided.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

KINDS = ("bounce", "delay", "delivered", "auto_reply", "complaint", "not_bounce", "error")
STATUS_SOURCES = ("status_field", "diagnostic_text", "reply_code", "rule", "none")
FAULTS = ("recipient", "mailbox", "sender", "message", "network", "unknown")
"""Values of :attr:`Verdict.fault` (whose problem a failure is; ``rules/reasons.yaml``)."""
NON_FAILURE_REASONS = ("delivered", "feedback", "vacation")
"""Reasons the engine gives to verdicts that are not failures (success notices, complaints,
auto-replies): the only reasons whose ``fault`` may be ``null``."""


@dataclass(frozen=True)
class Verdict:
    """The outcome for one recipient of a bounce, delay or delivery notice.

    Attributes (all ``str`` or ``None``):
        final_recipient: address the report is about (RFC 3464 ``Final-Recipient``), without
            the address type; ``None`` when the bounce names no recipient.
        original_recipient: RFC 3464 ``Original-Recipient`` (the ORCPT), if given.
        action: ``failed``, ``delayed``, ``delivered``, ``relayed`` or ``expanded``
            (RFC 3464 §2.3.3), lower-cased; free-text bounces get ``failed``.
        status: enhanced status code as written (RFC 3463, e.g. ``"5.1.1"``, ``"5.7.26"``) or
            as inferred (see ``status_source``); ``None`` when nothing gave one.
        status_source: one of :data:`STATUS_SOURCES`.
        reply_code: SMTP reply code (RFC 5321 §4.2, e.g. ``"550"``) when the text carries one.
        code: the bounce-code table's code as a 3-digit string (``"511"``, ``"452"``,
            ``"911"``); ``None`` for delivered/complaint/auto-reply verdicts.
        bounce_type: ``"hard"`` or ``"soft"`` from the table; ``None`` when not a failure.
        description: the table's English description of ``code``.
        reason: a reason name from ``rules/reasons.yaml`` (``user_unknown``, ``mailbox_full``…).
        diagnostic_code: the diagnostic text (RFC 3464 ``Diagnostic-Code`` without its type,
            unfolded), or the error text of a free-text bounce.
        remote_mta, reporting_mta: MTA names without their ``dns;`` type.
        last_attempt_date: RFC 3464 ``Last-Attempt-Date`` as written.
        rule: id of the rule that decided (``rfc3464``, ``mta/postfix#recipient``…).
        feedback_type: ARF ``Feedback-Type`` (RFC 5965 §3.1) for complaints, else ``None``.
        fault: one of :data:`FAULTS` for a failed or delayed recipient (see the module
            docstring); ``None`` for delivery notices, complaints and auto-replies.  Separate
            from ``bounce_type``, which keeps the code table's hard/soft.
        fault_rule: what decided ``fault``: ``"code:911"``, ``"reason:<name>"`` (its entry in
            ``rules/reasons.yaml``), ``"status:X.S.D"`` or ``"status:X.S"`` (a row of
            ``rules/faults.yaml``); ``None`` when ``fault`` is.
    """

    final_recipient: Optional[str] = None
    original_recipient: Optional[str] = None
    action: Optional[str] = None
    status: Optional[str] = None
    status_source: str = "none"
    reply_code: Optional[str] = None
    code: Optional[str] = None
    bounce_type: Optional[str] = None
    description: Optional[str] = None
    reason: Optional[str] = None
    diagnostic_code: Optional[str] = None
    remote_mta: Optional[str] = None
    reporting_mta: Optional[str] = None
    last_attempt_date: Optional[str] = None
    rule: Optional[str] = None
    feedback_type: Optional[str] = None
    fault: Optional[str] = None
    fault_rule: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as a plain ``dict`` (field name → ``str`` or ``None``)."""
        return asdict(self)


VERDICT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Verdict))


@dataclass(frozen=True)
class Report:
    """What one message is, and its verdicts.

    Attributes:
        kind: one of :data:`KINDS` (see the module docstring).
        format: id of the parser or rule pack that recognised the message (``rfc3464``,
            ``mta/postfix``, ``standard/rfc3834``…), ``None`` for ``not_bounce``.
        verdicts: one :class:`Verdict` per recipient, in the order the report gives them.
        reporting_mta: RFC 3464 ``Reporting-MTA`` (without ``dns;``), if known.
        arrival_date: RFC 3464 ``Arrival-Date`` as written, if given.
        message_id, subject, from_, date: the bounce's own header fields (raw, unfolded).
        original_message_id, original_from, original_to, original_subject: header fields of
            the returned original message (``message/rfc822``, ``text/rfc822-headers``,
            RFC 6532 ``message/global*`` or inline text), when the bounce carries it.
        original_headers: every header field of the returned original, as
            ``((name, value), …)`` with values as written (possibly folded; decode them with
            :func:`dsnparse.load.unfold`); a ledger reads the campaign id from them.  Not part
            of the output records.
        defects: short names of the problems met while reading (e.g. parser defects).
        error: for kind ``error`` only: why the input could not be read or parsed.
        truncated: ``True`` when a text of the message was cut at its size limit and what
            follows was not read (a text part beyond
            :data:`dsnparse.load.REPORT_TEXT_LIMIT` characters, a delivery-status part
            beyond 2,000,000, MIME parts beyond the 500th): recipients named later are
            missing from ``verdicts``.
    """

    kind: str
    format: Optional[str] = None
    verdicts: tuple[Verdict, ...] = ()
    reporting_mta: Optional[str] = None
    arrival_date: Optional[str] = None
    message_id: Optional[str] = None
    subject: Optional[str] = None
    from_: Optional[str] = None
    date: Optional[str] = None
    original_message_id: Optional[str] = None
    original_from: Optional[str] = None
    original_to: Optional[str] = None
    original_subject: Optional[str] = None
    original_headers: tuple = field(default=(), repr=False)
    defects: tuple[str, ...] = field(default=())
    error: Optional[str] = None
    truncated: bool = False

    @property
    def is_bounce(self) -> bool:
        """``True`` for kind ``bounce`` (a failure report)."""
        return self.kind == "bounce"

    def to_dict(self) -> dict[str, Any]:
        """Return the report as nested plain data (``verdicts`` is a list of dicts)."""
        d = asdict(self)
        d["from"] = d.pop("from_")
        d["verdicts"] = [v.to_dict() for v in self.verdicts]
        d["defects"] = list(self.defects)
        d["original_headers"] = [list(h) for h in self.original_headers]
        return d

    def records(self, source: Optional[str] = None) -> list[dict[str, Any]]:
        """Flatten to output records: one per verdict, or one with empty recipient fields.

        Every record has ``source`` and ``kind`` first, then every :class:`Verdict` field,
        then ``format``, ``message_id`` and ``original_message_id`` (these let a ledger
        deduplicate and link a bounce to the campaign mail it returns), ``error`` and
        ``truncated`` (``bool``: the message's text was cut at a size limit, see
        :class:`Report`).

        Args:
            source: where the message came from (file path, ``mbox#index``, Maildir key,
                IMAP URL); copied into every record.

        Returns:
            A non-empty list of ``dict``; every input message is accounted for.
        """
        tail = {
            "format": self.format,
            "message_id": self.message_id,
            "original_message_id": self.original_message_id,
            "error": self.error,
            "truncated": self.truncated,
        }
        verdicts = self.verdicts or (Verdict(reporting_mta=self.reporting_mta),)
        return [{"source": source, "kind": self.kind, **v.to_dict(), **tail} for v in verdicts]


RECORD_FIELDS: tuple[str, ...] = (
    ("source", "kind") + VERDICT_FIELDS
    + ("format", "message_id", "original_message_id", "error", "truncated")
)
