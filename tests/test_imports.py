"""The package's import graph has no cycle: the house reads one way (data -> datasets, hls_export -> csim,
hls_export -> onchip). Lazy imports inside functions count — they are how cycles hide; imports under
``if TYPE_CHECKING:`` do not (annotations only, never executed)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mtl_moe"


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[str]:
    """Every module named by an import in ``tree``, at any depth, outside ``if TYPE_CHECKING:``."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph(pkg: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    mods = {}
    for f in pkg.rglob("*.py"):
        parts = f.relative_to(pkg.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for name in _imports(ast.parse(f.read_text())):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != m and name != pkg.name:  # the package's __init__ is imported by all
                graph[m].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(found)


def test_mtl_moe_has_no_import_cycle() -> None:
    g = import_graph(PKG)
    assert len(g) > 30 and "mtl_moe.deploy.accelerator" in g
    assert cycles(g) == [], "import cycles (break them so the house reads one way)"


def test_the_house_reads_one_way() -> None:
    g = import_graph(PKG)
    assert "mtl_moe.datasets" in g["mtl_moe.data"] and "mtl_moe.data" not in g["mtl_moe.datasets"]
    assert "mtl_moe.csim" in g["mtl_moe.hls_export"] and "mtl_moe.hls_export" not in g["mtl_moe.csim"]


def test_cycle_check_catches_a_lazy_import_and_ignores_type_checking(tmp_path: Path) -> None:
    """The check is not vacuous: a cycle closed by an import inside a function is found; one closed
    only under ``if TYPE_CHECKING:`` is not a cycle."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from pkg.d import X\n")
    (pkg / "d.py").write_text("import pkg.c\nX = 1\n")
    g = import_graph(pkg)
    assert g["pkg.b"] == {"pkg.a"} and g["pkg.c"] == set()
    assert cycles(g) == [["pkg.a", "pkg.b"]]
