"""Crash recovery: every execution a stop left open is settled with the broker, never resent."""

from __future__ import annotations

from dataclasses import replace

import pytest

from brokers.mt5 import MT5Broker
from engine.core.effects import Record
from engine.core.events import ReconciliationAttempted
from engine.core.ports import OrderReport, OrderRequest, Position
from engine.core.vocabulary import Direction
from engine.schemas import ExecutionRejectionReason, ExecutionStatus
from engine.store import InMemoryExecutionDatabase, verify_audit_store
from sim.broker import SimulatedBroker
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.network import FaultKind, FaultWindow, NetworkConfig
from sim.venue import VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision
from tests.store_backends import StoreTarget, store_target

S = ExecutionStatus
R = ExecutionRejectionReason
T0 = DEFAULT_START
WIRE = NetworkConfig(latency=LatencyConfig.constant(10.0))  # arrives at +10 ms, reply at +20


def crash_at(seconds: float, trade: dict | None = None, **options) -> tuple[SimulatedWorld, str]:
    world = SimulatedWorld.build(
        seed=1, network=WIRE, database=InMemoryExecutionDatabase(), **options
    )
    process = world.engine.submit(decision(**(trade or {})))
    world.env.run(until=T0 + seconds)
    assert not process.triggered, "the execution must still be in flight when the engine dies"
    [execution_id] = world.engine.database.execution_ids()
    return world, execution_id


def recover(world: SimulatedWorld):
    restarted = world.restarted()
    processes = restarted.engine.recover()
    restarted.env.run()
    return restarted, [p.value for p in processes]


def test_an_order_executed_while_the_engine_was_down_is_adopted_not_resent():
    world, execution_id = crash_at(0.015)  # executed at the broker, reply not yet back
    assert world.engine.database.get_execution(execution_id).status is S.SUBMITTING
    restarted, [execution] = recover(world)
    assert execution.status is S.FILLED and execution.slippage_pips is not None
    assert len(world.venue.orders) == 1
    kinds = [type(e) for e in restarted.engine.database.events(execution_id)]
    assert ReconciliationAttempted in kinds  # the reconciliation itself is on the record


@pytest.mark.parametrize("broker_kind", ["sim", "mt5-emulated"])
def test_a_fill_the_engine_never_heard_of_gets_its_stops_when_the_order_is_adopted(broker_kind):
    stops = {"stop_loss_pips": 20, "take_profit_pips": 30}
    world, execution_id = crash_at(0.015, stops, broker_kind=broker_kind)
    restarted, [execution] = recover(world)

    assert execution.status is S.FILLED and execution.executed_units == 100_000
    [position] = world.venue.positions(restarted.env.now)
    assert position.stop_loss is not None and position.take_profit is not None
    log = restarted.engine.database.get_execution_log(execution_id)
    assert log.unprotected_positions == () and len(log.protection) == 1
    assert log.protection_gap_seconds is not None and log.protection_gap_seconds > 0


def test_a_restart_of_an_mt5_world_reconnects_mt5broker_to_the_terminal_and_adopts_the_order():
    world, execution_id = crash_at(0.015, broker_kind="mt5-emulated")
    restarted, [execution] = recover(world)
    assert isinstance(restarted.broker, MT5Broker) and restarted.broker is not world.broker
    assert restarted.terminal is world.terminal  # the terminal outlived the engine
    assert execution.status is S.FILLED and len(world.venue.orders) == 1
    kinds = [type(e) for e in restarted.engine.database.events(execution_id)]
    assert ReconciliationAttempted in kinds


def crash_just_after_the_fill(world: SimulatedWorld, trade: dict, **options) -> str:
    """Run one decision until its fill is on record, and stop the engine there: the
    execution has ended FILLED, its stops (if asked for) on their way or not yet sent."""
    database = world.engine.database
    before = set(database.execution_ids())
    world.engine.submit(decision(**trade, **options))
    while (
        not (new := set(database.execution_ids()) - before)
        or database.get_execution(next(iter(new))).status is not S.FILLED
    ):
        world.env.step()
    return next(iter(new))


