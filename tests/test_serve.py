"""``dsnparse serve`` against real server processes on loopback (tests/serve_server.py).

Expected values come from the standards: an RFC 3464 ``Status: 5.1.1`` is RFC 3463's "bad
destination mailbox address" (bounce code 511, hard, fault recipient); the shipped policy
(rules/policy.yaml) suppresses on one hard bounce with fault recipient, and ignores a
sender-side rejection (X.7.1, fault sender).  HTTP statuses follow RFC 9110 (401, 405, 413,
415) and RFC 6750 (bearer tokens).
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serve_server import ROOT, assert_clean_stop, dsn, start_or_skip

TOKEN = "s3cret-token-for-tests"
MAX_BODY = 65536


RFC822 = {"Content-Type": "message/rfc822"}


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server():
    """One server: a ledger, a token file, a small --max-body, unsigned webhooks allowed."""
    srv = start_or_skip("--token-file", "{dir}/token", "--max-body", str(MAX_BODY),
                        "--body-timeout", "2",
                        "--insecure-unsigned-webhooks", files={"token": TOKEN + "\n"})
    yield srv
    assert_clean_stop(srv)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def ledger_rows(db: str, sql: str, *args):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# ------------------------------------------------------------------------ basics

def test_healthz_and_openapi(client, server):
    h = client.get("/healthz")
    assert h.status_code == 200
    body = h.json()
    assert body["status"] == "ok" and body["ledger"]["path"] == server.db
    assert body["ledger"]["schema"] == 2          # dsnparse.ledger.SCHEMA_VERSION
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {"/v1/messages", "/v1/events/{provider}",
                                 "/v1/suppressions/{address}", "/healthz", "/metrics"}
    assert set(doc["paths"]["/v1/suppressions/{address}"]) == {"get", "delete"}


def test_message_gives_the_records_of_dsnparse_parse(client):
    raw = dsn("carol@example.org", message_id="<same-as-cli@mx.example.net>")
    r = client.post("/v1/messages", content=raw, headers={**RFC822, **auth()})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["kind"] == "bounce"
    cli = subprocess.run([sys.executable, "-m", "dsnparse", "parse", "-q", "-f", "jsonl", "-"],
                         input=raw, capture_output=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    expected = [json.loads(line) for line in cli.stdout.decode().splitlines()]
    assert len(got["records"]) == len(expected) == 1
    for rec, exp in zip(got["records"], expected):
        assert rec["source"].startswith("http:sha256:")
        assert {k: v for k, v in rec.items() if k != "source"} == \
            {k: v for k, v in exp.items() if k != "source"}
    rec = got["records"][0]
    # RFC 3463 X.1.1 "bad destination mailbox address": code 511, hard, the recipient's fault
    assert (rec["final_recipient"], rec["status"], rec["reply_code"], rec["code"],
            rec["bounce_type"], rec["fault"]) == ("carol@example.org", "5.1.1", "550", "511",
                                                  "hard", "recipient")


def test_message_recorded_once_and_suppressed(client, server):
    raw = dsn("dave@example.org", message_id="<rec-once@mx.example.net>")
    first = client.post("/v1/messages", content=raw, headers={**RFC822, **auth()},
                        params={"source": "mta-pipe:42"})
    assert first.status_code == 200 and first.json()["recorded"] == 1
    assert first.json()["records"][0]["source"] == "mta-pipe:42"
    again = client.post("/v1/messages", content=raw, headers={**RFC822, **auth()})
    assert again.status_code == 200 and again.json()["recorded"] == 0   # same Message-ID
    assert ledger_rows(server.db, "SELECT count(*), min(source) FROM events WHERE "
                                  "address='dave@example.org'")[0] == (1, "mta-pipe:42")
    s = client.get("/v1/suppressions/dave@example.org", headers=auth()).json()
    assert s["suppressed"] is True and s["basis"] == "hard"
    assert s["reason"] == "user_unknown"                # the bounce's reason (policy.decide)
    assert s["since"] == "2024-05-07T10:00:00Z"                 # the bounce's Date
    assert s["code"] == "511" and s["status"] == "5.1.1"
    assert [e["kind"] for e in s["events"]] == ["bounce"]
    assert s["events"][0]["message_id"] == "rec-once@mx.example.net"
    assert s["events"][0]["original_message_id"] == "orig-1@sender.example"


def test_sender_fault_is_recorded_but_does_not_suppress(client, server):
    raw = dsn("erin@example.org", status="5.7.1", message_id="<blocked@mx.example.net>",
              diagnostic="554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
                         "using zen.spamhaus.org")
    r = client.post("/v1/messages", content=raw, headers={**RFC822, **auth()}).json()
    assert r["records"][0]["fault"] == "sender" and r["recorded"] == 1
    s = client.get("/v1/suppressions/erin@example.org", headers=auth()).json()
    assert s["suppressed"] is False                       # policy: fault sender → ignore
    assert ledger_rows(server.db, "SELECT kind, fault FROM events WHERE "
                                  "address='erin@example.org'") == [("bounce", "sender")]


def test_not_a_bounce_and_garbage_are_verdicts_not_errors(client, server):
    mail = (b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: lunch?\r\n"
            b"Message-ID: <lunch@example.com>\r\n\r\nSee you at noon.\r\n")
    r = client.post("/v1/messages", content=mail, headers={**RFC822, **auth()})
    assert r.status_code == 200 and r.json()["kind"] == "not_bounce"
    assert r.json()["recorded"] is None                   # nothing to record
    junk = bytes(range(256)) * 20
    r = client.post("/v1/messages", content=junk,
                    headers={"Content-Type": "application/octet-stream", **auth()})
    assert r.status_code == 200 and r.json()["kind"] in ("not_bounce", "error")
    assert "Traceback" not in r.text


def test_delete_is_an_operator_event(client, server):
    raw = dsn("frank@example.org", message_id="<frank@mx.example.net>")
    assert client.post("/v1/messages", content=raw,
                       headers={**RFC822, **auth()}).json()["recorded"] == 1
    d = client.delete("/v1/suppressions/frank@example.org", headers=auth(),
                      params={"note": "asked by support"})
    assert d.status_code == 200, d.text
    out = d.json()
    assert out["suppressed"] is False and out["previous"]["suppressed"] is True
    assert out["previous"]["reason"] == "user_unknown" and out["removed_at"]
    assert ledger_rows(server.db, "SELECT kind, note, source FROM events WHERE "
                                  "address='frank@example.org' ORDER BY id") == [
        ("bounce", None, "http:sha256:" + __import__("hashlib").sha256(raw).hexdigest()[:16]),
        ("removed", "asked by support", "operator:api")]
    g = client.get("/v1/suppressions/frank@example.org", headers=auth()).json()
    assert g["suppressed"] is False and g["removed_at"] == out["removed_at"]
    # the same bounce posted again is a duplicate: the removal stands
    assert client.post("/v1/messages", content=raw,
                       headers={**RFC822, **auth()}).json()["recorded"] == 0
    assert client.get("/v1/suppressions/frank@example.org",
                      headers=auth()).json()["suppressed"] is False


# ------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("method,path", [("POST", "/v1/messages"),
                                         ("GET", "/v1/suppressions/bob@example.org"),
                                         ("DELETE", "/v1/suppressions/bob@example.org")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": f"Bearer {TOKEN}x"}])
def test_401_without_the_token(client, server, method, path, headers):
    before = ledger_rows(server.db, "SELECT count(*) FROM events")[0][0]
    r = client.request(method, path, headers={**RFC822, **headers},
                       content=dsn("gina@example.org", message_id="<gina@x>")
                       if method == "POST" else None)
    assert r.status_code == 401 and r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert ledger_rows(server.db, "SELECT count(*) FROM events")[0][0] == before


def test_413_by_content_length_without_reading_the_body(server):
    """A declared Content-Length over --max-body is refused at once: the server answers
    413 although not one byte of the (10 GB) body was sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                  b"Content-Length: 10000000000\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["limit"] == MAX_BODY


