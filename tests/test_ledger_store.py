"""Recording into the ledger: reports, records, dedup keys, addresses, schema."""
import sqlite3
from datetime import datetime, timezone

import pytest

from dsnparse.ledger import (SCHEMA_VERSION, Ledger, LedgerError, campaign_from_headers,
                             default_db_path, normalize_address, to_epoch)
from dsnparse.model import Report, Verdict

DATE = "Tue, 07 May 2024 10:00:00 +0000"
EPOCH = 1715076000.0


def report(**kw):
    v = dict(final_recipient="Ann.Smith@Mail.Example.COM", action="failed", status="5.1.1",
             status_source="status_field", code="511", bounce_type="hard",
             reason="user_unknown", reporting_mta="mx.example.com")
    v.update(kw.pop("verdict", {}))
    base = dict(kind="bounce", format="rfc3464", verdicts=(Verdict(**v),),
                message_id="<bounce-1@mx.example.com>", date=DATE,
                original_message_id="<orig-1@sender.test>")
    base.update(kw)
    return Report(**base)


@pytest.fixture
def led(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as led:
        yield led


def test_record_report_stores_every_field(led):
    assert led.record_report(report(), "inbox/1.eml",
                             original_headers={"LIST-ID": '"News" <news.sender.test>'}) == 1
    [e] = led.events("Ann.Smith@mail.example.com")
    assert (e.address, e.at, e.kind, e.action) == ("Ann.Smith@mail.example.com", EPOCH,
                                                   "bounce", "failed")
    assert (e.code, e.bounce_type, e.status, e.reason) == ("511", "hard", "5.1.1",
                                                           "user_unknown")
    assert (e.reporting_mta, e.message_id, e.source) == ("mx.example.com",
                                                         "bounce-1@mx.example.com",
                                                         "inbox/1.eml")
    assert (e.original_message_id, e.campaign) == ("orig-1@sender.test", "news.sender.test")
    assert led.is_suppressed("ann.smith@MAIL.example.com") is False   # local part kept
    assert led.is_suppressed("Ann.Smith@MAIL.example.com") is True


def test_same_bounce_twice_counts_once(led):
    assert led.record_report(report(), "a.eml") == 1
    assert led.record_report(report(), "copy/a.eml") == 0
    # without a Message-ID: the content decides (raw bytes, else the parsed report)
    r = report(message_id=None)
    assert led.record_report(r, "b.eml") == 1
    assert led.record_report(r, "b-again.eml") == 0
    assert led.record_report(r, "c.eml", raw=b"raw bytes") == 1
    assert led.record_report(r, "d.eml", raw=b"raw bytes") == 0
    assert led.count_events() == 3


def test_records_route_delays_and_deliveries(led):
    r = Report(kind="bounce", message_id="<m2@x>", verdicts=(
        Verdict(final_recipient="a@x.test", action="failed", code="511", bounce_type="hard"),
        Verdict(final_recipient="b@x.test", action="delayed", code="442", bounce_type="soft"),
        Verdict(final_recipient="c@x.test", action="delivered"),
        Verdict(final_recipient=None, action="failed", code="911", bounce_type="hard"),
    ))
    assert led.record_report(r, "m2", at=datetime(2024, 1, 1, tzinfo=timezone.utc)) == 3
    kinds = {a: led.events(a)[0].kind for a in ("a@x.test", "b@x.test", "c@x.test")}
    assert kinds == {"a@x.test": "bounce", "b@x.test": "delay", "c@x.test": "delivered"}
    assert led.events("a@x.test")[0].at == 1704067200.0
    assert led.record_report(Report(kind="not_bounce", message_id="<n@x>"), "n") == 0


def test_time_falls_back_to_arrival_date_then_now(led):
    led.record_report(report(date=None, arrival_date="Mon, 06 May 2024 10:00:00 +0000"), "a")
    assert led.events("Ann.Smith@mail.example.com")[0].at == EPOCH - 86400
    import time
    t = time.time()
    led.record_report(report(date="garbage", message_id="<x@y>",
                             verdict={"final_recipient": "z@y.test"}), "b")
    assert abs(led.events("z@y.test")[0].at - t) < 60


def test_record_records_contract(led):
    recs = report().records("r.eml") + report(message_id="<b2@x>").records("s.eml")
    recs[1]["campaign"] = "spring-sale"
    assert led.record_records(recs, at=EPOCH) == 2
    assert led.record_records(recs) == 0
    evs = led.events("Ann.Smith@mail.example.com")
    assert [e.campaign for e in evs] == [None, "spring-sale"]
    assert [e.at for e in evs] == [EPOCH, EPOCH]


def test_campaign_headers_order_and_original_message_id_fallback(led):
    hdrs = {"x-mailer-campaign": "m-7", "X-Campaign-Id": " c-42 ", "Message-ID": "<o9@s>"}
    assert campaign_from_headers(hdrs, led.policy.campaign_headers) == "c-42"
    assert campaign_from_headers({}, led.policy.campaign_headers) is None
    led.record_report(report(original_message_id=None), "x", original_headers=hdrs)
    e = led.events("Ann.Smith@mail.example.com")[0]
    assert (e.campaign, e.original_message_id) == ("c-42", "o9@s")


@pytest.mark.parametrize("given, expected", [
    ("Bob@EXAMPLE.com", "Bob@example.com"),
    (" <Bob@Example.COM> ", "Bob@example.com"),
    ("rfc822; bob@Example.com.", "bob@example.com"),
    ('"Bob B" <Bob@Example.COM>', "Bob@example.com"),
    ("no-at-sign", None),
    ("", None),
    (None, None),
])
def test_normalize_address(given, expected):
    assert normalize_address(given) == expected


def test_to_epoch():
    assert to_epoch(1.5) == 1.5
    assert to_epoch(datetime(1970, 1, 2)) == 86400.0
    assert to_epoch("1970-01-02T00:00:00Z") == 86400.0
    assert to_epoch("Fri, 02 Jan 1970 01:00:00 +0100") == 86400.0
    with pytest.raises(ValueError):
        to_epoch("next tuesday")


def test_record_event_validates(led):
    with pytest.raises(ValueError):
        led.record_event("nobody", "bounce")
    with pytest.raises(ValueError):
        led.record_event("a@b.c", "bounced")
    with pytest.raises(ValueError):
        led.record_event("a@b.c", "bounce", colour="red")
    assert led.record_event("a@b.c", "bounce", message_id="m", bounce_type="soft") is True
    assert led.record_event("a@b.c", "bounce", message_id="m", bounce_type="soft") is False


def test_schema_is_versioned(tmp_path):
    db = tmp_path / "v.sqlite3"
    Ledger(db).close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="newer"):
        Ledger(db)


