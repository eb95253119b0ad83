"""`dsnparse imap` against a real Dovecot on loopback (see tests/imap_server.py).

Every test works in folders of its own (a random name under the test user), so the one
server of the session can be shared.  Crash tests run the command as a subprocess and use
the ``DSNPARSE_IMAP_TEST_KILL=N:POINT`` hook of :mod:`dsnparse.sources.imap`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from imap_server import SHARED, Server, Unavailable

REPO = Path(__file__).parents[1]
CORPUS = SHARED / "corpus"
if not (CORPUS / "sisimai" / "maildir" / "bsd").is_dir():
    pytest.skip(f"corpus not found at {CORPUS} (../shared relative to the repository)",
                allow_module_level=True)

from dsnparse import imap_cli  # noqa: E402
from dsnparse.model import Report  # noqa: E402
from dsnparse.sources import imap as imapsource  # noqa: E402


def corpus_files() -> list[Path]:
    bsd = sorted((CORPUS / "sisimai" / "maildir" / "bsd").glob("*.eml"))
    nots = sorted((CORPUS / "sisimai" / "maildir" / "not").glob("*.eml"))
    exp = [json.loads(line) for line in (CORPUS / "not-bounces" / "expectations.jsonl")
           .read_text().splitlines() if line.strip()]
    others = [CORPUS / "not-bounces" / e["file"] for e in exp]
    # an IMAP server stores no zero-byte message: leave the empty files out
    return [f for f in bsd[::3] + nots + others if f.stat().st_size][:200]


@pytest.fixture(scope="session")
def server():
    try:
        srv = Server.start()
    except Unavailable as e:
        if os.environ.get("DSNPARSE_REQUIRE_IMAP"):
            pytest.fail(f"test IMAP server required but unavailable: {e}")
        pytest.skip(f"test IMAP server unavailable: {e}")
    yield srv
    srv.close()


@pytest.fixture
def box(server):
    """A fresh source folder plus Done/Other targets; yields a dict of names + a client."""
    name = "t" + uuid.uuid4().hex[:10]
    c = server.client()
    c.create_folder(name)
    yield {"folder": name, "done": name + "-done", "other": name + "-other", "client": c}
    try:
        c.logout()
    except Exception:
        pass


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="dsnimap-work-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def append(client, folder, files) -> dict[int, Path]:
    """APPEND each file; return UID → file (from the APPENDUID response, RFC 4315)."""
    uids = {}
    for f in files:
        resp = client.append(folder, f.read_bytes())
        m = re.search(rb"APPENDUID \d+ (\d+)", resp)
        uids[int(m.group(1))] = f
    return uids


def count(client, folder) -> int:
    if not client.folder_exists(folder):
        return 0
    return client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"]


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def uid_of(record) -> int:
    return int(record["source"].rsplit("UID=", 1)[1])


def cli_env(server, **extra):
    env = dict(os.environ, DSNPARSE_IMAP_PASSWORD=server.password,
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DSNPARSE_IMAP_TEST_KILL", None)
    env.update(extra)
    return env


def run_cli(server, args, **env):
    return subprocess.run([sys.executable, "-m", "dsnparse.imap_cli", *server.cli_args(), *args],
                          env=cli_env(server, **env), capture_output=True, text=True,
                          timeout=120)


def assert_once(records, uids):
    per_uid = Counter()
    for src in {r["source"] for r in records}:
        per_uid[int(src.rsplit("UID=", 1)[1])] += 1
    # one source per message ...
    assert set(per_uid) == set(uids), "messages missing from or foreign to the output"
    assert all(n == 1 for n in per_uid.values())
    # ... and its records appear as one contiguous group (no second copy of any record)
    seen, last = set(), None
    for r in records:
        if r["source"] != last:
            assert r["source"] not in seen, f"second group of records for {r['source']}"
            seen.add(r["source"])
            last = r["source"]


# --------------------------------------------------------------------------- the corpus

def test_corpus_200_filed_and_equal_to_dsnparse_parse(server, box, work, monkeypatch):
    files = corpus_files()
    assert len(files) == 200
    c = box["client"]
    uids = append(c, box["folder"], files)
    out = work / "out.jsonl"
    monkeypatch.setenv("DSNPARSE_IMAP_PASSWORD", server.password)
    rc = imap_cli.main(server.cli_args() + [
        "--folder", box["folder"], "--processed-folder", box["done"], "--other-folder",
        box["other"], "--state", str(work / "state.db"), "-o", str(out), "--batch-size", "40",
        "--no-progress"])
    assert rc == 0
    records = read_records(out)
    assert_once(records, uids)

    # the same files through `dsnparse parse`
    ref_out = work / "ref.jsonl"
    subprocess.run([sys.executable, "-m", "dsnparse", "parse", "--format", "jsonl", "-o",
                    str(ref_out), *map(str, files)], check=False, env=cli_env(server),
                   capture_output=True, timeout=120)
    by_file: dict[str, list[dict]] = {}
    for r in read_records(ref_out):
        by_file.setdefault(re.sub(r"#0$", "", r["source"]), []).append(r)
    got: dict[int, list[dict]] = {}
    for r in records:
        got.setdefault(uid_of(r), []).append(r)

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in ("source", "error")} for r in rs]
    diff = [f.name for uid, f in uids.items() if strip(got[uid]) != strip(by_file[str(f)])]
    assert diff == []
    kinds = {uid: got[uid][0]["kind"] for uid in uids}
    bounces = sum(1 for k in kinds.values() if k in ("bounce", "delay"))
    assert 0 < bounces < 200
    assert count(c, box["folder"]) == 0
    assert count(c, box["done"]) == bounces
    assert count(c, box["other"]) == 200 - bounces
    # nothing was marked \Seen by reading (BODY.PEEK[])
    c.select_folder(box["done"], readonly=True)
    assert c.search("SEEN") == []

    # a rerun finds nothing to do and writes nothing
    assert imap_cli.main(server.cli_args() + [
        "--folder", box["folder"], "--processed-folder", box["done"], "--other-folder",
        box["other"], "--state", str(work / "state.db"), "-o", str(out), "--no-progress"]) == 0
    assert len(read_records(out)) == len(records)


# --------------------------------------------------------------------------- kill -9



def small_set(n=24) -> list[Path]:
    files = corpus_files()
    return files[:n // 2] + files[-(n // 2):]        # bounces and non-bounces


@pytest.mark.parametrize("kills", [
    ["7:parsed"], ["9:written"], ["11:committed"], ["6:filed"],
    ["3:parsed", "5:written", "2:committed", "4:filed", "1:parsed"],
])
def test_sigkill_then_rerun_gives_exactly_one_record(server, box, work, kills):
    c = box["client"]
    uids = append(c, box["folder"], small_set())
    out = work / "out.jsonl"
    args = ["--folder", box["folder"], "--processed-folder", box["done"], "--other-folder",
            box["other"], "--state", str(work / "state.db"), "-o", str(out),
            "--batch-size", "5"]
    for k in kills:
        p = run_cli(server, args, DSNPARSE_IMAP_TEST_KILL=k)
        assert p.returncode == -signal.SIGKILL, p.stderr
    p = run_cli(server, args)
    assert p.returncode == 0, p.stderr
    assert_once(read_records(out), uids)
    assert count(c, box["folder"]) == 0
    assert count(c, box["done"]) + count(c, box["other"]) == len(uids)


def test_csv_output_resumes_without_duplicates(server, box, work):
    c = box["client"]
    uids = append(c, box["folder"], small_set(10))
    out = work / "out.csv"
    args = ["--folder", box["folder"], "--flag-only", "--state", str(work / "s.db"), "-o",
            str(out), "--format", "csv", "--batch-size", "3"]
    assert run_cli(server, args, DSNPARSE_IMAP_TEST_KILL="5:written").returncode == -9
    assert run_cli(server, args).returncode == 0
    import csv
    rows = list(csv.DictReader(out.open()))
    assert {uid_of(r) for r in rows} == set(uids)
    assert out.read_text().count("source,kind,") == 1      # one header
    assert_once(rows, uids)
    c.select_folder(box["folder"], readonly=True)
    flagged = set(c.search("FLAGGED"))
    kinds = {uid_of(r): r["kind"] for r in rows}
    assert flagged == {u for u, k in kinds.items() if k in ("bounce", "delay")}


# --------------------------------------------------------------------------- server restarts

def need_restart(server):
    if not server.dir:
        pytest.skip("server started outside the tests without IMAP_SERVER_DIR: cannot restart")


def test_one_shot_exits_1_when_server_stops_and_rerun_completes(server, box, work):
    need_restart(server)
    c = box["client"]
    uids = append(c, box["folder"], small_set(20))
    c.logout()
    out = work / "out.jsonl"
    o = server.options(folder=box["folder"], processed_folder=box["done"],
                       other_folder=box["other"], state_path=str(work / "s.db"), batch_size=5,
                       timeout=10)
    stopped = []

    def on_stored(report, source):
        if not stopped:
            stopped.append(source)
            server.stop()
    try:
        summary = imapsource.run(o, str(out), on_stored=on_stored)
    finally:
        server.restart()
    assert summary.exit_status == 1 and not summary.complete
    assert 0 < len({r["source"] for r in read_records(out)}) < len(uids)
    summary = imapsource.run(o, str(out))
    assert summary.exit_status == 0
    assert_once(read_records(out), uids)
    c = server.client()
    assert count(c, box["folder"]) == 0
    assert count(c, box["done"]) + count(c, box["other"]) == len(uids)
    c.logout()


def wait_for(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_watch_reconnects_after_server_restart(server, box, work):
    need_restart(server)
    files = small_set(10)
    out = work / "out.jsonl"
    o = server.options(folder=box["folder"], processed_folder=box["done"],
                       other_folder=box["other"], state_path=str(work / "s.db"), watch=True,
                       max_backoff=1.0, idle_timeout=20, timeout=10)
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.update(s=imapsource.run(o, str(out), stop=stop)))
    t.start()
    try:
        c = box["client"]
        first = append(c, box["folder"], files[:5])
        assert wait_for(lambda: len({r["source"] for r in read_records(out)}) == 5)
        c.logout()
        server.stop()
        time.sleep(1.5)
        server.restart()
        c = server.client()
        second = append(c, box["folder"], files[5:])
        assert wait_for(lambda: len({r["source"] for r in read_records(out)}) == 10)
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()
    assert_once(read_records(out), {**first, **second})
    assert count(c, box["folder"]) == 0
    c.logout()


def test_watch_sigterm_exits_cleanly(server, box, work):
    c = box["client"]
    files = small_set(6)
    out = work / "out.jsonl"
    p = subprocess.Popen(
        [sys.executable, "-m", "dsnparse.imap_cli", *server.cli_args(), "--folder",
         box["folder"], "--flag-only", "--state", str(work / "s.db"), "-o", str(out),
         "--watch"], env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        uids = append(c, box["folder"], files)
        assert wait_for(lambda: len({r["source"] for r in read_records(out)}) == len(files))
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "read 6" in err
    assert_once(read_records(out), uids)


# --------------------------------------------------------------------------- refusals

def folders_and_flags(c, folder):
    c.select_folder(folder, readonly=True)
    return (sorted(f[2] for f in c.list_folders()),
            c.get_flags(c.search("ALL")))


def test_wrong_password_exit_2_and_nothing_changed(server, box, work):
    c = box["client"]
    append(c, box["folder"], small_set(2))
    before = folders_and_flags(c, box["folder"])
    p = run_cli(server, ["--folder", box["folder"], "--processed-folder", box["done"],
                         "--state", str(work / "s.db"), "-o", str(work / "o.jsonl")],
                DSNPARSE_IMAP_PASSWORD="wrong")
    assert p.returncode == 2
    assert "login as" in p.stderr and "failed" in p.stderr
    assert folders_and_flags(c, box["folder"]) == before
    assert read_records(work / "o.jsonl") == []


def test_untrusted_certificate_exit_2_and_nothing_changed(server, box, work):
    c = box["client"]
    append(c, box["folder"], small_set(2))
    before = folders_and_flags(c, box["folder"])
    args = [a for a in server.cli_args()]
    i = args.index("--ca-file")
    del args[i:i + 2]
    p = subprocess.run([sys.executable, "-m", "dsnparse.imap_cli", *args, "--folder",
                        box["folder"], "--processed-folder", box["done"], "--state",
                        str(work / "s.db")], env=cli_env(server), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "certificate" in p.stderr and "not trusted" in p.stderr
    assert folders_and_flags(c, box["folder"]) == before


def test_password_never_on_command_line_or_config(server, work):
    p = run_cli(server, ["--password", "x"])
    assert p.returncode == 2
    conf = work / "c.yaml"
    conf.write_text("password: secret\n")
    p = run_cli(server, ["--config", str(conf)])
    assert p.returncode == 2 and "password may not be stored" in p.stderr


def test_starttls_and_config_file(server, box, work):
    c = box["client"]
    uids = append(c, box["folder"], small_set(4))
    conf = work / "c.toml"
    conf.write_text(f'host = "{server.host}"\nport = {server.port}\nuser = "{server.user}"\n'
                    f'ca-file = "{server.ca}"\nstarttls = true\nfolder = "{box["folder"]}"\n'
                    f'processed-folder = "{box["done"]}"\nstate = "{work / "s.db"}"\n')
    p = subprocess.run([sys.executable, "-m", "dsnparse.imap_cli", "--config", str(conf), "-o",
                        str(work / "o.jsonl")], env=cli_env(server), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert_once(read_records(work / "o.jsonl"), uids)


# --------------------------------------------------------------------------- other behaviour

def test_dry_run_changes_nothing(server, box, work):
    c = box["client"]
    uids = append(c, box["folder"], small_set(6))
    before = folders_and_flags(c, box["folder"])
    p = run_cli(server, ["--folder", box["folder"], "--processed-folder", box["done"],
                         "--other-folder", box["other"], "--state", str(work / "s.db"),
                         "-o", str(work / "o.jsonl"), "--dry-run"])
    assert p.returncode == 0, p.stderr
    assert_once(read_records(work / "o.jsonl"), uids)
    assert folders_and_flags(c, box["folder"]) == before
    assert not (work / "s.db").exists()


def test_parser_crash_recorded_once_left_in_place(server, box, work):
    c = box["client"]
    uids = append(c, box["folder"], small_set(6))
    bad = min(uids)
    from dsnparse.sources import parse_item

    def parse(source, data):
        if source.endswith(f";UID={bad}"):
            raise RecursionError("boom")
        return parse_item(source, data)
    o = server.options(folder=box["folder"], processed_folder=box["done"],
                       other_folder=box["other"], state_path=str(work / "s.db"))
    s = imapsource.run(o, str(work / "o.jsonl"), parse=parse)
    assert s.exit_status == 1 and s.errors == 1
    assert imapsource.run(o, str(work / "o.jsonl"), parse=parse).exit_status == 0
    records = read_records(work / "o.jsonl")
    assert_once(records, uids)
    crashed = [r for r in records if uid_of(r) == bad]
    assert crashed[0]["kind"] == "error" and "parser crashed" in crashed[0]["error"]
    c.select_folder(box["folder"], readonly=True)
    assert c.search("ALL") == [bad]


def test_uidvalidity_change_matches_on_message_id_and_hash(server, box, work):
    c = box["client"]
    files = small_set(6)
    append(c, box["folder"], files[:5])
    o = server.options(folder=box["folder"], flag_only=True, state_path=str(work / "s.db"))
    out = work / "o.jsonl"
    assert imapsource.run(o, str(out)).exit_status == 0
    assert len({r["source"] for r in read_records(out)}) == 5
    # the folder is recreated: new UIDVALIDITY, the same five messages and one new one
    c.select_folder("INBOX")
    old = c.folder_status(box["folder"], [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    c.delete_folder(box["folder"])
    c.create_folder(box["folder"])
    assert c.folder_status(box["folder"], [b"UIDVALIDITY"])[b"UIDVALIDITY"] != old
    uids = append(c, box["folder"], files)
    s = imapsource.run(o, str(out))
    assert s.exit_status == 0 and s.read == 1
    records = read_records(out)
    assert len({r["source"] for r in records}) == 6
    new = [r for r in records if f";UIDVALIDITY={old}/" not in r["source"]]
    assert {uid_of(r) for r in new} == {max(uids)}
    # the known messages are filed again in the new folder (flag-only: flagged)
    c.select_folder(box["folder"], readonly=True)
    bounces_before = {r["source"] for r in records if r["kind"] in ("bounce", "delay")}
    assert len(c.search("FLAGGED")) == len(bounces_before)


def test_limit_and_on_stored_hook(server, box, work):
    c = box["client"]
    uids = append(c, box["folder"], small_set(8))
    calls = []
    o = server.options(folder=box["folder"], processed_folder=box["done"],
                       other_folder=box["other"], state_path=str(work / "s.db"), limit=3)
    out = work / "o.jsonl"

    def hook(report, source):
        assert source in {r["source"] for r in read_records(out)}   # already durable
        calls.append(source)
    s = imapsource.run(o, str(out), on_stored=hook)
    assert s.read == 3 and len(calls) == 3
    assert count(c, box["folder"]) == 5
    imapsource.run(o, str(out), on_stored=hook)
    imapsource.run(o, str(out), on_stored=hook)
    assert len(calls) == 8
    assert_once(read_records(out), uids)


def test_imap_db_records_bounces_in_the_ledger(server, box, work):
    """`dsnparse imap --db F` records each stored bounce in the ledger (issue 5's hook)."""
    samples = REPO / "samples" / "rfc3464"
    append(box["client"], box["folder"], [samples / "01.eml", samples / "02.eml"])
    db = work / "ledger.sqlite3"
    env = cli_env(server)
    r = subprocess.run([sys.executable, "-m", "dsnparse", "imap", *server.cli_args(),
                        "--folder", box["folder"], "--processed-folder", box["done"],
                        "--state", str(work / "state.sqlite3"), "-o", str(work / "out.jsonl"),
                        "--db", str(db), "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from dsnparse.ledger import Ledger
    with Ledger(db) as led:
        assert led.is_suppressed("alice.nobody@receiver.example")      # 5.1.1, hard
        # 5.7.1 "delivery not authorized": hard in the code table, but the sender's fault
        assert not led.is_suppressed("carol@closed.example")
        assert [e.fault for e in led.events("carol@closed.example")] == ["sender"]
        assert not led.is_suppressed("bob@full.example")                # one soft bounce
        assert led.count_events() == 4                                 # alice, bob, carol, dave (delay)
    assert count(box["client"], box["done"]) == 2
