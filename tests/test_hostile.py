"""Hostile input that used to stall the parser (issue 18): each shape runs the command in a
subprocess under a generous wall-clock guard, and the test asserts the *outcome* (the run
completes, with the right verdict or an ``error`` record naming the cause), not a timing.
The shapes are sized so that the code before the fix runs for many minutes on them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT

GUARD = 90  # seconds: a run far beyond this is the stall the test is about


def dsn(final_recipient: str, diagnostic: str = "smtp; 550 5.1.1 user unknown",
        headers: str = "") -> bytes:
    """A small RFC 3464 report (multipart/report, one recipient) with the given fields."""
    return ("From: MAILER-DAEMON@mx.example.net\r\nTo: sender@example.org\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n{headers}"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: {final_recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: {diagnostic}\r\n\r\n--B--\r\n").encode("utf-8")


def run_parse(message: bytes, *args, timeout: float = GUARD, env=None):
    """``dsnparse parse -f jsonl - ARGS`` on ``message``: (exit status, records, stderr)."""
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    try:
        r = subprocess.run([sys.executable, "-m", "dsnparse", "parse", "-f", "jsonl", *args, "-"],
                           input=message, capture_output=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the parser did not finish within {timeout} s")
    records = [json.loads(line) for line in r.stdout.decode().splitlines()]
    return r.returncode, records, r.stderr.decode()


# --------------------------------------------------------------------------- address reader

@pytest.mark.parametrize("final_recipient,want", [
    # one "<" then a long run of "@": no bracketed address, the value is kept as written
    ("rfc822; <" + "@" * 400_000, "@" * 400_000),
    # unbalanced comment openers: no comment, the value as written
    ("rfc822; " + "(" * 400_000, "(" * 400_000),
    # a real address, then a flood of unclosed comments
    ("rfc822; alice@example.org " + "(x" * 200_000, "alice@example.org"),
    # many "<" before one ">" far away
    ("rfc822; " + "<a" * 200_000 + " <bob@example.org>", "bob@example.org"),
])
def test_final_recipient_floods_complete_with_the_address(final_recipient, want):
    status, records, err = run_parse(dsn(final_recipient))
    assert status == 0, err
    assert [r["kind"] for r in records] == ["bounce"]
    assert records[0]["final_recipient"] == want
    assert records[0]["status"] == "5.1.1"


def arf(original_rcpt_to: str) -> bytes:
    """An RFC 5965 feedback report whose Original-Rcpt-To field is ``original_rcpt_to``."""
    return ("From: fbl@isp.example\r\nTo: abuse@example.org\r\nSubject: complaint\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;"
            " boundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
            "--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
            "User-Agent: fbl/1.0\r\nVersion: 1\r\n"
            f"Original-Rcpt-To: {original_rcpt_to}\r\n\r\n--F--\r\n").encode()


def test_complaint_recipient_flood_completes():
    # clean_address looked for "<local@domain>" with a pattern that rescans from every "@"
    status, records, err = run_parse(arf("<" + "@" * 400_000))
    assert status == 0, err
    assert [(r["kind"], r["final_recipient"], r["feedback_type"]) for r in records] == \
        [("complaint", None, "abuse")]  # no address in it: reported without one


def returned_original_bounce(to: str) -> bytes:
    """A bounce with no recipient in its report: the generic pack takes the one address in
    the To of the returned message (``to``)."""
    return ("From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
            "To: sender@example.org\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"R\"\r\n\r\n--R\r\n"
            "Content-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--R\r\nContent-Type: message/rfc822\r\n\r\nFrom: sender@example.org\r\n"
            f"To: {to}\r\nSubject: hello\r\n\r\nhello\r\n--R--\r\n").encode()


@pytest.mark.parametrize("to,want", [
    ("carol@example.com", "carol@example.com"),
    ("(" * 50_000 + "carol@example.com", None),  # the stdlib parser recursed once per "("
    ("a@b (" * 20_000, None),
])
def test_returned_original_to_shapes(to, want):
    status, records, err = run_parse(returned_original_bounce(to))
    assert status == 0, err  # no "internal error" (exit status 1)
    assert "internal error" not in err
    if want is None:
        assert [r["kind"] for r in records] == ["not_bounce"]
    else:
        assert [(r["kind"], r["final_recipient"]) for r in records] == [("bounce", want)]


@pytest.mark.parametrize("value,want", [
    # RFC 5321 §4.1.2: "=", "+", "(" … are kept in a local part as written
    ("rfc822; =SUM(1+1)@example.com", "=SUM(1+1)@example.com"),
    ("rfc822; <=SUM(1+1)@example.com>", "=SUM(1+1)@example.com"),
    ("rfc822; +cmd|x@example.com", "+cmd|x@example.com"),
    # a comment standing apart from the address is still dropped (RFC 5322 §3.2.2)
    ("rfc822; alice@example.org (Alice Example)", "alice@example.org"),
    ("rfc822; (returned) alice@example.org", "alice@example.org"),
    ("rfc822; (x@y.example) alice@example.org", "alice@example.org"),
    ("rfc822; alice@example.org(Alice)", "alice@example.org"),
])
def test_address_local_part_kept_as_written(value, want):
    from dsnparse import rfc3464

    assert rfc3464.address(value) == want


def test_formula_like_local_part_reaches_the_record():
    import dsnparse

    r = dsnparse.parse(dsn("rfc822; =SUM(1+1)@example.com"))
    assert [v.final_recipient for v in r.verdicts] == ["=SUM(1+1)@example.com"]
    assert r.verdicts[0].code == "511"


# --------------------------------------------------------------------------- header decoding

def test_encoded_word_flood_in_headers_completes():
    # 64 KB header values made of encoded-word openers that no "?=" closes: the stdlib's
    # decode_header rescans the rest of the value from each one (4 s per value); twenty
    # such fields (Subject, To, and the returned message's) used to take minutes
    flood = "a@=?utf-8?b?5." * 4_600
    headers = "".join(f"X-Flood-{i}: {flood}\r\n" for i in range(40))
    msg = dsn("rfc822; alice@example.org", headers=headers)
    msg = msg.replace(b"Subject: Undelivered Mail Returned to Sender",
                      b"Subject: " + flood.encode()).replace(
        b"To: sender@example.org", b"To: " + flood.encode())
    status, records, err = run_parse(msg)
    assert status == 0, err
    assert [(r["kind"], r["final_recipient"]) for r in records] == [("bounce", "alice@example.org")]


_WORD_TOKENS = ["=?", "?=", "?", "=", "utf-8", "iso-8859-1", "q", "b", "Q", "B", " ", "\t",
                "a", "QUJD", "caf=C3=A9", "_", "\u00e9", "\n", "\x85", "x@y"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_WORD_TOKENS), max_size=16).map("".join))
def test_linear_header_decoding_equals_the_stdlib(value):
    # decode_words replaces email.header.decode_header (quadratic): same text, same errors
    import email.header

    from dsnparse.load import decode_words

    def text(p, c):
        if not isinstance(p, bytes):
            return p
        try:
            return p.decode(c or "utf-8", "replace")
        except LookupError:  # a charset name no codec has ("=?=?q?…"): UTF-8 (decode_word)
            return p.decode("utf-8", "replace")

    try:
        want = "".join(text(p, c) for p, c in email.header.decode_header(value))
    except Exception as e:  # noqa: BLE001 - the same exception type is expected
        with pytest.raises(type(e)):
            decode_words(value)
    else:
        assert decode_words(value) == want


def test_header_decoding_examples():
    from dsnparse.load import unfold

    assert unfold("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_bar?= plain") == "café bar plain"
    assert unfold("Re: =?iso-8859-1?b?Y2Fm6Q==?=") == "Re: café"
    assert unfold("a@=?utf-8?b?5." * 4_600).startswith("a@=?utf-8?b?5.a@")  # nothing to decode


# --------------------------------------------------------------------------- the budget

HOSTILE_PACK = """\
description: a test pack whose pattern backtracks exponentially on its own marker line
order: 100
detect:
  any:
    - body: '^x-hostile-marker: (?:a|aa)+$'
