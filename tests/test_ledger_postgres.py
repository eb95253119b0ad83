"""The PostgreSQL ledger against a real PostgreSQL started here (tests/pg_server.py).

The key tests of the SQLite ledger (test_ledger_policy, test_ledger_store, test_ledger_fault)
run again on PostgreSQL; then migrations, the ``ledger`` commands, copies between backends,
lock waits, and 4 writer processes with readers and a writer killed with SIGKILL, checked
against the SQLite ledger fed the same records.

Skipped with a message when PostgreSQL cannot be started (not installed: run
``.ci/setup.d/10-postgresql.sh``); with ``DSNPARSE_CI=1`` that is a failure instead.
"""
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import test_ledger_fault
import test_ledger_policy
import test_ledger_store
from dsnparse.cli import main
from dsnparse.ledger import Ledger, LedgerError, SQLiteLedger, migrate
from dsnparse.policy import load_policy

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed "
                                                "(pip install 'dsnparse[postgres]')")
from dsnparse.ledger.postgres import PostgresLedger  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "tests" / "ledger_writer.py"
SAMPLES = ROOT / "samples"
T0 = 1_700_000_000.0


@pytest.fixture(scope="session")
def pg():
    from pg_server import PgServer, Unavailable

    try:
        server = PgServer.start()
    except Unavailable as e:
        if os.environ.get("DSNPARSE_CI") == "1":
            pytest.fail(f"DSNPARSE_CI=1 and the test PostgreSQL cannot start: {e}")
        pytest.skip(f"cannot start a test PostgreSQL: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_url(pg):
    """One migrated database for the quick tests (emptied before each)."""
    url = pg.create_database("shared")
    assert migrate(url) == (0, 1)
    return url


@pytest.fixture
def pg_url(shared_url):
    with psycopg.connect(shared_url, autocommit=True) as c:
        c.execute("TRUNCATE events, addresses, meta RESTART IDENTITY")
    return shared_url


@pytest.fixture
def fresh_url(pg):
    """An empty database of its own (no ledger yet)."""
    return pg.create_database()


# ------------------------------------------------------- the SQLite tests, on PostgreSQL

def _led_only(mod):
    return [(mod, name) for name, f in vars(mod).items()
            if name.startswith("test_") and inspect.isfunction(f)
            and list(inspect.signature(f).parameters) == ["led"]]


SHARED_TESTS = (_led_only(test_ledger_policy) + _led_only(test_ledger_store)
                + _led_only(test_ledger_fault))


@pytest.mark.parametrize("mod, name", SHARED_TESTS,
                         ids=[f"{m.__name__}.{n}" for m, n in SHARED_TESTS])
def test_sqlite_ledger_test_passes_on_postgres(mod, name, pg_url):
    with Ledger(pg_url, policy=load_policy()) as led:
        assert isinstance(led, PostgresLedger) and led.backend == "postgresql"
        getattr(mod, name)(led)


def test_enough_shared_tests_were_found():
    assert len(SHARED_TESTS) >= 25


def test_policy_change_recomputes_decisions(pg_url, tmp_path):
    with Ledger(pg_url, policy=load_policy()) as led:
        led.record_event("a@example.com", "bounce", at=T0, bounce_type="hard", code="911",
                         action="failed", message_id="b1")
        assert led.is_suppressed("a@example.com")           # 911 counts hard by default
    p = tmp_path / "p.yaml"
    p.write_text("code_911: {treat_as: soft}\n")
    with Ledger(pg_url, policy=load_policy(str(p))) as led:
        d = led.status("a@example.com")
        assert not d.suppressed and d.soft_count == 1


# ------------------------------------------------------------------------ migrations

def test_schema_is_created_only_by_migrate(fresh_url):
    with pytest.raises(LedgerError, match="ledger migrate"):
        Ledger(fresh_url)
    with pytest.raises(LedgerError, match="ledger migrate"):
        Ledger(fresh_url, create=False)
    assert migrate(fresh_url) == (0, 1)
    assert migrate(fresh_url) == (1, 1)
    with Ledger(fresh_url) as led:
        assert led.schema_version() == 1
        led.record_event("a@example.com", "bounce", bounce_type="hard", code="511")
    with psycopg.connect(fresh_url, autocommit=True) as c:
        idx = {r[0] for r in c.execute("SELECT indexname FROM pg_indexes WHERE tablename IN "
                                       "('events', 'addresses')")}
        assert {"events_event_key_key", "addresses_pkey", "events_address_at",
                "events_domain_at", "events_reason_at", "events_at",
                "addresses_suppressed_since"} <= idx
        assert c.execute("SELECT domain FROM events").fetchone()[0] == "example.com"
        c.execute("INSERT INTO dsnparse_schema(version) VALUES (2)")
    with pytest.raises(LedgerError, match="newer"):
        Ledger(fresh_url)
    with pytest.raises(LedgerError, match="newer"):
        migrate(fresh_url)


def test_concurrent_first_migrations_make_one_schema(fresh_url):
    results, errors = [], []

    def run():
        try:
            results.append(migrate(fresh_url))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results) == [(0, 1), (1, 1), (1, 1)]


