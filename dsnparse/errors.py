"""The error tree of dsnparse: one base class, a few specific children.

``DsnparseError``
    ``InputError``   the input is not an email at all (empty, binary, no header section).
        ``MessageTimeout``  parsing it took longer than its time budget (hostile input).
    ``RuleError``    a rule pack or data file is broken; the message names file, rule, field.
    ``SourceError``  a path, mailbox or server could not be read.
    ``LedgerError``  the bounce ledger cannot be opened, read or written, or does not exist.

Parsing an email never raises for a *malformed* email: problems are recorded on the
:class:`~dsnparse.model.Report` as ``defects`` (the approach of Python's ``email`` package).
"""
from __future__ import annotations


class DsnparseError(Exception):
    """Base class of every error raised on purpose by dsnparse."""


class InputError(DsnparseError):
    """The input cannot be read as an email message (RFC 5322) at all."""


class RuleError(DsnparseError):
    """A rule pack or data file (codes.yaml, reasons.yaml, a pack) is invalid.

    Attributes:
        path: the file, ``rule``: the rule or entry id (or ``None``), ``field``: the field
        name (or ``None``).  ``str(error)`` gives all three in one line.
    """

    def __init__(self, path, message, rule=None, field=None):
        self.path, self.rule, self.field, self.reason = str(path), rule, field, message
        where = str(path)
        if rule is not None:
            where += f": rule {rule!r}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")


class SourceError(DsnparseError):
    """A file, directory, mailbox or server could not be read."""


class MessageTimeout(InputError):
    """Parsing one message took longer than its time budget (``Options.message_timeout``):
    hostile or pathological input.  Sources turn it into a record of kind ``error`` whose
    ``error`` names the budget and the stage that ran out of it, and go on with the next
    message (as for any :class:`InputError`).

    Attributes:
        seconds: the budget (``float``, seconds of wall-clock time).
        stage: what was running when the budget ran out (``str``).
    """

    def __init__(self, seconds: float, stage: str):
        self.seconds, self.stage = seconds, stage
        super().__init__(f"message_timeout: parsing took longer than the {seconds:g} s budget "
                         f"per message (in {stage})")


class LedgerError(DsnparseError):
    """The bounce ledger file cannot be opened, migrated, read or written, or (for a read)
    does not exist; the message names the file and says why.  Also importable as
    ``dsnparse.LedgerError`` and ``dsnparse.ledger.LedgerError``."""
