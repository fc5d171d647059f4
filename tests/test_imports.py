"""Imports between cortex_fa's modules run one way: no module imports one that imports it back.

Every ``import`` and ``from ... import`` of every module under ``cortex_fa/`` is read
with :mod:`ast`, function-local ones included (a late import only hides a cycle from
the interpreter; the two modules still depend on each other). ``from pkg import name``
counts as an import of ``pkg.name`` when that is a module, else of ``pkg``.

Imports of a module's own ancestor packages (``from cortex_fa import __version__`` in
``cortex_fa.results``) are not counted: Python initialises every parent package before
the module whatever the module says, so such an import adds no order between the two,
and the package's lazy ``__getattr__`` imports of its submodules would otherwise put
every one of them in a cycle with it.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cortex_fa"

# Pairs allowed to import each other: none (results <-> study was the last, untangled in 0.3).
KNOWN_CYCLES: set = set()


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file for every module of the package (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The package's modules that module ``name`` (file ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    found = set()
    with warnings.catch_warnings():  # e.g. an invalid escape in a docstring: not this test's business
        warnings.simplefilter("ignore")
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c of a non-module c: a.b
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def without_known(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph minus the direct edges of each known pair (a longer cycle through them still counts)."""
    return {a: {b for b in targets if frozenset({a, b}) not in KNOWN_CYCLES} for a, targets in graph.items()}


def test_the_parser_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "cortex_fa"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from cortex_fa.sub import b  # function-local\n",
        "sub/__init__.py": "from .c import x\n",
        "sub/b.py": "import cortex_fa.sub.c as c\nfrom .. import a\n",
        "sub/c.py": "from cortex_fa.a import f\nimport numpy\nfrom cortex_fa import sub, __version__\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    modules = module_names(pkg)
    graph = {n: imports_of(n, p, modules) for n, p in modules.items()}
    assert graph == {"cortex_fa": set(), "cortex_fa.a": {"cortex_fa.sub.b"}, "cortex_fa.sub": {"cortex_fa.sub.c"},
                     "cortex_fa.sub.b": {"cortex_fa.sub.c", "cortex_fa.a"}, "cortex_fa.sub.c": {"cortex_fa.a"}}
    assert cycles(graph) == [["cortex_fa.a", "cortex_fa.sub.b", "cortex_fa.sub.c"]]


def test_no_import_cycles_between_cortex_fa_modules():
    graph = import_graph()
    assert {"cortex_fa.cli.sweep", "cortex_fa.data.mnist", "cortex_fa.cluster"} <= set(graph)
    assert "cortex_fa.data.fetch" in graph["cortex_fa.data.mnist"]  # the parser does see imports
    found = cycles(without_known(graph))
    assert not found, "modules that import each other (move what they share a floor down): " + "; ".join(
        " <-> ".join(c) for c in found)
