"""Crash chaos: an engine process that a test (or `arbitrex run` in crash mode) kills with
SIGKILL mid-run and restarts on the same audit store and the same broker.

The broker lives in its own process (`sim.broker_process`), as a real terminal outlives
the strategy that talks to it. Each engine run first recovers whatever the last one left
open, then executes the decisions of a seeded order flow in order; decisions already
recorded come back from the store by their idempotency key, so a restart never sends a
decision twice.
"""

from __future__ import annotations

import argparse
import sys
import time

from brokers.sim import SimulatedBroker
from engine.core.config import EngineConfig
from engine.engine import ExecutionEngine
from engine.store import open_database
from scenarios.orderflow import OrderFlowConfig, order_flow
from sim.broker_process import SharedClock, VenueProxy
from sim.latency import LatencyConfig
from sim.network import Network, NetworkConfig

# The seed's timings, shortened: a crash test should not wait out 60-second timeouts.
CRASH_CONFIG = EngineConfig(
    poll_interval_seconds=0.05,
    order_timeout_seconds=2.0,
    retry_backoff_seconds=0.05,
    request_timeout_seconds=1.0,
)


def run_worker(db_url: str, port: int, start: float, origin: float, orders: int, seed: int) -> int:
    clock = SharedClock(start, origin)
    database = open_database(db_url)
    # A real wire: each trade request takes ~20 ms there and back, so a kill can land
    # between an order reaching the broker and its answer reaching the engine.
    network = Network(NetworkConfig(latency=LatencyConfig.constant(10.0)), seed)
    venue = VenueProxy(("127.0.0.1", port))
    broker = SimulatedBroker(venue, clock, network, time.sleep)  # type: ignore[arg-type]
    engine = ExecutionEngine(broker, database, CRASH_CONFIG, clock=clock)
    recovered = engine.recover()
    print(f"recovered {len(recovered)}", flush=True)
    flow = OrderFlowConfig(orders=orders, symbols=("EURUSD", "USDJPY"))
    for arrival in order_flow(flow, seed):
        engine.execute(arrival.rpm)
    database.close()
    print("done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An engine process for crash chaos")
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--origin", type=float, required=True)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    o = parser.parse_args(argv)
    return run_worker(o.db, o.port, o.start, o.origin, o.orders, o.seed)


if __name__ == "__main__":
    sys.exit(main())
