"""The suppression policy: from an address's history of bounce events to a decision.

The policy is data (``rules/policy.yaml``, documented there); this module loads it and
applies it.  :func:`decide` is a pure function of a list of :class:`Event` — the ledger
(:mod:`dsnparse.ledger`) stores the events and keeps each address's :class:`Decision`.

Public API::

    load_policy(path=None) -> Policy        # shipped defaults, merged with a user file
    decide(events, policy) -> Decision      # events of ONE address, any order
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from .errors import RuleError
from .resources import rules_dir

EVENT_KINDS = ("bounce", "delay", "delivered", "auto_reply", "complaint", "removed")
"""Kinds of ledger event.  ``removed`` is an operator's override; the others follow
:data:`dsnparse.model.KINDS` (a verdict with ``Action: delayed`` is a ``delay`` event and one
with ``delivered``/``relayed``/``expanded`` is a ``delivered`` event, whatever the kind of
its report)."""

TREATMENTS = ("hard", "soft", "ignore")
MATCH_KEYS = ("code", "status", "reason", "domain", "fault")
#: The keys each section of a policy file may hold; a key not listed (a typo such as
#: ``soft: {cuont: 2}``) is an error naming the key and its section.  A new policy setting
#: is added here as well as in :func:`_build`.
SECTION_KEYS: dict[str, frozenset] = {
    "ledger": frozenset({"path", "campaign_headers"}),
    "hard": frozenset({"reason"}),
    "soft": frozenset({"count", "min_span_hours", "reason"}),
    "complaint": frozenset({"suppress", "reason"}),
    "code_911": frozenset({"treat_as", "tag"}),
    "delivered": frozenset({"resets_soft_count", "actions"}),
}
# (the ``fault`` section holds one mapping per fault, its keys :data:`_FAULT_KEYS`, checked
# where it is read)
_TOP_KEYS = {"version", "overrides", "fault", *SECTION_KEYS}
_FAULT_KEYS = ("permanent", "transient", "tag")

DEFAULT_FAULT_RULES: tuple[tuple[str, str, str, Optional[str]], ...] = (
    ("recipient", "hard", "soft", None),
    ("mailbox", "soft", "soft", None),
    ("sender", "ignore", "ignore", None),
    ("message", "ignore", "ignore", None),
    ("network", "ignore", "ignore", None),
    ("unknown", "soft", "soft", "review_unknown"),
)
"""``(fault, permanent, transient, tag)`` as in the shipped ``rules/policy.yaml``."""


def policy_path() -> Path:
    """Return the path of the shipped default policy (``rules/policy.yaml``, a ``Path``)."""
    return rules_dir() / "policy.yaml"


@dataclass(frozen=True)
class Override:
    """One ``overrides`` rule: how a matching bounce counts.

    Attributes:
        match: match key (one of :data:`MATCH_KEYS`) → tuple of shell-style patterns; every
            key must match one of its patterns (case-insensitive).
        treat_as: ``"hard"``, ``"soft"`` or ``"ignore"``.
        tag: tag added to a suppression this rule contributes to, or ``None``.
        reason: reason replacing the verdict's (YAML key ``set_reason``), or ``None``.
        index: position in the ``overrides`` list (used in messages).
    """

    match: tuple[tuple[str, tuple[str, ...]], ...]
    treat_as: str
    tag: Optional[str] = None
    reason: Optional[str] = None
    index: int = 0

    def matches(self, event: "Event") -> bool:
        """Return ``True`` when every match key of the rule matches ``event`` (``bool``)."""
        for key, patterns in self.match:
            if key == "domain":
                value = event.address.rpartition("@")[2]
            elif key == "fault":
                value = event_fault(event)   # also for events stored without one
            else:
                value = getattr(event, key)
            if value is None:
                return False
            value = str(value).lower()
            if not any(fnmatch.fnmatchcase(value, p) for p in patterns):
                return False
        return True


@dataclass(frozen=True)
class Policy:
    """A loaded suppression policy (see ``rules/policy.yaml`` for the meaning of each key).

    Attributes:
        campaign_headers: header names (``str``) read for the campaign id, in order.
        db_path: ``ledger.path`` (``str``) or ``None``.
        hard_reason, soft_reason: fallback reasons (``str``) when a verdict has none.
        soft_count: soft bounces on distinct originals needed (``int`` ≥ 1).
        soft_min_span: seconds (``float``) the counted soft bounces must span.
        complaint_suppress: whether a complaint suppresses (``bool``).
        complaint_reason: reason of a complaint suppression (``str``).
        code_911_treat_as: ``"hard"``, ``"soft"`` or ``"ignore"``.
        code_911_tag: tag put on suppressions involving code 911 (``str`` or ``None``).
        delivered_resets: whether a delivery notice resets the soft count (``bool``).
        delivered_actions: RFC 3464 actions (``str``, lower-case) that count as delivered.
        fault_rules: ``(fault, permanent, transient, tag)`` per value of
            :data:`dsnparse.model.FAULTS` (the ``fault`` section): how a bounce counts by
            its fault and by the class of its status (5 permanent, 4 transient).
        overrides: tuple of :class:`Override`, first match wins.
        source: the file(s) the policy was read from (``str``), for messages.
    """

    campaign_headers: tuple[str, ...] = ()
    db_path: Optional[str] = None
    hard_reason: str = "hard_bounce"
    soft_reason: str = "soft_bounce_persistent"
    soft_count: int = 3
    soft_min_span: float = 72 * 3600.0
    complaint_suppress: bool = True
    complaint_reason: str = "complaint"
    code_911_treat_as: str = "hard"
    code_911_tag: Optional[str] = "review_911"
    delivered_resets: bool = True
    delivered_actions: tuple[str, ...] = ("delivered",)
    fault_rules: tuple[tuple[str, str, str, Optional[str]], ...] = DEFAULT_FAULT_RULES
    overrides: tuple[Override, ...] = ()
    source: str = field(default="", compare=False)

    def fault_rule(self, fault: str) -> Optional[tuple[str, str, str, Optional[str]]]:
        """The ``(fault, permanent, transient, tag)`` entry of ``fault`` or ``None``."""
        for entry in self.fault_rules:
            if entry[0] == fault:
                return entry
        return None

    @property
    def fingerprint(self) -> str:
        """A hex digest (``str``) of everything that affects decisions (not the headers)."""
        data = {
            "hard": self.hard_reason, "soft": [self.soft_reason, self.soft_count,
                                               self.soft_min_span],
            "complaint": [self.complaint_suppress, self.complaint_reason],
            "911": [self.code_911_treat_as, self.code_911_tag],
            "delivered": [self.delivered_resets, list(self.delivered_actions)],
            "fault": [list(f) for f in self.fault_rules],
            "overrides": [[list(map(list, o.match)), o.treat_as, o.tag, o.reason]
                          for o in self.overrides],
        }
        blob = json.dumps(data, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Event:
    """One ledger event for one address (a row of the ledger's ``events`` table).

    Attributes:
        address: normalised address (``str``).
        at: time of the event, epoch seconds UTC (``float``).
        kind: one of :data:`EVENT_KINDS`.
        id: ledger row id (``int``; 0 for events not stored) — the tie-breaker for equal ``at``.
        action, code, bounce_type, status, reason, feedback_type, reporting_mta: from the
            verdict (``str`` or ``None``).
        message_id: the bounce's own Message-ID; ``source``: where it was read from.
        original_message_id: Message-ID of the returned original; ``campaign``: its
            campaign/list id (see ``ledger.campaign_headers``).
        event_key: the deduplication key (``str``); ``note``: operator's note.
        recorded_at: when the ledger stored the event, epoch seconds (``float`` or ``None``).
        fault: the verdict's fault (:data:`dsnparse.model.FAULTS`) or ``None`` (an event
            recorded before ledger schema 2, or without one: then derived from ``reason``,
            ``status`` and ``code`` by :func:`dsnparse.fault.fault_of` when deciding).
        diagnostic_code, remote_mta: from the verdict (``str`` or ``None``), for
            ``dsnparse senders``.
    """

    address: str
    at: float
    kind: str
    id: int = 0
    action: Optional[str] = None
    code: Optional[str] = None
    bounce_type: Optional[str] = None
    status: Optional[str] = None
    reason: Optional[str] = None
    feedback_type: Optional[str] = None
    reporting_mta: Optional[str] = None
    message_id: Optional[str] = None
    source: Optional[str] = None
    original_message_id: Optional[str] = None
    campaign: Optional[str] = None
    event_key: str = ""
    note: Optional[str] = None
    recorded_at: Optional[float] = None
    fault: Optional[str] = None
    diagnostic_code: Optional[str] = None
    remote_mta: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a plain ``dict`` (``at`` also as ISO 8601 ``at_iso``)."""
        from dataclasses import asdict
        d = asdict(self)
        d["at_iso"] = iso(self.at)
        return d


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on one address.

    Attributes:
        address: the normalised address (``str``).
        suppressed: ``True`` when the address must not be mailed (``bool``).
        basis: ``"hard"``, ``"soft"`` or ``"complaint"`` when suppressed, else ``None``.
        reason: why (``str``; a reason name such as ``user_unknown``) or ``None``.
        since: epoch seconds (``float``) of the event that suppressed it, or ``None``.
        code, status: of the deciding event (``str`` or ``None``).
        tags: review tags (``tuple[str, ...]``, e.g. ``("review_911",)``).
        soft_count: soft bounces on distinct originals counted so far (``int``).
        event_ids: ledger ids of the events that led there (``tuple[int, ...]``): the hard
            bounce or complaint, or the counted soft bounces (also while not yet suppressed).
        removed_at: epoch seconds of the operator's last removal (``float``) or ``None``.
    """

    address: str
    suppressed: bool = False
    basis: Optional[str] = None
    reason: Optional[str] = None
    since: Optional[float] = None
    code: Optional[str] = None
    status: Optional[str] = None
    tags: tuple[str, ...] = ()
    soft_count: int = 0
    event_ids: tuple[int, ...] = ()
    removed_at: Optional[float] = None


def iso(ts: Optional[float]) -> Optional[str]:
    """Format epoch seconds as ISO 8601 UTC (``"2024-05-01T12:00:00Z"``); ``None`` → ``None``."""
    if ts is None:
        return None
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _classify(e: Event, p: Policy) -> tuple[str, list[str], Optional[str]]:
    """Return ``(treat_as, tags, reason)`` for a bounce event."""
    tags: list[str] = []
    reason = e.reason
    treat = e.bounce_type if e.bounce_type in ("hard", "soft") else "hard"
    if e.code == "911" or (e.code is None and e.bounce_type is None):
        treat = p.code_911_treat_as
        if p.code_911_tag:
            tags.append(p.code_911_tag)
    else:
        fault = event_fault(e)
        rule = p.fault_rule(fault) if fault else None
        if rule is not None:
            permanent = (e.status[:1] == "5") if e.status else e.bounce_type != "soft"
            treat = rule[1] if permanent else rule[2]
            if rule[3]:
                tags.append(rule[3])
    for ov in p.overrides:
        if ov.matches(e):
            treat = ov.treat_as
            if ov.tag:
                tags.append(ov.tag)
            if ov.reason:
                reason = ov.reason
            break
    return treat, tags, reason


def event_fault(e: Event) -> Optional[str]:
    """The fault of a bounce event: its own, else the one its reason, status and code give
    (:func:`dsnparse.fault.fault_of`; events of ledgers older than schema 2, events recorded
    without one).  ``None`` when nothing gives one (an event with only a ``bounce_type``):
    the event then counts by its ``bounce_type`` as before faults existed."""
    if e.fault:
        return e.fault
    from .fault import fault_of

    fault, rule = fault_of(e.reason, e.status, e.code)
    return None if rule == "none" else fault


def _original_key(e: Event) -> str:
    if e.original_message_id:
        return "mid:" + e.original_message_id
    if e.campaign:
        return "campaign:" + e.campaign
    return "event:" + (e.event_key or str(e.id))


def decide(events: Iterable[Event], policy: Policy) -> Decision:
    """Apply ``policy`` to the history of one address.

    Args:
        events: the address's events (:class:`Event`), in any order; they are read oldest
            first (by ``at``, then ``id``).  All must share one ``address``.
        policy: a :class:`Policy` (see :func:`load_policy`).

    Returns:
        The :class:`Decision` after the last event (an empty history gives a mailable
        decision with ``address`` ``""``).
    """
    evs = sorted(events, key=lambda e: (e.at, e.id))
    address = evs[0].address if evs else ""
    p = policy
    suppressed: Optional[Decision] = None
    soft: list[tuple[Event, list[str], Optional[str]]] = []
    removed_at: Optional[float] = None

    def distinct() -> int:
        return len({_original_key(ev) for ev, _t, _r in soft})

    for e in evs:
        if e.kind == "removed":
            suppressed, soft, removed_at = None, [], e.at
            continue
        if suppressed is not None:
            continue                      # sticky until an operator removes it
        if e.kind == "delivered":
            if p.delivered_resets and (e.action or "delivered") in p.delivered_actions:
                soft = []
            continue
        if e.kind == "complaint":
            if p.complaint_suppress:
                suppressed = Decision(address, True, "complaint", p.complaint_reason, e.at,
                                      e.code, e.status, (), distinct(), (e.id,))
            continue
        if e.kind != "bounce":
            continue                      # delays, auto-replies: never count
        treat, tags, reason = _classify(e, p)
        if treat == "ignore":
            continue
        if treat == "hard":
            suppressed = Decision(address, True, "hard", reason or p.hard_reason, e.at,
                                  e.code, e.status, tuple(tags), distinct(), (e.id,))
            continue
        soft.append((e, tags, reason))
        n = distinct()
        if n >= p.soft_count and e.at - soft[0][0].at >= p.soft_min_span:
            all_tags = tuple(dict.fromkeys(t for _e, ts, _r in soft for t in ts))
            suppressed = Decision(address, True, "soft", reason or p.soft_reason, e.at,
                                  e.code, e.status, all_tags, n,
                                  tuple(ev.id for ev, _t, _r in soft))
    if suppressed is not None:
        return Decision(**{**suppressed.__dict__, "removed_at": removed_at})
    tags = tuple(dict.fromkeys(t for _e, ts, _r in soft for t in ts))
    return Decision(address, False, None, None, None, None, None, tags, distinct(),
                    tuple(ev.id for ev, _t, _r in soft), removed_at)


# --------------------------------------------------------------------------- loading

def _merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read(path: Path) -> dict:
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise RuleError(path, f"cannot read policy: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RuleError(path, f"invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RuleError(path, "policy must be a mapping")
    return data


def load_policy(path: Union[str, os.PathLike, None] = None) -> Policy:
    """Load the suppression policy.

    The shipped ``rules/policy.yaml`` gives the defaults; ``path`` (else the file named by
    ``$DSNPARSE_POLICY``, if set) is merged over it: mappings key by key, lists replaced.

    Args:
        path: a user policy file (``str`` or path-like) or ``None``.

    Returns:
        A :class:`Policy`.

    Raises:
        RuleError: a file cannot be read (the shipped one included), is not YAML, or has an
            unknown key, a wrong type or an invalid value (the message names the file, the
            rule and the field).
    """
    default = policy_path()
    if not default.is_file():
        raise RuleError(default, "the shipped default policy is missing (broken install?)")
    from .codes import cached_load  # the shipped file through the signed data cache:

    data = cached_load(default, _read)  # a fresh process (dsnparse pipe) needs no yaml
    src = str(default)
    if path is None and os.environ.get("DSNPARSE_POLICY"):
        path = os.environ["DSNPARSE_POLICY"]
    if path is not None:
        user = _read(Path(path))
        unknown = set(user) - _TOP_KEYS
        if unknown:
            raise RuleError(path, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        data = _merge(data, user)
        src = str(path)
    return _build(data, src)


def _build(d: dict, src: str) -> Policy:
    def section(name: str) -> dict:
        v = d.get(name) or {}
        if not isinstance(v, dict):
            raise RuleError(src, "must be a mapping", field=name)
        unknown = set(v) - SECTION_KEYS[name]
        if unknown:
            key = sorted(map(str, unknown))[0]
            raise RuleError(src, f"unknown key {key!r} in section {name!r} (known: "
                                 f"{', '.join(sorted(SECTION_KEYS[name]))})",
                            field=f"{name}.{key}")
        return v

    def num(sec: str, key: str, v: Any, lo: float) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
            raise RuleError(src, f"must be a number >= {lo}", field=f"{sec}.{key}")
        return v

    def treat(v: Any, where: str, rule=None) -> str:
        if v not in TREATMENTS:
            raise RuleError(src, f"must be one of {', '.join(TREATMENTS)}", rule=rule,
                            field=where)
        return v

    led, hard, soft = section("ledger"), section("hard"), section("soft")
    comp, c911, dlv = section("complaint"), section("code_911"), section("delivered")
    heads = led.get("campaign_headers") or []
    if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
        raise RuleError(src, "must be a list of header names", field="ledger.campaign_headers")
    actions = dlv.get("actions", ["delivered"])
    if not isinstance(actions, list):
        raise RuleError(src, "must be a list", field="delivered.actions")
    ovs = d.get("overrides") or []
    if not isinstance(ovs, list):
        raise RuleError(src, "must be a list", field="overrides")
    overrides = []
    for i, o in enumerate(ovs):
        rid = f"overrides[{i}]"
        if not isinstance(o, dict):
            raise RuleError(src, "must be a mapping", rule=rid)
        extra = set(o) - set(MATCH_KEYS) - {"treat_as", "tag", "set_reason", "note"}
        if extra:
            raise RuleError(src, "unknown key", rule=rid, field=sorted(map(str, extra))[0])
        match = []
        for k in MATCH_KEYS:
            if k in o:
                vals = o[k] if isinstance(o[k], list) else [o[k]]
                if not vals:
                    raise RuleError(src, "must not be empty", rule=rid, field=k)
                match.append((k, tuple(str(v).lower() for v in vals)))
        if not match:
            raise RuleError(src, f"needs one of {', '.join(MATCH_KEYS)}", rule=rid)
        overrides.append(Override(tuple(match), treat(o.get("treat_as"), "treat_as", rid),
                                  o.get("tag"), o.get("set_reason"), i))
    fault_rules = _fault_rules(d.get("fault"), src, treat)
    count = num("soft", "count", soft.get("count", 3), 1)
    if int(count) != count:
        raise RuleError(src, "must be an integer", field="soft.count")
    return Policy(
        campaign_headers=tuple(heads),
        db_path=led.get("path"),
        hard_reason=str(hard.get("reason", "hard_bounce")),
        soft_reason=str(soft.get("reason", "soft_bounce_persistent")),
        soft_count=int(count),
        soft_min_span=float(num("soft", "min_span_hours", soft.get("min_span_hours", 72), 0))
        * 3600.0,
        complaint_suppress=bool(comp.get("suppress", True)),
        complaint_reason=str(comp.get("reason", "complaint")),
        code_911_treat_as=treat(c911.get("treat_as", "hard"), "code_911.treat_as"),
        code_911_tag=c911.get("tag", "review_911"),
        delivered_resets=bool(dlv.get("resets_soft_count", True)),
        delivered_actions=tuple(str(a).lower() for a in actions),
        fault_rules=fault_rules,
        overrides=tuple(overrides),
        source=src,
    )


def _fault_rules(sec: Any, src: str, treat) -> tuple:
    """The ``fault`` section: ``{fault: {permanent, transient, tag?}}`` for every fault."""
    from .model import FAULTS

    if not isinstance(sec, dict):
        raise RuleError(src, "must be a mapping of fault to {permanent, transient}",
                        field="fault")
    unknown = set(sec) - set(FAULTS)
    if unknown:
        raise RuleError(src, f"unknown fault (allowed: {', '.join(FAULTS)})",
                        field=f"fault.{sorted(map(str, unknown))[0]}")
    out = []
    for f in FAULTS:
        entry = sec.get(f)
        if not isinstance(entry, dict):
            raise RuleError(src, "must be a mapping with permanent and transient",
                            field=f"fault.{f}")
        extra = set(entry) - set(_FAULT_KEYS)
        if extra:
            raise RuleError(src, f"unknown key (allowed: {', '.join(_FAULT_KEYS)})",
                            field=f"fault.{f}.{sorted(map(str, extra))[0]}")
        tag = entry.get("tag")
        if tag is not None and (not isinstance(tag, str) or not tag.strip()):
            raise RuleError(src, "must be a non-empty string or null", field=f"fault.{f}.tag")
        out.append((f, treat(entry.get("permanent"), f"fault.{f}.permanent"),
                    treat(entry.get("transient"), f"fault.{f}.transient"), tag))
    return tuple(out)
