"""rules/reasons.yaml, its loader, and the status inferred from a text rule's reason."""
from __future__ import annotations

import textwrap

import pytest

import dsnparse
from dsnparse import codes
from dsnparse.errors import RuleError
from dsnparse.options import Options
from dsnparse.reasons import inferred_status, load_reasons
from dsnparse.rules import load_packs


def test_taxonomy_matches_codes_reasons():
    table = load_reasons()
    assert set(table) == set(codes.REASONS)
    assert len(table) == 37


def test_every_table_reason_and_rule_reason_is_defined():
    table = load_reasons()
    assert {e.reason for e in codes.load_table().enhanced.values()} <= set(table)
    for pack in load_packs():
        for rule in pack.text_rules:
            assert rule.reason is None or rule.reason in table, (pack.id, rule.id)


@pytest.mark.parametrize("name,status", [
    ("user_unknown", "5.1.1"), ("mailbox_full", "5.2.2"), ("host_unknown", "5.1.2"),
    ("expired", "4.4.7"), ("suspend", "5.2.1"), ("has_moved", "5.1.6"),
    ("mesg_too_big", "5.3.4"), ("exceed_limit", "5.2.3"), ("require_ptr", "5.7.25"),
    ("system_full", "4.3.1"), ("no_relaying", "5.7.1"), ("rejected", "5.7.1"),
    ("network_error", "4.4.0"),
])
def test_reliable_defaults(name, status):
    r = load_reasons()[name]
    assert r.default_status == status and r.infer_status and r.definition


@pytest.mark.parametrize("name", ["spam_detected", "policy_violation", "undefined", "on_hold",
                                  "vacation", "feedback", "delivered", "mailer_error"])
def test_unreliable_defaults_are_not_inferred(name):
    assert not load_reasons()[name].infer_status
    assert inferred_status(name, "550") is None


def test_inferred_class_follows_reply_code_and_action():
    assert inferred_status("user_unknown") == "5.1.1"
    assert inferred_status("mailbox_full", "452") == "4.2.2"
    assert inferred_status("expired", "550") == "5.4.7"
    assert inferred_status("user_unknown", None, "delayed") == "4.1.1"
    assert inferred_status(None) is None
    # a failed recipient with no reply code: the MTA gave up, so the inferred status is permanent
    assert inferred_status("expired", None, "failed") == "5.4.7"
    assert inferred_status("expired", None, "delayed") == "4.4.7"
    assert inferred_status("system_full", None, "failed") == "5.3.1"


_OK = ("definition: x, sisimai: userunknown, bounce: hard, statuses: [X.1.1], "
       "phrasing: [User unknown], default_status: 5.1.1, fault: recipient")


def test_a_complete_entry_loads(tmp_path):
    p = tmp_path / "reasons.yaml"
    p.write_text("user_unknown: {%s, when: [{phrase: [none], command: [DATA], "
                 "status: [X.2.*, none], class: [5], action: [failed]}]}\n" % _OK)
    r = load_reasons(p)["user_unknown"]
    assert (r.sisimai, r.bounce, r.statuses, r.phrasing) == ("userunknown", "hard", ("X.1.1",),
                                                           ("User unknown",))
    (c,) = r.when
    assert c.reason == "user_unknown" and c.command == {"DATA"} and c.phrase == {"none"}
    assert c.status.match("5.2.1") and c.status.match("none") and not c.status.match("5.1.1")


def test_null_fault_is_allowed_for_non_failures(tmp_path):
    p = tmp_path / "reasons.yaml"
    p.write_text("vacation: {definition: x, sisimai: vacation, bounce: none, statuses: [], "
                 "phrasing: [], default_status: null, fault: null}\n"
                 "user_unknown: {%s}\n" % _OK)
    table = load_reasons(p)
    assert table["vacation"].fault is None and table["user_unknown"].fault == "recipient"


def test_every_shipped_reason_has_a_fault():
    from dsnparse.model import FAULTS, NON_FAILURE_REASONS

    for name, r in load_reasons().items():
        if name in NON_FAILURE_REASONS:
            assert r.fault is None, name
        else:
            assert r.fault in FAULTS, name


