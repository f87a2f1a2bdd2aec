"""Crash chaos: the engine process is killed with SIGKILL in the middle of an order's round
trip and restarted on the same audit store and the same broker; the invariants must still
hold.

The broker lives in its own process (`scenarios.paper_venue`), as a real terminal outlives
the strategy that talks to it. Each engine run first recovers what the last one left open,
then executes the scenario's decisions in order, on the wall clock; decisions already
recorded come back from the store by their idempotency key, so a restart never sends a
decision twice.

Where a kill lands is chosen, not left to a timer: a kill at a random instant mostly finds
the engine between orders, or still starting, and then tests nothing. Each engine run is
told its kill point — its n-th order, while the request is on its way to the broker (its
SubmissionAttempted durable, nothing at the broker: recovery must abandon it), while the
broker holds the order and its reply is on the way back (recovery must find and adopt it),
or, where the scenario's decisions ask for stops, once the order has filled and its fill is
on record, with the request for its stops on the way (the execution has ended FILLED, its
position stands bare: recovery must give it its stops).
At that point the worker says so on stdout and waits; the parent SIGKILLs it there. The seed
picks each point, so a run kills at the same moments on a fast machine and on a busy one.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from enum import StrEnum
from multiprocessing.connection import Client
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.clock import WallClock
from engine.core.lifecycle import Execution
from engine.core.ports import OrderReport, OrderRequest, Position
from engine.core.vocabulary import ExecutionRejectionReason
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.store import open_database
from scenarios.invariants import (
    Evidence,
    Violation,
    cases,
    check_invariants,
    orders_by_client,
    positions_by_tag,
)
from scenarios.runner import arrivals_of
from scenarios.spec import Scenario, ScenarioError, load_scenario
from sim.broker import SimulatedBroker
from sim.broker_process import AUTHKEY, VenueProxy
from sim.network import Network
from sim.sessions import FxWeek
from sim.wire import Wire

# Invariants that need only the store and the broker's ledger and positions (no halts in
# crash mode).
CRASH_INVARIANTS = (
    "no_duplicate_broker_orders",
    "broker_orders_map_to_executions",
    "every_execution_terminal",
    "audit_chain_verifies",
    "no_fill_while_closed",
    "executed_never_exceeds_intended",
    "no_order_for_unapproved_decision",
    "no_position_left_unprotected",
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


# How long an engine run may take to reach its kill point, or the last one to finish.
WORKER_TIMEOUT_SECONDS = 600.0


class KillPhase(StrEnum):
    """Where in an order's round trip the engine process dies."""

    IN_TRANSIT = "in-transit"  # the request is on its way: the broker has nothing yet
    AT_BROKER = "at-broker"  # the broker has the order; its reply is on the way back
    BEFORE_STOPS = "before-stops"  # filled, the fill on record; the stops' request on its way


ORDER_PHASES = (KillPhase.IN_TRANSIT, KillPhase.AT_BROKER)


def kill_phases(scenario: Scenario) -> tuple[KillPhase, ...]:
    """Where the scenario's orders can be caught: before their stops only if its order flow
    asks for stops (a decisions file may not, and a kill point never reached is no test)."""
    orders = scenario.orders
    stops = orders.stop_loss_pips is not None or orders.take_profit_pips is not None
    return (
        (*ORDER_PHASES, KillPhase.BEFORE_STOPS)
        if stops and not orders.decisions_file
        else ORDER_PHASES
    )


class KillPoint(BaseModel):
    """An engine run's kill point: its `order`-th order (1 = the first it sends), at `phase`."""

    model_config = ConfigDict(frozen=True)

    order: Annotated[int, Field(ge=1)]
    phase: KillPhase

    def __str__(self) -> str:
        return f"{self.order}:{self.phase}"

    @classmethod
    def parse(cls, text: str) -> KillPoint:
        order, _, phase = text.partition(":")
        return cls(order=int(order), phase=KillPhase(phase))


