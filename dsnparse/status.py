"""Find enhanced status codes and SMTP reply codes in diagnostic text.

Enhanced status codes follow RFC 3463 §2 / RFC 3464 §2.3.4: ``class "." subject "." detail``
with class 2, 4 or 5 and 1–3 digit subject and detail.  Reply codes follow RFC 5321 §4.2:
three digits, first 2–5; multi-line replies repeat the code with ``-`` (``550-5.1.1 …``).
Care is taken not to read IP addresses, dates or version numbers as codes.
"""
from __future__ import annotations

import re
from typing import Optional

# Not preceded by a digit, dot or word char; not followed by ".digit" or a digit (IPs).
# (The class digit is matched before the look-behind, which then covers it too: written
# "(?<![\w.])([245])…" the pattern has no first character for the engine to skip to, and
# each search tries the look-behind at every position, 2-3x slower on a long report.)
_ENH = re.compile(r"([245])(?<![\w.][245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
# A reply code directly followed by an enhanced code: "550 5.1.1", "550-5.1.1", "550 #5.1.1".
_REPLY_ENH = re.compile(
    r"([245](?<![\w.][245])[0-5]\d)[ -]+['\"#(]?([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")
# A reply code at the start of the text or after a typical lead-in, followed by text.
_REPLY_LEAD = re.compile(
    r"(?:^|[\n;:>\]\)\"']|said|reply|replied|error|response|returned)[ \t]*[:(]?[ \t]*"
    r"([245][0-5]\d)(?=[ \t-][^\d.]|[ \t]*$|-$)",
    re.I | re.M,
)

_GENERIC_DETAIL = "0"


def find_status(text: Optional[str]) -> Optional[str]:
    """Return the first enhanced status code in ``text`` (``"5.1.1"``), or ``None``.

    A code right after a reply code (``550 5.1.1``) is preferred over one elsewhere.
    Leading zeros are dropped (``5.01.001`` → ``5.1.1``) as RFC 3463 writes codes without them.
    """
    return find_status_strength(text)[0]


def find_status_strength(text: Optional[str]) -> tuple[Optional[str], bool]:
    """Like :func:`find_status`, also telling whether the code came paired with a reply code.

    Returns ``(status or None, paired)``; ``paired`` is ``True`` for ``550 5.7.1``-style
    text, which is the remote server's own reply (RFC 5321 §4.2 with RFC 2034).
    """
    status, paired, _ = find_codes(text)
    return status, paired


def find_reply_code(text: Optional[str]) -> Optional[str]:
    """Return the SMTP reply code (RFC 5321 §4.2) the diagnostic text starts with or quotes.

    Looks for ``550 5.1.1``-style pairs first, then a 2xx–5xx number at the start of a line or
    after a lead-in such as ``said:``; returns ``None`` when there is none.
    """
    return find_codes(text)[2]


def find_codes(text: Optional[str]) -> tuple[Optional[str], bool, Optional[str]]:
    """``(status, paired, reply code)`` of ``text`` in one pass (see
    :func:`find_status_strength` and :func:`find_reply_code`).

    The answers for short texts are kept (a recipient's diagnostic is read for its codes
    two or three times per verdict: the recipient line, whether it holds a code, the
    verdict), at most :data:`_MEMO_SIZE` of them."""
    if not text:
        return None, False, None
    if len(text) > _MEMO_TEXT:
        return _find_codes(text)
    hit = _MEMO.get(text)
    if hit is None:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        hit = _MEMO[text] = _find_codes(text)
    return hit


_MEMO: dict = {}
_MEMO_SIZE = 512
_MEMO_TEXT = 2048  # longer texts (a whole report) are not kept


def _find_codes(text: str) -> tuple[Optional[str], bool, Optional[str]]:
    m = _REPLY_ENH.search(text)
    if m:
        return _norm(m.group(2)), True, m.group(1)
    e = _ENH.search(text)
    if e is not None and int(e.group(2)) == 0 and int(e.group(3)) == 0:
        # a relay's generic code before the remote server's own, as Exchange writes
        # "< #5.0.0 smtp; 5.4.7 Delivery expired …>" (RFC 3463 §3.5: the code of the actual
        # problem); only a code of the same class a little further on
        later = _ENH.search(text, e.end(), e.end() + _RELAYED_SPAN)
        if later is not None and later.group(1) == e.group(1) and int(later.group(2)) != 0:
            e = later
    return (_norm(e.group(0)) if e else None), False, _lead_reply(text)


_RELAYED_SPAN = 200  # characters after a generic X.0.0 code searched for the relayed one
# The start of a Status value that is not an RFC 3464 status-code: a reply code, maybe
# followed by an enhanced code ("550", "550 5.1.1 user unknown", "#550-5.1.1").
_STATUS_REPLY = re.compile(
    r"[ \t]*#?([245][0-5]\d)(?![\d.])[ \t-]*(?:['\"#(]?[ \t]*([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d))?")
_STATUS_TYPE = re.compile(r"[ \t]*[A-Za-z][\w.+-]*[ \t]*;")
_STATUS_ENH = re.compile(r"[ \t]*['\"#(]?[ \t]*([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")


def read_status_field(value: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """Read a ``Status`` value that is not the RFC 3464 §2.3.4 ``status-code`` it should be.

    Returns ``(enhanced status or None, reply code or None)``:

    * a reply code written where the status belongs (``550``, ``550 5.1.1 user unknown``,
      ``#550-5.1.1``): the reply code (RFC 5321 §4.2), and the enhanced code that follows it
      when there is one (``("5.1.1", "550")``; ``(None, "550")`` for a bare code, whose
      RFC 5321 meaning then gives the status, see :func:`dsnparse.codes.classify`);
    * an enhanced code behind a type prefix or a mark (``smtp; 5.1.1``, ``#5.1.1``,
      ``(5.1.1)``): ``("5.1.1", None)``.

    ``(None, None)`` for anything else (no code at the start of the value).  Callers try
    :func:`dsnparse.codes.normalize_status` first: a conforming value never gets here.
    """
    if not value:
        return None, None
    m = _STATUS_TYPE.match(value)
    v = value[m.end():] if m else value
    r = _STATUS_REPLY.match(v)
    if r:
        return (_norm(r.group(2)) if r.group(2) else None), r.group(1)
    e = _STATUS_ENH.match(v)
    if e:
        return _norm(e.group(1)), None
    return None, None


# _REPLY_LEAD run as: each candidate code (as in _REPLY_LEAD), then its lead-in checked
# backwards.  The same first match (the lead-in holds no digit, so lead-ins are ordered as
# their codes), without trying every alternative of the lead-in at every position.
_CODE = re.compile(r"[245][0-5]\d(?=[ \t-][^\d.]|[ \t]*$|-$)", re.M)
_LEAD_CHARS = frozenset("\n;:>])\"'")
_LEAD_WORDS = ("said", "reply", "replied", "error", "response", "returned")


def _lead_reply(text: str) -> Optional[str]:
    for m in _CODE.finditer(text):
        a = _blanks_before(text, m.start())
        if _lead_in_ends(text, a):
            return m.group(0)
        if a > 0 and text[a - 1] in ":(":  # the optional "[:(]" between two blank runs
            if _lead_in_ends(text, _blanks_before(text, a - 1)):
                return m.group(0)
    return None


def _blanks_before(text: str, i: int) -> int:
    """Where the run of spaces and tabs that ends at ``i`` starts."""
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    return i


def _lead_in_ends(text: str, e: int) -> bool:
    """A lead-in of _REPLY_LEAD ends at ``e``: the start of a line, one of its punctuation
    marks, or one of its words (any case)."""
    return e == 0 or text[e - 1] in _LEAD_CHARS or \
        text[max(0, e - 8):e].lower().endswith(_LEAD_WORDS)


def _norm(code: str) -> str:
    c, s, d = code.split(".")
    return f"{c}.{int(s)}.{int(d)}"


def more_specific(field_status: Optional[str], text_status: Optional[str],
                  paired: bool = False) -> bool:
    """``True`` when ``text_status`` should replace ``field_status`` (RFC 3464 ``Status``).

    The text wins when the field is missing; when the field only gives a generic code of the
    same class (``X.0.0``, or ``X.Y.0`` with the text's subject); and when the text is the
    remote server's own reply (``paired``: ``550 5.7.1 …``) of the same class — the reporting
    MTA's ``Status`` then often names its own view (``4.4.7`` "delivery time expired" over the
    ``4.7.1`` that caused it; RFC 3463 §3.5 prefers the code of the actual problem).
    """
    if not text_status:
        return False
    if not field_status:
        return True
    fc, fs, fd = field_status.split(".")
    tc, ts, td = text_status.split(".")
    if fc != tc or text_status == field_status:
        return False
    if (fs == "0" and fd == "0") or paired:
        return True
    return fd == _GENERIC_DETAIL and fs == ts and td != _GENERIC_DETAIL
