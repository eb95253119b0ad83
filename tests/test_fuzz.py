"""Fuzzing: ``parse`` returns a Report, or raises InputError for input that is not an email;
never another exception, never a hang (see tests/fuzzing.py for the mutations).

CI runs ``DSNPARSE_FUZZ_CASES`` mutated cases (default 20,000; seeds: the samples, plus the
shared corpus when ../shared is present), ``DSNPARSE_FUZZ_HOSTILE`` hostile shapes under the
time budget (default 60), every truncation of a few seeds, hypothesis-built inputs, and a
handful of big hostile inputs.  The long campaign is benchmarks/fuzz.py.
Timings are never asserted here, only the contract (a case slower than 5 s counts as a hang).
"""
from __future__ import annotations

import base64
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsnparse
from dsnparse.options import Options
import fuzzing

CASES = int(os.environ.get("DSNPARSE_FUZZ_CASES", "20000"))
POOL = fuzzing.seeds()
SAMPLE = (fuzzing.SAMPLES / "rfc3464" / "01.eml").read_bytes()


def _ok(data):
    why = fuzzing.check(dsnparse.parse, data, slow=5.0)
    assert why is None, f"{why} on {data[:200]!r}..."


@pytest.mark.parametrize("part", range(4))
def test_mutation_fuzzer(part):
    n = CASES // 4
    res = fuzzing.run(POOL, n, seed=part)
    assert res["failures"] == 0, res["first"]


HOSTILE_CASES = int(os.environ.get("DSNPARSE_FUZZ_HOSTILE", "60"))


def test_hostile_shapes_stay_within_the_time_budget():
    # long runs of one token, unbalanced brackets, encoded-word floods in every field the
    # parser reads: each message ends (a Report, or the budget's MessageTimeout) within its
    # budget plus a margin, never a hang
    res = fuzzing.run_hostile(HOSTILE_CASES, seed=18, budget=2.0, margin=8.0)
    assert res["failures"] == 0, res["first"]


def test_truncation_at_every_boundary():
    rng = random.Random(7)
    n = 0
    for seed in [SAMPLE] + rng.sample(POOL, min(8, len(POOL))):
        for cut in fuzzing.truncations(seed):
            _ok(cut)
            n += 1
    assert n > 100


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data):
    _ok(data)


_hname = st.sampled_from(["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding",
                          "MIME-Version", "X-Failed-Recipients", "Reporting-MTA", "Final-Recipient",
                          "Action", "Status", "Diagnostic-Code", "Received", "X-Junk"])
_hval = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["multipart/report; report-type=delivery-status; boundary=b",
                     "message/delivery-status", "message/rfc822", "text/plain; charset=unicode-1-1-utf-7",
                     "multipart/mixed; boundary=\"b\"", "base64", "quoted-printable",
                     "rfc822; user@example.com", "failed", "5.1.1", "smtp; 550 5.1.1 unknown",
                     "=?utf-8?b?!!?=", "=?x-unknown?q?a=ZZ?="]))
_line = st.one_of(st.text(max_size=60), st.sampled_from(["--b", "--b--", "", "Final-Recipient: rfc822; a@example.org",
                                                         "Status: 5.2.2", "Action: failed"]))


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(_hname, _hval), min_size=1, max_size=12), st.lists(_line, max_size=30),
       st.sampled_from(["\n", "\r\n", "\r"]))
