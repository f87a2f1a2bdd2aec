"""Play a scenario: build its world, feed its order flow, pull its kill switch, settle what
faults left open, check the invariants, and write the run's outputs.

Outputs in the run directory: `audit.db` (the SQLite audit store), `executions.parquet`
(one row per execution), `summary.json` (statuses, percentiles, rejections, faults
injected, invariants, and a results hash: same file and seed, same hash).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from engine.core.lifecycle import Execution
from engine.store import ExecutionDatabase, open_database
from scenarios.invariants import Evidence, Violation, check_invariants
from scenarios.orderflow import Arrival, OrderFlowConfig, decisions_from_file, order_flow
from scenarios.spec import Scenario
from sim.replay import ReplayMarket
from sim.world import SimulatedWorld

TAPE_SECONDS = 1.0
MARKOUT_TAIL = 300.0  # seconds: the longest markout horizon


class Percentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        if not values:
            return cls(p50=None, p95=None, p99=None, mean=None)
        p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
        return cls(
            p50=round(float(p50), 6),
            p95=round(float(p95), 6),
            p99=round(float(p99), 6),
            mean=round(float(np.mean(values)), 6),
        )


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: str
    seed: int
    orders: int
    by_status: dict[str, int]
    rejections_by_reason: dict[str, int]
    slippage_pips: Percentiles
    fill_time_seconds: Percentiles
    broker_orders: int
    faults_injected: dict[str, int]
    virtual_seconds: float
    invariants_checked: tuple[str, ...]
    violations: tuple[Violation, ...]
    results_hash: str

    @property
    def ok(self) -> bool:
        return not self.violations


def arrivals_of(scenario: Scenario, seed: int, base_dir: Path) -> list[Arrival]:
    if scenario.orders.decisions_file is not None:
        return decisions_from_file(base_dir / scenario.orders.decisions_file)
    flow = scenario.orders.model_dump(exclude={"decisions_file"})
    return list(order_flow(OrderFlowConfig(**flow), seed))


def build_world(
    scenario: Scenario, seed: int, database: ExecutionDatabase, base_dir: Path
) -> SimulatedWorld:
    market = (
        ReplayMarket([scenario.replay_source(base_dir)])
        if scenario.market.kind == "replay"
        else scenario.market_config()
    )
    return SimulatedWorld.build(
        seed,
        market=market,
        network=scenario.network_config(),
        account=scenario.account,
        config=scenario.engine,
        database=database,
        start=scenario.t0,
        venue=scenario.venue_config(),
        broker_kind=scenario.broker,
    )


def run_scenario(
    scenario: Scenario,
    base_dir: Path,
    seed: int | None = None,
    out_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    db_url: str | None = None,
) -> RunSummary:
    """Run one scenario; with `out_dir`, write the audit store and outputs there.

    The store is `db_url` if given, else `out_dir/audit.db`, else an in-memory SQLite
    database; simulation commits in groups (batched durability)."""
    seed = scenario.seed if seed is None else seed
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if db_url is None and out_dir is not None:
        for stale in out_dir.glob("audit.db*"):
            stale.unlink()
        db_url = f"sqlite:///{out_dir / 'audit.db'}"
    database = open_database(db_url or "sqlite:///:memory:", durability="batched")
    with database:
        world = build_world(scenario, seed, database, base_dir)
        arrivals = arrivals_of(scenario, seed, base_dir)
        executions: list[Execution] = []
        halts = _kill_switch(world, scenario)
        tape: list[tuple[str, float, float, float]] = []
        world.env.process(_feed(world, arrivals, executions))
        world.env.process(_record_quotes(world, tape))
        total = len(arrivals)
        while len(executions) < total:
            world.env.run(until=world.env.now + 1.0)
            if on_progress:
                on_progress(len(executions), total)
        # A desk settles what lost replies left open once the broker answers again; the
        # quote tape runs on long enough for the longest markout after the last fill.
        world.env.run(until=world.env.now + max(scenario.settle_after_seconds, MARKOUT_TAIL))
        settled = world.driver.recover()
        if settled:  # the quote tape runs forever: run until recovery is done, not empty
            world.env.run(until=world.env.all_of(settled))
        by_id = {e.execution_id: e for e in executions}
        by_id.update({p.value.execution_id: p.value for p in settled})
        final = sorted(by_id.values(), key=lambda e: e.execution_id)
        database.flush()
        evidence = Evidence(
            list(world.venue.orders.values()), database, world.market.is_open, halts
        )
        violations = check_invariants(scenario.invariants, final, evidence)
        summary = _summarise(scenario, seed, final, world, violations)
        if out_dir is not None:
            _write_outputs(out_dir, final, summary, tape)
    return summary


def _record_quotes(
    world: SimulatedWorld, tape: list[tuple[str, float, float, float]]
) -> Generator[Any, Any, None]:
    """A once-a-second tape of every symbol's quote: what markouts are measured against."""
    while True:
        now = world.env.now
        for symbol in world.market.symbols:
            quote = world.market.quote(symbol, now)
            if quote is not None:
                tape.append((symbol, now, quote.bid, quote.ask))
        yield world.env.timeout(TAPE_SECONDS)


