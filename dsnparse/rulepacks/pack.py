"""The data classes of a loaded rule pack (:class:`Pack` and its conditions and rules), and
the values a pack may state (``kind``, a recipient rule's ``action``).  See
``rules/README.md`` for every field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .pattern import Pattern


DATA_FILES = {"codes.yaml", "reasons.yaml", "policy.yaml", "faults.yaml"}
KINDS = ("bounce", "auto_reply", "complaint")
# RFC 3464 §2.3.3 actions a recipient rule may state (a pack may describe a provider's own
# delivery notification: ``delivered`` recipients make the report kind ``delivered``)
RECIPIENT_ACTIONS = ("failed", "delayed", "delivered")


@dataclass(frozen=True)
class Condition:
    """One detection test: a pattern on a header (``header``) or on the report text (``body``)."""

    target: str  # "header" or "body"
    name: Optional[str]  # header name (lower case) for header conditions
    pattern: Pattern
    key: tuple = field(init=False, compare=False, repr=False)  # the per-message memo key

    def __post_init__(self):
        object.__setattr__(self, "key", (self.target, self.name, self.pattern.source))


@dataclass(frozen=True)
class RecipientRule:
    """A recipient pattern: named groups ``recipient``, ``reply_code``, ``status``,
    ``diagnostic``, ``remote_mta``; ``continuation`` extends the diagnostic over following
    lines (``indented``: lines starting with whitespace; ``paragraph``: up to a blank line,
    the next paragraph when the matched line ends the match's own; ``block``: the lines
    that directly follow, up to a blank line or a line that starts with an address, nothing
    when the next line is blank)."""

    id: str
    pattern: Pattern
    header: Optional[str] = None
    continuation: Optional[str] = None
    action: str = "failed"
    section_start: Optional[Pattern] = None
    section_end: Optional[Pattern] = None


@dataclass(frozen=True)
class TextRule:
    """Diagnostic text → reason (and optionally an enhanced status).  ``if_status``, when
    set, restricts the rule to verdicts whose status so far matches it."""

    id: str
    pattern: Pattern
    reason: Optional[str] = None
    status: Optional[str] = None
    if_status: Optional[Pattern] = None


@dataclass(frozen=True)
class Pack:
    """One rule pack (one YAML file).  See ``rules/README.md`` for every field."""

    id: str
    path: str
    order: int = 500
    kind: str = "bounce"
    description: str = ""
    mta: tuple = ()
    detect_any: tuple = ()
    detect_all: tuple = ()
    detect_none: tuple = ()
    report_start: tuple = ()
    original_start: tuple = ()
    recipients: tuple = ()
    text_rules: tuple = ()
    samples: tuple = ()
    needs_recipient: bool = True
    header_names: frozenset = frozenset()
    feedback_type: Optional[str] = None
    exclude_notified: bool = False
    recipient_from_original: bool = False
    keywords: tuple = ()
    # the labelled corpus families the pack was written from (``dsnparse eval --leave-out``)
    written_from: tuple = ()
    # groups of case-folded literals; the pack can only recognise a message in whose header
    # section plus report text every group has a literal (None: no literal can be derived)
    triggers: Optional[tuple] = None

    @property
    def detects(self) -> bool:
        """``True`` when the pack recognises messages (else it only carries text rules)."""
        return bool(self.detect_any or self.detect_all)

    @property
    def shared(self) -> bool:
        """``True`` for a pack whose text rules apply to any MTA (no ``mta``, no detection)."""
        return not self.mta and not self.detects
