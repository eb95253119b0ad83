"""``POST /v1/events/{provider}`` of a real ``dsnparse serve`` process (tests/serve_server.py),
with the events package's fixtures (tests/events/<provider>/*.json, written from each
provider's published webhook documentation) and keys and certificates generated here.

Two servers: one with ``--insecure-unsigned-webhooks`` (every fixture, idempotent
redelivery, mail and events in one ledger under one policy) and one checking every
provider's authentication (SNS signatures v1/v2 with a pinned certificate, SendGrid ECDSA,
Mailgun HMAC with replay protection, Postmark basic auth, SparkPost shared token).
Expected values: the records equal what :func:`dsnparse.events.parse_event` gives for the
same payload (the library and the server agree), plus values read from the documentation:
SES ``bounceType Permanent`` with status 5.1.1 is RFC 3463 X.1.1 (code 511, hard, fault
recipient); the shipped policy suppresses on it, and on a complaint (basis complaint).
"""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("dsnparse.events")
pytest.importorskip("cryptography")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from dsnparse.events import EventFormatError, parse_event  # noqa: E402
from dsnparse.events.sns import string_to_sign  # noqa: E402
from serve_server import assert_clean_stop, dsn, start_or_skip  # noqa: E402

FIX = Path(__file__).parent / "events"
RFC822 = {"Content-Type": "message/rfc822"}
PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "sparkpost")
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-serve-test.pem"
MG_KEY = "key-serve-test-3ax6xnjp29jd6fds4gc3"
PM_BASIC = "hooks:pm-s3cret"
SP_TOKEN = "sp-token-123"


def fixture(provider: str, name: str):
    return json.loads((FIX / provider / f"{name}.json").read_text(encoding="utf-8"))


def rows(db: str, sql: str, *args):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# ------------------------------------------------------------------------ unsigned server

@pytest.fixture(scope="module")
def open_srv():
    srv = start_or_skip("--insecure-unsigned-webhooks")
    yield srv
    assert_clean_stop(srv)


@pytest.fixture(scope="module")
def oc(open_srv):
    with httpx.Client(base_url=open_srv.url, timeout=60) as c:
        yield c


ALL_FIXTURES = sorted((p.parent.name, p.stem) for p in FIX.glob("*/*.json"))


