"""The house rules that keep the package easy to walk: no import cycles between dsnparse's
modules.  Every ``import`` / ``from … import`` of a dsnparse module counts, those inside
functions and ``TYPE_CHECKING`` blocks included; importing the package itself
(``from . import __version__``) does not.  Command modules that ``dsnparse.cli`` loads by
name (``importlib``, its ``_PLUGIN_COMMANDS``) are not edges of the graph."""
from __future__ import annotations

import ast
from pathlib import Path

import dsnparse

PKG = Path(dsnparse.__file__).parent


def _graph() -> dict:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    graph = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # "from . import charts" imports the module charts, not the package
                subs = [f"{target}.{a.name}" for a in node.names]
                names = [n for n in subs if n in mods] or [target]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[m] |= {n for n in names if n in mods and n not in (m, "dsnparse")}
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports():
    g = _graph()
    assert "dsnparse.errors" in g["dsnparse.codes"]          # module level, relative
    assert "dsnparse.cachefile" in g["dsnparse.codes"]       # inside a function
    assert "dsnparse.report.charts" in g["dsnparse.report.page"]  # from . import charts
    assert "dsnparse.report" not in g["dsnparse.report.page"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_cycles():
    assert _cycles(_graph()) == []
