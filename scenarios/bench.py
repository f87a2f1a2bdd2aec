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
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, cast

import numpy as np
import simpy

from engine.core.config import EngineConfig
from engine.core.ports import BrokerInterface
from engine.engine import ExecutionEngine
from engine.store import ExecutionDatabase, open_database
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
# (results key, its 1M / 100k growth key, what ran): the bare flow the throughput figure
# times, and a whole run as a user plays it, outputs and checks included.
MEMORY_FIGURES = (
    ("memory", "rss_growth_1m_over_100k", "the flow alone"),
    ("run_memory", "run_rss_growth_1m_over_100k", "arbitrex run"),
)
LATENCY = LatencyConfig.constant(10.0, processing_ms=2.0)
# "Store off" is the in-memory store, which keeps every event by design: not run at 1M.
STORE_OFF_MAX_ORDERS = 100_000


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


def scenario_run(orders: int, out_dir: str) -> float:
    """A run as `arbitrex run --out` plays it (the demo scenario): the flow, the quote tape,
    recovery, the invariants, the summary and the Parquet outputs; executions per second."""
    from scenarios.demo import demo_scenario
    from scenarios.runner import run_scenario

    started = time.perf_counter()
    summary = run_scenario(demo_scenario(orders, seed=1), Path.cwd(), out_dir=Path(out_dir))
    elapsed = time.perf_counter() - started
    if not summary.ok:
        raise RuntimeError(f"the benchmark's run broke its invariants: {summary.violations}")
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


def peak_rss_mb() -> float:
    """This process's own peak resident set. VmHWM, not getrusage's ru_maxrss: Linux keeps
    ru_maxrss across exec, so a child would report its forking parent's size when larger."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM: peak RSS is measured on Linux only")


def in_fresh_process(function: str, *args: Any) -> dict[str, float]:
    """Run `function(*args)` of this module in a new interpreter; its value and peak RSS."""
    code = (
        "import json, sys; from scenarios import bench; "
        f"value = bench.{function}(*json.loads(sys.argv[1])); "
        "print(json.dumps({'value': value, 'peak_rss_mb': bench.peak_rss_mb()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- live path ------------------------------------------------------------------------------


class Timed:
    """A port seen through a stopwatch: the time spent inside its calls, summed.

    The paper-trading broker is zero-latency but not zero-cost (it runs the simulated venue
    in this process): what it spends is the broker's time, not the engine's. The store's
    time, durable commits included, is the engine's, and shown apart so that the disk's
    share is visible.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.seconds += time.perf_counter() - started

        # Kept (__getattr__ runs only for names not found): building the wrapper on every
        # call would count as the engine's time.
        setattr(self, name, timed)
        return timed


def live_overhead(executions: int, db_path: Path) -> dict[str, float]:
    """The engine's own time per execution, wall clock, durable SQLite, zero-latency broker:
    each `execute()` timed whole, without the time spent inside the broker's calls, and of
    that own time the part spent inside the audit store (its two durable commits included)."""
    database = open_database(f"sqlite:///{db_path}")  # sync: write-ahead, fsync per commit
    paper, _ = paper_engine(
        seed=1,
        network=NetworkConfig(latency=LatencyConfig.constant(0.0)),
        config=EngineConfig(),
        database=database,
    )
    broker, store = Timed(paper.broker), Timed(database)
    engine = ExecutionEngine(
        cast(BrokerInterface, broker),
        cast(ExecutionDatabase, store),
        paper.config,
        clock=paper.clock,
    )
    flow = OrderFlowConfig(orders=executions, symbols=("EURUSD",))
    whole, own, in_store = [], [], []
    for arrival in order_flow(flow, 1):
        broker.seconds = store.seconds = 0.0
        started = time.perf_counter()
        engine.execute(arrival.rpm)
        elapsed = time.perf_counter() - started
        whole.append(elapsed * 1000.0)
        own.append((elapsed - broker.seconds) * 1000.0)
        in_store.append(store.seconds * 1000.0)
    database.close()
    return {
        "p50_ms": float(np.percentile(own, 50)),
        "p99_ms": float(np.percentile(own, 99)),
        "p99_9_ms": float(np.percentile(own, 99.9)),
        "store_p50_ms": float(np.percentile(in_store, 50)),
        "store_p99_ms": float(np.percentile(in_store, 99)),
        "with_broker_p50_ms": float(np.percentile(whole, 50)),
        "with_broker_p99_ms": float(np.percentile(whole, 99)),
    }