def test_migrate_refuses_a_database_with_other_tables_of_those_names(fresh_url):
    with psycopg.connect(fresh_url, autocommit=True) as c:
        c.execute("CREATE TABLE events (x int)")
    with pytest.raises(LedgerError, match="not a dsnparse ledger"):
        migrate(fresh_url)


def test_unreachable_server_is_a_clear_error(pg):
    url = f"postgresql://dsnparse:secret@127.0.0.1:{pg.port}/no_such_db"
    with pytest.raises(LedgerError) as e:
        Ledger(url)
    assert "cannot connect" in str(e.value) and "secret" not in str(e.value)


# ------------------------------------------------------------------------ behaviour

def test_waits_for_a_held_row_lock_then_fails_cleanly(pg_url):
    with Ledger(pg_url) as led:
        led.record_event("a@example.com", "bounce", bounce_type="soft", code="422",
                         message_id="s1")
    holder = psycopg.connect(pg_url)
    try:
        holder.execute("SELECT * FROM addresses WHERE address='a@example.com' FOR UPDATE")
        with Ledger(pg_url, timeout=0.5) as led:
            with pytest.raises(LedgerError, match="locked"):
                led.record_event("a@example.com", "bounce", bounce_type="hard", code="511",
                                 message_id="h1")
            holder.rollback()
            assert led.record_event("a@example.com", "bounce", bounce_type="hard",
                                    code="511", message_id="h1")
            assert led.count_events() == 2 and led.is_suppressed("a@example.com")
    finally:
        holder.close()


def test_a_lost_connection_fails_one_call_then_reconnects(pg_url):
    with Ledger(pg_url) as led:
        pid = led.query("SELECT pg_backend_pid()")[0][0]
        with psycopg.connect(pg_url, autocommit=True) as c:
            assert c.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        with pytest.raises(LedgerError, match="connection"):
            led.record_event("a@example.com", "bounce", bounce_type="hard", code="511",
                             message_id="h1")
        assert led.record_event("a@example.com", "bounce", bounce_type="hard", code="511",
                                message_id="h1")
        assert led.query("SELECT pg_backend_pid()")[0][0] != pid
        assert led.count_events() == 1 and led.is_suppressed("a@example.com")


def test_text_postgres_cannot_store_gets_a_replacement_character(pg_url):
    with Ledger(pg_url) as led:
        assert led.record_event("a@example.com", "bounce", bounce_type="hard", code="511",
                                diagnostic_code="550 no\x00such \udcff user",
                                message_id="m\x00")
        [e] = led.events("a@example.com")
        assert e.diagnostic_code == "550 no\ufffdsuch \ufffd user"
        assert led.is_suppressed("a@example.com")


