"""Provider event formats as data: one YAML mapping per provider (``providers/<name>.yaml``).

A mapping says where each RFC 3464 field is in the provider's JSON event and what each
event type means.  It is read with ``yaml.safe_load`` and checked when first used: an
unknown key, a kind that is not a ledger kind, a status that is not an RFC 3463 code or a
reason not in ``rules/reasons.yaml`` raises :class:`~dsnparse.errors.RuleError` naming the
file, the entry and the field.

A *path* is a dotted key path into the event (``bounce.bouncedRecipients``,
``delivery-status.code``); a field given as a list of paths takes the first that is present
and not empty.  Top level of a file::

    provider: ses                 # the file's name
    documentation: <URL>          # the provider's published format
    id, type, time, message_id:   # paths of the event id, event type, time, message id
    recipient, status, diagnostic, reply_code, remote_mta, reporting_mta, feedback_type:
                                  # default paths for every event type
    events:                       # one entry per event type the provider documents
      <type>:
        kind: bounce|delay|delivered|complaint|auto_reply|not_bounce
        kind_by: {field: <paths>, map: {<value>: <kind>}, default: <kind>}
        class: <paths>            # the provider's classification, joined with "/"
        recipients: {list: <path>, address: <path or ".">, status, diagnostic,
                     reply_code, action}   # one verdict per item of a list
        <any default path above>  # overrides for this type
        default_feedback_type: <ARF feedback type of a complaint without one>
        classes:                  # by provider class (shell pattern, first match wins)
          "<pattern>": {reason: <name>, status: <X.Y.Z>, kind: <kind>}

A class entry's ``kind`` replaces the type's kind; its ``reason`` and ``status`` apply only
when the SMTP fields of the event leave them undecided (reason ``undefined``, no status):
the event's own SMTP diagnostic always decides first, as for mail.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import RuleError

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "sparkpost")
"""The providers :func:`dsnparse.events.parse_event` reads (``POST /v1/events/<provider>``)."""
EVENT_KINDS = ("bounce", "delay", "delivered", "complaint", "auto_reply", "not_bounce")
FIELD_KEYS = ("recipient", "status", "diagnostic", "reply_code", "remote_mta",
              "reporting_mta", "feedback_type")
_TOP_KEYS = {"provider", "documentation", "id", "type", "time", "message_id", "events",
             *FIELD_KEYS}
_EVENT_KEYS = {"kind", "kind_by", "class", "recipients", "classes", "id", "time",
               "message_id", "default_feedback_type", "action", *FIELD_KEYS}
_RCPT_KEYS = {"list", "address", "status", "diagnostic", "reply_code", "action"}
_CLASS_KEYS = {"reason", "status", "kind"}
_STATUS = re.compile(r"[45]\.\d{1,3}\.\d{1,3}\Z")
_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")

Paths = tuple  # of tuples of key names


@dataclass(frozen=True)
class ClassEntry:
    """What a provider class means when the SMTP fields leave it open."""

    pattern: str
    reason: Optional[str] = None
    status: Optional[str] = None
    kind: Optional[str] = None


@dataclass(frozen=True)
class EventType:
    """One event type of a provider (an entry of ``events:``)."""

    name: str
    kind: Optional[str]
    kind_field: Paths = ()
    kind_map: tuple = ()          # ((value, kind), …)
    kind_default: Optional[str] = None
    class_paths: tuple = ()       # of Paths, joined with "/"
    recipients: Optional[dict] = None   # key -> Paths; "list" -> Paths
    fields: dict = field(default_factory=dict)   # FIELD_KEYS (+ id, time…) -> Paths
    default_feedback_type: Optional[str] = None
    action: Optional[str] = None
    classes: tuple = ()           # of ClassEntry

    def class_entry(self, provider_class: Optional[str]) -> Optional[ClassEntry]:
        """The first :class:`ClassEntry` whose pattern matches ``provider_class``."""
        if provider_class is None:
            return None
        for c in self.classes:
            if fnmatch.fnmatchcase(provider_class, c.pattern):
                return c
        return None


@dataclass(frozen=True)
class ProviderMapping:
    """A provider's event format, from its YAML file."""

    provider: str
    documentation: str
    fields: dict          # top-level paths (id, type, time, message_id, FIELD_KEYS)
    events: dict          # type name -> EventType
    path: str = ""

    def paths(self, etype: EventType, key: str) -> Paths:
        """The paths of ``key`` for ``etype`` (its own, else the provider's default)."""
        return etype.fields.get(key) or self.fields.get(key, ())


def get(obj: Any, path: tuple) -> Any:
    """The value at ``path`` (a tuple of keys) in nested dicts, or ``None``."""
    for k in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def first(obj: Any, paths: Paths) -> Any:
    """The first value of ``paths`` in ``obj`` that is present and not empty, else ``None``."""
    for p in paths:
        v = obj if p == () else get(obj, p)
        if v is not None and v != "" and v != [] and v != {}:
            return v
    return None


def _paths(path, entry, name, value) -> Paths:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, str) and v for v in value):
        raise RuleError(path, "expected a key path or a list of key paths", entry, name)
    return tuple(() if v == "." else tuple(v.split(".")) for v in value)


def _kind(path, entry, name, value) -> str:
    if value not in EVENT_KINDS:
        raise RuleError(path, f"unknown kind {value!r} (expected one of "
                              f"{', '.join(EVENT_KINDS)})", entry, name)
    return value


