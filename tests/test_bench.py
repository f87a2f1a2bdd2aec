"""Every benchmark script runs, on a tiny input, in seconds; its numbers are read by people,
never asserted. None runs under valgrind here (`instructions.py --no-valgrind` runs its
workloads plainly), and each timeout is far above what its run takes: only a hang meets it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TIMEOUT = 300  # seconds, for runs of a few


def benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_suite_measures_every_figure_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = benchmark("suite.py", "--orders", "20", "--repeat", "1", "--out", str(out))
    results = json.loads(out.read_text())
    entry = results["simulated"]["20"]
    for figure in ("store_sqlite_file", "store_off", "simpy_floor"):
        assert {"median", "min", "max", "runs"} <= set(entry[figure])
    assert results["memory"]["20"]["median"] > 0 and results["run_memory"]["20"]["median"] > 0
    live = results["live_overhead_ms"]
    assert 0 < live["p99"]["median"] <= live["with_broker_p99"]["median"]
    assert 0 < live["store_p50"]["median"] <= live["p50"]["median"]
    assert results["disk_commit_ms"]["p99"]["median"] > 0
    assert results["profile"]["top"] and "where the time goes" in result.stdout


def test_a_fresh_process_reports_its_own_peak_memory_not_its_large_parents():
    from benchmarks.suite import in_fresh_process

    ballast = bytearray(300 * 1024 * 1024)  # touched: resident in this process
    ballast[::4096] = b"x" * len(ballast[::4096])
    child = in_fresh_process("peak_rss_mb")
    assert child["peak_rss_mb"] < 200
    del ballast


def test_the_instruction_count_workloads_each_run_without_valgrind():
    from benchmarks.instructions import RUNS

    ran = json.loads(benchmark("instructions.py", "--no-valgrind", "--orders", "20").stdout)
    assert ran["valgrind"] is False and ran["orders"] == 20
    assert set(ran["ran"]) == set(RUNS)
    assert all(run["seconds"] > 0 for run in ran["ran"].values())


def test_the_in_process_api_driver_answers_every_concurrent_request_on_a_durable_store(tmp_path):
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    result = benchmark("api_in_process.py", "--requests", "60", "--at-once", "20", "--db", db)
    measured = json.loads(result.stdout)  # a request not answered 200 fails the run
    assert measured["requests_per_second"] > 0 and measured["cpu_us_per_request"] > 0


def test_the_load_driver_measures_the_served_engine_beside_bare_fastapi():
    result = benchmark("api_load.py", "--clients", "4", "--per-client", "2", "--rate", "100")
    measured = json.loads(result.stdout)
    for load in ("engine", "engine_open_loop", "bare_fastapi", "bare_fastapi_open_loop"):
        assert measured[load]["http_status"] == {"200": 8}
        assert measured[load]["requests_per_second"] > 0
    assert measured["bare_over_engine_throughput"] > 0


def test_the_nautilus_comparison_runs_our_side_alone_without_nautilus(tmp_path):
    out = tmp_path / "side_by_side.json"
    args = ("--ours-only", "--orders", "20", "--repeat", "1", "--out", str(out))
    measured = json.loads(benchmark("nautilus_side_by_side.py", *args).stdout)
    assert measured == json.loads(out.read_text())
    for contender in ("ours_sqlite", "ours_memory"):
        assert {"median", "min", "max", "runs"} <= set(measured[contender])
        assert measured[contender]["runs"] == 1
    assert "nautilus" not in measured and "ratio_ours_over_nautilus" not in measured


@pytest.mark.skipif(
    importlib.util.find_spec("nautilus_trader") is not None,
    reason="NautilusTrader is installed here: its absence cannot be shown",
)
def test_without_nautilus_the_comparison_says_so_in_one_line_and_exits_2():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "nautilus_side_by_side.py"), "--orders", "20"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "NautilusTrader is not installed: pip install nautilus_trader "
        "(a benchmark-only comparison, not a dependency)\n"
    )
