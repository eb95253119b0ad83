"""Pack keys for fallback packs: ``exclude_notified`` (the bounce's own From/To and
mail-system mailboxes are never recipients) and ``recipient_from_original`` (the returned
message's To, or a returned DSN's recipients, when the report names nobody)."""
from __future__ import annotations

import pytest

from dsnparse import parse, rules
from dsnparse.options import Options
from dsnparse.errors import RuleError

PACK = """\
order: 50
{keys}
detect:
  any:
    - header: From
      pattern: 'mailer-daemon'
original_start: ['^-+ Original message']
recipients:
  - id: line
    pattern: '^\\s*<?(?P<recipient>[^\\s<>]+@[^\\s<>]+)>?\\s*$'
"""


def _opts(tmp_path, keys):
    d = tmp_path / "rules"
    d.mkdir(parents=True)
    (d / "fallback.yaml").write_text(PACK.format(keys=keys), encoding="utf-8")
    return Options(rules=(str(d),))


BOUNCE = (b"From: MAILER-DAEMON@mx.example.net\r\n"
          b"To: sender@example.org\r\n"
          b"Subject: Returned mail\r\n\r\n"
          b"Your message from\r\n  sender@example.org\r\ncould not be delivered to\r\n"
          b"  postmaster@example.net\r\n  alice@example.com\r\n\r\n")


def test_exclude_notified_skips_own_and_system_addresses(tmp_path):
    plain = parse(BOUNCE, _opts(tmp_path / "a", ""))
    assert [v.final_recipient for v in plain.verdicts] == [
        "sender@example.org", "postmaster@example.net", "alice@example.com"]
    r = parse(BOUNCE, _opts(tmp_path / "b", "exclude_notified: true"))
    assert [v.final_recipient for v in r.verdicts] == ["alice@example.com"]


EMPTY = (b"From: MAILER-DAEMON@mx.example.net\r\n"
         b"To: sender@example.org\r\n"
         b"Subject: Returned mail\r\n\r\n"
         b"The following addresses had delivery errors:\r\n\r\n"
         b"----- Original message -----\r\n"
         b"From: sender@example.org\r\nTo: {to}\r\nSubject: hi\r\n\r\nhello\r\n")


@pytest.mark.parametrize("to, want", [
    ("Alice <alice@example.com>", "alice@example.com"),
    ("alice@example.com, bob@example.com", None),  # more than one: no guess
    ("sender@example.org", None),                   # the notified sender itself
])
def test_recipient_from_returned_original_in_text(tmp_path, to, want):
    msg = EMPTY.replace(b"{to}", to.encode())
    off = parse(msg, _opts(tmp_path / "a", "exclude_notified: true"))
    assert off.format != "fallback"  # without the key the test pack finds nobody
    r = parse(msg, _opts(tmp_path / "b", "exclude_notified: true\nrecipient_from_original: true"))
    if want is None:
        assert r.format != "fallback"
    else:
        assert r.format == "fallback" and [v.final_recipient for v in r.verdicts] == [want]
        assert r.verdicts[0].rule.endswith("#original-to")


def test_recipient_from_returned_delivery_status(tmp_path):
    inner = (b"From: MAILER-DAEMON@relay.example.net\r\nTo: sender@example.org\r\n"
             b"Subject: Returned mail\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/report; report-type=delivery-status; boundary=in\r\n\r\n"
             b"--in\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
             b"--in\r\nContent-Type: message/delivery-status\r\n\r\n"
             b"Reporting-MTA: dns; relay.example.net\r\n\r\n"
             b"Final-Recipient: rfc822; carol@example.com\r\nAction: failed\r\n"
             b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
             b"--in--\r\n")
    outer = (b"From: MAILER-DAEMON@gw.example.net\r\nTo: Notify <notify@example.org>\r\n"
             b"Subject: Returned mail\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
             b"--out\r\nContent-Type: text/plain\r\n\r\n"
             b"The following addresses had permanent delivery errors\r\n\r\n"
             b"--out\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--out--\r\n")
    r = parse(outer, _opts(tmp_path, "exclude_notified: true\nrecipient_from_original: true"))
    assert r.kind == "bounce"
    assert [(v.final_recipient, v.status) for v in r.verdicts] == [("carol@example.com", "5.1.1")]


def test_new_keys_are_validated(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("exclude_notified: 'yes'\n", encoding="utf-8")
    with pytest.raises(RuleError, match="exclude_notified"):
        rules.load_pack(p)
