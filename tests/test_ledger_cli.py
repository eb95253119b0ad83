"""The ``suppressions`` command group, through a tiny parser that calls ``register``."""
import argparse
import csv
import io
import json

import pytest

from dsnparse import ledger_cli
from dsnparse.ledger import Ledger

T0 = 1_700_000_000.0
H = 3600.0


def run(argv):
    parser = argparse.ArgumentParser(prog="dsnparse")
    sub = parser.add_subparsers(dest="command")
    assert ledger_cli.register(sub) is None
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.delenv("DSNPARSE_DB", raising=False)
    monkeypatch.delenv("DSNPARSE_POLICY", raising=False)
    path = tmp_path / "cli.sqlite3"
    with Ledger(path) as led:
        led.record_event("hard@example.com", "bounce", at=T0, bounce_type="hard", code="511",
                         status="5.1.1", reason="user_unknown", message_id="b1@mx",
                         original_message_id="o1@s", campaign="spring", source="in/1.eml")
        for i, h in enumerate([0, 40, 80]):
            led.record_event("soft@example.com", "bounce", at=T0 + h * H, bounce_type="soft",
                             code="422", reason="mailbox_full", message_id=f"s{i}@mx",
                             original_message_id=f"os{i}@s")
        led.record_event("nocode@example.com", "bounce", at=T0 + 100 * H,
                         bounce_type="hard", code="911", message_id="n1@mx")
        led.record_event("fine@example.com", "bounce", at=T0, bounce_type="soft",
                         code="422", message_id="f1@mx")
    return str(path)


def test_check_exit_status(db, capsys):
    assert run(["suppressions", "check", "--db", db, "fine@example.com", "new@x.test"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ok fine@example.com (soft bounces counted: 1)", "ok new@x.test"]
    assert run(["suppressions", "check", "--db", db, "fine@example.com",
                "HARD@EXAMPLE.COM".lower()]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("suppressed hard@example.com basis=hard reason=user_unknown "
                      "since=2023-11-14T22:13:20Z code=511 status=5.1.1")
    assert run(["suppressions", "check", "--db", db, "not-an-address"]) == 2
    assert "not an address" in capsys.readouterr().err


def test_list_table_newest_first_with_bounces(db, capsys):
    assert run(["suppressions", "list", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [ln.split()[1] for ln in lines[1:] if not ln.startswith("    ")]
    assert heads == ["nocode@example.com", "soft@example.com", "hard@example.com"]
    i = next(n for n, ln in enumerate(lines) if "hard@example.com" in ln)
    assert lines[i + 1].split() == ["2023-11-14T22:13:20Z", "bounce", "5.1.1", "bounce",
                                    "<b1@mx>", "original", "<o1@s>", "campaign", "spring",
                                    "from", "in/1.eml"]
    assert lines[1].split()[-1] == "review_911"


def test_list_jsonl_and_csv(db, capsys):
    assert run(["suppressions", "list", "--db", db, "--format", "jsonl"]) == 0
    objs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    soft = objs[1]
    assert soft["address"] == "soft@example.com" and soft["basis"] == "soft"
    assert soft["reason"] == "mailbox_full" and soft["soft_count"] == 3
    assert [e["message_id"] for e in soft["events"]] == ["s0@mx", "s1@mx", "s2@mx"]
    assert run(["suppressions", "list", "--db", db, "--format", "csv", "--tag",
                "review_911"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["address"] for r in rows] == ["nocode@example.com"]
    assert rows[0]["bounces"] == "2023-11-19T02:13:20Z n1@mx"


def test_export_to_file_and_stdout(db, tmp_path, capsys):
    out = tmp_path / "sup.csv"
    assert run(["suppressions", "export", "--db", db, "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["email"] for r in rows] == ["nocode@example.com", "soft@example.com",
                                          "hard@example.com"]
    assert "3 suppressed" in capsys.readouterr().err
    assert run(["suppressions", "export", "--db", db, "--format", "jsonl"]) == 0
    objs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert objs[2] == {"email": "hard@example.com", "reason": "user_unknown",
                       "basis": "hard", "since": "2023-11-14T22:13:20Z", "code": "511",
                       "status": "5.1.1", "tags": []}


def test_remove_is_recorded(db, capsys):
    assert run(["suppressions", "remove", "--db", db, "--note", "ticket 12",
                "hard@example.com", "fine@example.com"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("removed hard@example.com (was basis=hard")
    assert out[1] == "removed fine@example.com (was not suppressed; removal recorded)"
    assert run(["suppressions", "check", "--db", db, "hard@example.com"]) == 0
    with Ledger(db) as led:
        ev = led.events("hard@example.com")[-1]
        assert (ev.kind, ev.note) == ("removed", "ticket 12")
        assert led.status("fine@example.com").soft_count == 0
    assert run(["suppressions", "remove", "--db", db, "bogus"]) == 2


def test_db_from_environment_and_policy_option(db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DSNPARSE_DB", db)
    assert run(["suppressions", "check", "hard@example.com"]) == 1
    pol = tmp_path / "p.yaml"
    pol.write_text("overrides:\n  - {code: '511', treat_as: soft}\n")
    assert run(["suppressions", "check", "--policy", str(pol), "hard@example.com"]) == 0
    pol.write_text("soft: {count: nope}\n")
    assert run(["suppressions", "check", "--policy", str(pol), "hard@example.com"]) == 2
    assert "soft.count" in capsys.readouterr().err


def test_group_without_subcommand_prints_help(capsys):
    assert run(["suppressions"]) == 2
    assert "list" in capsys.readouterr().err


def test_db_option_does_not_clobber_a_parent_value(tmp_path):
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    sub = parser.add_subparsers()
    ledger_cli.register(sub)
    args = parser.parse_args(["--db", "top.sqlite3", "suppressions", "check", "a@b.c"])
    assert args.db == "top.sqlite3"


def test_read_only_commands_on_a_missing_ledger_are_an_error(tmp_path, capsys):
    """A mistyped --db must not answer "mailable" from an empty ledger it just created."""
    missing = tmp_path / "typo.sqlite3"
    for cmd in (["check", "a@example.com"], ["list"], ["export", "--format", "csv"]):
        assert run(["suppressions", *cmd, "--db", str(missing)]) == 2
        assert "no ledger at" in capsys.readouterr().err
    assert not missing.exists()
    assert run(["suppressions", "remove", "--db", str(missing), "a@example.com"]) == 0


def test_parse_refuses_a_policy_without_a_ledger(tmp_path, capsys):
    # the policy decides what the ledger suppresses: given to `parse` without --db it would
    # be silently ignored, so it is a usage error (exit 2) and nothing is written
    from dsnparse.cli import main
    from conftest import SAMPLES

    pol = tmp_path / "p.yaml"
    pol.write_text("overrides:\n  - {code: '511', treat_as: soft}\n")
    out = tmp_path / "out.jsonl"
    sample = next((SAMPLES / "rfc3464").glob("*.eml"))
    assert main(["parse", "--policy", str(pol), "-o", str(out), str(sample)]) == 2
    assert "--policy needs --db" in capsys.readouterr().err
    assert not out.exists()
    db = tmp_path / "l.sqlite3"
    assert main(["parse", "--policy", str(pol), "--db", str(db), "-o", str(out), str(sample)]) == 0
    assert out.read_text().strip()
