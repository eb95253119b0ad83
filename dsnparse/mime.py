"""A fast path for the standard library's feedparser (``policy.compat32``).

:func:`parse` builds the very tree that ``email.message_from_bytes(data, policy=compat32)``
builds — the same :class:`email.message.Message` objects with the same header lists, payloads,
preambles, epilogues, default types and defects — but finds header sections, boundaries and
blank lines with whole-text searches instead of the feedparser's line-by-line Python loop
(about a third of the time on the Sisimai corpus: ``benchmarks/bench.py throughput``).

It only takes input whose structure it reproduces exactly, and returns ``None`` for anything
else, which the caller then hands to the stdlib parser: bare CR line endings, a header section
holding an envelope ("From ") line, a field without name or a leading continuation line,
an empty boundary parameter, adjacent delimiter lines (RFC 2046 §5.1.1), a delivery-status
block (RFC 3464 §2.1) with a message or multipart Content-Type, nesting deeper than
:data:`MAX_DEPTH`.  The defects it does reproduce are the feedparser's, in the same order:
a header section (or a delivery-status block) ended by a non-field line, a multipart
without boundary, start or close
delimiter, a multipart with a transfer encoding.  ``tests/test_mime.py`` checks tree
equality with the stdlib on every shared-corpus email, every sample and mutated (fuzzed)
variants of them.
"""
from __future__ import annotations

import re
import sys
from email import errors
from email.message import Message, _unquotevalue
try:  # the object email.policy.compat32 is, without email.policy's header registry (which
    # compat32 never uses): some 3 ms of every process's start-up
    from email._policybase import compat32
except ImportError:  # pragma: no cover - (defined there from Python 3.3 to 3.14)
    from email.policy import compat32
from email.utils import quote as _quote, unquote as _unquote

MAX_DEPTH = 40

# A header section made only of fields (RFC 5322 §2.2: ftext = %d33-57 / %d59-126, then ':')
# and continuation lines: the lines the feedparser's ``headerRE`` accepts, minus "From ".
_SECTION = re.compile(r"(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*)*")
# One field: name, then the value as compat32's ``header_source_parse`` keeps it (first line
# left-stripped of blanks, continuation lines verbatim, final line ending removed below).
_FIELD = re.compile(r"([!-9;-~]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n")
# The same, only at the start of a line: a field line (see _fields_to_blank)
_LINE_FIELD = re.compile(r"^([!-9;-~]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n", re.M)
_BLANK = re.compile(r"^\r?\n", re.M)
_HEADER_LINE = re.compile(r"From |[!-9;-~]*:|[\t ]")  # the feedparser's ``headerRE``
# What may follow "--boundary" on a delimiter line (the feedparser's ``boundaryre``).
_DELIM_TAIL = re.compile(r"(--)?[ \t]*(?:\r?\n|\Z)")
_BARE_CR = re.compile(r"\r(?!\n)")
_MULTIPART_CTE = ("7bit", "8bit", "binary")


class Part(Message):
    """An :class:`email.message.Message` (``policy.compat32``) that remembers what it has read.

    A bounce is read many times over (content types while walking the tree, the same few
    header fields, the boundary and charset parameters); the stdlib re-scans the header list
    on every ``get``.  ``Part`` indexes the fields on the first read and keeps the content type,
    the parsed parameters and the decoded body text (:func:`dsnparse.load.part_text`); every
    method that changes the header section, the default type or the payload drops them.
    Reads return exactly what :class:`~email.message.Message` returns (compat32: a value with
    undecodable octets comes back as an ``email.header.Header``).  Not covered: a change made
    to ``_headers`` or ``_payload`` directly, or through a shallow copy sharing them.
    """

    # the header section as written (field lines, folded as they were), kept by parse() for
    # the root message; None when the header list was built otherwise, or once it changes
    _header_text = None

    def __init__(self, policy=compat32):
        super().__init__(policy)
        self._changed()

    def _changed(self):
        """Drop what has been kept (after a change, and as the initial state)."""
        self._index = self._ctype = self._params = None
        self._texts = {}  # decoded body text by character limit (dsnparse.load.part_text)
        self._header_text = None

    def _fields(self) -> dict:
        index = self._index
        if index is None:
            index = self._index = {}
            for k, v in self._headers:
                index.setdefault(k.lower(), (k, v))
        return index

    def __contains__(self, name):
        return name.lower() in self._fields()

    def get(self, name, failobj=None):
        index = self._index
        if index is None:
            index = self._fields()
        kv = index.get(name.lower())
        if kv is None:
            return failobj
        v = kv[1]
        if type(v) is str and v.isascii() and self.policy is compat32:
            return v  # what compat32's header_fetch_parse returns for it
        return self.policy.header_fetch_parse(kv[0], v)

    def get_content_type(self):
        ctype = self._ctype
        if ctype is None:
            ctype = self._ctype = super().get_content_type()
        return ctype

    def _params_of(self, header):
        """The parsed parameters of ``header`` as a tuple (kept), or ``None`` when absent."""
        key = header.lower()
        cache = self._params
        if cache is not None and key in cache:
            return cache[key]
        value = self.get(header, _MISSING)
        if value is _MISSING:
            return None
        params = _plain_params(value) if type(value) is str else None
        if params is None:
            params = super()._get_params_preserve(None, header)
        if cache is None:
            cache = self._params = {}
        params = cache[key] = tuple(params)
        return params

    def _get_params_preserve(self, failobj, header):
        params = self._params_of(header)
        # a fresh list, as the stdlib's (get_params returns it)
        return failobj if params is None else list(params)

    def get_param(self, param, failobj=None, header="content-type", unquote=True):
        # Message.get_param, reading the kept parameters
        params = self._params_of(header)
        if params is None:
            return failobj
        param = param.lower()
        for k, v in params:
            if k.lower() == param:
                return _unquotevalue(v) if unquote else v
        return failobj


