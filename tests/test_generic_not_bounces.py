"""Mail that is not a mail system's notice must not come out as a bounce of the generic layer
(whose packs read any layout): parcel and shop notices, list mail, an application's alert, a
person's reply or forward quoting a bounce, a delivery success notice.  Each message is our
own, written after the shapes an adversarial review found reported as bounces (a verdict of
code 911 suppresses the address at once: these would drop live addresses)."""
from __future__ import annotations

import pytest

import dsnparse

CASES = {
    "parcel carrier whose name holds 'Mail Delivery'": (
        "From: Royal Mail Delivery <no-reply@royalmail.example>\nTo: seller@shop.example\n"
        "Subject: Your item is on its way back\n\n"
        "We were unable to deliver item AB1 and it is being returned.\n"
        "Recipient email: buyer@customer.example\n"),
    "shop: package returned to sender": (
        "From: Shop <no-reply@shop.example>\nTo: owner@shop.example\n"
        "Subject: Order 1042: package returned to sender\n\n"
        "UPS was unable to deliver the package.\nRecipient email: jane@customer.example\n"),
    "newsletter with List-Unsubscribe": (
        "From: Gifts <news@gifts.example>\nTo: buyer@customer.example\n"
        "Subject: Delivery failed for your gift order\n"
        "List-Unsubscribe: <mailto:unsub@gifts.example>\n\n"
        "Your gift order could not be delivered to: mike@example.net\n"),
    "list post quoting a transcript": (
        "From: Dev <dev@corp.example>\nTo: ops@lists.example\nList-Id: <ops.lists.example>\n"
        "Subject: [ops] Undelivered Mail Returned to Sender - why?\n\n"
        "Anyone seen this?\n\n>>> RCPT TO:<anna@gmail.example>\n"
        "<<< 550 5.7.1 rejected by policy\n"),
    "a person's reply quoting a bounce": (
        "From: Carol <carol@corp.example>\nTo: dave@corp.example\n"
        "Subject: Re: Undeliverable mail to the supplier\nIn-Reply-To: <a1@corp.example>\n\n"
        "It bounced again:\n\n> 550 5.1.1 <anna@supplier.example>: Recipient address rejected:"
        " User unknown\n"),
    "a person's forward of a bounce (Apple Mail)": (
        "From: Carol <carol@corp.example>\nTo: it@corp.example\n"
        "Subject: Fwd: Mail delivery failed\n\nBegin forwarded message:\n\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        "Subject: Mail delivery failed\n\nThis message could not be delivered to:\n"
        "  anna@supplier.example\n"),
    "a success notice": (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: eve@corp.example\n"
        "Subject: Delivered: quarterly report\n\n"
        "Your message has been delivered to the following recipients:\n\n"
        "anna@supplier.example\n"),
    "a Japanese application alert": (
        "From: バッチ監視 <batch@app.example.jp>\nTo: ops@app.example.jp\n"
        "Subject: =?utf-8?b?44CQ44Ko44Op44O86YCa55+l44CR5aSc6ZaT44OQ44OD44OB?=\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "夜間バッチの通知メールを送信できませんでした。\n宛先: member123@example.jp\n"),
    "a Chinese IT notice from a person": (
        "From: =?utf-8?b?57O757uf566h55CG5ZGY?= <it@co.example.cn>\nTo: all@co.example.cn\n"
        "Subject: =?utf-8?b?6YCa55+l?=\nContent-Type: text/plain; charset=utf-8\n\n"
        "由于服务器维护，今晚部分邮件可能无法投递。\n收件人：张伟 <zhangwei@co.example.cn>\n"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_not_a_bounce(name):
    report = dsnparse.parse(CASES[name].encode("utf-8"))
    assert report.kind not in ("bounce", "delay"), (name, report.format,
                                                    [v.final_recipient for v in report.verdicts])


def test_a_mail_systems_notice_under_a_reply_subject_is_still_a_bounce():
    # some gateways keep the original "Re:" subject; the sender is a mail system's mailbox
    msg = ("From: post_master@mms.example.net\nTo: sender@example.org\nSubject: Re:hello\n\n"
           "Message could not be delivered.\nError: 550 5.1.1 <5551234567@mms.example.net>: "
           "No such user\n").encode()
    report = dsnparse.parse(msg)
    assert report.kind == "bounce"
    assert [(v.final_recipient, v.status) for v in report.verdicts] == \
        [("5551234567@mms.example.net", "5.1.1")]


def test_the_same_reply_from_a_person_is_not_tried_by_the_generic_packs():
    from dsnparse import engine

    msg = CASES["a person's reply quoting a bounce"].encode()
    trace: list = []
    report = engine.parse(msg, trace=trace)
    assert report.kind == "not_bounce"
    assert any("a person's reply or forward" in line for line in trace)


def test_a_quoted_address_in_a_persons_request_is_no_failed_recipient():
    # "could not be delivered" and a "Delivery failure" subject, from a person: the quoted
    # "<addr>" after "forward it to" is a request, not a failed recipient (only "deliver to
    # '<addr>'" reads a quoted address as one)
    msg = (b"From: Dana <dana@example.org>\nTo: sam@example.org\n"
           b"Subject: Delivery failure - please help\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n\n"
           b"Hi Sam,\n\nmy invitation to Carol could not be delivered. Please forward it to "
           b"'<carol@partner.example>' for me.\n\nThanks, Dana\n")
    assert dsnparse.parse(msg).kind == "not_bounce"
