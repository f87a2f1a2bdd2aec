"""Imports run one way, scenarios → sim → brokers → engine: the simulator never reaches up
into the scenarios that drive it, nor the live brokers into the simulator.
(tests/test_core_purity.py holds engine/ to the same rule.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_core_purity import ROOT, imported_roots

ABOVE = {"sim": {"scenarios"}, "brokers": {"sim", "scenarios"}}


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_package_imports_nothing_above_it(package: str):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & ABOVE[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_roots(path) & ABOVE[package]
    }
    assert offenders == {}, f"imports flow from scenarios down to engine, never up: {offenders}"


def test_the_layering_check_sees_an_import_inside_a_function(tmp_path: Path):
    upward = tmp_path / "upward.py"
    upward.write_text("def main():\n    from scenarios.spec import load_scenario\n")
    assert "scenarios" in imported_roots(upward)
