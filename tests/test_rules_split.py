"""A recipient split in two groups (``recipient`` + ``recipient_domain``), as VERP encodes it."""
from __future__ import annotations

import dsnparse
from dsnparse import rules


def test_recipient_domain_group_joins_the_address(tmp_path):
    p = tmp_path / "verp.yaml"
    p.write_text(
        "detect:\n  any:\n    - header: From\n      pattern: 'mailer-daemon'\n"
        "recipients:\n  - id: verp\n    header: To\n"
        "    pattern: '\\+(?P<recipient>[^=@\\s]+)=(?P<recipient_domain>[^@\\s]+)@'\n",
        encoding="utf-8")
    pack = rules.load_pack(p, "test/verp")
    hdr = {"to": "list-bounces+alice=example.net@lists.example.com"}
    found = rules.extract(pack, "", lambda n: hdr.get(n, ""), 0.25)
    assert [f["recipient"] for _, f in found] == ["alice@example.net"]


def test_list_mail_with_a_verp_address_is_not_a_bounce():
    msg = (b"Delivered-To: announce-bounces+alice=example.net@lists.example.com\r\n"
           b"From: Announcements <announce@lists.example.com>\r\n"
           b"To: announce-bounces+alice=example.net@lists.example.com\r\n"
           b"Subject: Weekly digest: delivery failed? read our FAQ\r\n\r\n"
           b"Hello, this week's news. 550 members joined.\r\n")
    assert dsnparse.parse(msg).kind == "not_bounce"