recipients:
  - id: recipient
    pattern: '^x-recipient: (?P<recipient>\\S+@\\S+)$'
"""


def hostile_message() -> bytes:
    return ("From: postmaster@mx.example.net\r\nTo: sender@example.org\r\n"
            "Subject: delivery failure\r\n\r\n"
            + "x-hostile-marker: " + "a" * 900 + "b\r\n"
            "x-recipient: bob@example.org\r\n").encode()


def test_message_over_its_budget_gets_an_error_record_and_the_run_goes_on(tmp_path):
    # each search of the pack's pattern may run 30 s (pattern_timeout): only the message's
    # budget (1 s) stops it; the next message is parsed as usual
    (tmp_path / "hostile.yaml").write_text(HOSTILE_PACK)
    code = (
        "import json, sys\n"
        "from dsnparse.options import Options\n"
        "from dsnparse.sources import parse_item\n"
        f"o = Options(rules=({str(tmp_path)!r},), pattern_timeout=30.0, message_timeout=1.0)\n"
        f"a = parse_item('hostile.eml', {hostile_message()!r}, o)\n"
        f"b = parse_item('normal.eml', {dsn('rfc822; alice@example.org')!r}, o)\n"
        "print(json.dumps([a.kind, a.error, b.kind, [v.final_recipient for v in b.verdicts]]))\n"
    )
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=e, timeout=GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the budget did not stop the message within {GUARD} s")
    assert r.returncode == 0, r.stderr.decode()
    kind, error, next_kind, next_rcpts = json.loads(r.stdout)
    assert kind == "error"
    assert error.startswith("hostile.eml: message_timeout: ")
    assert "hostile.yaml" in error  # the stage: the pattern that was running
    assert (next_kind, next_rcpts) == ("bounce", ["alice@example.org"])


def test_cli_message_timeout_option(tmp_path):
    (tmp_path / "hostile.yaml").write_text(HOSTILE_PACK)
    status, records, err = run_parse(hostile_message(), "--rules", str(tmp_path),
                                     "--message-timeout", "0.05")
    assert status == 0, err  # like input that is not an email: a record, exit status 0
    assert [r["kind"] for r in records] == ["error"]
    assert records[0]["error"].startswith("-: message_timeout: parsing took longer than the "
                                          "0.05 s budget")
    assert "errors: 1" in err


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_cli_message_timeout_rejects_bad_values(value):
    status, records, err = run_parse(b"", "--message-timeout", value, timeout=60)
    assert status == 2 and "--message-timeout" in err


def test_budget_off_and_on():
    from dsnparse import budget
    from dsnparse.errors import InputError, MessageTimeout

    prev = budget.start(0)
    try:
        budget.check("nothing")  # no budget: never raises
        assert budget.timeout(0.25) == 0.25
        budget.start(-1.0)
        budget.check("nothing")
        budget.start(1e-9)
        import time
        time.sleep(0.01)
        with pytest.raises(MessageTimeout) as e:
            budget.check("stage %s", "x")
        assert isinstance(e.value, InputError) and e.value.stage == "stage x"
        with pytest.raises(MessageTimeout):
            budget.timeout(0.25)
        budget.start(100.0)
        assert budget.timeout(0.25) == 0.25 and 99 < budget.timeout(1000.0) <= 100
    finally:
        budget.restore(prev)


# --------------------------------------------------------------------------- truncation

def free_text_bounce(n_more: int) -> bytes:
    """A Postfix-style plain-text bounce: alice, ``n_more`` other recipients, then zed."""
    lines = ["This is the mail system at host mx.example.net.", "",
             "I'm sorry to have to inform you that your message could not",
             "be delivered to one or more recipients. It's attached below.", "",
             "                   The mail system", "",
             "<alice@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 user unknown", ""]
    for i in range(n_more):
        lines += [f"<u{i}@example.com>: host mx.example.com[192.0.2.2] said: 552 5.2.2 "
                  f"mailbox full", ""]
    lines += ["<zed@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 user unknown"]
    return ("From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\nTo: sender@example.org\n"
            "Subject: Undelivered Mail Returned to Sender\n"
            "Content-Type: text/plain; charset=us-ascii\n\n" + "\n".join(lines) + "\n").encode()


def test_text_cut_at_its_limit_is_flagged_in_records_and_summary():
    from dsnparse.load import REPORT_TEXT_LIMIT

    msg = free_text_bounce(6_000)
    assert len(msg) > REPORT_TEXT_LIMIT  # zed is named beyond the limit
    status, records, err = run_parse(msg)
    assert status == 0, err
    rcpts = [r["final_recipient"] for r in records]
    assert rcpts[0] == "alice@example.org" and "zed@example.org" not in rcpts
    assert all(r["truncated"] is True for r in records)
    assert "truncated: 1" in err


def test_short_text_is_not_flagged():
    status, records, err = run_parse(free_text_bounce(3))
    assert [r["final_recipient"] for r in records][-1] == "zed@example.org"
    assert all(r["truncated"] is False for r in records)
    assert "truncated" not in err


def test_inline_status_block_cut_at_its_limit_is_flagged():
    import dsnparse
    from dsnparse.load import REPORT_TEXT_LIMIT

    blocks = "".join(f"Final-Recipient: rfc822; u{i}@example.com\nAction: failed\n"
                     f"Status: 5.1.1\n\n" for i in range(REPORT_TEXT_LIMIT // 60 + 10))
    msg = ("From: MAILER-DAEMON@mx.example.net\nTo: sender@example.org\nSubject: failure\n"
           "Content-Type: text/plain\n\nReporting-MTA: dns; mx.example.net\n\n" + blocks).encode()
    r = dsnparse.parse(msg)
    assert r.format == "rfc3464-text" and r.truncated
    assert 0 < len(r.verdicts) < REPORT_TEXT_LIMIT // 60 + 10
    small = dsnparse.parse(msg[:2_000])
    assert small.format == "rfc3464-text" and not small.truncated


def test_parts_beyond_the_walk_limit_are_flagged():
    import dsnparse

    parts = "".join("--P\nContent-Type: text/plain\n\nhello\n" for _ in range(600))
    msg = ("From: a@example.org\nTo: b@example.org\nSubject: many parts\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=P\n\n" + parts + "--P--\n").encode()
    assert dsnparse.parse(msg).truncated
    few = msg.replace(parts.encode(), parts[: len(parts) // 100].encode())
    assert not dsnparse.parse(few).truncated


# --------------------------------------------------------------------------- pack patterns

def _limited_memory():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # (so a regression fails fast)


@pytest.mark.parametrize("pattern,why", [
    # an escaped backslash, then a real repeat of ten million (29 s and 2.7 GB to compile)
    (r"(?P<recipient>\S+@\S+) \\{10000000}", "repeat count {10000000} is larger than 10000"),
    # nested counts multiply: 10^8 copies (a MemoryError traceback)
    (r"(?P<recipient>\S+@\S+)(?:(?:x{10000}){10000})", "pattern too large to compile"),
    (r"(?P<recipient>\S+@\S+)(?:(?:(?:ab|cd){100}){100}){100}", "pattern too large to compile"),
    (r"(?P<recipient>\S+@\S+)x{,20000}", "repeat count {,20000} is larger than 10000"),
])
def test_rules_check_reports_patterns_too_costly_to_compile(tmp_path, pattern, why):
    rdir = tmp_path / "rules"
    rdir.mkdir()
    (rdir / "costly.yaml").write_text(
        "detect:\n  any:\n    - body: 'undeliverable'\n"
        f"recipients:\n  - id: rcpt\n    pattern: '{pattern}'\n")
    e = dict(os.environ, PYTHONPATH=str(ROOT), DSNPARSE_CACHE="0")
    try:
        r = subprocess.run([sys.executable, "-m", "dsnparse", "rules", "check", str(rdir)],
                           capture_output=True, env=e, timeout=GUARD, preexec_fn=_limited_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"rules check did not finish within {GUARD} s")
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 2, out
    assert "Traceback" not in out and "MemoryError" not in out
    assert f"costly.yaml: rule 'rcpt': field 'pattern': {why}" in out


@pytest.mark.parametrize("pattern,size", [
    ("abc", 3),
    ("x{1000}", 1000),
    (r"\\{7}", 7),         # an escaped backslash repeated
    (r"\{7}", 3),          # an escaped brace: no repeat (three atoms)
    ("[{]{5}", 5),         # a brace in a class, then a repeat of the class
    ("(?:a|b){10}", (1 + 1 + 1) * 10),  # (the ":" counts as an atom: a safe over-estimate)
    ("(?:(?:x{100}){100})", 1 + (1 + 100) * 100),
    ("a{2,5}b{3,}", 8),
])
def test_program_size(pattern, size):
    from dsnparse.backtrack import program_size

    assert program_size(pattern) == size


def test_shipped_patterns_are_far_below_the_size_limit():
    from dsnparse.backtrack import program_size
    from dsnparse.rules import MAX_PROGRAM, load_packs

    sizes = []
    for pack in load_packs(()):
        pats = [c.pattern for c in pack.detect_any + pack.detect_all + pack.detect_none]
        pats += [r.pattern for r in pack.recipients] + [t.pattern for t in pack.text_rules]
        pats += list(pack.mta + pack.report_start + pack.original_start)
        sizes += [program_size(p.source) for p in pats if p is not None]
    assert sizes and max(sizes) < MAX_PROGRAM // 10


def test_long_folded_field_completes():
    # a Diagnostic-Code folded over 1,500,000 continuation lines: joined once, not by one
    # string concatenation per line (quadratic: minutes); no budget, to see the parser's own
    msg = dsn("rfc822; alice@example.org", diagnostic="smtp; 550 5.1.1 user unknown" + "\r\n x" * 1_500_000)
    status, records, err = run_parse(msg, "--message-timeout", "0")
    assert status == 0, err
    assert [(r["kind"], r["final_recipient"], r["status"]) for r in records] == \
        [("bounce", "alice@example.org", "5.1.1")]
    assert records[0]["diagnostic_code"] == "550 5.1.1 user unknown" + " x" * 1_500_000


def test_ledger_records_a_flooded_recipient_in_linear_time(tmp_path):
    # the recipient is kept as written ("a<" then 400,000 "@"): the ledger's address
    # normaliser looked for "<local@domain>" with a pattern that rescans from every "@"
    db = tmp_path / "ledger.sqlite3"
    status, records, err = run_parse(dsn("rfc822; a<" + "@" * 400_000), "--db", str(db), "-q")
    assert status == 0, err
    assert [r["kind"] for r in records] == ["bounce"]
    assert records[0]["final_recipient"] == "a<" + "@" * 400_000
    from dsnparse.ledger import normalize_address

    assert normalize_address("Alice <alice@Example.ORG>") == "alice@example.org"
    assert normalize_address("a<" + "@" * 400_000) is None  # no address in it
