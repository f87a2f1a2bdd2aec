"""Principle 1: the engine core is sans-I/O (tests/test_layout.py: the engine knows nothing
of its brokers)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = [*sorted((ROOT / "engine" / "core").glob("*.py")), ROOT / "engine" / "schemas.py"]

FORBIDDEN_IN_CORE = {
    "simpy", "MetaTrader5", "mt5linux", "time", "threading", "asyncio", "socket", "random",
    "uuid", "sqlite3", "psycopg", "psycopg2", "sqlalchemy", "requests", "httpx", "os",
    "subprocess", "multiprocessing", "selectors", "concurrent",
}  # fmt: skip
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_READS
        ):
            found.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
    return found


def test_core_modules_import_no_clock_io_concurrency_randomness_or_database():
    offenders = {
        path.name: sorted(imported_roots(path) & FORBIDDEN_IN_CORE)
        for path in CORE
        if imported_roots(path) & FORBIDDEN_IN_CORE
    }
    assert offenders == {}, f"the core must stay sans-I/O: {offenders}"


def test_core_modules_never_read_a_clock():
    reads = [read for path in CORE for read in clock_reads(path)]
    assert reads == [], f"time must come in as an argument: {reads}"


def test_core_imports_only_the_core_schemas_and_pure_libraries():
    for path in CORE:
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.split(".")[0] == "engine":
                assert module.startswith(("engine.core", "engine.schemas")), (
                    f"{path.name} imports {module}: the core may not depend on drivers or stores"
                )


def test_the_purity_check_catches_a_forbidden_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import time\nfrom datetime import datetime\nx = datetime.now()\n")
    assert "time" in imported_roots(sneaky) & FORBIDDEN_IN_CORE
    assert clock_reads(sneaky) == ["sneaky.py:3 .now()"]


def test_importing_the_engine_loads_neither_simpy_nor_mt5_nor_a_server_database_driver():
    code = (
        "import sys, engine, engine.core.flow; "
        "print(sorted(m for m in ('simpy','psycopg','MetaTrader5') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
