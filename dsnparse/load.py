"""Turn bytes, text or an ``email.message.Message`` into a parsed message.

The message model is the standard library's bytes parser with ``policy.compat32``: on the
Sisimai corpus it is about 4× faster than mail-parser and 6× faster than ``policy.default``,
and it never raises on malformed MIME (problems are recorded as ``defects``, RFC 5322/2045
violations included).  :mod:`dsnparse.mime` builds that same tree about three times faster
and declines what it does not reproduce exactly; the stdlib parser then runs.  Only input
that is not an email at all raises :class:`InputError`.
"""
from __future__ import annotations

import email
import email.errors
import email.header
import email.parser
import re
from email.message import Message

from . import deep, mime
from .errors import InputError

_COMPAT32 = mime.compat32  # (email.policy.compat32)
# A header field line (RFC 5322 §2.2: printable ASCII except ':' then ':'), or an mbox
# "From " separator line that some tools leave at the top of a single message.
_FIRST_LINE = re.compile(rb"^(?:From [^\r\n]*\r?\n|>From [^\r\n]*\r?\n)?[!-9;-~]+[ \t]*:")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Outlook .msg and other compound files


def load(message) -> Message:
    """Return a :class:`email.message.Message` for ``message``.

    Args:
        message: ``bytes`` (preferred: what a mailbox stores), ``str`` (encoded as UTF-8 with
            surrogate escapes; other lone surrogates become ``?``), or an already parsed
            ``email.message.Message`` (returned as is).

    Raises:
        InputError: empty input, or input whose first line is not a header field (RFC 5322
            §2.1: a message starts with its header section), e.g. an Outlook ``.msg`` file.
    """
    if isinstance(message, Message):
        return message
    if isinstance(message, str):
        try:
            data = message.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (e.g. from JSON)
            data = message.encode("utf-8", "replace")
    elif isinstance(message, (bytes, bytearray, memoryview)):
        data = bytes(message)
    else:
        raise TypeError(f"expected bytes, str or email.message.Message, not {type(message).__name__}")
    head = data[:4096].lstrip(b"\r\n\t ")
    if not head:
        raise InputError("empty input: not an email message")
    if head.startswith(_OLE2):
        raise InputError("binary compound file (e.g. an Outlook .msg), not an RFC 5322 message")
    if not _FIRST_LINE.match(head):
        raise InputError("input does not start with a header field: not an RFC 5322 message")
    if data[:1] in (b"\r", b"\n", b" ", b"\t"):
        data = data.lstrip(b"\r\n\t ")
    head = data[:4096]
    if b"\r" in head and b"\n" not in head:
        # old Mac (CR-only) line endings: the parser splits on CR too, but the quoted-printable
        # and base64 decoders only know LF and CRLF (a soft break "=\r" would stay)
        data = data.replace(b"\r", b"\n")
    if data.startswith(b"From ") or data.startswith(b">From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    msg = mime.parse(data)  # the same tree, faster; None where it declines
    if msg is not None:
        return msg
    try:
        with deep.collector_paused():  # the feedparser recurses once per nesting level
            return email.message_from_bytes(data, mime.Part, policy=_COMPAT32)
    except Exception as e:  # noqa: BLE001 - see below
        # message/rfc822 or multipart nested deeper than the interpreter's recursion limit
        # (the stdlib feedparser recurses once per level), or a MIME parameter the stdlib
        # cannot decode (an RFC 2231 boundary with a NUL byte, broken continuations): keep
        # the top header section and read the body as text, noting the defect.
        try:
            msg = email.parser.BytesParser(mime.Part, policy=_COMPAT32).parsebytes(data, headersonly=True)
        except Exception:  # noqa: BLE001 - not even the header section: an empty message
            msg = mime.Part()
        if isinstance(e, RecursionError):
            msg.defects.append(NestingTooDeepDefect("MIME parts nested too deeply: body read as text"))
        else:
            msg.defects.append(email.errors.MessageDefect(
                f"MIME structure not parseable ({type(e).__name__}): body read as text"))
        return msg


class NestingTooDeepDefect(email.errors.MessageDefect):
    """The MIME structure is nested too deeply to parse; the body was read as text."""


_WS = re.compile(r"\r?\n[ \t]+|\r[ \t]+")
# The stdlib's decode_header is quadratic (see decode_words, which replaces it); values
# longer than this (no real header is this long) are kept undecoded all the same.
MAX_DECODED_HEADER = 64 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
_OTHER_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def fix_8bit(text: str) -> str:
    """Re-decode raw 8-bit octets that the bytes parser kept as surrogate escapes.

    RFC 6532 allows UTF-8 in header fields (and RFC 6533 in global delivery-status fields);
    the stdlib bytes parser with compat32 keeps such octets as ``\\udcXX`` escapes.  They are
    decoded as UTF-8 (invalid sequences become U+FFFD).  Any other lone surrogate (a
    decoder such as UTF-7 can leave one in text it decoded) is not an octet and cannot be
    encoded: it becomes U+FFFD.  Never raises.
    """
    if text.isascii() or not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        text = _OTHER_SURROGATE.sub("\ufffd", text)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def unfold(value) -> str:
    """Unfold a header value (RFC 5322 §2.2.3) and decode RFC 2047 encoded words (in values
    of at most :data:`MAX_DECODED_HEADER` characters, in linear time: :func:`decode_words`),
    in their charset's common superset (:func:`decode_word`); raw ISO-2022-JP text (escape
    sequences, no encoded word), which old Japanese mailers write, is decoded too.

    Returns ``""`` for ``None``.  Undecodable bytes become U+FFFD; never raises.
    """
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    value = str(value)
    if value.isascii() and "\n" not in value and "\r" not in value and "=?" not in value \
            and "\x1b" not in value:
        return value.strip()  # the common case: one plain line
    value = fix_8bit(_WS.sub(" ", value).strip())
    if "\x1b$" in value and value.isascii():  # raw ISO-2022-JP text, not RFC 2047 encoded
        value = decode_text(value.encode("ascii"), "iso-2022-jp")
    if "=?" in value and len(value) <= MAX_DECODED_HEADER:
        try:
            value = decode_words(value)
        except (LookupError, ValueError, AssertionError, email.errors.HeaderParseError):
            pass  # unknown charset, bad base64/quoted-printable word: keep the raw text
    return value.replace("\r", " ").replace("\n", " ").strip()


def split_words(line: str) -> list:
    """``email.header.ecre.split(line)`` (RFC 2047 encoded words: ``[text, charset,
    encoding, encoded text, text, …]``) in one scan of ``line``: the stdlib's pattern looks
    for the closing ``?=`` from every ``=?…?b?`` again, quadratic when none closes."""
    parts: list = []
    pos, n = 0, len(line)
    close = -1  # the first "?=" at or after the last place looked from (only moves forward)
    p = line.find("=?")
    while p >= 0:
        k = line.find("?", p + 2)  # the charset runs to the next "?"
        if k < 0 or k + 2 >= n:
            break
        if line[k + 1] in "qQbB" and line[k + 2] == "?":
            q = k + 3
            if close < q:
                close = line.find("?=", q)
                if close < 0:  # no word closes after here: none can match further on
                    break
            parts += (line[pos:p], line[p + 2:k], line[k + 1], line[q:close])
            pos = close + 2
            p = line.find("=?", pos)
        else:
            p = line.find("=?", p + 1)
    parts.append(line[pos:])
    return parts


def _any_word(value: str) -> bool:
    """``email.header.ecre.search(value) is not None`` in one scan (as :func:`split_words`;
    over the whole value, where a charset may hold a line break but an encoded text not)."""
    close = nl = -1  # the first "?=" and "\n" at or after the last place looked from
    p = value.find("=?")
    n = len(value)
    while p >= 0:
        k = value.find("?", p + 2)
        if k < 0 or k + 2 >= n:
            return False
        if value[k + 1] in "qQbB" and value[k + 2] == "?":
            q = k + 3
            if close < q:
                close = value.find("?=", q)
                if close < 0:
                    return False
            if 0 <= nl < q:
                nl = -1
            if nl < 0:
                nl = value.find("\n", q)
                if nl < 0:
                    nl = n
            if close < nl:
                return True
        p = value.find("=?", p + 1)
    return False


def decode_words(value: str) -> str:
    """``value`` with its RFC 2047 encoded words decoded: what ``"".join(part.decode(charset
    or "utf-8", "replace") for part, charset in email.header.decode_header(value))`` gives,
    (each run decoded by :func:`decode_word`, in its charset's common superset), in time
    linear in ``len(value)`` (the stdlib's is quadratic in the number of encoded words
    and in the distance to a closing ``?=``: 65 KB of ``a@=?utf-8?b?5.`` took 4 s).

    An unknown charset name is read as UTF-8 with replacement (:func:`decode_word`).

    Raises:
        email.errors.HeaderParseError: bad base64 (as ``decode_header`` raises it).
    """
    import binascii
    import email.base64mime
    import email.quoprimime

    if not _any_word(value):
        return value  # (decode_header returns the value as it is)
    split = [split_words(line) for line in value.splitlines()]
    words = []  # (text, encoding or None, charset or None), as decode_header builds them
    for parts in split:
        first = True
        i = 0
        while i < len(parts):
            unencoded = parts[i]
            if first:
                unencoded = unencoded.lstrip()
                first = False
            if unencoded:
                words.append((unencoded, None, None))
            if i + 1 < len(parts):
                words.append((parts[i + 3], parts[i + 2].lower(), parts[i + 1].lower()))
            i += 4
    # white space between two encoded words is dropped (RFC 2047 §6.2)
    kept = [w for n, w in enumerate(words)
            if not (0 < n < len(words) - 1 and words[n + 1][1] and words[n - 1][1]
                    and w[0].isspace())]
    out = []
    run: list = []  # bytes of the current run of words of one charset
    run_charset = None
    started = False
    for text, encoding, charset in kept:
        if encoding is None:
            word = bytes(text, "raw-unicode-escape")
        elif encoding == "q":
            word = bytes(email.quoprimime.header_decode(text), "raw-unicode-escape")
        elif encoding == "b":
            pad = len(text) % 4
            if pad:
                text += "==="[:4 - pad]
            try:
                word = email.base64mime.decode(text)
            except binascii.Error:
                raise email.errors.HeaderParseError("Base64 decoding error") from None
        else:  # pragma: no cover - split_words only gives q and b
            raise AssertionError("Unexpected encoding: " + encoding)
        if not started:
            run, run_charset, started = [word], charset, True
        elif charset != run_charset:
            out.append(decode_word(b"".join(run), run_charset))
            run, run_charset = [word], charset
        elif run_charset is None:
            run += (b" ", word)
        else:
            run.append(word)
    out.append(decode_word(b"".join(run), run_charset))
    return "".join(out)


def decode_word(data: bytes, charset) -> str:
    """Decode the octets of an RFC 2047 encoded word (or a run of unencoded text, ``charset``
    ``None``): its charset through the superset its mail is written in (gb2312 as GB18030,
    shift_jis as CP932 …, see :func:`decode_text`), else UTF-8, else the charset with
    replacement; an unknown charset name falls back to UTF-8 with replacement.  Never raises."""
    cs = (charset or "").lower()
    if not cs or cs in ("utf-8", "utf8", "us-ascii"):
        return data.decode("utf-8", "replace")
    for enc in _SUPERSETS.get(cs, (cs,)):
        try:
            return data.decode(enc)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode(cs, "replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")


def header(msg: Message, name: str):
    """Return the unfolded, decoded value of header ``name`` or ``None`` if absent."""
    v = msg.get(name)
    return unfold(v) if v is not None else None


REPORT_TEXT_LIMIT = 400_000  # characters of a text part read as report text


def part_text(part: Message, limit: int = 2_000_000) -> str:
    """Decode a non-multipart part's body to text (transfer encoding and charset).

    Unknown or wrong charsets fall back to UTF-8 then Latin-1 with replacement; never raises.
    At most ``limit`` characters are returned (bodies are only read for bounce text; see
    :func:`part_text_cut` to learn whether text was cut off).  A
    :class:`~dsnparse.mime.Part` keeps the result, so a part read twice is decoded once.
    """
    return part_text_cut(part, limit)[0]


def part_text_cut(part: Message, limit: int = 2_000_000) -> tuple:
    """``(text, cut)``: :func:`part_text` and whether the body held more than ``limit``
    characters (``bool``: the text was cut at its size limit and the rest is not read)."""
    texts = part.__dict__.get("_texts") if isinstance(part, mime.Part) else None
    if texts is None or type(part._payload) is not str:
        # (only a text payload is kept: a list of parts changes without the part knowing,
        # by attach() or by a change to a part inside it)
        return _part_text(part, limit)
    got = texts.get(limit)
    if got is None:
        got = texts[limit] = _part_text(part, limit)
    return got


# Content-Transfer-Encodings that Message.get_payload(decode=True) undoes (any other gives
# the payload's own octets)
_DECODED_CTE = frozenset({"quoted-printable", "base64", "x-uuencode", "uuencode", "uue", "x-uue"})


def _part_text(part: Message, limit: int) -> tuple:
    p = part._payload
    if type(p) is str and p.isascii() and "\x1b" not in p and \
            str(part.get("content-transfer-encoding", "")).lower() not in _DECODED_CTE and \
            ("+" not in p or _SUPERSETS.get(
                (charset_of(part) or "").strip().strip('"').lower()) != ("utf-7",)):
        # ASCII text as it stands (no transfer encoding, no ISO-2022 escape, no UTF-7 shift):
        # what get_payload(decode=True) and decode_text give, without the octets in between
        return p[:limit], len(p) > limit
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - hostile parameters or encodings: read it raw
        payload = None
    if payload is None:
        p = part._payload
        if isinstance(p, list):  # message/* parsed as messages: render them back
            p = "\n\n".join(as_text(m) for m in p)
        if isinstance(p, str):
            return p[:limit], len(p) > limit
        return "", False
    cut = len(payload) > limit * 2
    if cut:
        payload = payload[: limit * 2]
    text = decode_text(payload, charset_of(part))
    return text[:limit], cut or len(text) > limit


# Labels whose mail is commonly written in a superset: a part labelled gb2312 holds GBK or
# GB18030 bytes, big5 holds CP950 / HKSCS, shift_jis holds CP932 (Windows-31J), euc-kr holds
# CP949 (UHC), iso-8859-1 holds windows-1252 (as the WHATWG Encoding Standard treats it).
# Each is tried in order, strictly; the first that decodes the whole part is used.
_SUPERSETS = {}
for _names, _chain in (
        (("gb2312", "gbk", "x-gbk", "euc-cn", "cp936", "gb_2312-80", "chinese", "gb18030",
          "csgb2312", "x-euc-cn"), ("gb18030",)),
        (("big5", "big-5", "cn-big5", "x-x-big5", "csbig5", "cp950", "big5-hkscs", "big5hkscs"),
         ("cp950", "big5hkscs")),
        (("shift_jis", "shift-jis", "sjis", "x-sjis", "s-jis", "ms_kanji", "windows-31j", "cp932",
          "csshiftjis", "x-ms-cp932"), ("cp932", "shift_jis_2004")),
        (("euc-jp", "x-euc-jp", "eucjp", "cseucpkdfmtjapanese"), ("euc_jp", "euc_jis_2004", "cp932")),
        (("euc-kr", "ks_c_5601-1987", "ks_c_5601", "ks_c_5601-1989", "korean", "x-windows-949",
          "cp949", "uhc", "cseuckr", "ksc5601"), ("cp949",)),
        (("iso-2022-jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3",
          "iso-2022-jp-2004"), ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004")),
        (("iso-8859-1", "latin1", "latin-1", "iso8859-1", "l1", "cp819", "windows-1252", "cp1252"),
         ("cp1252", "latin-1")),
        (("iso-8859-9", "latin5", "windows-1254", "cp1254"), ("cp1254", "iso8859_9")),
        (("tis-620", "iso-8859-11", "windows-874", "cp874"), ("cp874",)),
        (("utf-7", "unicode-1-1-utf-7", "csunicode11utf7"), ("utf-7",)),
):
    for _n in _names:
        _SUPERSETS[_n] = _chain
_UNLABELLED = ("", "us-ascii", "ascii", "us", "ansi_x3.4-1968", "iso646-us", "unknown-8bit",
               "x-unknown", "unknown", "8bit", "default", "none")
_WESTERN = {"cp1252", "latin-1", "cp1254", "iso8859_9"}
# the ESC sequences that open ISO-2022 double-byte text (RFC 1468, RFC 1554, RFC 1557)
_ISO2022 = ((b"\x1b$B", "iso-2022-jp"), (b"\x1b$@", "iso-2022-jp"), (b"\x1b$(D", "iso-2022-jp"),
            (b"\x1b$)C", "iso2022_kr"), (b"\x1b$A", "iso2022_jp_2"))
DETECT_LIMIT = 16 * 1024  # bytes given to the charset detector
# What the detector chooses among: the charsets mail in the languages of rules/lang/ is
# written in (fewer candidates: 3-5x faster than chardet's full set, ~2 ms a part)
_DETECTABLE = ("utf-8", "euc-jp", "shift_jis", "cp932", "iso-2022-jp", "gb18030", "big5",
               "euc-kr", "cp949", "koi8-r", "windows-1251", "iso-8859-5", "ibm866",
               "iso-8859-2", "windows-1250", "windows-1252", "iso-8859-1", "iso-8859-15")


def decode_text(payload: bytes, charset=None) -> str:
    """Decode a text part's octets (its transfer encoding already undone) to text.

    The order, first success wins (never raises; undecodable octets become U+FFFD):

    1. ASCII (the fast path; 7-bit ISO-2022 text, by its escape sequences, and UTF-7 are
       decoded as such).
    2. 8-bit text that decodes strictly as UTF-8, whatever its label (legacy 8-bit text is
       practically never valid UTF-8; UTF-8 under a legacy label is a common mistake).
    3. The declared charset, strictly, through the superset its mail is commonly written in
       (a part labelled gb2312 holding GBK bytes: GB18030; shift_jis: CP932; euc-kr: CP949;
       big5: CP950; iso-8859-1: windows-1252 — see ``_SUPERSETS``); ISO-2022-JP through its
       extensions.  A Western single-byte label (iso-8859-1, windows-1252) is not trusted when
       most of the part's letters are 8-bit (Cyrillic, Greek or CJK text under a wrong label).
    4. Unlabelled, mislabelled (``us-ascii`` with 8-bit octets, an unknown name) or not
       decodable as declared, with at least 16 8-bit octets (fewer, in ASCII text, are
       stray Latin-1 bytes: step 5): the charset that ``chardet`` (already a dependency, through
       flanker; imported only then) detects on the first 16 KB among the charsets of the
       languages of ``rules/lang/`` (``_DETECTABLE``), when it decodes the part.
    5. The declared charset with replacement, else windows-1252 / Latin-1.
    """
    cs = (charset or "").strip().strip('"').lower()
    if payload.isascii():
        if _SUPERSETS.get(cs) == ("utf-7",):
            pass  # 7-bit, but not ASCII text
        elif b"\x1b" in payload:  # 7-bit ISO-2022 text, labelled or not (RFC 1468)
            if not cs.startswith("iso-2022"):
                cs = next((enc for esc, enc in _ISO2022 if esc in payload), cs)
        else:
            return payload.decode("ascii")
    if not payload.isascii():
        # 8-bit text that is valid UTF-8 is UTF-8 whatever its label: legacy 8-bit text
        # (KOI8-R, windows-1251, GBK, Shift_JIS …) is practically never valid UTF-8
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
    chain = _SUPERSETS.get(cs, (cs,) if cs and cs not in _UNLABELLED else ())
    if chain and chain[0] in _WESTERN and _mostly_8bit(payload):
        chain = ()  # a Western label on text that is not Western: detect instead
    for enc in chain:
        try:
            return payload.decode(enc)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    # a few stray 8-bit octets in ASCII text (a signature, a name) say nothing a detector
    # could use: only text with a run of them (any sentence in Cyrillic, Greek or CJK) is
    # worth detecting
    guessed = None
    if _high_octets(payload) >= _DETECT_MIN:
        guessed = _japanese(payload) or _detect(payload)
    if guessed:
        for enc in _SUPERSETS.get(guessed, (guessed,)):
            try:
                return payload.decode(enc)
            except (LookupError, UnicodeDecodeError, ValueError):
                continue
    for enc in chain or ((cs,) if cs not in _UNLABELLED else ()):
        try:
            return payload.decode(enc, "replace")
        except (LookupError, ValueError):
            continue
    try:
        return payload.decode("cp1252")
    except UnicodeDecodeError:
        return payload.decode("latin-1")


_DETECT_MIN = 16  # 8-bit octets a part needs before the detector runs


def _high_octets(payload: bytes) -> int:
    """The number of 8-bit octets in the first :data:`DETECT_LIMIT` bytes."""
    sample = payload[:DETECT_LIMIT]
    return len(sample) - len(sample.translate(None, _HIGH))


_HIGH = bytes(range(0x80, 0x100))


def _mostly_8bit(payload: bytes) -> bool:
    """More than a third of the letters are 8-bit octets (Western European text has a few
    per cent)."""
    sample = payload[:DETECT_LIMIT]
    high = _high_octets(sample)
    if high < _DETECT_MIN:
        return False
    letters = len(sample) - len(sample.translate(None, _LETTERS))
    return high * 2 > letters


_LETTERS = bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B))


