"""The bounce-code table: enhanced status (RFC 3463) → 3-digit code, hard/soft, reason.

Data lives in ``rules/codes.yaml`` (see its header comment); this module loads it once,
validates it (a broken entry raises :class:`~dsnparse.errors.RuleError` naming the file,
the entry and the field) and answers four questions:

* :func:`normalize_status` — is this text an enhanced status code (RFC 3464 §2.3.4)?
* :func:`status_from_reply_code` — which enhanced status expresses a bare SMTP reply code
  (RFC 5321 §4.2)?
* :func:`title` — the IANA registry title of ``X.Y.Z``.
* :func:`classify` — the verdict fields (code, hard/soft, descriptions, reason) for a status,
  an optional reply code and the RFC 3464 ``Action``.

Loading is lazy (on first use) and imports only ``yaml``; the validated shipped table is
cached as a signed pickle beside the pack cache (:func:`cached_load`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .errors import RuleError

__all__ = ["CodeRow", "Classification", "CodeTable", "EnhancedCode", "REASONS",
           "load_table", "normalize_status", "status_from_reply_code", "title", "classify"]

#: Reason names a table entry may use (kept in step with ``rules/reasons.yaml``).
REASONS = frozenset((
    "auth_failure", "bad_reputation", "blocked", "content_error", "delivered",
    "email_too_long", "exceed_limit", "expired", "failed_starttls", "feedback", "filtered",
    "has_moved", "host_unknown", "mailbox_full", "mailer_error", "mesg_too_big",
    "network_error", "no_relaying", "not_accept", "not_compliant_rfc", "on_hold",
    "policy_violation", "rate_limited", "rejected", "require_ptr", "security_error",
    "spam_detected", "speeding", "suspend", "syntax_error", "system_error", "system_full",
    "too_many_conn", "undefined", "user_unknown", "vacation", "virus_detected",
))

#: RFC 3464 actions that report success (no bounce code).
SUCCESS_ACTIONS = ("delivered", "relayed", "expanded")

# class "." 1*3DIGIT "." 1*3DIGIT (RFC 3464 §2.3.4), class restricted to 2/4/5 (RFC 3463 §2);
# ASCII digits only; the code must not run on into more digits, dots-and-digits or letters.
_STATUS_RE = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9A-Za-z_]|\.[0-9])")
_ENHANCED_KEY_RE = re.compile(r"X\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\Z")
_CODE_KEY_RE = re.compile(r"[0-9]{3}\Z")
_REPLY_KEY_RE = re.compile(r"[245][0-9]{2}\Z")

_CODE_FIELDS = {"type": True, "description": True, "description_fr": True}  # name -> required
_ENHANCED_FIELDS = {"title": True, "reason": True}
_REPLY_FIELDS = {"status": True, "meaning": True}
_SECTIONS = ("codes", "enhanced", "reply_codes")
# classify() relies on these rows: the class-5 "other" rows of each subject, and 911.
_REQUIRED_ROWS = ("500", "510", "520", "530", "540", "550", "560", "570", "911")


@dataclass(frozen=True)
class CodeRow:
    """One row of the bounce-code table (``codes:`` in codes.yaml)."""

    code: str
    bounce_type: str
    description: str
    description_fr: str


@dataclass(frozen=True)
class EnhancedCode:
    """One registered enhanced code (``enhanced:``): ``key`` like ``"X.1.1"``."""

    key: str
    title: Optional[str]
    reason: str


@dataclass(frozen=True)
class Classification:
    """What :func:`classify` decided for one recipient.

    Attributes:
        status: enhanced status as written (normalised by :func:`normalize_status`) or as
            inferred from the reply code; ``None`` when nothing gave one.
        status_source: ``status_field``, ``diagnostic_text``, ``reply_code``, ``rule`` or
            ``none`` (see :mod:`dsnparse.model`).
        code: 3-digit table code (``"511"``, ``"452"``, ``"447"``, ``"911"``); ``None`` for
            a success.
        bounce_type: ``"hard"``, ``"soft"`` or ``None`` (success).
        description, description_fr: the row's descriptions; for a 4YZ code that is not a
            row, the registry title of ``X.Y.Z`` and ``None``.
        reason: default reason of the status (``"delivered"`` for a success,
            ``"undefined"`` when nothing is known).
    """

    status: Optional[str]
    status_source: str
    code: Optional[str]
    bounce_type: Optional[str]
    description: Optional[str]
    description_fr: Optional[str]
    reason: Optional[str]


@dataclass(frozen=True)
class CodeTable:
    """The validated contents of one codes.yaml."""

    path: str
    rows: dict            # "511" -> CodeRow
    enhanced: dict        # (subject, detail) ints -> EnhancedCode
    reply_codes: dict     # "550" -> (status, meaning)

    def row(self, code: str) -> Optional[CodeRow]:
        """Return the row of a 3-digit code, or ``None``."""
        return self.rows.get(code)

    def enhanced_code(self, subject: int, detail: int) -> Optional[EnhancedCode]:
        """Return the registry entry of ``X.subject.detail``, or ``None``."""
        return self.enhanced.get((subject, detail))


# --------------------------------------------------------------------------- loading

_default: Optional[CodeTable] = None


def default_path() -> Path:
    """``rules/codes.yaml`` of the installed package or of the checkout."""
    from .resources import rules_dir
    return rules_dir() / "codes.yaml"


def load_table(path: Union[str, Path, None] = None) -> CodeTable:
    """Load and validate a codes.yaml.

    Args:
        path: the file; ``None`` for the shipped table, which is loaded once and cached.

    Raises:
        RuleError: the file cannot be read, is not YAML, or an entry is malformed
            (``rule`` = the entry key, ``field`` = the offending field).
    """
    global _default
    if path is None:
        if _default is None:
            _default = cached_load(default_path(), _load)
        return _default
    return _load(Path(path))


_DATA_CACHE_VERSION = 2


def cached_load(path: Path, build):
    """``build(path)`` through a signed cache file in the pack cache directory
    (``cachefile.cache_dir()``, off with ``DSNPARSE_CACHE=0``; see :mod:`dsnparse.cachefile`:
    only a file this user wrote, with a matching HMAC, is unpickled), keyed by the file's
    path, mtime and size and the package version: a fresh process then needs neither
    ``yaml`` nor the validation (start-up).

    Only for the shipped data files (the result must be picklable); a missing, stale,
    damaged or foreign cache is rebuilt, an unwritable one is skipped.
    """
    import zlib

    from . import __version__, cachefile
    from .cachefile import cache_dir

    d = cache_dir()
    try:
        st = os.stat(path)
    except OSError:
        return build(path)  # let build() report the unreadable file
    if d is None:
        return build(path)
    key = (_DATA_CACHE_VERSION, __version__, str(path), st.st_mtime_ns, st.st_size)
    f = d / f"data-{path.stem}-{zlib.crc32(str(path).encode()):08x}.pickle"
    value = cachefile.read(f, key)
    if value is not None:
        return value
    value = build(path)
    cachefile.write(f, key, value)
    return value


_loader_cache: list = []


def _yaml_loader():
    """Return ``(yaml, Loader)``: a safe loader (C if available) refusing duplicate keys."""
    if _loader_cache:
        return _loader_cache[0]
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                except TypeError:   # unhashable key: the base constructor reports it
                    break
                if dup:
                    raise RuleError(self.name, "duplicate key "
                                    f"(line {key_node.start_mark.line + 1})", rule=str(key))
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    _loader_cache.append((yaml, _UniqueKeyLoader))
    return _loader_cache[0]


def read_yaml(path: Path):
    """Read a YAML data file safely (``SafeLoader``; duplicate keys are an error).

    Raises:
        RuleError: the file cannot be read, is not valid YAML, or repeats a key.
    """
    yaml, loader = _yaml_loader()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(path, f"cannot read: {exc}") from None
    ldr = loader(text)
    ldr.name = str(path)
    try:
        return ldr.get_single_data()
    except yaml.YAMLError as exc:
        raise RuleError(path, f"invalid YAML: {exc}".replace("\n", " ")) from None
    finally:
        ldr.dispose()


def _load(path: Path) -> CodeTable:
    return _validate(path, read_yaml(path))


def _check_fields(path, section, key, entry, allowed):
    if not isinstance(entry, dict):
        raise RuleError(path, f"{section} entry must be a mapping, not {type(entry).__name__}",
                        rule=key)
    for name in entry:
        if name not in allowed:
            raise RuleError(path, f"unknown field in {section} entry "
                                  f"(allowed: {', '.join(allowed)})", rule=key, field=str(name))
    for name, required in allowed.items():
        if required and name not in entry:
            raise RuleError(path, f"missing field in {section} entry", rule=key, field=name)


def _text(path, key, entry, name, *, nullable=False):
    value = entry[name]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RuleError(path, f"must be a non-empty string, got {value!r}", rule=key, field=name)
    return value


def _validate(path: Path, data) -> CodeTable:
    if not isinstance(data, dict):
        raise RuleError(path, "top level must be a mapping with sections "
                              + ", ".join(_SECTIONS))
    for name in data:
        if name not in _SECTIONS:
            raise RuleError(path, f"unknown section (allowed: {', '.join(_SECTIONS)})",
                            rule=str(name))
    for name in _SECTIONS:
        if not isinstance(data.get(name), dict):
            raise RuleError(path, f"section {name!r} missing or not a mapping", rule=name)

    rows = {}
    for key, entry in data["codes"].items():
        if not isinstance(key, str) or not _CODE_KEY_RE.match(key):
            raise RuleError(path, "code key must be a quoted 3-digit string like \"511\"",
                            rule=str(key))
        _check_fields(path, "codes", key, entry, _CODE_FIELDS)
        btype = entry["type"]
        if btype not in ("hard", "soft"):
            raise RuleError(path, f"type must be 'hard' or 'soft', got {btype!r}",
                            rule=key, field="type")
        rows[key] = CodeRow(key, btype, _text(path, key, entry, "description"),
                            _text(path, key, entry, "description_fr"))
    for key in _REQUIRED_ROWS:
        if key not in rows:
            raise RuleError(path, "required row missing from codes", rule=key)

    enhanced = {}
    for key, entry in data["enhanced"].items():
        m = _ENHANCED_KEY_RE.match(key) if isinstance(key, str) else None
        if m is None:
            raise RuleError(path, "enhanced key must look like \"X.1.1\" (subject and detail "
                                  "1-3 digits, no leading zeros)", rule=str(key))
        _check_fields(path, "enhanced", key, entry, _ENHANCED_FIELDS)
        reason = entry["reason"]
        if reason not in REASONS:
            raise RuleError(path, f"unknown reason {reason!r}", rule=key, field="reason")
        enhanced[(int(m.group(1)), int(m.group(2)))] = EnhancedCode(
            key, _text(path, key, entry, "title", nullable=True), reason)
    if (0, 0) not in enhanced:
        raise RuleError(path, "required entry missing from enhanced", rule="X.0.0")

    replies = {}
    for key, entry in data["reply_codes"].items():
        if not isinstance(key, str) or not _REPLY_KEY_RE.match(key):
            raise RuleError(path, "reply code key must be a quoted 3-digit string starting "
                                  "with 2, 4 or 5", rule=str(key))
        _check_fields(path, "reply_codes", key, entry, _REPLY_FIELDS)
        status = entry["status"]
        if normalize_status(status) != status or status[0] != key[0]:
            raise RuleError(path, f"status must be an enhanced code of class {key[0]}, "
                                  f"got {status!r}", rule=key, field="status")
        replies[key] = (status, _text(path, key, entry, "meaning"))

    return CodeTable(str(path), rows, enhanced, replies)


# --------------------------------------------------------------------------- questions

def _parts(status: str) -> tuple[int, int, int]:
    cls, subject, detail = status.split(".")
    return int(cls), int(subject), int(detail)


def normalize_status(text: Optional[str]) -> Optional[str]:
    """Return the enhanced status code at the start of ``text``, or ``None``.

    Accepts RFC 3464 §2.3.4 ``status-code`` (``DIGIT "." 1*3DIGIT "." 1*3DIGIT``) with the
    class restricted to 2, 4 or 5 (RFC 3463 §2), surrounded by optional white space and
    followed by an optional comment: ``" 5.1.1 (bad mailbox)"`` → ``"5.1.1"``.  The code is
    returned as written (leading zeros are kept; lookups compare numbers).  Anything else —
    ``"5.1"``, ``"3.1.1"``, ``"5.1.1.2"``, ``"5.1234.1"``, ``""`` — gives ``None``.
    """
    if not isinstance(text, str):
        return None
    m = _STATUS_RE.match(text.strip())
    return m.group(0) if m else None


def status_from_reply_code(reply_code: str, *, table: Optional[CodeTable] = None) -> Optional[str]:
    """Return the enhanced status that expresses an SMTP reply code's meaning.

    Uses the ``reply_codes`` section (RFC 5321 §4.2; RFC 3207, RFC 4954, RFC 7504):
    ``"552"`` → ``"5.2.2"``, ``"550"`` → ``"5.0.0"``.  Any other code of class 2, 4 or 5 gives
    the class-only ``"2.0.0"``, ``"4.0.0"``, ``"5.0.0"``.  ``None`` when ``reply_code`` is not
    three ASCII digits, or is a 1xx/3xx code (no enhanced class exists for those).
    """
    if not isinstance(reply_code, str):
        return None
    code = reply_code.strip()
    if not _REPLY_KEY_RE.match(code):
        return None
    tbl = table or load_table()
    known = tbl.reply_codes.get(code)
    return known[0] if known else f"{code[0]}.0.0"


def title(status: str, *, table: Optional[CodeTable] = None) -> Optional[str]:
    """Return the IANA registry title of ``X.Y.Z`` for ``status`` (``"5.1.1"`` or ``"X.1.1"``).

    ``None`` for an unregistered code, for X.6.10 (registered without a title) and for text
    that is not a status.
    """
    if not isinstance(status, str):
        return None
    text = status.strip()
    if text[:1] in ("X", "x"):
        text = "5" + text[1:]
    norm = normalize_status(text)
    if norm is None or norm != text:
        return None
    _, subject, detail = _parts(norm)
    entry = (table or load_table()).enhanced_code(subject, detail)
    return entry.title if entry else None


def _reason(tbl: CodeTable, subject: int, detail: int) -> str:
    entry = tbl.enhanced_code(subject, detail) or tbl.enhanced_code(subject, 0)
    return entry.reason if entry else "undefined"


def classify(status: Optional[str], reply_code: Optional[str] = None, *,
             status_source: str = "status_field", action: Optional[str] = "failed",
             table: Optional[CodeTable] = None) -> Classification:
    """Map a status (and reply code, and action) to the bounce-code table.

    Args:
        status: enhanced status as found (``"5.1.1"``, ``" 4.4.7 (expired)"``) or ``None``.
        reply_code: SMTP reply code (``"550"``) when the text carries one, else ``None``.
        status_source: where ``status`` came from (kept when ``status`` is used).
        action: RFC 3464 §2.3.3 action (case-insensitive; ``None`` counts as ``failed``).
        table: a :class:`CodeTable`; ``None`` for the shipped one.

    Rules, in order:

    1. Success — ``action`` is ``delivered``, ``relayed`` or ``expanded`` (RFC 3464 §2.3.3):
       code, bounce_type and descriptions ``None``, reason ``delivered``; the status is kept
       (or inferred from the reply code when there is none).
    2. No usable status — missing, not an RFC 3464 §2.3.4 status code, or a ``2.x.x``
       (success, RFC 3463 §3.1) on a failure/delay: with a reply code the status is the one
       of the code's RFC 5321 §4.2 meaning (:func:`status_from_reply_code`),
       ``status_source="reply_code"``.  A bare reply code is never looked up as if it were a
       collapsed enhanced code (reply 550 is not row 550).  Without one (or with a code that
       gives no failure status): code ``911``, hard, status ``None``, source ``none``, reason
       ``undefined``.
    3. ``5.Y.Z`` (permanent, RFC 3463 §3.1): Y and Z one digit and a row ``5YZ`` → that row
       (5.1.1 → 511, 5.2.2 → 522 soft).  No such row (5.1.10, 5.3.5, 5.7.26, 5.4.8) → the
       subject's "other" row ``5Y0``.  Subject outside 0–7 (RFC 3463 §3 defines 0–7) → 500.
       The status is kept exactly as written.
    4. ``4.Y.Z`` (persistent transient, RFC 3463 §3.1) is always soft.  The 4XX rows are
       RFC 5321 basic reply codes, so a reply code 421/450/451/452 gives that row
       (4.2.2 with 452 → 452).  Otherwise code ``4YZ`` described by the registry title of
       X.Y.Z (4.4.7 → 447 "Delivery time expired"); a detail ≥ 10 or an unregistered
       X.Y.Z → ``4Y0`` with the title of X.Y.0 (4.7.26 → 470); subject outside 0–7 → ``400``
       "Other undefined Status".  ``description_fr`` is ``None`` for these.
    5. ``action == "delayed"`` → soft whatever the class, 911 included: a delay is never
       final (RFC 3464 §2.3.3).
    6. reason = the ``reason`` of X.Y.Z in the registry table, else of X.Y.0, else
       ``undefined``; never ``delivered`` here (the reason of the success codes X.1.5
       "Destination address valid" and X.3.6 says nothing of why a failure or delay
       happened): ``undefined`` instead.
    """
    tbl = table or load_table()
    act = (action or "failed").strip().lower()
    norm = normalize_status(status)

    if act in SUCCESS_ACTIONS:
        source = status_source
        if norm is None and reply_code is not None:
            norm = status_from_reply_code(reply_code, table=tbl)
            source = "reply_code"
        return Classification(norm, source if norm else "none", None, None, None, None,
                              "delivered")

    if norm is None or norm[0] == "2":
        norm = None
        if reply_code is not None:
            inferred = status_from_reply_code(reply_code, table=tbl)
            if inferred is not None and inferred[0] in "45":
                norm, status_source = inferred, "reply_code"
    if norm is None:
        row = tbl.rows["911"]
        btype = "soft" if act == "delayed" else row.bounce_type
        return Classification(None, "none", row.code, btype, row.description,
                              row.description_fr, "undefined")

    cls, subject, detail = _parts(norm)
    reason = _reason(tbl, subject, detail)
    if reason == "delivered":  # a failure or a delay (rule 6)
        reason = "undefined"
    if cls == 5:
        if subject > 7:
            row = tbl.rows["500"]
        else:
            row = (tbl.row(f"5{subject}{detail}") if detail < 10 else None) \
                or tbl.rows[f"5{subject}0"]
        code, btype, desc, desc_fr = row.code, row.bounce_type, row.description, row.description_fr
    else:  # class 4
        reply = reply_code.strip() if isinstance(reply_code, str) else None
        row = tbl.row(reply) if reply and reply[0] == "4" else None
        if row is not None:
            code, desc, desc_fr = row.code, row.description, row.description_fr
        elif subject > 7:
            code, desc, desc_fr = "400", _title_of(tbl, 0, 0), None
        else:
            entry = tbl.enhanced_code(subject, detail) if detail < 10 else None
            if entry is not None and entry.title:
                code, desc = f"4{subject}{detail}", entry.title
            else:
                code, desc = f"4{subject}0", _title_of(tbl, subject, 0)
            desc_fr = None
        btype = "soft"
    if act == "delayed":
        btype = "soft"
    return Classification(norm, status_source, code, btype, desc, desc_fr, reason)


def _title_of(tbl: CodeTable, subject: int, detail: int) -> Optional[str]:
    entry = tbl.enhanced_code(subject, detail)
    return entry.title if entry else None
