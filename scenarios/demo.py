"""The demo run: a seeded order flow through the engine against the simulated market."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from engine.core.lifecycle import Execution
from engine.store import ExecutionDatabase
from scenarios.orderflow import OrderFlowConfig, order_flow
from sim.network import NetworkConfig
from sim.world import SimulatedWorld

# A little of everything a desk meets: latency with a tail, and a lossy wire now and then.
DEMO_NETWORK = NetworkConfig(request_loss=0.005, reply_loss=0.005)
DEMO_FLOW = OrderFlowConfig(odd_size_share=0.01)


class Percentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        if not values:
            return cls(p50=None, p95=None, p99=None)
        p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
        return cls(p50=round(float(p50), 6), p95=round(float(p95), 6), p99=round(float(p99), 6))


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    orders: int
    by_status: dict[str, int]
    rejections_by_reason: dict[str, int]
    slippage_pips: Percentiles
    fill_time_seconds: Percentiles
    broker_orders: int
    virtual_seconds: float
    results_hash: str


def run_demo(
    orders: int,
    seed: int,
    database: ExecutionDatabase | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[RunSummary, SimulatedWorld]:
    world = SimulatedWorld.build(seed, network=DEMO_NETWORK, database=database)
    flow = DEMO_FLOW.model_copy(update={"orders": orders})
    executions: list[Execution] = []

    def arrivals() -> Generator[Any, Any, None]:
        for arrival in order_flow(flow, seed):
            yield world.env.timeout(arrival.delay)
            process = world.driver.submit(arrival.rpm)
            process.callbacks.append(lambda event: executions.append(event.value))

    started = world.env.now
    world.env.process(arrivals())
    while len(executions) < orders:
        world.env.run(until=world.env.now + 1.0)
        if on_progress:
            on_progress(len(executions))
    finished = max((e.completed_at or e.created_at or started) for e in executions)
    return summarise(executions, world, finished - started), world


def summarise(
    executions: list[Execution], world: SimulatedWorld, virtual_seconds: float
) -> RunSummary:
    executions = sorted(executions, key=lambda e: e.execution_id)
    statuses = Counter(e.status.value for e in executions if e.status is not None)
    reasons = Counter(
        e.rejection_reason.value for e in executions if e.rejection_reason is not None
    )
    slippage = [e.slippage_pips for e in executions if e.slippage_pips is not None]
    fill_times = [t for e in executions if (t := e.fill_time_seconds) is not None]
    digest = hashlib.sha256()
    for e in executions:
        digest.update(
            f"{e.execution_id}|{e.status}|{e.executed_units}|{e.average_fill_price!r}\n".encode()
        )
    for row in world.venue.ledger_rows():
        digest.update(repr(row).encode())
    return RunSummary(
        orders=len(executions),
        by_status=dict(sorted(statuses.items())),
        rejections_by_reason=dict(sorted(reasons.items())),
        slippage_pips=Percentiles.of(slippage),
        fill_time_seconds=Percentiles.of(fill_times),
        broker_orders=len(world.venue.orders),
        virtual_seconds=round(virtual_seconds, 6),
        results_hash=digest.hexdigest()[:16],
    )
