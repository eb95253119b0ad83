"""An SES notification that arrives as an email (an Amazon SNS subscription of protocol
``email``: the SES event's JSON, then SNS's footer; or ``email-json``: the SNS message
itself) gives the webhook's verdicts (:mod:`dsnparse.events.mail`), also with the Amazon SES
packs left out; ordinary mail whose body is JSON is not a bounce."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsnparse
from dsnparse import rules
from dsnparse.events import parse_event
from dsnparse.options import Options

FIXTURES = Path(__file__).parent / "events" / "ses"
# the generic layer alone: every vendor pack left out (eval --leave-out)
GENERIC = Options(leave_out=frozenset(f for p in rules.load_packs() for f in p.written_from))
FOOTER = ("\n--\nIf you wish to stop receiving notifications from this topic, please click or "
          "visit the link below to unsubscribe:\nhttps://sns.us-east-1.amazonaws.com/"
          "unsubscribe.html?SubscriptionArn=arn:aws:sns:us-east-1:123456789012:ses-bounces\n")


def _mail(body: str) -> bytes:
    return ("From: AWS Notifications <no-reply@sns.amazonaws.com>\nTo: ops@example.com\n"
            "Subject: AWS Notification Message\nDate: Mon, 30 Nov 2026 10:00:02 +0000\n"
            "Message-ID: <0100018c-aaaa@email.amazonses.com>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=UTF-8\n\n" + body).encode()


def _rows(reports):
    return [(v.final_recipient, v.action, v.status, v.reply_code, v.code, v.reason, v.fault)
            for r in reports for v in r.verdicts]


@pytest.mark.parametrize("name", ["bounce-permanent", "bounce-transient-mailboxfull",
                                  "complaint", "delivery", "delivery-delay"])
@pytest.mark.parametrize("protocol", ["email", "email-json"])
def test_an_ses_notification_by_email_gives_the_webhooks_verdicts(name, protocol):
    sns = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    want = parse_event("ses", sns)
    # "email": the SES event's JSON text (one line, as SNS writes it) and the footer;
    # "email-json": the SNS message as JSON
    body = sns["Message"] + FOOTER if protocol == "email" else json.dumps(sns, indent=2)
    for options in (GENERIC, Options()):
        report = dsnparse.parse(_mail(body), options)
        if options is GENERIC:
            assert report.format == "event/ses"
        assert report.kind == want[0].kind
        assert _rows([report]) == _rows(want)


def test_a_line_folded_inside_the_json_is_read():
    sns = json.loads((FIXTURES / "bounce-permanent.json").read_text(encoding="utf-8"))
    msg = sns["Message"]
    cut = msg.index("user unknown")
    folded = msg[:cut] + "\n " + msg[cut:]  # a relay broke the long line inside a value
    report = dsnparse.parse(_mail(folded + FOOTER), GENERIC)
    want = [r[:5] + r[6:] for r in _rows(parse_event("ses", sns))]  # all but the reason
    assert [r[:5] + r[6:] for r in _rows([report])] == want


@pytest.mark.parametrize("body", [
    '{"name": "build 2231", "status": "failed", "to": "dev@example.com"}\n',
    '{"notificationType": "Bounce", "bounce": "not an object"}\n',
    '{"notificationType": "Bounce"',                      # cut short
    "{ not json at all, a config snippet: mailbox = full }\n",
])
def test_ordinary_json_or_a_broken_notification_is_not_a_bounce(body):
    report = dsnparse.parse(_mail(body), GENERIC)
    assert report.kind == "not_bounce" and not report.verdicts