def _dropping_caches(name: str):
    """``Message.<name>``, then the part's kept reads dropped (see :class:`Part`)."""
    method = getattr(Message, name)

    def changed(self, *args, **kwargs):
        result = method(self, *args, **kwargs)
        self._changed()
        return result

    changed.__name__ = changed.__qualname__ = name
    changed.__doc__ = method.__doc__
    return changed


# every Message method that changes the header section, the default type or the payload
# (set_param, del_param, set_type and set_charset change headers through these)
for _name in ("set_payload", "set_raw", "__setitem__", "__delitem__", "add_header",
              "replace_header", "set_default_type", "set_boundary"):
    setattr(Part, _name, _dropping_caches(_name))


def _plain_params(value: str):
    """``Message._get_params_preserve`` of a header value, or ``None`` when the value is
    outside what this reproduces: RFC 2231 ``*`` names, backslashes, a ``;`` inside quotes.

    Without those, the stdlib's ``_parseparam`` splits at every ``;`` (it moves a split only
    past an odd number of quotes), and ``utils.decode_params`` only unquotes and re-quotes the
    values; these are the same steps without its repeated quote counting.
    """
    if "*" in value or "\\" in value:
        return None
    pieces = value.split(";")
    if '"' in value:
        for f in pieces:
            if f.count('"') % 2:
                return None
    # _parseparam turns "k = v" into "k=v" (name stripped and lower-cased, value stripped);
    # _get_params_preserve splits that at its first "=", or takes (f.strip(), "")
    name, eq, val = pieces[0].partition("=")
    params = [(name.strip().lower(), val.strip()) if eq else (name.strip(), "")]
    for f in pieces[1:]:
        name, eq, val = f.partition("=")
        if eq:  # decode_params: every parameter after the first is unquoted and re-quoted
            params.append((name.strip().lower(), '"%s"' % _quote(_unquote(val.strip()))))
        else:
            params.append((name.strip(), '""'))
    return params


_MISSING = object()
_FRESH = Part().__dict__  # the attributes Part() sets, for _new_part


def _new_part(headers: list, default: str = "text/plain") -> Part:
    """A :class:`Part` as ``Part()`` makes it, with its header list (without running the
    ``__init__`` chain once per part)."""
    p = Part.__new__(Part)
    d = p.__dict__
    d.update(_FRESH)
    d["defects"] = []
    d["_texts"] = {}
    d["_headers"] = headers
    d["_default_type"] = default
    return p


class _Decline(Exception):
    """The input is outside what this fast path reproduces exactly."""


def parse(data: bytes):
    """Parse ``data`` as ``email.message_from_bytes(data, policy=compat32)`` would.

    Returns:
        the root :class:`email.message.Message`, or ``None`` when the input is outside the
        subset this module reproduces (see the module docstring); never raises.
    """
    text = data.decode("ascii", "surrogateescape")
    crlf = "\r" in text
    if crlf and _BARE_CR.search(text):
        return None
    try:
        msg, _last = _message(text, 0, len(text), "text/plain", 0, crlf)
        if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
            msg.defects.append(errors.MultipartInvariantViolationDefect())
    except Exception:  # noqa: BLE001 - _Decline, or what the stdlib raises too (RFC 2231 values)
        return None
    return msg


