"""Read delivery status notifications: RFC 3464 ``message/delivery-status`` (and its RFC 1894
predecessor), RFC 6533 ``message/global-delivery-status``, and the broken variants real MTAs
send: the status block as ``text/plain`` or inline in the body, a missing blank line between
recipient blocks, folded or RFC 2047-encoded fields, CR / CRLF line endings, address types
``rfc822;`` ``utf-8;`` ``x400;`` or none, angle brackets, any diagnostic type.

The output is raw per-recipient fields; :mod:`dsnparse.engine` turns them into verdicts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Optional

from . import mime
from .load import REPORT_TEXT_LIMIT, as_text, charset_of, fix_8bit, part_text, part_text_cut, unfold

DS_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "message/global")
ORIGINAL_HEADER_TYPES = ("text/rfc822-headers", "message/global-headers",
                         "text/rfc822-header", "message/partial")

# Per-message fields of RFC 3464 §2.2 (plus vendor X- fields that sit in that block).
PER_MESSAGE = frozenset({
    "reporting-mta", "dsn-gateway", "received-from-mta", "arrival-date",
    "original-envelope-id", "x-postfix-queue-id", "x-postfix-sender",
})
# Per-recipient fields of RFC 3464 §2.3 and RFC 6533 §4.
PER_RECIPIENT = frozenset({
    "original-recipient", "final-recipient", "action", "status", "remote-mta",
    "diagnostic-code", "last-attempt-date", "final-log-id", "will-retry-until",
    "localized-diagnostic", "x-actual-recipient", "x-supplementary-info",
    "x-display-name",
})
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_INLINE_START = re.compile(
    r"^[ \t]*(?:Reporting-MTA|Final-Recipient|Original-Recipient|Received-From-MTA)[ \t]*:",
    re.I | re.M,
)
_TYPE_PREFIX = re.compile(r"^[ \t]*([A-Za-z0-9][\w.+-]*)[ \t]*;[ \t]*")
_XTEXT_U = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_XTEXT_PLUS = re.compile(r"\+([0-9A-F]{2})")
_ACTIONS = {
    "failed": "failed", "failure": "failed", "fail": "failed", "expired": "failed",
    "delayed": "delayed", "delay": "delayed", "delivered": "delivered",
    "deliverable": "delivered", "relayed": "relayed", "expanded": "expanded",
}


@dataclass
class DeliveryStatus:
    """The fields of one delivery-status body.

    Attributes:
        per_message: lower-cased field name → unfolded value (RFC 3464 §2.2).
        recipients: one ``dict`` per recipient block (RFC 3464 §2.3), same key convention.
        format: ``rfc3464``, ``rfc6533`` (global) or ``rfc3464-text`` (block found in text).
        truncated: the part's text was cut at its size limit: later recipients are missing.
    """

    per_message: dict = field(default_factory=dict)
    recipients: list = field(default_factory=list)
    format: str = "rfc3464"
    truncated: bool = False


@dataclass
class Structure:
    """Where the parts of a report are (RFC 6522 §3): found in one walk of the MIME tree.

    ``ds_parts``: delivery-status parts; ``original``: the returned message's header section
    as a ``Message`` (or ``None``); ``texts``: decodable text parts outside the returned
    message, in order; ``report_type``: the ``report-type`` parameter of a multipart/report;
    ``truncated``: the walk stopped at its part limit (later parts are not read).
    """

    ds_parts: list = field(default_factory=list)
    original: Optional[Message] = None
    texts: list = field(default_factory=list)
    report_type: Optional[str] = None
    feedback_parts: list = field(default_factory=list)
    mdn_parts: list = field(default_factory=list)
    forwarded: int = 0
    truncated: bool = False


def scan(msg: Message, max_parts: int = 500) -> Structure:
    """Walk the MIME tree once, without entering a returned or forwarded message.

    Args:
        msg: the parsed message.
        max_parts: stop after this many parts (hostile input with thousands of parts).
    """
    st = Structure()
    stack = [msg]
    seen = 0
    while stack and seen < max_parts:
        part = stack.pop()
        seen += 1
        ctype = part.get_content_type()
        if part.is_multipart() and ctype.startswith("multipart/"):
            if ctype == "multipart/report" and st.report_type is None:
                st.report_type = _report_type(part)
            payload = part._payload  # raw: get_payload() decodes with the part's charset
            if isinstance(payload, list):
                stack.extend(reversed(payload))
            continue
        if ctype in DS_TYPES:
            st.ds_parts.append(part)
        elif ctype in ORIGINAL_TYPES:
            st.forwarded += 1
            if st.original is None:
                inner = part._payload  # raw (see above): a hostile charset must not raise
                if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                    st.original = inner[0]
                elif isinstance(inner, str):
                    st.original = _parse_headers_text(inner)
        elif ctype in ORIGINAL_HEADER_TYPES:
            if st.original is None:
                st.original = _parse_headers_text(part_text(part, 200_000))
        elif ctype == "message/feedback-report":
            st.feedback_parts.append(part)
        elif ctype in ("message/disposition-notification",
                       "message/global-disposition-notification"):
            st.mdn_parts.append(part)
        elif part.get_content_maintype() in ("text", "multipart"):
            # a multipart whose boundary never appears stays a string: read it as text
            st.texts.append(part)
    st.truncated = bool(stack)
    return st


def _report_type(part: Message):
    """The ``report-type`` parameter (RFC 6522 §3), lower case, or ``None``; never raises
    (the stdlib's RFC 2231 parameter decoding raises on some malformed continuations)."""
    try:
        return (part.get_param("report-type") or "").lower() or None
    except Exception:  # noqa: BLE001 - ValueError, TypeError from email.utils.decode_params
        return None


def _parse_headers_text(text: str) -> Optional[Message]:
    from email import policy
    from email.parser import Parser

    text = text.lstrip("\r\n")
    if not text:
        return None
    # header section only: the returned body is never read, and a nested message/rfc822
    # chain must not be parsed (it could nest deeper than the recursion limit)
    msg = mime.parse_headers(text)  # the stdlib's result, faster; None where it declines
    if msg is None:
        msg = Parser(mime.Part, policy=policy.compat32).parsestr(text, headersonly=True)
    return msg


def ds_text(part: Message) -> str:
    """The text of a delivery-status part, whatever the stdlib parser made of it.

    Python's feedparser turns ``message/delivery-status`` into a list of header-only
    messages (one per block); ``message/global-delivery-status`` becomes one nested message;
    a transfer-encoded part stays a string.  All three are turned back into field text.
    """
    payload = part._payload  # raw: get_payload() decodes with the part's (hostile) charset
    cte = str(part.get("content-transfer-encoding") or "").strip().lower()  # may be a Header
    if isinstance(payload, list):
        if cte in ("base64", "quoted-printable"):
            raw = "\n".join(as_text(m) for m in payload)
            return _decode_cte(raw, cte, charset_of(part) or "utf-8")
        blocks = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            fields = sub._headers
            if not all(type(v) is str and v.isascii() for _, v in fields):
                fields = sub.items()  # compat32 turns values with raw octets into Headers
            lines = [f"{k}: {v}" for k, v in fields]
            body = sub._payload  # raw: get_payload() would decode 8-bit octets as ASCII
            if isinstance(body, str) and body.strip():
                lines.append(body)
            blocks.append("\n".join(lines))
        return fix_8bit("\n\n".join(blocks))
    return part_text(part)


def _decode_cte(raw: str, cte: str, charset: str) -> str:
    import base64
    import quopri

    try:
        data = base64.b64decode(raw.encode("ascii", "ignore")) if cte == "base64" \
            else quopri.decodestring(raw.encode("utf-8", "surrogateescape"))
    except (ValueError, TypeError):
        return raw
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown charset, or a name with a NUL byte
        return data.decode("utf-8", "replace")


def parse_fields(text: str) -> DeliveryStatus:
    """Parse delivery-status field text into per-message and per-recipient fields.

    Blocks are told apart by field names, not only by blank lines (RFC 3464 §2.1 separates
    them with a blank line; some MTAs omit it): a ``Final-Recipient`` or
    ``Original-Recipient`` that would repeat a field of the current recipient starts a new
    one.  Continuation lines (leading whitespace) are unfolded.
    """
    ds = DeliveryStatus()
    fields_: list[list] = []  # [name, value, block number, continuation lines]
    block = 0
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            block += 1
            continue
        if line[:1] in (" ", "\t") and fields_ and fields_[-1][0]:
            fields_[-1][3].append(stripped)  # (joined once below: += would be quadratic)
            continue
        m = _FIELD.match(stripped)
        if m:
            fields_.append([m.group(1).lower(), m.group(2).strip(), block, []])
        else:
            fields_.append(["", stripped, block, []])  # stray text: ends a continuation
    cur: Optional[dict] = None
    cur_block = -1
    for name, value, blk, more in fields_:
        if not name:
            continue
        if more:
            value = " ".join([value, *more])
        value = unfold(value) if "=?" in value else value
        if name in PER_MESSAGE and name not in ds.per_message and cur is None:
            ds.per_message[name] = value
            continue
        if name not in PER_RECIPIENT:
            if name in PER_MESSAGE and name not in ds.per_message:
                ds.per_message[name] = value
            elif cur is not None and name.startswith("x-"):
                cur.setdefault(name, value)
            continue
        starts_new = (
            cur is None
            or name in cur
            or (blk != cur_block and ("final-recipient" in cur or "action" in cur))
            or (name == "original-recipient" and "final-recipient" in cur
                and "status" in cur)
        )
        if starts_new:
            cur = {}
            ds.recipients.append(cur)
        cur_block = blk
        cur[name] = value
    ds.recipients = [r for r in ds.recipients if _is_recipient_block(r)]
    return ds


def _is_recipient_block(r: dict) -> bool:
    return bool(r.get("final-recipient") or r.get("original-recipient")
                or r.get("x-actual-recipient"))


def read(st: Structure) -> Optional[DeliveryStatus]:
    """Read the delivery-status fields of a message, or ``None`` if it has none.

    Looks at, in order: ``message/delivery-status`` and ``message/global-delivery-status``
    parts (RFC 3464 §2, RFC 6533 §6); then, failing that, a status block written into a
    text part (``text/plain`` with ``Final-Recipient:`` fields).
    """
    for part in st.ds_parts:
        ds = parse_fields(ds_text(part))
        if ds.recipients:
            if part.get_content_type() == "message/global-delivery-status":
                ds.format = "rfc6533"
            # (a transfer-encoded part is read as text, up to part_text's limit)
            ds.truncated = not isinstance(part._payload, list) and part_text_cut(part)[1]
            return ds
    for part in st.texts[:4]:
        text, cut = part_text_cut(part, REPORT_TEXT_LIMIT)
        if text.isascii() and "final-recipient" not in text.lower():
            # (the field the block needs; tested first as the multi-line searches below try
            # every line; only for ASCII text, where re.I matches no other letters)
            continue
        m = _INLINE_START.search(text)
        if not m or not re.search(r"^[ \t]*Final-Recipient[ \t]*:", text, re.I | re.M):
            continue
        if not re.search(r"^[ \t]*(?:Action|Status)[ \t]*:", text, re.I | re.M):
            continue
        ds = parse_fields(_dedent_block(text[m.start():]))
        if ds.recipients:
            ds.format = "rfc3464-text"
            ds.truncated = cut
            return ds
    return None


def _dedent_block(text: str) -> str:
    # Inline blocks are sometimes indented as a whole; field lines then all start with spaces.
    out = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        s = line.strip()
        if _FIELD.match(s) and not s.lower().startswith(("http", "mailto")):
            out.append(s)
        elif not s:
            out.append("")
        else:
            out.append(" " + s)
    return "\n".join(out)


def strip_type(value: Optional[str]) -> Optional[str]:
    """Drop an RFC 3464 §2.1.2 type prefix (``rfc822;``, ``dns;``, ``smtp;``, ``X-Postfix;``)."""
    if value is None:
        return None
    m = _TYPE_PREFIX.match(value)
    if m and "@" not in m.group(1):
        value = value[m.end():]
    return value.strip() or None


def address(value: Optional[str]) -> Optional[str]:
    """The address of an ``Original-Recipient`` / ``Final-Recipient`` value.

    Handles the ``utf-8`` type's ``\\x{HEX}`` escapes (RFC 6533 §3) and xtext ``+HH``
    (RFC 3461 §4), angle brackets, a display name or comment around the address.
    """
    v = strip_type(value)
    if not v:
        return None
    if "\\x{" in v:
        v = _XTEXT_U.sub(lambda m: chr(int(m.group(1), 16)), v)
    if "+" in v and _XTEXT_PLUS.search(v) and "@" in v:
        v = _XTEXT_PLUS.sub(lambda m: chr(int(m.group(1), 16)), v)
    bracketed = bracketed_address(v)
    if bracketed is not None:
        v = bracketed
    else:
        v = _drop_comments(v).strip()
        toks = [t for t in v.split() if "@" in t]
        if toks:
            v = toks[0]
    v = v.strip("<>\"' ;,")
    return v or None


# The address readers below scan the value once (str.find), where the patterns they replace,
# ``<([^<>\s]+@[^<>\s]+)>`` and ``\([^)]*\)``, rescan the rest of the value from every
# "<" or "(" (a value of 100,000 "@" after one "<" took a minute).
_SPACE = re.compile(r"\s")


def bracketed_address(v: str) -> Optional[str]:
    """The first ``<local@domain>`` of ``v`` without its brackets (no ``<``, ``>`` or white
    space inside, an ``@`` with something on both sides), as ``<([^<>\\s]+@[^<>\\s]+)>``
    finds it, in time linear in ``len(v)``; ``None`` when there is none."""
    i = v.find("<")
    while i >= 0:
        j = v.find(">", i + 1)
        if j < 0:
            return None
        k = v.rfind("<", i + 1, j)
        if k >= 0:  # a later "<" before this ">": only it can start a match ending there
            i = k
            continue
        inner = v[i + 1:j]
        if "@" in inner[1:-1] and not _SPACE.search(inner):
            return inner
        i = v.find("<", j + 1)
    return None


def _drop_comments(v: str) -> str:
    """``v`` without the parenthesised comments (RFC 5322 §3.2.2) that stand apart from a
    word: ``alice@example.org (Alice)`` or ``(x) alice@example.org``.  Parentheses inside a
    word are kept as written (``=SUM(1+1)@example.com``: RFC 5321 §4.1.2 local parts may hold
    such characters, and mangling them would report another address).  Linear in ``len(v)``."""
    if "(" not in v:
        return v
    out, pos, i, close = [], 0, v.find("("), -1
    n = len(v)
    while i >= 0:
        if close < i:
            close = v.find(")", i)  # the next ")" (only moves forward: one scan in all)
            if close < 0:
                break
        apart = (i == 0 or v[i - 1].isspace()) or (close + 1 == n or v[close + 1].isspace())
        if apart:
            out.append(v[pos:i])
            out.append(" ")
            pos = close + 1
            i = v.find("(", pos)
        else:
            i = v.find("(", i + 1)
    out.append(v[pos:])
    return "".join(out)


def action(value: Optional[str]) -> Optional[str]:
    """Normalise an ``Action`` value (RFC 3464 §2.3.3) and common misspellings; ``None`` if unknown."""
    if not value:
        return None
    v = value.strip().lower().split()[0].rstrip(";.,") if value.strip() else ""
    return _ACTIONS.get(v)
