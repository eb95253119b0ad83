"""The shortcuts taken for throughput (issue 12) decide exactly what the longer paths do.

Each test runs a shortcut and the path it replaces on the same inputs (the shipped samples,
the Sisimai corpus emails when ``../shared`` is present, and hand-made edge cases) and asserts
the same answer.
"""
from __future__ import annotations

import base64
import email
from email import policy

import pytest

import dsnparse
from conftest import SAMPLES, SISIMAI
from dsnparse import codes, engine, load as load_mod, rfc3464, rules, verdict
from dsnparse.model import Report, Verdict
from dsnparse.options import Options


def _emails():
    out = [p.read_bytes() for p in sorted(SAMPLES.rglob("*.eml"))]
    if (SISIMAI / "maildir").is_dir():
        out += [p.read_bytes() for p in sorted((SISIMAI / "maildir").rglob("*")) if p.is_file()]
    return out


def _contexts():
    for data in _emails():
        try:
            msg = load_mod.load(data)
        except dsnparse.InputError:
            continue
        yield engine.Context(msg, rfc3464.scan(msg), Options(), None)


def _dsn(text_part: bytes, cte: str = "7bit") -> bytes:
    return (b"From: MAILER-DAEMON@mx.example\r\nTo: a@example.org\r\nSubject: failure\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + text_part + b"\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example\r\n\r\n"
            b"Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n"
            b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--B--\r\n")


def test_a_report_text_cut_at_its_limit_is_still_reported_truncated():
    """A delivery-status report whose text part is longer than REPORT_TEXT_LIMIT: the
    report says truncated, as it did before the shortcuts (the text is read)."""
    line = b"The mail system could not deliver the message to the recipient below.\r\n"
    body = line * (load_mod.REPORT_TEXT_LIMIT // len(line) + 10)
    report = dsnparse.parse(_dsn(body))
    assert report.kind == "bounce" and report.verdicts[0].final_recipient == "bob@example.net"
    assert report.truncated


@pytest.mark.parametrize("payload, cte, charset", [
    (b"550 5.1.1 <bob@example.net>: user unknown (+0900)", "7bit", "us-ascii"),
    (b"plain text, no label", "", None),
    (b"Hi Mom +!-Jjg7- 1 +- 1", "7bit", "utf-7"),                 # UTF-7 shifts: decoded
    (b"Hi Mom, no shift here", "7bit", "utf-7"),                  # no "+": ASCII as it is
    (b"\x1b$B$3$s$K$A$O\x1b(B", "7bit", "iso-2022-jp"),           # ISO-2022-JP escapes
    (b"\x1b$B$3$s$K$A$O\x1b(B", "7bit", None),                    # unlabelled ISO-2022
    (base64.b64encode(b"user unknown"), "base64", "us-ascii"),
    (b"user=20unknown=\r\n here", "quoted-printable", "us-ascii"),
    (b"8bit \xc3\xa9t\xc3\xa9", "8bit", "utf-8"),                  # not ASCII: decoded
    (b"koi8 \xf0\xd2\xc9\xd7\xc5\xd4", "8bit", "koi8-r"),
])
def test_ascii_text_fast_path_gives_what_decoding_gives(payload, cte, charset):
    """load._part_text's ASCII shortcut returns what get_payload(decode=True) then
    decode_text return (the path it skips), text and cut flag, at several limits."""
    head = "Content-Type: text/plain" + (f"; charset={charset}" if charset else "") + "\r\n"
    if cte:
        head += f"Content-Transfer-Encoding: {cte}\r\n"
    for msg in (load_mod.load(head.encode() + b"\r\n" + payload + b"\r\n"),
                email.message_from_bytes(head.encode() + b"\r\n" + payload + b"\r\n",
                                         policy=policy.compat32)):
        raw = msg.get_payload(decode=True)
        for limit in (5, 20, 10_000):
            # (the long path decodes at most 2 * limit octets)
            want = load_mod.decode_text(raw[:2 * limit], load_mod.charset_of(msg))
            got = load_mod._part_text(msg, limit)
            assert got == (want[:limit], len(raw) > 2 * limit or len(want) > limit), limit


def test_classify_memo_gives_what_classify_gives():
    """verdict._classify (memoised) against codes.classify for statuses, reply codes,
    sources and actions, each asked twice; the memo stays bounded."""
    statuses = [None, "5.1.1", "4.4.7", "5.7.26", "2.0.0", "5.9.9", "4.2.2", "5.0.0"]
    replies = [None, "550", "452", "421", "250"]
    actions = ["failed", "delayed", "delivered", "relayed"]
    for _ in range(2):
        for s in statuses:
            for r in replies:
                for a in actions:
                    for src in ("status_field", "diagnostic_text"):
                        assert verdict._classify(s, r, src, a) == codes.classify(
                            s, r, status_source=src, action=a)
    verdict._CLASSIFIED.clear()
    for i in range(verdict._CLASSIFY_MAX + 5):
        verdict._classify("5.1.1", str(i), "status_field", "failed")
    assert len(verdict._CLASSIFIED) <= verdict._CLASSIFY_MAX


def test_verdict_built_in_one_step_is_the_dataclass():
    v = verdict._verdict(final_recipient="bob@example.net", status="5.1.1", code="511",
                         rule="rfc3464")
    w = Verdict(final_recipient="bob@example.net", status="5.1.1", code="511", rule="rfc3464")
    assert verdict._verdict is not Verdict
    assert v == w and hash(v) == hash(w) and repr(v) == repr(w) and v.to_dict() == w.to_dict()
    with pytest.raises(Exception):
        v.code = "550"  # still frozen
    with pytest.raises(TypeError):
        verdict._verdict(no_such_field=1)  # (goes to the constructor, which refuses it)
    new_report = verdict.one_step_constructor(Report)
    r = new_report(kind="bounce", format="rfc3464", verdicts=(v,), subject="x")
    assert r == Report(kind="bounce", format="rfc3464", verdicts=(w,), subject="x")
    assert r.to_dict() == Report(kind="bounce", format="rfc3464", verdicts=(w,),
                                 subject="x").to_dict()
    with pytest.raises(TypeError):
        new_report(format="rfc3464")  # kind is required


def _reference(diagnostic, packs):
    """The prefilter as it was before the inlining: _grouped entries, then _may_run."""
    index = rules._text_index(packs)
    folded = diagnostic.casefold()
    out = []
    for i, branches in rules._grouped(index.entries(folded)):
        pack, rule = index.rules[i]
        b = rules._may_run(rule, branches, folded)
        if b is not False:
            out.append((pack.id, rule.id, b))
    return out


def test_inlined_text_rule_prefilter_yields_what_the_reference_does():
    """rules._rules_that_may_match against the reference (index entries grouped by rule,
    then each rule's other literal sets) for the vendor packs and for the shared packs, on
    every line of every report text and on each diagnostic."""
    packs = rules.load_packs(())
    sets = [rules.vendor_text_packs(packs), rules.text_rule_packs(packs, (), None, 1.0)]
    checked = 0
    for ctx in _contexts():
        texts = [ln for ln in ctx.text().split("\n") if ln.strip()][:60]
        ds = rfc3464.read(ctx.st)
        if ds is not None:
            texts += [r.get("diagnostic-code") or "" for r in ds.recipients]
        for t in texts:
            for tp in sets:
                got = [(p.id, r.id, b) for p, r, b in rules._rules_that_may_match(t, tp)]
                assert got == _reference(t, tp), t
                checked += bool(got)
    assert checked > 100
