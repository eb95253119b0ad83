"""The suppression policy on constructed histories (times given explicitly)."""
import pytest

from dsnparse.errors import RuleError
from dsnparse.ledger import Ledger
from dsnparse.policy import Event, decide, load_policy

H = 3600.0
T0 = 1_700_000_000.0
A = "user@example.com"


@pytest.fixture
def led(tmp_path):
    with Ledger(tmp_path / "l.sqlite3", policy=load_policy()) as led:
        yield led


def soft(led, n, hours, addr=A, **kw):
    kw.setdefault("original_message_id", f"orig-{n}")
    kw.setdefault("code", "452")
    return led.record_event(addr, "bounce", at=T0 + hours * H, bounce_type="soft",
                            action="failed", message_id=f"bounce-{n}", **kw)


def hard(led, n, hours, addr=A, **kw):
    kw.setdefault("code", "511")
    kw.setdefault("status", "5.1.1")
    kw.setdefault("reason", "user_unknown")
    return led.record_event(addr, "bounce", at=T0 + hours * H, bounce_type="hard",
                            action="failed", message_id=f"bounce-{n}", **kw)


def test_hard_then_nothing_suppresses_at_once(led):
    assert not led.is_suppressed(A)
    hard(led, 1, 0)
    d = led.status(A)
    assert d.suppressed and d.basis == "hard" and d.reason == "user_unknown"
    assert d.since == T0 and d.code == "511" and d.status == "5.1.1" and d.tags == ()
    assert [e.message_id for e in led.events(ids=d.event_ids)] == ["bounce-1"]


def test_two_soft_delivery_two_soft_not_suppressed(led):
    soft(led, 1, 0)
    soft(led, 2, 40)
    assert led.status(A).soft_count == 2
    led.record_event(A, "delivered", at=T0 + 50 * H, action="delivered", message_id="dsn-ok")
    assert led.status(A).soft_count == 0
    soft(led, 3, 60)
    soft(led, 4, 140)
    d = led.status(A)
    assert not d.suppressed and d.soft_count == 2
    # a third one after the reset does suppress (3 distinct, 60 h → 150 h spans 90 h)
    soft(led, 5, 150)
    d = led.status(A)
    assert d.suppressed and d.basis == "soft" and d.soft_count == 3
    assert [e.message_id for e in led.events(ids=d.event_ids)] == ["bounce-3", "bounce-4",
                                                                   "bounce-5"]


def test_relayed_is_not_a_delivery_reset(led):
    soft(led, 1, 0)
    soft(led, 2, 40)
    led.record_event(A, "delivered", at=T0 + 50 * H, action="relayed", message_id="dsn-r")
    soft(led, 3, 80)
    assert led.status(A).suppressed


def test_three_soft_within_72h_not_suppressed(led):
    for n, h in enumerate([0, 30, 71.9]):
        soft(led, n, h)
    d = led.status(A)
    assert not d.suppressed and d.soft_count == 3


def test_three_soft_spanning_72h_suppressed(led):
    for n, h in enumerate([0, 30, 72]):
        soft(led, n, h)
    d = led.status(A)
    assert d.suppressed and d.basis == "soft" and d.since == T0 + 72 * H
    assert d.reason == "soft_bounce_persistent"      # verdicts named no reason


def test_soft_needs_distinct_original_messages(led):
    for n, h in enumerate([0, 40, 80, 120]):
        soft(led, n, h, original_message_id="same-orig")
    d = led.status(A)
    assert not d.suppressed and d.soft_count == 1
    soft(led, 9, 121, original_message_id="other")
    assert led.status(A).soft_count == 2 and not led.is_suppressed(A)


def test_soft_campaign_distinguishes_when_no_message_id(led):
    for n, h in enumerate([0, 40, 80]):
        soft(led, n, h, original_message_id=None, campaign=f"camp-{n}")
    assert led.is_suppressed(A)


def test_out_of_order_history_is_decided_in_time_order(led):
    soft(led, 3, 80)
    soft(led, 1, 0)
    assert not led.is_suppressed(A)
    soft(led, 2, 40)
    d = led.status(A)
    assert d.suppressed and d.since == T0 + 80 * H


def test_delays_and_auto_replies_never_count(led):
    for n in range(6):
        led.record_event(A, "delay", at=T0 + n * 40 * H, action="delayed", code="442",
                         bounce_type="soft", original_message_id=f"d{n}")
        led.record_event(A, "auto_reply", at=T0 + n * 40 * H + 1, message_id=f"ar{n}")
    d = led.status(A)
    assert not d.suppressed and d.soft_count == 0
    assert len(led.events(A)) == 12


def test_complaint_suppresses_with_its_own_reason(led):
    led.record_event(A, "complaint", at=T0, feedback_type="abuse", message_id="arf-1")
    d = led.status(A)
    assert d.suppressed and d.basis == "complaint" and d.reason == "complaint"


