"""Free-text bounces in the layouts of older mail systems and webmail/ISP notices (GroupWise,
CompuServe, Exchange 5.5, Netscape Messaging Server, SMTP32, AOL and university sendmail
relays, Yahoo's and Sina's own notices, sendmail's 4-hour warning, qmail, MDaemon, CommuniGate,
MailEnable, an X.400 gateway, Sun's messaging server, Windows' SMTP service, Mirapoint), written for these tests
under samples/generic/legacy/.  Each must give the same verdicts with every vendor pack
left out (the generic layer alone, as ``dsnparse eval --leave-out`` runs) as with all packs:
the answers in NN.expected.json were read off the messages (recipient, and the status the
text states or the one its wording names, RFC 3463)."""
from __future__ import annotations

import json

import pytest

import dsnparse
from dsnparse import rules
from dsnparse.options import Options

from conftest import SAMPLES

GENERIC = Options(leave_out=frozenset(f for p in rules.load_packs() for f in p.written_from))
CASES = sorted((SAMPLES / "generic" / "legacy").glob("*.eml"))


def test_there_are_legacy_samples():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_the_generic_layer_alone_reads_it(path):
    want = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    report = dsnparse.parse(path.read_bytes(), GENERIC)
    assert report.kind == want["kind"]
    assert report.format.startswith("generic/")
    assert [(v.final_recipient, v.action, v.status, v.reason) for v in report.verdicts] == \
        [(w["final_recipient"], w["action"], w["status"], w["reason"]) for w in want["verdicts"]]


def test_a_sendmail_warning_is_a_delay_not_a_failure():
    # "Deferred:" with "THIS IS A WARNING MESSAGE ONLY": the address is still queued
    # (RFC 3464 §2.3.3 "delayed"), so class 4 and no suppression basis
    path = SAMPLES / "generic" / "legacy" / "12.eml"
    v, = dsnparse.parse(path.read_bytes(), GENERIC).verdicts
    assert (v.action, v.status[0], v.bounce_type) == ("delayed", "4", "soft")