def test_408_for_a_stalled_body(server):
    """A client that declares 1000 bytes, sends 10 and stalls gets 408 after --body-timeout
    (2 s here) instead of holding the request forever."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                  b"Content-Length: 1000\r\n\r\nFrom: a@b\r\n")
        t0 = time.monotonic()
        data = b""
        while not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        waited = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"--body-timeout" in data
    assert 1.5 < waited < 30


def test_413_counted_while_streaming(client):
    sent = []

    def chunks():                      # no Content-Length: Transfer-Encoding: chunked
        for _ in range(64):
            sent.append(8192)
            yield b"x" * 8192
    r = client.post("/v1/messages", content=chunks(), headers={**RFC822, **auth()})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    r = client.post("/v1/events/ses", content=b"[" + b" " * (MAX_BODY + 1) + b"]",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_400_and_415(client):
    assert client.post("/v1/messages", content=b"", headers={**RFC822, **auth()}
                       ).status_code == 400
    r = client.post("/v1/messages", content=b"{}",
                    headers={"Content-Type": "application/json", **auth()})
    assert r.status_code == 415 and "message/rfc822" in r.json()["error"]
    assert client.get("/v1/suppressions/not-an-address", headers=auth()).status_code == 400
    r = client.post("/v1/events/ses", content=b'{"Type": "Notification", ',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON")
    r = client.post("/v1/events/acme", content=b"{}")
    assert r.status_code == 404 and "sparkpost" in r.json()["error"]
    r = client.put("/v1/messages", content=b"x")
    assert r.status_code == 405 and r.json()["error"]
    assert client.get("/nowhere").status_code == 404


def test_hostile_bodies_and_addresses_are_400_or_recorded_never_500(client, server):
    # a lone surrogate ("\\ud800" in JSON) in a webhook event: stored with U+FFFD, once
    body = (b'[{"event": "bounce", "email": "lone.surrogate@example.net", "sg_event_id": '
            b'"sur-1", "reason": "550 5.1.1 user unknown \\ud800", "timestamp": 1764496800}]')
    r = client.post("/v1/events/sendgrid", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["records"][0]["diagnostic_code"].endswith("\ufffd")
    assert ledger_rows(server.db, "SELECT count(*) FROM events WHERE address=?",
                       "lone.surrogate@example.net") == [(1,)]
    # nested past the JSON decoder's depth, and a JSON string (no provider posts one)
    for bad in (b"[" * 3_000 + b"]" * 3_000,
                b'"[{\\"event\\": \\"bounce\\", \\"email\\": \\"d@x.com\\"}]"'):
        r = client.post("/v1/events/sendgrid", content=bad,
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]
    # an address path that is not one plain address never acts on another address
    for path in ("mallory%20dup@example.org", "a%00b@example.org", "a" * 100 + "@example.org"):
        r = client.delete(f"/v1/suppressions/{path}", headers=auth())
        assert r.status_code == 400, (path, r.status_code)


def test_metrics(client):
    before = client.get("/metrics").text
    raw = dsn("hank@example.org", message_id="<hank@mx.example.net>")
    for _ in range(3):
        assert client.post("/v1/messages", content=raw,
                           headers={**RFC822, **auth()}).status_code == 200
    text = client.get("/metrics").text

    def value(body, name, **labels):
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in body.splitlines():
            if line.startswith(f"{name}{{") and line.split("{", 1)[1].split("}")[0] == want:
                return float(line.rsplit(" ", 1)[1])
        return 0.0
    lab = dict(method="POST", route="/v1/messages", status="200")
    assert value(text, "dsnparse_http_requests_total", **lab) - \
        value(before, "dsnparse_http_requests_total", **lab) == 3
    vb = dict(fault="recipient", kind="bounce", source="messages")
    assert value(text, "dsnparse_verdicts_total", **vb) - \
        value(before, "dsnparse_verdicts_total", **vb) == 3
    rec = dict(source="messages")
    assert value(text, "dsnparse_ledger_events_recorded_total", **rec) - \
        value(before, "dsnparse_ledger_events_recorded_total", **rec) == 1
    assert value(text, "dsnparse_http_request_duration_seconds_count",
                 route="/v1/messages") >= 3


# ------------------------------------------------------------------------ the command

def test_bad_options_exit_2_before_starting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DSNPARSE_API_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    not_a_ledger = tmp_path / "x.db"
    not_a_ledger.write_bytes(b"this is not SQLite" * 100)
    for args, words in ((["--db", str(not_a_ledger)], "ledger"),
                        (["--token-file", str(tmp_path / "missing")], "token-file"),
                        (["--max-body", "0"], "--max-body")):
        p = subprocess.run([sys.executable, "-m", "dsnparse", "serve", "--port", "0", *args],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 2, p.stderr
        assert words in p.stderr and "Traceback" not in p.stderr
    with socket.socket() as taken:                   # the port is in use: exit 1
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p = subprocess.run([sys.executable, "-m", "dsnparse", "serve", "--port",
                            str(taken.getsockname()[1])],
                           capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1 and "address already in use" in p.stderr, p.stderr[-1000:]


# ------------------------------------------------------------------------ concurrency

@pytest.fixture(scope="module")
def workers2():
    srv = start_or_skip("--workers", "2", "--insecure-unsigned-webhooks")
    yield srv
    srv.stop()


def test_concurrent_writers_through_two_worker_processes(workers2):
    """8 clients post 10 distinct bounces each, every one twice, to a server of 2 worker
    processes sharing one ledger file: 80 events stored, none twice, none lost."""
    clients, each = 8, 10

    def post_all(c: int):
        got = []
        with httpx.Client(base_url=workers2.url, timeout=120) as h:
            for rnd in range(2):
                for i in range(each):
                    raw = dsn(f"user{c}-{i}@example.org",
                              message_id=f"<conc-{c}-{i}@mx.example.net>")
                    r = h.post("/v1/messages", content=raw, headers=RFC822)
                    assert r.status_code == 200, r.text
                    got.append(r.json()["recorded"])
        return got
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(post_all, range(clients)))
    assert sum(sum(r) for r in results) == clients * each     # the second round added 0
    assert ledger_rows(workers2.db, "SELECT count(*), count(DISTINCT event_key) FROM events"
                       ) == [(clients * each, clients * each)]
    assert ledger_rows(workers2.db, "SELECT count(*) FROM addresses WHERE suppressed=1"
                       ) == [(clients * each,)]
    # both processes answered (the metrics add up the workers: prometheus multiprocess)
    text = httpx.get(workers2.url + "/metrics").text
    line = [x for x in text.splitlines() if x.startswith("dsnparse_http_requests_total{")
            and 'route="/v1/messages"' in x and 'status="200"' in x]
    assert line and float(line[0].rsplit(" ", 1)[1]) == 2 * clients * each


# ------------------------------------------------------------------------ failures

def test_a_locked_or_broken_ledger():
    """Another process holds the ledger's write lock past --ledger-timeout: 503 with
    Retry-After, nothing recorded, and the same request succeeds once the lock is gone.
    Then the ledger is damaged under the running server (its tables dropped by someone
    else): the client gets a JSON 500 with an id, the traceback goes to the server's log
    under that id, and the server goes on answering; SIGTERM then stops it cleanly."""
    srv = start_or_skip("--ledger-timeout", "1")
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            raw = dsn("jay@example.org", message_id="<locked@mx.example.net>")
            holder = sqlite3.connect(srv.db, isolation_level=None, timeout=30)
            holder.execute("BEGIN IMMEDIATE")              # another writer, mid-transaction
            try:
                r = c.post("/v1/messages", content=raw, headers=RFC822)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert "nothing was recorded" in r.json()["error"] and srv.db not in r.text
            assert ledger_rows(srv.db, "SELECT count(*) FROM events") == [(0,)]
            r = c.post("/v1/messages", content=raw, headers=RFC822)      # the retry
            assert r.status_code == 200 and r.json()["recorded"] == 1
            assert c.get("/v1/suppressions/ivy@example.org").status_code == 200
            con = sqlite3.connect(srv.db, timeout=30)
            con.execute("DROP TABLE addresses")
            con.commit()
            con.close()
            r = c.get("/v1/suppressions/ivy@example.org")
            assert r.status_code == 500
            body = r.json()
            assert body["error"].startswith("internal error") and len(body["id"]) == 12
            assert "Traceback" not in r.text and "sqlite" not in r.text.lower()
            assert c.get("/healthz").status_code == 200           # still serving
        log = srv.log()
        assert body["id"] in log and "Traceback" in log and "no such table" in log
    finally:
        assert_clean_stop(srv)