def api_requests(
    requests: int,
    engine_stubbed: bool,
    at_once: int = 1,
    latency_ms: float = 0.001,
    db_url: str = "memory://",
) -> dict[str, float]:
    """`requests` POST /execute calls, `at_once` of them in flight, straight into the API's
    ASGI app: no socket and no HTTP parsing, so that an instruction count (one at a time)
    sees only the app (FastAPI, the keys, the thread hand-off) and, unless stubbed, the paper
    engine behind it; and so that an A/B of the app under concurrency is not also one of
    the HTTP stack and a load generator. Returns requests/s and CPU time per request."""
    import asyncio

    from engine.api import ApiSettings, KeyStore, Role, create_app
    from scenarios.assembly import paper_trading_engine

    with tempfile.TemporaryDirectory() as folder:
        keys = KeyStore(Path(folder) / "keys.db")
        _, token = keys.create(Role.TRADER, "bench")
        database = open_database(db_url)
        engine, _ = paper_trading_engine(7, database, latency_ms=latency_ms)
        unlimited = ApiSettings(
            rate_per_second=1e9, burst=10**9, broker_probe_seconds=0, max_concurrent_executions=64
        )
        app = create_app(engine, keys, unlimited)
        bodies = [
            json.dumps({"decision": arrival.rpm.decision.model_dump(mode="json")}).encode()
            for arrival in order_flow(OrderFlowConfig(orders=requests + 1), 1)
        ]
        if engine_stubbed:
            answer = engine.execute(json.loads(bodies.pop()))
            engine.execute = lambda *_: answer  # type: ignore[method-assign]
        headers = [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        in_flight = asyncio.Semaphore(at_once)

        async def post(body: bytes) -> None:
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "POST", "scheme": "http", "path": "/execute",
                "raw_path": b"/execute", "query_string": b"", "root_path": "",
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
                "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
            }  # fmt: skip
            messages = iter([{"type": "http.request", "body": body, "more_body": False}])
            answered: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return next(messages, {"type": "http.disconnect"})

            async def send(message: dict[str, Any]) -> None:
                answered.append(message)

            async with in_flight:
                await app(scope, receive, send)
            if answered[0]["status"] != 200:
                raise RuntimeError(f"POST /execute answered {answered}")

        async def run() -> tuple[float, float]:
            async with app.router.lifespan_context(app):
                started, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*(post(body) for body in bodies[:requests]))
                return time.perf_counter() - started, time.process_time() - cpu

        seconds, cpu_seconds = _event_loop_run(run())
        keys.close()
        database.close()
    return {
        "requests_per_second": requests / seconds,
        "cpu_us_per_request": cpu_seconds / requests * 1e6,
    }


def _event_loop_run(main: Any) -> Any:
    """Run a coroutine on the loop `arbitrex serve` gets: uvicorn takes uvloop when it is
    installed (everywhere but Windows), and the loop's own cost is part of every request."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(main)
    return uvloop.run(main)


def disk_commit_floor(commits: int, db_path: Path) -> dict[str, float]:
    """What one durable commit costs on this disk: a bare SQLite WAL transaction of one
    small row, synchronous=FULL — the floor under each of the live path's two commits."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE floor (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    times = []
    for _ in range(commits):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO floor (payload) VALUES (?)", ("x" * 300,))
        conn.execute("COMMIT")
        times.append((time.perf_counter() - started) * 1000.0)
    conn.close()
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


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