class Recovery(BaseModel):
    """What an engine run's recovery did with the executions a killed one left open."""

    model_config = ConfigDict(frozen=True)

    adopted: int = 0  # the broker had the order: followed to its end
    abandoned: int = 0  # the order never reached the broker: ended, unsent
    protected: int = 0  # ended filled before the kill, stops not yet set: set now

    @classmethod
    def of(cls, settled: Iterable[Execution], owing_stops: Collection[str]) -> Recovery:
        """Count the executions `ExecutionEngine.recover` settled; `owing_stops` are those
        that had ended filled before it, owing only their stops. One it could not settle
        (the broker unreachable) stays open and is counted by the run that settles it."""
        adopted = abandoned = protected = 0
        for execution in settled:
            if execution.execution_id in owing_stops:
                protected += not execution.owes_protection
            elif execution.broker_order_id is not None:
                adopted += 1
            elif execution.outcome_reason is ExecutionRejectionReason.INTERRUPTED:
                abandoned += 1
        return cls(adopted=adopted, abandoned=abandoned, protected=protected)

    def __add__(self, other: Recovery) -> Recovery:
        return Recovery(
            adopted=self.adopted + other.adopted,
            abandoned=self.abandoned + other.abandoned,
            protected=self.protected + other.protected,
        )


class MortalVenue(VenueProxy):
    """The remote venue, with the engine process's kill point on the way of its n-th order.

    The count is of orders placed (retries of a lost request included), so the point falls
    on an order in flight whatever the decisions before it came to."""

    def __init__(self, address: tuple[str, int], kill_at: KillPoint) -> None:
        super().__init__(address)
        self._kill_at = kill_at
        self._orders = 0

    def place(self, order: OrderRequest, now: float) -> OrderReport:
        self._orders += 1
        fatal = self._orders == self._kill_at.order
        if fatal and self._kill_at.phase is KillPhase.IN_TRANSIT:
            await_kill(self._kill_at, order.client_order_id)
        report: OrderReport = self._call("place", order, now)
        if fatal and self._kill_at.phase is KillPhase.AT_BROKER:
            await_kill(self._kill_at, order.client_order_id)
        return report

    def set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None, now: float
    ) -> Position:
        # The first stops asked for from the n-th order on: the n-th order itself may have
        # been refused, or filled nothing, and then asks for none.
        if self._kill_at.phase is KillPhase.BEFORE_STOPS and self._orders >= self._kill_at.order:
            await_kill(self._kill_at, f"position {position_id}")
        position: Position = self._call("set_protection", position_id, stop_loss, take_profit, now)
        return position


def await_kill(point: KillPoint, at: str) -> None:
    """Tell the parent the kill point is reached (`at`: the order or position), and wait
    there for its SIGKILL."""
    print(f"kill-point {point} {at}", flush=True)
    sys.stdin.read()  # returns only at end of file: the parent is gone
    os._exit(1)  # so die here, as its kill would have: no cleanup, nothing more sent


def run_worker(
    scenario_path: Path,
    db_url: str,
    port: int,
    origin: float,
    seed: int,
    kill_at: KillPoint | None = None,
) -> int:
    scenario = wall_clock_config(load_scenario(scenario_path))
    clock = WallClock(scenario.t0, origin)
    database = open_database(db_url)
    wire = Wire(Network(scenario.network_config(), seed), clock)
    address = ("127.0.0.1", port)
    venue = VenueProxy(address) if kill_at is None else MortalVenue(address, kill_at)
    broker = SimulatedBroker(venue, wire)  # type: ignore[arg-type]
    engine = ExecutionEngine(broker, database, scenario.engine, LiveDriver(clock))
    owing_stops = {
        execution_id
        for execution_id in database.unsettled()
        if (execution := database.get_execution(execution_id)) and execution.owes_protection
    }
    recovery = Recovery.of(engine.recover(), owing_stops)
    print(f"recovery {recovery.model_dump_json()}", flush=True)
    for arrival in arrivals_of(scenario, seed, scenario_path.parent):
        engine.execute(arrival.rpm)
    database.close()
    print("done", flush=True)
    return 0


class CrashOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    kills: tuple[KillPoint, ...]  # the kill points reached, each by a SIGKILL
    recovery: Recovery  # what the restarted engines' recovery settled, all runs together
    executions: int
    broker_orders: int
    invariants_checked: tuple[str, ...]
    violations: tuple[Violation, ...]


