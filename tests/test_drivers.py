"""Principle 1: one engine, two clocks — the same core code under SimPy and the wall clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine import create_execution_engine
from engine.core.config import EngineConfig
from engine.schemas import ExecutionStatus, utc
from engine.store import InMemoryExecutionDatabase
from sim.account import AccountConfig
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SymbolConfig
from sim.network import FaultKind, FaultWindow, NetworkConfig
from sim.venue import VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld, paper_engine
from tests.builders import decision

# Timeouts shortened so the wall-clock run takes a fraction of a second; prices held still
# so both clocks see the same quotes whatever the scheduling noise of this machine.
FAST = EngineConfig(
    poll_interval_seconds=0.01,
    order_timeout_seconds=0.3,
    retry_backoff_seconds=0.02,
    request_timeout_seconds=0.1,
)
STILL = MarketConfig(
    symbols=(
        SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0),
        SymbolConfig(symbol="USDJPY", start_mid=145.0, digits=3, volatility_pips=0.0),
    )
)
WIRE = NetworkConfig(latency=LatencyConfig.constant(1.0))
DOWN = NetworkConfig(
    latency=LatencyConfig.constant(1.0),
    faults=(FaultWindow(start=DEFAULT_START, end=DEFAULT_START + 1e6, kind=FaultKind.REFUSE),),
)

CASES: dict[str, dict[str, Any]] = {
    "fills": {"rpm": decision(units=300_000)},
    "sells USDJPY": {"rpm": decision(symbol="USDJPY", direction=-1)},
    "not approved": {"rpm": decision(status="HOLD")},
    "odd size": {"rpm": decision(units=100_001)},
    "margin": {"rpm": decision(), "account": AccountConfig(balance=500.0, leverage=50)},
    "partial": {
        "rpm": decision(),
        "venue": VenueConfig(depth=DepthLadder(top_units=60_000, levels=1)),
    },
    "rests then fills": {"rpm": decision(), "venue": VenueConfig(fill_delay_seconds=0.05)},
    "never fills": {"rpm": decision(), "venue": VenueConfig(fill_delay_seconds=float("inf"))},
    "broker down": {"rpm": decision(), "network": DOWN},
}


def outcome(execution, broker_orders: int) -> tuple:
    return (
        execution.status,
        execution.executed_units,
        execution.average_fill_price,
        execution.slippage_pips,
        execution.outcome_reason,
        execution.attempts,
        broker_orders,
    )


@pytest.mark.parametrize("case", CASES)
def test_the_same_engine_code_gives_the_same_outcome_in_virtual_and_wall_clock_time(case):
    spec = CASES[case]
    options = {
        "market": STILL,
        "network": spec.get("network", WIRE),
        "account": spec.get("account"),
        "config": FAST,
        "venue": spec.get("venue"),
    }
    world = SimulatedWorld.build(seed=4, **options)
    process = world.engine.submit(spec["rpm"])
    world.env.run()
    simulated = outcome(process.value, len(world.venue.orders))

    engine, venue = paper_engine(seed=4, **options)
    confirmation = engine.execute(spec["rpm"])
    live = engine.database.get_execution(confirmation.execution_id)
    assert live is not None
    assert outcome(live, len(venue.orders)) == simulated


def test_the_seeds_usage_works_as_written():
    engine, _ = paper_engine(seed=2, market=STILL, network=WIRE, config=FAST)
    broker, database = engine.broker, InMemoryExecutionDatabase()
    ee = create_execution_engine(broker, database, FAST, engine.driver)

    confirmation = ee.execute(decision(units=200_000))
    log = ee.database.get_execution_log(confirmation.execution_id)
    start = utc(DEFAULT_START) - timedelta(minutes=1)
    trail = ee.export_audit_trail(start, start + timedelta(hours=1))

    assert confirmation.status is ExecutionStatus.FILLED
    assert confirmation.executed_units == confirmation.intended_units == 200_000
    assert confirmation.order_id is not None and confirmation.fill_price is not None
    assert log is not None and log.status is ExecutionStatus.FILLED
    assert [row["kind"] for row in trail] == [
        "ExecutionRequested",
        "ValidationCompleted",
        "SubmissionAttempted",
        "OrderAcknowledged",
        "OrderFilled",
        "OrderClosed",
        "SlippageMeasured",
    ]
    assert {row["execution_id"] for row in trail} == {confirmation.execution_id}


def test_executing_the_same_decision_again_returns_the_first_confirmation_live():
    engine, venue = paper_engine(seed=2, market=STILL, network=WIRE, config=FAST)
    first = engine.execute(decision(decision_id="same"))
    again = engine.execute(decision(decision_id="same"))
    assert again == first
    assert len(venue.orders) == 1


def test_the_seeds_execute_confirms_the_same_over_the_simpy_driver_as_over_the_live_one():
    world = SimulatedWorld.build(seed=2, market=STILL, network=WIRE, config=FAST)
    simulated = world.engine.execute(decision(decision_id="one"))
    engine, _ = paper_engine(seed=2, market=STILL, network=WIRE, config=FAST)
    live = engine.execute(decision(decision_id="one"))
    assert simulated.status is live.status is ExecutionStatus.FILLED
    assert (simulated.executed_units, simulated.fill_price, simulated.slippage_pips) == (
        live.executed_units,
        live.fill_price,
        live.slippage_pips,
    )