def parse_headers(text: str):
    """Parse ``text`` as ``email.parser.Parser(policy=compat32).parsestr(text,
    headersonly=True)`` would: the header section, the rest as a string payload.

    Returns:
        a :class:`Part`, or ``None`` when the input is outside the subset this module
        reproduces (the caller then uses the stdlib); never raises.
    """
    crlf = "\r" in text
    if crlf and _BARE_CR.search(text):
        return None
    try:
        headers, body, blank = _headers(text, 0, len(text), crlf)
    except Exception:  # noqa: BLE001 - _Decline
        return None
    msg = _new_part(headers)
    if not blank:
        msg.defects.append(errors.MissingHeaderBodySeparatorDefect())
    msg._payload = text[body:]
    if _HEADERSONLY_MULTIPART_DEFECT and msg.get_content_maintype() == "multipart":
        msg.defects.append(errors.MultipartInvariantViolationDefect())
    return msg


# Python 3.10's feedparser notes MultipartInvariantViolationDefect on a multipart header
# section parsed with headersonly=True too; 3.11 stopped (``and not self._headersonly`` in
# FeedParser.close).  parse_headers gives what the running Python's stdlib gives.
_HEADERSONLY_MULTIPART_DEFECT = sys.version_info < (3, 11)


def _fields_to_blank(text: str, pos: int, end: int, crlf: bool):
    """``(fields, section end)`` when the lines from ``pos`` to the first empty line (LF or
    CRLF) are all fields and continuation lines, the first a field: the section
    :data:`_SECTION` matches, read in one pass instead of two; else ``None``.

    Every line start there where :data:`_LINE_FIELD` matches begins a field, whose match
    takes its continuation lines; so the lines are all fields and continuations exactly when
    the matches are as many as the lines that do not start with a blank."""
    if pos >= end or text[pos] in " \t\n\r":
        return None
    b = text.find("\n\n", pos, end)
    if crlf:
        b2 = text.find("\n\r\n", pos, end)
        if b2 >= 0 and (b < 0 or b2 < b):
            b = b2
    if b < 0:
        return None
    hend = b + 1
    fields = _LINE_FIELD.findall(text, pos, hend)
    lines = text.count("\n", pos, hend)
    blanks = text.count("\n ", pos, b) + text.count("\n\t", pos, b)
    if len(fields) != lines - blanks:
        return None
    return fields, hend


def _headers(text: str, pos: int, end: int, crlf: bool):
    """Read the header section starting at ``pos``; returns (fields, body start, whether a
    blank line ended the section)."""
    quick = _fields_to_blank(text, pos, end, crlf)
    if quick is not None:  # a section of fields ended by an empty line: the common case
        fields, hend = quick
        if crlf:
            fields = [(n, v.rstrip("\r\n")) for n, v in fields]
        return fields, hend + 1 if text.startswith("\n", hend) else hend + 2, True
    hend = _SECTION.match(text, pos, end).end()
    blank = True
    if hend == end:
        body = end
    elif text.startswith("\n", hend):
        body = hend + 1
    elif text.startswith("\r\n", hend):
        body = hend + 2
    elif not _HEADER_LINE.match(text, hend):
        # a line that is no field, continuation or envelope line ends the section and
        # starts the body (the feedparser notes MissingHeaderBodySeparatorDefect)
        body, blank = hend, False
    else:  # an envelope line, a field without name, a leading continuation: defect paths
        raise _Decline
    fields = _FIELD.findall(text, pos, hend)  # (name, value) pairs
    if crlf:
        fields = [(n, v.rstrip("\r\n")) for n, v in fields]
    return fields, body, blank


def _message(text: str, pos: int, end: int, default: str, depth: int, crlf: bool):
    """Parse one message (or body part) occupying ``text[pos:end]``; returns it and the
    message whose payload or epilogue holds the region's last line (the feedparser's
    ``_last``: the line ending before the next delimiter belongs to the delimiter)."""
    if depth > MAX_DEPTH:
        raise _Decline
    headers, body, blank = _headers(text, pos, end, crlf)
    msg = _new_part(headers, default)
    if not blank:
        msg.defects.append(errors.MissingHeaderBodySeparatorDefect())
    if depth == 0:
        msg._header_text = text[pos:body]
    # the content type as Message.get_content_type() reads it from the first Content-Type
    # field (RFC 2045 §5.2: text/plain when it is not type/subtype), found in the text
    for name, value in headers:
        if len(name) == 12 and name.lower() == "content-type":
            break
    else:
        value = None
    if value is None:
        ctype = msg._ctype = default
    elif value.isascii():
        ctype = value.partition(";")[0].strip().lower()
        if ctype.count("/") != 1:
            ctype = "text/plain"
        msg._ctype = ctype
    else:  # undecodable octets: a Header object, as the stdlib reads it
        ctype = msg.get_content_type()
    if ctype == "message/delivery-status":
        return msg, _delivery_status(msg, text, body, end, crlf)
    maintype = ctype.split("/", 1)[0]
    if maintype == "message":
        sub, last = _message(text, body, end, "text/plain", depth + 1, crlf)
        msg._payload = [sub]
        return msg, last
    if maintype == "multipart":
        _multipart(msg, ctype, text, body, end, depth, crlf)
        return msg, msg
    msg._payload = text[body:end]
    return msg, msg


