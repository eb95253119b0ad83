"""Webhook authenticity (dsnparse.events.verify_request, confirm_subscription,
WebhookSecrets) with keys and certificates the tests generate.

Schemes: Amazon SNS message signatures (SNS Developer Guide, "Verifying the signatures of
Amazon SNS messages": SignatureVersion 1 SHA1withRSA, 2 SHA256withRSA, over the documented
canonical string); SendGrid's Signed Event Webhook (ECDSA P-256/SHA-256 over the timestamp
header followed by the raw body); Mailgun's HMAC-SHA256 of timestamp + token; basic auth
(RFC 7617) or a shared token for Postmark and SparkPost.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from dsnparse.events import (CertificateCache, EventAuthError, WebhookSecrets,
                             confirm_subscription, parse_event, verify_request)
from dsnparse.events.sns import string_to_sign

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"


def _cert(key, days=30, start=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    start = start or dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))


@pytest.fixture(scope="module")
def rsa_keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


def _fetch_forbidden(url):
    raise AssertionError(f"no certificate may be fetched in these tests: {url}")


@pytest.fixture
def sns_secrets(rsa_keys):
    cache = CertificateCache(fetch=_fetch_forbidden)
    cache.add(CERT_URL, _cert(rsa_keys[0]).public_bytes(serialization.Encoding.PEM))
    return WebhookSecrets(sns_topic_arns=(TOPIC,), sns_certificates=cache)


def _signed(message, key, version="1"):
    m = dict(message, SignatureVersion=version, SigningCertURL=message.get("SigningCertURL",
                                                                            CERT_URL))
    algo = hashes.SHA1() if version == "1" else hashes.SHA256()
    m["Signature"] = base64.b64encode(key.sign(string_to_sign(m), padding.PKCS1v15(),
                                               algo)).decode()
    return m


def _notification(**over):
    ses = {"notificationType": "Bounce", "mail": {"messageId": "m1"},
           "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "f",
                      "bouncedRecipients": [{"emailAddress": "ann@example.net",
                                             "status": "5.1.1", "action": "failed",
                                             "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}
    m = {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
         "TopicArn": TOPIC, "Subject": "Amazon SES Email Event Notification",
         "Message": json.dumps(ses), "Timestamp": "2026-11-30T10:00:00.000Z"}
    m.update(over)
    return m


def _body(m):
    return json.dumps(m).encode()


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signature_versions_1_and_2_are_accepted(rsa_keys, sns_secrets, version):
    m = _signed(_notification(), rsa_keys[0], version)
    verify_request("ses", {"x-amz-sns-message-type": "Notification"}, _body(m), sns_secrets)
    assert parse_event("ses", m)[0].verdicts[0].code == "511"
    # without a Subject the canonical string leaves the key out
    m = _notification()
    del m["Subject"]
    verify_request("ses", {}, _body(_signed(m, rsa_keys[0], version)), sns_secrets)


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_tampered_message_is_refused(rsa_keys, sns_secrets, version):
    m = _signed(_notification(), rsa_keys[0], version)
    m["Message"] = m["Message"].replace("ann@example.net", "bob@example.net")
    with pytest.raises(EventAuthError, match="bad SNS signature"):
        verify_request("ses", {}, _body(m), sns_secrets)


def test_sns_wrong_key_and_wrong_version_are_refused(rsa_keys, sns_secrets):
    with pytest.raises(EventAuthError, match="bad SNS signature"):
        verify_request("ses", {}, _body(_signed(_notification(), rsa_keys[1])), sns_secrets)
    m = _signed(_notification(), rsa_keys[0], "2")
    m["SignatureVersion"] = "1"         # a SHA256 signature presented as SHA1
    with pytest.raises(EventAuthError, match="bad SNS signature"):
        verify_request("ses", {}, _body(m), sns_secrets)
    m["SignatureVersion"] = "3"
    with pytest.raises(EventAuthError, match="SignatureVersion"):
        verify_request("ses", {}, _body(m), sns_secrets)
    unsigned = _notification()
    with pytest.raises(EventAuthError):
        verify_request("ses", {}, _body(unsigned), sns_secrets)


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-test.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://s3.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://sns.us-east-1.amazonaws.com/x.pem?redirect=evil.example",
])
def test_sns_cert_url_off_sns_is_refused_without_fetching(rsa_keys, url):
    fetched = []
    secrets = WebhookSecrets(sns_certificates=CertificateCache(fetch=fetched.append))
    m = _signed(_notification(SigningCertURL=url), rsa_keys[0])
    with pytest.raises(EventAuthError, match="SigningCertURL"):
        verify_request("ses", {}, _body(m), secrets)
    assert fetched == []


def test_sns_certificate_is_fetched_once_and_cached(rsa_keys):
    pem = _cert(rsa_keys[0]).public_bytes(serialization.Encoding.PEM)
    fetched = []

    def fetch(url):
        fetched.append(url)
        return pem
    secrets = WebhookSecrets(sns_certificates=CertificateCache(fetch=fetch))
    for _ in range(3):
        verify_request("ses", {}, _body(_signed(_notification(), rsa_keys[0])), secrets)
    assert fetched == [CERT_URL]


def test_sns_expired_certificate_and_foreign_topic_are_refused(rsa_keys):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    cache = CertificateCache(fetch=_fetch_forbidden)
    cache.add(CERT_URL, _cert(rsa_keys[0], days=30, start=old).public_bytes(
        serialization.Encoding.PEM))
    with pytest.raises(EventAuthError, match="not valid now"):
        verify_request("ses", {}, _body(_signed(_notification(), rsa_keys[0])),
                       WebhookSecrets(sns_certificates=cache))
    cache = CertificateCache(fetch=_fetch_forbidden)
    cache.add(CERT_URL, _cert(rsa_keys[0]).public_bytes(serialization.Encoding.PEM))
    secrets = WebhookSecrets(sns_topic_arns=("arn:aws:sns:us-east-1:1:other",),
                             sns_certificates=cache)
    with pytest.raises(EventAuthError, match="not in DSNPARSE_SNS_TOPIC_ARNS"):
        verify_request("ses", {}, _body(_signed(_notification(), rsa_keys[0])), secrets)
    with pytest.raises(EventAuthError, match="does not match"):
        verify_request("ses", {"x-amz-sns-message-type": "SubscriptionConfirmation"},
                       _body(_signed(_notification(), rsa_keys[0])),
                       WebhookSecrets(sns_certificates=cache))


def _confirmation(url=None, topic=TOPIC):
    return {"Type": "SubscriptionConfirmation", "MessageId": "165545c9", "Token": "2336412f37",
            "TopicArn": topic, "Message": "You have chosen to subscribe…",
            "SubscribeURL": url or ("https://sns.us-east-1.amazonaws.com/?Action="
                                    f"ConfirmSubscription&TopicArn={topic}&Token=2336412f37"),
            "Timestamp": "2026-11-30T09:00:00.000Z"}


def test_subscription_confirmation_is_signed_and_confirmed_only_when_allowed(rsa_keys,
                                                                             sns_secrets):
    m = _signed(_confirmation(), rsa_keys[0], "2")
    verify_request("ses", {"x-amz-sns-message-type": "SubscriptionConfirmation"}, _body(m),
                   sns_secrets)
    fetched = []
    assert confirm_subscription(m, sns_secrets, fetch=fetched.append) == m["SubscribeURL"]
    assert fetched == [m["SubscribeURL"]]
    # a topic not allowed: refused, nothing fetched; the explicit flag allows any topic
    other = _confirmation(topic="arn:aws:sns:us-east-1:999999999999:theirs")
    fetched.clear()
    with pytest.raises(EventAuthError, match="not confirming"):
        confirm_subscription(other, WebhookSecrets(), fetch=fetched.append)
    assert fetched == []
    assert confirm_subscription(other, WebhookSecrets(sns_confirm_any_topic=True),
                                fetch=fetched.append) == other["SubscribeURL"]
    # the URL must be SNS's own, over HTTPS, in the topic's region
    for url in ["http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
                "https://evil.example/?Action=ConfirmSubscription",
                "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"]:
        with pytest.raises(EventAuthError):
            confirm_subscription(_confirmation(url), sns_secrets, fetch=fetched.append)
    assert len(fetched) == 1
    # a notification or an unsubscribe confirmation needs no answer
    assert confirm_subscription(_notification(), sns_secrets, fetch=fetched.append) is None
    assert confirm_subscription(dict(_confirmation(), Type="UnsubscribeConfirmation"),
                                sns_secrets, fetch=fetched.append) is None


# --- SendGrid --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ec_keys():
    return [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]


def _sg_public(key):
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _sg_headers(key, body, ts="1764496800"):
    sig = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


SG_BODY = json.dumps([{"email": "ann@example.net", "event": "bounce", "type": "bounce",
                       "status": "5.1.1", "reason": "550 5.1.1 user unknown",
                       "sg_event_id": "x", "timestamp": 1764496800}]).encode()


def test_sendgrid_signed_event_webhook(ec_keys):
    secrets = WebhookSecrets(sendgrid_public_key=_sg_public(ec_keys[0]))
    headers = _sg_headers(ec_keys[0], SG_BODY)
    verify_request("sendgrid", headers, SG_BODY, secrets)
    verify_request("sendgrid", {k.lower(): v for k, v in headers.items()}, SG_BODY, secrets)
    pem = ec_keys[0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    verify_request("sendgrid", headers, SG_BODY, WebhookSecrets(sendgrid_public_key=pem))
    with pytest.raises(EventAuthError, match="bad signature"):          # tampered body
        verify_request("sendgrid", headers, SG_BODY.replace(b"5.1.1", b"4.2.2"), secrets)
    with pytest.raises(EventAuthError, match="bad signature"):          # another timestamp
        verify_request("sendgrid", dict(headers, **{
            "X-Twilio-Email-Event-Webhook-Timestamp": "1764496801"}), SG_BODY, secrets)
    with pytest.raises(EventAuthError, match="bad signature"):          # wrong key
        verify_request("sendgrid", _sg_headers(ec_keys[1], SG_BODY), SG_BODY, secrets)
    with pytest.raises(EventAuthError, match="unsigned"):
        verify_request("sendgrid", {}, SG_BODY, secrets)
    with pytest.raises(EventAuthError, match="DSNPARSE_SENDGRID_PUBLIC_KEY"):
        verify_request("sendgrid", headers, SG_BODY, WebhookSecrets())
    with pytest.raises(EventAuthError, match="not a public key"):
        verify_request("sendgrid", headers, SG_BODY, WebhookSecrets(sendgrid_public_key="xx"))


# --- Mailgun ---------------------------------------------------------------------------

MG_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def _mg_body(key=MG_KEY, ts=None, token="a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"):
    ts = str(int(time.time()) if ts is None else ts)
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": ts, "token": token, "signature": sig},
                       "event-data": {"event": "delivered", "id": "i",
                                      "recipient": "ann@example.net"}}).encode()


def test_mailgun_hmac_with_replay_protection():
    secrets = WebhookSecrets(mailgun_signing_key=MG_KEY)
    body = _mg_body()
    verify_request("mailgun", {}, body, secrets)
    with pytest.raises(EventAuthError, match="already used"):            # replayed token
        verify_request("mailgun", {}, body, secrets)
    with pytest.raises(EventAuthError, match="bad signature"):           # wrong key
        verify_request("mailgun", {}, _mg_body(key="key-other", token="t2"), secrets)
    with pytest.raises(EventAuthError, match="more than 300 s"):         # expired timestamp
        verify_request("mailgun", {}, _mg_body(ts=int(time.time()) - 3600, token="t3"),
                       secrets)
    with pytest.raises(EventAuthError, match="more than 300 s"):         # from the future
        verify_request("mailgun", {}, _mg_body(ts=int(time.time()) + 3600, token="t4"),
                       secrets)
    tampered = json.loads(_mg_body(token="t5"))
    tampered["signature"]["timestamp"] = str(int(time.time()) - 1)
    with pytest.raises(EventAuthError, match="bad signature"):
        verify_request("mailgun", {}, json.dumps(tampered).encode(), secrets)
    with pytest.raises(EventAuthError, match="no signature"):
        verify_request("mailgun", {}, b'{"event-data": {}}', secrets)
    with pytest.raises(EventAuthError, match="DSNPARSE_MAILGUN_SIGNING_KEY"):
        verify_request("mailgun", {}, _mg_body(token="t6"), WebhookSecrets())
    # a token is remembered only until its timestamp leaves the window
    t0 = 1_800_000_000
    body = _mg_body(ts=t0, token="t7")
    verify_request("mailgun", {}, body, secrets, now=t0)
    with pytest.raises(EventAuthError, match="already used"):
        verify_request("mailgun", {}, body, secrets, now=t0 + 299)
    with pytest.raises(EventAuthError, match="more than 300 s"):
        verify_request("mailgun", {}, body, secrets, now=t0 + 301)


# --- Postmark and SparkPost --------------------------------------------------------------

@pytest.mark.parametrize("provider", ["postmark", "sparkpost"])
def test_basic_auth_or_shared_token(provider):
    basic = WebhookSecrets(**{f"{provider}_basic_auth": "hooks:s3cret:with:colons"})
    token = WebhookSecrets(**{f"{provider}_token": "tok-123"})
    good = "Basic " + base64.b64encode(b"hooks:s3cret:with:colons").decode()
    verify_request(provider, {"Authorization": good}, b"{}", basic)
    verify_request(provider, {"x-webhook-token": "tok-123"}, b"{}", token)
    for headers, secrets in [
            ({"Authorization": "Basic " + base64.b64encode(b"hooks:wrong").decode()}, basic),
            ({"Authorization": "Basic !!!"}, basic), ({}, basic),
            ({"X-Webhook-Token": "tok-1234"}, token), ({"Authorization": good}, token)]:
        with pytest.raises(EventAuthError, match="wrong credentials"):
            verify_request(provider, headers, b"{}", secrets)
    with pytest.raises(EventAuthError, match=f"DSNPARSE_{provider.upper()}_BASIC_AUTH"):
        verify_request(provider, {"Authorization": good}, b"{}", WebhookSecrets())


def test_insecure_unsigned_accepts_anything_and_is_only_an_argument(caplog, monkeypatch):
    with caplog.at_level("WARNING", logger="dsnparse.events"):
        s = WebhookSecrets(insecure_unsigned=True)
    assert "authentication is OFF" in caplog.text
    for p in ("ses", "sendgrid", "mailgun", "postmark", "sparkpost"):
        verify_request(p, {}, b"{}", s)
    monkeypatch.setenv("DSNPARSE_INSECURE_UNSIGNED", "1")
    monkeypatch.setenv("DSNPARSE_INSECURE_UNSIGNED_WEBHOOKS", "1")
    assert WebhookSecrets.load(environ=dict(__import__("os").environ)).insecure_unsigned is False


def test_secrets_from_file_and_environment(tmp_path, caplog):
    f = tmp_path / "secrets.yaml"
    f.write_text("sendgrid_public_key: FROMFILE\nmailgun_signing_key: mg\n"
                 "sns_topic_arns: [arn:aws:sns:us-east-1:1:a, arn:aws:sns:us-east-1:1:b]\n"
                 "mailgun_max_age: 60\n")
    f.chmod(0o644)
    with caplog.at_level("WARNING", logger="dsnparse.events"):
        WebhookSecrets.load(f, {})
    assert "can be read by other users" in caplog.text
    f.chmod(0o600)
    caplog.clear()
    with caplog.at_level("WARNING", logger="dsnparse.events"):
        WebhookSecrets.load(f, {})
    assert "can be read by other users" not in caplog.text
    s = WebhookSecrets.load(f, {"DSNPARSE_SENDGRID_PUBLIC_KEY": "FROMENV",
                                "DSNPARSE_POSTMARK_TOKEN": "pt",
                                "DSNPARSE_SNS_CONFIRM_ANY_TOPIC": "true"})
    assert (s.sendgrid_public_key, s.mailgun_signing_key, s.postmark_token) == \
        ("FROMENV", "mg", "pt")
    assert s.sns_topic_arns == ("arn:aws:sns:us-east-1:1:a", "arn:aws:sns:us-east-1:1:b")
    assert s.mailgun_max_age == 60.0 and s.sns_confirm_any_topic is True
    assert "FROMENV" not in repr(s) and "mg'" not in repr(s)
    env = WebhookSecrets.load(None, {"DSNPARSE_SNS_TOPIC_ARNS": "arn:a, arn:b"})
    assert env.sns_topic_arns == ("arn:a", "arn:b")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sendgrid_key: x\n")
    with pytest.raises(ValueError, match="unknown key.*sendgrid_key"):
        WebhookSecrets.load(bad, {})
    bad.write_text("- a\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        WebhookSecrets.load(bad, {})
    with pytest.raises(ValueError, match="cannot read"):
        WebhookSecrets.load(tmp_path / "missing.yaml", {})
    bad.write_text("insecure_unsigned: true\n")
    with pytest.raises(ValueError, match="unknown key"):
        WebhookSecrets.load(bad, {})


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["ses", "sendgrid", "mailgun", "postmark", "sparkpost"]),
       st.dictionaries(st.sampled_from([
           "Authorization", "X-Webhook-Token", "x-amz-sns-message-type",
           "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"]),
           st.text(max_size=40), max_size=5),
       st.one_of(st.binary(max_size=200), st.builds(
           lambda d: json.dumps(d).encode(),
           st.fixed_dictionaries({}, optional={
               "Type": st.sampled_from(["Notification", "SubscriptionConfirmation", "x"]),
               "SignatureVersion": st.sampled_from(["1", "2", 1, None]),
               "Signature": st.text(max_size=20), "Message": st.text(max_size=20),
               "MessageId": st.text(max_size=5), "Timestamp": st.text(max_size=5),
               "TopicArn": st.text(max_size=5),
               "SigningCertURL": st.sampled_from([CERT_URL, "https://x/y.pem", "", 3]),
               "signature": st.fixed_dictionaries({}, optional={
                   "timestamp": st.one_of(st.text(max_size=12), st.integers()),
                   "token": st.text(max_size=12), "signature": st.text(max_size=70)})}))))
def test_random_requests_raise_only_event_auth_error(rsa_keys, ec_keys, provider, headers,
                                                     body):
    cache = CertificateCache(fetch=_fetch_forbidden)
    cache.add(CERT_URL, _cert(rsa_keys[0]).public_bytes(serialization.Encoding.PEM))
    secrets = WebhookSecrets(sns_certificates=cache, sendgrid_public_key=_sg_public(ec_keys[0]),
                             mailgun_signing_key=MG_KEY, postmark_token="tok",
                             sparkpost_basic_auth="u:p")
    with pytest.raises(EventAuthError):
        verify_request(provider, headers, body, secrets)
