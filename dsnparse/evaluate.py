"""Measure accuracy against a labelled corpus (``dsnparse eval EXPECTATIONS.jsonl``).

The expectations format is that of ``shared/corpus/sisimai/expectations.jsonl`` and
``shared/corpus/not-bounces/expectations.jsonl``: one JSON object per email with ``file``
(relative to the expectations file), ``bounce``, ``family`` (optional), ``kind`` (optional)
and ``recipients`` (a list of ``{status, reply_code, reason, hardbounce}``).

Figures, per family and in total:

- ``detected``: emails labelled ``bounce: true`` that dsnparse recognised (any kind but
  ``not_bounce`` and ``error``; the Sisimai labels count auto-replies and feedback reports as
  bounces).
- ``false_pos``: emails labelled ``bounce: false`` reported as kind ``bounce`` or ``delay``.
- ``rcpt_count``: emails whose number of verdicts equals the number of expected recipients.
- ``class``/``exact``: recipients (paired in order) whose status class / whole status
  matches; ``exact`` only where the expectation is a real code, not a Sisimai ``X.0.9xx``
  pseudo-code, and both only where the expectation has a status.
- ``reason``: recipients whose reason matches once underscores are removed.
- ``address``: recipients (paired in order) whose expected ``address`` is the verdict's final
  or original recipient, compared case-insensitively; only where the expectation names one.
- ``suppress``: recipients labelled with ``hardbounce`` (complaints, auto-replies and
  delivery reports left out: expected reason ``feedback``, ``vacation`` or ``delivered``)
  where "the ledger suppresses the address after this one bounce" (the verdict as the one
  event of a fresh address, under the shipped policy ``rules/policy.yaml``) equals the
  label.  Sisimai calls a bounce hard when the address is dead (user unknown, host unknown,
  moved, not accepting mail permanently), which is the question the ledger must answer.

``options.leave_out`` (``dsnparse eval --leave-out FAMILY``) runs without the packs written
from those families; :func:`leave_one_out` does that for every family in turn, each family
measured with its own packs left out: what the generic layer does on formats it has not seen.

A labelled file that is an mbox of several messages counts as one email whose verdicts are
those of all its messages, in order (its expectation lists all their recipients).
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from .errors import InputError, SourceError
from .options import DEFAULT, Options

PSEUDO = re.compile(r"^[45]\.0\.9\d\d$")
DS_PART = re.compile(rb"message/(?:global-)?delivery-status", re.I)
DETECTED_KINDS = {"bounce", "delay", "delivered", "auto_reply", "complaint"}
FP_KINDS = {"bounce", "delay"}


@dataclass
class Tally:
    """Counters of one family (or the total); ``n``/``ok`` pairs per figure."""

    emails: int = 0
    bounces: int = 0
    detected: int = 0
    negatives: int = 0
    false_pos: int = 0
    rcpt_ok: int = 0
    class_n: int = 0
    class_ok: int = 0
    exact_n: int = 0
    exact_ok: int = 0
    reason_n: int = 0
    reason_ok: int = 0
    addr_n: int = 0
    addr_ok: int = 0
    left_out: Optional[int] = None  # packs left out for this family (leave_one_out only)
    suppress_n: int = 0
    suppress_ok: int = 0
    misses: list = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        for k, v in vars(other).items():
            if isinstance(v, int) and k != "left_out":
                setattr(self, k, getattr(self, k) + v)

    def rates(self) -> dict:
        def r(ok, n):
            return None if n == 0 else ok / n
        return {
            "detected": r(self.detected, self.bounces),
            "false_pos": self.false_pos,
            "rcpt_count": r(self.rcpt_ok, self.bounces),
            "status_class": r(self.class_ok, self.class_n),
            "status_exact": r(self.exact_ok, self.exact_n),
            "reason": r(self.reason_ok, self.reason_n),
            "address": r(self.addr_ok, self.addr_n),
            "suppress": r(self.suppress_ok, self.suppress_n),
        }


def norm_reason(r: Optional[str]) -> str:
    return (r or "").replace("_", "").lower()


def evaluate(expectations: Path, options: Options = DEFAULT, *, only_dsn: bool = False,
             families: Optional[Iterable[str]] = None) -> dict:
    """Run the parser over every email listed in ``expectations``.

    Args:
        expectations: path of an expectations JSON Lines file.
        options: parser options.
        only_dsn: keep only emails that contain a delivery-status part.
        families: keep only these families (``None``: all).

    Returns:
        ``{family: Tally}`` plus the key ``"TOTAL"``.

    Raises:
        SourceError: the expectations file cannot be read, a line of it is not a JSON object
            with a ``file`` key, or an email it lists cannot be read.
    """
    base = Path(expectations).parent
    try:
        lines = Path(expectations).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SourceError(f"{expectations}: {e.strerror or e}") from e
    fams = set(families) if families else None
    out: dict = defaultdict(Tally)
    judge = _OneBounce()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            exp = json.loads(line)
        except ValueError as e:
            raise SourceError(f"{expectations}:{n}: not a JSON object: {e}") from e
        if not isinstance(exp, dict) or not isinstance(exp.get("file"), str):
            raise SourceError(f"{expectations}:{n}: expected a JSON object with a \"file\" key")
        fam = exp.get("family") or exp.get("kind") or "all"
        if fams and fam not in fams:
            continue
        try:
            data = (base / exp["file"]).read_bytes()
        except OSError as e:
            raise SourceError(f"{expectations}:{n}: {base / exp['file']}: {e.strerror or e}") from e
        if only_dsn and not DS_PART.search(data):
            continue
        kind, verdicts = _parse_file(base / exp["file"], data, options)
        t = out[fam]
        t.emails += 1
        expected = exp.get("recipients") or []
        if not exp.get("bounce"):
            t.negatives += 1
            if kind in FP_KINDS:
                t.false_pos += 1
                t.misses.append((exp["file"], f"false positive: {kind}"))
            continue
        t.bounces += 1
        if kind in DETECTED_KINDS:
            t.detected += 1
        else:
            t.misses.append((exp["file"], f"not detected: {kind}"))
        if len(verdicts) == len(expected):
            t.rcpt_ok += 1
        else:
            t.misses.append((exp["file"], f"recipients {len(verdicts)} != {len(expected)}"))
        for i, e in enumerate(expected):
            v = verdicts[i] if i < len(verdicts) else None
            got_status = (v.status if v else None) or ""
            want = e.get("status") or ""
            if want:
                t.class_n += 1
                if got_status[:1] == want[:1]:
                    t.class_ok += 1
                elif PSEUDO.match(want):
                    t.misses.append((exp["file"], f"class {got_status or '-'} != {want}"))
                if not PSEUDO.match(want):
                    t.exact_n += 1
                    if got_status == want:
                        t.exact_ok += 1
                    else:
                        t.misses.append((exp["file"], f"status {got_status or '-'} != {want}"))
            if e.get("address"):
                t.addr_n += 1
                wanted = {a.lower() for a in (e["address"], e.get("original_recipient"),
                                              e.get("final_recipient")) if a}
                got = {a.lower() for a in ((v.final_recipient, v.original_recipient) if v else ())
                       if a}
                if wanted & got:
                    t.addr_ok += 1
                else:
                    t.misses.append((exp["file"], f"address {v.final_recipient if v else '-'} "
                                                  f"!= {e['address']}"))
            if isinstance(e.get("hardbounce"), bool) and \
                    norm_reason(e.get("reason")) not in NOT_FAILURES:
                t.suppress_n += 1
                got_s = judge(kind, v)
                if got_s == e["hardbounce"]:
                    t.suppress_ok += 1
                else:
                    t.misses.append((exp["file"], f"suppress {got_s} != hardbounce "
                                     f"{e['hardbounce']} (reason {v.reason if v else '-'}, "
                                     f"status {v.status if v else '-'}, fault "
                                     f"{v.fault if v else '-'} by {v.fault_rule if v else '-'})"))
            if e.get("reason"):
                t.reason_n += 1
                got_r = norm_reason(v.reason if v else None)
                if got_r == norm_reason(e["reason"]):
                    t.reason_ok += 1
                else:
                    t.misses.append((exp["file"], f"reason {got_r or '-'} != {e['reason']}"))
    total = Tally()
    for t in out.values():
        total.add(t)
    result = dict(sorted(out.items()))
    result["TOTAL"] = total
    return result


def leave_one_out(expectations: Path, options: Options = DEFAULT, *, only_dsn: bool = False,
                  families: Optional[Iterable[str]] = None) -> dict:
    """Every family of ``expectations`` measured with the packs written from it left out
    (``Options.leave_out``); a family no pack was written from is measured as it is.

    Returns:
        ``{family: Tally}`` plus ``"TOTAL"``, as :func:`evaluate`; each tally's ``left_out``
        attribute counts the packs that were left out for it.

    Raises:
        SourceError: as :func:`evaluate`.
    """
    from .rules import load_packs

    packs = load_packs(tuple(options.rules))
    own: dict = defaultdict(int)
    for p in packs:
        for f in p.written_from:
            own[f] += 1
    fams = set(families) if families else None
    names = []
    for line in Path(expectations).read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                exp = json.loads(line)
            except ValueError:
                continue  # evaluate() reports it
            fam = exp.get("family") or exp.get("kind") or "all" if isinstance(exp, dict) else None
            if fam and fam not in names and (fams is None or fam in fams):
                names.append(fam)
    out: dict = {}
    total = Tally()
    for fam in sorted(names):
        opts = options.replace(leave_out=options.leave_out | {fam}) if own.get(fam) else options
        t = evaluate(expectations, opts, only_dsn=only_dsn, families=[fam]).get(fam, Tally())
        t.left_out = own.get(fam, 0)
        out[fam] = t
        total.add(t)
    total.left_out = sum(own.get(f, 0) for f in names)
    out["TOTAL"] = total
    return out


NOT_FAILURES = {"feedback", "vacation", "delivered"}


class _OneBounce:
    """``judge(kind, verdict) -> bool``: does the shipped policy suppress a fresh address
    after this one verdict (recorded as the ledger records it)?"""

    def __init__(self):
        from .policy import load_policy

        self.policy = load_policy(_shipped_policy())

    def __call__(self, kind: str, v) -> bool:
        from .ledger import _event_kind
        from .policy import Event, decide

        ek = _event_kind(kind, v.action) if v is not None else None
        if ek is None:
            return False
        e = Event("rcpt@eval.invalid", 0.0, ek, 1, v.action, v.code, v.bounce_type, v.status,
                  v.reason, v.feedback_type, fault=v.fault)
        return decide([e], self.policy).suppressed


def _shipped_policy():
    from .policy import policy_path

    return policy_path()  # the defaults, whatever $DSNPARSE_POLICY says


def _parse_file(path: Path, data: bytes, options: Options):
    """``(kind, verdicts)`` of one labelled file.  A file that is an mbox of several messages
    (its expectation lists the recipients of all of them) gives the verdicts of every message
    in order, and the kind of the first that is not ``not_bounce``."""
    from .engine import parse
    from .sources import iter_messages, parse_item

    if data.startswith(b"From ") and b"\nFrom " in data:
        reports = [parse_item(src, d, options) for src, d in iter_messages(path, options)]
        if len(reports) > 1:
            kinds = [r.kind for r in reports if r.kind not in ("not_bounce", "error")]
            return (kinds[0] if kinds else reports[0].kind,
                    tuple(v for r in reports for v in r.verdicts))
    try:
        report = parse(data, options)
        return report.kind, report.verdicts
    except InputError:
        return "error", ()


def format_table(result: dict) -> str:
    """Render :func:`evaluate`'s result as a fixed-width table (percentages)."""
    addr = any(t.addr_n for t in result.values())
    packs = any(t.left_out is not None for t in result.values())
    head = (f"{'family':28} {'emails':>6} {'detect':>7} {'FP':>4} {'rcpts':>7} {'class':>7} "
            f"{'exact':>7} {'reason':>7} {'suppress':>8}" + (f" {'address':>7}" if addr else "")
            + (f" {'packs out':>9}" if packs else ""))
    rows = [head, "-" * len(head)]

    def pct(x):
        return "      -" if x is None else f"{100 * x:6.1f}%"
    for fam, t in result.items():
        r = t.rates()
        if fam == "TOTAL":
            rows.append("-" * len(head))
        rows.append(f"{fam[:28]:28} {t.emails:6d} {pct(r['detected'])} {t.false_pos:4d} "
                    f"{pct(r['rcpt_count'])} {pct(r['status_class'])} {pct(r['status_exact'])} "
                    f"{pct(r['reason'])}  {pct(r['suppress'])}"
                    + (f" {pct(r['address'])}" if addr else "")
                    + (f" {t.left_out or 0:9d}" if packs else ""))
    return "\n".join(rows)