def test_code_911_counts_hard_and_is_tagged(led):
    led.record_event(A, "bounce", at=T0, bounce_type="hard", code="911", action="failed")
    d = led.status(A)
    assert d.suppressed and d.basis == "hard" and d.tags == ("review_911",)
    assert d.reason == "hard_bounce"
    assert [x.address for x in led.suppressions(tag="review_911")] == [A]
    hard(led, 2, 1, addr="other@example.com")
    assert [x.address for x in led.suppressions(tag="review_911")] == [A]


def test_suppression_is_sticky_until_removed_and_removal_is_recorded(led):
    hard(led, 1, 0)
    soft(led, 2, 10)
    before = led.remove([A], note="customer fixed mailbox", at=T0 + 20 * H)
    assert before[0].suppressed and not led.is_suppressed(A)
    removal = led.events(A)[-1]
    assert removal.kind == "removed" and removal.note == "customer fixed mailbox"
    # the soft bounce before the removal no longer counts; new bounces do
    soft(led, 3, 30)
    soft(led, 4, 70)
    assert not led.is_suppressed(A) and led.status(A).soft_count == 2
    hard(led, 5, 80)
    assert led.status(A).since == T0 + 80 * H


def _policy(tmp_path, text):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return load_policy(p)


def test_override_treats_5_7_1_as_soft(tmp_path):
    pol = _policy(tmp_path, 'overrides:\n  - {status: "5.7.1", treat_as: soft, tag: policy}\n')
    with Ledger(tmp_path / "o.sqlite3", policy=pol) as led:
        hard(led, 1, 0, status="5.7.1", code="571", reason="policy_block")
        d = led.status(A)
        assert not d.suppressed and d.soft_count == 1 and d.tags == ("policy",)
        hard(led, 2, 40, status="5.7.1", code="571", reason="policy_block",
             original_message_id="o2")
        hard(led, 3, 80, status="5.7.1", code="571", reason="policy_block",
             original_message_id="o3")
        d = led.status(A)
        assert d.suppressed and d.basis == "soft" and d.reason == "policy_block"
        # a 5.1.1 is still hard
        hard(led, 4, 0, addr="b@example.com")
        assert led.is_suppressed("b@example.com")


def test_override_per_reason_and_wildcards_and_ignore(tmp_path):
    pol = _policy(tmp_path, """
overrides:
  - {reason: [spam_block, blacklisted], treat_as: ignore}
  - {code: "5*", domain: "*.example.org", treat_as: soft, set_reason: odd_domain}
""")
    with Ledger(tmp_path / "o.sqlite3", policy=pol) as led:
        hard(led, 1, 0, reason="blacklisted")
        assert led.status(A).soft_count == 0 and not led.is_suppressed(A)
        hard(led, 2, 0, addr="x@mx.Example.ORG")
        d = led.status("x@mx.example.org")
        assert not d.suppressed and d.soft_count == 1
        for n, h in ((3, 40), (4, 80)):
            hard(led, n, h, addr="x@mx.example.org", original_message_id=f"o{n}")
        d = led.status("x@mx.example.org")
        assert d.suppressed and d.basis == "soft" and d.reason == "odd_domain"


def test_policy_change_recomputes_decisions(tmp_path):
    db = tmp_path / "c.sqlite3"
    with Ledger(db) as led:
        hard(led, 1, 0, status="5.7.1", code="571")
        assert led.is_suppressed(A)
    pol = _policy(tmp_path, 'overrides:\n  - {status: "5.7.1", treat_as: soft}\n')
    with Ledger(db, policy=pol) as led:
        assert not led.is_suppressed(A) and led.status(A).soft_count == 1
    with Ledger(db) as led:
        assert led.is_suppressed(A)


def test_policy_values_from_yaml(tmp_path):
    pol = _policy(tmp_path, "soft: {count: 2, min_span_hours: 1}\ncode_911: {treat_as: soft}\n")
    assert pol.soft_count == 2 and pol.soft_min_span == 3600.0
    assert pol.code_911_treat_as == "soft" and pol.code_911_tag == "review_911"
    assert "List-Id" in pol.campaign_headers and pol.hard_reason == "hard_bounce"


@pytest.mark.parametrize("text, field", [
    ("soft: {count: 0}\n", "soft.count"),
    ("soft: {min_span_hours: x}\n", "soft.min_span_hours"),
    ("code_911: {treat_as: maybe}\n", "code_911.treat_as"),
    ("overrides:\n  - {treat_as: soft}\n", None),
    ("overrides:\n  - {status: '5.7.1', treat_as: later}\n", "treat_as"),
    ("softt: {count: 2}\n", None),
    ("- a list\n", None),
])
def test_bad_policy_raises_rule_error(tmp_path, text, field):
    with pytest.raises(RuleError) as exc:
        _policy(tmp_path, text)
    assert exc.value.field == field
    assert str(tmp_path / "policy.yaml") in str(exc.value)


def test_decide_is_pure_and_order_independent():
    pol = load_policy()
    evs = [Event(A, T0 + h * H, "bounce", id=i, bounce_type="soft", code="452",
                 original_message_id=f"o{i}") for i, h in enumerate([72, 0, 36], 1)]
    d = decide(evs, pol)
    assert d.suppressed and d.event_ids == (2, 3, 1) and d.since == T0 + 72 * H
    assert not decide([], pol).suppressed
