"""dsnparse.rules is a facade over the package dsnparse.rulepacks (the split of rules.py):
every name the package's modules define is there, pickles that name the classes by the old
module still load, and the pack cache of another layout is not used."""
from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from dsnparse import rulepacks, rules
from dsnparse.rulepacks import cache, loader, pack, pattern

PKG = Path(rulepacks.__file__).parent
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")


def _defined(mod: str) -> list:
    """The names a module of the package binds at its top level (defs, classes, assignments)."""
    tree = ast.parse((PKG / f"{mod}.py").read_text(encoding="utf-8"))
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.append(node.name)
        elif isinstance(node, ast.Assign):
            out.extend(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.append(node.target.id)
    return out


@pytest.mark.parametrize("mod", MODULES)
def test_every_name_of_the_package_is_on_the_facade(mod):
    import importlib

    m = importlib.import_module(f"dsnparse.rulepacks.{mod}")
    names = _defined(mod)
    assert names, mod
    for name in names:
        assert getattr(rules, name) is getattr(m, name), f"rules.{name} is not {mod}.{name}"


def test_no_module_of_the_package_imports_the_facade():
    # (the facade imports every module of the package: one importing it back is a cycle)
    for mod in MODULES:
        tree = ast.parse((PKG / f"{mod}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.level == 2 and node.module == "rules"), mod
                assert node.module != "dsnparse.rules", mod
                assert not (node.level == 2 and node.module is None
                            and any(a.name == "rules" for a in node.names)), mod


def test_a_patched_loader_function_is_the_one_load_packs_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("DSNPARSE_CACHE", "0")
    d = tmp_path / "user"
    d.mkdir()
    (d / "vendor.yaml").write_text(
        "detect:\n  any:\n    - header: From\n      pattern: 'acme-daemon'\n"
        "recipients:\n  - id: r\n    pattern: '^bad: (?P<recipient>\\S+@\\S+)'\n",
        encoding="utf-8")
    calls = []
    real = loader.load_pack
    monkeypatch.setattr(loader, "load_pack", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rules.load_packs.cache_clear()
    try:
        packs = rules.load_packs((str(d),))
    finally:
        rules.load_packs.cache_clear()
    assert "vendor" in calls and [p.id for p in packs].count("vendor") == 1
    assert len(calls) == len(packs) - 1  # every pack file but the vocabulary's reason pack


def test_rebound_module_globals_are_read_from_their_module():
    rules.clean_address("a@b.example")  # compiles the address pattern on first use
    from dsnparse.rulepacks import address
    assert address._ADDR is not None and rules._ADDR is address._ADDR
    with pytest.raises(AttributeError):
        rules.no_such_name  # noqa: B018


def test_pickles_naming_the_old_module_still_load(monkeypatch):
    """A pickle written before the split names ``dsnparse.rules.Pack`` (and Pattern,
    Condition, RecipientRule, TextRule): the facade keeps those paths loadable."""
    packs = rules.load_packs()
    for cls in (pack.Pack, pack.Condition, pack.RecipientRule, pack.TextRule, pattern.Pattern):
        monkeypatch.setattr(cls, "__module__", "dsnparse.rules")
    old = pickle.dumps(packs, pickle.HIGHEST_PROTOCOL)
    monkeypatch.undo()
    assert b"dsnparse.rules" in old and b"rulepacks" not in old
    back = pickle.loads(old)
    assert type(back[0]) is pack.Pack and [p.id for p in back] == [p.id for p in packs]
    vendor = next(p for p in back if p.recipients)
    assert type(vendor.recipients[0].pattern) is pattern.Pattern
    assert [p.triggers for p in back] == [p.triggers for p in packs]
    new = pickle.dumps(packs, pickle.HIGHEST_PROTOCOL)
    assert b"dsnparse.rulepacks.pack" in new


def test_a_pack_cache_of_another_cache_version_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("DSNPARSE_CACHE", "1")
    monkeypatch.setenv("DSNPARSE_CACHE_DIR", str(tmp_path / "cache"))
    rules.load_packs.cache_clear()
    try:
        monkeypatch.setattr(cache, "_CACHE_VERSION", cache._CACHE_VERSION - 1)
        before = rules.load_packs()
        (f,) = (tmp_path / "cache").glob("packs-*.pickle")
        written = f.read_bytes()
        monkeypatch.undo()
        monkeypatch.setenv("DSNPARSE_CACHE", "1")
        monkeypatch.setenv("DSNPARSE_CACHE_DIR", str(tmp_path / "cache"))
        rules.load_packs.cache_clear()
        calls = []
        real = loader.load_pack
        monkeypatch.setattr(loader, "load_pack", lambda *a, **k: calls.append(a) or real(*a, **k))
        after = rules.load_packs()
        assert calls, "a cache of the previous version was used"
        assert f.read_bytes() != written  # rewritten under this version
        assert [p.id for p in after] == [p.id for p in before]
        rules.load_packs.cache_clear()
        calls.clear()
        assert [p.id for p in rules.load_packs()] == [p.id for p in before] and not calls
    finally:
        rules.load_packs.cache_clear()
