"""Packaging and supported Pythons (issue 13, items 7 and 8): flanker works on every
supported Python (3.13 removed the cgi and imghdr modules it imports), the fallback when it
cannot be imported is real and says so, the wheel ships py.typed (PEP 561), LICENSE matches
pyproject, LedgerError is exported, and .ci/run picks the interpreters README names."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_supported_python_range_is_declared():
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    assert sys.version_info >= (3, 10)


@pytest.mark.filterwarnings("ignore:'(cgi|imghdr)' is deprecated:DeprecationWarning")
def test_flanker_reads_display_names_on_this_python():
    """On 3.13 without legacy-cgi/standard-imghdr the import fails and this gives None."""
    import cgi  # noqa: F401 - stdlib before 3.13, legacy-cgi from 3.13 on
    import imghdr  # noqa: F401 - stdlib before 3.13, standard-imghdr from 3.13 on

    from dsnparse.addresses import flanker_address

    assert flanker_address('"Smith, Bob" <Bob@Example.org>') == "Bob@example.org"
    assert flanker_address("bob (the builder) <bob@example.org>") == "bob@example.org"


def test_python_313_dependencies_are_declared_for_313_only():
    deps = {d.split(";")[0].split(">=")[0].strip(): d for d in PYPROJECT["project"]["dependencies"]}
    for name in ("legacy-cgi", "standard-imghdr"):
        assert name in deps, name
        marker = deps[name].split(";", 1)[1].replace('"', "'").split()
        assert marker == ["python_version", ">=", "'3.13'"], deps[name]


def test_without_flanker_addresses_fall_back_with_a_warning():
    """The fallback path, run for real in a fresh interpreter where importing flanker fails
    (``sys.modules[name] = None`` is Python's documented way to make an import fail)."""
    code = (
        "import sys, logging; sys.modules['flanker'] = None; logging.basicConfig()\n"
        "from dsnparse.ledger import normalize_address as n\n"
        "print(n('\"Bob B\" <Bob@Example.COM>'), n('Bob B'), n('x@Y.example'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Bob@example.com", "None", "x@y.example"]
    assert r.stderr.count("flanker cannot be imported") == 1
    assert "legacy-cgi" in r.stderr


def test_ledger_error_is_exported_without_importing_sqlite():
    code = ("import sys, dsnparse\n"
            "from dsnparse import LedgerError, DsnparseError\n"
            "assert 'LedgerError' in dsnparse.__all__ and issubclass(LedgerError, DsnparseError)\n"
            "print('sqlite3' in sys.modules)\n"
            "import dsnparse.ledger\n"
            "print(dsnparse.ledger.LedgerError is LedgerError)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


def test_license_file_matches_pyproject():
    assert PYPROJECT["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert "LICENSE" in PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]


def test_wheel_ships_py_typed_and_license(tmp_path):
    assert (ROOT / "dsnparse" / "py.typed").is_file()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    wheels = list(tmp_path.glob("dsnparse-*.whl"))
    if r.returncode != 0 or not wheels:
        pytest.skip(f"cannot build a wheel here (pip wheel needs hatchling from the package "
                    f"index): {r.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "dsnparse/py.typed" in names
    for provider in ("ses", "sendgrid", "mailgun", "postmark", "sparkpost"):  # events mappings
        assert f"dsnparse/events/providers/{provider}.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names), names
    assert "License-Expression: MIT" in meta or "License: MIT" in meta
    requires = [ln.replace('"', "'") for ln in meta.splitlines()
                if ln.startswith("Requires-Dist:")]
    for dep in ("legacy-cgi>=2.6", "standard-imghdr>=3.13"):
        assert f"Requires-Dist: {dep}; python_version >= '3.13'" in requires


# --------------------------------------------------------------------------- .ci/run

def _ci_list(tmp_path, pythons):
    """Run ``.ci/run --list`` with a HOME without pyenv and a PATH holding only
    ``dirname`` and the given interpreters (as python3.X)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    os.symlink(shutil.which("dirname"), bin_ / "dirname")
    for exe in pythons:
        ver = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
        os.symlink(exe, bin_ / f"python{ver}")
    env = {"HOME": str(tmp_path), "PATH": str(bin_)}
    return subprocess.run([shutil.which("bash"), str(ROOT / ".ci" / "run"), "--list"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_ci_says_so_when_only_one_python_is_found(tmp_path):
    r = _ci_list(tmp_path, [sys.executable])
    assert r.returncode == 0, r.stderr
    ver = "%d.%d" % sys.version_info[:2]
    assert f"only one supported Python found (Python {ver}." in r.stdout
    assert r.stdout.count("ci: would test") == 1


def test_ci_picks_the_oldest_and_newest_pyenv_pythons():
    home = os.path.expanduser("~")
    import glob

    found = {v: p for v in ("3.10", "3.13")
             for p in glob.glob(f"{home}/.pyenv/versions/{v}.*/bin/python{v}")}
    if len(found) < 2:
        pytest.skip("this machine's pyenv does not hold both 3.10 and 3.13")
    r = subprocess.run([shutil.which("bash"), str(ROOT / ".ci" / "run"), "--list"],
                       capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "DSNPARSE_CI_PYTHONS"})
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("ci: would test")]
    versions = [ln.split()[4] for ln in lines]     # "ci: would test Python 3.10.13 (...)"
    assert len(versions) == 2
    assert versions[0].startswith("3.10.") and versions[1].startswith("3.13."), versions