def _delivery_status(msg: Message, text: str, pos: int, end: int, crlf: bool) -> Message:
    """Blocks of fields separated by blank lines (RFC 3464 §2.1), each a header-only
    message, as the feedparser builds them (an empty message per extra blank line)."""
    blocks = []
    while True:
        m = _BLANK.search(text, pos, end)
        stop = m.start() if m else end
        headers, body, blank = _headers(text, pos, stop, crlf)
        block = _new_part(headers)
        for name, _ in block._headers:
            if name.lower() == "content-type":
                # the feedparser parses the block's body by its type: a message or multipart
                # type nests (declined); any other type takes the lines to the blank line
                if block.get_content_maintype() in ("message", "multipart"):
                    raise _Decline
                break
        if blank:
            if body != stop:
                raise _Decline  # (cannot happen: stop is the first blank line)
            block._payload = ""
        else:
            # a line that is no field (a stray continuation, a delimiter the multipart did
            # not take) ends the block's fields; the lines up to the blank line are its body
            block.defects.append(errors.MissingHeaderBodySeparatorDefect())
            block._payload = text[body:stop]
        blocks.append(block)
        if m is None:
            break
        pos = m.end()
        if pos >= end:
            break
    msg._payload = blocks
    return blocks[-1]


def _strip_eol(s: str) -> str:
    if s.endswith("\r\n"):
        return s[:-2]
    if s.endswith("\n"):
        return s[:-1]
    return s


def _multipart(msg: Message, ctype: str, text: str, pos: int, end: int, depth: int,
               crlf: bool) -> None:
    boundary = msg.get_boundary()
    if boundary is None:  # RFC 2046 §5.1.1 makes it mandatory: the body stays text
        msg.defects.append(errors.NoBoundaryInMultipartDefect())
        msg._payload = text[pos:end]
        return
    if not boundary or "\n" in boundary or "\r" in boundary:
        # empty, or folded inside quotes: the feedparser matches delimiters line by line, so
        # a boundary holding a line break never matches (the needle search below would)
        raise _Decline
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in _MULTIPART_CTE:
        msg.defects.append(errors.InvalidMultipartContentTransferEncodingDefect())
    sep = "--" + boundary
    # delimiter lines: (line start, next line start, is the close delimiter)
    delims = []
    needle = "\n" + sep
    n = len(sep)
    if pos == 0:
        raise _Decline  # (a body always starts after a line ending)
    i = text.find(needle, pos - 1, end)  # text[pos - 1] is the line ending before the body
    close = False
    while i != -1:
        start = i + 1
        t = _DELIM_TAIL.match(text, start + n, end)
        if t is not None:
            close = t.group(1) is not None
            delims.append((start, t.end(), close))
            if close:
                break
        i = text.find(needle, start + n - 1, end)
    if not delims or delims[0][2]:
        # no start delimiter: the body up to a close delimiter (or the end) stays text, what
        # follows is dropped, and the epilogue is empty
        msg.defects.append(errors.StartBoundaryNotFoundDefect())
        msg._payload = text[pos:delims[0][0] if delims else end]
        msg.epilogue = ""
        return
    if not close:
        # the message ends inside the last part (a truncated returned message, often): that
        # part runs to the end and the multipart notes the defect, without an epilogue
        delims.append((end, end, False))
    first = delims[0][0]
    if first > pos:
        msg.preamble = _strip_eol(text[pos:first])
    child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
    parts = []
    for (s0, e0, _), (s1, e1, _) in zip(delims, delims[1:]):
        if s1 == e0:
            raise _Decline  # adjacent delimiter lines: the feedparser skips them
        part, last = _message(text, e0, s1, child_default, depth + 1, crlf)
        if last.get_content_maintype() == "multipart":
            if last.epilogue == "":
                last.epilogue = None
            elif last.epilogue is not None:
                last.epilogue = _strip_eol(last.epilogue)
        elif isinstance(last._payload, str):
            last._payload = _strip_eol(last._payload)
        parts.append(part)
    msg._payload = parts
    if close:
        msg.epilogue = text[delims[-1][1]:end]
    else:
        msg.defects.append(errors.CloseBoundaryNotFoundDefect())
