"""The performance suite behind `arbitrex bench`: measured, never asserted.

Each figure is the median of repeated runs with their min and max; every measurement
that could be disturbed by another (memory, above all) runs in a fresh process. Results
go to JSON and a table. Targets are the issue's, on a 2-core machine; a miss is reported
with the figure, not hidden.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from engine.core.config import EngineConfig
from engine.store import open_database
from scenarios.orderflow import OrderFlowConfig, order_flow
from sim.latency import LatencyConfig
from sim.network import NetworkConfig
from sim.world import SimulatedWorld, paper_engine

TARGETS = {
    "sim_executions_per_second": 20_000,
    "sim_over_floor_max": 6.0,
    "peak_rss_mb_1m": 400,
    "rss_growth_1m_over_100k_max": 1.20,
    "live_overhead_p99_ms": 1.0,
    "api_executions_per_second": 1_000,
    "api_p99_ms": 250,
}
LATENCY = LatencyConfig.constant(10.0, processing_ms=2.0)


def figure(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


# -- simulated throughput -------------------------------------------------------------------


def simulated_run(orders: int, db_url: str, seed: int = 1) -> float:
    """Executions per second of real time: the full flow, the simulator, the audit store."""
    database = open_database(db_url, durability="batched")
    world = SimulatedWorld.build(seed, network=NetworkConfig(latency=LATENCY), database=database)
    flow = OrderFlowConfig(orders=orders, rate_per_second=2_000.0, symbols=("EURUSD", "USDJPY"))
    done = [0]

    def feed() -> Generator[Any, Any, None]:
        for arrival in order_flow(flow, seed):
            yield world.env.timeout(arrival.delay)
            process = world.driver.submit(arrival.rpm)
            process.callbacks.append(lambda _: done.__setitem__(0, done[0] + 1))

    started = time.perf_counter()
    world.env.process(feed())
    world.env.run()
    database.close()
    elapsed = time.perf_counter() - started
    assert done[0] == orders
    return orders / elapsed


def simpy_floor(orders: int) -> float:
    """The bare SimPy floor: a process per order waiting on a latency timeout and a reply."""
    env = simpy.Environment()
    latency = 0.012

    def order() -> Generator[Any, Any, None]:
        yield env.timeout(latency)
        reply = env.event()
        env.timeout(latency).callbacks.append(lambda _: reply.succeed())
        yield reply

    def feed() -> Generator[Any, Any, None]:
        for _ in range(orders):
            yield env.timeout(0.0005)
            env.process(order())

    started = time.perf_counter()
    env.process(feed())
    env.run()
    return orders / (time.perf_counter() - started)


def in_fresh_process(function: str, *args: Any) -> dict[str, float]:
    """Run `function(*args)` of this module in a new interpreter; its value and peak RSS."""
    code = (
        "import json, resource, sys; from scenarios import bench; "
        f"value = bench.{function}(*json.loads(sys.argv[1])); "
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps({'value': value, 'peak_rss_mb': rss}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- live path ------------------------------------------------------------------------------


def live_overhead(executions: int, db_path: Path) -> dict[str, float]:
    """The engine's own time per execution, wall clock, durable SQLite, zero-latency broker."""
    database = open_database(f"sqlite:///{db_path}")  # sync: write-ahead, fsync per record
    engine, _ = paper_engine(
        seed=1,
        network=NetworkConfig(latency=LatencyConfig.constant(0.0)),
        config=EngineConfig(),
        database=database,
    )
    flow = OrderFlowConfig(orders=executions, symbols=("EURUSD",))
    times = []
    for arrival in order_flow(flow, 1):
        started = time.perf_counter()
        engine.execute(arrival.rpm)
        times.append((time.perf_counter() - started) * 1000.0)
    database.close()
    values = np.asarray(times)
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


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
    results: dict[str, Any] = {"quick": quick, "targets": TARGETS, "simulated": {}, "memory": {}}
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            runs = 1 if size >= 1_000_000 else repeat
            progress(f"simulated throughput, {size:,} orders x{runs}")
            with_store, without, floors = [], [], []
            for index in range(runs):
                db = f"sqlite:///{Path(folder) / f'bench-{size}-{index}.db'}"
                measured = in_fresh_process("simulated_run", size, db)
                with_store.append(measured["value"])
                results["memory"].setdefault(str(size), []).append(measured["peak_rss_mb"])
                without.append(in_fresh_process("simulated_run", size, "memory://")["value"])
                floors.append(simpy_floor(size))
            results["simulated"][str(size)] = {
                "store_sqlite_file": figure(with_store),
                "store_off": figure(without),
                "simpy_floor": figure(floors),
                "engine_over_floor": statistics.median(floors) / statistics.median(with_store),
            }
        results["memory"] = {k: figure(v) for k, v in results["memory"].items()}
        progress("live-path overhead")
        count = min(sizes[0], 500 if quick else 2_000)
        live = [live_overhead(count, Path(folder) / f"live-{i}.db") for i in range(repeat)]
        results["live_overhead_ms"] = {
            "p50": figure([r["p50_ms"] for r in live]),
            "p99": figure([r["p99_ms"] for r in live]),
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
        rows.append((f"sim exec/s, {n} orders, store off", span(entry["store_off"]), ""))
        rows.append((f"bare SimPy floor, {n}", span(entry["simpy_floor"]), ""))
        ratio = f"<= {TARGETS['sim_over_floor_max']:g}x"
        rows.append((f"floor / engine, {n}", f"{entry['engine_over_floor']:.1f}x", ratio))
    for size, entry in results["memory"].items():
        rows.append((f"peak RSS, {int(size):,} orders", span(entry, " MB"), "< 400 MB at 1M"))
    live = results["live_overhead_ms"]
    rows.append(("live overhead p50", span(live["p50"], " ms"), ""))
    rows.append(("live overhead p99", span(live["p99"], " ms"), "< 1 ms"))
    per_execution = f"{results['profile']['us_per_execution']} us"
    rows.append(("engine time per simulated execution", per_execution, ""))
    return rows
