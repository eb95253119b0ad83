"""The fast MIME path (dsnparse/mime.py) builds exactly the tree the stdlib feedparser builds
with ``policy.compat32``, or declines; and ``mime.Part`` reads exactly like ``Message``.

Checked on every sample, every shared-corpus email (skipped without ../shared) and mutated
variants of them (boundaries deleted or duplicated, truncations, line endings, junk bytes),
plus hand-written structures whose stdlib tree was worked out from RFC 2046 §5.1.1 (the line
ending before a delimiter belongs to the delimiter) and RFC 3464 §2.1 (blocks of fields).
"""
from __future__ import annotations

import email
import random
from email import policy
from email.message import Message

import pytest

import fuzzing
from conftest import NOT_BOUNCES, SAMPLES, SISIMAI, need
from dsnparse import mime
from dsnparse.load import load


def stdlib(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=policy.compat32)


def tree(m: Message):
    p = m._payload
    return (m._headers, m._unixfrom, m._default_type, m.preamble, m.epilogue,
            [type(d).__name__ for d in m.defects], m._charset,
            [tree(x) for x in p] if isinstance(p, list) else p)


def same_or_declined(data: bytes) -> bool:
    """``True`` when the fast path built the stdlib's tree, ``False`` when it declined."""
    fast = mime.parse(data)
    if fast is None:
        return False
    assert tree(fast) == tree(stdlib(data)), data[:300]
    return True


def _eml(root):
    return sorted(p for p in root.rglob("*.eml"))


def _body(data: bytes) -> bytes:
    return data.split(b"\n", 1)[1] if data.startswith(b"From ") else data


def test_samples_same_tree():
    taken = [same_or_declined(_body(p.read_bytes())) for p in _eml(SAMPLES)]
    assert sum(taken) >= len(taken) * 0.8  # the fast path is the common case


def test_shared_corpus_same_tree():
    files = _eml(need(SISIMAI)) + _eml(need(NOT_BOUNCES))
    taken = [same_or_declined(_body(p.read_bytes())) for p in files]
    assert sum(taken) >= len(taken) * 0.85


def test_mutants_same_tree():
    pool = fuzzing.seeds(limit_corpus=150)
    rng = random.Random(3)
    taken = 0
    for _ in range(3000):
        data = fuzzing.mutate(rng, pool)
        if mime.parse(data) is None:
            continue
        taken += same_or_declined(data)
    assert taken > 300  # mutants the fast path took, each compared with the stdlib


RFC2046 = (b"From: a@example.org\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
           b"preamble line\n"
           b"--b1\nContent-Type: text/plain\n\nfirst\n\n"
           b"--b1\n\nsecond, no header\n"
           b"--b1\nContent-Type: multipart/alternative; boundary=b2\n\n"
           b"--b2\n\ninner\n--b2--\n\n"
           b"--b1--\nepilogue\n")


def test_rfc2046_delimiters_by_hand():
    m = mime.parse(RFC2046)
    assert m.preamble == "preamble line"
    first, second, alt = m.get_payload()
    assert first.get_payload() == "first\n"  # the last line ending belongs to the delimiter
    assert second._headers == [] and second.get_payload() == "second, no header"
    assert alt.get_payload()[0].get_payload() == "inner"
    assert alt.epilogue == ""  # one blank line after the inner close, minus its line ending
    assert m.epilogue == "epilogue\n"
    assert tree(m) == tree(stdlib(RFC2046))


def test_delivery_status_blocks_by_hand():
    data = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
            b"--x\nContent-Type: message/delivery-status\n\n"
            b"Reporting-MTA: dns; mx.example.org\n\n"
            b"Final-Recipient: rfc822; a@example.net\nStatus: 5.1.1\n"
            b"Diagnostic-Code: smtp; 550 5.1.1\n  no such user\n\n\n"
            b"--x--\n")
    ds = mime.parse(data).get_payload()[0]
    blocks = ds.get_payload()
    # one block per field group (RFC 3464 §2.1), plus an empty one for the extra blank line
    assert [b.items() for b in blocks] == [
        [("Reporting-MTA", "dns; mx.example.org")],
        [("Final-Recipient", "rfc822; a@example.net"), ("Status", "5.1.1"),
         ("Diagnostic-Code", "smtp; 550 5.1.1\n  no such user")],
        [],
    ]
    assert tree(mime.parse(data)) == tree(stdlib(data))


