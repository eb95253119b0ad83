"""dsnparse: turn email bounces into verdicts a sender can act on.

Public API::

    parse(message, options=None) -> Report          # bytes, str or email.message.Message
                                                     # (MessageTimeout past options.message_timeout)
    parse_path(path, options=None) -> Iterator[tuple[str, Report]]   # file, dir, mbox, Maildir
    is_suppressed(address, db=None) -> bool          # ask the bounce ledger before sending

See :mod:`dsnparse.model` for :class:`Report` and :class:`Verdict`.
"""
from typing import TYPE_CHECKING

from .errors import DsnparseError, InputError, LedgerError, MessageTimeout, RuleError, SourceError

if TYPE_CHECKING:  # (imported on first use: see __getattr__)
    from .model import Report, Verdict

__all__ = ["parse", "parse_path", "is_suppressed", "Report", "Verdict", "DsnparseError",
           "InputError", "LedgerError", "MessageTimeout", "RuleError", "SourceError"]
__version__ = "0.1.0"


_engine_parse = None  # dsnparse.engine.parse, imported on the first call (start-up time)


def parse(message, options=None):
    """Parse one message; see :func:`dsnparse.engine.parse`."""
    global _engine_parse
    if _engine_parse is None:
        from .engine import parse as _engine_parse
    return _engine_parse(message, options)


def parse_path(path, options=None):
    """Iterate ``(source, Report)`` over a path; see :func:`dsnparse.sources.parse_path`."""
    from .sources import parse_path as _pp
    return _pp(path, options)


def is_suppressed(address, db=None):
    """``True`` when the bounce ledger says not to mail ``address``; see
    :func:`dsnparse.ledger.is_suppressed` (``db``: ledger path, default ``$DSNPARSE_DB``)."""
    from .ledger import is_suppressed as _is

    return _is(address, db)


def __getattr__(name):
    """``Report`` and ``Verdict``, from :mod:`dsnparse.model` on first use (PEP 562): the
    console script starts before the model's dataclasses are created (see
    :mod:`dsnparse.codecache`)."""
    if name in ("Report", "Verdict"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
