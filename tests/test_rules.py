"""Rule packs: validation messages, pattern time limits, user packs, auto-replies and complaints,
and the ``rules check`` / ``explain`` commands."""
from __future__ import annotations

import logging
import textwrap

import pytest

import dsnparse
from dsnparse import engine, rules
from dsnparse.cli import main
from dsnparse.errors import RuleError
from dsnparse.options import Options
from conftest import SAMPLES


def _pack(tmp_path, text, name="vendor/broken.yaml"):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def _error(path) -> RuleError:
    with pytest.raises(RuleError) as ei:
        rules.load_pack(path)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    return ei.value


def _names(err, rule, field):
    msg = str(err)
    assert f"rule {rule!r}" in msg and f"field {field!r}" in msg, msg
    assert err.rule == rule and err.field == field


# ----------------------------------------------------------------- one test per broken pack


def test_bad_yaml(tmp_path):
    p = _pack(tmp_path, """\
        detect:
          any:
            - body: 'x'
           - body: 'y'
        """)
    assert "bad YAML" in str(_error(p))


def test_unknown_key(tmp_path):
    p = _pack(tmp_path, """\
        detect: {any: [{body: 'x'}]}
        recipients:
          - id: r1
            pattern: '(?P<recipient>\\S+@\\S+)'
            colour: blue
        """)
    e = _error(p)
    _names(e, "r1", "colour")
    assert "unknown key" in str(e)


def test_wrong_type(tmp_path):
    p = _pack(tmp_path, """\
        detect: {any: [{body: 'x'}]}
        recipients:
          - id: r1
            pattern: 42
        """)
    e = _error(p)
    _names(e, "r1", "pattern")
    assert "expected str" in str(e)


def test_pattern_does_not_compile(tmp_path):
    p = _pack(tmp_path, """\
        text_rules:
          - id: quota
            pattern: 'mailbox (full'
            reason: mailbox_full
        """)
    e = _error(p)
    _names(e, "quota", "pattern")
    assert "does not compile" in str(e)


def test_missing_recipient_group(tmp_path):
    p = _pack(tmp_path, """\
        detect: {any: [{body: 'x'}]}
        recipients:
          - id: r1
            pattern: '^<(?P<address>[^>]+)>:'
        """)
    e = _error(p)
    _names(e, "r1", "pattern")
    assert "'recipient'" in str(e)


def test_unknown_reason(tmp_path):
    p = _pack(tmp_path, """\
        text_rules:
          - id: gone
            pattern: 'account closed'
            reason: account_gone
        """)
    e = _error(p)
    _names(e, "gone", "reason")
    assert "unknown reason 'account_gone'" in str(e)


@pytest.mark.parametrize("status", ["5.1", "6.1.1", "2.0.0", "five"])
def test_bad_status(tmp_path, status):
    p = _pack(tmp_path, f"""\
        text_rules:
          - id: st
            pattern: 'no such user'
            status: '{status}'
        """)
    e = _error(p)
    _names(e, "st", "status")


def test_broken_pack_fails_the_run(tmp_path):
    _pack(tmp_path, "kind: bounce\norder: high\n", name="x.yaml")
    with pytest.raises(RuleError) as ei:
        dsnparse.parse(b"From: a@example.com\n\nhello\n", Options(rules=(str(tmp_path),)))
    assert ei.value.field == "order" and "field 'order'" in str(ei.value)
    assert "x.yaml" in str(ei.value) and "expected int" in str(ei.value)


# ----------------------------------------------------------------- time limit


