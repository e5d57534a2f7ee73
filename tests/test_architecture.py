"""The package's import graph: no module imports one that imports it back, and data flows one way.

Every import that runs counts, at module level or inside a function. Stages are ordered; a module may import
its own stage or a lower one, never a higher one.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "mmknockout"

#: stage -> modules (a name covers its subpackage); lower stages come first
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("__init__", "errors", "paths", "io", "arrays", "device", "knockout")),
    ("data", ("data",)),
    ("features", ("features",)),
    ("models", ("models",)),
    ("training", ("train",)),
    ("runs", ("grid", "sweeps", "config", "spec", "run", "genrec")),
    ("analysis", ("analysis",)),
    ("workflow", ("plan", "workflow", "bench", "cli", "__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in (SRC / PKG).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules imported anywhere in ``path`` (imports for type checkers only do not run)."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


@cache
def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def stage_of(module: str) -> int:
    rest = module.removeprefix(PKG + ".") if module != PKG else "__init__"
    top = rest.split(".")[0]
    for rank, (_, names) in enumerate(STAGES):
        if top in names:
            return rank
    raise AssertionError(f"{module} belongs to no stage; add it to STAGES in {__file__}")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert "mmknockout.models.registry" in graph["mmknockout.config"]
    assert "mmknockout.spec" in graph["mmknockout.run"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("module", sorted(modules()))
def test_lower_stages_never_import_higher_ones(module):
    higher = sorted(m for m in import_graph()[module] if stage_of(m) > stage_of(module))
    assert not higher, f"{module} ({STAGES[stage_of(module)][0]}) imports {higher}"
