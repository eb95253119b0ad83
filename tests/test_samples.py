"""One engine over samples/<pack>/NN.eml + NN.expected.json, in LF, CRLF and CR forms.

An expected file lists the report fields to check and, under ``verdicts``, one object per
recipient with the verdict fields to check (only the keys written there are compared).
"""
from __future__ import annotations

import json

import pytest

import dsnparse
from conftest import SAMPLES

CASES = sorted(p for p in SAMPLES.rglob("*.eml") if p.with_suffix("").with_suffix(".expected.json").exists()
               or (p.parent / (p.stem + ".expected.json")).exists())


def _expected(p):
    return json.loads((p.parent / (p.stem + ".expected.json")).read_text(encoding="utf-8"))


def _variants(data: bytes):
    lf = data.replace(b"\r\n", b"\n")
    return {"lf": lf, "crlf": lf.replace(b"\n", b"\r\n"), "cr": lf.replace(b"\n", b"\r")}


def test_every_sample_has_an_expectation():
    orphans = [p for p in SAMPLES.rglob("*.eml") if not (p.parent / (p.stem + ".expected.json")).exists()]
    assert not orphans, f"samples without NN.expected.json: {orphans}"
    assert len(CASES) >= 5


@pytest.mark.parametrize("ending", ["lf", "crlf", "cr"])
@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample(path, ending):
    exp = _expected(path)
    data = _variants(path.read_bytes())[ending]
    report = dsnparse.parse(data)
    for key, want in exp.items():
        if key == "verdicts":
            continue
        got = getattr(report, key)
        assert (list(got) if isinstance(got, tuple) else got) == want, f"{key} of {path.name} ({ending})"
    want_v = exp.get("verdicts", [])
    assert len(report.verdicts) == len(want_v), [v.final_recipient for v in report.verdicts]
    for got, want in zip(report.verdicts, want_v):
        for key, value in want.items():
            assert getattr(got, key) == value, f"{key} of {got.final_recipient} in {path.name} ({ending})"


def test_every_shipped_pack_has_a_sample():
    from dsnparse.rules import load_packs
    missing = []
    for pack in load_packs():
        own = list((SAMPLES / pack.id).glob("*.eml")) if (SAMPLES / pack.id).is_dir() else []
        if not own and not pack.samples:
            missing.append(pack.id)
    assert not missing, f"packs without a sample in samples/<id>/: {missing}"
