"""The fault of a verdict: the data (rules/faults.yaml, reasons.yaml) and what parse gives."""
from __future__ import annotations

import csv
import io
import json

import pytest

import dsnparse
from conftest import SAMPLES, SISIMAI, SHARED, need
from dsnparse.cli import main
from dsnparse.errors import RuleError
from dsnparse.fault import fault_of, load_status_faults
from dsnparse.model import FAULTS, RECORD_FIELDS


# --- the decision, from RFC 3463's subjects and details -----------------------------------

@pytest.mark.parametrize("status, fault, rule", [
    ("5.1.1", "recipient", "status:X.1"),     # Bad destination mailbox address
    ("5.1.2", "recipient", "status:X.1"),     # Bad destination system address
    ("5.1.6", "recipient", "status:X.1"),     # mailbox has moved
    ("5.1.10", "recipient", "status:X.1.10"),  # null MX, RFC 7505
    ("5.1.8", "sender", "status:X.1.8"),      # Bad sender's system address
    ("5.2.2", "mailbox", "status:X.2"),       # Mailbox full
    ("5.2.1", "mailbox", "status:X.2"),       # Mailbox disabled
    ("5.2.3", "message", "status:X.2.3"),     # Message length exceeds administrative limit
    ("5.3.4", "message", "status:X.3.4"),     # Message too big for system
    ("4.3.1", "network", "status:X.3"),       # Mail system full
    ("4.4.7", "network", "status:X.4"),       # Delivery time expired
    ("5.4.4", "recipient", "status:X.4.4"),   # Unable to route
    ("5.5.2", "sender", "status:X.5"),        # Syntax error (the sending side's dialogue)
    ("5.6.1", "message", "status:X.6"),       # Media not supported
    ("5.7.1", "sender", "status:X.7"),        # Delivery not authorized
    ("5.7.26", "sender", "status:X.7"),       # Multiple authentication checks failed
    ("5.7.7", "message", "status:X.7.7"),     # Message integrity failure
    ("5.7.17", "recipient", "status:X.7.17"),  # Mailbox owner has changed, RFC 6710
    ("5.0.0", "unknown", "status:X.0"),       # Other undefined status: no evidence
])
def test_status_decides_when_the_reason_says_nothing(status, fault, rule):
    assert fault_of("undefined", status) == (fault, rule)
    assert fault_of(None, status) == (fault, rule)


def test_no_row_no_reason_is_unknown():
    assert fault_of(None, "5.9.1") == ("unknown", "none")          # RFC 3463 has no subject 9
    assert fault_of("undefined", "5.9.1") == ("unknown", "reason:undefined")


@pytest.mark.parametrize("reason, fault", [
    ("user_unknown", "recipient"), ("host_unknown", "recipient"), ("has_moved", "recipient"),
    ("not_accept", "recipient"), ("mailbox_full", "mailbox"), ("suspend", "mailbox"),
    ("auth_failure", "sender"), ("blocked", "sender"), ("bad_reputation", "sender"),
    ("require_ptr", "sender"), ("speeding", "sender"), ("no_relaying", "sender"),
    ("rejected", "sender"), ("spam_detected", "message"), ("virus_detected", "message"),
    ("mesg_too_big", "message"), ("content_error", "message"), ("expired", "network"),
    ("network_error", "network"), ("system_error", "network"),
])
def test_reason_decides_before_the_status(reason, fault):
    # "550 5.1.1 … listed on a DNSBL": the words say whose problem it is, not the subject
    assert fault_of(reason, "5.1.1", "511") == (fault, f"reason:{reason}")


def test_911_is_unknown_whatever_the_reason():
    assert fault_of("undefined", None, "911") == ("unknown", "code:911")
    assert fault_of("blocked", None, "911") == ("unknown", "code:911")


@pytest.mark.parametrize("reason, action", [
    ("delivered", "delivered"), ("feedback", None), ("vacation", None), (None, "relayed"),
])
def test_non_failures_have_no_fault(reason, action):
    assert fault_of(reason, "2.0.0", None, action) == (None, None)


def test_odd_input_never_raises():
    for status in ("", "5", "5.x.1", "X.1.1", "5.1.1.1", "\x00"):
        f, _ = fault_of("no-such-reason", status)
        assert f == "unknown"


# --- the data file --------------------------------------------------------------------------

def _table(tmp_path, text):
    p = tmp_path / "faults.yaml"
    p.write_text(text)
    return load_status_faults(p)


_ALL = "".join(f'  "X.{s}": unknown\n' for s in range(8))


def test_shipped_table_covers_every_subject():
    table = load_status_faults()
    assert all(table[f"X.{s}"] in FAULTS for s in range(8))


@pytest.mark.parametrize("text, where", [
    ("status:\n" + _ALL.replace('  "X.4": unknown\n', ""), "X.4"),        # a subject missing
    ("status:\n" + _ALL + '  "X.1.1": adress\n', "adress"),                # not a fault
    ("status:\n" + _ALL + '  "X.01.1": recipient\n', "X.01.1"),            # not RFC 3463 numbers
    ("status:\n" + _ALL + '  "5.1.1": recipient\n', "5.1.1"),              # class, not X
    ("stauts:\n" + _ALL, "top level"),
])
def test_bad_table_is_refused(tmp_path, text, where):
    with pytest.raises(RuleError) as e:
        _table(tmp_path, text)
    assert where in str(e.value) and str(tmp_path) in str(e.value)


# --- on parsed mail ----------------------------------------------------------------------------

