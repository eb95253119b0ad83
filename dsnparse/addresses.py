"""Address validation with flanker, imported only when an address needs it.

flanker's parser (Mailgun) validates and normalises RFC 5322 address forms that a simple
pattern does not take: quoted local parts, display names, comments.  Importing it costs
about 0.2–0.4 s, so callers first try a cheap pattern and come here only for the odd ones.
Its lexer logs every token it cannot read as a warning; those are silenced (the caller
decides what an unparseable address means).

Python 3.13 removed the ``cgi`` and ``imghdr`` modules (PEP 594) that flanker and webob
import; the project depends on ``legacy-cgi`` and ``standard-imghdr`` there (pyproject.toml).
Should flanker still fail to import, the fallback is the callers' own pattern (an address
inside ``<…>``), and one warning on the ``dsnparse`` logger says so: address validation is
then weaker, never silently.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

_parse: Any = None


def flanker_address(value: str) -> Optional[str]:
    """The ``local@domain`` that flanker reads in ``value``, or ``None`` (unparseable, or
    flanker not importable).  Never raises."""
    global _parse
    if _parse is None:
        try:
            # the first import in a fresh environment builds its parser tables (ply) and logs
            # a warning per unreachable grammar symbol: quiet that too
            logging.getLogger("flanker").setLevel(logging.ERROR)
            from flanker.addresslib import address as fa

            # its modules set their own levels (the lexer's is INFO): quiet each of them
            for name in list(logging.root.manager.loggerDict):
                if name == "flanker" or name.startswith("flanker."):
                    logging.getLogger(name).setLevel(logging.ERROR)
            _parse = fa.parse
        except Exception as e:  # noqa: BLE001 - not installed or broken: fall back for good
            _parse = False
            logging.getLogger("dsnparse").warning(
                "flanker cannot be imported (%s: %s): odd address forms (display names, "
                "quoted local parts) are read with a simple pattern instead; on Python 3.13+ "
                "install legacy-cgi and standard-imghdr", type(e).__name__, e)
    if not _parse:
        return None
    try:
        parsed = _parse(value)
    except Exception:  # noqa: BLE001 - flanker confused by hostile input
        return None
    addr = getattr(parsed, "address", None)
    return str(addr) if addr and "@" in str(addr) else None
