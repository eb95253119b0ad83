"""The reason taxonomy (``rules/reasons.yaml``) and the one reason classifier.

Each entry of reasons.yaml has a one-line ``definition``, Sisimai's name (``sisimai``) and
hard/soft sense (``bounce``), the typical RFC 3463 codes (``statuses``) and phrasings
(``phrasing``), a ``default_status`` (the RFC 3463 code that best expresses the reason, or
``null``), ``infer_status`` (whether that code may stand in for a missing status once a text
rule has recognised the reason), optional ``when`` conditions (see the file's header comment)
and a ``fault`` (whose problem the failure is, :data:`dsnparse.model.FAULTS`; ``null`` only
for the reasons of non-failures, :data:`dsnparse.model.NON_FAILURE_REASONS`).

:func:`load_reasons` loads and validates the file (a malformed entry raises
:class:`~dsnparse.errors.RuleError` naming the file, the entry and the field);
:func:`inferred_status` and :func:`decide` are the questions the engine asks;
:func:`smtp_command` reads which SMTP command a reply answered.  Loading is lazy and imports
only ``yaml``.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional, Union

from .errors import RuleError
from .model import FAULTS, NON_FAILURE_REASONS

__all__ = ["Reason", "Condition", "load_reasons", "inferred_status", "decide", "smtp_command",
           "COMMANDS", "BOUNCE_TYPES"]

# name -> required
_FIELDS = {"definition": True, "sisimai": True, "bounce": True, "statuses": True,
           "phrasing": True, "default_status": True, "infer_status": False, "when": False,
           "fault": True}
#: Sisimai's hard/soft sense of a reason (the ``bounce`` field).
BOUNCE_TYPES = ("hard", "soft", "hard_if_permanent", "none")
#: The SMTP commands a ``when`` condition may name (RFC 5321 §4.1; CONNECT is the greeting
#: and HELO/EHLO, "none" that the text does not say).
COMMANDS = ("CONNECT", "MAIL", "RCPT", "DATA", "none")
_COND_KEYS = {"phrase", "command", "status", "not_status", "class", "action"}
_ACTIONS = ("failed", "delayed")
_STATUS_PAT = re.compile(r"(?:[245X])\.(?:\d{1,3}|\*)\.(?:\d{1,3}|\*)\Z")


@dataclass(frozen=True)
class Condition:
    """One ``when`` condition of a reason: every field that is not ``None`` must hold.

    ``phrase``/``command``/``actions``/``classes`` are frozensets of names; ``status`` and
    ``not_status`` compiled patterns over the message's own status (``None`` matched as the
    literal ``"none"``)."""

    reason: str
    phrase: Optional[frozenset] = None
    command: Optional[frozenset] = None
    status: Optional[re.Pattern] = None
    not_status: Optional[re.Pattern] = None
    classes: Optional[frozenset] = None
    actions: Optional[frozenset] = None


@dataclass(frozen=True)
class Reason:
    """One entry of reasons.yaml."""

    name: str
    definition: str
    default_status: Optional[str]
    infer_status: bool = False
    sisimai: str = ""
    bounce: str = "soft"
    statuses: tuple = ()
    phrasing: tuple = ()
    when: tuple = ()
    fault: Optional[str] = None


_default: Optional[dict] = None
_conditions: Optional[tuple] = None


def default_path() -> Path:
    """``rules/reasons.yaml`` of the installed package or of the checkout."""
    from .resources import rules_dir

    return rules_dir() / "reasons.yaml"


def load_reasons(path: Union[str, Path, None] = None) -> dict:
    """Load and validate a reasons.yaml.

    Args:
        path: the file; ``None`` for the shipped one (loaded once and cached).

    Returns:
        ``{name: Reason}``.

    Raises:
        RuleError: unreadable file, bad YAML, a name that is not a lower-case identifier, an
            unknown or missing field, an empty definition, a ``sisimai`` name that is not the
            reason's name without underscores, a ``bounce`` not in :data:`BOUNCE_TYPES`,
            ``statuses`` that are not status patterns (``X.1.1``, ``5.2.2``), ``phrasing``
            that is not a list of strings, a default status that is not an enhanced status
            code (class 2, 4 or 5), ``infer_status`` that is not a boolean or is true without
            a default status, a malformed ``when`` condition or one naming an unknown reason,
            a missing ``fault`` or one that is not in :data:`dsnparse.model.FAULTS` (``null`` is allowed only for
            the reasons of :data:`dsnparse.model.NON_FAILURE_REASONS`).
    """
    global _default
    if path is None:
        if _default is None:
            from .codes import cached_load

            _default = cached_load(default_path(), _load)
        return _default
    return _load(Path(path))


def _strings(path, name, field, value) -> tuple:
    if not isinstance(value, list) or not all(isinstance(s, (str, int)) and str(s).strip()
                                              for s in value):
        raise RuleError(path, f"{field} must be a list of non-empty strings", rule=name, field=field)
    return tuple(str(s).strip() for s in value)


def _status_regex(path, name, field, values) -> re.Pattern:
    alts = []
    for v in values:
        if v == "none":
            alts.append("none")
            continue
        if not _STATUS_PAT.match(v):
            raise RuleError(path, f"{v!r} is not a status pattern (e.g. X.1.1, 5.2.*, none)",
                            rule=name, field=field)
        c, s, d = v.split(".")
        alts.append(r"\.".join(("[245]" if c == "X" else c,
                                r"\d+" if s == "*" else s, r"\d+" if d == "*" else d)))
    return re.compile(r"(?:%s)\Z" % "|".join(alts))


def _condition(path, name, i, cond, names) -> Condition:
    where = f"when[{i}]"
    if not isinstance(cond, dict) or not cond:
        raise RuleError(path, "a condition must be a non-empty mapping", rule=name, field=where)
    for k in cond:
        if k not in _COND_KEYS:
            raise RuleError(path, f"unknown condition key {k!r} (allowed: {', '.join(sorted(_COND_KEYS))})",
                            rule=name, field=where)
    out = {}
    for k, v in cond.items():
        vals = _strings(path, name, f"{where}.{k}", v)
        if not vals:
            raise RuleError(path, "empty list", rule=name, field=f"{where}.{k}")
        if k == "phrase":
            bad = [x for x in vals if x != "none" and x not in names]
            if bad:
                raise RuleError(path, f"unknown reason {bad[0]!r}", rule=name, field=f"{where}.phrase")
            out["phrase"] = frozenset(vals)
        elif k == "command":
            bad = [x for x in vals if x not in COMMANDS]
            if bad:
                raise RuleError(path, f"unknown command {bad[0]!r} (allowed: {', '.join(COMMANDS)})",
                                rule=name, field=f"{where}.command")
            out["command"] = frozenset(vals)
        elif k in ("status", "not_status"):
            out[k] = _status_regex(path, name, f"{where}.{k}", vals)
        elif k == "class":
            if any(x not in ("4", "5") for x in vals):
                raise RuleError(path, "class must be 4 or 5", rule=name, field=f"{where}.class")
            out["classes"] = frozenset(vals)
        else:  # action
            if any(x not in _ACTIONS for x in vals):
                raise RuleError(path, f"action must be one of {', '.join(_ACTIONS)}",
                                rule=name, field=f"{where}.action")
            out["actions"] = frozenset(vals)
    return Condition(name, **out)


def _load(path: Path) -> dict:
    from .codes import normalize_status, read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise RuleError(path, "top level must be a mapping of reason names to entries")
    names = {n for n in data if isinstance(n, str)}
    out = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise RuleError(path, "reason name must be a lower-case identifier", rule=str(name))
        if not isinstance(entry, dict):
            raise RuleError(path, f"entry must be a mapping, not {type(entry).__name__}", rule=name)
        for f in entry:
            if f not in _FIELDS:
                raise RuleError(path, f"unknown field (allowed: {', '.join(_FIELDS)})",
                                rule=name, field=str(f))
        for f, required in _FIELDS.items():
            if required and f not in entry:
                raise RuleError(path, "missing field", rule=name, field=f)
        definition = entry["definition"]
        if not isinstance(definition, str) or not definition.strip() or "\n" in definition.strip():
            raise RuleError(path, "definition must be a non-empty one-line string",
                            rule=name, field="definition")
        if entry["sisimai"] != name.replace("_", ""):
            raise RuleError(path, f"sisimai must be the name without underscores "
                                  f"({name.replace('_', '')!r}), got {entry['sisimai']!r}",
                            rule=name, field="sisimai")
        if entry["bounce"] not in BOUNCE_TYPES:
            raise RuleError(path, f"bounce must be one of {', '.join(BOUNCE_TYPES)}, "
                                  f"got {entry['bounce']!r}", rule=name, field="bounce")
        statuses = _strings(path, name, "statuses", entry["statuses"])
        for s in statuses:
            if not _STATUS_PAT.match(s) or "*" in s:
                raise RuleError(path, f"{s!r} is not a status code (X.1.1 or 5.1.1)",
                                rule=name, field="statuses")
        phrasing = _strings(path, name, "phrasing", entry["phrasing"])
        status = entry["default_status"]
        if status is not None and (not isinstance(status, str) or normalize_status(status) != status):
            raise RuleError(path, f"default_status must be an enhanced status code or null, "
                                  f"got {status!r}", rule=name, field="default_status")
        infer = entry.get("infer_status", False)
        if not isinstance(infer, bool):
            raise RuleError(path, f"infer_status must be true or false, got {infer!r}",
                            rule=name, field="infer_status")
        if infer and (status is None or status[0] not in "45"):
            raise RuleError(path, "infer_status needs a failure default_status (class 4 or 5)",
                            rule=name, field="infer_status")
        fault = entry["fault"]
        if fault is None and name not in NON_FAILURE_REASONS:
            raise RuleError(path, f"fault must be one of {', '.join(FAULTS)} (null only for "
                                  f"{', '.join(NON_FAILURE_REASONS)})", rule=name, field="fault")
        if fault is not None and fault not in FAULTS:
            raise RuleError(path, f"fault must be one of {', '.join(FAULTS)}, got {fault!r}",
                            rule=name, field="fault")
        when = entry.get("when", [])
        if not isinstance(when, list):
            raise RuleError(path, "when must be a list of conditions", rule=name, field="when")
        conds = tuple(_condition(path, name, i, c, names) for i, c in enumerate(when))
        out[name] = Reason(name, definition.strip(), status, infer, entry["sisimai"],
                           entry["bounce"], statuses, phrasing, conds, fault)
    return out


def inferred_status(reason: Optional[str], reply_code: Optional[str] = None,
                    action: Optional[str] = None) -> Optional[str]:
    """The status to use for a failure that has none, from the reason a text rule gave.

    ``None`` unless the reason's ``infer_status`` is true.  The class follows the SMTP reply
    code when there is one of class 4 or 5 (``452`` + mailbox_full → ``4.2.2``), is 4 for a
    ``delayed`` recipient and 5 for a ``failed`` one (the MTA gave up: RFC 3464 §2.3.3;
    ``expired`` on a failed recipient is ``5.4.7``), and is the default status's class
    otherwise.
    """
    entry = load_reasons().get(reason) if reason else None
    if entry is None or not entry.infer_status:
        return None
    status = entry.default_status
    cls = status[0]
    if isinstance(reply_code, str) and reply_code[:1] in ("4", "5"):
        cls = reply_code[0]
    elif (action or "").lower() == "delayed":
        cls = "4"
    elif (action or "").lower() == "failed":
        cls = "5"
    return cls + status[1:]


def conditions() -> tuple:
    """Every ``when`` condition of the shipped reasons.yaml, in file order."""
    global _conditions
    if _conditions is None:
        _conditions = tuple(c for r in load_reasons().values() for c in r.when)
    return _conditions


def decide(phrase: Optional[str], *, status: Optional[str], reply_code: Optional[str],
           action: Optional[str], command: Callable[[], str]) -> Optional[str]:
    """The reason a ``when`` condition of reasons.yaml gives, or ``None`` (keep ``phrase``,
    else the status table's reason).

    Args:
        phrase: the reason the shared phrase lists gave, ``None`` when none matched.  Call
            this only when the reason was not given by the recognising vendor pack or a
            remote-host pack (those are final).
        status: the status the message itself gave (``Status`` field or diagnostic text;
            not one inferred from the reason), or ``None``.
        reply_code: the SMTP reply code, or ``None``.
        action: the RFC 3464 action (``failed``, ``delayed``), or ``None``.
        command: returns the SMTP command the reply answered (:func:`smtp_command`); called
            only when a condition that may otherwise hold names commands.

    Returns:
        A reason name, or ``None``.  The first condition (in file order) that holds decides.
    """
    key = phrase or "none"
    st = status or "none"
    cls = (status[0] if status and status[0] in "45" else
           reply_code[0] if isinstance(reply_code, str) and reply_code[:1] in ("4", "5") else
           "4" if action == "delayed" else None)
    cmd = None
    for c in conditions():
        if c.phrase is not None and key not in c.phrase:
            continue
        if c.actions is not None and action not in c.actions:
            continue
        if c.status is not None and not c.status.match(st):
            continue
        if c.not_status is not None and c.not_status.match(st):
            continue
        if c.classes is not None and cls not in c.classes:
            continue
        if c.command is not None:
            if cmd is None:
                cmd = command() or "none"
            if cmd not in c.command:
                continue
        return c.reason
    return None


# The SMTP command a reply answered, as MTAs write it next to the reply: Postfix "(in reply to
# RCPT TO command)", "(in reply to end of DATA command)"; Exim "SMTP error from remote mail
# server after RCPT TO:<…>", "after end of data", "after initial connection"; Sendmail's
# transcript ">>> RCPT To:<…>" / ">>> DATA"; qmail "does not like recipient", "failed after I
# sent the message", "but sender was rejected", "but my name was rejected"; bracketed command
# tags ("[RCPT_TO]", "SMTP:RCPT").  RFC 5321 §4.1 names the commands.
_COMMAND_RE = re.compile(
    r"(?P<CONNECT>after initial connection|\b(?:in reply|in response) to (?:the )?(?:HELO|EHLO|LHLO"
    r"|(?:initial )?greeting)\b|\bafter (?:HELO|EHLO|LHLO)\b|>>> (?:HELO|EHLO|LHLO)\b"
    r"|but my name was rejected|refused to talk to me|\bSMTP greeting\b)"
    r"|(?P<DATA>\bend of data\b|\bafter (?:pipelined )?DATA\b|>>> DATA\b|\bDATA command\b"
    r"|\b(?:in reply|in response) to (?:the )?DATA\b|failed after I sent the message"
    r"|\bfailed on DATA\b|\bSMTP:DATA\b|\[DATA\]|\bafter (?:sending|I sent) the message\b)"
    r"|(?P<RCPT>\bRCPT TO\b|>>> RCPT\b|\bRCPT_TO\b|\bSMTP:RCPT\b|\[RCPT\]|does not like recipient"
    r"|\b(?:in reply|in response) to (?:the )?RCPT\b|\bmost progress was RCPT\b)"
    r"|(?P<MAIL>\bMAIL FROM\b|>>> MAIL\b|\bMAIL_FROM\b|\bSMTP:MAIL\b"
    r"|\b(?:in reply|in response) to (?:the )?MAIL\b|but sender was rejected)",
    re.I)


# The same alternation over lower-cased text, its leading word boundaries checked in Python:
# with no ``\b`` or ``re.I`` in front of its branches the engine skips straight to the
# characters a branch can start with (5x faster on a report text).
def _scanner():
    src = _COMMAND_RE.pattern.lower()
    for g in COMMANDS[:-1]:
        src = src.replace(f"(?p<{g.lower()}>", f"(?P<{g}>")
    return re.compile(re.sub(r"(\(\?P<\w+>|\|)\\b", r"\1", src))


_COMMAND_SCAN = _scanner()


# Every branch of the alternation holds one of these words: one Aho-Corasick pass finds
# them (about 1 a report), and the alternation runs only on the few characters around each
# (trying it at every position of a report cost ~20 µs a message, a fifth of the verdict).
_ANCHORS = ("rcpt", "data", "helo", "ehlo", "lhlo", "greeting", "initial connection",
            "talk to me", "like recipient", "sent the message", "sending the message",
            "name was rejected", "sender was rejected", "mail from", "mail_from", "smtp:mail",
            ">>> mail", "to mail", "to the mail")
_REACH = 48  # characters of a branch before or after its anchor word, at most
_anchor_finder = None


def _windows(lower: str, pos: int) -> list:
    """``(start, end)`` spans of ``lower`` from ``pos`` on that may hold a command: around
    each anchor word, merged; the whole text when the automaton is not available."""
    global _anchor_finder
    if _anchor_finder is None:
        try:
            import ahocorasick_rs

            _anchor_finder = ahocorasick_rs.AhoCorasick(list(_ANCHORS))
        except ImportError:  # pragma: no cover - a declared dependency
            _anchor_finder = False
    if not _anchor_finder:
        return [(pos, len(lower))]
    try:
        hits = _anchor_finder.find_matches_as_indexes(lower)
    except Exception:  # noqa: BLE001 - e.g. lone surrogates the automaton will not take
        return [(pos, len(lower))]
    spans: list = []
    for _, a, b in hits:
        lo, hi = max(pos, a - _REACH), min(len(lower), b + _REACH)
        if hi <= lo:
            continue
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((lo, hi))
    return spans


def _scan(lower: str, pos: int = 0):
    """``(start, end, command)`` of every command named in ``lower`` (lower-cased text) from
    ``pos`` on, in order; a match that starts inside a word is skipped (the ``\\b``)."""
    for lo, hi in _windows(lower, pos):
        for m in _COMMAND_SCAN.finditer(lower, lo, hi):
            i = m.start()
            if i and (lower[i - 1].isalnum() or lower[i - 1] == "_") and \
                    (lower[i].isalnum() or lower[i] == "_"):
                continue
            yield i, m.end(), m.lastgroup


def smtp_command(diagnostic: Optional[str], text: Optional[str] = None,
                 recipient: Optional[str] = None) -> str:
    """The SMTP command (one of :data:`COMMANDS`) the reply in ``diagnostic`` answered.

    The last command named in the diagnostic text decides (a transcript lists the commands
    in order, the failing one last).  When the diagnostic names none and ``text`` (the
    report text) is given, the last line of ``text`` that holds ``recipient`` is found: the
    last command named on that line or on the indented lines that continue it decides (an
    Exim report's "SMTP error from remote mail server after MAIL FROM:…" under the address, a
    Sendmail transcript's ">>> RCPT To:<recipient>"), else the last one named before it (a
    Sendmail transcript's ">>> DATA" followed by "<<< 550 … <recipient>").  Without a
    recipient, the last command named in ``text``.  ``"none"`` when nothing says.  Linear:
    one alternation with no nested repeats, over at most a few thousand characters.
    """
    last = None
    for _, _, last in _scan((diagnostic or "").lower()):
        pass
    if last is not None:
        return last
    if not text:
        return "none"
    starts, ends, names = _commands(text)
    if not recipient:
        return names[-1] if names else "none"
    pos = _lower(text).rfind(recipient.lower())
    if pos < 0:
        return "none"
    line_start = text.rfind("\n", 0, pos) + 1
    indent = _indent(text, line_start)
    end = pos
    limit = min(len(text), pos + 1500)
    while end < limit:  # the recipient's line and the lines indented deeper that continue it
        nl = text.find("\n", end)
        end = limit if nl < 0 or nl > limit else nl
        if end >= limit or _indent(text, end + 1) <= indent or text[end + 1:end + 2] == "\n":
            break
        end += 1
    found = _last_within(starts, ends, names, line_start, end)
    if found is None:
        found = _last_within(starts, ends, names, max(0, line_start - 4000), line_start)
    return found or "none"


@lru_cache(maxsize=4)
def _commands(text: str) -> tuple:
    """Every command named in ``text``: (start offsets, end offsets, names), in text order;
    one search per report text, however many recipients ask (the alternation tries each
    branch at every position: a search per recipient over a large report was quadratic)."""
    starts, ends, names = [], [], []
    for start, end, name in _scan(_lower(text)):
        starts.append(start)
        ends.append(end)
        names.append(name)
    return starts, ends, names


def _last_within(starts, ends, names, lo: int, hi: int) -> Optional[str]:
    """The last command whose match lies within ``text[lo:hi]``, or ``None``."""
    i = bisect_right(starts, hi) - 1
    while i >= 0 and starts[i] >= lo:
        if ends[i] <= hi:
            return names[i]
        i -= 1
    return None


@lru_cache(maxsize=4)
def _lower(text: str) -> str:
    """``text.lower()``, kept for the report text that every recipient of a message searches
    (a report of thousands of recipients would otherwise lower it once per recipient).
    Offsets into it are offsets into ``text``: a character whose lower case is longer
    ("İ") is kept as it is."""
    low = text.lower()
    if len(low) != len(text):
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low


def _indent(text: str, i: int) -> int:
    """The number of spaces and tabs at ``text[i:]`` (at most 40)."""
    n = 0
    while n < 40 and text[i + n:i + n + 1] in (" ", "\t") and i + n < len(text):
        n += 1
    return n