def kill_plan(
    seed: int, kills: int, decisions: int, phases: Sequence[KillPhase] = ORDER_PHASES
) -> list[KillPoint]:
    """Where each engine run dies: `phases` take turns, so that recovery does each of its
    jobs, and the seed picks the first phase and how many orders each run sends first.
    A run dies within its first decisions / (2 (kills + 1)) orders, so the kills together
    take at most half the decisions: while most decisions become orders, every kill point
    is reached and the last run still has work of its own."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B696C6C]))
    first = int(rng.integers(len(phases)))
    most = max(1, decisions // (2 * (kills + 1)))
    return [
        KillPoint(order=int(rng.integers(1, most + 1)), phase=phases[(first + i) % len(phases)])
        for i in range(kills)
    ]


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
        decisions = len(arrivals_of(scenario, seed, scenario_path.parent))
        killed: list[KillPoint] = []
        recovery = Recovery()
        for point in kill_plan(seed, kills, decisions, kill_phases(scenario)):
            recovered, reached = engine_run([*command, "--kill-at", str(point)])
            recovery += recovered
            if reached:
                killed.append(point)
        recovered, _ = engine_run(command)
        recovery += recovered
        orders = ledger_orders(port)
        # The stops the positions really carry, at the broker, once the last engine is done.
        positions = open_positions(port, WallClock(scenario.t0, origin).now())
    finally:
        broker.kill()
        broker.wait()
    database = open_database(db_url)
    with database:
        is_open = FxWeek(holidays=scenario.market_config().week.holidays).is_open
        run_cases = cases(database.executions(), orders_by_client(orders))
        evidence = Evidence(
            database, is_open, [], positions_at_end_of_flow=positions_by_tag(positions)
        )
        violations = check_invariants(CRASH_INVARIANTS, run_cases, evidence)
        executions = len(list(database.execution_ids()))
    return CrashOutcome(
        kills=tuple(killed),
        recovery=recovery,
        executions=executions,
        broker_orders=len(orders),
        invariants_checked=CRASH_INVARIANTS,
        violations=tuple(violations),
    )


def engine_run(command: list[str]) -> tuple[Recovery, bool]:
    """Run one engine process until it reaches its kill point, there SIGKILLed (True), or
    until it ends (False); with what its recovery settled. An engine that fails otherwise,
    or takes more than WORKER_TIMEOUT_SECONDS, is an error."""
    recovery, reached = Recovery(), False
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as worker:
        watchdog = threading.Timer(WORKER_TIMEOUT_SECONDS, worker.kill)
        watchdog.start()
        try:
            assert worker.stdout is not None
            for line in worker.stdout:
                kind, _, rest = line.rstrip("\n").partition(" ")
                if kind == "recovery":
                    recovery = Recovery.model_validate_json(rest)
                elif kind == "kill-point":
                    reached = True
                    break
        except BaseException:
            worker.kill()
            raise
        finally:
            watchdog.cancel()
        if reached:
            worker.kill()  # SIGKILL: no cleanup, no flush, mid-round-trip
    if not reached and worker.returncode != 0:
        raise RuntimeError(f"an engine run ended with exit code {worker.returncode}: {command}")
    return recovery, reached


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


def ledger_orders(port: int) -> list[Any]:
    """Every order the broker process holds, as its ledger has it."""
    orders: list[Any] = _ask_venue(port, "ledger_orders")
    return orders


def open_positions(port: int, now: float) -> tuple[Position, ...]:
    """The broker process's open positions at `now`."""
    positions: tuple[Position, ...] = _ask_venue(port, "positions", now)
    return positions


def _ask_venue(port: int, method: str, *args: Any) -> Any:
    venue = VenueProxy(("127.0.0.1", port))
    try:
        return getattr(venue, method)(*args)
    finally:
        venue.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An engine process for crash chaos")
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--origin", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--kill-at",
        type=KillPoint.parse,
        help="ORDER:PHASE (in-transit or at-broker): stop there and wait to be killed",
    )
    o = parser.parse_args(argv)
    return run_worker(o.scenario, o.db, o.port, o.origin, o.seed, o.kill_at)


if __name__ == "__main__":
    sys.exit(main())