def _dsn(status: str, diag: str, rcpt: str = "ann@gmail.example", action: str = "failed") -> bytes:
    return (
        "From: MAILER-DAEMON@out.sender.example\nTo: news@sender.example\n"
        "Subject: Undelivered Mail Returned to Sender\nDate: Tue, 7 May 2024 10:00:00 +0000\n"
        "Message-ID: <b-" + status + "@out.sender.example>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n\n"
        "--BB\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--BB\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; out.sender.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {status}\n"
        "Remote-MTA: dns; mx.gmail.example\n"
        f"Diagnostic-Code: smtp; {diag}\n\n--BB--\n").encode()


DMARC = ("550 5.7.26 Unauthenticated email from sender.example is not accepted due to "
         "domain's DMARC policy")


def test_dmarc_rejection_is_the_senders_fault_and_the_table_keeps_its_code():
    v = dsnparse.parse(_dsn("5.7.26", DMARC)).verdicts[0]
    # the seed table is unchanged: 5.7.26 has no row, so its subject's "other" row 570, hard
    assert (v.code, v.bounce_type) == ("570", "hard")
    assert v.reason == "auth_failure"
    assert (v.fault, v.fault_rule) == ("sender", "reason:auth_failure")


def test_user_unknown_is_the_recipients_fault():
    v = dsnparse.parse(_dsn("5.1.1", "550 5.1.1 <ann@gmail.example>: user unknown")).verdicts[0]
    assert (v.code, v.bounce_type, v.fault) == ("511", "hard", "recipient")


def test_delay_has_a_fault_delivery_has_none():
    v = dsnparse.parse(_dsn("4.2.2", "452 4.2.2 mailbox full", action="delayed")).verdicts[0]
    assert (v.action, v.fault) == ("delayed", "mailbox")
    v = dsnparse.parse(_dsn("2.0.0", "250 2.0.0 OK", action="delivered")).verdicts[0]
    assert (v.action, v.fault, v.fault_rule) == ("delivered", None, None)


def test_explain_shows_the_fault_and_its_rule(tmp_path, capsys):
    p = tmp_path / "dmarc.eml"
    p.write_bytes(_dsn("5.7.26", DMARC))
    assert main(["explain", str(p)]) == 0
    out = capsys.readouterr().out
    assert "fault sender (reason:auth_failure)" in out


def test_fault_is_a_record_field_and_a_csv_column(tmp_path, capsys):
    p = tmp_path / "dmarc.eml"
    p.write_bytes(_dsn("5.7.26", DMARC))
    assert "fault" in RECORD_FIELDS and "fault_rule" in RECORD_FIELDS
    assert main(["parse", str(p), "-f", "csv", "-q"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["fault"], row["fault_rule"], row["code"]) == ("sender", "reason:auth_failure",
                                                              "570")
    assert main(["parse", str(p), "-f", "jsonl", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["fault"] == "sender"


def _check_faults(reports):
    n = 0
    for source, report in reports:
        for v in report.verdicts:
            if report.kind in ("bounce", "delay") and v.action in ("failed", "delayed"):
                assert v.fault in FAULTS and v.fault_rule, (source, v)
                n += 1
            elif report.kind in ("complaint", "auto_reply", "delivered"):
                assert v.fault is None, (source, v)
    return n


def test_every_sample_failure_has_a_fault():
    assert _check_faults(dsnparse.parse_path(SAMPLES)) >= 60


@pytest.mark.parametrize("corpus", ["sisimai", "extra"])
def test_every_corpus_failure_has_a_fault(corpus):
    root = need(SHARED / "corpus" / corpus)
    assert _check_faults(dsnparse.parse_path(root)) >= 90


def test_sisimai_one_bounce_suppress_floor():
    from dsnparse.evaluate import evaluate

    total = evaluate(need(SISIMAI) / "expectations.jsonl")["TOTAL"]
    assert total.suppress_n >= 400
    assert total.rates()["suppress"] >= 0.92, total.rates()


def test_eval_suppress_figure_on_own_labelled_mail(tmp_path, capsys):
    """The `suppress` column: one bounce suppresses a fresh address == the hardbounce label."""
    from dsnparse.evaluate import evaluate

    files = {
        "dead.eml": (_dsn("5.1.1", "550 5.1.1 user unknown", rcpt="a@x.example"), True),
        "dmarc.eml": (_dsn("5.7.26", DMARC, rcpt="b@x.example"), False),
        # labelled hard but only a full mailbox: one disagreement
        "full.eml": (_dsn("5.2.2", "552 5.2.2 mailbox full", rcpt="c@x.example"), True),
        "ok.eml": (_dsn("2.0.0", "250 ok", rcpt="d@x.example", action="delivered"), False),
    }
    lines = []
    for name, (data, hard) in files.items():
        (tmp_path / name).write_bytes(data)
        reason = "delivered" if name == "ok.eml" else "x"
        lines.append(json.dumps({"file": name, "bounce": True, "family": "own", "recipients": [
            {"status": "", "reason": reason, "hardbounce": hard}]}))
    exp = tmp_path / "expectations.jsonl"
    exp.write_text("\n".join(lines) + "\n")
    result = evaluate(exp)
    total = result["TOTAL"]
    assert (total.suppress_n, total.suppress_ok) == (3, 2)    # the delivery report left out
    assert [m for m in result["own"].misses if m[1].startswith("suppress")] == [
        ("full.eml", "suppress False != hardbounce True (reason mailbox_full, status 5.2.2, "
                     "fault mailbox by reason:mailbox_full)")]
    assert main(["eval", str(exp)]) == 0
    out = capsys.readouterr().out
    assert "suppress" in out.splitlines()[1] and "66.7%" in out.splitlines()[-1]