@pytest.mark.parametrize("body,field", [
    ("user_unknown: [", None),
    ("user_unknown: {definition: x}", "sisimai"),
    ("user_unknown: {%s}" % _OK.replace("definition: x", "definition: ''"), "definition"),
    ("user_unknown: {%s}" % _OK.replace("5.1.1", "'5.1'"), "default_status"),
    ("user_unknown: {%s, infer_status: 'yes'}" % _OK, "infer_status"),
    ("user_unknown: {%s, infer_status: true}" % _OK.replace("5.1.1", "null"), "infer_status"),
    ("user_unknown: {%s, colour: red}" % _OK, "colour"),
    ("User-Unknown: {%s}" % _OK, None),
    ("user_unknown: {%s}" % _OK.replace("sisimai: userunknown", "sisimai: unknown"), "sisimai"),
    ("user_unknown: {%s}" % _OK.replace("bounce: hard", "bounce: firm"), "bounce"),
    ("user_unknown: {%s}" % _OK.replace("[X.1.1]", "[X.1]"), "statuses"),
    ("user_unknown: {%s}" % _OK.replace("[User unknown]", "User unknown"), "phrasing"),
    ("user_unknown: {%s, when: {phrase: [none]}}" % _OK, "when"),
    ("user_unknown: {%s, when: [{}]}" % _OK, "when[0]"),
    ("user_unknown: {%s, when: [{colour: [red]}]}" % _OK, "when[0]"),
    ("user_unknown: {%s, when: [{phrase: [nosuch]}]}" % _OK, "when[0].phrase"),
    ("user_unknown: {%s, when: [{command: [QUIT]}]}" % _OK, "when[0].command"),
    ("user_unknown: {%s, when: [{status: [5.x.1]}]}" % _OK, "when[0].status"),
    ("user_unknown: {%s, when: [{class: [2]}]}" % _OK, "when[0].class"),
    ("user_unknown: {%s, when: [{action: [delivered]}]}" % _OK, "when[0].action"),
    ("user_unknown: {%s, when: [{phrase: []}]}" % _OK, "when[0].phrase"),
    # a reason without a fault (e.g. one added by a later change) is caught at load
    ("user_unknown: {%s}" % _OK.replace(", fault: recipient", ""), "fault"),
    ("user_unknown: {%s}" % _OK.replace("fault: recipient", "fault: address"), "fault"),
    ("user_unknown: {%s}" % _OK.replace("fault: recipient", "fault: [recipient]"), "fault"),
    # null is for the reasons of non-failures only
    ("user_unknown: {%s}" % _OK.replace("fault: recipient", "fault: null"), "fault"),
])
def test_malformed_entry_names_file_and_entry(tmp_path, body, field):
    p = tmp_path / "reasons.yaml"
    p.write_text(body + "\n")
    with pytest.raises(RuleError) as e:
        load_reasons(p)
    assert str(p) in str(e.value)
    if field:
        assert e.value.field == field and e.value.rule == body.split(":")[0]


def _dsn(diag: str, status_line: str = "", action: str = "failed") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\nTo: a@sender.example\nSubject: failure\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
        "--XX\nContent-Type: text/plain\n\nfailed\n\n"
        "--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
        f"Final-Recipient: rfc822; a@receiver.example\nAction: {action}\n{status_line}"
        f"Diagnostic-Code: smtp; {diag}\n\n--XX--\n"
    ).encode()


@pytest.fixture
def pack_dir(tmp_path):
    d = tmp_path / "rules" / "test"
    d.mkdir(parents=True)
    (d / "words.yaml").write_text(textwrap.dedent("""\
        description: test text rules
        text_rules:
          - {id: nouser, pattern: 'zz-no-such-user-zz', reason: user_unknown}
          - {id: full, pattern: 'zz-box-full-zz', reason: mailbox_full}
          - {id: spam, pattern: 'zz-spammy-zz', reason: spam_detected}
          - {id: ruled, pattern: 'zz-ruled-zz', reason: user_unknown, status: 5.1.10}
        """))
    load_packs.cache_clear()
    yield Options(rules=(str(tmp_path / "rules"),))
    load_packs.cache_clear()


@pytest.mark.parametrize("diag,status_line,action,want", [
    ("550 zz-no-such-user-zz", "", "failed", ("5.1.1", "rule", "user_unknown")),
    # (answered to DATA, a "user unknown" is `filtered`; the status the words name stays)
    ("550 zz-no-such-user-zz (in reply to end of DATA command)", "", "failed",
     ("5.1.1", "rule", "filtered")),
    ("452 zz-box-full-zz", "", "failed", ("4.2.2", "rule", "mailbox_full")),
    ("zz-box-full-zz", "", "delayed", ("4.2.2", "rule", "mailbox_full")),
    # a reason whose default is not reliable: the reply code keeps its RFC 5321 meaning
    ("550 zz-spammy-zz", "", "failed", ("5.0.0", "reply_code", "spam_detected")),
    # a status given by the message is never replaced by an inferred one
    # (and a "user unknown" phrase with a mailbox status X.2.x and no RCPT TO is `filtered`,
    # Sisimai's meaning: rules/reasons.yaml)
    ("550 zz-no-such-user-zz", "Status: 5.2.1\n", "failed", ("5.2.1", "status_field", "filtered")),
    ("550 5.7.1 zz-no-such-user-zz", "", "failed", ("5.7.1", "diagnostic_text", "user_unknown")),
    # a rule's own status comes first
    ("550 zz-ruled-zz (in reply to RCPT TO command)", "", "failed", ("5.1.10", "rule", "user_unknown")),
])
def test_status_inferred_from_rule_reason(pack_dir, diag, status_line, action, want):
    v = dsnparse.parse(_dsn(diag, status_line, action), pack_dir).verdicts[0]
    assert (v.status, v.status_source, v.reason) == want


def test_shipped_text_rule_packs_have_the_right_shape():
    packs = {p.id: p for p in load_packs()}
    std = [p for pid, p in packs.items() if pid.startswith("standard/") and p.kind == "bounce"]
    rhost = [p for pid, p in packs.items() if pid.startswith("rhost/")]
    assert std and rhost
    for p in std:
        assert p.shared and p.text_rules, p.id
    for p in rhost:
        assert p.mta and not p.detects and p.text_rules, p.id
