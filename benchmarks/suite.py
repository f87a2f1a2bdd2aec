"""The performance suite: measured, never asserted. Run from the checkout to measure:

    python benchmarks/suite.py --quick          # 10k orders, 3 runs per figure: minutes
    python benchmarks/suite.py                  # 10k, 100k and 1M orders (long)
    python benchmarks/suite.py --orders 50000   # one size

Each figure is the median of repeated runs with their min and max; every measurement
that could be disturbed by another (memory, above all) runs in a fresh process. Results
go to JSON (benchmarks/results/latest.json) and a table. Targets are the issue's, on a
2-core machine; a miss is reported with the figure, not hidden.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
# The checkout this script stands in, not an installed copy: so that a worktree of another
# commit measures its own code.
sys.path.insert(0, str(ROOT))

from benchmarks.workloads import (  # noqa: E402 (importable once the checkout is on the path)
    disk_commit_floor,
    live_overhead,
    simpy_floor,
    simulated_run,
)

TARGETS = {
    "sim_executions_per_second": 20_000,
    "sim_over_floor_max": 6.0,
    "peak_rss_mb_1m": 400,
    "rss_growth_1m_over_100k_max": 1.20,
    "live_overhead_p99_ms": 1.0,
    "api_executions_per_second": 1_000,
    "api_p99_ms": 250,
}
# (results key, its 1M / 100k growth key, what ran): the bare flow the throughput figure
# times, and a whole run as a user plays it, outputs and checks included.
MEMORY_FIGURES = (
    ("memory", "rss_growth_1m_over_100k", "the flow alone"),
    ("run_memory", "run_rss_growth_1m_over_100k", "arbitrex run"),
)

# "Store off" is the in-memory store, which keeps every event by design: not run at 1M.
STORE_OFF_MAX_ORDERS = 100_000


def figure(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


def in_fresh_process(function: str, *args: Any) -> dict[str, float]:
    """Run `workloads.function(*args)` in a new interpreter; its value and peak RSS."""
    code = (
        "import json, sys; from benchmarks import workloads; "
        f"value = workloads.{function}(*json.loads(sys.argv[1])); "
        "print(json.dumps({'value': value, 'peak_rss_mb': workloads.peak_rss_mb()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,  # the checkout's code, as this process runs it
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- where the time goes --------------------------------------------------------------------


def profile(orders: int) -> dict[str, Any]:
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'profile.db'}"
        profiler.enable()
        simulated_run(orders, url)
        profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )[:15]:
        where = f"{Path(filename).name}:{line}({name})"
        rows.append(
            {
                "function": where,
                "calls_per_execution": round(calls / orders, 2),
                "own_us_per_execution": round(own / orders * 1e6, 2),
                "cumulative_us_per_execution": round(cumulative / orders * 1e6, 2),
            }
        )
    return {"us_per_execution": round(total / orders * 1e6, 1), "top": rows}


# -- the suite --------------------------------------------------------------------------------


def run_suite(
    quick: bool, repeat: int, progress: Callable[[str], None], sizes: list[int] | None = None
) -> dict[str, Any]:
    sizes = sizes or ([10_000] if quick else [10_000, 100_000, 1_000_000])
    results: dict[str, Any] = {
        "quick": quick,
        "targets": TARGETS,
        "simulated": {},
        "memory": {},
        "run_memory": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            runs = 1 if size >= 1_000_000 else repeat
            progress(f"simulated throughput, {size:,} orders x{runs}")
            with_store, without, floors = [], [], []
            for index in range(runs):
                db = Path(folder) / f"bench-{size}-{index}.db"
                measured = in_fresh_process("simulated_run", size, f"sqlite:///{db}")
                for written in Path(folder).glob(f"{db.name}*"):  # GBs at 1M: not kept
                    if written.is_dir():  # the engines' lease files
                        shutil.rmtree(written)
                    else:
                        written.unlink()
                with_store.append(measured["value"])
                results["memory"].setdefault(str(size), []).append(measured["peak_rss_mb"])
                if size <= STORE_OFF_MAX_ORDERS:
                    without.append(in_fresh_process("simulated_run", size, "memory://")["value"])
                floors.append(simpy_floor(size))
            for index in range(runs):
                out = Path(folder) / f"run-{size}-{index}"
                measured = in_fresh_process("scenario_run", size, str(out))
                shutil.rmtree(out)
                results["run_memory"].setdefault(str(size), []).append(measured["peak_rss_mb"])
            results["simulated"][str(size)] = {
                "store_sqlite_file": figure(with_store),
                "simpy_floor": figure(floors),
                "engine_over_floor": statistics.median(floors) / statistics.median(with_store),
            } | ({"store_off": figure(without)} if without else {})
        for memory, growth, _ in MEMORY_FIGURES:
            results[memory] = {k: figure(v) for k, v in results[memory].items()}
            if {"100000", "1000000"} <= set(results[memory]):
                results[growth] = (
                    results[memory]["1000000"]["median"] / results[memory]["100000"]["median"]
                )
        progress("live-path overhead")
        count = min(sizes[0], 500 if quick else 2_000)
        live = [live_overhead(count, Path(folder) / f"live-{i}.db") for i in range(repeat)]
        results["live_overhead_ms"] = {
            key.removesuffix("_ms"): figure([r[key] for r in live]) for key in live[0]
        }
        floors = [disk_commit_floor(count, Path(folder) / f"disk-{i}.db") for i in range(repeat)]
        results["disk_commit_ms"] = {
            key: figure([r[f"{key}_ms"] for r in floors]) for key in ("p50", "p99")
        }
    progress("profile")
    results["profile"] = profile(min(sizes[0], 2_000 if quick else 10_000))
    return results


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, median [min..max], target) for the readable table."""

    def span(f: dict[str, float], unit: str = "") -> str:
        return f"{f['median']:,.1f}{unit} [{f['min']:,.1f}..{f['max']:,.1f}] x{f['runs']}"

    rows = []
    for size, entry in results["simulated"].items():
        n = f"{int(size):,}"
        target = f">= {TARGETS['sim_executions_per_second']:,}"
        rows.append(
            (f"sim exec/s, {n} orders, SQLite file", span(entry["store_sqlite_file"]), target)
        )
        if "store_off" in entry:
            rows.append((f"sim exec/s, {n} orders, store off", span(entry["store_off"]), ""))
        rows.append((f"bare SimPy floor, {n}", span(entry["simpy_floor"]), ""))
        ratio = f"<= {TARGETS['sim_over_floor_max']:g}x"
        rows.append((f"floor / engine, {n}", f"{entry['engine_over_floor']:.1f}x", ratio))
    limit = f"<= {TARGETS['rss_growth_1m_over_100k_max']:.2f}x"
    for memory, growth, what in MEMORY_FIGURES:
        for size, entry in results[memory].items():
            measure = f"peak RSS, {what}, {int(size):,} orders"
            rows.append((measure, span(entry, " MB"), "< 400 MB at 1M"))
        if growth in results:
            rows.append((f"peak RSS 1M / 100k, {what}", f"{results[growth]:.2f}x", limit))
    live = results["live_overhead_ms"]
    rows.append(("live overhead p50 (engine's own)", span(live["p50"], " ms"), ""))
    rows.append(("live overhead p99 (engine's own)", span(live["p99"], " ms"), "< 1 ms"))
    rows.append(("live overhead p99.9 (engine's own)", span(live["p99_9"], " ms"), ""))
    rows.append(("  of which in the audit store, p50", span(live["store_p50"], " ms"), ""))
    rows.append(("  of which in the audit store, p99", span(live["store_p99"], " ms"), ""))
    rows.append(("live p99 incl. in-process sim broker", span(live["with_broker_p99"], " ms"), ""))
    disk = results["disk_commit_ms"]
    rows.append(("one durable SQLite commit p50 (disk floor)", span(disk["p50"], " ms"), ""))
    rows.append(("one durable SQLite commit p99 (disk floor)", span(disk["p99"], " ms"), ""))
    per_execution = f"{results['profile']['us_per_execution']} us"
    rows.append(("engine time per simulated execution", per_execution, ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="10k orders only: minutes, not an hour"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (1 to 9)")
    parser.add_argument("--orders", type=int, help="one size only, instead of the suite's")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest.json",
        help="JSON results",
    )
    args = parser.parse_args()
    if not 1 <= args.repeat <= 9 or (args.orders is not None and args.orders < 1):
        parser.error("--repeat must be 1 to 9, --orders at least 1")
    console, err = Console(), Console(stderr=True)
    results = run_suite(
        args.quick,
        args.repeat,
        lambda step: err.print(f"[dim]{step}[/dim]"),
        [args.orders] if args.orders else None,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = Table(title="performance: median \\[min..max] x runs")
    for column in ("measure", "value", "target"):
        table.add_column(column)
    for row in table_rows(results):
        table.add_row(*row)
    console.print(table)
    console.print("where the time goes (per simulated execution):")
    for entry in results["profile"]["top"][:10]:
        console.print(f"  {entry['own_us_per_execution']:8.1f} us own  {entry['function']}")
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
