"""The one place that orders the steps: load → RFC 3464 → rule packs → reasons → code table.

``parse(message)`` returns a :class:`~dsnparse.model.Report`.  Data flow:

1. :func:`dsnparse.load.load` parses the bytes (stdlib, ``compat32``).
2. :func:`dsnparse.rfc3464.scan` walks the MIME tree once.
3. A message with a delivery-status part is read by :func:`dsnparse.rfc3464.read` (one record
   per recipient, from every delivery-status part).  Outside a top-level multipart/report
   (RFC 6522) it is a report only when a mail system sent the message
   (:func:`system_sender`); else it is a person's forwarded report: ``not_bounce``, format
   :data:`FORWARDED_REPORT`.  An ARF feedback report (RFC 5965) is a complaint; a read receipt
   (RFC 8098) is not a bounce.  Any other message is offered to the rule packs in order
   (user packs, vendors, generic last): the first pack that recognises it and finds its
   recipients decides.
4. Each recipient's status: the ``Status`` field, unless the diagnostic text carries a more
   specific code of the same class (``5.0.0`` vs ``550 5.1.1 …``); else a code in the
   diagnostic text; else a text rule's status; else the default status of the reason a text
   rule gave, when ``rules/reasons.yaml`` marks it reliable (class from the reply code);
   else the reply code's RFC 5321 meaning.
   Text rules (vendor packs keyed on the MTA first, then shared packs, then a generic pack's
   own) give the reason; one that no vendor or remote-host rule gave is checked against the
   conditions of ``rules/reasons.yaml`` (:func:`dsnparse.reasons.decide`: SMTP command,
   status, class, action).  A failure never carries ``delivered``.
5. :func:`dsnparse.codes.classify` maps the status onto the bounce-code table (911 when
   nothing gives a status).
6. :func:`dsnparse.fault.fault_of` says whose fault a failure is (recipient, mailbox,
   sender, message, network, unknown) from the reason and the status.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import replace
from email.message import Message
from typing import Optional

from . import budget, codes, deep, original, rfc3464, rules
from .load import header as get_header
from .load import REPORT_TEXT_LIMIT, load, part_text_cut, unfold
from .model import Report, Verdict
from .options import DEFAULT, Options
from .textprep import MAX_LINE, bound_lines, html_to_text  # noqa: F401 - MAX_LINE re-exported
from .status import find_codes, more_specific, read_status_field
from .verdict import LAZY as _LAZY
from .verdict import _generic, build_verdict
from .verdict import decide_status, verdict_from_fields  # noqa: F401 - re-exported
from .verdict import one_step_constructor

FAILED = "failed"
_report = one_step_constructor(Report)  # Report(**fields) (a frozen dataclass) in one step
# The ``format`` of a message from a person that carries a delivery-status report outside
# a multipart/report (a report forwarded or pasted into a person's mail): ``not_bounce``.
FORWARDED_REPORT = "forwarded-report"


class Context:
    """What the steps share about one message: headers and report text, computed lazily.

    ``folded`` (a :class:`rules.Folded`) reads the headers and text through a weak proxy of
    the context, so that the two make no reference cycle: use it while the context is
    alive (after that its first read raises ``ReferenceError``)."""

    def __init__(self, msg: Message, st: rfc3464.Structure, options: Options, trace):
        self.msg, self.st, self.options, self.trace = msg, st, options, trace
        self.timeout = options.pattern_timeout
        self._headers: dict = {}
        self._raw: Optional[dict] = None
        self._text: Optional[str] = None
        # (through a weak proxy: a Folded holding bound methods would make a reference cycle,
        # and every message's tree would then wait for the cyclic garbage collector)
        me = weakref.proxy(self)
        self.folded = rules.Folded(lambda: me.header_block(), lambda: me.text())
        self.memo: dict = {}  # detection conditions already tested on this message
        self.candidates: Optional[list] = None  # indices of the packs that may apply
        self.vendor = _LAZY  # the vendor pack of a delivery-status report, once looked for
        self.truncated = st.truncated  # some text was cut at its size limit (Report.truncated)
        self.local_map: Optional[dict] = None  # local part -> addresses of the returned To/Cc

    def header_block(self) -> str:
        """The top-level header section as ``Name: value`` lines (for the prefilter; values
        as written, folded or not: the section's own text when the fast MIME path parsed
        it); fields with RFC 2047 encoded words are added once more, decoded."""
        raw = getattr(self.msg, "_header_text", None)  # as written (dsnparse.mime.parse)
        if raw is None:
            raw = "\n".join(f"{k}: {v}" for k, v in self.msg._headers)
        if "=?" in raw:
            raw += "\n" + "\n".join(f"{k}: {unfold(v)}" for k, v in self.msg._headers if "=?" in v)
        return raw

    def header(self, name: str) -> str:
        """All values of header ``name``, unfolded and decoded, joined by newlines ("" if absent)."""
        v = self._headers.get(name)
        if v is None:
            raw = self._raw
            if raw is None:  # one pass over the header section, then dictionary look-ups
                raw = self._raw = {}
                for k, val in self.msg._headers:
                    raw.setdefault(k.lower(), []).append(val)
            vals = raw.get(name, ())
            if len(vals) > 1:
                budget.check("decoding the %s header fields", name)
            v = self._headers[name] = bound_lines("\n".join(unfold(x) for x in vals))
        return v

    def vendor_if_it_matters(self, packs, text: str, status):
        """The vendor pack whose text rules could decide a verdict on ``text``, else
        ``None`` (:func:`_vendor_if_it_matters`; asked by :func:`build_verdict`)."""
        return _vendor_if_it_matters(self, packs, text, status)

    def text(self) -> str:
        """The human-readable report text: text parts outside the returned message, in order
        (HTML turned to text when a part has no plain-text sibling)."""
        if self._text is None:
            plain, htmls = [], []
            for part in self.st.texts:
                sub = part.get_content_subtype()
                t, cut = part_text_cut(part, REPORT_TEXT_LIMIT)
                if cut:
                    self.truncated = True
                (htmls if sub == "html" else plain).append(t)
            if not plain:
                plain = [html_to_text(h) for h in htmls]
            text = "\n\n".join(plain).replace("\r\n", "\n").replace("\r", "\n")
            self._text = bound_lines(text)
            budget.check("reading the report text")
        return self._text

    def note(self, what: str) -> None:
        if self.trace is not None:
            self.trace.append(what)


def parse(message, options: Optional[Options] = None, trace: Optional[list] = None) -> Report:
    """Parse one message into a :class:`~dsnparse.model.Report`.

    Args:
        message: ``bytes``, ``str`` or ``email.message.Message``.
        options: :class:`~dsnparse.options.Options`; defaults to the shipped rules only.
        trace: a list that, when given, receives one line per step taken (packs tried,
            matched lines, how each verdict was reached); used by ``dsnparse explain``.

    Returns:
        A Report; its ``kind`` says whether it is a bounce, a delay, a delivery notice,
        an auto-reply, a complaint, or not a bounce (never ``None``).

    Raises:
        InputError: the input is not an email message at all (see :func:`dsnparse.load.load`).
        MessageTimeout: (an ``InputError``) parsing took longer than
            ``options.message_timeout`` seconds (see :mod:`dsnparse.budget`).
        RuleError: a rule pack is broken (raised on first use, before any message is read).
    """
    options = options or DEFAULT
    packs = rules.load_packs(tuple(options.rules))  # (not counted in the message's budget)
    if options.leave_out:
        packs = rules.leave_out(packs, options.leave_out)
    prev = budget.start(options.message_timeout)
    try:
        return _parse(message, options, packs, trace)
    finally:
        budget.restore(prev)


def _parse(message, options: Options, packs, trace) -> Report:
    msg = load(message)
    budget.check("reading the MIME structure")
    st = rfc3464.scan(msg)
    ctx = Context(msg, st, options, trace)
    ds = rfc3464.read(st)
    budget.check("reading the delivery-status fields")
    report = _decide(msg, st, ctx, ds, packs, trace)
    if ctx.truncated or ds is not None and ds.truncated:
        ctx.note("a text was cut at its size limit: what follows it was not read")
        report = replace(report, truncated=True)
    return report


def _decide(msg, st, ctx, ds, packs, trace) -> Report:
    base = _base_fields(msg, st)
    if ds is not None:
        if ctx.trace is not None:
            ctx.note(f"delivery-status fields found ({ds.format}): {len(ds.recipients)} recipient(s)"
                     + (f" in {len(ds.parts)} parts" if len(ds.parts) > 1 else ""))
        if not rfc3464.in_report_position(msg, ds):
            evidence = system_sender(ctx)
            if not evidence:
                ctx.note("delivery-status fields outside a multipart/report, in a message from "
                         "a person (no null or system Return-Path or From, no Auto-Submitted):"
                         " a forwarded report, not a bounce")
                return Report(kind="not_bounce", format=FORWARDED_REPORT, **base)
            ctx.note(f"delivery-status fields outside a multipart/report, read as the message "
                     f"comes from a mail system ({'; '.join(evidence)})")
        vendor = _vendor_pack(ctx, packs) if trace is not None else _LAZY
        return _from_delivery_status(ds, base, ctx, packs, vendor)
    if st.feedback_parts or st.report_type == "feedback-report":
        ctx.note("ARF feedback report (RFC 5965): complaint")
        return _complaint(ctx, base)
    if st.mdn_parts or st.report_type == "disposition-notification":
        ctx.note("message disposition notification (RFC 8098): not a bounce")
        return Report(kind="not_bounce", format="rfc8098", **base)
    why_not = [] if trace is not None else None
    person = None  # a person's reply or forward (asked once, before the first generic pack)
    for pack in _candidates(ctx, packs):
        if not pack.detects:
            continue
        if pack.kind == "bounce" and not rules.is_vendor_pack(pack):
            if person is None:
                person = _from_a_person(ctx)
            if person:
                ctx.note(f"pack {pack.id}: not tried ({person})")
                continue
        budget.check("detection (pack %s)", pack.id)
        why = rules.detect(pack, ctx.header, ctx.text, ctx.timeout, why_not, ctx.folded, ctx.memo)
        if not why:
            if why_not:
                ctx.note(f"pack {pack.id}: not recognised ({why_not.pop()})")
            continue
        if ctx.trace is not None:
            ctx.note(f"pack {pack.id}: recognised ({why})")
        if pack.kind == "auto_reply":
            return _auto_reply(ctx, base, pack)
        if pack.kind == "complaint":
            report = _complaint(ctx, base, pack)
            if report.verdicts[0].final_recipient or not pack.needs_recipient:
                return report
            ctx.note(f"pack {pack.id}: no recipient found; trying the next pack")
            continue
        report = _from_pack(pack, ctx, base, packs)
        if report is not None:
            return report
        ctx.note(f"pack {pack.id}: no recipient found; trying the next pack")
    report = _provider_event(ctx, base)
    if report is not None:
        return report
    ctx.note("no pack recognised the message: not a bounce")
    return Report(kind="not_bounce", **base)


def _provider_event(ctx, base) -> Optional[Report]:
    """A message whose body is an email service provider's JSON event (Amazon SES through
    an SNS email subscription, :mod:`dsnparse.events.mail`) as that event's report, with the
    message's own header fields; ``None`` for anything else (the text does not start with
    ``{``: nothing more is looked at)."""
    if not ctx.st.texts or ctx.text()[:64].lstrip()[:1] != "{":
        return None
    from .events.mail import report_from_body

    # the part's own text: the report text has its long lines cut (MAX_LINE), and SNS
    # writes the event on one line
    text, _ = part_text_cut(ctx.st.texts[0], REPORT_TEXT_LIMIT)
    ev = report_from_body(text, ctx.options)
    if ev is None:
        return None
    ctx.note(f"the body is an email service provider's event ({ev.format}, "
             f"{ev.event_type}, event id {ev.event_id}): {ev.kind}")
    fields = dict(base)
    fields["original_message_id"] = ev.original_message_id or base.get("original_message_id")
    return Report(kind=ev.kind, format=ev.format, verdicts=ev.verdicts, **fields)


# A reply or forward prefix of a subject, as mail clients write them (English "Re:", "Fwd:",
# "FW:"; German "AW:", "WG:"; French "TR:"; Spanish/Portuguese "RV:", "RES:", "ENC:";
# Scandinavian "SV:", "VS:"; Dutch "Antw:", "Doorst:"; Italian "Rif:"; Polish "Odp:"; and
# the Chinese, Japanese, Korean and Russian forms), with an optional "[2]" count.
_PERSON_SUBJECT = re.compile(
    r"^\s*(?:re|fwd?|fw|aw|wg|tr|rv|sv|vs|odp|antw|doorst|rif|enc|res|回复|答复|转发|回覆|"
    r"轉寄|返信|転送|답장|전달|ответ|пересл)\s*(?:\[\d+\])?\s*[:：]", re.I)


def _from_a_person(ctx) -> str:
    """Why the message is a person's reply or forward rather than a mail system's notice
    (``""`` when it is not): its Subject starts with a reply or forward prefix and its
    headers show no sign of a mail system (:func:`system_sender`).  Such a message quoting
    a bounce ("> 550 5.1.1 <anna@…>: User unknown") is not a bounce of the quoted address:
    the generic packs, which read any layout, are not tried on it (a vendor pack, which
    knows its own notices, still is)."""
    subject = ctx.header("subject")
    if not _PERSON_SUBJECT.match(subject[:200]) or system_sender(ctx):
        return ""
    return f"a person's reply or forward: Subject {subject[:60]!r}, no mail-system header"


_SYSTEM_NAME = re.compile(
    r"\bmail(?:er)?[ ._-]?(?:daemon|delivery|administrator|system|server|gateway)\b|"
    r"\bpostmaster\b|\bdelivery[ ._-]?(?:subsystem|system|status|notification|service)\b",
    re.I)


def system_sender(ctx) -> list:
    """The header evidence that a message was sent by a mail system rather than a person,
    as short phrases (an empty list when there is none):

    * a null reverse path, ``Return-Path: <>`` (RFC 5321 §4.5.5: notifications are sent
      with one), or a Return-Path / From that is a system mailbox (``MAILER-DAEMON``,
      ``postmaster``, RFC 5321 §4.5.1), or a missing or empty From;
    * a From whose display name names a mail system ("Mail Delivery System", "Mail
      Administrator", "Delivery Status Notification" …);
    * ``Auto-Submitted`` with any value but ``no`` (RFC 3834 §5);
    * ``X-Failed-Recipients`` (written by MTAs, e.g. Exim, on their bounces).

    Headers only: the body is not read."""
    found = []
    rp = ctx.header("return-path").strip()
    if rp:
        addr = rp.split("\n")[0].strip().strip("<>").strip()
        if not addr:
            found.append("null Return-Path")
        elif rules.is_system_address(addr) or "@" not in addr:
            found.append(f"system Return-Path {addr}")
    frm = ctx.header("from").strip()
    if not frm or frm == "<>":
        found.append("no From")
    else:
        pairs = deep.getaddresses(frm.split("\n"))
        if any(a and rules.is_system_address(a.strip("<>")) for _, a in pairs) \
                or not any(a for _, a in pairs):
            found.append("system From")
        elif _SYSTEM_NAME.search(frm[:500]):
            found.append("mail-system name in From")
    auto = ctx.header("auto-submitted").strip().lower()
    if auto and not auto.startswith("no"):
        found.append(f"Auto-Submitted: {auto[:40]}")
    if ctx.header("x-failed-recipients"):
        found.append("X-Failed-Recipients")
    return found


def _base_fields(msg: Message, st: rfc3464.Structure) -> dict:
    orig = st.original
    defects = tuple(type(d).__name__ for d in getattr(msg, "defects", ()))
    return {
        "message_id": get_header(msg, "message-id"),
        "subject": get_header(msg, "subject"),
        "from_": get_header(msg, "from"),
        "date": get_header(msg, "date"),
        "original_message_id": get_header(orig, "message-id") if orig is not None else None,
        "original_from": get_header(orig, "from") if orig is not None else None,
        "original_to": get_header(orig, "to") if orig is not None else None,
        "original_subject": get_header(orig, "subject") if orig is not None else None,
        "original_headers": tuple(orig._headers) if orig is not None else (),
        "defects": defects,
    }


def _candidates(ctx, packs):
    """The packs that may recognise the message, in order (see :class:`rules.Dispatch`);
    every pack when tracing, so that ``dsnparse explain`` shows why each did not match."""
    if ctx.trace is not None:
        return packs
    idx = ctx.candidates
    if idx is None:
        idx = ctx.candidates = rules.dispatch_for(packs).candidates(ctx.folded)
    return [packs[i] for i in idx]


def _vendor_pack(ctx, packs):
    """The first bounce pack that recognises a message with a delivery-status part: its text
    rules apply first, and its recipient lines fill in diagnostics the report leaves out."""
    if ctx.vendor is not _LAZY:
        return ctx.vendor
    ctx.vendor = None
    for pack in _candidates(ctx, packs):
        if rules.is_vendor_pack(pack) and \
                rules.detect(pack, ctx.header, ctx.text, ctx.timeout, None, ctx.folded, ctx.memo):
            ctx.note(f"pack {pack.id}: recognised the report's vendor")
            ctx.vendor = pack
            break
    return ctx.vendor


# The vendor of a delivery-status report is found only when it can change a verdict: a
# recipient without diagnostic (its lines in the vendor's text), or a diagnostic that a text
# rule of a pack that recognises the message matches.  Otherwise the verdict is the same
# whichever pack it is, and the dispatch over the report text is skipped.


def _vendor_if_it_matters(ctx, packs, text: str, status):
    """The vendor pack when its text rules could decide this verdict, else ``None`` (the
    same verdict): only a pack with a rule matching ``text`` that also recognises the
    message can be a vendor whose rules change anything."""
    if ctx.vendor is not _LAZY:
        return ctx.vendor
    owners = rules.packs_with_matching_rule(text, rules.vendor_text_packs(packs), ctx.timeout,
                                            status)
    for pack in owners:
        if rules.detect(pack, ctx.header, ctx.text, ctx.timeout, None, ctx.folded, ctx.memo):
            return _vendor_pack(ctx, packs)
    return None


def _recipient_of(r: dict) -> Optional[str]:
    # Final-Recipient is normally the address; some MTAs (Exim's local delivery) put a file
    # path there and the address in X-Actual-Recipient / Original-Recipient.
    cands = [rfc3464.address(r.get(k)) for k in ("final-recipient", "x-actual-recipient",
                                                  "original-recipient")]
    for c in cands:
        if c and "@" in c:
            return c
    return next((c for c in cands if c), None)


def _from_delivery_status(ds, base, ctx, packs, vendor=None) -> Report:
    pm = ds.per_message
    reporting_mta = rfc3464.strip_type(pm.get("reporting-mta"))
    single = len(ds.recipients) == 1
    in_text: Optional[dict] = None  # the vendor's recipient lines, read only if needed
    low_text: Optional[str] = None  # the report text in lower case, made only if needed
    verdicts = []
    for r in ds.recipients:
        diag = rfc3464.strip_type(unfold(r.get("diagnostic-code"))) if r.get("diagnostic-code") else None
        rcpt = _recipient_of(r)
        if not diag and rcpt:
            if vendor is _LAZY:  # its recipient lines may hold the diagnostic
                vendor = _vendor_pack(ctx, packs)
            if vendor is not None and vendor.recipients and in_text is None:
                region = rules.region(vendor, ctx.text(), ctx.timeout, ctx.folded.body())
                in_text = {f["recipient"].lower(): f for _, f in rules.extract(
                    vendor, region, ctx.header, ctx.timeout, folded=ctx.folded.body())}
        if not diag and rcpt and in_text and rcpt.lower() in in_text:
            diag = in_text[rcpt.lower()].get("diagnostic")
            if diag:
                if ctx.trace is not None:
                    ctx.note(f"{rcpt}: diagnostic taken from the {vendor.id} text: {diag[:100]!r}")
        if not diag and rcpt and not single and "@" in rcpt and len(verdicts) < _NEAR_RECIPIENTS:
            if low_text is None:
                low_text = ctx.text().lower()
            diag = diagnostic_near(ctx.text(), rcpt, low_text)
            if diag and ctx.trace is not None:
                ctx.note(f"{rcpt}: diagnostic taken from the report text after the address: "
                         f"{diag[:100]!r}")
        raw_status = r.get("status")
        field_status = codes.normalize_status(raw_status)
        field_reply = None
        if field_status is None and raw_status:
            field_status, field_reply = read_status_field(raw_status)
            if ctx.trace is not None and (field_status or field_reply):
                ctx.note(f"{rcpt}: Status {raw_status[:60]!r} read as status {field_status}, "
                         f"reply code {field_reply}")
        if field_status is None or _generic(field_status):
            ext = _extension_codes(r, diag)
            if ext is not None:
                name, value, ext_status, ext_reply, is_status = ext
                if ctx.trace is not None:
                    ctx.note(f"{rcpt}: code from extension field {name}: {value[:80]!r}")
                if not is_status and not diag:
                    diag = value
                elif ext_status and (field_status is None or more_specific(field_status, ext_status)):
                    field_status = ext_status
                field_reply = field_reply or ext_reply
        verdicts.append(build_verdict(
            ctx, packs, vendor,
            recipient=rcpt,
            original_recipient=rfc3464.address(r.get("original-recipient")),
            action=rfc3464.action(r.get("action")),
            field_status=field_status,
            reply_code=field_reply,
            diagnostic=diag,
            remote_mta=rfc3464.strip_type(r.get("remote-mta")),
            reporting_mta=rfc3464.strip_type(r["reporting-mta"]) if "reporting-mta" in r
            else reporting_mta,
            last_attempt_date=r.get("last-attempt-date"),
            rule="rfc3464",
            fallback_text=ctx.text() if single and not diag else None,
        ))
    return _report(kind=kind_of(verdicts), format=ds.format, verdicts=tuple(verdicts),
                   reporting_mta=reporting_mta, arrival_date=pm.get("arrival-date"), **base)


_HEADER_LINE = re.compile(
    r"[ \t>]*(?:to|from|cc|bcc|reply-to|sender|return-path|delivered-to|x-original-to|"
    r"final-recipient|original-recipient|x-actual-recipient|x-failed-recipients)[ \t]*:", re.I)
_NEAR_LINES = 4  # lines after the address line read for its diagnostic
_NEAR_HITS = 8   # occurrences of the address looked at
_NEAR_RECIPIENTS = 200  # recipients of one report looked for in its text (hostile input)


def diagnostic_near(text: str, address: str, low: Optional[str] = None) -> Optional[str]:
    """The diagnostic a report's text gives for ``address``: the rest of the line that
    names it and the next lines up to a blank line (at most 4), when they hold an enhanced
    status code or an SMTP reply code (:func:`dsnparse.status.find_codes`); else ``None``.

    The layout any MTA uses to list failed recipients with their remote replies, e.g.
    Exchange's "Diagnostic information for administrators" section::

        bob@far.example
        Remote Server returned '< #5.0.0 smtp; 5.4.7 Delivery expired (message too old)>'

    Lines that are header or delivery-status fields naming the address (``To:``,
    ``Final-Recipient:`` …) are skipped.  For recipients of a delivery-status report that
    gives them no diagnostic; plain ``str.find`` searches, linear in the text.  ``low`` is
    ``text.lower()`` when the caller has it (one per report, not one per recipient).  In
    the rare text whose lower-case form is longer (``İ``), the diagnostic is read from the
    lower-case text.
    """
    if low is None:
        low = text.lower()
    if len(low) != len(text):
        text = low
    needle = address.lower()
    pos = 0
    for _ in range(_NEAR_HITS):
        i = low.find(needle, pos)
        if i < 0:
            return None
        pos = i + len(needle)
        start = text.rfind("\n", 0, i) + 1
        if _HEADER_LINE.match(text, start) or (i > 0 and (text[i - 1].isalnum() or text[i - 1] in ".-_+")):
            continue
        end = pos
        lines = []
        for n in range(_NEAR_LINES + 1):
            nl = text.find("\n", end)
            line = text[end:nl if nl >= 0 else len(text)]
            if n and not line.strip():
                break
            lines.append(line.strip(" \t>:;,)]"))
            if nl < 0:
                break
            end = nl + 1
        block = " ".join(x for x in lines if x).strip()
        if block and len(block) <= 2000:
            st, _, reply = find_codes(block)
            if st or reply:
                return block
    return None


# Per-recipient extension fields (RFC 3464 §2.4 "X-…") that name a recipient, a person or
# a sender, never a code: skipped when looking for codes carried in extension fields.
_NOT_CODE_FIELDS = frozenset({"x-actual-recipient", "x-display-name", "x-postfix-sender"})


def _extension_codes(r: dict, diag: Optional[str]):
    """A status or diagnostic carried in a per-recipient extension field (RFC 3464 §2.4
    ``extension-field``; e.g. ``X-Supplementary-Info: < #5.1.1 smtp;550 5.1.1 …>``,
    ``X-Original-Status: 5.2.2``, a vendor ``X-…-Diagnostic: 550 5.1.1 …``), for a
    recipient whose ``Status`` is missing or generic (``X.0.0``) and whose diagnostic, if
    any, holds no code of its own.

    Chosen by shape, not by name: the first ``x-`` field whose value starts with an
    enhanced status (``5.2.2``, ``smtp; 5.2.2``, ``#5.2.2``) or a reply code
    (:func:`dsnparse.status.read_status_field`), or holds a reply code paired with an
    enhanced code (``550 5.1.1``) or an enhanced code in a relay's ``< #5.1.1 smtp; …>``.
    Returns ``(name, value, status, reply code, is_status)`` where ``is_status`` is ``True``
    for a field whose whole value is the code (a status, not a diagnostic), or ``None``."""
    if diag:
        d_status, _, d_reply = find_codes(diag)
        if d_status or d_reply:
            return None
    for name, value in r.items():
        if not name.startswith("x-") or name in _NOT_CODE_FIELDS or not value:
            continue
        value = value.strip()
        norm = codes.normalize_status(value)
        if norm is not None and len(value) <= len(norm) + 40:
            return name, value, norm, None, len(value.split()) == 1
        st, reply = read_status_field(value)
        if st or reply:
            return name, rfc3464.strip_type(value) or value, st, reply, False
        st, paired, reply = find_codes(value)
        if st and (paired or "#" in value):
            return name, value, st, reply, False
    return None


def _from_pack(pack, ctx, base, packs) -> Optional[Report]:
    text = rules.region(pack, ctx.text(), ctx.timeout, ctx.folded.body())
    exclude = rules.notified_addresses(ctx.header) if pack.exclude_notified else None
    found = rules.extract(pack, text, ctx.header, ctx.timeout, exclude, ctx.folded.body(),
                          complete=lambda local: original.local_part_in_original(pack, ctx, local),
                          addressed=lambda addr: original.addressed_in_original(pack, ctx, addr))
    if not found and pack.recipient_from_original:
        inner = original.returned_report(ctx)
        if inner is not None:
            ctx.note(f"pack {pack.id}: the returned message is itself a delivery-status report")
            report = _from_delivery_status(inner, base, ctx, packs)
            if report.verdicts:
                return report
        addr = original.returned_to(pack, ctx, exclude)
        if addr:
            ctx.note(f"pack {pack.id}: recipient from the returned message's To: {addr}")
            found = [("original-to", {"recipient": addr, "action": FAILED})]
    if not found:
        return None
    verdicts = []
    for rule_id, f in found:
        if ctx.trace is not None:
            ctx.note(f"pack {pack.id}: recipient rule {rule_id!r} found {f['recipient']}"
                     + (f" with {f['diagnostic'][:100]!r}" if f.get("diagnostic") else ""))
        verdicts.append(build_verdict(
            ctx, packs, pack,
            recipient=f["recipient"],
            action=f.get("action", FAILED),
            field_status=codes.normalize_status(f.get("status")),
            diagnostic=f.get("diagnostic"),
            reply_code=f.get("reply_code"),
            remote_mta=f.get("remote_mta"),
            rule=f"{pack.id}#{rule_id}",
            fallback_text=text if len(found) == 1 and not _has_code(f.get("diagnostic")) else None,
        ))
    return _report(kind=kind_of(verdicts), format=pack.id, verdicts=tuple(verdicts), **base)


def _has_code(diagnostic: Optional[str]) -> bool:
    """``True`` when ``diagnostic`` holds an enhanced status or a reply code: a recipient line
    without one (a label, a sentence naming the address) leaves the codes of a single
    recipient's report to the lines around it, rather than a 911."""
    if not diagnostic:
        return False
    status, _, reply = find_codes(diagnostic)
    return bool(status or reply or _BARE_REPLY.search(diagnostic))


_BARE_REPLY = re.compile(r"(?<![\d.])[45][0-5]\d(?![\d.])")  # a reply code anywhere in the line


def _complaint(ctx, base, pack=None) -> Report:
    """An ARF report (RFC 5965), or a message a ``kind: complaint`` pack recognised (a
    provider's own feedback-loop format): the complained-about recipients come from the
    ``Original-Rcpt-To`` fields, else the pack's recipient rules, else the ``To`` of the
    returned message."""
    fields: dict = {}
    rcpts: list = []
    if pack is not None:
        text = rules.region(pack, ctx.text(), ctx.timeout, ctx.folded.body())
        for rule_id, f in rules.extract(pack, text, ctx.header, ctx.timeout,
                                        folded=ctx.folded.body()):
            ctx.note(f"pack {pack.id}: recipient rule {rule_id!r} found {f['recipient']}")
            rcpts.append(f["recipient"])
    for part in ctx.st.feedback_parts:  # RFC 5965 §3.1 fields, one per line
        for line in rfc3464.ds_text(part).replace("\r", "").split("\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                k = k.strip().lower()
                fields.setdefault(k, v.strip())
                if k == "original-rcpt-to":
                    rcpts.append(v.strip())
    if not rcpts and ctx.st.original is not None:
        rcpts = [a for a in re.split(r",\s*", get_header(ctx.st.original, "to") or "") if a]
        if rcpts:
            ctx.note(f"complained-about recipient from the returned message's To: {rcpts}")
    ftype = (fields.get("feedback-type") or "").lower() or (pack.feedback_type if pack else None)
    rule = pack.id if pack is not None else "rfc5965"
    verdicts = []
    for r in rcpts or [None]:
        addr = rules.clean_address(r) if r else None
        verdicts.append(Verdict(final_recipient=addr, reason="feedback", feedback_type=ftype,
                                reporting_mta=rfc3464.strip_type(fields.get("reporting-mta")),
                                rule=rule))
    ctx.note(f"complaint ({ftype or 'feedback type unknown'}) about "
             f"{', '.join(v.final_recipient or '?' for v in verdicts)}")
    return Report(kind="complaint", format=rule, verdicts=tuple(verdicts), **base)


def _auto_reply(ctx, base, pack) -> Report:
    frm = ctx.header("from")
    addr = rules.clean_address(frm) if frm else None
    v = Verdict(final_recipient=addr, reason="vacation", rule=pack.id)
    ctx.note(f"auto-reply ({pack.id}) from {addr}")
    return Report(kind="auto_reply", format=pack.id, verdicts=(v,), **base)


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