def test_delivery_status_block_with_a_line_that_is_no_field():
    # a Diagnostic-Code continued without leading white space (as some MTAs write it): the
    # feedparser ends that block's fields at the stray line (MissingHeaderBodySeparator) and
    # keeps the lines up to the blank line as the block's body
    data = (b"Content-Type: multipart/report; boundary=x\n\n"
            b"--x\nContent-Type: message/delivery-status\n\n"
            b"Reporting-MTA: dns; mx.example.org\n\n"
            b"Final-Recipient: rfc822; a@example.net\n"
            b"Diagnostic-Code: smtp; 550-first line\n550 second line\nStatus: 5.0.0\n\n"
            b"--x--\n")
    m = mime.parse(data)
    assert m is not None  # taken by the fast path
    blocks = m.get_payload()[0].get_payload()
    assert blocks[1].items() == [("Final-Recipient", "rfc822; a@example.net"),
                                 ("Diagnostic-Code", "smtp; 550-first line")]
    assert [type(d).__name__ for d in blocks[1].defects] == ["MissingHeaderBodySeparatorDefect"]
    assert blocks[1].get_payload() == "550 second line\nStatus: 5.0.0"
    assert tree(m) == tree(stdlib(data))


@pytest.mark.parametrize("ctype, taken", [
    (b"text/plain; charset=us-ascii", True),  # fields, then the lines to the blank line
    (b"nonsense", True),  # no type/subtype: text/plain
    (b"message/rfc822", False),  # the feedparser nests a message: declined
    (b"multipart/mixed; boundary=z", False),
])
def test_delivery_status_block_with_a_content_type(ctype, taken):
    # a returned header section that ended up among the blocks (a delimiter the multipart
    # did not take): the feedparser reads each block by its own Content-Type
    data = (b"Content-Type: multipart/report; boundary=x\n\n"
            b"--x\nContent-Type: message/delivery-status\n\n"
            b"Final-Recipient: rfc822; a@example.net\nStatus: 5.1.1\n\n"
            b"Return-Path: <b@example.org>\nContent-Type: " + ctype + b"\nSubject: s\n\n"
            b"body line\n--x--\n")
    assert (mime.parse(data) is not None) is taken
    assert tree(load(data)) == tree(stdlib(data))


def test_truncated_last_part_noted_as_defect():
    data = RFC2046[:RFC2046.index(b"--b1--")]  # the close delimiter never comes
    m = mime.parse(data)
    assert [type(d).__name__ for d in m.defects] == ["CloseBoundaryNotFoundDefect"]
    assert m.epilogue is None
    assert tree(m) == tree(stdlib(data))


@pytest.mark.parametrize("data, defects", [
    # RFC 5322 §2.2: a line that is no field ends the header section and starts the body
    (b"Subject: x\r\nbroken line\r\n\r\nbody", ["MissingHeaderBodySeparatorDefect"]),
    # RFC 2046 §5.1.1: the boundary parameter is mandatory; the body stays text
    (b"Content-Type: multipart/mixed\n\nno boundary",
     ["NoBoundaryInMultipartDefect", "MultipartInvariantViolationDefect"]),
    (b"Content-Type: multipart/mixed; boundary=q\n\nno delimiter at all\n--q--\ngone\n",
     ["StartBoundaryNotFoundDefect", "MultipartInvariantViolationDefect"]),
])
def test_defects_reproduced(data, defects):
    m = mime.parse(data)
    assert [type(d).__name__ for d in m.defects] == defects
    assert tree(m) == tree(stdlib(data))


