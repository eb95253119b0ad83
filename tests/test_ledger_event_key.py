"""The ledger side of issue 14: events keyed by their provider's event id, operator
removals with their own source (``dsnparse serve``)."""
from __future__ import annotations

from dsnparse.ledger import Ledger
from dsnparse.model import Report, Verdict


def _report(addr: str, status: str = "5.1.1") -> Report:
    return Report(kind="bounce", format="event/ses", date="2024-05-07T10:00:00Z",
                  verdicts=(Verdict(final_recipient=addr, action="failed", status=status,
                                    code="511", bounce_type="hard", reason="user_unknown",
                                    fault="recipient"),))


def test_message_key_deduplicates_a_redelivered_event(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        key = "event:ses:0100018f-aaaa"
        assert led.record_report(_report("bob@example.org"), "ses:1", message_key=key) == 1
        # the same event delivered again (SNS retries): same key, nothing new
        assert led.record_report(_report("bob@example.org"), "ses:1", message_key=key) == 0
        # another event about the same address and the same content is another event
        assert led.record_report(_report("bob@example.org"), "ses:2",
                                 message_key="event:ses:0100018f-bbbb") == 1
        assert led.count_events() == 2
        assert led.status("bob@example.org").suppressed
        [e1, e2] = led.events("bob@example.org")
        assert (e1.source, e2.source) == ("ses:1", "ses:2")
        assert e1.at == 1715076000.0                 # 2024-05-07T10:00:00Z, the event's time


def test_without_message_key_the_hash_of_the_report_is_the_key(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        assert led.record_report(_report("carol@example.org"), "a") == 1
        assert led.record_report(_report("carol@example.org"), "b") == 0


def test_remove_source(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        led.record_report(_report("dave@example.org"), "x", message_key="event:ses:d")
        before = led.remove("dave@example.org", note="support", source="operator:api")
        assert before[0].suppressed and not led.is_suppressed("dave@example.org")
        removed = [e for e in led.events("dave@example.org") if e.kind == "removed"]
        assert [(e.source, e.note) for e in removed] == [("operator:api", "support")]


def test_an_event_report_brings_its_own_key(tmp_path):
    """dsnparse.events.EventReport.message_key is used without being passed: the same
    event id is one event even when a redelivery differs in a detail."""
    import dataclasses

    events = __import__("pytest").importorskip("dsnparse.events")
    base = _report("erin@example.org")
    rep = events.EventReport(**{f.name: getattr(base, f.name)
                                for f in dataclasses.fields(base)},
                             provider="sendgrid", event_id="sg-1", event_type="bounce")
    changed = dataclasses.replace(rep, provider_class="bounce/Invalid Address")
    with Ledger(tmp_path / "l.db") as led:
        assert led.record_report(rep) == 1
        assert led.record_report(changed) == 0
        [e] = led.events("erin@example.org")
        assert e.event_key != "" and e.source == "sendgrid:sg-1"
