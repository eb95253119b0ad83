"""The reason taxonomy: ``rules/reasons.yaml`` (one entry per reason a verdict may carry).

Each entry has a one-line ``definition``, a ``default_status`` (the RFC 3463 code that best
expresses the reason, or ``null``) and ``infer_status`` (whether that code may stand in for a
missing status once a text rule has recognised the reason; see the file's header comment) and
a ``fault`` (whose problem the failure is, :data:`dsnparse.model.FAULTS`; ``null`` only for the
reasons of non-failures, :data:`dsnparse.model.NON_FAILURE_REASONS`).

:func:`load_reasons` loads and validates the file (a malformed entry raises
:class:`~dsnparse.errors.RuleError` naming the file and the entry); :func:`inferred_status`
is the one question the engine asks.  Loading is lazy and imports only ``yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .errors import RuleError
from .model import FAULTS, NON_FAILURE_REASONS

__all__ = ["Reason", "load_reasons", "inferred_status"]

_FIELDS = {"definition": True, "default_status": True, "infer_status": False, "fault": True}


@dataclass(frozen=True)
class Reason:
    """One entry of reasons.yaml."""

    name: str
    definition: str
    default_status: Optional[str]
    infer_status: bool = False
    fault: Optional[str] = None


_default: Optional[dict] = None


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
            unknown or missing field, an empty definition, a default status that is not an
            enhanced status code (class 2, 4 or 5), ``infer_status`` that is not a boolean or
            is true without a default status, a missing ``fault`` or one that is not in
            :data:`dsnparse.model.FAULTS` (``null`` is allowed only for the reasons of
            :data:`dsnparse.model.NON_FAILURE_REASONS`).
    """
    global _default
    if path is None:
        if _default is None:
            from .codes import cached_load

            _default = cached_load(default_path(), _load)
        return _default
    return _load(Path(path))


def _load(path: Path) -> dict:
    from .codes import normalize_status, read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise RuleError(path, "top level must be a mapping of reason names to entries")
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
        out[name] = Reason(name, definition.strip(), status, infer, fault)
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
