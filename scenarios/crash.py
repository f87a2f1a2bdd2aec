"""Crash chaos: the engine process is killed with SIGKILL mid-run, at seeded random moments,
and restarted on the same audit store and the same broker; the invariants must still hold.

The broker lives in its own process (`scenarios.paper_venue`), as a real terminal outlives
the strategy that talks to it. Each engine run first recovers what the last one left open,
then executes the scenario's decisions in order, on the wall clock; decisions already
recorded come back from the store by their idempotency key, so a restart never sends a
decision twice.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Client
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from engine.clock import WallClock
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.store import open_database
from scenarios.invariants import (
    Evidence,
    Violation,
    cases,
    check_invariants,
    orders_by_client,
)
from scenarios.runner import arrivals_of
from scenarios.spec import Scenario, ScenarioError, load_scenario
from sim.broker import SimulatedBroker
from sim.broker_process import AUTHKEY, VenueProxy
from sim.network import Network
from sim.sessions import FxWeek
from sim.wire import Wire

# Invariants that need only the store and the broker's ledger (no halts in crash mode).
CRASH_INVARIANTS = (
    "no_duplicate_broker_orders",
    "broker_orders_map_to_executions",
    "every_execution_terminal",
    "audit_chain_verifies",
    "no_fill_while_closed",
    "executed_never_exceeds_intended",
    "no_order_for_unapproved_decision",
)


def wall_clock_config(scenario: Scenario) -> Scenario:
    """The scenario's engine, with timings a wall-clock crash run can afford to wait out."""
    faster = scenario.engine.model_copy(
        update={
            "poll_interval_seconds": 0.05,
            "order_timeout_seconds": 2.0,
            "retry_backoff_seconds": 0.05,
            "request_timeout_seconds": 1.0,
            # The scenario's venue never executes a request late: a second is proof enough.
            "absence_proof_seconds": 1.0,
        }
    )
    return scenario.model_copy(update={"engine": faster})


def run_worker(scenario_path: Path, db_url: str, port: int, origin: float, seed: int) -> int:
    scenario = wall_clock_config(load_scenario(scenario_path))
    clock = WallClock(scenario.t0, origin)
    database = open_database(db_url)
    wire = Wire(Network(scenario.network_config(), seed), clock)
    broker = SimulatedBroker(VenueProxy(("127.0.0.1", port)), wire)  # type: ignore[arg-type]
    engine = ExecutionEngine(broker, database, scenario.engine, LiveDriver(clock))
    print(f"recovered {len(engine.recover())}", flush=True)
    for arrival in arrivals_of(scenario, seed, scenario_path.parent):
        engine.execute(arrival.rpm)
    database.close()
    print("done", flush=True)
    return 0


class CrashOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    kills: int
    executions: int
    broker_orders: int
    invariants_checked: tuple[str, ...]
    violations: tuple[Violation, ...]


def crash_run(
    scenario_path: Path, out_dir: Path, kills: int = 4, seed: int | None = None
) -> CrashOutcome:
    """Run the scenario's decisions through engine processes killed `kills` times."""
    scenario = load_scenario(scenario_path)
    if scenario.market.kind != "synthetic" or scenario.broker != "sim":
        raise ScenarioError(
            f"{scenario_path}: crash mode needs a synthetic market and the sim broker"
        )
    seed = scenario.seed if seed is None else seed
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("audit.db*"):
        stale.unlink()
    db_url = f"sqlite:///{out_dir / 'audit.db'}"
    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "scenarios.paper_venue", "--port", str(port), "--seed", str(seed),
         "--scenario", str(scenario_path.resolve())]
    )  # fmt: skip
    try:
        wait_for_broker(port, broker)
        origin = time.time()
        command = [
            sys.executable, "-m", "scenarios.crash", "--scenario", str(scenario_path.resolve()),
            "--db", db_url, "--port", str(port), "--origin", str(origin), "--seed", str(seed),
        ]  # fmt: skip
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B696C6C]))
        killed = 0
        for _ in range(kills):
            worker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            time.sleep(float(rng.uniform(1.0, 2.5)))
            worker.kill()  # SIGKILL: no cleanup, no flush, mid-whatever-it-was-doing
            output, _ = worker.communicate()
            killed += "done" not in output
        final = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if final.returncode != 0:
            raise RuntimeError(f"the last engine run failed:\n{final.stderr[-3000:]}")
        orders = ledger_orders(port)
    finally:
        broker.kill()
        broker.wait()
    database = open_database(db_url)
    with database:
        is_open = FxWeek(holidays=scenario.market_config().week.holidays).is_open
        run_cases = cases(database.executions(), orders_by_client(orders))
        violations = check_invariants(CRASH_INVARIANTS, run_cases, Evidence(database, is_open, []))
        executions = len(list(database.execution_ids()))
    return CrashOutcome(
        kills=killed,
        executions=executions,
        broker_orders=len(orders),
        invariants_checked=CRASH_INVARIANTS,
        violations=tuple(violations),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_broker(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            Client(("127.0.0.1", port), authkey=AUTHKEY).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the broker process did not start") from None
            time.sleep(0.05)


def ledger_orders(port: int) -> list:
    connection = Client(("127.0.0.1", port), authkey=AUTHKEY)
    try:
        connection.send(("ledger_orders", ()))
        ok, orders = connection.recv()
    finally:
        connection.close()
    if not ok:
        raise orders
    return orders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An engine process for crash chaos")
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--origin", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    o = parser.parse_args(argv)
    return run_worker(o.scenario, o.db, o.port, o.origin, o.seed)


if __name__ == "__main__":
    sys.exit(main())