STOPS = {"stop_loss_pips": 20, "take_profit_pips": 30}


@pytest.mark.parametrize("broker_kind", ["sim", "mt5-emulated"])
def test_a_fill_recorded_just_before_a_crash_gets_its_stops_when_the_engine_restarts(
    broker_kind,
):
    world = SimulatedWorld.build(
        seed=1, network=WIRE, database=InMemoryExecutionDatabase(), broker_kind=broker_kind
    )
    execution_id = crash_just_after_the_fill(world, STOPS)
    [bare] = world.venue.positions(world.env.now)
    assert bare.stop_loss is None and bare.take_profit is None
    assert world.engine.database.get_execution(execution_id).owes_protection

    restarted, [execution] = recover(world)

    assert execution.status is S.FILLED and execution.executed_units == 100_000
    [position] = world.venue.positions(restarted.env.now)
    assert (position.stop_loss, position.take_profit) == execution.protection[position.position_id]
    assert position.stop_loss is not None and position.take_profit is not None
    assert execution.protection_gap_seconds is not None and execution.protection_gap_seconds > 0
    assert len(world.venue.orders) == 1  # nothing was sent again
    assert restarted.engine.database.unsettled() == []


def close_by_hand(world: SimulatedWorld) -> Position:
    """The trader closes the one open position in the terminal while the engine is down."""
    [position] = world.venue.positions(world.env.now)
    quote = world.venue.quote(position.symbol, world.env.now)
    closing = OrderRequest(
        "manual-close", position.symbol, Direction.SELL, position.units, 1.0, quote.bid, None,
        position_id=position.position_id, reduce_only=True,
    )  # fmt: skip
    world.venue.place(closing, world.env.now)
    assert world.venue.positions(world.env.now) == ()
    return position


def test_a_position_closed_while_the_engine_was_down_is_recorded_as_left_without_stops():
    world = SimulatedWorld.build(seed=1, network=WIRE, database=InMemoryExecutionDatabase())
    execution_id = crash_just_after_the_fill(world, STOPS)
    bare = close_by_hand(world)

    restarted, [execution] = recover(world)

    # The broker refuses stops for a position it no longer has (MT5 10036): that is the
    # outcome, on the record once, not a question asked again at every restart.
    assert "position already closed" in execution.unprotected[bare.position_id]
    assert restarted.engine.database.unsettled() == []
    assert restarted.engine.database.get_execution(execution_id).status is S.FILLED


def test_a_child_order_caught_in_flight_by_a_crash_is_adopted_as_itself_not_as_its_parent():
    # MT5 matches our tags on their first 16 characters; a child order's tag is its parent's
    # plus "C1". Before the fix, recovery adopted the parent for the child and recorded
    # 100,000 units executed while the broker held 200,000.
    thin = VenueConfig(depth=DepthLadder(top_units=40_000, levels=2))  # 100,000 per order
    world = SimulatedWorld.build(
        seed=1, network=WIRE, database=InMemoryExecutionDatabase(),
        broker_kind="mt5-emulated", venue=thin,
    )  # fmt: skip
    world.engine.submit(decision(units=300_000, partial_fills="complete"))
    while len(world.venue.orders) < 2:  # the first child reaches the broker ...
        world.env.step()
    [execution_id] = world.engine.database.execution_ids()
    assert len(world.engine.database.get_execution(execution_id).order_ids) == 1  # ... unheard

    restarted, [execution] = recover(world)

    held = sum(p.units for p in world.venue.positions(restarted.env.now))
    assert execution.executed_units == held == 200_000
    assert sorted(execution.order_ids) == sorted(str(t) for t in world.venue.orders)
    assert execution.status is S.PARTIALLY_FILLED  # recovery sends nothing more