def test_structured_messages(headers, lines, nl):
    text = nl.join(f"{k}: {v}" for k, v in headers) + nl + nl + nl.join(lines)
    _ok(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_hypothesis_driven_mutations(rng):
    _ok(fuzzing.mutate(rng, POOL))


# --------------------------------------------------------------------------- big, hostile inputs

def _report(rcpts: bytes, ds_type=b"message/delivery-status") -> bytes:
    return (b"From: MAILER-DAEMON@mx.example.net\nTo: s@example.com\nSubject: failure\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n--XX\n"
            b"Content-Type: text/plain\n\nDelivery failed.\n\n--XX\nContent-Type: " + ds_type + b"\n\n"
            b"Reporting-MTA: dns; mx.example.net\n" + rcpts + b"\n--XX--\n")


def test_empty_and_non_email_input_raise_input_error():
    for data in (b"", b"\n\r\n  \t", b"\x00" * 100, bytes(range(256)) * 4, b"%PDF-1.7\n%\xe2\xe3",
                 b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, b"\x89PNG\r\n\x1a\n" + b"\x00" * 50):
        with pytest.raises(dsnparse.InputError):
            dsnparse.parse(data)


def test_one_megabyte_header_lines():
    _ok(b"From: a@example.com\nSubject: " + b"x" * 1_000_000 + b"\n\nbody\n")
    _ok(b"X-Long: " + b"a;" * 500_000 + b"\nFrom: b@example.com\n\nbody\n")
    _ok(b"From: a@example.com\nTo: " + b"u@example.com, " * 70_000 + b"\n\nbody\n")


def test_ten_thousand_recipients_in_one_report():
    rcpts = b"".join(b"\nFinal-Recipient: rfc822; u%d@example.org\nAction: failed\nStatus: 5.1.1\n"
                     b"Diagnostic-Code: smtp; 550 5.1.1 no such user\n" % i for i in range(10_000))
    # about 3 s of work on a quiet machine: the default 5 s budget per message
    # (--message-timeout) is for hostile input, and this test is about every recipient
    # being read, so it gets a budget that a loaded CI machine cannot run out of
    r = dsnparse.parse(_report(rcpts), Options(message_timeout=120))
    assert r.kind == "bounce" and len(r.verdicts) == 10_000


def test_message_rfc822_nested_1000_deep():
    inner = _report(b"\nFinal-Recipient: rfc822; deep@example.org\nAction: failed\nStatus: 5.1.1\n")
    msg = inner
    for i in range(1000):
        msg = b"From: a%d@example.com\nContent-Type: message/rfc822\n\n" % i + msg
    _ok(msg)
    mp = inner
    for i in range(1000):
        mp = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)) + mp + b"\n--b%d--\n" % i
    _ok(mp)


def test_fifty_megabyte_attachment():
    att = base64.encodebytes(random.Random(1).randbytes(37_500_000))
    msg = _report(b"\nFinal-Recipient: rfc822; big@example.org\nAction: failed\nStatus: 5.3.4\n")
    msg = msg.replace(b"\n--XX--\n", b"\n--XX\nContent-Type: application/octet-stream\n"
                      b"Content-Transfer-Encoding: base64\n\n" + att + b"\n--XX--\n")
    assert len(msg) > 50_000_000
    r = dsnparse.parse(msg)
    assert r.kind == "bounce" and r.verdicts[0].status == "5.3.4"


def test_hostile_html_and_unknown_charsets():
    _ok(b"From: a@example.com\nContent-Type: text/html\n\n" + b"<head " * 50_000 + b"<" * 50_000 + b"<p" * 50_000)
    for cs in fuzzing.CHARSETS:
        _ok(SAMPLE.replace(b"Content-Type: text/plain", b"Content-Type: text/plain; charset=" + cs))
    _ok(b"From: a\x00@example.com\nSubject: \x00\xff\xfe\nContent-Type: text/plain; charset=\x00\n\n\x00\x00")


def test_rendering_a_submessage_never_raises():
    from email import message_from_bytes, policy
    from dsnparse.load import as_text, charset_of

    m = message_from_bytes(b"Content-Type: text/plain; charset=iso-2022-jp\n\n\xff\xfe\x1b$B\xff\n",
                           policy=policy.compat32)
    assert "Content-Type" in as_text(m)
    bad = message_from_bytes(b"Content-Type: text/plain; charset=\"a\x00b\"\n\nx\n", policy=policy.compat32)
    charset_of(bad)  # no exception