def test_catastrophic_pattern_returns_and_logs_once(tmp_path, caplog):
    _pack(tmp_path, """\
        order: 10
        detect:
          any:
            - body: '(x+x+)+y'
        recipients:
          - id: r
            pattern: '(?P<recipient>\\S+@\\S+)'
        """, name="slow.yaml")
    opts = Options(rules=(str(tmp_path),), pattern_timeout=0.05)
    msg = b"From: someone@example.com\nSubject: hello\n\n" + b"x" * 5000 + b"\n"
    with caplog.at_level(logging.WARNING, logger="dsnparse.rules"):
        r1 = dsnparse.parse(msg, opts)
        r2 = dsnparse.parse(msg, opts)
    assert r1.kind == r2.kind == "not_bounce"
    warnings = [r for r in caplog.records if "timed out" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "slow.yaml" in warnings[0].getMessage() and "detect.any[0]" in warnings[0].getMessage()


# ----------------------------------------------------------------- user packs


BOUNCE = b"""\
From: Mail Delivery <mailer-daemon@mx.example.net>
To: sender@example.org
Subject: Undelivered Mail Returned to Sender

This is the mail system at host mx.example.net.

<gone@example.net>: host mx.example.net said: 550 5.1.1 no such user
"""


def test_user_pack_overrides_shipped_by_id(tmp_path):
    _pack(tmp_path, """\
        description: my own Postfix pack
        order: 300
        detect:
          any:
            - body: '^This is the mail system at host '
        recipients:
          - id: mine
            pattern: '^<(?P<recipient>[^>]+)>:\\s*(?P<diagnostic>.*)$'
        """, name="mta/postfix.yaml")
    opts = Options(rules=(str(tmp_path),))
    packs = rules.load_packs(tuple(opts.rules))
    postfix = [p for p in packs if p.id == "mta/postfix"]
    assert len(postfix) == 1 and postfix[0].description == "my own Postfix pack"
    report = dsnparse.parse(BOUNCE, opts)
    assert report.format == "mta/postfix"
    assert report.verdicts[0].rule.startswith("mta/postfix#mine")


def test_new_user_pack_is_tried_first(tmp_path):
    # same order as the shipped Postfix pack, and an id that sorts after it
    _pack(tmp_path, """\
        order: 300
        detect:
          any:
            - body: '^This is the mail system at host '
        recipients:
          - id: mine
            pattern: '^<(?P<recipient>[^>]+)>:'
        """, name="zz/local.yaml")
    opts = Options(rules=(str(tmp_path),))
    trace: list = []
    report = engine.parse(BOUNCE, opts, trace=trace)
    assert report.format == "zz/local"
    recognised = [line for line in trace if ": recognised (" in line]
    assert recognised[0].startswith("pack zz/local: recognised")


def test_rules_from_environment(tmp_path, monkeypatch, capsys):
    _pack(tmp_path, """\
        order: 300
        detect:
          any:
            - body: '^This is the mail system at host '
        recipients:
          - id: env
            pattern: '^<(?P<recipient>[^>]+)>:'
        """, name="envpack.yaml")
    monkeypatch.setenv("DSNPARSE_RULES", str(tmp_path))
    assert Options.from_env().rules == (str(tmp_path),)
    f = tmp_path.parent / "bounce.eml"
    f.write_bytes(BOUNCE)
    assert main(["explain", str(f)]) == 0
    out = capsys.readouterr().out
    assert "pack envpack: recognised" in out and "rule envpack#env" in out


# ----------------------------------------------------------------- auto-replies, complaints, MDN


def test_exim_style_bounce_marked_auto_replied_is_not_an_auto_reply():
    msg = b"""\
From: Mail Delivery System <Mailer-Daemon@mx.example.com>
To: sender@example.org
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
X-Failed-Recipients: gone@example.com

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@example.com
    host mx.example.com [192.0.2.9]
    SMTP error from remote mail server after RCPT TO:<gone@example.com>:
    550 5.1.1 User unknown
"""
    report = engine.parse(msg)
    assert (report.kind, report.verdicts[0].final_recipient) == ("bounce", "gone@example.com")
    # and the auto-reply pack on its own excludes it, whichever pack comes first
    from email import message_from_bytes
    from dsnparse import rfc3464, rules
    pack = next(p for p in rules.load_packs() if p.id == "standard/rfc3834")
    m = message_from_bytes(msg)
    ctx = engine.Context(m, rfc3464.scan(m), engine.DEFAULT, None)
    why: list = []
    assert rules.detect(pack, ctx.header, ctx.text, 0.25, why) is None
    assert "detect.none" in " ".join(why)


def test_auto_reply_with_header_only():
    msg = b"From: Ann <ann@example.jp>\nTo: news@example.org\nSubject: Re: news\n" \
          b"Auto-Submitted: auto-replied\n\nThanks.\n"
    report = dsnparse.parse(msg)
    assert report.kind == "auto_reply" and report.verdicts[0].final_recipient == "ann@example.jp"
    assert report.verdicts[0].reason == "vacation"


def test_auto_generated_is_not_an_auto_reply():
    msg = b"From: alerts@example.com\nTo: ops@example.org\nSubject: Disk usage report\n" \
          b"Auto-Submitted: auto-generated\n\nAll volumes below 80%.\n"
    assert dsnparse.parse(msg).kind == "not_bounce"


def test_mdn_is_not_a_bounce():
    report = dsnparse.parse((SAMPLES / "rfc8098" / "01.eml").read_bytes())
    assert report.kind == "not_bounce" and report.format == "rfc8098" and not report.verdicts


def test_arf_complaint():
    report = dsnparse.parse((SAMPLES / "rfc5965" / "01.eml").read_bytes())
    assert report.kind == "complaint"
    (v,) = report.verdicts
    assert (v.final_recipient, v.feedback_type, v.reason) == \
        ("jun.tanaka@mailbox.example.com", "abuse", "feedback")


def test_complaint_pack_without_arf_part():
    msg = b"""\
From: staff@hotmail.com
To: fbl@example.org
Subject: complaint about message from 192.0.2.44
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: message/rfc822

X-HmXmrOriginalRecipient: pat@example.com
From: News <news@example.org>
To: pat@example.com
Subject: News

Hello
--b1--
"""
    report = dsnparse.parse(msg)
    assert report.kind == "complaint" and report.format == "feedback/microsoft-jmrp"
    (v,) = report.verdicts
    assert (v.final_recipient, v.feedback_type, v.reason) == ("pat@example.com", "abuse", "feedback")


def test_recipient_rule_action_delivered(tmp_path):
    _pack(tmp_path, """\
        order: 100
        detect:
          any:
            - body: '^Delivery notice from the example relay'
        recipients:
          - id: delivered
            pattern: '^Delivered to <(?P<recipient>[^>]+)>: (?P<diagnostic>.*)$'
            action: delivered
        """, name="zz/notice.yaml")
    msg = (b"From: relay@example.net\nTo: a@example.org\nSubject: notice\n\n"
           b"Delivery notice from the example relay\n\n"
           b"Delivered to <pat@example.com>: 250 2.6.0 Message received\n")
    report = engine.parse(msg, Options(rules=(str(tmp_path),)))
    assert report.kind == "delivered" and report.format == "zz/notice"
    (v,) = report.verdicts
    assert (v.final_recipient, v.action, v.status, v.reason) == \
        ("pat@example.com", "delivered", "2.6.0", "delivered")
    assert v.code is None and v.bounce_type is None


def test_recipient_rule_unknown_action(tmp_path):
    p = _pack(tmp_path, """\
        detect:
          any:
            - body: 'x'
        recipients:
          - id: r
            pattern: '(?P<recipient>\\S+@\\S+)'
            action: bounced
        """)
    _names(_error(p), "r", "action")


# ----------------------------------------------------------------- CLI: explain, rules check


def test_explain_cli(capsys):
    assert main(["explain", str(SAMPLES / "standard" / "rfc3834" / "01.eml")]) == 0
    out = capsys.readouterr().out
    assert "pack standard/rfc3834: recognised (body" in out
    assert "pack mta/postfix: not recognised" in out
    assert "kind auto_reply, format standard/rfc3834" in out


def test_explain_cli_delivery_status(capsys):
    assert main(["explain", str(SAMPLES / "rfc3464" / "01.eml")]) == 0
    out = capsys.readouterr().out
    assert "delivery-status fields found" in out and "status 5.1.1 (status_field)" in out


def test_rules_check_shipped(capsys):
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out
    assert "ok   standard/rfc3834 " in out and "2 sample(s)" in out
    assert "ok   mta/postfix " in out


def test_rules_check_user_dir_with_samples(tmp_path, capsys):
    rdir = tmp_path / "rules"
    _pack(rdir, """\
        order: 300
        detect:
          any:
            - header: X-Acme-Bounce
              pattern: 'yes'
        recipients:
          - id: r
            pattern: '^<(?P<recipient>[^>]+)>:\\s*(?P<diagnostic>.*)$'
        """, name="acme.yaml")
    sdir = tmp_path / "samples" / "acme"  # DIR/../samples/<pack id>/
    sdir.mkdir(parents=True)
    (sdir / "01.eml").write_bytes(b"X-Acme-Bounce: yes\n" + BOUNCE)
    (sdir / "01.expected.json").write_text(
        '{"kind": "bounce", "format": "acme", "verdicts": [{"final_recipient": "gone@example.net",'
        ' "status": "5.1.1"}]}')
    assert main(["rules", "check", str(rdir)]) == 0
    assert "ok   acme " in capsys.readouterr().out
    (sdir / "01.expected.json").write_text(
        '{"kind": "bounce", "format": "acme", "verdicts": [{"final_recipient": "gone@example.net",'
        ' "status": "5.2.2"}]}')
    assert main(["rules", "check", str(rdir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL acme " in out and "expected '5.2.2'" in out


def test_rules_check_broken_and_missing(tmp_path, capsys):
    _pack(tmp_path, """\
        text_rules:
          - id: bad
            pattern: '(('
            reason: user_unknown
        """, name="bad.yaml")
    assert main(["rules", "check", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "BROKEN" in out and "bad.yaml" in out and "rule 'bad'" in out
    assert main(["rules", "check", str(tmp_path / "nope")]) == 2


def test_text_rule_if_status_restricts_a_rule(tmp_path):
    _pack(tmp_path, """\
        text_rules:
          - id: policy-refusal
            if_status: '^5\\.7\\.'
            pattern: 'refused'
            reason: policy_violation
        """, name="local/policy.yaml")
    opts = Options(rules=(str(tmp_path),))

    def dsn(status):
        return ("From: MAILER-DAEMON@mx.example\nTo: a@example.org\nSubject: failure\n"
                "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; "
                "boundary=B\n\n--B\nContent-Type: text/plain\n\nx\n--B\n"
                "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
                f"Final-Recipient: rfc822; z@example.net\nAction: failed\nStatus: {status}\n"
                f"Diagnostic-Code: smtp; 550 {status} Message refused\n--B--\n").encode()
    v = dsnparse.parse(dsn("5.7.1"), opts).verdicts[0]
    assert (v.reason, v.rule) == ("policy_violation", "rfc3464+local/policy#policy-refusal")
    v = dsnparse.parse(dsn("5.1.1"), opts).verdicts[0]
    assert v.reason != "policy_violation" and "local/policy" not in v.rule


def test_recipient_rule_sections(tmp_path):
    _pack(tmp_path, """\
        order: 100
        detect:
          any:
            - header: X-Test-Sections
              pattern: 'yes'
        recipients:
          - id: fatal
            section_start: '^== permanent ==$'
            section_end: '^=='
            pattern: '^<(?P<recipient>[^>]+)>'
          - id: later
            action: delayed
            section_start: '^== temporary ==$'
            pattern: '^<(?P<recipient>[^>]+)>'
        """, name="local/sections.yaml")
    msg = (b"From: MAILER-DAEMON@mx.example\nTo: s@example.org\nSubject: failure\nX-Test-Sections: yes\n\n"
           b"<before@example.net>\n== permanent ==\n<a@example.net>\n<b@example.net>\n"
           b"== temporary ==\n<c@example.net>\n")
    r = dsnparse.parse(msg, Options(rules=(str(tmp_path),)))
    assert [(v.final_recipient, v.action) for v in r.verdicts] == [
        ("a@example.net", "failed"), ("b@example.net", "failed"), ("c@example.net", "delayed")]
    bad = _pack(tmp_path / "bad", """\
        recipients:
          - id: r
            section_end: '^=='
            pattern: '^<(?P<recipient>[^>]+)>'
        """)
    err = _error(bad)
    assert "section_end" in str(err) and "'r'" in str(err)


def test_explain_reports_mime_defects_through_mail_parser(tmp_path, capsys):
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"From: a@example.org\nTo: b@example.org\nSubject: x\nMIME-Version: 1.0\n"
                    b"Content-Type: multipart/mixed; boundary=NEVER\n\nno boundary here\n")
    assert main(["explain", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "defects (mail-parser):" in out and "StartBoundaryNotFoundDefect" in out
    assert main(["explain", str(SAMPLES / "rfc3464" / "01.eml")]) == 0
    assert "defects: none (mail-parser)" in capsys.readouterr().out