@pytest.fixture
def fills_naming_no_position(monkeypatch):
    """The simulator's broker as one whose fills do not name their position (the port
    allows it): the engine must find its positions by their tag."""

    def nameless(report: OrderReport | None) -> OrderReport | None:
        if report is None:
            return None
        return replace(report, fills=tuple(replace(f, position_id="") for f in report.fills))

    for method in ("place_order", "order_status", "find_order"):
        original = getattr(SimulatedBroker, method)
        monkeypatch.setattr(
            SimulatedBroker,
            method,
            lambda self, *args, _original=original, **kwargs: nameless(
                _original(self, *args, **kwargs)
            ),
        )


def test_fills_that_name_no_position_get_their_stops_on_the_position_found_by_tag(
    fills_naming_no_position,
):
    world = SimulatedWorld.build(seed=1, network=WIRE, database=InMemoryExecutionDatabase())
    execution_id = crash_just_after_the_fill(world, STOPS)
    assert world.engine.database.get_execution(execution_id).position_ids == []

    restarted, [execution] = recover(world)

    [position] = world.venue.positions(restarted.env.now)
    assert position.stop_loss is not None and position.take_profit is not None
    assert list(execution.protection) == [position.position_id]
    assert restarted.engine.database.unsettled() == []


def test_fills_that_name_no_position_whose_position_is_gone_end_without_stops_once(
    fills_naming_no_position,
):
    world = SimulatedWorld.build(seed=1, network=WIRE, database=InMemoryExecutionDatabase())
    crash_just_after_the_fill(world, STOPS)
    close_by_hand(world)

    restarted, [execution] = recover(world)

    assert "no open position of this execution" in execution.unprotected[""]
    assert restarted.engine.database.unsettled() == []  # not asked again at each restart


def test_a_fill_without_stops_asked_is_settled_when_it_is_recorded():
    world = SimulatedWorld.build(seed=1, network=WIRE, database=InMemoryExecutionDatabase())
    crash_just_after_the_fill(world, {})
    assert world.engine.database.unsettled() == []


def test_an_order_that_never_reached_the_broker_is_abandoned_not_sent_late():
    world, _ = crash_at(0.005)  # the request dies with the engine
    _, [execution] = recover(world)
    assert execution.status is S.FAILED and execution.outcome_reason is R.INTERRUPTED
    assert world.venue.orders == {}


def test_a_working_order_is_followed_to_its_fill_after_a_restart():
    world, execution_id = crash_at(1.0, venue=VenueConfig(fill_delay_seconds=3.0))
    assert world.engine.database.get_execution(execution_id).status is S.SUBMITTED
    _, [execution] = recover(world)
    assert execution.status is S.FILLED and len(world.venue.orders) == 1


def test_an_execution_stopped_while_validating_is_closed_as_interrupted():
    world = SimulatedWorld.build(seed=1, database=InMemoryExecutionDatabase())
    flow = world.engine.open(decision(), None, world.env.now)
    first = next(flow)  # the request is recorded, then the engine dies
    assert isinstance(first, Record)
    world.engine.database.append(first.event)
    _, [execution] = recover(world)
    assert execution.status is S.FAILED and execution.outcome_reason is R.INTERRUPTED
    assert world.venue.orders == {}


def test_an_unresolved_execution_is_settled_once_the_broker_answers_again():
    blackout = FaultWindow(start=T0, end=T0 + 120, kind=FaultKind.DROP_REPLIES)
    world = SimulatedWorld.build(seed=1, network=NetworkConfig(faults=(blackout,)))
    process = world.engine.submit(decision())
    world.env.run()
    assert process.value.status is S.UNRESOLVED
    world.env.run(until=T0 + 130)
    _, [execution] = recover(world)
    assert execution.status is S.FILLED and len(world.venue.orders) == 1
    assert world.engine.database.unsettled() == []


def test_recovery_with_nothing_open_does_nothing():
    world = SimulatedWorld.build(seed=1)
    world.engine.submit(decision())
    world.env.run()
    _, settled = recover(world)
    assert settled == []