def test_refuses_foreign_database(tmp_path):
    db = tmp_path / "other.sqlite3"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers(id)")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="not a dsnparse ledger"):
        Ledger(db)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError):
        Ledger(junk)


def test_default_db_path(monkeypatch, tmp_path):
    monkeypatch.delenv("DSNPARSE_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "dsnparse" / "ledger.sqlite3"
    monkeypatch.setenv("DSNPARSE_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


def test_export_formats(led):
    import io
    import json
    led.record_report(report(), "a")
    led.record_event("c@x.test", "bounce", at=EPOCH + 10, bounce_type="hard", code="911")
    out = io.StringIO()
    assert led.export(out, "csv") == 2
    assert out.getvalue().splitlines() == [
        "email,reason,basis,since,code,status,tags",
        "c@x.test,hard_bounce,hard,2024-05-07T10:00:10Z,911,,review_911",
        "Ann.Smith@mail.example.com,user_unknown,hard,2024-05-07T10:00:00Z,511,5.1.1,",
    ]
    out = io.StringIO()
    led.export(out, "jsonl")
    first = json.loads(out.getvalue().splitlines()[0])
    assert first == {"email": "c@x.test", "reason": "hard_bounce", "basis": "hard",
                     "since": "2024-05-07T10:00:10Z", "code": "911", "status": None,
                     "tags": ["review_911"]}
    with pytest.raises(ValueError):
        led.export(out, "xml")


def test_normalize_without_flanker(monkeypatch):
    import dsnparse.addresses as ad
    monkeypatch.setattr(ad, "_parse", False)               # as if the import had failed
    assert normalize_address('"Bob B" <Bob@Example.COM>') == "Bob@example.com"
    assert normalize_address("Bob B") is None