def _feed(
    world: SimulatedWorld, arrivals: list[Arrival], executions: list[Execution]
) -> Generator[Any, Any, None]:
    for arrival in arrivals:
        if arrival.delay:
            yield world.env.timeout(arrival.delay)
        process = world.driver.submit(arrival.rpm)
        process.callbacks.append(lambda event: executions.append(event.value))


def _kill_switch(world: SimulatedWorld, scenario: Scenario) -> list[tuple[float, float]]:
    """Schedule the halts; return their windows in driver time for the invariants."""
    windows = []
    for switch in scenario.kill_switch:
        start = scenario.t0 + switch.halt_at_seconds
        end = scenario.t0 + switch.resume_at_seconds if switch.resume_at_seconds else float("inf")
        windows.append((start, end))
        world.env.process(_halt_between(world, start, end))
    return windows


def _halt_between(world: SimulatedWorld, start: float, end: float) -> Generator[Any, Any, None]:
    yield world.env.timeout(start - world.env.now)
    world.engine.halt()
    if end != float("inf"):
        yield world.env.timeout(end - world.env.now)
        world.engine.resume()


def _summarise(
    scenario: Scenario,
    seed: int,
    executions: list[Execution],
    world: SimulatedWorld,
    violations: list[Violation],
) -> RunSummary:
    statuses = Counter(e.status.value for e in executions if e.status is not None)
    reasons = Counter(
        e.rejection_reason.value for e in executions if e.rejection_reason is not None
    )
    slippage = [e.slippage_pips for e in executions if e.slippage_pips is not None]
    fill_times = [t for e in executions if (t := e.fill_time_seconds) is not None]
    faults = Counter({f"broker refused {code}": n for code, n in world.venue.refusals.items()})
    faults.update(
        {f"network {fate}": n for fate, n in world.network.fates.items() if fate != "delivered"}
    )
    digest = hashlib.sha256()
    for e in executions:
        digest.update(
            f"{e.execution_id}|{e.status}|{e.executed_units}|{e.average_fill_price!r}|"
            f"{e.slippage_pips!r}|{e.rejection_reason}|{e.attempts}\n".encode()
        )
    digest.update(world.venue.ledger_bytes())
    finished = max((e.completed_at or e.created_at or scenario.t0) for e in executions)
    return RunSummary(
        scenario=scenario.name,
        seed=seed,
        orders=len(executions),
        by_status=dict(sorted(statuses.items())),
        rejections_by_reason=dict(sorted(reasons.items())),
        slippage_pips=Percentiles.of(slippage),
        fill_time_seconds=Percentiles.of(fill_times),
        broker_orders=len(world.venue.orders),
        faults_injected=dict(sorted(faults.items())),
        virtual_seconds=round(finished - scenario.t0, 6),
        invariants_checked=tuple(scenario.invariants),
        violations=tuple(violations),
        results_hash=digest.hexdigest()[:16],
    )


def execution_rows(executions: list[Execution]) -> pd.DataFrame:
    rows = []
    for e in executions:
        request = e.request
        assert request is not None
        rows.append(
            {
                "execution_id": e.execution_id,
                "client_order_id": request.client_order_id,
                "broker_order_id": e.broker_order_id,
                "symbol": request.symbol,
                "direction": int(request.direction) if request.direction is not None else None,
                "intended_units": request.intended_units,
                "executed_units": e.executed_units,
                "status": e.status.value if e.status else None,
                "rejection_reason": e.rejection_reason.value if e.rejection_reason else None,
                "broker_code": e.broker_code,
                "arrival_bid": e.arrival_bid,
                "arrival_ask": e.arrival_ask,
                "average_fill_price": e.average_fill_price,
                "slippage_pips": e.slippage_pips,
                "slippage_quality": e.slippage_quality.value if e.slippage_quality else None,
                "attempts": e.attempts,
                "fills": len(e.fills),
                "created_at": e.created_at,
                "submitted_at": e.submitted_at,
                "last_fill_at": e.last_fill_at,
                "completed_at": e.completed_at,
                "fill_time_seconds": e.fill_time_seconds,
            }
        )
    return pd.DataFrame(rows)


def _write_outputs(
    out_dir: Path,
    executions: list[Execution],
    summary: RunSummary,
    tape: list[tuple[str, float, float, float]],
) -> None:
    execution_rows(executions).to_parquet(out_dir / "executions.parquet", index=False)
    quotes = pd.DataFrame(tape, columns=["symbol", "time", "bid", "ask"])
    quotes.to_parquet(out_dir / "quotes.parquet", index=False)
    (out_dir / "summary.json").write_text(
        json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
