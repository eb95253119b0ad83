"""Read delivery status notifications: RFC 3464 ``message/delivery-status`` (and its RFC 1894
predecessor), RFC 6533 ``message/global-delivery-status``, and the broken variants real MTAs
send: the status block as ``text/plain`` or inline in the body, a missing blank line between
recipient blocks, folded or RFC 2047-encoded fields, CR / CRLF line endings, address types
``rfc822;`` ``utf-8;`` ``x400;`` or none, angle brackets, any diagnostic type, a value
written on the line after its field name, fields in a legacy charset (:func:`decode_octets`),
several delivery-status parts in one report (:func:`read`), and where the report sits in
the MIME tree (:func:`in_report_position`, RFC 6522 §3).

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
        parts: the MIME parts the fields were read from (the delivery-status parts that held
            recipients, or the text part holding an inline block), in order.
        truncated: the part's text was cut at its size limit: later recipients are missing.
    """

    per_message: dict = field(default_factory=dict)
    recipients: list = field(default_factory=list)
    format: str = "rfc3464"
    parts: list = field(default_factory=list)
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
    from email.parser import Parser

    text = text.lstrip("\r\n")
    if not text:
        return None
    # header section only: the returned body is never read, and a nested message/rfc822
    # chain must not be parsed (it could nest deeper than the recursion limit)
    msg = mime.parse_headers(text)  # the stdlib's result, faster; None where it declines
    if msg is None:
        msg = Parser(mime.Part, policy=mime.compat32).parsestr(text, headersonly=True)
    return msg


def ds_text(part: Message, st: Optional[Structure] = None) -> str:
    """The text of a delivery-status part, whatever the stdlib parser made of it.

    Python's feedparser turns ``message/delivery-status`` into a list of header-only
    messages (one per block); ``message/global-delivery-status`` becomes one nested message;
    a transfer-encoded part stays a string.  All three are turned back into field text.

    Octets that are not ASCII, and ISO-2022-JP escape sequences, are decoded by
    :func:`decode_octets` with the charsets declared on the part and, when ``st`` is given,
    on the message's text parts as hints (RFC 3464 §2.1.3 wants US-ASCII fields, RFC 6533
    UTF-8; MTAs also copy a remote reply in the sender's legacy charset).  An ASCII part
    without escape sequences is returned as it is.
    """
    payload = part._payload  # raw: get_payload() decodes with the part's (hostile) charset
    cte = str(part.get("content-transfer-encoding") or "").strip().lower()  # may be a Header
    if isinstance(payload, list):
        if cte in ("base64", "quoted-printable"):
            raw = "\n".join(as_text(m) for m in payload)
            return _decode_cte(raw, cte, lambda: _hints(part, st))
        blocks = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            lines = [f"{k}: {v}" for k, v in sub._headers]  # raw octets kept as escapes
            body = sub._payload  # raw: get_payload() would decode 8-bit octets as ASCII
            if isinstance(body, str) and body.strip():
                lines.append(body)
            blocks.append("\n".join(lines))
        text = "\n\n".join(blocks)
        if text.isascii() and "\x1b" not in text:
            return text
        if not all(isinstance(v, str) for b in payload if isinstance(b, Message)
                   for _, v in b._headers):
            return fix_8bit(text)  # values set as Header objects (a message built in code)
        return decode_octets(_octets(text), *_hints(part, st))
    if isinstance(payload, str) and cte not in ("base64", "quoted-printable") \
            and (not payload.isascii() or "\x1b" in payload):
        return decode_octets(_octets(payload), *_hints(part, st))
    if cte in ("base64", "quoted-printable") and isinstance(payload, str):
        return _decode_cte(payload, cte, lambda: _hints(part, st))
    return part_text(part)


def _octets(text: str) -> bytes:
    """The octets behind text the bytes parser made (raw octets kept as surrogate escapes);
    other characters as UTF-8 (a lone surrogate of hostile ``str`` input as ``?``)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _hints(part: Message, st: Optional[Structure]) -> tuple:
    """``(declared, context)`` for :func:`decode_octets`: the charset declared on the
    delivery-status part, and those declared on the message's text parts."""
    own = charset_of(part)
    ctx = [charset_of(t) for t in st.texts[:8]] if st is not None else []
    return [own] if own else [], [c for c in ctx if c]