_KANA = re.compile("[\u3041-\u30ff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _japanese(payload: bytes):
    """``euc-jp`` or ``shift_jis`` when the part decodes strictly in it and at least a fifth
    of its non-ASCII characters are kana (Japanese prose is about half kana; Chinese or
    Korean bytes read in a Japanese charset give kanji, almost no kana), else ``None``: the
    common legacy case, decided without the detector."""
    sample = payload[:DETECT_LIMIT]
    for enc in ("euc_jp", "cp932"):
        try:
            text = sample.decode(enc)
        except UnicodeDecodeError:
            continue
        other = len(_NON_ASCII.findall(text))
        if other and len(_KANA.findall(text)) * 5 >= other:
            return "euc-jp" if enc == "euc_jp" else "shift_jis"
    return None


def _detect(payload: bytes):
    """The charset ``chardet`` detects (lower case), or ``None``.  Imported only here: the
    part was neither UTF-8 nor what it was labelled."""
    try:
        import chardet
    except ImportError:  # pragma: no cover - flanker depends on it
        return None
    try:
        found = chardet.detect(payload[:DETECT_LIMIT], include_encodings=_DETECTABLE)
    except TypeError:  # an older chardet: no include_encodings
        try:
            found = chardet.detect(payload[:DETECT_LIMIT])
        except Exception:  # noqa: BLE001
            return None
    except Exception:  # noqa: BLE001 - a detector bug must not lose the message
        return None
    enc = (found or {}).get("encoding")
    if not enc or (found.get("confidence") or 0) < 0.2:
        return None
    return enc.lower()


def as_text(m) -> str:
    """A (sub)message rendered back to text; never raises (the stdlib generator can, e.g. on
    a body it cannot re-encode in its declared charset): falls back to headers + raw body."""
    if not isinstance(m, Message):
        return str(m)
    try:
        return m.as_string()
    except Exception:  # noqa: BLE001 - hostile input: UnicodeError, LookupError, ...
        head = "\n".join(f"{k}: {v}" for k, v in m.items())
        body = m._payload if isinstance(m._payload, str) else ""
        return f"{head}\n\n{body}"


def charset_of(part: Message):
    """The part's charset parameter (lower case) or ``None``; never raises (a NUL byte or
    an undecodable RFC 2231 value in the name makes the stdlib raise ValueError)."""
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001 - ValueError, TypeError (RFC 2231 continuations) …
        return None
