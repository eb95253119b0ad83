"""Cost of the events layer (dsnparse.events): parse_event per provider and verify_request
per authentication scheme, in-process (no HTTP; ``dsnparse serve`` adds its own).

    python benchmarks/bench_events.py [--n 2000]

Prints calls per second (one call: one fixture body, one event) and the median / p99 time of one call, per provider (over the
fixtures of tests/events/<provider>/, one call per fixture file in turn) and per scheme
(keys and certificates generated here).  Bounded: ``--n`` calls per row.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsnparse.events import (CertificateCache, WebhookSecrets, parse_event,  # noqa: E402
                             verify_request)
from dsnparse.events.sns import string_to_sign  # noqa: E402


def timed(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return sum(times), statistics.median(times), times[min(len(times) - 1, int(len(times) * .99))]


def row(name, n, total, med, p99, per=1):
    print(f"{name:<28} {n * per / total:>10.0f}/s {med * 1e6:>10.0f} µs {p99 * 1e6:>10.0f} µs")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="calls per row (default 2000)")
    n = ap.parse_args(argv).n
    print(f"{'parse_event':<28} {'calls':>12} {'median':>13} {'p99':>13}")
    for prov_dir in sorted((ROOT / "tests" / "events").iterdir()):
        bodies = [f.read_bytes() for f in sorted(prov_dir.glob("*.json"))]
        payloads = [json.loads(b) for b in bodies]
        parse_event(prov_dir.name, payloads[0])          # warm: packs, mapping
        i = iter(range(10 ** 9))
        total, med, p99 = timed(lambda: parse_event(prov_dir.name,
                                                    payloads[next(i) % len(payloads)]), n)
        row(prov_dir.name, n, total, med, p99)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-bench.pem"
    cache = CertificateCache(fetch=lambda u: (_ for _ in ()).throw(OSError("no fetch")))
    cache.add(url, cert.public_bytes(serialization.Encoding.PEM))
    eck = ec.generate_private_key(ec.SECP256R1())
    secrets = WebhookSecrets(
        sns_certificates=cache, mailgun_signing_key="k", postmark_basic_auth="u:p",
        sendgrid_public_key=base64.b64encode(eck.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode())
    ses = json.loads((ROOT / "tests/events/ses/bounce-permanent.json").read_text())
    print(f"\n{'verify_request':<28} {'requests':>12} {'median':>13} {'p99':>13}")
    for version, algo in (("1", hashes.SHA1()), ("2", hashes.SHA256())):
        m = dict(ses, SignatureVersion=version, SigningCertURL=url)
        m["Signature"] = base64.b64encode(key.sign(string_to_sign(m), padding.PKCS1v15(),
                                                   algo)).decode()
        body = json.dumps(m).encode()
        row(f"ses (SNS v{version}, cached)", n,
            *timed(lambda: verify_request("ses", {}, body, secrets), n))
    body = (ROOT / "tests/events/sendgrid/bounce.json").read_bytes()
    sig = base64.b64encode(eck.sign(b"1764496800" + body, ec.ECDSA(hashes.SHA256()))).decode()
    h = {"X-Twilio-Email-Event-Webhook-Signature": sig,
         "X-Twilio-Email-Event-Webhook-Timestamp": "1764496800"}
    row("sendgrid (ECDSA P-256)", n, *timed(lambda: verify_request("sendgrid", h, body,
                                                                    secrets), n))
    c = iter(range(10 ** 9))

    def mailgun():
        ts, tok = str(int(time.time())), f"token-{next(c)}"
        s = hmac.new(b"k", (ts + tok).encode(), hashlib.sha256).hexdigest()
        b = json.dumps({"signature": {"timestamp": ts, "token": tok, "signature": s},
                        "event-data": {}}).encode()
        verify_request("mailgun", {}, b, secrets)
    row("mailgun (HMAC, new token)", n, *timed(mailgun, n))
    auth = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    row("postmark (basic auth)", n, *timed(lambda: verify_request("postmark", auth, b"{}",
                                                                   secrets), n))


if __name__ == "__main__":
    main()
