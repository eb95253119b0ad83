"""`dsnparse imap --auth xoauth2|oauthbearer` against a real Dovecot whose OAuth2 passdb
validates JWTs locally (tests/dovecot_server.py, tokens from tests/jwt_mint.py).

The key pair is made here; Dovecot gets the public key, the tests sign the tokens.  What is
checked: a valid token logs in with either mechanism, from a token command (JSON output
too) or DSNPARSE_IMAP_TOKEN; an expired token, a token signed by another key or for another
user is refused with exit 2 and a clear message, and nothing changes on the server, in the
output or in the state file; a reconnect in --watch runs the token command again (the first
token has expired by then, so the run goes on only with the fresh one).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import jwt_mint
from dovecot_server import start_or_skip

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples" / "rfc3464").glob("*.eml"))
MINT = Path(__file__).resolve().parent / "jwt_mint.py"


@pytest.fixture(scope="module")
def oauth():
    key = jwt_mint.new_key()
    srv = start_or_skip(pop3=False, oauth2_public_pem=jwt_mint.public_pem(key),
                        users=["bounces", "other"])
    d = tempfile.mkdtemp(prefix="dsnoauth-")
    keyfile = Path(d) / "key.pem"
    keyfile.write_bytes(jwt_mint.private_pem(key))
    try:
        yield {"srv": srv, "key": key, "keyfile": keyfile}
    finally:
        srv.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def box(oauth):
    """A fresh folder of the user ``bounces`` holding the seven RFC 3464 samples."""
    srv = oauth["srv"]
    name = "o" + os.urandom(5).hex()
    c = srv.imap("bounces")
    c.create_folder(name)
    for f in SAMPLES:
        c.append(name, f.read_bytes())
    box = {"folder": name, "done": name + "-done", "client": c}
    yield box
    try:
        box["client"].logout()
    except Exception:
        pass


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="dsnoauth-w-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def token_command(oauth, ttl=300, user="bounces", count=None):
    cmd = [sys.executable, str(MINT), "--key", str(oauth["keyfile"]), "--user", user,
           "--ttl", str(ttl)]
    if count:
        cmd += ["--count", str(count)]
    return shlex.join(cmd)


def run_cli(oauth, box, work, extra, **env):
    srv = oauth["srv"]
    e = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.pop("DSNPARSE_IMAP_PASSWORD", None)
    e.pop("DSNPARSE_IMAP_TOKEN", None)
    e.update(env)
    args = ["--host", srv.host, "--port", str(srv.ports["imaps"]), "--user", "bounces",
            "--ca-file", srv.ca, "--folder", box["folder"], "--processed-folder", box["done"],
            "--state", str(work / "state.db"), "-o", str(work / "out.jsonl"), "--no-progress",
            *extra]
    return subprocess.run([sys.executable, "-m", "dsnparse.imap_cli", *args], env=e,
                          capture_output=True, text=True, timeout=120)


def server_view(c, folder):
    """Folders, and (UID, flags) of every message of ``folder``."""
    c.select_folder(folder, readonly=True)
    flags = c.get_flags(c.search("ALL"))
    c.close_folder()
    return sorted(f[2] for f in c.list_folders()), flags


def state_dump(path: Path):
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def kinds(box) -> dict:
    """The expected outcome from the samples' own expectations: how many are bounces."""
    exp = [json.loads(f.with_suffix(".expected.json").read_text()) for f in SAMPLES]
    return {"bounces": sum(e["kind"] in ("bounce", "delay") for e in exp), "all": len(exp)}


def test_xoauth2_with_token_command_processes_the_folder(oauth, box, work):
    count = work / "calls"
    p = run_cli(oauth, box, work, ["--auth", "xoauth2", "--oauth2-token-command",
                                   token_command(oauth, count=count)])
    assert p.returncode == 0, p.stderr
    want = kinds(box)
    srcs = {r["source"] for r in records(work / "out.jsonl")}
    assert len(srcs) == want["all"]
    c = box["client"]
    assert c.folder_status(box["done"], [b"MESSAGES"])[b"MESSAGES"] == want["bounces"]
    assert len(count.read_text().splitlines()) == 1          # one connection, one token


def test_oauthbearer_token_from_environment_and_json_output(oauth, box, work):
    token = jwt_mint.mint(oauth["key"], "bounces", 300)
    p = run_cli(oauth, box, work, ["--auth", "oauthbearer", "--flag-only", "--limit", "2"],
                DSNPARSE_IMAP_TOKEN=token)
    assert p.returncode == 0, p.stderr
    assert len({r["source"] for r in records(work / "out.jsonl")}) == 2
    # a command printing a JSON object (as token endpoints answer) works as well
    cmd = (f"{sys.executable} -c 'import json,sys; print(json.dumps("
           f"{{\"access_token\": sys.argv[1], \"expires_in\": 300}}))' {token}")
    p = run_cli(oauth, box, work, ["--auth", "oauthbearer", "--flag-only",
                                   "--oauth2-token-command", cmd])
    assert p.returncode == 0, p.stderr
    assert len({r["source"] for r in records(work / "out.jsonl")}) == len(SAMPLES)


