"""The performance suite runs and reports; its numbers are read by people, never asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_the_suite_measures_every_figure_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "suite.py"
    result = subprocess.run(
        [sys.executable, str(script), "--orders", "200", "--repeat", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    entry = results["simulated"]["200"]
    for figure in ("store_sqlite_file", "store_off", "simpy_floor"):
        assert {"median", "min", "max", "runs"} <= set(entry[figure])
    assert results["memory"]["200"]["median"] > 0 and results["run_memory"]["200"]["median"] > 0
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


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"),
    reason="valgrind is not installed (CI installs it: .ci/run)",
)
def test_the_instruction_count_bench_reports_the_store_and_engine_shares():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "instructions.py"
    result = subprocess.run(
        [sys.executable, str(script), "--small", "5", "--large", "25"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    simulated, api = counts["instructions_per_execution"], counts["instructions_per_api_request"]
    assert simulated["store_sqlite_file"] == simulated["store_off"] + simulated["of_which_store"]
    assert simulated["of_which_store"] > 0
    assert api["paper_engine"] == api["engine_stubbed"] + api["of_which_engine"]
    assert api["engine_stubbed"] > 0 and api["of_which_engine"] > 0


def test_the_in_process_api_driver_answers_every_concurrent_request_on_a_durable_store(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "api_in_process.py"
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    result = subprocess.run(
        [sys.executable, str(script), "--requests", "60", "--at-once", "20", "--db", db],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr  # a request not answered 200 fails it
    measured = json.loads(result.stdout)
    assert measured["requests_per_second"] > 0 and measured["cpu_us_per_request"] > 0