@pytest.mark.parametrize("provider,name", ALL_FIXTURES)
def test_every_fixture_gives_the_records_of_parse_event(oc, provider, name):
    payload = fixture(provider, name)
    r = oc.post(f"/v1/events/{provider}", content=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"})
    if provider == "ses" and payload.get("Type") == "SubscriptionConfirmation":
        # not in DSNPARSE_SNS_TOPIC_ARNS: not confirmed (nothing fetched), nothing recorded
        assert r.status_code == 401 and "not confirming" in r.json()["error"]
        return
    try:
        expected = [rec for rep in parse_event(provider, payload) for rec in rep.records()]
    except EventFormatError as e:
        assert r.status_code == 400 and provider in r.json()["error"], r.text
        assert str(e) in r.json()["error"]
        return
    assert r.status_code == 200, r.text
    assert r.json()["records"] == expected


def test_fixture_values_from_the_documentation(oc, open_srv):
    r = oc.post("/v1/events/ses", content=json.dumps(fixture("ses", "bounce-permanent")))
    rec = r.json()["records"][0]
    assert (rec["final_recipient"], rec["status"], rec["code"], rec["bounce_type"],
            rec["fault"], rec["provider_class"]) == ("recipient@example.net", "5.1.1", "511",
                                                     "hard", "recipient", "Permanent/General")
    assert rec["source"] == "ses:" + fixture("ses", "bounce-permanent")["MessageId"]
    assert rec["rule"].startswith("event/ses#")


@pytest.mark.parametrize("provider,name", [("ses", "bounce-permanent"),
                                           ("sendgrid", "bounce"),
                                           ("mailgun", "failed-permanent"),
                                           ("postmark", "hard-bounce"),
                                           ("sparkpost", "bounce")])
def test_redelivered_event_is_counted_once(oc, open_srv, provider, name):
    body = json.dumps(fixture(provider, name)).encode()
    recs = parse_event(provider, fixture(provider, name))
    key = recs[0].message_key
    before = rows(open_srv.db, "SELECT count(*) FROM events")[0][0]
    first = oc.post(f"/v1/events/{provider}", content=body)
    again = oc.post(f"/v1/events/{provider}", content=body)        # the provider retries
    assert first.status_code == again.status_code == 200
    assert again.json()["recorded"] == 0
    assert again.json()["records"] == first.json()["records"]
    n_new = rows(open_srv.db, "SELECT count(*) FROM events")[0][0] - before
    assert n_new == first.json()["recorded"]       # 0 when an earlier test stored it already
    addr = recs[0].verdicts[0].final_recipient
    assert rows(open_srv.db, "SELECT count(*) FROM events WHERE address=? AND source=?",
                addr, f"{provider}:{recs[0].event_id}") == [(1,)]
    assert key == f"event:{provider}:{recs[0].event_id}"


def test_mail_and_events_share_one_ledger_and_one_policy(oc, open_srv):
    """An SES hard bounce suppresses; DELETE lifts it (operator event); a bounce by mail for
    the same address suppresses it again; an SES complaint suppresses with basis
    complaint.  All in one ledger, decided by the same policy."""
    addr = "shared-ledger@example.net"
    ses = fixture("ses", "bounce-permanent")
    inner = json.loads(ses["Message"])
    inner["bounce"]["bouncedRecipients"][0]["emailAddress"] = addr
    ses = dict(ses, Message=json.dumps(inner), MessageId="serve-test-shared-1")
    assert oc.post("/v1/events/ses", content=json.dumps(ses)).json()["recorded"] == 1
    s = oc.get(f"/v1/suppressions/{addr}").json()
    assert s["suppressed"] and s["basis"] == "hard" and s["reason"] == "user_unknown"
    assert [e["source"] for e in s["events"]] == ["ses:serve-test-shared-1"]
    assert s["since"] == inner["bounce"]["timestamp"][:19] + "Z"     # the event's time
    assert oc.delete(f"/v1/suppressions/{addr}").json()["suppressed"] is False
    # a bounce dated before the removal no longer counts (the operator's removal resets
    # what came before it); one dated after it does
    old = dsn(addr, message_id="<shared-ledger-old@mx.example.net>",
              date="Tue, 01 Dec 2026 10:00:00 +0000")
    assert oc.post("/v1/messages", content=old, headers=RFC822).json()["recorded"] == 1
    assert oc.get(f"/v1/suppressions/{addr}").json()["suppressed"] is False
    later = int(time.time()) + 5
    raw = dsn(addr, message_id="<shared-ledger@mx.example.net>",
              date=email.utils.formatdate(later, usegmt=True))
    assert oc.post("/v1/messages", content=raw, headers=RFC822).json()["recorded"] == 1
    s = oc.get(f"/v1/suppressions/{addr}").json()
    assert s["suppressed"] and s["since"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                           time.gmtime(later))
    assert s["events"][0]["message_id"] == "shared-ledger@mx.example.net"
    kinds = rows(open_srv.db, "SELECT kind FROM events WHERE address=? ORDER BY id", addr)
    assert [k for (k,) in kinds] == ["bounce", "removed", "bounce", "bounce"]
    # a complaint (SES Complaint, RFC 5965 feedback): suppressed, basis complaint
    comp = fixture("ses", "complaint")
    caddr = json.loads(comp["Message"])["complaint"]["complainedRecipients"][0]["emailAddress"]
    assert oc.post("/v1/events/ses", content=json.dumps(comp)).status_code == 200
    c = oc.get(f"/v1/suppressions/{caddr}").json()
    assert c["suppressed"] and c["basis"] == "complaint"


def test_event_errors_are_json_400(oc):
    for provider in PROVIDERS:
        r = oc.post(f"/v1/events/{provider}", content=b'{"broken": ')
        assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON")
        r = oc.post(f"/v1/events/{provider}", content=b'{"what": "no event of any kind"}')
        assert r.status_code == 400 and provider in r.json()["error"]
        assert "Traceback" not in r.text


# ------------------------------------------------------------------------ signed server

def _cert(key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def keys():
    return {"sns": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "sns_other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "sg": ec.generate_private_key(ec.SECP256R1()),
            "sg_other": ec.generate_private_key(ec.SECP256R1())}


@pytest.fixture(scope="module")
def signed_srv(keys):
    sg_pub = base64.b64encode(keys["sg"].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    srv = start_or_skip(
        "--sns-certificate", f"{CERT_URL}={{dir}}/sns.pem",
        files={"sns.pem": _cert(keys["sns"]).decode()},
        env={"DSNPARSE_API_TOKEN": "api-token-not-for-webhooks",
             "DSNPARSE_SNS_TOPIC_ARNS": TOPIC, "DSNPARSE_SENDGRID_PUBLIC_KEY": sg_pub,
             "DSNPARSE_MAILGUN_SIGNING_KEY": MG_KEY, "DSNPARSE_POSTMARK_BASIC_AUTH": PM_BASIC,
             "DSNPARSE_SPARKPOST_TOKEN": SP_TOKEN})
    yield srv
    assert_clean_stop(srv)


@pytest.fixture(scope="module")
def sc(signed_srv):
    with httpx.Client(base_url=signed_srv.url, timeout=60) as c:
        yield c


def _count(srv) -> int:
    return rows(srv.db, "SELECT count(*) FROM events")[0][0]


def _sns(message: dict, key, version: str) -> bytes:
    m = dict(message, SignatureVersion=version, SigningCertURL=CERT_URL)
    algo = hashes.SHA1() if version == "1" else hashes.SHA256()
    m["Signature"] = base64.b64encode(key.sign(string_to_sign(m), padding.PKCS1v15(),
                                               algo)).decode()
    return json.dumps(m).encode()


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signature_accept_and_reject(sc, signed_srv, keys, version):
    note = dict(fixture("ses", "bounce-permanent"), MessageId=f"serve-signed-v{version}")
    hdr = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
    before = _count(signed_srv)
    tampered = json.loads(_sns(note, keys["sns"], version))
    tampered["Message"] = tampered["Message"].replace("recipient@example.net",
                                                      "victim@example.net")
    foreign = dict(note, SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/c.pem")
    for body in (json.dumps(tampered).encode(),                  # changed after signing
                 _sns(note, keys["sns_other"], version),         # another key
                 json.dumps(note).encode(),                      # the fixture's fake signature
                 json.dumps(foreign).encode()):                  # certificate off SNS
        r = sc.post("/v1/events/ses", content=body, headers=hdr)
        assert r.status_code == 401 and r.json()["error"].startswith("ses webhook not "
                                                                     "authenticated")
    assert _count(signed_srv) == before                           # nothing changed
    r = sc.post("/v1/events/ses", content=_sns(note, keys["sns"], version), headers=hdr)
    assert r.status_code == 200, r.text
    assert r.json()["records"][0]["code"] == "511" and r.json()["recorded"] == 1
    assert _count(signed_srv) == before + 1


def test_sns_subscription_of_a_foreign_topic_is_not_confirmed(sc, keys):
    conf = dict(fixture("ses", "subscription-confirmation"),
                TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else")
    conf["SubscribeURL"] = conf["SubscribeURL"].replace("123456789012", "999999999999")
    r = sc.post("/v1/events/ses", content=_sns(conf, keys["sns"], "2"))
    assert r.status_code == 401


def test_sendgrid_signature(sc, signed_srv, keys):
    body = json.dumps(fixture("sendgrid", "bounce")).encode()

    def headers(key, ts, data=body):
        sig = key.sign(ts.encode() + data, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts, "Content-Type":
                "application/json"}
    ts = str(int(time.time()))
    before = _count(signed_srv)
    for h, data in ((headers(keys["sg_other"], ts), body),                   # wrong key
                    (headers(keys["sg"], ts), body.replace(b"5.1.1", b"4.2.2")),  # tampered
                    ({"Content-Type": "application/json"}, body)):           # unsigned
        r = sc.post("/v1/events/sendgrid", content=data, headers=h)
        assert r.status_code == 401, r.text
    assert _count(signed_srv) == before
    r = sc.post("/v1/events/sendgrid", content=body, headers=headers(keys["sg"], ts))
    assert r.status_code == 200 and r.json()["records"][0]["status"] == "5.1.1"


def _mailgun(token: str, ts=None, key=MG_KEY) -> bytes:
    payload = fixture("mailgun", "failed-permanent")
    ts = str(int(time.time()) if ts is None else ts)
    payload["signature"] = {"timestamp": ts, "token": token, "signature": hmac.new(
        key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()}
    return json.dumps(payload).encode()


def test_mailgun_hmac_and_replay(sc, signed_srv):
    before = _count(signed_srv)
    tok = "serve-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:40]
    for body in (_mailgun(tok + "a", key="key-wrong"),                       # wrong key
                 _mailgun(tok + "b", ts=int(time.time()) - 3600)):          # too old
        assert sc.post("/v1/events/mailgun", content=body).status_code == 401
    body = _mailgun(tok)
    assert sc.post("/v1/events/mailgun", content=body).status_code == 200
    r = sc.post("/v1/events/mailgun", content=body)                        # replayed
    assert r.status_code == 401 and "already used" in r.json()["error"]
    assert _count(signed_srv) - before in (0, 1)    # one event at most (0: stored before)


@pytest.mark.parametrize("provider,good,bad", [
    ("postmark", {"Authorization": "Basic " + base64.b64encode(PM_BASIC.encode()).decode()},
     [{}, {"Authorization": "Basic " + base64.b64encode(b"hooks:wrong").decode()},
      {"Authorization": "Bearer api-token-not-for-webhooks"}]),
    ("sparkpost", {"X-Webhook-Token": SP_TOKEN},
     [{}, {"X-Webhook-Token": SP_TOKEN + "x"}]),
])
def test_basic_auth_and_shared_token(sc, signed_srv, provider, good, bad):
    name = "hard-bounce" if provider == "postmark" else "bounce"
    body = json.dumps(fixture(provider, name)).encode()
    before = _count(signed_srv)
    for h in bad:
        assert sc.post(f"/v1/events/{provider}", content=body, headers=h).status_code == 401
    assert _count(signed_srv) == before
    r = sc.post(f"/v1/events/{provider}", content=body, headers=good)
    assert r.status_code == 200 and r.json()["records"][0]["code"] == "511"
    # the webhooks need no API token, /v1/messages does
    assert sc.post("/v1/messages", content=dsn("x@example.org"),
                   headers=RFC822).status_code == 401
    text = sc.get("/metrics").text
    assert f'dsnparse_webhook_auth_failures_total{{provider="{provider}"}}' in text