def test_rejected_token_exit_2_and_nothing_changed(oauth, box, work):
    # an earlier run stored and filed two messages: state and output exist
    good = token_command(oauth)
    p = run_cli(oauth, box, work, ["--auth", "xoauth2", "--limit", "2",
                                   "--oauth2-token-command", good])
    assert p.returncode == 0, p.stderr
    c = box["client"]
    before = (server_view(c, box["folder"]), server_view(c, box["done"]),
              (work / "out.jsonl").read_bytes(), state_dump(work / "state.db"))
    tokens = {"expired": jwt_mint.mint(oauth["key"], "bounces", -120),
              "other-key": jwt_mint.mint(jwt_mint.new_key(), "bounces", 300),
              "other-user": jwt_mint.mint(oauth["key"], "other", 300)}
    for (case, token), mech in zip(tokens.items(), ("xoauth2", "oauthbearer", "xoauth2")):
        p = run_cli(oauth, box, work, ["--auth", mech], DSNPARSE_IMAP_TOKEN=token)
        assert p.returncode == 2, (case, mech, p.stderr)
        assert f"login as bounces on 127.0.0.1:{oauth['srv'].ports['imaps']} failed" \
            in p.stderr
        assert "access token may be expired" in p.stderr
        assert "Traceback" not in p.stderr
        forget_failures(oauth["srv"])
        c = box["client"] = oauth["srv"].imap("bounces")
        after = (server_view(c, box["folder"]), server_view(c, box["done"]),
                 (work / "out.jsonl").read_bytes(), state_dump(work / "state.db"))
        assert after == before


def forget_failures(srv):
    """Restart the server: Dovecot's anvil delays every later login from an IP after
    refused ones (2, 4, 8 … 15 s); a new anvil starts with a clean slate."""
    srv.stop()
    srv.run()


def test_token_command_failure_and_usage_errors(oauth, box, work):
    c = box["client"]
    before = server_view(c, box["folder"])
    p = run_cli(oauth, box, work, ["--auth", "xoauth2", "--oauth2-token-command",
                                   "echo 'token service down' >&2; exit 3"])
    assert p.returncode == 2
    assert "failed with exit status 3" in p.stderr and "token service down" in p.stderr
    p = run_cli(oauth, box, work, ["--auth", "xoauth2", "--oauth2-token-command",
                                   "echo 'not a token at all'"])
    assert p.returncode == 2 and "not a bearer token" in p.stderr
    p = run_cli(oauth, box, work, ["--auth", "xoauth2"])
    assert p.returncode == 2 and "DSNPARSE_IMAP_TOKEN" in p.stderr
    p = run_cli(oauth, box, work, ["--oauth2-token-command", "true"],
                DSNPARSE_IMAP_PASSWORD="secret")
    assert p.returncode == 2 and "xoauth2 or oauthbearer" in p.stderr
    assert server_view(c, box["folder"]) == before
    assert records(work / "out.jsonl") == []


def test_watch_reconnect_runs_the_token_command_again(oauth, box, work, caplog):
    """Tokens live 8 s.  After the server is restarted the first token has expired: the
    run logs in again only because the command is run again for the new connection.  (8 s:
    with 4 s it failed once on the loaded 2-core machine, cause not captured; the run's log
    is now part of every assertion message.)"""
    import logging

    from dsnparse.sources import imap as imapsource

    caplog.set_level(logging.INFO, logger="dsnparse.imap")
    srv = oauth["srv"]
    count = work / "calls"
    out = work / "out.jsonl"
    o = imapsource.ImapOptions(
        host=srv.host, port=srv.ports["imaps"], user="bounces", ca_file=srv.ca,
        folder=box["folder"], processed_folder=box["done"], state_path=str(work / "s.db"),
        watch=True, max_backoff=1.0, idle_timeout=20, timeout=10, auth="xoauth2",
        token_command=token_command(oauth, ttl=8, count=count))
    box["client"].logout()
    stop, result = threading.Event(), {}
    t = threading.Thread(target=lambda: result.update(s=imapsource.run(o, str(out),
                                                                       stop=stop)))
    t.start()
    try:
        assert wait_for(lambda: len({r["source"] for r in records(out)}) == len(SAMPLES)), \
            caplog.text
        srv.stop()
        time.sleep(9)                               # the first token is now expired
        srv.run()
        c = srv.imap("bounces")
        for f in SAMPLES[:3]:
            c.append(box["folder"], f.read_bytes())
        assert wait_for(lambda: len({r["source"] for r in records(out)}) == len(SAMPLES) + 3,
                        timeout=40), caplog.text
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()
    assert result["s"].exit_status == 0, caplog.text
    assert len(count.read_text().splitlines()) >= 2
    assert c.folder_status(box["folder"], [b"MESSAGES"])[b"MESSAGES"] == \
        len(SAMPLES) + 3 - c.folder_status(box["done"], [b"MESSAGES"])[b"MESSAGES"]
    c.select_folder(box["folder"], readonly=True)
    box["client"] = c


def wait_for(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_server_without_the_mechanism_exit_2_with_what_it_offers(work):
    """A server that does not announce AUTH=XOAUTH2 (RFC 3501 §7.2.1 CAPABILITY) is told
    apart from a refused token: the mechanisms it offers are named."""
    srv = start_or_skip(pop3=False, users=["bounces"])         # no OAuth2 passdb
    try:
        token = jwt_mint.mint(jwt_mint.new_key(), "bounces", 300)
        e = dict(os.environ, DSNPARSE_IMAP_TOKEN=token, PYTHONPATH=str(REPO))
        p = subprocess.run([sys.executable, "-m", "dsnparse.imap_cli", "--host", srv.host,
                            "--port", str(srv.ports["imaps"]), "--user", "bounces",
                            "--ca-file", srv.ca, "--auth", "xoauth2", "--state",
                            str(work / "s.db"), "-o", str(work / "o.jsonl")],
                           env=e, capture_output=True, text=True, timeout=120)
    finally:
        srv.close()
    assert p.returncode == 2
    assert "does not offer AUTH=XOAUTH2 (it offers: LOGIN, PLAIN)" in p.stderr, p.stderr
