"""Whose fault a failure is: the ``fault`` of a verdict (:data:`dsnparse.model.FAULTS`).

The bounce-code table answers "which code, hard or soft" (the seed's mapping, unchanged);
``fault`` answers "is the address itself dead?", which is what a sender's list needs.  It is
decided from data only, in this order (``rules/faults.yaml`` repeats it):

1. code ``911`` (nothing gave a status) → ``unknown`` (rule ``code:911``);
2. the verdict's reason → its ``fault`` in ``rules/reasons.yaml`` (rule ``reason:<name>``),
   unless that is ``unknown`` (``undefined``, ``on_hold``): the reason comes from the text
   rules (vendor, remote-host and standard packs) or from the status's registry row, so it
   is the most specific evidence;
3. the status (RFC 3463 §3 subject and detail) → ``rules/faults.yaml`` ``status:`` row
   ``X.S.D``, else ``X.S`` (rule ``status:X.S.D`` / ``status:X.S``).  A status inferred from
   a bare SMTP reply code (RFC 5321 §4.2: ``552`` → ``5.2.2``) is read the same way;
4. else ``unknown`` (rule ``reason:<name>`` or ``none``).

Non-failures (the reasons of :data:`dsnparse.model.NON_FAILURE_REASONS`, and delivered /
relayed / expanded actions) get no fault: ``(None, None)``.

Public API::

    fault_of(reason, status, code=None, action=None) -> (fault | None, rule | None)
    load_status_faults(path=None) -> {"X.S.D" or "X.S": fault}
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

from .errors import RuleError
from .model import FAULTS, NON_FAILURE_REASONS

__all__ = ["fault_of", "load_status_faults", "default_path"]

_KEY = re.compile(r"X\.(0|[1-9][0-9]{0,2})(?:\.(0|[1-9][0-9]{0,2}))?\Z")
_SUCCESS = ("delivered", "relayed", "expanded")

_status_table: Optional[dict] = None
_reason_faults: Optional[dict] = None


def default_path() -> Path:
    """``rules/faults.yaml`` of the installed package or of the checkout (``Path``)."""
    from .resources import rules_dir

    return rules_dir() / "faults.yaml"


def load_status_faults(path: Union[str, Path, None] = None) -> dict:
    """Load and validate the status → fault table.

    Args:
        path: a faults.yaml; ``None`` for the shipped one (loaded once and cached).

    Returns:
        ``{key: fault}`` with keys ``"X.S"`` (a subject's default) and ``"X.S.D"``.

    Raises:
        RuleError: unreadable file, bad YAML, a top-level key other than ``status``, a key
            that is not ``X.S`` / ``X.S.D`` (RFC 3463 §2 numbers, no leading zeros), a value
            not in :data:`dsnparse.model.FAULTS`, or a subject 0–7 (RFC 3463 §3) without its
            ``X.S`` row.
    """
    global _status_table
    if path is None:
        if _status_table is None:
            from .codes import cached_load

            _status_table = cached_load(default_path(), _load)
        return _status_table
    return _load(Path(path))


def _load(path: Path) -> dict:
    from .codes import read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict) or set(data) != {"status"}:
        raise RuleError(path, "top level must be a mapping with the one key 'status'")
    table = data["status"]
    if not isinstance(table, dict) or not table:
        raise RuleError(path, "'status' must be a non-empty mapping", field="status")
    out = {}
    for key, value in table.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise RuleError(path, "key must be X.S or X.S.D (RFC 3463 subject and detail)",
                            rule=str(key), field="status")
        if value not in FAULTS:
            raise RuleError(path, f"fault must be one of {', '.join(FAULTS)}, got {value!r}",
                            rule=key, field="status")
        out[key] = value
    missing = [f"X.{s}" for s in range(8) if f"X.{s}" not in out]
    if missing:
        raise RuleError(path, f"every RFC 3463 subject needs its row: missing "
                              f"{', '.join(missing)}", field="status")
    return out


def _reasons() -> dict:
    global _reason_faults
    if _reason_faults is None:
        from .reasons import load_reasons

        _reason_faults = {n: r.fault for n, r in load_reasons().items()}
    return _reason_faults


def fault_of(reason: Optional[str], status: Optional[str], code: Optional[str] = None,
             action: Optional[str] = None) -> tuple[Optional[str], Optional[str]]:
    """Decide whose fault a failure is (see the module docstring for the order).

    Args:
        reason: the verdict's reason (a name of ``rules/reasons.yaml``) or ``None``.
        status: its enhanced status (``"5.7.26"``) or ``None``.
        code: its bounce-table code (``"911"`` means no status was found) or ``None``.
        action: its RFC 3464 action; a success action gives no fault.

    Returns:
        ``(fault, rule)``: a value of :data:`dsnparse.model.FAULTS` and what decided it
        (``"code:911"``, ``"reason:<name>"``, ``"status:X.S.D"``, ``"status:X.S"`` or
        ``"none"``), or ``(None, None)`` for a non-failure.  Never raises on odd input: an
        unknown reason or a malformed status falls through to the next step.
    """
    if reason in NON_FAILURE_REASONS or (action or "").lower() in _SUCCESS:
        return None, None
    if code == "911":
        return "unknown", "code:911"
    by_reason = _reasons().get(reason) if reason else None
    if by_reason is not None and by_reason != "unknown":
        return by_reason, "reason:" + reason
    if status:
        parts = status.split(".")
        if len(parts) == 3 and parts[0] in ("4", "5") and status.isascii() \
                and parts[1].isdigit() and parts[2].isdigit():
            table = load_status_faults()
            key = f"X.{parts[1]}.{parts[2]}"
            hit = table.get(key)
            if hit is None:
                key = f"X.{parts[1]}"
                hit = table.get(key)
            if hit is not None:
                return hit, "status:" + key
    if by_reason is not None:
        return by_reason, "reason:" + reason
    return "unknown", "none"
