"""`dsnparse imap` against a real Dovecot on loopback (see tests/imap_server.py).

Every test works in folders of its own (a random name under the test user), so the one
server of the session can be shared.  Crash tests run the command as a subprocess and use
the ``DSNPARSE_IMAP_TEST_KILL=N:POINT`` hook of :mod:`dsnparse.sources.imap`.
"""
from __future__ import annotations

import hashlib
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


# --------------------------------------------------------------------------- issue 18

def recreate(c, folder) -> int:
    """Delete and re-create ``folder`` (Dovecot gives it a new UIDVALIDITY); return the old."""
    c.select_folder("INBOX")
    old = c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    c.delete_folder(folder)
    c.create_folder(folder)
    assert c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"] != old
    return old


def assert_once_per_file(records, by_source: dict[str, Path], files):
    """Each file has exactly one contiguous group of records, under whichever URL."""
    groups, last = [], None
    for r in records:
        if r["source"] != last:
            groups.append(by_source[r["source"]])
            last = r["source"]
    per_file = Counter(groups)
    assert set(per_file) == set(files), "messages missing from or foreign to the output"
    assert [f.name for f, n in per_file.items() if n > 1] == []


def test_uidvalidity_change_then_interrupted_runs_give_one_record_each(server, box, work):
    """Issue 18 finding 2: rematching must go on after the first batch under the new
    UIDVALIDITY, through --limit, kills between and inside batches, until the folder is done."""
    c = box["client"]
    files = small_set(24)
    old_uids = append(c, box["folder"], files[:16])
    out = work / "o.jsonl"
    args = ["--folder", box["folder"], "--flag-only", "--state", str(work / "s.db"), "-o",
            str(out), "--batch-size", "5", "--no-progress"]
    assert run_cli(server, args).returncode == 0
    old_v = recreate(c, box["folder"])
    new_uids = append(c, box["folder"], files)          # the same 16 and 8 new ones
    new_v = c.folder_status(box["folder"], [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    o = server.options(folder=box["folder"])
    by_source = {**{o.source(old_v, u): f for u, f in old_uids.items()},
                 **{o.source(new_v, u): f for u, f in new_uids.items()}}

    assert run_cli(server, args + ["--limit", "3"]).returncode == 0
    for kill in ["4:filed", "3:written", "7:committed", "2:parsed"]:
        p = run_cli(server, args, DSNPARSE_IMAP_TEST_KILL=kill)
        assert p.returncode == -signal.SIGKILL, (kill, p.stderr)
    p = run_cli(server, args)
    assert p.returncode == 0, p.stderr
    records = read_records(out)
    assert_once_per_file(records, by_source, files)
    # only the 8 new messages were parsed under the new UIDVALIDITY
    assert {by_source[r["source"]] for r in records if f"UIDVALIDITY={new_v}/" in r["source"]
            } == set(files[16:])
    # every bounce is filed (flagged) in the re-created folder, known or new
    kind = {by_source[r["source"]]: r["kind"] for r in records}
    c.select_folder(box["folder"], readonly=True)
    assert {new_uids[u] for u in c.search("FLAGGED")} == {
        f for f in files if kind[f] in ("bounce", "delay")}
    # the folder is now reconciled: a rerun reads nothing and writes nothing
    p = run_cli(server, args)
    assert p.returncode == 0 and "read 0," in p.stderr, p.stderr
    assert read_records(out) == records


@pytest.fixture
def tiny_disk():
    """A 2 MiB tmpfs of its own (needs root / CAP_SYS_ADMIN, else the test is skipped)."""
    d = Path(tempfile.mkdtemp(prefix="dsnimap-tmpfs-"))
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if p.returncode:
        d.rmdir()
        pytest.skip(f"cannot mount a tmpfs for the full-disk tests: {p.stderr.strip()} "
                    "(needs root or CAP_SYS_ADMIN)")
    yield d
    if subprocess.run(["umount", str(d)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)   # still open: detach
    d.rmdir()


def fill_up(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system says ENOSPC; return the file."""
    import errno
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as f:
        for size in (65536, 4096, 256, 1):
            try:
                while True:
                    f.write(b"x" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


def complete_lines(path: Path) -> list[dict]:
    """The records of the complete lines (a writer may be mid-line while we read)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def assert_filed_iff_stored(c, box, uids, records):
    """A message has left the source folder exactly when its record is in the output."""
    stored = {uid_of(r) for r in records}
    c.select_folder(box["folder"], readonly=True)
    left = set(c.search("ALL"))
    c.close_folder()                # STATUS below is not meant for the selected folder
    assert stored == set(uids) - left
    assert count(c, box["done"]) + count(c, box["other"]) == len(stored)


@pytest.mark.parametrize("state_on_full_disk", [False, True])
def test_full_disk_one_shot_stops_with_exit_1_and_nothing_lost(server, box, work, tiny_disk,
                                                               state_on_full_disk):
    """Issue 18 finding 3: ENOSPC is not a lost connection.  The output goes back to its
    last committed record (no partial line), only stored messages are moved, exit 1; a rerun
    with room again finishes with exactly one record per message."""
    c = box["client"]
    uids = append(c, box["folder"], small_set(24))
    out = tiny_disk / "o.jsonl"
    state = (tiny_disk if state_on_full_disk else work) / "s.db"
    o = server.options(folder=box["folder"], processed_folder=box["done"],
                       other_folder=box["other"], state_path=str(state), batch_size=5)
    filler, calls = [], []
    # output on the full disk: fill it once the first batch is stored (a later batch cannot
    # be written); state there too: fill it while the second batch is being stored (its
    # records are written, its state commit fails, so they must be taken back)
    fill_at = 6 if state_on_full_disk else 1

    def on_stored(report, source):
        calls.append(source)
        if len(calls) == fill_at:
            filler.append(fill_up(tiny_disk))
    summary = imapsource.run(o, str(out), on_stored=on_stored)
    assert summary.exit_status == 1 and not summary.complete and summary.io_error
    assert "No space left on device" in summary.io_error or "full" in summary.io_error
    text = out.read_text()
    assert text.endswith("\n")
    records = read_records(out)                     # every line is a whole record
    assert 0 < len({r["source"] for r in records}) < len(uids)
    assert_once(records, {uid_of(r) for r in records})
    assert_filed_iff_stored(c, box, uids, records)

    filler[0].unlink()
    assert imapsource.run(o, str(out)).exit_status == 0
    assert_once(read_records(out), uids)
    assert count(c, box["folder"]) == 0


def test_full_disk_watch_backs_off_without_duplicates(server, box, work, tiny_disk, caplog):
    """In --watch a full disk makes the run wait and retry the batch (not reconnect and
    re-process on top of a partial record); once there is room it finishes exactly once."""
    import logging
    caplog.set_level(logging.WARNING, logger="dsnparse.imap")
    c = box["client"]
    uids = append(c, box["folder"], small_set(20))
    out = tiny_disk / "o.jsonl"
    o = server.options(folder=box["folder"], processed_folder=box["done"],
                       other_folder=box["other"], state_path=str(work / "s.db"),
                       batch_size=4, watch=True, max_backoff=0.5, idle_timeout=5, timeout=10)
    filler, stop, result = [], threading.Event(), {}

    def on_stored(report, source):
        if not filler:
            filler.append(fill_up(tiny_disk))
    t = threading.Thread(target=lambda: result.update(
        s=imapsource.run(o, str(out), stop=stop, on_stored=on_stored)))
    t.start()
    try:
        assert wait_for(lambda: caplog.text.count("nothing of that batch was filed") >= 3)
        records = complete_lines(out)
        assert_once(records, {uid_of(r) for r in records})
        assert "connection to" not in caplog.text           # not taken for a network error
        c2 = server.client()
        assert_filed_iff_stored(c2, box, uids, records)
        c2.logout()
        filler[0].unlink()
        assert wait_for(lambda: len({r["source"] for r in complete_lines(out)}) == len(uids))
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()
    assert result["s"].exit_status == 0
    assert_once(read_records(out), uids)
    assert "writing works again" in caplog.text
    assert count(c, box["folder"]) == 0


@pytest.fixture(scope="module")
def server_without_move():
    try:
        srv = Server.start_without(b"MOVE")
    except Unavailable as e:
        if os.environ.get("DSNPARSE_REQUIRE_IMAP"):
            pytest.fail(f"test IMAP server without MOVE required but unavailable: {e}")
        pytest.skip(f"test IMAP server without MOVE unavailable: {e}")
    yield srv
    srv.close()


@pytest.mark.parametrize("kills", [["3:copied"], ["2:copied", "7:copied", "4:filed"]])
def test_copy_expunge_fallback_killed_between_copy_and_expunge_copies_once(
        server_without_move, work, kills):
    """Issue 18 finding 6: without MOVE a kill between UID COPY and UID EXPUNGE must not
    leave a second copy in the target folder on the rerun (the target is checked first)."""
    server = server_without_move
    c = server.client()
    assert b"MOVE" not in c.capabilities() and b"UIDPLUS" in c.capabilities()
    box = {"folder": "t" + uuid.uuid4().hex[:10]}
    box.update(done=box["folder"] + "-done", other=box["folder"] + "-other")
    c.create_folder(box["folder"])
    files = small_set(16)
    files.append(files[0])                      # two identical messages: two copies wanted
    uids = append(c, box["folder"], files)
    c.select_folder(box["folder"], readonly=True)
    digest = {u: hashlib.sha256(d[b"BODY[]"]).hexdigest()          # as the server stores it
              for u, d in c.fetch(list(uids), ["BODY.PEEK[]"]).items()}
    c.close_folder()
    out = work / "o.jsonl"
    args = ["--folder", box["folder"], "--processed-folder", box["done"], "--other-folder",
            box["other"], "--state", str(work / "s.db"), "-o", str(out), "--batch-size", "4",
            "--no-progress"]
    for k in kills:
        p = run_cli(server, args, DSNPARSE_IMAP_TEST_KILL=k)
        assert p.returncode == -signal.SIGKILL, (k, p.stderr)
    p = run_cli(server, args)
    assert p.returncode == 0, p.stderr
    records = read_records(out)
    assert_once(records, uids)
    kind = {uid_of(r): r["kind"] for r in records}
    bounces = [u for u in uids if kind[u] in ("bounce", "delay")]
    assert count(c, box["folder"]) == 0
    assert count(c, box["done"]) == len(bounces)
    assert count(c, box["other"]) == len(uids) - len(bounces)
    # the target holds each message exactly as often as the source did
    c.select_folder(box["done"], readonly=True)
    got = Counter(hashlib.sha256(d[b"BODY[]"]).hexdigest()
                  for d in c.fetch(c.search("ALL"), ["BODY.PEEK[]"]).values())
    want = Counter(digest[u] for u in bounces)
    assert got == want
    c.logout()


def test_two_state_files_cannot_share_one_output(server, box, work):
    """Issue 18 finding 6: a second state file on the same output is refused (exit 2,
    nothing changed) instead of truncating the first one's records later."""
    c = box["client"]
    uids = append(c, box["folder"], small_set(6))
    out = work / "o.jsonl"
    common = ["--flag-only", "-o", str(out), "--batch-size", "2", "--no-progress"]
    p = run_cli(server, ["--folder", box["folder"], "--state", str(work / "a.db"), *common],
                DSNPARSE_IMAP_TEST_KILL="3:written")      # leaves an uncommitted tail
    assert p.returncode == -signal.SIGKILL
    before = out.read_bytes()
    other = box["folder"] + "-b"
    c.create_folder(other)
    append(c, other, small_set(4))
    p = run_cli(server, ["--folder", other, "--state", str(work / "b.db"), *common])
    assert p.returncode == 2 and "belongs to the dsnparse imap state file" in p.stderr
    assert out.read_bytes() == before
    c.select_folder(other, readonly=True)
    assert c.search("FLAGGED") == []
    c.close_folder()
    p = run_cli(server, ["--folder", box["folder"], "--state", str(work / "a.db"), *common])
    assert p.returncode == 0, p.stderr
    assert_once(read_records(out), uids)
