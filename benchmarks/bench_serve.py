"""Benchmark of ``dsnparse serve``: requests per second and latency over real HTTP.

Usage (from a checkout, with the serve extra installed)::

    python benchmarks/bench_serve.py [--requests 400] [--concurrency 1 8] [--workers 1]
        [--no-db] [--warmup 20]

Starts a real ``dsnparse serve`` process on a free loopback port (tests/serve_server.py;
with a ledger unless ``--no-db``, and ``--insecure-unsigned-webhooks``: signature checks
are the events package's cost, measured by its own tests), then for each endpoint and each
concurrency sends ``--requests`` requests from that many client threads (one keep-alive
``httpx.Client`` each) and prints requests per second (requests / wall time) and the
median (p50) and 99th-percentile (p99) latency in milliseconds, measured by the clients.

* ``/v1/messages``: a 4 KB RFC 3464 bounce (multipart/report with the returned message,
  built here), a new Message-ID and recipient on every request, so that each one is parsed
  and recorded as a new ledger event (one SQLite transaction).
* ``/v1/events/ses``: an Amazon SNS notification carrying an SES Bounce event (the shape
  AWS documents under "Amazon SNS notification contents for Amazon SES"), a new SNS
  MessageId, feedbackId and recipient on every request.

The clients run on the same machine as the server (they share its cores); nothing is
asserted.  The server is stopped at the end, also on failure.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from serve_server import ServeProcess  # noqa: E402

_PARAGRAPH = ("Thank you for reading our May newsletter. This month we look at the new "
              "release, the meetup schedule and answers to the questions you sent us. ")


def bounce_4k(n: int) -> bytes:
    """A 4 KB RFC 3464 bounce (RFC 6522 multipart/report) for recipient number ``n``."""
    rcpt = f"reader{n}@example.org"
    head = (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        "To: news@sender.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Tue, 07 May 2024 10:00:00 +0000\r\n"
        f"Message-ID: <bench-{n}-{time.time_ns()}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host "
        "mx.example.net.\r\n\r\nI'm sorry to have to inform you that your message could not "
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{rcpt}>: host mx.example.org[192.0.2.25] said: 550 5.1.1 <{rcpt}>: Recipient "
        "address rejected: User unknown in local recipient table (in reply to RCPT TO "
        "command)\r\n\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Tue,  7 May 2024 09:59:58 "
        "+0000\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User "
        "unknown in local recipient table\r\n\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: news@sender.example\r\nTo: {rcpt}\r\nSubject: May newsletter\r\n"
        f"Message-ID: <may-{n}@sender.example>\r\nList-Id: News <news.sender.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    body = ""
    tail = "\r\n--b1--\r\n"
    while len(head) + len(body) + len(tail) + len(_PARAGRAPH) + 2 <= 4096:
        body += _PARAGRAPH + "\r\n"
    msg = (head + body + tail).encode()
    return msg + b" " * (4096 - len(msg)) if len(msg) < 4096 else msg


def ses_event(n: int) -> bytes:
    """An SNS notification of an SES Bounce event for recipient number ``n``."""
    rcpt = f"ses{n}@example.org"
    ses = {
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": rcpt, "action": "failed",
                                          "status": "5.1.1",
                                          "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                   "timestamp": "2024-05-07T10:00:00.000Z",
                   "feedbackId": f"0100018f-bench-{n}-{time.time_ns()}-000000",
                   "remoteMtaIp": "192.0.2.25", "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"},
        "mail": {"timestamp": "2024-05-07T09:59:58.000Z", "source": "news@sender.example",
                 "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender.example",
                 "sendingAccountId": "123456789012",
                 "messageId": f"0100018f-mail-{n}-000000", "destination": [rcpt]},
    }
    sns = {"Type": "Notification", "MessageId": f"bench-sns-{n}-{time.time_ns()}",
           "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-bounces",
           "Message": json.dumps(ses), "Timestamp": "2024-05-07T10:00:01.000Z",
           "SignatureVersion": "1", "Signature": "",
           "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"
                             "bench.pem",
           "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}
    return json.dumps(sns).encode()


def run_case(url: str, path: str, make, ctype: str, requests: int, conc: int,
             start: int) -> dict:
    lat: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(start, start + requests))

    def client():
        with httpx.Client(base_url=url, timeout=120) as c:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                body = make(n)
                t = time.perf_counter()
                r = c.post(path, content=body, headers={"Content-Type": ctype})
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        for f in [pool.submit(client) for _ in range(conc)]:
            f.result()
    wall = time.perf_counter() - t0
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"path": path, "concurrency": conc, "requests": len(lat), "rps": len(lat) / wall,
            "p50_ms": statistics.median(lat) * 1000, "p99_ms": q[98] * 1000,
            "statuses": statuses}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="requests per case (default 400)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    ap.add_argument("--no-db", action="store_true", help="run the server without a ledger")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    args = ap.parse_args(argv)
    srv = ServeProcess.start("--workers", str(args.workers), "--insecure-unsigned-webhooks",
                             db=not args.no_db)
    try:
        print(f"# CPython {platform.python_version()}, {platform.machine()}, "
              f"{__import__('os').cpu_count()} cores, {platform.platform()}")
        print(f"# dsnparse serve --workers {args.workers}"
              f"{'' if args.no_db else ' --db (ledger)'} --insecure-unsigned-webhooks; "
              f"{args.requests} requests per case; bounce {len(bounce_4k(0))} bytes, "
              f"SES notification {len(ses_event(0))} bytes")
        print(f"{'endpoint':<18} {'clients':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8}  statuses")
        n = 0
        for path, make, ctype in (("/v1/messages", bounce_4k, "message/rfc822"),
                                  ("/v1/events/ses", ses_event, "text/plain")):
            run_case(srv.url, path, make, ctype, args.warmup, 1, 10_000_000 + n)
            n += args.warmup
            for conc in args.concurrency:
                r = run_case(srv.url, path, make, ctype, args.requests, conc, n)
                n += args.requests
                print(f"{r['path']:<18} {conc:>7} {r['requests']:>8} {r['rps']:>8.1f} "
                      f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}  "
                      f"{json.dumps(r['statuses'], sort_keys=True)}", flush=True)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
