"""Nothing lost silently (issue 13, item 5): unreadable directories, an mbox on standard
input, ``FILE#N`` sources given back, ledgers that do not exist, ``Ledger.check`` with one
string, source-routed recipients, misspelt policy keys, the output format of ``-o FILE``.

Everything runs for real: the CLI in a subprocess, real files, a real SQLite ledger, and
unreadable directories read by a process that permission bits really stop (see
:func:`unprivileged`)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, SAMPLES
import dsnparse
from dsnparse.errors import RuleError
from dsnparse.ledger import Ledger, LedgerError, normalize_address, split_route
from dsnparse.policy import load_policy
from dsnparse.sources import looks_like_mbox

S1 = (SAMPLES / "rfc3464" / "01.eml").read_bytes()   # one recipient
S2 = (SAMPLES / "rfc3464" / "02.eml").read_bytes()   # three recipients
NB = (SAMPLES / "not-bounce" / "01.eml").read_bytes()


def run_cli(*args, stdin=None, cwd=None, prefix=(), env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "dsnparse", *args], input=stdin,
                          cwd=cwd, capture_output=True, env=e, timeout=120)


def records(stdout: bytes) -> list:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def mbox_bytes(msgs) -> bytes:
    out = b""
    for m in msgs:
        body = m.replace(b"\nFrom ", b"\n>From ")
        out += (b"From MAILER-DAEMON Mon Mar  2 09:14:07 2026\n" + body
                + (b"" if body.endswith(b"\n") else b"\n") + b"\n")
    return out


# --------------------------------------------------------------------------- unreadable dirs

def _works(prefix) -> bool:
    try:
        r = subprocess.run([*prefix, sys.executable, "-c", "import dsnparse"],
                           capture_output=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def unprivileged() -> list:
    """A command prefix under which permission bits apply, or skip.

    Not root: nothing to do.  Root reads mode-000 directories, so the CLI is run as the
    real user ``nobody`` (``setpriv --reuid``) when that user can run this interpreter; an
    interpreter under a private home (pyenv in /root) cannot be, and then root runs it
    with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH removed from its bounding set
    (``setpriv --bounding-set``): the kernel then checks the mode bits for it as for any
    user.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv:
        for prefix in ([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
                       [setpriv, "--bounding-set=-dac_override,-dac_read_search",
                        "--inh-caps=-dac_override,-dac_read_search"]):
            if _works(prefix):
                return prefix
    pytest.skip("running as root and neither `setpriv --reuid=nobody` nor dropping "
                "CAP_DAC_OVERRIDE works here: cannot make a directory unreadable")


@pytest.fixture
def shared_tmp():
    """A temporary directory any user may enter (pytest's tmp_path is private to root)."""
    d = tempfile.mkdtemp(prefix="dsnparse-perm-")
    os.chmod(d, 0o755)
    yield d
    for root, dirs, _ in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
    shutil.rmtree(d, ignore_errors=True)


def _run_unprivileged(cwd, *args):
    cache = os.path.join(cwd, "cache")
    os.makedirs(cache, exist_ok=True)
    os.chmod(cache, 0o777)
    return run_cli(*args, cwd=cwd, prefix=unprivileged(),
                   env={"HOME": cwd, "DSNPARSE_CACHE_DIR": cache})


def test_unreadable_subdirectory_is_reported_counted_and_exit_1(shared_tmp):
    top = os.path.join(shared_tmp, "in")
    os.makedirs(os.path.join(top, "locked"))
    os.makedirs(os.path.join(top, "open"))
    with open(os.path.join(top, "open", "a.eml"), "wb") as f:
        f.write(S1)
    with open(os.path.join(top, "locked", "b.eml"), "wb") as f:
        f.write(S2)
    os.chmod(os.path.join(top, "locked"), 0)
    r = _run_unprivileged(shared_tmp, "parse", "in")
    assert r.returncode == 1, r.stderr
    recs = records(r.stdout)
    assert [(x["source"], x["kind"]) for x in recs] == [
        ("in/locked", "error"), ("in/open/a.eml", "bounce")]
    assert "Permission denied" in recs[0]["error"]
    err = r.stderr.decode()
    assert "in/locked: cannot read directory: Permission denied" in err
    assert "errors: 1 (unreadable: 1)" in err


def test_unreadable_top_directory_is_reported_not_an_output_failure(shared_tmp):
    os.makedirs(os.path.join(shared_tmp, "top"))
    with open(os.path.join(shared_tmp, "ok.eml"), "wb") as f:
        f.write(S1)
    os.chmod(os.path.join(shared_tmp, "top"), 0)
    r = _run_unprivileged(shared_tmp, "parse", "top", "ok.eml")
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode()
    assert "writing standard output failed" not in err
    assert "top: cannot read directory: Permission denied" in err
    assert [(x["source"], x["kind"]) for x in records(r.stdout)] == [
        ("top", "error"), ("ok.eml", "bounce")]      # the rest is still parsed
    assert "(unreadable: 1)" in err


def test_path_below_an_unsearchable_directory_is_reported(shared_tmp):
    os.makedirs(os.path.join(shared_tmp, "top", "inner"))
    os.chmod(os.path.join(shared_tmp, "top"), 0)
    r = _run_unprivileged(shared_tmp, "parse", "top/inner")
    assert r.returncode == 1
    assert b"top/inner: Permission denied" in r.stderr
    assert b"Traceback" not in r.stderr and b"writing" not in r.stderr


# --------------------------------------------------------------------------- standard input

def test_stdin_mbox_gives_every_message_with_stdin_format_mbox():
    box = mbox_bytes([S1, NB, S2])
    r = run_cli("parse", "-", "--stdin-format", "mbox", "-q", stdin=box)
    assert r.returncode == 0, r.stderr
    got = [(x["source"], x["kind"]) for x in records(r.stdout)]
    assert got == [("-#0", "bounce"), ("-#1", "not_bounce")] + [("-#2", "bounce")] * 3
    assert r.stderr == b""


def test_stdin_mbox_read_as_one_message_warns():
    r = run_cli("parse", "-", stdin=mbox_bytes([S1, NB, S2]))
    assert r.returncode == 0
    assert len({x["source"] for x in records(r.stdout)}) == 1
    err = r.stderr.decode()
    assert "looks like an mbox of 3 messages" in err and "--stdin-format mbox" in err


def test_one_message_with_a_from_line_does_not_warn():
    # an mbox of one message, and a body line "From " that follows no blank line
    one = mbox_bytes([S1])
    r = run_cli("parse", "-", "-q", stdin=one)
    assert r.returncode == 0 and r.stderr == b""
    assert looks_like_mbox(one) == 1
    assert looks_like_mbox(S1) == 0
    # a quoted "From " paragraph in a body is not followed by a header line
    body = one + b"\nFrom the desk of the postmaster\nthanks\n"
    assert looks_like_mbox(body) == 1


def test_bad_stdin_format_is_a_usage_error():
    r = run_cli("parse", "-", "--stdin-format", "maildir", stdin=S1)
    assert r.returncode == 2 and b"invalid choice" in r.stderr


# --------------------------------------------------------------------------- FILE#N sources

@pytest.fixture
def box(tmp_path):
    p = tmp_path / "box.mbox"
    p.write_bytes(mbox_bytes([S1, NB, S2]))
    return p


def test_parse_prints_sources_that_parse_takes_back(box, tmp_path):
    r = run_cli("parse", "box.mbox", "-q", cwd=tmp_path)
    first = records(r.stdout)
    for src in dict.fromkeys(x["source"] for x in first):
        again = run_cli("parse", src, "-q", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert records(again.stdout) == [x for x in first if x["source"] == src]


def test_out_of_range_and_bad_message_numbers(box, tmp_path):
    r = run_cli("parse", "box.mbox#3", cwd=tmp_path)
    assert r.returncode == 1
    assert b"box.mbox#3: box.mbox holds 3 message(s) (#0 to #2)" in r.stderr
    r = run_cli("parse", "box.mbox#first", cwd=tmp_path)
    assert r.returncode == 1 and b"not a message number" in r.stderr
    (tmp_path / "one.eml").write_bytes(S1)
    r = run_cli("parse", "one.eml#0", cwd=tmp_path)
    assert r.returncode == 1 and b"one.eml is not an mbox" in r.stderr


def test_a_real_file_with_a_hash_in_its_name_is_read_as_is(tmp_path):
    (tmp_path / "ticket#2.eml").write_bytes(S2)
    r = run_cli("parse", "ticket#2.eml", "-q", cwd=tmp_path)
    assert r.returncode == 0
    assert {x["source"] for x in records(r.stdout)} == {"ticket#2.eml"}
    assert len(records(r.stdout)) == 3
    r = run_cli("explain", "ticket#2.eml", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.decode().count("message: ticket#2.eml") == 1


def test_maildir_key_source_is_taken_back(tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1700000000.M1P1.host:2,S").write_bytes(S1)
    (md / "new" / "1700000001.M2P2.host").write_bytes(S2)
    r = run_cli("parse", "Maildir", "-q", cwd=tmp_path)
    srcs = list(dict.fromkeys(x["source"] for x in records(r.stdout)))
    assert srcs == ["Maildir#1700000001.M2P2.host", "Maildir#1700000000.M1P1.host"]
    r = run_cli("parse", srcs[1], "-q", cwd=tmp_path)
    assert r.returncode == 0
    assert [x["final_recipient"] for x in records(r.stdout)] == ["alice.nobody@receiver.example"]
    r = run_cli("parse", "Maildir#nope", cwd=tmp_path)
    assert r.returncode == 1 and b"no message with key 'nope'" in r.stderr


def test_explain_explains_every_message_of_an_mbox(box, tmp_path):
    r = run_cli("explain", "box.mbox", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert [ln for ln in out.splitlines() if ln.startswith("message:")] == [
        "message: box.mbox#0", "message: box.mbox#1", "message: box.mbox#2"]
    assert [ln.split(",")[0] for ln in out.splitlines() if ln.startswith("result:")] == [
        "result:  kind bounce", "result:  kind not_bounce", "result:  kind bounce"]


def test_explain_takes_one_message_of_an_mbox_and_stdin_mbox(box, tmp_path):
    r = run_cli("explain", "box.mbox#2", cwd=tmp_path)
    assert r.returncode == 0
    out = r.stdout.decode()
    assert out.count("message:") == 1 and "message: box.mbox#2" in out
    assert "3 verdict(s)" in out
    r = run_cli("explain", "-", "--stdin-format", "mbox", stdin=box.read_bytes())
    assert r.stdout.decode().count("message: -#") == 3
    r = run_cli("explain", "box.mbox#9", cwd=tmp_path)
    assert r.returncode == 1 and b"holds 3 message(s)" in r.stderr


# --------------------------------------------------------------------------- -o FILE format

@pytest.mark.parametrize("name,kind", [("v.csv", "csv"), ("v.CSV", "csv"), ("v.jsonl", "jsonl"),
                                       ("v.json", "jsonl"), ("v.ndjson", "jsonl"),
                                       ("v.txt", "table"), ("v.out", "jsonl")])
def test_output_format_follows_the_extension(tmp_path, name, kind):
    (tmp_path / "a.eml").write_bytes(S1)
    r = run_cli("parse", "a.eml", "-o", name, "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / name).read_text()
    if kind == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["final_recipient"] == "alice.nobody@receiver.example"
    elif kind == "jsonl":
        assert json.loads(text.splitlines()[0])["status"] == "5.1.1"
    else:
        assert text.split()[:3] == ["source", "kind", "final_recipient"]


def test_explicit_format_wins_over_the_extension(tmp_path):
    (tmp_path / "a.eml").write_bytes(S1)
    r = run_cli("parse", "a.eml", "-o", "v.csv", "-f", "jsonl", "-q", cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads((tmp_path / "v.csv").read_text())["code"] == "511"


def test_suppressions_export_format_follows_the_extension(tmp_path):
    db = tmp_path / "l.sqlite3"
    with Ledger(db) as led:
        led.record_event("gone@example.org", "bounce", at=1_770_000_000, bounce_type="hard",
                         code="511", status="5.1.1", message_id="m1@x")
    r = run_cli("suppressions", "export", "--db", str(db), "-o", "s.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "s.jsonl").read_text())["email"] == "gone@example.org"
    r = run_cli("suppressions", "export", "--db", str(db), "-o", "s.out", cwd=tmp_path)
    assert (tmp_path / "s.out").read_text().startswith("email,reason,basis")


# --------------------------------------------------------------------------- the ledger

def test_is_suppressed_on_a_missing_ledger_raises_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("DSNPARSE_DB", raising=False)
    typo = tmp_path / "sub" / "typo.sqlite3"
    with pytest.raises(dsnparse.LedgerError, match="no ledger at .*typo.sqlite3"):
        dsnparse.is_suppressed("bob@example.org", typo)
    assert not typo.exists() and not typo.parent.exists()
    with pytest.raises(LedgerError):
        Ledger(typo, create=False)
    assert not typo.parent.exists()
    # the default path too (no --db, no $DSNPARSE_DB)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(LedgerError):
        dsnparse.is_suppressed("bob@example.org")
    assert not (tmp_path / "xdg").exists()


def test_cli_check_on_a_missing_ledger_is_an_error_and_creates_nothing(tmp_path):
    r = run_cli("suppressions", "check", "--db", "typo.sqlite3", "bob@example.org",
                cwd=tmp_path)
    assert r.returncode == 2 and b"no ledger at typo.sqlite3" in r.stderr
    assert os.listdir(tmp_path) == []


def test_is_suppressed_reads_an_existing_ledger(tmp_path):
    db = tmp_path / "l.sqlite3"
    with Ledger(db) as led:
        led.record_event("gone@example.org", "bounce", at=1_770_000_000, bounce_type="hard",
                         code="511", message_id="m1@x")
    assert dsnparse.is_suppressed("gone@Example.ORG", db) is True
    assert dsnparse.is_suppressed("other@example.org", str(db)) is False


def test_check_and_remove_take_one_string_or_an_iterable(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as led:
        led.record_event("a@b.example", "bounce", at=1_770_000_000, bounce_type="hard",
                         code="511", message_id="m1@x")
        (one,) = led.check("a@b.example")
        assert one.address == "a@b.example" and one.suppressed
        assert [d.address for d in led.check(iter(["a@b.example", "c@d.example"]))] == [
            "a@b.example", "c@d.example"]
        assert [d.address for d in led.remove("a@b.example")] == ["a@b.example"]
        assert not led.is_suppressed("a@b.example")


@pytest.mark.parametrize("given,route,mailbox", [
    ("@relay.example:user@host.example", "@relay.example", "user@host.example"),
    ("<@a.example,@b.example:User@Host.Example>", "@a.example,@b.example",
     "User@Host.Example"),
    ("@a.example , @b.example : u@h.example", "@a.example,@b.example", "u@h.example"),
    ("user@host.example", None, "user@host.example"),
    ("@no-colon.example", None, "@no-colon.example"),
])
def test_split_route(given, route, mailbox):
    assert split_route(given) == (route, mailbox)


def test_source_route_is_linear_on_hostile_input():
    import time

    t = time.perf_counter()
    for s in ("@" + "a," * 20000, "@a" + " " * 50000 + "x", "@a" + ",@a" * 20000):
        assert split_route(s)[0] is None
    assert time.perf_counter() - t < 1.0


def test_source_routed_recipient_is_recorded_with_its_route(tmp_path):
    dsn = S1.replace(b"Final-Recipient: rfc822; alice.nobody@receiver.example",
                     b"Final-Recipient: rfc822; @relay.receiver.example:"
                     b"alice.nobody@Receiver.Example")
    assert dsn != S1
    (tmp_path / "r.eml").write_bytes(dsn)
    r = run_cli("parse", "r.eml", "--db", "l.sqlite3", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert normalize_address("@relay.receiver.example:alice.nobody@Receiver.Example") == \
        "alice.nobody@receiver.example"
    with Ledger(tmp_path / "l.sqlite3", create=False) as led:
        (ev,) = led.events("alice.nobody@receiver.example")
        assert ev.note == "source route @relay.receiver.example"
        assert ev.source == "r.eml" and ev.kind == "bounce"
        assert led.is_suppressed("alice.nobody@receiver.example")


# --------------------------------------------------------------------------- policy keys

@pytest.mark.parametrize("text,field", [
    ("soft:\n  cuont: 2\n", "soft.cuont"),
    ("hard:\n  reasn: x\n", "hard.reasn"),
    ("ledger:\n  campaign_header: [X-Id]\n", "ledger.campaign_header"),
    ("complaint:\n  supress: false\n", "complaint.supress"),
    ("code_911:\n  treat: soft\n", "code_911.treat"),
    ("delivered:\n  reset_soft_count: false\n", "delivered.reset_soft_count"),
])
def test_misspelt_nested_policy_key_is_rejected(tmp_path, text, field):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    with pytest.raises(RuleError) as e:
        load_policy(p)
    assert e.value.field == field
    section, key = field.split(".")
    assert f"unknown key {key!r} in section {section!r}" in str(e.value)
    assert str(p) in str(e.value)


def test_correct_nested_policy_keys_load(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("soft:\n  count: 2\n  min_span_hours: 24\ncomplaint:\n  suppress: false\n")
    pol = load_policy(p)
    assert (pol.soft_count, pol.soft_min_span, pol.complaint_suppress) == (2, 86400.0, False)


def test_cli_names_the_misspelt_policy_key(tmp_path):
    (tmp_path / "p.yaml").write_text("soft:\n  cuont: 2\n")
    (tmp_path / "a.eml").write_bytes(S1)
    r = run_cli("parse", "a.eml", "--db", "l.sqlite3", "--policy", "p.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert b"unknown key 'cuont' in section 'soft'" in r.stderr


def test_imap_output_format_follows_the_extension():
    import argparse

    from dsnparse import imap_cli

    parser = argparse.ArgumentParser()
    imap_cli.register(parser.add_subparsers())
    base = ["imap", "--host", "imap.example", "--user", "u"]
    assert imap_cli.settings(parser.parse_args(base + ["-o", "v.csv"]))["format"] == "csv"
    assert imap_cli.settings(parser.parse_args(base + ["-o", "v.jsonl"]))["format"] == "jsonl"
    assert imap_cli.settings(parser.parse_args(base + ["-o", "v.txt"]))["format"] == "jsonl"
    assert imap_cli.settings(parser.parse_args(
        base + ["-o", "v.csv", "--format", "jsonl"]))["format"] == "jsonl"


def test_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path):
    # `-o` truncates its file: given the input itself it destroyed the bounce before reading
    import shutil
    import subprocess
    import sys

    from conftest import SAMPLES

    src = sorted((SAMPLES / "rfc3464").glob("*.eml"))[0]
    box = tmp_path / "box.eml"
    shutil.copy(src, box)
    before = box.read_bytes()
    run = subprocess.run([sys.executable, "-m", "dsnparse", "parse", str(box), "-o", str(box)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "is the input" in run.stderr
    assert box.read_bytes() == before
    out = tmp_path / "out.jsonl"
    out.write_text("")
    run = subprocess.run([sys.executable, "-m", "dsnparse", "parse", str(tmp_path), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "inside the input directory" in run.stderr
    run = subprocess.run([sys.executable, "-m", "dsnparse", "parse", str(box), "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and out.read_text().count("\n") >= 1