def test_no_start_delimiter_keeps_the_text_before_a_close_delimiter():
    m = mime.parse(b"Content-Type: multipart/mixed; boundary=q\n\nkept\n--q--\ndropped\n")
    assert m.get_payload() == "kept\n" and m.epilogue == ""


@pytest.mark.parametrize("data", [
    b"Subject: x\n: no field name\n\nbody",             # a line starting with ':'
    b"Subject: x\nFrom someone\n\nbody",               # an envelope line among fields
    b"Subject: x\rFrom: y\r\r",                         # bare CR line endings
    b"Content-Type: multipart/mixed; boundary=q\n\n--q\n--q\n\nx\n--q--\n",  # adjacent
])
def test_declines_what_it_does_not_reproduce(data):
    assert mime.parse(data) is None
    assert tree(load(data)) == tree(stdlib(data))  # load() then uses the stdlib


# Inputs where the fast path once built another tree than the stdlib (found by a differential
# harness); each must now give the stdlib's tree or be declined.
REGRESSIONS = [
    # a boundary folded inside its quotes holds a line break: no line ever matches it
    b'Content-Type: multipart/mixed; boundary="a\n b"\n\n--a\n b\nx\n--a\n b--\n',
    b'Content-Type: multipart/mixed; boundary="a\r\n b"\r\n\r\n--a\r\n b\r\nx\r\n--a\r\n b--\r\n',
]


@pytest.mark.parametrize("data", REGRESSIONS)
def test_regressions_same_or_declined(data):
    same_or_declined(data)
    assert tree(load(data)) == tree(stdlib(data))


def test_part_reads_like_message():
    data = (b"Content-Type: Multipart/Report; report-type=delivery-status;\n"
            b" boundary=\"=?x?=\"; charset*=us-ascii'en'a%20b\n"
            b"Subject: =?utf-8?q?caf=C3=A9?=\nX-Raw: caf\xc3\xa9\nsubject: second\n\n"
            b"--=?x?=\n\ntext\n--=?x?=--\n")
    fast, ref = mime.parse(data), stdlib(data)
    for name in ("content-type", "SUBJECT", "x-raw", "missing"):
        assert str(fast.get(name)) == str(ref.get(name))
        assert type(fast.get(name)) is type(ref.get(name))  # 8-bit value: a Header
    assert ("CONTENT-type" in fast) is ("CONTENT-type" in ref) is True
    assert ("x-missing" in fast) is ("x-missing" in ref) is False
    assert fast.get_content_type() == ref.get_content_type() == "multipart/report"
    assert fast.get_params() == ref.get_params()
    assert fast.get_param("report-type") == "delivery-status"
    assert fast.get_boundary() == ref.get_boundary() == "=?x?="
    assert fast.get_content_charset() == ref.get_content_charset()
    # a change to the header section is seen by the next read
    fast.replace_header("Content-Type", "text/plain; charset=latin-1")
    assert fast.get_content_type() == "text/plain"
    assert fast.get_content_charset() == "latin-1"
    del fast["subject"]
    assert fast.get("subject") is None and "subject" not in fast
    fast["Subject"] = "new"
    assert fast["subject"] == "new"
    fast.set_default_type("message/rfc822")
    del fast["content-type"]
    assert fast.get_content_type() == "message/rfc822"