def _decode_cte(raw: str, cte: str, hints) -> str:
    import base64
    import quopri

    try:
        data = base64.b64decode(raw.encode("ascii", "ignore")) if cte == "base64" \
            else quopri.decodestring(_octets(raw))
    except (ValueError, TypeError):
        return raw
    if data.isascii() and b"\x1b" not in data:
        return data.decode("ascii")
    return decode_octets(data, *hints())


# --------------------------------------------------------------------------- charsets
#
# Order (decode_octets): ASCII with ISO-2022-JP escapes -> ISO-2022-JP; else the charset
# declared on the part; else UTF-8 (strict); else the charsets declared on the message's
# text parts; else the legacy charset whose strict decoding scores best (the candidates
# below, in this order on a tie); else UTF-8 with U+FFFD for what does not decode.

_ISO2022_ESC = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(I", b"\x1b$(D", b"\x1b$(Q", b"\x1b$(O")
_CANDIDATES = ("cp932", "euc_jp", "gb18030", "big5", "euc_kr", "koi8_r", "cp1251", "cp1252",
               "cp1250")
_JAPANESE = frozenset({"cp932", "euc_jp"})
_DETECT_BYTES = 4096
# Frequent characters of the scripts, chiefly of mail-system vocabulary: a right decoding
# is made of them, a wrong one of rare characters.
_COMMON_HAN = frozenset(
    "的一是不了在人有我他这個个们們中来來上大为為和国國地到以说說时時要就出会會可也你对對"
    "生能而子那得于着下自之年过過发發后後作里裡用道行所然家种種事成方多经經去法学學如都同现現"
    "当當没沒动動面起看定天分还還进進好小部其些主样樣理心本前开開但因只从從想实實日者意无無力"
    "与與长長把机機十民第公此已工使情明性知全三又关關点點正业業外将將两兩高间間由问問很最重并"
    "物手应應向头頭文体體新己制身果加信表回化给給位次度门門任常先通原名真入口认認数數件收送址"
    "邮郵箱帐帳户戶满滿误誤效拒绝絕系統统服务務器达達错錯接宛先存在容量超過过配送失敗败届信"
    "受取送信元正確確認容量制限不明返答应答書式空間領域遅延期限切再試行"
)
_COMMON_HANGUL = frozenset(
    "이다는의에을를하가지기습니수없있주소메일전달실패사용자계정함서받할된되었않요그로으한것도"
    "신발송받는번호확인오류용량초과시간만료거부보낼수신잘못된존재하지않"
)
_COMMON_CYRILLIC = frozenset("оеаинтсрвлкмдпуяыьгзбчйхжшюцщэф")


def _score(text: str, charset: str) -> float:
    """How plausible a decoding is: frequent letters of its script count, rare or
    impossible characters (controls, private use, half-width katakana) and Cyrillic letters
    glued to Latin ones count against it."""
    score = 0.0
    n = len(text)
    japanese = charset in _JAPANESE
    for i, ch in enumerate(text):
        o = ord(ch)
        if o < 0x80:
            continue
        if 0x3041 <= o <= 0x30FA:
            score += 3 if japanese else 0
        elif ch in _COMMON_HAN:
            score += 3
        elif 0x4E00 <= o <= 0x9FFF:
            score += 0.2
        elif ch in _COMMON_HANGUL:
            score += 3
        elif 0xAC00 <= o <= 0xD7A3:
            score += 0.2
        elif 0x0410 <= o <= 0x044F:
            score += 1 if ch in _COMMON_CYRILLIC else 0.3
            prev = text[i - 1] if i else " "
            nxt = text[i + 1] if i + 1 < n else " "
            if (prev.isascii() and prev.isalpha()) or (nxt.isascii() and nxt.isalpha()):
                score -= 2
        elif 0xC0 <= o <= 0x17F and ch.isalpha():
            score += 1
        elif 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E:
            score += 0.5  # CJK punctuation, full-width forms
        elif o < 0xA0 or 0xE000 <= o <= 0xF8FF or 0xFF61 <= o <= 0xFF9F or o == 0xFFFD:
            score -= 3
        else:
            score -= 0.5
    return score


def _ascii_or_iso2022(data: bytes) -> str:
    """ASCII octets as text: ISO-2022-JP (RFC 1468) when they hold its escape sequences."""
    if b"\x1b" in data and any(e in data for e in _ISO2022_ESC):
        for cs in ("iso2022_jp_2", "iso2022_jp_ext"):
            try:
                return data.decode(cs)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("ascii")


def decode_octets(data: bytes, declared=(), context=()) -> str:
    """Decode the octets of a delivery-status part (or any diagnostic text) to text.

    Args:
        data: the octets.
        declared: charset names declared for the octets themselves (the part's
            ``charset`` parameter).
        context: charset names declared elsewhere in the message (its text parts), in order.

    Returns the text; never raises.  Order: octets that are all ASCII are ASCII, unless
    they hold ISO-2022-JP escape sequences (RFC 1468: ``ESC $ B`` …), then ISO-2022-JP;
    otherwise the first ``declared`` charset that decodes them without error, then UTF-8
    (strict: legacy multi-byte text almost never passes), then the first ``context``
    charset that does, then the best-scoring strict decoding among Shift_JIS (cp932),
    EUC-JP, GB18030 (GBK, GB2312), Big5, EUC-KR, KOI8-R, windows-1251, windows-1252 and
    windows-1250 (scored on the first 4 KB by :func:`_score`; a tie goes to the earlier
    one), and last UTF-8 with U+FFFD for undecodable octets.  RFC 2047 encoded words in
    field values are decoded afterwards, field by field (:func:`parse_fields`).
    """
    if data.isascii():
        return _ascii_or_iso2022(data)
    if b"\x1b" in data and any(e in data for e in _ISO2022_ESC):
        # ISO-2022-JP lines beside 8-bit ones (fields copied from different replies): each
        # such line on its own, the others decoded together as below
        lines = data.split(b"\n")
        esc = [ln.isascii() and b"\x1b" in ln for ln in lines]
        rest = _decode_8bit(b"\n".join(ln for ln, e in zip(lines, esc) if not e),
                            declared, context).split("\n")
        it = iter(rest)
        return "\n".join(_ascii_or_iso2022(ln) if e else next(it, "")
                         for ln, e in zip(lines, esc))
    return _decode_8bit(data, declared, context)


def _decode_8bit(data: bytes, declared, context) -> str:
    """:func:`decode_octets` for octets that are not all ASCII (ISO-2022-JP lines aside)."""
    for group in (declared, ("utf-8",), context):
        for cs in dict.fromkeys(h.lower() for h in group if h):
            if cs in ("us-ascii", "ascii"):
                continue
            try:
                return data.decode(cs)
            except (UnicodeDecodeError, LookupError, ValueError):
                continue
    sample = data[:_DETECT_BYTES]
    best, best_score = None, 0.0
    for cs in _CANDIDATES:
        try:
            text = sample.decode(cs)
        except UnicodeDecodeError:
            try:  # the sample may end inside a multi-byte character
                text = sample[:-1].decode(cs) if len(data) > _DETECT_BYTES else None
            except UnicodeDecodeError:
                text = None
            if text is None:
                continue
        sc = _score(text, cs)
        if best is None or sc > best_score:
            best, best_score = cs, sc
    if best is not None:
        try:
            return data.decode(best)
        except UnicodeDecodeError:
            return data.decode(best, "replace")
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
            last = fields_[-1]
            m = _FIELD.match(stripped) if not last[3] and _open_value(last[1]) else None
            if m is None or m.group(1).lower() not in _KNOWN:
                last[3].append(stripped)  # (joined once below: += would be quadratic)
                continue
            # an indented field line under a field with no value yet ("Diagnostic-Code:
            # smtp;" then "  Remote-MTA: dns; …"): a field of its own, not the value
            fields_.append([m.group(1).lower(), m.group(2).strip(), block, []])
            continue
        m = _FIELD.match(stripped)
        if m:
            fields_.append([m.group(1).lower(), m.group(2).strip(), block, []])
        elif fields_ and fields_[-1][0] and fields_[-1][2] == block and not fields_[-1][3] \
                and _open_value(fields_[-1][1]):
            # the value of a field left empty ("Status:" / "Diagnostic-Code: smtp;") written
            # on the next line without the folding white space
            fields_[-1][3].append(stripped)
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


_KNOWN = PER_MESSAGE | PER_RECIPIENT
_TYPE_ONLY = re.compile(r"[ \t]*[A-Za-z0-9][\w.+-]*[ \t]*;[ \t]*")


def _open_value(value: str) -> bool:
    """A field value that is still to come: empty, or only a type (``smtp;``, RFC 3464
    §2.1.2)."""
    return not value.strip() or _TYPE_ONLY.fullmatch(value) is not None


def _is_recipient_block(r: dict) -> bool:
    return bool(r.get("final-recipient") or r.get("original-recipient")
                or r.get("x-actual-recipient"))


def read(st: Structure) -> Optional[DeliveryStatus]:
    """Read the delivery-status fields of a message, or ``None`` if it has none.

    Looks at, in order: ``message/delivery-status`` and ``message/global-delivery-status``
    parts (RFC 3464 §2, RFC 6533 §6): **every** such part, as some MTAs send one per
    recipient or per remote host; their recipients are joined in order, a recipient already
    read from an earlier part is not repeated (a later ``failed`` block takes the place of
    an earlier one with another action), and a recipient of a part whose
    ``Reporting-MTA`` differs from the first part's keeps its own (as the per-recipient key
    ``reporting-mta``); the per-message fields are the first part's, completed by the
    others.  Then, failing that, a status block written into a text part (``text/plain``
    with ``Final-Recipient:`` fields).  Where the parts sit in the MIME tree is judged by
    :func:`in_report_position`.
    """
    merged: Optional[DeliveryStatus] = None
    seen: dict = {}  # recipient key -> its index in merged.recipients
    for part in st.ds_parts:
        ds = parse_fields(ds_text(part, st))
        if not ds.recipients:
            continue
        # (a transfer-encoded part is read as text, up to part_text's limit)
        cut = not isinstance(part._payload, list) and part_text_cut(part)[1]
        if merged is None:
            ds.truncated = cut
            if part.get_content_type() == "message/global-delivery-status":
                ds.format = "rfc6533"
            ds.parts.append(part)
            for i, r in enumerate(ds.recipients):
                seen.setdefault(recipient_key(r), i)
            merged = ds
            continue
        merged.parts.append(part)
        merged.truncated = merged.truncated or cut
        mta = ds.per_message.get("reporting-mta")
        own = mta and mta != merged.per_message.get("reporting-mta")
        for r in ds.recipients:
            if own:
                r.setdefault("reporting-mta", mta)
            key = recipient_key(r)
            i = seen.get(key)
            if i is None or not key:
                seen[key] = len(merged.recipients)
                merged.recipients.append(r)
            elif action(r.get("action")) == "failed" and \
                    action(merged.recipients[i].get("action")) != "failed":
                merged.recipients[i] = r  # a later part's failure over an earlier delay
        for k, v in ds.per_message.items():
            merged.per_message.setdefault(k, v)
    if merged is not None:
        return merged
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
            ds.parts.append(part)
            ds.truncated = cut
            return ds
    return None


def recipient_key(r: dict) -> str:
    """The lower-cased address a recipient block is about (``Final-Recipient``, else
    ``X-Actual-Recipient``, else ``Original-Recipient``): recipients read from two
    delivery-status parts are the same when their keys are."""
    for k in ("final-recipient", "x-actual-recipient", "original-recipient"):
        a = address(r.get(k))
        if a:
            return a.lower()
    return ""


def in_report_position(msg: Message, ds: DeliveryStatus) -> bool:
    """``True`` when the parts ``ds`` was read from are where RFC 6522 puts a report: the
    whole message is the delivery-status part, or the message is a ``multipart/report``
    (RFC 6522 §3: the report is its second part; a report part nested one level deeper, or
    several of them, are taken too — the walk never enters a returned or forwarded
    ``message/rfc822``).

    ``False`` for a status block written into text, and for a delivery-status part in any
    other message (a ``multipart/mixed``, even one that holds a ``multipart/report``): such
    a report is read only when the message comes from a mail system, see
    :func:`dsnparse.engine.system_sender` (some MTAs wrap their reports that way; a person
    forwarding a report produces it too).
    """
    if ds.format == "rfc3464-text" or not ds.parts:
        return False
    if msg.get_content_type() == "multipart/report":
        return True
    return all(part is msg for part in ds.parts)


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
