"""A crash at any point of an order's life, in virtual time: the engine is stopped after each
of the simulator's steps in turn, restarted on the same store and broker, and recovery must
leave nothing unsettled, nothing sent twice, no fill unrecorded and no position bare.

Every step is tried, not a sample: an execution takes a few dozen steps, and a crash window
that is one step wide (a fill on record, its stops not yet answered; a child order at the
broker, its reply not yet back) is exactly the kind a sample misses. The slow test also
crashes the restarted engine at every step of its recovery, for a third to settle.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.core.events import ProtectionSet
from engine.store import (
    ExecutionDatabase,
    InMemoryExecutionDatabase,
    open_database,
    verify_audit_store,
)
from scenarios.invariants import parent_tag
from sim.account import AccountConfig, MarginMode
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.mt5.config import TerminalConfig
from sim.network import FaultKind, FaultWindow, LateExecution, NetworkConfig
from sim.venue import VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision

T0 = DEFAULT_START
WIRE = NetworkConfig(latency=LatencyConfig.constant(10.0))
# Replies lost for two seconds from just after the first order's: children's replies go.
LOSSY = NetworkConfig(
    latency=LatencyConfig.constant(10.0),
    faults=(FaultWindow(start=T0 + 0.025, end=T0 + 2.0, kind=FaultKind.DROP_REPLIES),),
)
# Every reply lost, and the server executes each such request 2 s late (mt5-reference.md,
# behaviour 2), while the terminal's history lags each reconnection by 5 s (behaviour 3).
LATE = NetworkConfig(
    latency=LatencyConfig.constant(10.0),
    faults=(FaultWindow(start=T0, end=T0 + 4.0, kind=FaultKind.DROP_REPLIES),),
    late_execution=LateExecution(probability=1.0, min_seconds=2.0, max_seconds=2.0),
)
STOPS = {"stop_loss_pips": 20, "take_profit_pips": 30}
THIN = VenueConfig(depth=DepthLadder(top_units=40_000, levels=2))  # 100,000 units an order
REMAINDER = {**STOPS, "units": 300_000, "partial_fills": "complete"}
HEDGING = AccountConfig(margin_mode=MarginMode.HEDGING)


@dataclass(frozen=True)
class Case:
    trade: dict[str, Any]  # the decision the crash falls in
    world: dict[str, Any] = field(default_factory=dict)
    opened_first: dict[str, Any] | None = None  # a decision run to its end before it


CASES = {
    "market order with stops": Case(STOPS),
    "market order with stops, mt5": Case(STOPS, {"broker_kind": "mt5-emulated"}),
    "order working at a slow dealer": Case(STOPS, {"venue": VenueConfig(fill_delay_seconds=3)}),
    "partial fills completed by child orders": Case(REMAINDER, {"venue": THIN}),
    "partial fills completed by child orders, mt5": Case(
        REMAINDER, {"venue": THIN, "broker_kind": "mt5-emulated"}
    ),
    # A position per order: the stops go on three positions, one after another.
    "child orders on a hedging account": Case(REMAINDER, {"venue": THIN, "account": HEDGING}),
    "child orders on a hedging account, mt5": Case(
        REMAINDER, {"venue": THIN, "account": HEDGING, "broker_kind": "mt5-emulated"}
    ),
    "child orders whose replies are lost, mt5": Case(
        REMAINDER, {"venue": THIN, "broker_kind": "mt5-emulated", "network": LOSSY}
    ),
    "order executed late after its reply was lost, mt5": Case(
        STOPS,
        {
            "broker_kind": "mt5-emulated",
            "network": LATE,
            "terminal_config": TerminalConfig(history_sync_seconds=5.0),
        },
    ),
    "limit order": Case({**STOPS, "order_type": "limit", "limit_price": 1.08495}),
    "close of a position, mt5": Case(
        {"direction": -1, "units": 200_000, "intent": "close"},
        {"broker_kind": "mt5-emulated"},
        opened_first={"units": 200_000},
    ),
    "stops modified on a position": Case(
        {"intent": "modify_stops", "take_profit_pips": 50},
        opened_first=STOPS,
    ),
}


def started(case: Case, database: ExecutionDatabase | None = None) -> tuple[SimulatedWorld, Any]:
    """The case's world, with its decision submitted (after the one opened first, if any),
    on `database` (default: a fresh one in memory)."""
    world = SimulatedWorld.build(
        seed=1,
        database=database or InMemoryExecutionDatabase(),
        **{"network": WIRE, **case.world},
    )
    if case.opened_first is not None:
        opened = world.engine.submit(decision(decision_id="opened", **case.opened_first))
        world.env.run(until=opened)
    return world, world.engine.submit(decision(**case.trade))


def crashed_after(
    case: Case, steps: int, database: ExecutionDatabase | None = None
) -> tuple[SimulatedWorld, SimulatedWorld]:
    """The world whose engine ran `steps` simulator steps of the decision (or to its end),
    and the world of the engine restarted after it, once its recovery is done."""
    world, process = started(case, database)
    for _ in range(steps):
        if process.triggered:
            break
        world.env.step()
    restarted = world.restarted()
    restarted.engine.recover()  # one recovery: no second chance
    restarted.env.run()
    return world, restarted


def steps_to_finish(case: Case) -> int:
    world, process = started(case)
    steps = 0
    while not process.triggered:
        world.env.step()
        steps += 1
    return steps


def check_recovered(where: str, world: SimulatedWorld, restarted: SimulatedWorld) -> None:
    """Nothing unsettled, nothing sent twice, every unit the broker holds recorded, no
    position bare that upstream asked stops for (unless the record says the broker refused)."""
    database, now = restarted.engine.database, restarted.env.now
    executions = [database.get_execution(e) for e in database.execution_ids()]
    positions = world.venue.positions(now)

    assert database.unsettled() == [], where
    sent = Counter(order.client_order_id for order in world.venue.orders.values())
    assert all(count == 1 for count in sent.values()), f"{where}: sent twice {sent}"
    recorded = sum(e.request.direction * e.executed_units for e in executions)
    held = sum(p.direction * p.units for p in positions)
    assert recorded == held, f"{where}: {held} units held, {recorded} recorded"
    by_tag = {e.request.client_order_id: e for e in executions}
    for position in positions:
        execution = by_tag[parent_tag(position.client_order_id)]
        if execution.request.protected and position.position_id not in execution.unprotected:
            assert position.stop_loss is not None and position.take_profit is not None, (
                f"{where}: position {position.position_id} is bare"
            )


@pytest.mark.parametrize("name", CASES)
def test_a_crash_after_any_step_leaves_nothing_unsettled_doubled_unrecorded_or_bare(name):
    case = CASES[name]
    last = steps_to_finish(case)
    assert last > 2, "the case must give recovery something to do"
    for steps in range(last + 1):
        world, restarted = crashed_after(case, steps)
        check_recovered(f"{name}, crashed after {steps} of {last} steps", world, restarted)


@pytest.mark.parametrize(
    "name",
    ["market order with stops", "child orders on a hedging account, mt5"],
)
def test_on_a_sqlite_store_a_crash_after_any_step_leaves_a_trail_that_verifies(name, tmp_path):
    # The store's own row (status, owes_protection) at every crash point, checked by verify.
    case = CASES[name]
    last = steps_to_finish(case)
    for steps in range(last + 1):
        database = open_database(f"sqlite:///{tmp_path / f'crash-{steps}.db'}")
        world, restarted = crashed_after(case, steps, database)
        check_recovered(f"{name}, crashed after {steps} of {last} steps", world, restarted)
        assert verify_audit_store(database).ok, f"{name}, crashed after {steps} steps"
        database.close()


def test_an_older_database_learns_which_positions_still_owe_their_stops(shared):
    # Crashed once the first of three positions has its stops on record, in a database
    # whose schema is then taken back to before migration 7.
    case = CASES["child orders on a hedging account"]
    world, _ = started(case, shared.open())
    while not any(isinstance(e, ProtectionSet) for e in events_of(world)):
        world.env.step()
    [owing] = world.engine.database.execution_ids()
    world.engine.database.close()
    with shared.raw() as raw:
        raw.execute("ALTER TABLE executions DROP COLUMN owes_protection")
        raw.execute("DELETE FROM schema_migrations WHERE version = 7")

    upgraded = shared.open()

    assert upgraded.unsettled() == [owing]  # one position of three has its stops
    assert verify_audit_store(upgraded).ok  # the backfill agrees with the records' fold


def events_of(world: SimulatedWorld) -> list[Any]:
    database = world.engine.database
    return [event for e in database.execution_ids() for event in database.events(e)]


def crashed_twice(
    case: Case, first: int, second: int
) -> tuple[SimulatedWorld, SimulatedWorld, bool]:
    """The engine stopped after `first` steps of the decision, the engine restarted after it
    stopped after `second` steps of its recovery, and a third engine's recovery done; and
    whether the second crash fell before its recovery had ended."""
    world, process = started(case)
    for _ in range(first):
        if process.triggered:
            break
        world.env.step()
    restarted = world.restarted()
    settling = restarted.engine.recover()
    steps = 0
    while steps < second and not all(handle.triggered for handle in settling):
        restarted.env.step()
        steps += 1
    third = restarted.restarted()
    third.engine.recover()
    third.env.run()
    return world, third, steps == second


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "market order with stops, mt5",
        "child orders on a hedging account, mt5",
        "order executed late after its reply was lost, mt5",
    ],
)
def test_a_second_crash_at_any_step_of_recovery_leaves_a_third_engine_nothing_it_cannot_settle(
    name,
):
    # Recovery is itself interrupted, at every step of it, after every step of the decision.
    case = CASES[name]
    last = steps_to_finish(case)
    for first in range(last + 1):
        second = 0
        while True:
            world, third, interrupted = crashed_twice(case, first, second)
            check_recovered(f"{name}, crashed after {first} and {second} steps", world, third)
            if not interrupted:
                break
            second += 1