def test_parameters_read_like_message():
    """Part parses Content-Type parameters without the stdlib's quote counting where it can
    (mime._plain_params) and with it elsewhere: the reads must equal Message's on values
    built from the characters that steer email.message._parseparam and decode_params."""
    rng = random.Random(2046)
    alphabet = ['"', ";", "=", "\\", "*", " ", "\t", "\n ", "<", ">", "'", "%", "a", "B", "0",
                "-", "charset", "boundary", "=_x", "utf-8", "\u0130", "\xe9", "*0", "*1*"]
    values = ['text/plain; charset="us-ascii"', 'multipart/report; boundary="a;b"; x=1',
              'text/plain; CHARSET = "UTF-8" ; format=flowed;', "text/plain;;charset=x",
              'multipart/mixed; boundary="=_a\\"b"', "text/plain; charset=<koi8-r>",
              'text/plain; name="a\\\\b"', "text/plain; =x; y", "; a=b", ""]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 14)))
               for _ in range(6000)]
    for v in values:
        fast, ref = mime._new_part([("Content-Type", v)]), Message()
        ref._headers = [("Content-Type", v)]
        for read in (lambda m: m.get_params(), lambda m: m.get_params(unquote=False),
                     lambda m: m.get_param("charset"), lambda m: m.get_boundary(),
                     lambda m: m.get_content_charset(), lambda m: m.get_params()):
            try:
                want = ("ok", read(ref))
            except Exception as e:  # noqa: BLE001 - RFC 2231 values the stdlib cannot decode
                want = ("raises", type(e))
            try:
                got = ("ok", read(fast))
            except Exception as e:  # noqa: BLE001
                got = ("raises", type(e))
            assert got == want, v


def test_header_only_parse_same_as_stdlib():
    """mime.parse_headers == Parser(compat32).parsestr(text, headersonly=True) on the text
    of every sample and corpus email (as text/rfc822-headers parts hold it)."""
    from email.parser import Parser
    files = _eml(SAMPLES) + (_eml(SISIMAI) if SISIMAI.exists() else [])
    taken = 0
    for p in files:
        text = _body(p.read_bytes()).decode("utf-8", "replace")
        fast = mime.parse_headers(text)
        if fast is None:
            continue
        taken += 1
        assert tree(fast) == tree(Parser(policy=policy.compat32).parsestr(text, headersonly=True))
    assert taken > len(files) * 0.8


def test_part_reads_like_message_after_caller_mutations():
    """A list get_params() returned is the caller's (the stdlib builds a new one per call),
    and a Part under another policy reads its fields through that policy."""
    from email.parser import BytesParser
    data = b"Content-Type: text/plain; charset=x\nSubject: a\n  b\n\nbody"
    fast, ref = mime.parse(data), stdlib(data)
    for m in (fast, ref):
        m.get_params(unquote=False).append(("x", "y"))
        m.get_params([]).clear()
    assert fast.get_params() == ref.get_params() == [("text/plain", ""), ("charset", "x")]
    for pol in (policy.default, policy.SMTP):
        fast = BytesParser(mime.Part, policy=pol).parsebytes(data)
        ref = BytesParser(Message, policy=pol).parsebytes(data)
        assert fast["subject"] == ref["subject"] == "a  b"
        assert type(fast["subject"]).__name__ == type(ref["subject"]).__name__ != "str"


def test_kept_part_text_follows_changes_to_the_parts_inside():
    from dsnparse.load import _part_text, part_text
    data = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
            b"Subject: old\n\nbody\n--b--\n")
    m = mime.parse(data)
    part = m.get_payload(0)
    part_text(part)
    part.get_payload(0).replace_header("Subject", "new")
    assert part_text(part) == _part_text(part, 2_000_000)[0] == "Subject: new\n\nbody"
    part_text(m)
    m.attach(mime.Part())
    assert part_text(m) == _part_text(m, 2_000_000)[0]


def test_root_keeps_its_header_section_as_written_until_changed():
    data = b"Subject: a\n folded\nFrom:x@example.org\n\nbody\n"
    m = mime.parse(data)
    assert m._header_text == "Subject: a\n folded\nFrom:x@example.org\n\n"
    m["X-New"] = "1"
    assert m._header_text is None  # the prefilter then joins the header list
    assert mime.parse(b"Content-Type: multipart/mixed; boundary=q\n\n--q\nA: b\n\nx\n--q--\n") \
        .get_payload()[0]._header_text is None  # parts other than the root keep none