@pytest.mark.parametrize("kind", ["sqlite-file", "postgresql"])
def test_an_engine_lease_is_seen_from_another_connection_until_its_holder_closes(kind, tmp_path):
    with store_target(kind, tmp_path) as target:
        holder, observer = target.open(), target.open()
        assert not observer.lease_alive("engine-a")
        holder.hold_lease("engine-a")
        assert observer.lease_alive("engine-a")
        holder.close()  # what the OS or the server does when the holding process dies
        assert not observer.lease_alive("engine-a")


def test_recovery_leaves_the_executions_of_a_live_engine_alone():
    world, execution_id = crash_at(0.015)
    other = world.restarted()
    world.engine.database.hold_lease(world.engine.instance_id)  # the first engine lives on
    assert other.engine.orphans() == []
    world.engine.database.release_lease(world.engine.instance_id)
    assert other.engine.orphans() == [execution_id]


def test_a_repeated_decision_leaves_nothing_marked_in_flight():
    world = SimulatedWorld.build(seed=1)
    first = world.engine.submit(decision(), "same")
    concurrent = world.engine.submit(decision(), "same")
    world.env.run()
    later = world.engine.submit(decision(), "same")  # a client retry after it finished
    world.env.run()
    ids = {p.value.execution_id for p in (first, concurrent, later)}
    assert len(ids) == 1
    assert world.engine.orphans() == []
    assert not world.engine._in_flight  # nothing left that recovery would wrongly skip


def test_a_slippage_bound_beyond_reason_is_refused_at_the_door():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_slippage_pips"):
        SimulatedWorld.build(seed=1).engine.submit(decision(max_slippage_pips=1e308))


def owed_by_the_row(target: StoreTarget, execution_id: str) -> int:
    with target.raw() as raw:
        query = "SELECT owes_protection FROM executions WHERE execution_id = " + (
            "?" if target.kind == "sqlite-file" else "%s"
        )
        return raw.execute(query, (execution_id,)).fetchone()[0]


def test_a_sql_store_keeps_a_fill_owing_its_stops_unsettled_until_recovery_sets_them(shared):
    world = SimulatedWorld.build(seed=1, network=WIRE, database=shared.open())
    execution_id = crash_just_after_the_fill(world, STOPS)
    db = world.engine.database
    assert db.unsettled() == [execution_id] and owed_by_the_row(shared, execution_id) == 1
    assert verify_audit_store(db).ok

    _, [execution] = recover(world)

    assert execution.protection and db.unsettled() == []
    assert owed_by_the_row(shared, execution_id) == 0
    assert verify_audit_store(db).ok


def test_a_row_whose_owed_stops_were_changed_behind_the_store_is_named_by_verify(shared):
    world = SimulatedWorld.build(seed=1, network=WIRE, database=shared.open())
    execution_id = crash_just_after_the_fill(world, STOPS)
    shared.tamper("UPDATE executions SET owes_protection = 0")  # hides it from recovery

    result = verify_audit_store(shared.open()).executions
    assert not result.ok
    [disagreement] = result.disagreements
    assert disagreement.execution_id == execution_id
    assert disagreement.column == "owes_protection"


def test_an_older_database_learns_which_fills_still_owe_their_stops(shared):
    world = SimulatedWorld.build(seed=1, network=WIRE, database=shared.open())
    protected = world.engine.submit(decision(**STOPS, decision_id="protected"))
    plain = world.engine.submit(decision(decision_id="plain"))
    world.env.run(until=T0 + 5)
    assert protected.value.protection and not plain.value.request.protected
    owing = crash_just_after_the_fill(world, STOPS, decision_id="crashed")
    world.engine.database.close()
    with shared.raw() as raw:  # the database as an engine before the column left it
        raw.execute("ALTER TABLE executions DROP COLUMN owes_protection")
        raw.execute("DELETE FROM schema_migrations WHERE version = 7")

    upgraded = shared.open()

    assert upgraded.unsettled() == [owing]
    assert verify_audit_store(upgraded).ok  # every row's value is the one its records give