def _class_entry(path, entry, pattern, spec, reasons) -> ClassEntry:
    where = f"{entry}/classes/{pattern}"
    if not isinstance(spec, dict):
        raise RuleError(path, "expected a mapping (reason, status, kind)", where)
    bad = set(spec) - _CLASS_KEYS
    if bad:
        raise RuleError(path, f"unknown key(s) {', '.join(sorted(bad))}", where)
    reason, status, kind = spec.get("reason"), spec.get("status"), spec.get("kind")
    if reason is not None and reason not in reasons:
        raise RuleError(path, f"unknown reason {reason!r} (not in rules/reasons.yaml)",
                        where, "reason")
    if status is not None and not (isinstance(status, str) and _STATUS.match(status)):
        raise RuleError(path, f"not an RFC 3463 failure status: {status!r}", where, "status")
    if kind is not None:
        _kind(path, where, "kind", kind)
    return ClassEntry(str(pattern), reason, status, kind)


def _event_type(path, name, spec, reasons) -> EventType:
    entry = f"events/{name}"
    if not isinstance(spec, dict):
        raise RuleError(path, "expected a mapping", entry)
    bad = set(spec) - _EVENT_KEYS
    if bad:
        raise RuleError(path, f"unknown key(s) {', '.join(sorted(bad))}", entry)
    kind = spec.get("kind")
    kind_field: Paths = ()
    kind_map: tuple = ()
    kind_default = None
    if kind is not None:
        _kind(path, entry, "kind", kind)
    elif isinstance(spec.get("kind_by"), dict):
        kb = spec["kind_by"]
        if set(kb) - {"field", "map", "default"} or "field" not in kb or \
                not isinstance(kb.get("map"), dict):
            raise RuleError(path, "kind_by needs field, map and optionally default", entry,
                            "kind_by")
        kind_field = _paths(path, entry, "kind_by.field", kb["field"])
        kind_map = tuple((str(k), _kind(path, entry, "kind_by.map", v))
                         for k, v in kb["map"].items())
        kind_default = _kind(path, entry, "kind_by.default", kb["default"]) \
            if "default" in kb else None
    else:
        raise RuleError(path, "needs kind or kind_by", entry)
    rcpts = None
    if "recipients" in spec:
        r = spec["recipients"]
        if not isinstance(r, dict) or "list" not in r or "address" not in r or set(r) - _RCPT_KEYS:
            raise RuleError(path, f"recipients needs list and address (keys: "
                                  f"{', '.join(sorted(_RCPT_KEYS))})", entry, "recipients")
        rcpts = {k: _paths(path, entry, f"recipients.{k}", v) for k, v in r.items()}
    classes = spec.get("classes") or {}
    if not isinstance(classes, dict):
        raise RuleError(path, "expected a mapping of class patterns", entry, "classes")
    action = spec.get("action")
    if action is not None and action not in _ACTIONS:
        raise RuleError(path, f"unknown action {action!r}", entry, "action")
    fields_ = {k: _paths(path, entry, k, spec[k])
               for k in (*FIELD_KEYS, "id", "time", "message_id") if k in spec}
    return EventType(
        name=str(name), kind=kind, kind_field=kind_field, kind_map=kind_map,
        kind_default=kind_default,
        class_paths=tuple(_paths(path, entry, "class", c) for c in
                          (spec["class"] if isinstance(spec.get("class"), list)
                           else [spec["class"]] if "class" in spec else [])),
        recipients=rcpts, fields=fields_,
        default_feedback_type=spec.get("default_feedback_type"), action=action,
        classes=tuple(_class_entry(path, entry, p, s, reasons) for p, s in classes.items()))


def validate(path, data) -> ProviderMapping:
    """Check one provider file's data and build its :class:`ProviderMapping`.

    Raises:
        RuleError: the data does not follow the format of the module docstring.
    """
    from ..reasons import load_reasons

    if not isinstance(data, dict):
        raise RuleError(path, "expected a mapping at the top level")
    bad = set(data) - _TOP_KEYS
    if bad:
        raise RuleError(path, f"unknown top-level key(s) {', '.join(sorted(bad))}")
    name = data.get("provider")
    if name != Path(str(path)).stem:
        raise RuleError(path, f"provider {name!r} is not the file's name", None, "provider")
    if not isinstance(data.get("events"), dict) or not data["events"]:
        raise RuleError(path, "needs a non-empty events mapping", None, "events")
    if "type" not in data:
        raise RuleError(path, "needs the path of the event type", None, "type")
    reasons = load_reasons()
    fields_ = {k: _paths(path, None, k, data[k])
               for k in (*FIELD_KEYS, "id", "type", "time", "message_id") if k in data}
    events = {str(n): _event_type(path, n, s, reasons) for n, s in data["events"].items()}
    return ProviderMapping(str(name), str(data.get("documentation") or ""), fields_, events,
                           str(path))


_cache: dict = {}


def providers_dir() -> Path:
    """The directory of the shipped provider mappings (``Path``)."""
    return Path(__file__).with_name("providers")


def load_mapping(provider: str) -> ProviderMapping:
    """The shipped mapping of ``provider`` (read and checked once per process).

    Raises:
        ValueError: ``provider`` is not one of :data:`PROVIDERS`.
        RuleError: the shipped file is missing or invalid (a broken install).
    """
    m = _cache.get(provider)
    if m is not None:
        return m
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r} (expected one of {', '.join(PROVIDERS)})")
    import yaml

    path = providers_dir() / f"{provider}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RuleError(path, f"cannot read the provider mapping ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise RuleError(path, f"not valid YAML: {e}") from None
    m = _cache[provider] = validate(path, data)
    return m
