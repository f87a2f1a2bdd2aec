"""The audit store's modules stand on one another in layers: no module of engine/store
imports, however indirectly, a module that imports it back."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "engine" / "store"
PACKAGE = "engine.store"


def module_name(path: Path, package: str = PACKAGE) -> str:
    return package if path.stem == "__init__" else f"{package}.{path.stem}"


def store_imports(folder: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports.

    Every import counts, wherever it is written: at the top, inside a function (imported on
    use), or under TYPE_CHECKING (a cycle there is one `from __future__` away from real).
    """
    paths = sorted(folder.glob("*.py"))
    modules = {module_name(path, package) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = module_name(path, package)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from .x import y
                    anchor = name if path.stem == "__init__" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    found.add(submodule if submodule in modules else base)
        graph[name] = (found & modules) - {name}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(error.args[1])
    return None


def test_the_store_modules_import_one_another_without_a_cycle():
    graph = store_imports(STORE)
    assert f"{PACKAGE}.sql" in graph and f"{PACKAGE}.sqlite" in graph, "found no store modules"
    cycle = cycle_in(graph)
    assert cycle is None, f"engine/store imports in a circle: {' -> '.join(cycle or [])}"


def test_the_layout_check_catches_a_cycle_however_the_import_is_written(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def late():\n    from . import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    )

    graph = store_imports(package, "pkg")

    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}}
    assert cycle_in(graph) is not None
    del graph["pkg.c"]
    assert cycle_in(graph) is None
