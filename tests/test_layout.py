"""The layout: imports between the top-level packages run one way,
scenarios → sim → brokers → engine, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each package may never import (besides MT5 itself, which only `brokers` loads, lazily).
NEVER = {
    "engine": {"brokers", "sim", "scenarios", "simpy", "MetaTrader5", "mt5linux"},
    "brokers": {"sim", "scenarios", "simpy"},
    "sim": {"scenarios"},
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def backward_imports(package: Path, banned: set[str]) -> list[str]:
    return [
        f"{path.relative_to(package.parent)}:{line} imports {module}"
        for path in sorted(package.rglob("*.py"))
        for line, module in imports_of(path)
        if module.split(".")[0] in banned
    ]


@pytest.mark.parametrize("package", sorted(NEVER))
def test_no_package_imports_against_the_one_way_arrows(package):
    offenders = backward_imports(ROOT / package, NEVER[package])
    assert offenders == [], f"scenarios → sim → brokers → engine, never back: {offenders}"


def test_the_arrow_check_sees_an_import_hidden_inside_a_function(tmp_path):
    package = tmp_path / "sim"
    package.mkdir()
    (package / "lazy.py").write_text("def later():\n    from scenarios.spec import x\n")
    assert backward_imports(package, NEVER["sim"]) == ["sim/lazy.py:2 imports scenarios.spec"]
