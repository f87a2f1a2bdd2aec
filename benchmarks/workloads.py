"""What the benchmarks run: each workload once, at a given size, returning what it measured.

`suite.py` repeats them (in fresh processes where memory is measured) and reports medians;
`instructions.py` counts their CPU instructions under callgrind; `api_in_process.py` drives
`api_requests`. Imported from the checkout, as `benchmarks.workloads`, so that a worktree
of another commit measures its own code.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, cast

import numpy as np
import simpy

from engine.core.config import EngineConfig
from engine.core.ports import BrokerInterface
from engine.engine import ExecutionEngine
from engine.store import ExecutionDatabase, open_database
from scenarios.batch_gc import batch_gc
from scenarios.orderflow import OrderFlowConfig, order_flow
from sim.latency import LatencyConfig
from sim.network import NetworkConfig
from sim.world import DEFAULT_START, SimulatedWorld, paper_engine

LATENCY = LatencyConfig.constant(10.0, processing_ms=2.0)


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
            process = world.engine.submit(arrival.rpm)
            process.callbacks.append(lambda _: done.__setitem__(0, done[0] + 1))

    started = time.perf_counter()
    with batch_gc():  # as the simulation commands run
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
    with batch_gc():  # as `arbitrex run` runs it
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

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
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
        paper.driver,
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
        # A fixed Monday morning: the same market, and the same count, on any day.
        engine, _ = paper_trading_engine(7, database, latency_ms=latency_ms, start=DEFAULT_START)
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