def test_commands_take_a_postgres_url_and_dsnparse_db(pg_url, tmp_path, capsys,
                                                      monkeypatch):
    """parse --db, suppressions and senders on PostgreSQL give what they give on SQLite."""
    monkeypatch.delenv("DSNPARSE_DB", raising=False)
    monkeypatch.delenv("DSNPARSE_POLICY", raising=False)
    lite = str(tmp_path / "l.sqlite3")
    outs = {}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    for db in (lite, pg_url):
        assert main(["parse", str(SAMPLES), "--db", db, "-q", "-o",
                     str(tmp_path / "out.jsonl")]) == 0
        assert main(["suppressions", "export", "--db", db, "--format", "jsonl"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        for r in rows:      # a bounce without a Date is recorded at the time of the run
            r["since"] = "(run time)" if r["since"] >= started else r["since"]
        outs[db] = sorted(rows, key=lambda r: (r["since"], r["email"]))
    assert outs[lite] == outs[pg_url] and len(outs[lite]) >= 10
    first = outs[lite][0]["email"]
    monkeypatch.setenv("DSNPARSE_DB", pg_url)
    assert main(["suppressions", "check", first]) == 1
    assert capsys.readouterr().out.startswith(f"suppressed {first} ")
    assert main(["ledger", "info", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "postgresql" and info["schema_version"] == 1
    with SQLiteLedger(lite) as led:
        assert info["events"] == led.count_events()
    monkeypatch.delenv("DSNPARSE_DB")
    for db in (lite, pg_url):
        assert main(["senders", "--db", db, "--format", "jsonl"]) == 0
        outs[db] = capsys.readouterr().out
    assert outs[lite] == outs[pg_url]


def _decisions(led):
    """What a suppression is, without the backend's event ids."""
    return sorted((d.address, d.suppressed, d.basis, d.reason, d.since, d.code, d.status,
                   d.tags, d.soft_count, d.removed_at) for d in led.check(
        [r[0] for r in led.query("SELECT address FROM addresses")]))


def test_copy_between_backends_is_idempotent_and_keeps_decisions(pg_url, tmp_path, capsys):
    lite, back = str(tmp_path / "a.sqlite3"), str(tmp_path / "b.sqlite3")
    assert main(["parse", str(SAMPLES), "--db", lite, "-q", "-o",
                 str(tmp_path / "o.jsonl")]) == 0
    with Ledger(lite) as led:
        removed = led.remove([d.address for d in led.suppressions(limit=2)], note="ok")
        n = led.count_events()
    assert len(removed) == 2
    assert main(["ledger", "copy", lite, pg_url]) == 0
    assert f"copied {n} event(s)" in capsys.readouterr().out
    assert main(["ledger", "copy", lite, pg_url]) == 0          # again: nothing new
    assert f": 0 new, {n} already there" in capsys.readouterr().out
    assert main(["ledger", "copy", pg_url, back]) == 0          # and back to a file
    capsys.readouterr()
    with Ledger(lite) as a, Ledger(pg_url) as p, Ledger(back) as b:
        assert a.count_events() == p.count_events() == b.count_events() == n
        assert _decisions(a) == _decisions(p) == _decisions(b)
        assert not p.is_suppressed(removed[0].address)
        keys = lambda led: sorted(r[0] for r in led.query("SELECT event_key FROM events"))
        assert keys(a) == keys(p) == keys(b)
    assert main(["ledger", "copy", lite, lite]) == 2
    assert "same ledger" in capsys.readouterr().err
    assert main(["ledger", "copy", lite, back, "--batch", "0"]) == 2
    assert "--batch must be at least 1" in capsys.readouterr().err
    nowhere = str(tmp_path / "missing.sqlite3")
    assert main(["ledger", "copy", nowhere, back]) == 2   # a missing SRC is not created
    assert "no ledger at" in capsys.readouterr().err and not os.path.exists(nowhere)


def test_ledger_migrate_command(fresh_url, tmp_path, capsys):
    assert main(["ledger", "migrate", "--db", fresh_url]) == 0
    assert capsys.readouterr().out.endswith("postgresql ledger schema version 0 -> 1\n")
    assert main(["ledger", "migrate", "--db", fresh_url]) == 0
    assert "version 1, up to date" in capsys.readouterr().out
    f = tmp_path / "new.sqlite3"
    assert main(["ledger", "migrate", "--db", str(f)]) == 0
    assert capsys.readouterr().out == f"{f}: sqlite ledger schema version 0 -> 2\n"


# ------------------------------------------------- several writers, readers, SIGKILL

def _writer(db, prefix, n, batch, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(WRITER), str(db), prefix, str(n), str(batch),
                             *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_four_writers_readers_and_a_killed_writer_match_sqlite(pg, tmp_path):
    from ledger_writer import records

    url = pg.create_database("conc")
    migrate(url)
    n = 600
    progress = tmp_path / "progress"
    # event by event (watchers: A, and D which is killed mid-run) and in batches (imports)
    plan = [("A", 1), ("B", 10), ("C", 100), ("D", 1)]
    procs = {p: _writer(url, p, n, b, *(["--progress", progress] if p == "D" else []))
             for p, b in plan}
    stop, seen, errors = threading.Event(), ([], []), []

    def reader(counts):
        try:
            with Ledger(url, timeout=60) as led:
                while not stop.is_set():
                    counts.append(led.count_events())
                    led.check([f"u{i}@example.com" for i in range(0, 1000, 7)])
                    list(led.suppressions(limit=50))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    readers = [threading.Thread(target=reader, args=(c,)) for c in seen]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = progress.read_text().split() if progress.exists() else []
            if len(done) >= 150 or procs["D"].poll() is not None:
                break
            time.sleep(0.01)
        os.kill(procs["D"].pid, signal.SIGKILL)
        procs["D"].communicate(timeout=60)
        assert procs["D"].returncode == -signal.SIGKILL
        committed = int(progress.read_text().split()[-1])
        for p in "ABC":
            out, err = procs[p].communicate(timeout=600)
            assert procs[p].returncode == 0, err
            assert out.strip() == str(n)
        with Ledger(url) as led:
            d_after_kill = led.query("SELECT count(*) FROM events WHERE source LIKE 'D/%'"
                                     )[0][0]
        assert committed <= d_after_kill < n          # nothing committed was lost
        rerun = _writer(url, "D", n, 1)
        out, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, err
        assert int(out) == n - d_after_kill           # only the missing ones were added
    finally:
        stop.set()
        for t in readers:
            t.join(60)
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert errors == []
    for counts in seen:                               # each reader saw the count only grow
        assert counts == sorted(counts) and len(counts) > 2
    with psycopg.connect(url) as c:
        assert c.execute("SELECT count(*), count(DISTINCT event_key), "
                         "count(DISTINCT message_id) FROM events").fetchone() == (4 * n,) * 3
    with SQLiteLedger(tmp_path / "same.sqlite3") as lite, Ledger(url) as led:
        for p, _ in plan:
            lite.record_records(list(records(p, n)))
        assert lite.count_events() == led.count_events() == 4 * n
        expected = _decisions(lite)
        assert _decisions(led) == expected            # same suppressions as SQLite
        assert sum(1 for d in expected if d[1]) > 100
        led.rebuild()                                 # and stored = recomputed
        assert _decisions(led) == expected


# ------------------------------------------------------------------ the report (issue 16)

def _report_events(led):
    """Bounces, delays and a complaint over three UTC days, several domains, faults,
    campaigns and a 911: what every section of the report reads."""
    day = 86_400
    rows = [
        ("gone@a.example", "bounce", T0, dict(bounce_type="hard", code="511", status="5.1.1",
                                               reason="user_unknown", fault="recipient",
                                               campaign="spring")),
        ("full@a.example", "bounce", T0 + 60, dict(bounce_type="soft", code="522",
                                                   status="5.2.2", reason="mailbox_full",
                                                   fault="mailbox", campaign="spring")),
        ("x@b.example", "bounce", T0 + day, dict(
            bounce_type="hard", code="571", status="5.7.26", reason="auth_failure",
            fault="sender", diagnostic_code="550 5.7.26 DMARC policy", campaign="summer")),
        ("y@b.example", "bounce", T0 + day + 5, dict(bounce_type="hard", code="911",
                                                     reason="undefined", fault="unknown")),
        ("slow@c.example", "delay", T0 + 2 * day, dict(status="4.4.7", reason="expired",
                                                       fault="network")),
        ("angry@c.example", "complaint", T0 + 2 * day + 1, dict(feedback_type="abuse")),
    ]
    for addr, kind, at, fields in rows:
        assert led.record_event(addr, kind, at=at, message_id=f"m-{addr}", **fields)


def test_report_figures_are_the_same_on_postgres_as_on_sqlite(pg_url, tmp_path):
    from dsnparse.report import Period, collect
    from dsnparse.report.queries import POSTGRES, SQLITE

    sqlite_path = tmp_path / "l.sqlite"
    figures = {}
    for location, dialect in ((str(sqlite_path), SQLITE), (pg_url, POSTGRES)):
        with Ledger(location, policy=load_policy()) as led:
            _report_events(led)
            for period in (Period(), Period(T0 + 86_400, None)):
                # on the ledger's own connection and on readers side by side
                one = collect(led.conn, period, dialect=dialect)
                assert collect(led.conn, period, dialect=dialect, connect=led.reader(),
                               workers=3) == one
                figures[(dialect.name, period)] = one
    for period in (Period(), Period(T0 + 86_400, None)):
        assert figures[("postgresql", period)] == figures[("sqlite", period)]
    whole = figures[("postgresql", Period())]
    assert whole.totals["bounce"] == 4 and whole.totals["complaint"] == 1
    assert [d for d, *_ in whole.domains] == ["a.example", "b.example"]
    assert {c for c, *_ in whole.campaigns} == {"spring", "summer"}
    assert figures[("postgresql", Period(T0 + 86_400, None))].totals["bounce"] == 2


def test_report_command_reads_a_postgres_ledger(pg_url, tmp_path):
    with Ledger(pg_url, policy=load_policy()) as led:
        _report_events(led)
    out = tmp_path / "r.html"
    assert main(["report", "--db", pg_url, "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "b.example" in html and "5.7.26" in html and "spring" in html
    assert "postgresql://" in html   # the source named in the header


@pytest.mark.parametrize("url", [
    "postgresql://u@127.0.0.1:1/x?password=S3cretPW",        # a query parameter (libpq)
    "postgresql://u:S3cretPW@[::1:5432/x",                  # malformed: libpq quotes it whole
    "postgresql://u:S3c%72etPW@127.0.0.1:1/x",              # percent-encoded in the URL
])
def test_no_password_in_any_message(url, capsys):
    # port 1 refuses at once; no PostgreSQL is needed for what is printed on failure
    for argv in (["report", "--db", url, "-o", os.devnull], ["ledger", "migrate", "--db", url],
                 ["suppressions", "list", "--db", url]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "S3cretPW" not in err and "S3c%72etPW" not in err and "***" in err, err
