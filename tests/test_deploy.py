"""The deployment files: systemd units, Dockerfile, example configuration.

* ``examples/systemd/*.service`` pass ``systemd-analyze verify`` with no warning about them
  (a misspelt key or value is only a warning there, so the output is checked, and a mangled
  copy shows that such a warning is seen), keep the hardening the README promises, write
  only under their ``StateDirectory``/``CacheDirectory`` (``ProtectSystem=strict``), and their
  command lines are accepted by dsnparse's own parser.
* ``Dockerfile``: a slim Python base, a non-root user, the wheel installed, ``dsnparse serve``
  as the command; its RUN steps are the README's "Docker" steps, in order.  No Docker engine
  runs here: the image is not built by the suite.
* ``examples/imap.toml`` is read by ``dsnparse imap``'s option reader into valid IMAP
  options; ``examples/policy.yaml`` loads and changes the ledger's decisions as it says.

``systemd-analyze`` comes with Debian's ``systemd`` package (``.ci/setup.d/30-postfix.sh``);
without it the unit checks are skipped with the reason, except under ``DSNPARSE_CI=1``.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
UNITS = sorted((EXAMPLES / "systemd").glob("*.service"))
PROGRAM = str(Path(sys.executable).parent / "dsnparse")


def _unit(path: Path) -> dict:
    """``key -> [values]`` of a unit file (all sections; comments and blank lines dropped)."""
    out: dict = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        k, _, v = line.partition("=")
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        why = ("systemd-analyze is not installed (Debian package systemd; "
               "bash .ci/setup.d/30-postfix.sh)")
        if os.environ.get("DSNPARSE_CI") == "1":
            pytest.fail(f"DSNPARSE_CI=1: {why}")
        pytest.skip(why)
    return exe


def _verify(exe: str, unit_text: str, name: str, tmp_path: Path) -> tuple[int, list[str]]:
    """Run ``systemd-analyze verify`` on a copy whose program is this checkout's dsnparse
    (verify checks that ExecStart's program exists); return its status and the output lines
    about this unit."""
    f = tmp_path / name
    f.write_text(unit_text.replace("/usr/local/bin/dsnparse", PROGRAM))
    r = subprocess.run([exe, "verify", str(f)], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    about = [ln for ln in (r.stdout + r.stderr).splitlines() if name in ln]
    return r.returncode, about


def test_there_are_units_for_imap_and_serve():
    assert [u.name for u in UNITS] == ["dsnparse-imap.service", "dsnparse-serve.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_passes_systemd_analyze_verify(unit, tmp_path):
    exe = _analyze()
    status, about = _verify(exe, unit.read_text(), unit.name, tmp_path)
    assert status == 0 and about == [], about
    # the check sees a misspelt key (systemd only warns about it)
    status, about = _verify(exe, unit.read_text().replace("ProtectSystem=", "ProtectSystm="),
                            unit.name, tmp_path)
    assert any("ProtectSystm" in ln for ln in about), about


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_is_hardened_and_writes_only_its_state(unit):
    u = _unit(unit)
    for key, value in (("DynamicUser", "yes"), ("ProtectSystem", "strict"),
                       ("StateDirectory", "dsnparse"), ("CacheDirectory", "dsnparse"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", ""),
                       ("RestrictSUIDSGID", "yes"), ("SystemCallArchitectures", "native")):
        assert u.get(key) == [value], (key, u.get(key))
    assert "@system-service" in u["SystemCallFilter"]
    (cmd,) = u["ExecStart"]
    argv = shlex.split(cmd)
    written = [argv[i + 1] for i, a in enumerate(argv[:-1])
               if a in ("--state", "--output", "-o", "--db")]
    assert written, argv
    # ProtectSystem=strict: everything but the State/Cache directories is read-only
    assert all(p.startswith("/var/lib/dsnparse/") for p in written), written
    (env,) = [e for e in u["Environment"] if e.startswith("DSNPARSE_CACHE_DIR=")]
    assert env == "DSNPARSE_CACHE_DIR=/var/cache/dsnparse"
    # secrets come from a root-only environment file, not the command line
    assert u["EnvironmentFile"][0].startswith("/etc/dsnparse/")
    assert not re.search(r"password|token", cmd, re.I)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_command_line_is_accepted_by_dsnparse(unit):
    from dsnparse.cli import build_parser

    (cmd,) = _unit(unit)["ExecStart"]
    argv = shlex.split(cmd)[1:]
    parser = build_parser(argv)
    sub = next(a for a in parser._actions if a.dest == "command")
    if argv[0] not in sub.choices or not sub.choices[argv[0]]._defaults.get("func"):
        pytest.skip(f"`dsnparse {argv[0]}` is not in this build (its branch is merged "
                    f"separately); the unit's command line is checked once it is")
    args = parser.parse_args(argv)
    assert args.command == argv[0]


# --------------------------------------------------------------------------- Docker

def _dockerfile_runs() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [" ".join(m.split()) for m in re.findall(r"^RUN\s+(.+)$", text, re.M)]


def _readme_docker_steps() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^### Docker\n(.*?)(?=^## |^### )", readme, re.M | re.S)
    assert m, "README.md has no '### Docker' section"
    blocks = re.findall(r"```sh\n(.*?)```", m.group(1), re.S)
    steps = []
    for block in blocks:
        if "# the image's build steps" not in block:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if line and not line.startswith("#"):
                steps.append(line)
    return steps


def test_dockerfile_build_steps_are_the_readme_steps():
    runs = _dockerfile_runs()
    assert runs == _readme_docker_steps()
    assert any("python -m build --wheel" in r for r in runs)          # the wheel is built
    assert any(re.search(r"pip install .*dsnparse-\*\.whl", r) for r in runs)  # and installed


def test_dockerfile_is_slim_non_root_and_serves():
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:3\.1[0-3]-slim", b) for b in bases), bases
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    cmd = re.findall(r"^CMD\s+(\[.*\])$", text, re.M)
    import json

    assert json.loads(cmd[-1])[:2] == ["dsnparse", "serve"]
    # everything the build copies is in the wheel's inputs, not the local virtualenvs
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignore and ".git" in ignore


# --------------------------------------------------------------------------- examples

def test_example_imap_toml_gives_valid_imap_options():
    import argparse

    from dsnparse import imap_cli

    path = str(EXAMPLES / "imap.toml")
    conf = imap_cli._load_config(path)       # unknown keys and a password are errors there
    assert conf["host"] == "imap.example.org" and conf["user"] == "bounces@example.org"
    p = argparse.ArgumentParser()
    imap_cli.add_arguments(p)
    s = imap_cli.settings(p.parse_args(["--config", path]))
    opts = imap_cli.build_options(s, "not-a-real-password")
    assert (opts.host, opts.security, opts.folder, opts.processed_folder, opts.other_folder) \
        == ("imap.example.org", "ssl", "INBOX", "Processed", "Not-bounces")
    assert s["output"] == "/var/lib/dsnparse/verdicts.jsonl" and s["format"] == "jsonl"
    # the unit's own options agree with the file's (same state file, same output)
    (cmd,) = _unit(EXAMPLES / "systemd" / "dsnparse-imap.service")["ExecStart"]
    argv = shlex.split(cmd)
    assert argv[argv.index("--state") + 1] == s["state"]
    assert argv[argv.index("--output") + 1] == s["output"]


def test_example_policy_changes_the_decisions_it_says(tmp_path):
    from dsnparse.ledger import Ledger
    from dsnparse.policy import load_policy

    pol = load_policy(EXAMPLES / "policy.yaml")
    assert (pol.soft_count, pol.soft_min_span, pol.code_911_treat_as) == (5, 168 * 3600, "soft")
    assert pol.campaign_headers == ("X-Campaign-Id", "List-Id")
    # a permanent mailbox failure (5.2.1 disabled, RFC 3463) is hard here, soft by default
    for policy, suppressed in ((load_policy(), False), (pol, True)):
        with Ledger(tmp_path / f"{suppressed}.sqlite3", policy=policy) as led:
            led.record_event("carol@example.com", "bounce", status="5.2.1", code="521",
                             reason="mailbox_disabled", fault="mailbox", action="failed",
                             message_id="m1@x")
            assert led.is_suppressed("carol@example.com") is suppressed
    # 5.7.1 (delivery not authorized, RFC 3463) counts as soft and is tagged policy_block
    with Ledger(tmp_path / "o.sqlite3", policy=pol) as led:
        for i in range(5):
            led.record_event("dan@example.com", "bounce", status="5.7.1", code="571",
                             fault="recipient", action="failed", message_id=f"b{i}@x",
                             original_message_id=f"o{i}@x", at=1_700_000_000 + i * 2 * 86400)
        d = led.status("dan@example.com")
        assert d.suppressed and "policy_block" in d.tags and d.soft_count == 5
